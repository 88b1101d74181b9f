/* stats.c -- figures from events and leads (see stats.h).
 *
 * A handful of GROUP BY queries; the only per-row work in C is the median,
 * which needs the sorted times. events.data is read with json_extract behind
 * json_valid, so one malformed row cannot fail the whole report. */
#include "stats.h"
#include "store_tools.h"
#include "buf.h"
#include "clock.h"
#include "utf8.h"
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *outcomes[] = {"silent", "need", "later", "declined", "optout", "ok", "problem"};

static double round4(double x) { return round(x * 10000.0) / 10000.0; }

static json_t *campaign_obj(json_t *camps, const char *name) {
  json_t *c = json_object_get(camps, name);
  if (c) return c;
  c = json_object();
  json_object_set_new(c, "contacted", json_integer(0));
  json_t *oc = json_object();
  for (size_t i = 0; i < RT_ARRAY_LEN(outcomes); i++)
    json_object_set_new(oc, outcomes[i], json_pack("{s:I, s:f}", "count", (json_int_t)0, "share", 0.0));
  json_object_set_new(c, "outcomes", oc);
  json_object_set_new(c, "later_kept", json_integer(0));
  json_object_set_new(c, "offers", json_integer(0));
  json_object_set_new(c, "offers_accepted", json_integer(0));
  json_object_set_new(c, "offers_expired", json_integer(0));
  json_object_set_new(c, "leads", json_integer(0));
  json_object_set_new(camps, name, c);
  return c;
}

static json_t *flow_obj(json_t *flows, const char *name) {
  json_t *f = json_object_get(flows, name);
  if (f) return f;
  f = json_pack("{s:I, s:n, s:I}", "leads", (json_int_t)0, "median_time_to_lead_s",
                "conversations", (json_int_t)0);
  json_object_set_new(flows, name, f);
  return f;
}

static void add_int(json_t *o, const char *key, json_int_t n) {
  json_t *v = json_object_get(o, key);
  json_object_set_new(o, key, json_integer((v ? json_integer_value(v) : 0) + n));
}

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? -1 : x > y;
}

typedef struct {
  rt_store *s;
  char **err;
} q_ctx;

static int done(q_ctx *q, int rc) {
  if (rc != RT_OK && !*q->err) *q->err = rt_xasprintf("stats: %s", rt_store_errmsg(q->s));
  return rc == RT_OK ? RT_OK : RT_EIO;
}

static const char *text(const rt_store_row *r, int i) {
  const char *t = rt_store_row_text(r, i);
  return t ? t : "";
}

static bool outcome_row(void *ud, const rt_store_row *r) {
  json_t *c = campaign_obj(ud, text(r, 0));
  const char *kind = text(r, 1);
  json_int_t n = rt_store_row_int(r, 3);
  if (strcmp(kind, "outcome") == 0) {
    const char *oc = rt_store_row_null(r, 2) ? "unknown" : text(r, 2);
    json_t *o = json_object_get(json_object_get(c, "outcomes"), oc);
    if (!o) {
      o = json_pack("{s:I, s:f}", "count", (json_int_t)0, "share", 0.0);
      json_object_set_new(json_object_get(c, "outcomes"), oc, o);
    }
    add_int(o, "count", n);
  } else {
    static const struct { const char *kind, *key; } map[] = {
      {"contacted", "contacted"}, {"later_kept", "later_kept"}, {"offer", "offers"},
      {"offer_accepted", "offers_accepted"}, {"offer_expired", "offers_expired"}};
    for (size_t i = 0; i < RT_ARRAY_LEN(map); i++)
      if (strcmp(kind, map[i].kind) == 0) add_int(c, map[i].key, n);
  }
  return true;
}

static bool campaign_lead_row(void *ud, const rt_store_row *r) {
  add_int(campaign_obj(ud, text(r, 0)), "leads", rt_store_row_int(r, 1));
  return true;
}

static int collect_campaigns(q_ctx *q, int64_t since, json_t *camps) {
  if (done(q, rt_store_stats_outcomes(q->s, since, outcome_row, camps)) != RT_OK) return RT_EIO;
  if (done(q, rt_store_stats_campaign_leads(q->s, since, campaign_lead_row, camps)) != RT_OK)
    return RT_EIO;
  /* Shares, now that every count is in. */
  const char *name;
  json_t *c;
  json_object_foreach(camps, name, c) {
    json_int_t contacted = json_integer_value(json_object_get(c, "contacted"));
    const char *oc;
    json_t *o;
    json_object_foreach(json_object_get(c, "outcomes"), oc, o) {
      json_int_t n = json_integer_value(json_object_get(o, "count"));
      json_object_set_new(o, "share", json_real(contacted > 0 ? round4((double)n / contacted) : 0.0));
    }
  }
  return RT_OK;
}

static bool flow_conv_row(void *ud, const rt_store_row *r) {
  add_int(flow_obj(ud, text(r, 0)), "conversations", rt_store_row_int(r, 1));
  return true;
}

/* The lead times of one flow at a time (the rows come ordered by flow). */
typedef struct {
  json_t *flows;
  int64_t *t;
  size_t n, cap;
  char cur[128];
  bool have;
  json_int_t leads;
} lead_times;

static void lead_times_flush(lead_times *x) {
  if (!x->have) return;
  json_t *f = flow_obj(x->flows, x->cur[0] ? x->cur : "unknown");
  add_int(f, "leads", x->leads);
  if (x->n > 0) {
    int64_t *t = x->t;
    size_t n = x->n;
    qsort(t, n, sizeof *t, cmp_i64);
    double med = n % 2 ? (double)t[n / 2] : ((double)t[n / 2 - 1] + (double)t[n / 2]) / 2;
    json_object_set_new(f, "median_time_to_lead_s", json_real(med / 1000.0));
  }
  x->n = 0;
  x->leads = 0;
  x->have = false;
}

static bool lead_time_row(void *ud, const rt_store_row *r) {
  lead_times *x = ud;
  const char *flow = text(r, 0);
  if (x->have && strcmp(flow, x->cur) != 0) lead_times_flush(x);
  if (!x->have) {
    snprintf(x->cur, sizeof x->cur, "%s", flow);
    x->have = true;
  }
  x->leads++;
  if (!rt_store_row_null(r, 1) && rt_store_row_int(r, 1) >= 0) {
    if (x->n == x->cap) {
      x->cap = x->cap ? x->cap * 2 : 64;
      x->t = rt_xrealloc(x->t, x->cap * sizeof *x->t);
    }
    x->t[x->n++] = rt_store_row_int(r, 1);
  }
  return true;
}

static int collect_flows(q_ctx *q, int64_t since, json_t *flows) {
  if (done(q, rt_store_stats_flow_convs(q->s, since, flow_conv_row, flows)) != RT_OK) return RT_EIO;
  /* One row per lead with its time to lead in ms (NULL when unknown). */
  lead_times x = {.flows = flows};
  int rc = rt_store_stats_lead_times(q->s, since, lead_time_row, &x);
  if (rc == RT_OK) lead_times_flush(&x);
  free(x.t);
  return done(q, rc);
}

static bool llm_row(void *ud, const rt_store_row *r) {
  json_int_t calls = rt_store_row_int(r, 0), dialogs = rt_store_row_int(r, 1);
  json_int_t tokens = rt_store_row_int(r, 2), leads = rt_store_row_int(r, 4);
  json_int_t all = rt_store_row_int(r, 5);
  double cost = rt_store_row_double(r, 3);
  double dd = dialogs ? (double)dialogs : 0, ld = leads ? (double)leads : 0;
  json_object_set_new(ud, "llm", json_pack(
    "{s:I, s:I, s:I, s:f, s:{s:f, s:f}, s:{s:f, s:f}, s:I, s:f}",
    "calls", calls, "dialogs", dialogs, "tokens", tokens, "cost", round4(cost),
    "per_dialog", "tokens", dd ? round4(tokens / dd) : 0.0, "cost", dd ? round4(cost / dd) : 0.0,
    "per_lead", "tokens", ld ? round4(tokens / ld) : 0.0, "cost", ld ? round4(cost / ld) : 0.0,
    /* the share of the period's dialogs that needed the model at all */
    "all_dialogs", all, "share", all ? round4((double)dialogs / (double)all) : 0.0));
  return false;
}

static bool saved_row(void *ud, const rt_store_row *r) {
  json_object_set_new(ud, text(r, 0), json_pack("{s:I, s:I}", "calls", (json_int_t)rt_store_row_int(r, 1),
                                                "tokens", (json_int_t)rt_store_row_int(r, 2)));
  return true;
}

static bool llm_outcome_row(void *ud, const rt_store_row *r) {
  json_t *camp = json_object_get(ud, text(r, 0));
  if (!camp) {
    camp = json_object();
    json_object_set_new(ud, text(r, 0), camp);
  }
  json_int_t n = rt_store_row_int(r, 2);
  double cost = rt_store_row_double(r, 4);
  json_int_t tokens = rt_store_row_int(r, 3);
  json_object_set_new(camp, rt_store_row_null(r, 1) ? "unknown" : text(r, 1),
                      json_pack("{s:I, s:I, s:f, s:f, s:f}", "dialogs", n, "tokens", tokens,
                                "cost", round4(cost), "tokens_per_dialog",
                                n ? round4((double)tokens / (double)n) : 0.0, "cost_per_dialog",
                                n ? round4(cost / (double)n) : 0.0));
  return true;
}

static int collect_llm(q_ctx *q, int64_t since, json_t *root) {
  if (done(q, rt_store_stats_llm(q->s, since, llm_row, root)) != RT_OK) return RT_EIO;
  json_t *llm = json_object_get(root, "llm");
  /* ocr and rules are always there: 0 when nothing was saved */
  json_t *saved = json_pack("{s:{s:i, s:i}, s:{s:i, s:i}}", "ocr", "calls", 0, "tokens", 0,
                            "rules", "calls", 0, "tokens", 0);
  json_object_set_new(llm, "saved", saved);
  if (done(q, rt_store_stats_llm_saved(q->s, since, saved_row, saved)) != RT_OK) return RT_EIO;
  json_t *outc = json_object();
  json_object_set_new(llm, "per_outcome", outc);
  return done(q, rt_store_stats_llm_outcomes(q->s, since, llm_outcome_row, outc));
}

static bool event_row(void *ud, const rt_store_row *r) {
  json_object_set_new(ud, text(r, 0), json_integer(rt_store_row_int(r, 1)));
  return true;
}

static int collect_events(q_ctx *q, int64_t since, json_t *root) {
  json_t *ev = json_pack("{s:I, s:I}", "handoff", (json_int_t)0, "step_error", (json_int_t)0);
  json_object_set_new(root, "events", ev);
  return done(q, rt_store_stats_event_counts(q->s, since, event_row, ev));
}

int rt_stats_collect(rt_store *s, int64_t since_ms, json_t **out, char **err) {
  *out = NULL;
  *err = NULL;
  q_ctx q = {.s = s, .err = err};
  json_t *root = json_object();
  json_object_set_new(root, "since", json_integer(since_ms));
  json_t *camps = json_object(), *flows = json_object();
  json_object_set_new(root, "campaigns", camps);
  json_object_set_new(root, "flows", flows);
  campaign_obj(camps, "retention");
  campaign_obj(camps, "gifts");
  /* One read transaction: the figures describe one moment. Inside the
   * bot's own write transaction (the managers' /stats) that one already
   * holds the moment, and is not ours to end. */
  bool own = !rt_store_in_txn(s);
  if (own) rt_store_read_begin(s);
  int rc = collect_campaigns(&q, since_ms, camps);
  if (rc == RT_OK) rc = collect_flows(&q, since_ms, flows);
  if (rc == RT_OK) rc = collect_events(&q, since_ms, root);
  if (rc == RT_OK) rc = collect_llm(&q, since_ms, root);
  if (own) rt_store_read_end(s);
  if (rc != RT_OK) {
    json_decref(root);
    return rc;
  }
  *out = root;
  return RT_OK;
}

/* ---- leads per day ---- */

typedef struct { const char *tz; json_t *days; char last[64]; } day_ctx;

static bool day_row(void *ud, const rt_store_row *r) {
  day_ctx *d = ud;
  char when[64];
  rt_clock_format(rt_store_row_int(r, 0), d->tz, when, sizeof when);
  when[10] = '\0';   /* "2026-12-02 10:00" -> the day */
  size_t n = json_array_size(d->days);
  if (n && strcmp(d->last, when) == 0) {
    json_t *o = json_array_get(d->days, n - 1);
    add_int(o, "leads", 1);
  } else {
    json_array_append_new(d->days, json_pack("{s:s, s:I}", "day", when, "leads", (json_int_t)1));
    snprintf(d->last, sizeof d->last, "%s", when);
  }
  return true;
}

int rt_stats_leads_per_day(rt_store *s, int64_t since_ms, const char *tz, json_t *stats,
                           char **err) {
  *err = NULL;
  day_ctx d = {.tz = tz, .days = json_array()};
  q_ctx q = {.s = s, .err = err};
  /* Leads come in time order, so a day's leads are consecutive. */
  int rc = done(&q, rt_store_stats_lead_times_at(s, since_ms, day_row, &d));
  if (rc != RT_OK) {
    json_decref(d.days);
    return rc;
  }
  json_object_set_new(stats, "leads_per_day", d.days);
  return RT_OK;
}

/* ---- text table ---- */

/* Display width of UTF-8 text: one column per code point. */
static int width(const char *s) {
  return (int)rt_utf8_count(s, strlen(s));
}

/* Adds s padded to w columns, left- or right-aligned. */
static void sb_cell(rt_buf *b, const char *s, int w, bool right) {
  int pad = w - width(s);
  if (right)
    for (int i = 0; i < pad; i++) rt_buf_addc(b, ' ');
  rt_buf_adds(b, s);
  if (!right)
    for (int i = 0; i < pad; i++) rt_buf_addc(b, ' ');
}

static json_int_t geti(json_t *o, const char *k) { return json_integer_value(json_object_get(o, k)); }

/* The table's words are the shop's (stats.texts, defaults in
 * shop.schema.json); a key the texts lack prints as nothing. */
static const char *tx(const json_t *texts, const char *key) {
  const char *v = json_string_value(json_object_get(texts, key));
  return v ? v : "";
}

/* Appends the text of key with its {names} filled: the arguments after
 * the key are pairs of a name and its value, already formatted. */
#define FILL(b, texts, key, ...)                                                   \
  do {                                                                             \
    const char *kv_[] = {__VA_ARGS__};                                             \
    const char *nm_[RT_ARRAY_LEN(kv_) / 2], *vl_[RT_ARRAY_LEN(kv_) / 2];           \
    for (size_t i_ = 0; i_ < RT_ARRAY_LEN(kv_) / 2; i_++) {                        \
      nm_[i_] = kv_[2 * i_];                                                       \
      vl_[i_] = kv_[2 * i_ + 1];                                                   \
    }                                                                              \
    rt_buf_fill((b), tx((texts), (key)), nm_, vl_, RT_ARRAY_LEN(kv_) / 2);         \
  } while (0)

static const char *num_s(char *out, size_t n, const char *fmt, double v) {
  snprintf(out, n, fmt, v);
  return out;
}

static const char *int_s(char *out, size_t n, json_int_t v) {
  snprintf(out, n, "%lld", (long long)v);
  return out;
}

static void fmt_duration(const json_t *texts, double sec, char *out, size_t n) {
  long s = lround(sec);
  char x[24], y[24];
  rt_buf b = RT_BUF_INIT;
  if (s < 60) {
    snprintf(x, sizeof x, "%ld", s);
    FILL(&b, texts, "seconds", "s", x);
  } else if (s < 3600) {
    snprintf(x, sizeof x, "%ld", s / 60);
    snprintf(y, sizeof y, "%ld", s % 60);
    FILL(&b, texts, "minutes", "m", x, "s", y);
  } else if (s < 86400) {
    snprintf(x, sizeof x, "%ld", s / 3600);
    snprintf(y, sizeof y, "%ld", s / 60 % 60);
    FILL(&b, texts, "hours", "h", x, "m", y);
  } else {
    snprintf(x, sizeof x, "%ld", s / 86400);
    snprintf(y, sizeof y, "%ld", s / 3600 % 24);
    FILL(&b, texts, "days", "d", x, "h", y);
  }
  snprintf(out, n, "%s", rt_buf_str(&b));
  rt_buf_free(&b);
}

char *rt_stats_table(json_t *stats, const json_t *texts) {
  rt_buf b = RT_BUF_INIT;
  json_int_t since = json_integer_value(json_object_get(stats, "since"));
  if (since > 0) {
    time_t t = (time_t)(since / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    char date[64];
    snprintf(date, sizeof date, "%04d-%02d-%02d %02d:%02d", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min);
    FILL(&b, texts, "since", "date", date);
  } else {
    rt_buf_adds(&b, tx(texts, "all_time"));
  }
  rt_buf_adds(&b, "\n\n");

  /* The campaign table's rows and the text key of each label; an outcome
   * row ("o:") is indented under "contacted" and shows its share. */
  static const struct { const char *key, *label; } rows[] = {
    {"contacted", "contacted"},
    {"o:silent", "outcome_silent"}, {"o:need", "outcome_need"}, {"o:later", "outcome_later"},
    {"o:declined", "outcome_declined"}, {"o:optout", "outcome_optout"}, {"o:ok", "outcome_ok"},
    {"o:problem", "outcome_problem"}, {"o:question", "outcome_question"},
    {"later_kept", "later_kept"}, {"offers", "offers"},
    {"offers_accepted", "offers_accepted"}, {"offers_expired", "offers_expired"},
    {"leads", "leads"},
  };
  json_t *camps = json_object_get(stats, "campaigns");
  const int lw = 26, cw = 16;
  sb_cell(&b, tx(texts, "campaign"), lw, false);
  const char *name;
  json_t *c;
  json_object_foreach(camps, name, c) sb_cell(&b, name, cw, true);
  rt_buf_adds(&b, "\n");
  for (size_t r = 0; r < RT_ARRAY_LEN(rows); r++) {
    bool outcome = strncmp(rows[r].key, "o:", 2) == 0;
    if (outcome) rt_buf_adds(&b, "  ");
    sb_cell(&b, tx(texts, rows[r].label), outcome ? lw - 2 : lw, false);
    json_object_foreach(camps, name, c) {
      char cell[64];
      if (outcome) {
        json_t *o = json_object_get(json_object_get(c, "outcomes"), rows[r].key + 2);
        snprintf(cell, sizeof cell, "%lld (%.0f%%)", (long long)geti(o, "count"),
                 json_real_value(json_object_get(o, "share")) * 100);
      } else {
        snprintf(cell, sizeof cell, "%lld", (long long)geti(c, rows[r].key));
      }
      sb_cell(&b, cell, cw, true);
    }
    rt_buf_adds(&b, "\n");
  }

  json_t *flows = json_object_get(stats, "flows");
  rt_buf_adds(&b, "\n");
  sb_cell(&b, tx(texts, "flow"), lw, false);
  sb_cell(&b, tx(texts, "leads"), 10, true);
  sb_cell(&b, tx(texts, "conversations"), 10, true);
  sb_cell(&b, tx(texts, "median"), 20, true);
  rt_buf_adds(&b, "\n");
  if (!json_object_size(flows)) rt_buf_printf(&b, "  %s\n", tx(texts, "no_data"));
  json_t *f;
  json_object_foreach(flows, name, f) {
    char n1[32], n2[32], med[128];
    json_t *m = json_object_get(f, "median_time_to_lead_s");
    if (json_is_number(m)) fmt_duration(texts, json_number_value(m), med, sizeof med);
    else snprintf(med, sizeof med, "—");
    sb_cell(&b, name, lw, false);
    sb_cell(&b, int_s(n1, sizeof n1, geti(f, "leads")), 10, true);
    sb_cell(&b, int_s(n2, sizeof n2, geti(f, "conversations")), 10, true);
    sb_cell(&b, med, 20, true);
    rt_buf_adds(&b, "\n");
  }

  char v1[32], v2[32], v3[32], v4[32], v5[32];
  json_t *ev = json_object_get(stats, "events");
  rt_buf_adds(&b, "\n");
  FILL(&b, texts, "handoffs", "handoffs", int_s(v1, sizeof v1, geti(ev, "handoff")),
       "errors", int_s(v2, sizeof v2, geti(ev, "step_error")));
  json_t *llm = json_object_get(stats, "llm");
  json_t *pd = json_object_get(llm, "per_dialog"), *pl = json_object_get(llm, "per_lead");
  rt_buf_adds(&b, "\n\n");
  FILL(&b, texts, "llm", "calls", int_s(v1, sizeof v1, geti(llm, "calls")),
       "dialogs", int_s(v2, sizeof v2, geti(llm, "dialogs")),
       "tokens", int_s(v3, sizeof v3, geti(llm, "tokens")),
       "cost", num_s(v4, sizeof v4, "%.2f", json_number_value(json_object_get(llm, "cost"))));
  rt_buf_adds(&b, "\n  ");
  FILL(&b, texts, "llm_per_dialog",
       "tokens", num_s(v1, sizeof v1, "%.0f", json_number_value(json_object_get(pd, "tokens"))),
       "cost", num_s(v2, sizeof v2, "%.4f", json_number_value(json_object_get(pd, "cost"))));
  rt_buf_adds(&b, "\n  ");
  FILL(&b, texts, "llm_per_lead",
       "tokens", num_s(v1, sizeof v1, "%.0f", json_number_value(json_object_get(pl, "tokens"))),
       "cost", num_s(v2, sizeof v2, "%.4f", json_number_value(json_object_get(pl, "cost"))));
  rt_buf_adds(&b, "\n  ");
  FILL(&b, texts, "llm_share", "dialogs", int_s(v1, sizeof v1, geti(llm, "dialogs")),
       "all", int_s(v2, sizeof v2, geti(llm, "all_dialogs")),
       "percent", num_s(v3, sizeof v3, "%.0f", 100 * json_number_value(json_object_get(llm, "share"))));
  json_t *sv = json_object_get(llm, "saved");
  json_t *so = json_object_get(sv, "ocr"), *sr = json_object_get(sv, "rules");
  rt_buf_adds(&b, "\n  ");
  FILL(&b, texts, "saved_ocr", "tokens", int_s(v1, sizeof v1, geti(so, "tokens")),
       "calls", int_s(v2, sizeof v2, geti(so, "calls")));
  rt_buf_adds(&b, "\n  ");
  FILL(&b, texts, "saved_rules", "tokens", int_s(v1, sizeof v1, geti(sr, "tokens")),
       "calls", int_s(v2, sizeof v2, geti(sr, "calls")));
  rt_buf_adds(&b, "\n");
  const char *cn;
  json_t *cv;
  json_object_foreach(json_object_get(llm, "per_outcome"), cn, cv) {
    const char *on;
    json_t *ov;
    json_object_foreach(cv, on, ov) {
      rt_buf_adds(&b, "  ");
      FILL(&b, texts, "per_outcome", "campaign", cn, "outcome", on,
           "cost", num_s(v3, sizeof v3, "%.4f",
                         json_number_value(json_object_get(ov, "cost_per_dialog"))),
           "tokens", num_s(v4, sizeof v4, "%.0f",
                           json_number_value(json_object_get(ov, "tokens_per_dialog"))),
           "dialogs", int_s(v5, sizeof v5, geti(ov, "dialogs")));
      rt_buf_adds(&b, "\n");
    }
  }
  return rt_buf_take(&b, NULL);
}
