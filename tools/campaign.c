/* campaign.c -- retention and gift campaigns (see campaign.h).
 *
 * The slot planner keeps one counter per minute from now on (a uint16 per
 * minute: a year of minutes is 1 MB) and, per time zone, a cursor at the
 * first minute that may still have room for that zone. Slot k of a minute
 * is due at minute*60000 + k*(60000/rate), so the due times form an even
 * grid and no 60-second window holds more than rate of them. Minutes are
 * only ever filled, never freed, so a zone's cursor only moves forward and
 * planning N contacts costs O(N + minutes spanned). */
#include "campaign.h"
#include "store_tools.h"
#include "tz.h"
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MIN_MS 60000LL
#define DAY_MS 86400000LL
#define RECENT_MS (3 * DAY_MS)     /* activity that makes a conversation "open" */
#define MAX_MINUTES (5LL * 366 * 1440)
/* Candidates per write transaction: about 40 ms of work, so a running bot
 * is never kept from the write lock for long (see campaign.h). */
#define CHUNK_ROWS 2000
/* Pause after each chunk's commit: longer than the serving loop's retry
 * interval when it finds the store busy (engine.c), so a bot waiting for
 * the lock gets it before the next chunk takes it. */
#define CHUNK_PAUSE_US 12000

void rt_campaign_opts_default(rt_campaign_opts *o, const char *name, int64_t now_ms) {
  memset(o, 0, sizeof *o);
  o->name = name;
  o->now_ms = now_ms;
  o->tz = "Europe/Moscow";
  o->days_mask = 0x7E;   /* Monday..Saturday */
  o->from_min = 9 * 60;
  o->to_min = 19 * 60;
  o->idle_days = 90;
  o->cooldown_days = 30;
  o->rate_per_minute = 20;
  o->after_days = 3;
  o->max_age_days = 60;
  o->phone_channel = "console";
}

void rt_campaign_iso(int64_t ms, const char *tz, char *out, size_t n) {
  int64_t sec = rt_tz_floor_div(ms, 1000);
  int off = 0;
  if (!tz || rt_tz_offset(tz, sec, &off) != RT_OK) off = 0;
  time_t t = (time_t)(sec + off);
  struct tm tm;
  gmtime_r(&t, &tm);
  int a = off < 0 ? -off : off;
  snprintf(out, n, "%04d-%02d-%02dT%02d:%02d:%02d%c%02d:%02d", tm.tm_year + 1900,
           tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, off < 0 ? '-' : '+',
           a / 3600, a / 60 % 60);
}

/* ---- the slot planner ---- */

typedef struct {
  char name[64];
  int64_t cursor;          /* minute index (absolute) to look from */
  int64_t open, close;     /* current working window in ms; close 0: none yet */
} zone;

typedef struct {
  const rt_campaign_opts *o;
  int64_t now, base;       /* base: the minute of now */
  uint16_t *cnt;
  size_t n;
  int rate;
  int64_t step;
  zone *z;
  int nz, zcap;
  const char *dflt;
} planner;

static bool ensure(planner *p, int64_t idx) {
  if (idx < 0 || idx >= MAX_MINUTES) return false;
  if ((size_t)idx < p->n) return true;
  size_t n = p->n ? p->n : 4096;
  while (n <= (size_t)idx) n *= 2;
  p->cnt = rt_xrealloc(p->cnt, n * sizeof *p->cnt);
  memset(p->cnt + p->n, 0, (n - p->n) * sizeof *p->cnt);
  p->n = n;
  return true;
}

static void planner_init(planner *p, const rt_campaign_opts *o, const char *dflt) {
  memset(p, 0, sizeof *p);
  p->o = o;
  p->dflt = dflt;
  p->now = o->now_ms;
  p->base = rt_tz_floor_div(o->now_ms, MIN_MS);
  p->rate = o->rate_per_minute;
  p->step = MIN_MS / p->rate;
  ensure(p, 0);
  /* Slots of the current minute that are already in the past are used. */
  int64_t into = p->now - p->base * MIN_MS;
  int64_t past = (into + p->step - 1) / p->step;
  p->cnt[0] = (uint16_t)(past > p->rate ? p->rate : past);
}

static void planner_free(planner *p) {
  free(p->cnt);
  free(p->z);
}

/* Counts check-ins planned by others (earlier runs, or a run going on at
 * the same time, of any campaign) so the rate holds across runs: the
 * contact rows past *seen, which is the newest row already counted. Called
 * at the start of each chunk's transaction; rt_store_campaign_mark moves
 * *seen past this run's own rows before the chunk commits. */
static void planner_count(void *ud, int64_t at) {
  planner *p = ud;
  int64_t idx = rt_tz_floor_div(at, MIN_MS) - p->base;
  if (ensure(p, idx) && p->cnt[idx] < 65535) p->cnt[idx]++;
}

static zone *zone_get(planner *p, const char *tz) {
  if (!tz || !*tz || strlen(tz) >= sizeof p->z[0].name) tz = p->dflt;
  for (int i = 0; i < p->nz; i++)
    if (strcmp(p->z[i].name, tz) == 0) return &p->z[i];
  if (tz != p->dflt && !rt_tz_valid(tz)) return zone_get(p, p->dflt);
  if (p->nz == p->zcap) {
    p->zcap = p->zcap ? p->zcap * 2 : 8;
    p->z = rt_xrealloc(p->z, p->zcap * sizeof *p->z);
  }
  zone *z = &p->z[p->nz++];
  memset(z, 0, sizeof *z);
  strcpy(z->name, tz);
  z->cursor = p->base;
  return z;
}

static int64_t tz_local(const char *tz, int y, int m, int d, int min) {
  if (min >= 1440) {   /* "24:00": the next midnight (rt_tz_make normalises day + 1) */
    d++;
    min = 0;
  }
  return rt_tz_make(tz, y, m, d, min / 60, min % 60) * 1000;
}

/* The first working window [open, close) of zone z that ends after t. */
static int next_window(planner *p, zone *z, int64_t t) {
  const rt_campaign_opts *o = p->o;
  struct tm lt;
  if (rt_tz_local_tm(z->name, rt_tz_floor_div(t, 1000), &lt) != RT_OK) return RT_EINVAL;
  int64_t day0 = rt_tz_days_from_civil(lt.tm_year + 1900, lt.tm_mon + 1, lt.tm_mday);
  for (int i = 0; i < 9; i++) {
    int64_t dn = day0 + i;
    int wd = (int)(((dn % 7) + 7 + 3) % 7) + 1;   /* 1970-01-01 was a Thursday */
    if (!(o->days_mask & (1u << wd))) continue;
    int64_t y;
    int m, d;
    rt_tz_civil_from_days(dn, &y, &m, &d);
    int64_t open = tz_local(z->name, (int)y, m, d, o->from_min);
    int64_t close = tz_local(z->name, (int)y, m, d, o->to_min);
    if (close > t && close > open) {
      z->open = open;
      z->close = close;
      return RT_OK;
    }
  }
  return RT_EINVAL;
}

/* Takes the earliest free slot inside z's working hours. */
static int take_slot(planner *p, zone *z, int64_t *due) {
  int64_t m = z->cursor > p->base ? z->cursor : p->base;
  for (;;) {
    int64_t t = m * MIN_MS;
    if (t < p->now) t = p->now;
    if (z->close == 0 || t >= z->close) {
      if (next_window(p, z, t) != RT_OK) return RT_EINVAL;
    }
    int64_t first = rt_tz_floor_div(z->open + MIN_MS - 1, MIN_MS);
    int64_t last = rt_tz_floor_div(z->close, MIN_MS) - 1;   /* whole minutes before close */
    if (m < first) m = first;
    for (; m <= last; m++) {
      int64_t idx = m - p->base;
      if (!ensure(p, idx)) return RT_ELIMIT;
      if (p->cnt[idx] < p->rate) {
        *due = m * MIN_MS + p->cnt[idx] * p->step;
        p->cnt[idx]++;
        z->cursor = m;
        return RT_OK;
      }
    }
    /* The window is full: go on from its end (which also moves past a
     * window too short to hold a whole minute). */
    if (m * MIN_MS < z->close) m = rt_tz_floor_div(z->close + MIN_MS - 1, MIN_MS);
    if (m - p->base >= MAX_MINUTES) return RT_ELIMIT;
    z->close = 0;
    z->cursor = m;
  }
}

/* ---- addresses and writes ---- */

typedef struct {
  rt_store *s;
  rt_store_campaign *q;
  const rt_campaign_opts *o;
  rt_campaign_report *rep;
  planner pl;
  char **err;
  /* where the next chunk starts: after this phone (retention), after this
   * (date, order id) (gifts) */
  char *last_phone, *last_order;
  int64_t last_date;
  int64_t read;      /* candidates read by the current chunk */
} run_ctx;

static int store_fail(run_ctx *c, int rc, const char *what) {
  if (!*c->err) *c->err = rt_xasprintf("campaign %s: %s: %s", c->o->name, what, rt_store_errmsg(c->s));
  return rc;
}

static const char *nonempty(const char *v) { return v && *v ? v : NULL; }

static void note_due(rt_campaign_report *rep, int64_t due) {
  if (!rep->first_at || due < rep->first_at) rep->first_at = due;
  if (due > rep->last_at) rep->last_at = due;
}

static const char *const default_channels[] = {"telegram", "whatsapp", NULL};

/* Counts an unreachable contact under its reason, and keeps the first few
 * for the report. */
static void note_unreachable(rt_campaign_report *rep, const char *phone, const char *reason) {
  rep->skipped.unreachable++;
  int i = 0;
  while (i < rep->nreasons && strcmp(rep->reasons[i].reason, reason) != 0) i++;
  if (i == rep->nreasons && i < RT_CAMPAIGN_MAX_REASONS) {
    snprintf(rep->reasons[i].reason, sizeof rep->reasons[i].reason, "%s", reason);
    rep->nreasons++;
  }
  if (i < rep->nreasons) rep->reasons[i].count++;
  if (rep->nunreachable < RT_CAMPAIGN_MAX_UNREACHABLE) {
    snprintf(rep->unreachable[rep->nunreachable].phone, sizeof rep->unreachable[0].phone, "%s",
             phone ? phone : "");
    snprintf(rep->unreachable[rep->nunreachable].reason, sizeof rep->unreachable[0].reason,
             "%s", reason);
    rep->nunreachable++;
  }
}

/* Channels that can write first only to a chat that wrote to them: a
 * Telegram bot cannot start a conversation, so an imported telegram_id the
 * bot has never seen is not tried (Telegram would answer 400/403). */
static bool needs_seen(const char *channel) { return strcmp(channel, "telegram") == 0; }

/* Picks the channel and chat of a contact: a reachable address (the
 * newest) on the first of the campaign's channels that has one, then the phone itself on
 * phone_channel (WhatsApp chat ids are the digits without '+'; the console
 * keys by E.164) unless that address is blocked. Returns the channel and
 * fills chat (64 bytes), or NULL with the reason in *why: the reason of a
 * blocked address, "not_seen" (a Telegram chat the bot has never seen), or
 * "no_address". */
static const char *pick_chat(const run_ctx *c, const char *phone, const rt_store_addr *a, int n,
                             char *chat, const char **why) {
  *why = NULL;
  const char *const *chs = c->o->channels ? c->o->channels : default_channels;
  for (int k = 0; chs[k]; k++) {
    int best = -1;
    for (int i = 0; i < n; i++) {
      if (strcmp(a[i].channel, chs[k]) != 0) continue;
      if (strcmp(a[i].status, "reachable") != 0) {
        if (!*why) *why = a[i].reason ? a[i].reason : a[i].status;
        continue;
      }
      if (!a[i].seen && needs_seen(a[i].channel)) {
        if (!*why) *why = "not_seen";
        continue;
      }
      if (best < 0 || a[i].updated_at > a[best].updated_at) best = i;
    }
    if (best >= 0) {
      snprintf(chat, 64, "%s", a[best].address);
      return chs[k];
    }
  }
  if (!phone || !*phone || !c->o->phone_channel || !*c->o->phone_channel) {
    if (!*why) *why = "no_address";
    return NULL;
  }
  const char *ch = c->o->phone_channel;
  snprintf(chat, 64, "%s", strcmp(ch, "whatsapp") == 0 && phone[0] == '+' ? phone + 1 : phone);
  for (int i = 0; i < n; i++) {
    if (strcmp(a[i].channel, ch) == 0 && strcmp(a[i].address, chat) == 0 &&
        strcmp(a[i].status, "reachable") != 0) {
      if (!*why) *why = a[i].reason ? a[i].reason : a[i].status;
      return NULL;
    }
  }
  return ch;
}

/* Writes one scheduled contact: conversation, timer, campaign_contacts. */
static int schedule(run_ctx *c, const char *channel, const char *chat, const char *phone,
                    const char *ref, int64_t due, const char *timer, const char *step,
                    const char *data) {
  rt_campaign_contact k = {.campaign = c->o->name, .channel = channel, .address = chat,
                           .phone = phone, .ref = ref, .due = due, .now = c->o->now_ms,
                           .timer = timer, .step = step, .data = data};
  int rc = rt_store_campaign_schedule(c->q, &k);
  if (rc != RT_OK) return store_fail(c, rc, "schedule");
  c->rep->scheduled++;
  return RT_OK;
}

/* ---- retention ---- */

#define MAX_ADDRS 16   /* per customer; more are not looked at */

/* A candidate of the chunk, read before its addresses. */
typedef struct {
  char *phone, *tz;
  int state;
  int sev;                        /* of the conversations of its addresses */
  size_t first;                   /* its addresses: a[first .. first + na) of the chunk */
  int na;
} ret_cand;

typedef struct {
  run_ctx *c;
  ret_cand *v;
  size_t n, cap, at;              /* at: the candidate the address rows have reached */
  rt_store_addr *a;               /* fields owned */
  size_t na, capa;
} ret_chunk;

static bool ret_read(void *ud, const rt_store_row *r) {
  ret_chunk *k = ud;
  if (k->n == k->cap) {
    k->cap = k->cap ? k->cap * 2 : 256;
    k->v = rt_xrealloc(k->v, k->cap * sizeof *k->v);
  }
  const char *ph = rt_store_row_text(r, RT_RET_PHONE), *tz = rt_store_row_text(r, RT_RET_TZ);
  k->v[k->n++] = (ret_cand){.phone = rt_xstrdup(ph ? ph : ""), .tz = tz ? rt_xstrdup(tz) : NULL,
                            .state = (int)rt_store_row_int(r, RT_RET_STATE)};
  return true;
}

static char *dup_or_null(const char *v) { return v ? rt_xstrdup(v) : NULL; }

/* Address rows come in phone order, as the candidates: a merge. */
static bool ret_addr(void *ud, const rt_store_row *r) {
  ret_chunk *k = ud;
  const char *ph = rt_store_row_text(r, RT_RA_PHONE);
  if (!ph) return true;
  while (k->at < k->n && strcmp(k->v[k->at].phone, ph) < 0) k->at++;
  if (k->at == k->n) return false;
  ret_cand *x = &k->v[k->at];
  if (strcmp(x->phone, ph) != 0) return true;   /* not a candidate (not idle) */
  int sev = (int)rt_store_row_int(r, RT_RA_SEV);
  if (sev > x->sev) x->sev = sev;
  const char *ch = rt_store_row_text(r, RT_RA_CHANNEL), *ad = rt_store_row_text(r, RT_RA_ADDRESS);
  if (x->na >= MAX_ADDRS || !ch || !ad) return true;
  if (k->na == k->capa) {
    k->capa = k->capa ? k->capa * 2 : 256;
    k->a = rt_xrealloc(k->a, k->capa * sizeof *k->a);
  }
  if (x->na == 0) x->first = k->na;
  const char *st = rt_store_row_text(r, RT_RA_STATUS);
  k->a[k->na++] = (rt_store_addr){rt_xstrdup(ch), rt_xstrdup(ad), rt_xstrdup(st ? st : "reachable"),
                                  dup_or_null(rt_store_row_text(r, RT_RA_REASON)),
                                  rt_store_row_int(r, RT_RA_UPDATED),
                                  rt_store_row_int(r, RT_RA_SEEN) != 0};
  x->na++;
  return true;
}

static int retention_one(run_ctx *c, ret_cand *x, const rt_store_addr *addrs) {
  rt_campaign_report *rep = c->rep;
  /* As one severity over every linked conversation: blocked anywhere wins,
   * then open (opted out, the customer's flag and cooldown come first). */
  int state = x->state;
  if ((state == RT_CAND_FREE || state == RT_CAND_OPEN) && x->sev == 2) state = RT_CAND_BLOCKED;
  else if (state == RT_CAND_FREE && x->sev == 1) state = RT_CAND_OPEN;
  switch (state) {
  case RT_CAND_OPTED_OUT: rep->skipped.opted_out++; return RT_OK;
  case RT_CAND_BLOCKED: rep->skipped.blocked++; return RT_OK;
  case RT_CAND_COOLDOWN: rep->skipped.cooldown++; return RT_OK;
  case RT_CAND_OPEN: rep->skipped.open_conversation++; return RT_OK;
  default: break;
  }
  const char *phone = nonempty(x->phone);
  char chat[64];
  const char *why;
  const char *channel = pick_chat(c, phone, addrs + x->first, x->na, chat, &why);
  if (!channel) {
    if (!phone) rep->skipped.no_channel++;
    else note_unreachable(rep, phone, why);
    return RT_OK;
  }
  int64_t due;
  int rc;
  if ((rc = take_slot(&c->pl, zone_get(&c->pl, nonempty(x->tz)), &due)) != RT_OK) {
    *c->err = rt_xasprintf("campaign retention: no working time left in the next 5 years");
    return rc;
  }
  rep->selected++;
  note_due(rep, due);
  if (c->o->dry_run) return RT_OK;
  return schedule(c, channel, chat, phone, "", due, "campaign:retention", "retention.checkin",
                  "{\"campaign\":\"retention\"}");
}

static int run_retention(run_ctx *c) {
  const rt_campaign_opts *o = c->o;
  ret_chunk k = {.c = c};
  int64_t recent = o->now_ms - RECENT_MS;
  int ret = rt_store_campaign_retention(c->q, o->now_ms - (int64_t)o->idle_days * DAY_MS,
                                        o->now_ms - (int64_t)o->cooldown_days * DAY_MS, recent,
                                        c->last_phone, CHUNK_ROWS, ret_read, &k);
  if (ret != RT_OK) ret = store_fail(c, ret, "select");
  if (ret == RT_OK && k.n > 0) {
    ret = rt_store_campaign_addresses(c->q, c->last_phone, k.v[k.n - 1].phone, recent, ret_addr, &k);
    if (ret != RT_OK) ret = store_fail(c, ret, "addresses");
  }
  c->rep->candidates += (int64_t)k.n;
  c->read = (int64_t)k.n;
  if (k.n > 0) {
    free(c->last_phone);
    c->last_phone = rt_xstrdup(k.v[k.n - 1].phone);
  }
  for (size_t i = 0; i < k.n && ret == RT_OK; i++) ret = retention_one(c, &k.v[i], k.a);
  for (size_t i = 0; i < k.n; i++) {
    free(k.v[i].phone);
    free(k.v[i].tz);
  }
  for (size_t j = 0; j < k.na; j++) {
    free((char *)k.a[j].channel);
    free((char *)k.a[j].address);
    free((char *)k.a[j].status);
    free((char *)k.a[j].reason);
  }
  free(k.v);
  free(k.a);
  return ret;
}

/* ---- gifts ---- */

#define G_NCOL (RT_GIFT_DATE + 1)

typedef struct {
  char *v[G_NCOL];   /* text columns, owned; NULL when empty */
  int opt_b, blk_b, opt_r, blk_r, done;
} gift_row;

typedef struct {
  run_ctx *c;
  gift_row *rows;
  size_t n, cap;
} gift_read;

static int severity(run_ctx *c, const char *phone, int *out) {
  int rc = rt_store_campaign_severity(c->q, phone, c->o->now_ms - RECENT_MS, out);
  return rc == RT_OK ? RT_OK : store_fail(c, rc, "conversations");
}

static int gift_one(run_ctx *c, gift_row *g) {
  rt_campaign_report *rep = c->rep;
  char **v = g->v;
  if (g->done) { rep->skipped.cooldown++; return RT_OK; }
  int sev_r = 0, sev_b = 0, rc;
  bool to_r = false;
  if (v[RT_GIFT_RPHONE] && (!v[RT_GIFT_BUYER] || strcmp(v[RT_GIFT_RPHONE], v[RT_GIFT_BUYER]) != 0) &&
      !g->opt_r && !g->blk_r) {
    if ((rc = severity(c, v[RT_GIFT_RPHONE], &sev_r)) != RT_OK) return rc;
    to_r = sev_r != 2;
  }
  const char *phone, *tz;
  char *addrs;
  int sev;
  if (to_r) {
    phone = v[RT_GIFT_RPHONE];
    addrs = v[RT_GIFT_R_ADDRS];
    tz = v[RT_GIFT_R_TZ] ? v[RT_GIFT_R_TZ] : v[RT_GIFT_B_TZ];
    sev = sev_r;
  } else {
    if (g->opt_b) { rep->skipped.opted_out++; return RT_OK; }
    if (g->blk_b) { rep->skipped.blocked++; return RT_OK; }
    phone = v[RT_GIFT_BUYER];
    addrs = v[RT_GIFT_B_ADDRS];
    tz = v[RT_GIFT_B_TZ];
    if ((rc = severity(c, phone, &sev_b)) != RT_OK) return rc;
    sev = sev_b;
  }
  if (sev == 2) { rep->skipped.blocked++; return RT_OK; }
  if (sev == 1) { rep->skipped.open_conversation++; return RT_OK; }
  char chat[64];
  const char *why;
  rt_store_addr a[MAX_ADDRS];
  int na = rt_store_addrs_split(addrs, a, MAX_ADDRS);
  const char *channel = pick_chat(c, phone, a, na, chat, &why);
  if (!channel) {
    if (!phone) rep->skipped.no_channel++;
    else note_unreachable(rep, phone, why);
    return RT_OK;
  }
  int64_t due;
  if ((rc = take_slot(&c->pl, zone_get(&c->pl, tz), &due)) != RT_OK) {
    *c->err = rt_xasprintf("campaign gifts: no working time left in the next 5 years");
    return rc;
  }
  rep->selected++;
  note_due(rep, due);
  if (c->o->dry_run) return RT_OK;
  json_t *data = json_pack("{s:s, s:s, s:s?, s:s?, s:b, s:s?}", "campaign", "gifts",
                           "order_id", v[RT_GIFT_ORDER], "product", v[RT_GIFT_PRODUCT],
                           "category", v[RT_GIFT_CATEGORY], "recipient", to_r, "recipient_name",
                           v[RT_GIFT_RNAME]);
  char *text = json_dumps(data, JSON_COMPACT);
  json_decref(data);
  char *timer = rt_xasprintf("campaign:gifts:%s", v[RT_GIFT_ORDER]);
  rc = schedule(c, channel, chat, phone, v[RT_GIFT_ORDER], due, timer, "gifts.checkin", text);
  free(timer);
  free(text);
  if (rc != RT_OK) return rc;
  rc = rt_store_campaign_order_done(c->q, v[RT_GIFT_ORDER], due);
  return rc == RT_OK ? RT_OK : store_fail(c, rc, "orders");
}

static bool gift_read_row(void *ud, const rt_store_row *r) {
  gift_read *x = ud;
  if (x->n == x->cap) {
    x->cap = x->cap ? x->cap * 2 : 64;
    x->rows = rt_xrealloc(x->rows, x->cap * sizeof *x->rows);
  }
  gift_row *g = &x->rows[x->n++];
  memset(g, 0, sizeof *g);
  for (int i = 0; i < G_NCOL; i++) {
    if (i == RT_GIFT_B_OPT || i == RT_GIFT_B_BLK || i == RT_GIFT_R_OPT || i == RT_GIFT_R_BLK ||
        i == RT_GIFT_DONE || i == RT_GIFT_DATE)
      continue;
    const char *t = nonempty(rt_store_row_text(r, i));
    g->v[i] = t ? rt_xstrdup(t) : NULL;
  }
  g->opt_b = (int)rt_store_row_int(r, RT_GIFT_B_OPT);
  g->blk_b = (int)rt_store_row_int(r, RT_GIFT_B_BLK);
  g->opt_r = (int)rt_store_row_int(r, RT_GIFT_R_OPT);
  g->blk_r = (int)rt_store_row_int(r, RT_GIFT_R_BLK);
  g->done = (int)rt_store_row_int(r, RT_GIFT_DONE);
  x->c->last_date = rt_store_row_int(r, RT_GIFT_DATE);
  free(x->c->last_order);
  x->c->last_order = rt_xstrdup(g->v[RT_GIFT_ORDER] ? g->v[RT_GIFT_ORDER] : "");
  return true;
}

static int run_gifts(run_ctx *c) {
  const rt_campaign_opts *o = c->o;
  int max_age = o->max_age_days > 0 ? o->max_age_days : 60;
  /* The rows of a chunk are read first and written after: the writes
   * update orders, the table the query walks. */
  gift_read x = {.c = c};
  int ret = rt_store_campaign_gifts(c->q, o->now_ms - (int64_t)o->after_days * DAY_MS,
                                    o->now_ms - (int64_t)max_age * DAY_MS, c->last_date,
                                    c->last_order, CHUNK_ROWS, gift_read_row, &x);
  if (ret != RT_OK) ret = store_fail(c, ret, "select");
  c->rep->candidates += (int64_t)x.n;
  c->read = (int64_t)x.n;
  for (size_t i = 0; i < x.n && ret == RT_OK; i++) ret = gift_one(c, &x.rows[i]);
  for (size_t i = 0; i < x.n; i++)
    for (int k = 0; k < G_NCOL; k++) free(x.rows[i].v[k]);
  free(x.rows);
  return ret;
}

/* ---- entry ---- */

int rt_campaign_run(rt_store *s, const rt_campaign_opts *o, rt_campaign_report *rep,
                    char **err) {
  memset(rep, 0, sizeof *rep);
  *err = NULL;
  const char *tz = o->tz && *o->tz ? o->tz : "Europe/Moscow";
  snprintf(rep->campaign, sizeof rep->campaign, "%s", o->name ? o->name : "");
  snprintf(rep->tz, sizeof rep->tz, "%s", tz);
  rep->dry_run = o->dry_run;
  bool retention = o->name && strcmp(o->name, "retention") == 0;
  bool gifts = o->name && strcmp(o->name, "gifts") == 0;
  if (!retention && !gifts) {
    *err = rt_xasprintf("unknown campaign \"%s\" (retention or gifts)", o->name ? o->name : "");
    return RT_EINVAL;
  }
  if (!(o->days_mask & 0xFE)) {
    *err = rt_xstrdup("campaign: no working days");
    return RT_EINVAL;
  }
  if (o->from_min < 0 || o->to_min > 1440 || o->from_min >= o->to_min) {
    *err = rt_xasprintf("campaign: bad working hours %02d:%02d-%02d:%02d", o->from_min / 60,
                        o->from_min % 60, o->to_min / 60, o->to_min % 60);
    return RT_EINVAL;
  }
  if (o->rate_per_minute < 1 || o->rate_per_minute > 60000) {
    *err = rt_xasprintf("campaign: rate_per_minute %d out of range 1..60000", o->rate_per_minute);
    return RT_EINVAL;
  }
  if (!rt_tz_valid(tz)) {
    *err = rt_xasprintf("campaign: unknown time zone \"%s\"", tz);
    return RT_EINVAL;
  }
  run_ctx c = {.s = s, .o = o, .rep = rep, .err = err};
  int ret = rt_store_campaign_new(s, &c.q, err);
  if (ret != RT_OK) return ret;
  planner_init(&c.pl, o, tz);
  /* A dry run reads in one transaction, for a consistent picture; it takes
   * no lock a writer waits for (WAL). A real run works in chunks of
   * CHUNK_ROWS candidates, each in its own BEGIN IMMEDIATE transaction that
   * checks its candidates afresh -- against contacts another run committed
   * meanwhile too -- and writes them, so two runs at once contact nobody
   * twice and a kill leaves whole chunks only. */
  if (o->dry_run && (ret = rt_store_read_begin(s)) != RT_OK) ret = store_fail(&c, ret, "begin");
  bool in_tx = o->dry_run && ret == RT_OK;
  int64_t seen = 0, committed = 0;
  for (int chunk = 0; ret == RT_OK; chunk++) {
    if (!o->dry_run) {
      if (chunk > 0) usleep(CHUNK_PAUSE_US);
      if ((ret = rt_store_begin(s)) != RT_OK) {
        if (!*err) *err = rt_xasprintf("campaign %s: %s", o->name, rt_store_errmsg(s));
        break;
      }
      in_tx = true;
    }
    if ((ret = rt_store_campaign_seed(c.q, c.pl.now, &seen, planner_count, &c.pl)) != RT_OK)
      ret = store_fail(&c, ret, "campaign_contacts");
    c.read = 0;
    if (ret == RT_OK) ret = retention ? run_retention(&c) : run_gifts(&c);
    if (ret == RT_OK && !o->dry_run && (ret = rt_store_campaign_mark(c.q, &seen)) != RT_OK)
      ret = store_fail(&c, ret, "campaign_contacts");
    if (ret == RT_OK && !o->dry_run) {
      in_tx = false;
      if ((ret = rt_store_commit(s)) != RT_OK)
        *err = rt_xasprintf("campaign %s: commit: %s", o->name, rt_store_errmsg(s));
      else
        committed = rep->scheduled;
    }
    if (c.read < CHUNK_ROWS) break;
  }
  if (in_tx) {
    if (o->dry_run) rt_store_read_end(s);
    else rt_store_rollback(s);
  }
  /* What earlier chunks committed stays scheduled; a later run goes on
   * from there (the cooldown rule skips whoever was contacted). */
  if (ret != RT_OK && !o->dry_run) rep->scheduled = committed;
  rt_store_campaign_free(c.q);
  free(c.last_phone);
  free(c.last_order);
  planner_free(&c.pl);
  return ret;
}

char *rt_campaign_report_json(const rt_campaign_report *rep) {
  char a[40], b[40];
  json_t *first = json_null(), *last = json_null();
  if (rep->first_at) {
    rt_campaign_iso(rep->first_at, rep->tz, a, sizeof a);
    rt_campaign_iso(rep->last_at, rep->tz, b, sizeof b);
    first = json_string(a);
    last = json_string(b);
  }
  json_t *j = json_pack("{s:s, s:I, s:I, s:I, s:{s:I, s:I, s:I, s:I, s:I}, s:o, s:o, s:b}",
                        "campaign", rep->campaign, "candidates", (json_int_t)rep->candidates,
                        "selected", (json_int_t)rep->selected, "scheduled",
                        (json_int_t)rep->scheduled, "skipped",
                        "opted_out", (json_int_t)rep->skipped.opted_out,
                        "blocked", (json_int_t)rep->skipped.blocked,
                        "open_conversation", (json_int_t)rep->skipped.open_conversation,
                        "cooldown", (json_int_t)rep->skipped.cooldown,
                        "no_channel", (json_int_t)rep->skipped.no_channel,
                        "first_at", first, "last_at", last, "dry_run", rep->dry_run);
  json_object_set_new(json_object_get(j, "skipped"), "unreachable",
                      json_integer((json_int_t)rep->skipped.unreachable));
  json_t *reasons = json_object(), *who = json_array();
  for (int i = 0; i < rep->nreasons; i++)
    json_object_set_new(reasons, rep->reasons[i].reason, json_integer((json_int_t)rep->reasons[i].count));
  for (int i = 0; i < rep->nunreachable; i++)
    json_array_append_new(who, json_pack("{s:s, s:s}", "phone", rep->unreachable[i].phone,
                                         "reason", rep->unreachable[i].reason));
  json_t *u = json_pack("{s:o, s:o}", "reasons", reasons, "customers", who);
  /* after "skipped", before the times */
  json_t *ordered = json_object();
  const char *key;
  json_t *val;
  json_object_foreach(j, key, val) {
    json_object_set(ordered, key, val);
    if (strcmp(key, "skipped") == 0) json_object_set_new(ordered, "unreachable", u);
  }
  json_decref(j);
  j = ordered;
  char *out = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
  json_decref(j);
  char *r = rt_xstrdup(out);
  free(out);
  return r;
}

int rt_campaign_checkin(rt_store *s, const char *name, const char *phone, const char *channel,
                        const char *chat, int64_t now, char **err) {
  *err = NULL;
  bool gifts = name && strcmp(name, "gifts") == 0;
  if (!gifts && !(name && strcmp(name, "retention") == 0)) {
    *err = rt_xasprintf("unknown campaign \"%s\" (retention or gifts)", name ? name : "");
    return RT_EINVAL;
  }
  int known = rt_store_customer_known(s, phone);
  if (known < 0) {
    *err = rt_xasprintf("campaign %s: %s", name, rt_store_errmsg(s));
    return RT_EIO;
  }
  if (!known) {
    *err = rt_xasprintf("campaign %s: no customer with the phone %s in the store (import the "
                        "customers first)", name, phone);
    return RT_ENOENT;
  }
  rt_store_campaign *q;
  int rc = rt_store_campaign_new(s, &q, err);
  if (rc != RT_OK) return rc;
  char *order = gifts ? rt_xasprintf("test-%s", phone) : NULL;
  char *timer = gifts ? rt_xasprintf("campaign:gifts:%s", order) : rt_xstrdup("campaign:retention");
  json_t *d = gifts ? json_pack("{s:s, s:s}", "campaign", "gifts", "order_id", order)
                    : json_pack("{s:s}", "campaign", "retention");
  char *data = json_dumps(d, JSON_COMPACT);
  json_decref(d);
  rt_campaign_contact k = {.campaign = name, .channel = channel, .address = chat, .phone = phone,
                           .ref = gifts ? order : "", .due = now, .now = now, .timer = timer,
                           .step = gifts ? "gifts.checkin" : "retention.checkin", .data = data};
  rc = rt_store_begin(s);
  if (rc == RT_OK) rc = rt_store_campaign_schedule(q, &k);
  if (rc == RT_OK) rc = rt_store_commit(s);
  else rt_store_rollback(s);
  if (rc != RT_OK) *err = rt_xasprintf("campaign %s: %s", name, rt_store_errmsg(s));
  rt_store_campaign_free(q);
  free(data);
  free(timer);
  free(order);
  return rc;
}
