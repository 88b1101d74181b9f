/* bench_eval.c -- how well the Vitaly flows read customers: accuracy over the
 * labelled messages in tests/eval/ (one .tsv per set) (see tests/eval/README.md), per set
 * and per class, end to end through the real flows (scripts/vitaly with
 * examples/autoparts, one step per message, no store) and at the helper
 * level (rt_text_cars, rt_text_phone, rt_text_date).
 * The figures "before" in tests/eval/README.md came from this file as it
 * was before the typed effects (rt_lturn_result), built against main at
 * 2696744.
 * usage: bench_eval [-v] [EVAL_DIR [FLOWS_DIR [SHOP_DIR]]]
 * -v prints every miss. Figures only, never pass/fail. */
#include "config.h"
#include "engine.h"
#include "lvm.h"
#include "rt.h"
#include "text.h"
#include "tz.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TZ "Asia/Yekaterinburg"            /* examples/autoparts */
#define TODAY_DEFAULT "2026-03-02"        /* a Monday */

static int64_t now_s;
static bool verbose;

static int64_t fake_now(void *ud) { (void)ud; return now_s * 1000; }
static int no_customer(void *ud, const char *p, const char *ch, const char *chat,
                       const rt_record_sink *k) {
  (void)ud; (void)p; (void)ch; (void)chat; (void)k;
  return 0;
}
static rt_host host = {.now_ms = fake_now, .customer = no_customer};

/* ---- rows and tallies ------------------------------------------------- */

typedef struct { char *cls, *msg, *want, *today; } row;

static row *read_rows(const char *path, size_t *n) {
  FILE *f = fopen(path, "r");
  if (!f) { fprintf(stderr, "%s: cannot open\n", path); exit(1); }
  row *rows = NULL;
  size_t cap = 0;
  *n = 0;
  char line[4096];
  while (fgets(line, sizeof line, f)) {
    line[strcspn(line, "\r\n")] = '\0';
    if (line[0] == '#' || line[0] == '\0') continue;
    char *f1 = line, *f2 = strchr(f1, '\t');
    if (!f2) continue;
    *f2++ = '\0';
    char *f3 = strchr(f2, '\t');
    if (!f3) continue;
    *f3++ = '\0';
    char *f4 = strchr(f3, '\t');
    if (f4) *f4++ = '\0';
    /* "\n" in a message is a line break */
    char *m = rt_xstrdup(f2), *w = m;
    for (char *r = m; *r; r++) {
      if (r[0] == '\\' && r[1] == 'n') { *w++ = '\n'; r++; }
      else *w++ = *r;
    }
    *w = '\0';
    if (*n == cap) rows = rt_xrealloc(rows, (cap = cap ? cap * 2 : 64) * sizeof *rows);
    rows[(*n)++] = (row){rt_xstrdup(f1), m, rt_xstrdup(f3), rt_xstrdup(f4 ? f4 : TODAY_DEFAULT)};
  }
  fclose(f);
  return rows;
}

typedef struct { char cls[32]; int ok, all; } tally;
typedef struct { tally t[64]; int n, ok, all; } score;

static void count(score *s, const char *cls, bool ok) {
  s->all++;
  s->ok += ok;
  for (int i = 0; i < s->n; i++) {
    if (!strcmp(s->t[i].cls, cls)) {
      s->t[i].all++;
      s->t[i].ok += ok;
      return;
    }
  }
  if (s->n == 64) return;
  tally *t = &s->t[s->n++];
  snprintf(t->cls, sizeof t->cls, "%s", cls);
  t->all = 1;
  t->ok = ok;
}

static void report(const char *level, const char *set, const score *s) {
  if (!s->all) return;
  printf("eval.%s.%s: %d/%d = %.1f%%\n", level, set, s->ok, s->all, 100.0 * s->ok / s->all);
  for (int i = 0; i < s->n; i++)
    printf("eval.%s.%s.class_%s: %d/%d = %.1f%%\n", level, set, s->t[i].cls, s->t[i].ok,
           s->t[i].all, 100.0 * s->t[i].ok / s->t[i].all);
}

static void miss(const char *level, const char *set, const row *r, const char *got) {
  if (verbose)
    fprintf(stderr, "miss %s.%s [%s] «%s»: want %s, got %s\n", level, set, r->cls, r->msg,
            r->want, got);
}

/* 12:00 local of "YYYY-MM-DD" */
static int64_t noon(const char *day) {
  int y, m, d;
  if (sscanf(day, "%d-%d-%d", &y, &m, &d) != 3) return 0;
  return rt_tz_make(TZ, y, m, d, 12, 0);
}

static void day_of(int64_t t, char out[32]) {
  struct tm tm;
  rt_tz_local_tm(TZ, t, &tm);
  snprintf(out, 32, "%04d-%02d-%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
}

/* ---- one step through the flows --------------------------------------- */

typedef struct {
  json_t *res;     /* the turn's effects */
  json_t *slots;   /* the state after it */
  char err[96];
} turn;

/* The typed effects as the JSON shape the checks below read: {flow, step,
 * phone, out: [{to, text}], events: [{kind, data}], leads: [...], ops: [{op}]}. */
static json_t *fx_json(const rt_fx *fx) {
  json_t *r = json_object();
  if (!fx) return r;
  if (fx->flow) json_object_set_new(r, "flow", json_string(fx->flow));
  if (fx->step) json_object_set_new(r, "step", json_string(fx->step));
  if (fx->phone) json_object_set_new(r, "phone", json_string(fx->phone));
  json_t *out = json_array(), *evs = json_array(), *leads = json_array(), *ops = json_array();
  for (size_t i = 0; i < fx->nout; i++)
    json_array_append_new(out, json_pack("{s:s, s:s}", "to",
                                         fx->out[i].to == RT_FX_MANAGERS ? "managers" : "chat",
                                         "text", fx->out[i].text ? fx->out[i].text : ""));
  for (size_t i = 0; i < fx->nevents; i++) {
    json_t *d = fx->events[i].data_json ? json_loads(fx->events[i].data_json, 0, NULL) : NULL;
    json_array_append_new(evs, json_pack("{s:s, s:o}", "kind", fx->events[i].kind,
                                         "data", d ? d : json_object()));
  }
  for (size_t i = 0; i < fx->nleads; i++) {
    json_t *d = fx->leads[i].data_json ? json_loads(fx->leads[i].data_json, 0, NULL) : NULL;
    json_array_append_new(leads, d ? d : json_object());
  }
  static const char *const op_names[] = {"handoff", "release", "optout"};
  for (size_t i = 0; i < fx->nops; i++)
    json_array_append_new(ops, json_pack("{s:s}", "op", op_names[fx->ops[i].op]));
  json_object_set_new(r, "out", out);
  json_object_set_new(r, "events", evs);
  json_object_set_new(r, "leads", leads);
  json_object_set_new(r, "ops", ops);
  return r;
}

static bool step(rt_bundle *b, const char *flow, const char *st, const char *slots,
                 const char *text, turn *out) {
  memset(out, 0, sizeof *out);
  json_t *conv = json_pack("{s:i, s:s, s:s, s:s, s:s, s:s}", "id", 1, "channel", "console",
                           "chat", "1", "flow", flow, "step", st, "mode", "bot");
  json_t *ev = json_pack("{s:s, s:s}", "kind", "text", "text", text);
  rt_lturn *t;
  int rc = rt_lturn_start(b, NULL, conv, slots, ev, &t);
  bool ok = rc == RT_LTURN_DONE;
  if (ok) {
    out->res = fx_json(rt_lturn_effects(t));
    out->slots = json_loads(rt_lturn_slots(t), 0, NULL);
  } else {
    const char *c = rc == RT_LTURN_ERROR
                        ? json_string_value(json_object_get(rt_lturn_error(t), "code"))
                        : "yielded";
    snprintf(out->err, sizeof out->err, "step failed: %s", c ? c : "?");
  }
  rt_lturn_free(t);
  json_decref(conv);
  json_decref(ev);
  return ok;
}

static void turn_free(turn *t) {
  json_decref(t->res);
  json_decref(t->slots);
}

static const char *sget(json_t *o, const char *k) { return json_string_value(json_object_get(o, k)); }

/* The first outcome the turn recorded, or NULL. */
static const char *outcome(const turn *t) {
  json_t *evs = json_object_get(t->res, "events"), *e;
  size_t i;
  json_array_foreach(evs, i, e) {
    if (!strcmp(sget(e, "kind") ? sget(e, "kind") : "", "outcome"))
      return sget(json_object_get(e, "data"), "outcome");
  }
  return NULL;
}

static const char *outcome_at(const turn *t) {
  json_t *evs = json_object_get(t->res, "events"), *e;
  size_t i;
  json_array_foreach(evs, i, e) {
    if (!strcmp(sget(e, "kind") ? sget(e, "kind") : "", "outcome"))
      return sget(json_object_get(e, "data"), "at");
  }
  return NULL;
}

static bool has_op(const turn *t, const char *op) {
  json_t *ops = json_object_get(t->res, "ops"), *o;
  size_t i;
  json_array_foreach(ops, i, o) if (!strcmp(sget(o, "op") ? sget(o, "op") : "", op)) return true;
  return false;
}

static bool said(const turn *t, const char *to, const char *needle) {
  json_t *outs = json_object_get(t->res, "out"), *o;
  size_t i;
  json_array_foreach(outs, i, o) {
    const char *dest = sget(o, "to");
    bool mgr = dest && !strcmp(dest, "managers");
    if ((to && !mgr) || (!to && mgr)) continue;
    const char *tx = sget(o, "text");
    if (tx && (!needle || strstr(tx, needle))) return true;
  }
  return false;
}

/* The parts list in the slots, '|'-joined in the normal form. */
static void parts_of(const turn *t, char *out, size_t n) {
  out[0] = '\0';
  json_t *p = json_object_get(t->slots, "parts"), *v;
  size_t i, o = 0;
  json_array_foreach(p, i, v) {
    char *nv = rt_text_norm(json_string_value(v) ? json_string_value(v) : "");
    o += (size_t)snprintf(out + o, o < n ? n - o : 0, "%s%s", i ? "|" : "", nv);
    free(nv);
    if (o >= n) break;
  }
}

static bool same_list(const char *got, const char *want) {
  char *w = rt_text_norm(want);
  bool eq = strcmp(got, w) == 0;
  free(w);
  return eq;
}

/* I/O/Q read as 1/0/0: "check:" rows compare so. */
static void vin_key(const char *s, char *out, size_t n) {
  size_t o = 0;
  for (; *s && o + 1 < n; s++) {
    char c = *s >= 'a' && *s <= 'z' ? (char)(*s - 32) : *s;
    out[o++] = c == 'I' ? '1' : (c == 'O' || c == 'Q') ? '0' : c;
  }
  out[o] = '\0';
}

/* ---- the sets --------------------------------------------------------- */

#define CAR_SLOTS "{\"car\":\"XW8ZZZ614BG012345\",\"car_kind\":\"vin\"}"
#define MORE_SLOTS "{\"car\":\"XW8ZZZ614BG012345\",\"car_kind\":\"vin\",\"parts\":[\"колодки\"]}"
#define RET_SLOTS "{\"campaign\":\"retention\"}"

static void set_cars(rt_bundle *b, const row *rows, size_t n) {
  score e2e = {0}, helper = {0};
  for (size_t i = 0; i < n; i++) {
    const row *r = &rows[i];
    bool check = !strncmp(r->want, "check:", 6);
    const char *want = check ? r->want + 6 : r->want;
    char wk[32], gk[32];
    vin_key(want, wk, sizeof wk);
    /* helper: the first car id */
    rt_text_car c;
    int nc = rt_text_cars(r->msg, &c, 1);
    bool ok;
    if (!strcmp(want, "-")) ok = nc == 0;
    else if (check)
#ifdef RT_TEXT_CAR_TYPO
      ok = nc == 1 && (c.typo || (c.north_american && !c.check_ok)) &&
           (vin_key(c.value, gk, sizeof gk), !strcmp(gk, wk));
#else
      ok = nc == 1 && c.north_american && !c.check_ok && !strcmp(c.value, want);
#endif
    else
      ok = nc == 1 && !strcmp(c.value, want)
#ifdef RT_TEXT_CAR_TYPO
           && !c.typo
#endif
          ;
    count(&helper, r->cls, ok);
    if (!ok) miss("helper", "cars", r, nc ? c.value : "-");
    /* end to end: lead.car */
    turn t;
    now_s = noon(r->today);
    if (!step(b, "lead", "car", "{}", r->msg, &t)) {
      count(&e2e, r->cls, false);
      miss("e2e", "cars", r, t.err);
      continue;
    }
    const char *car = sget(t.slots, "car"), *vc = sget(t.slots, "vin_check");
    if (!strcmp(want, "-")) ok = !car && !vc;
    else if (check) ok = vc && (vin_key(vc, gk, sizeof gk), !strcmp(gk, wk));
    else ok = car && !strcmp(car, want) && !vc;
    count(&e2e, r->cls, ok);
    if (!ok) miss("e2e", "cars", r, car ? car : vc ? vc : "-");
    turn_free(&t);
  }
  report("helper", "cars", &helper);
  report("e2e", "cars", &e2e);
}

static void set_phones(rt_bundle *b, const row *rows, size_t n) {
  score e2e = {0}, helper = {0};
  for (size_t i = 0; i < n; i++) {
    const row *r = &rows[i];
    char ph[20];
    bool found = rt_text_phone(r->msg, ph), ok;
    bool ask = !strcmp(r->want, "ask");
    if (ask) {
#ifdef RT_TEXT_PHONES
      char all[4][20];
      ok = rt_text_phones(r->msg, all, 4) >= 2;
#else
      ok = false;
#endif
    } else if (!strcmp(r->want, "-")) {
      ok = !found;
    } else {
      ok = found && !strcmp(ph, r->want);
    }
    count(&helper, r->cls, ok);
    if (!ok) miss("helper", "phones", r, found ? ph : "-");
    turn t;
    now_s = noon(r->today);
    if (!step(b, "lead", "parts", CAR_SLOTS, r->msg, &t)) {
      count(&e2e, r->cls, false);
      miss("e2e", "phones", r, t.err);
      continue;
    }
    const char *got = sget(t.res, "phone");
    if (ask) ok = !got && said(&t, NULL, "?") && said(&t, NULL, "номер");
    else if (!strcmp(r->want, "-")) ok = !got;
    else ok = got && !strcmp(got, r->want);
    count(&e2e, r->cls, ok);
    if (!ok) miss("e2e", "phones", r, got ? got : "-");
    turn_free(&t);
  }
  report("helper", "phones", &helper);
  report("e2e", "phones", &e2e);
}

static void set_dates(rt_bundle *b, const row *rows, size_t n) {
  score e2e = {0}, helper = {0};
  for (size_t i = 0; i < n; i++) {
    const row *r = &rows[i];
    now_s = noon(r->today);
    rt_text_date_opts o = RT_TEXT_DATE_OPTS_DEFAULT;
    o.default_hour = 11;
    rt_text_date_res d;
    char got[32] = "-";
    if (rt_text_date(r->msg, now_s, TZ, &o, &d)) day_of(d.at, got);
    bool ok = !strcmp(got, r->want);
    count(&helper, r->cls, ok);
    if (!ok) miss("helper", "dates", r, got);
    /* end to end: the reminder the retention flow sets, which the flow
     * moves into working hours (autoparts: Monday to Saturday) */
    char want[32];
    snprintf(want, sizeof want, "%s", r->want);
    if (strcmp(want, "-")) {
      int64_t w = noon(want);
      struct tm tm;
      rt_tz_local_tm(TZ, w, &tm);
      if (tm.tm_wday == 0) day_of(w + 86400, want);
    }
    turn t;
    if (!step(b, "retention", "answer", RET_SLOTS, r->msg, &t)) {
      count(&e2e, r->cls, false);
      miss("e2e", "dates", r, t.err);
      continue;
    }
    const char *oc = outcome(&t), *at = outcome_at(&t);
    char gd[16] = "-";
    if (oc && !strcmp(oc, "later") && at) snprintf(gd, sizeof gd, "%.10s", at);
    ok = !strcmp(gd, want);
    count(&e2e, r->cls, ok);
    if (!ok) miss("e2e", "dates", r, gd);
    turn_free(&t);
  }
  report("helper", "dates", &helper);
  report("e2e", "dates", &e2e);
}

static void set_retention(rt_bundle *b, const row *rows, size_t n) {
  score e2e = {0};
  for (size_t i = 0; i < n; i++) {
    const row *r = &rows[i];
    now_s = noon(r->today);
    turn t;
    if (!step(b, "retention", "answer", RET_SLOTS, r->msg, &t)) {
      count(&e2e, r->cls, false);
      miss("e2e", "retention", r, t.err);
      continue;
    }
    const char *oc = outcome(&t);
    const char *flow = sget(t.res, "flow"), *st = sget(t.res, "step");
    const char *got = oc ? oc
                      : (flow && !strcmp(flow, "lead")) ? "need"
                      : (st && !strcmp(st, "when")) ? "later"
                      : "ask";
    bool ok = !strcmp(got, r->want);
    count(&e2e, r->cls, ok);
    if (!ok) miss("e2e", "retention", r, got);
    turn_free(&t);
  }
  report("e2e", "retention", &e2e);
}

static void set_more(rt_bundle *b, const row *rows, size_t n) {
  score e2e = {0};
  for (size_t i = 0; i < n; i++) {
    const row *r = &rows[i];
    now_s = noon(r->today);
    turn t;
    if (!step(b, "lead", "more", MORE_SLOTS, r->msg, &t)) {
      count(&e2e, r->cls, false);
      miss("e2e", "more", r, t.err);
      continue;
    }
    char parts[1024];
    parts_of(&t, parts, sizeof parts);
    bool closed = json_array_size(json_object_get(t.res, "leads")) > 0;
    bool stopped = has_op(&t, "optout");
    const char *got;
    char buf[1100];
    if (stopped) got = "stop";
    else if (closed && said(&t, "managers", "Вопрос")) got = "close+question";
    else if (closed) got = "close";
    else if (!strcmp(parts, "колодки")) got = "ask";
    else if (!strncmp(parts, "колодки|", strlen("колодки|"))) {
      snprintf(buf, sizeof buf, "add:%s", parts + strlen("колодки|"));
      got = buf;
    } else if (parts[0] == '\0') got = "restart";
    else {
      snprintf(buf, sizeof buf, "parts:%s", parts);
      got = buf;
    }
    bool ok;
    if (!strncmp(r->want, "add:", 4)) ok = !strncmp(got, "add:", 4) && same_list(got + 4, r->want + 4);
    else ok = !strcmp(got, r->want);
    count(&e2e, r->cls, ok);
    if (!ok) miss("e2e", "more", r, got);
    turn_free(&t);
  }
  report("e2e", "more", &e2e);
}

static void set_parts(rt_bundle *b, const row *rows, size_t n) {
  score e2e = {0};
  for (size_t i = 0; i < n; i++) {
    const row *r = &rows[i];
    now_s = noon(r->today);
    turn t;
    if (!step(b, "lead", "parts", CAR_SLOTS, r->msg, &t)) {
      count(&e2e, r->cls, false);
      miss("e2e", "parts", r, t.err);
      continue;
    }
    char parts[1024];
    parts_of(&t, parts, sizeof parts);
    bool ok = same_list(parts, r->want);
    count(&e2e, r->cls, ok);
    if (!ok) miss("e2e", "parts", r, parts[0] ? parts : "-");
    turn_free(&t);
  }
  report("e2e", "parts", &e2e);
}

int main(int argc, char **argv) {
  int a = 1;
  if (a < argc && !strcmp(argv[a], "-v")) { verbose = true; a++; }
  const char *eval = a < argc ? argv[a++] : RT_SOURCE_DIR "/tests/eval";
  const char *dir = a < argc ? argv[a++] : RT_SOURCE_DIR "/scripts/vitaly";
  const char *shop_dir = a < argc ? argv[a++] : RT_SOURCE_DIR "/examples/autoparts";
  rt_config *cfg;
  char *err;
  if (rt_config_load(shop_dir, RT_SOURCE_DIR "/schema/shop.schema.json", &cfg, &err)) {
    fprintf(stderr, "%s\n", err);
    return 1;
  }
  /* The limits and shop view the engine gives its flows. */
  rt_bundle_opts o;
  json_t *view;
  rt_engine_bundle_opts(cfg, &o, &view);
  o.flows_dir = dir;
  o.host = &host;
  rt_bundle *b;
  if (rt_bundle_load(&o, &b, &err)) {
    fprintf(stderr, "%s\n", err);
    return 1;
  }
  static const struct { const char *file; void (*run)(rt_bundle *, const row *, size_t); } sets[] = {
    {"cars.tsv", set_cars},   {"phones.tsv", set_phones}, {"dates.tsv", set_dates},
    {"retention.tsv", set_retention}, {"more.tsv", set_more}, {"parts.tsv", set_parts},
  };
  int total = 0;
  for (size_t s = 0; s < RT_ARRAY_LEN(sets); s++) {
    char *path = rt_xasprintf("%s/%s", eval, sets[s].file);
    size_t n;
    row *rows = read_rows(path, &n);
    total += (int)n;
    sets[s].run(b, rows, n);
    for (size_t i = 0; i < n; i++) {
      free(rows[i].cls); free(rows[i].msg); free(rows[i].want); free(rows[i].today);
    }
    free(rows);
    free(path);
  }
  printf("eval.messages: %d\n", total);
  rt_bundle_unref(b);
  json_decref(view);
  rt_config_free(cfg);
  return 0;
}
