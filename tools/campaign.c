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
#include "tz.h"
#include <jansson.h>
#include <sqlite3.h>
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

/* *seen = the newest contact row, counted already (see planner_seed). */
static int planner_mark(sqlite3 *db, int64_t *seen) {
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(db, "SELECT COALESCE(MAX(rowid), 0) FROM campaign_contacts", -1, &st,
                         NULL) != SQLITE_OK)
    return sqlite3_errcode(db);
  int rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) *seen = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  return rc == SQLITE_ROW ? SQLITE_OK : rc;
}

static void planner_free(planner *p) {
  free(p->cnt);
  free(p->z);
}

/* Counts check-ins planned by others (earlier runs, or a run going on at
 * the same time, of any campaign) so the rate holds across runs: the rows
 * of campaign_contacts past *seen, which is the newest rowid already
 * counted. Called at the start of each chunk's transaction; planner_mark
 * moves *seen past this run's own rows before the chunk commits. Contact
 * rows are never deleted, so rowids only grow. */
static int planner_seed(planner *p, sqlite3 *db, int64_t *seen) {
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(db, "SELECT rowid, at FROM campaign_contacts WHERE rowid > ?2 "
                         "AND at >= ?1", -1, &st, NULL) != SQLITE_OK)
    return sqlite3_errcode(db);
  sqlite3_bind_int64(st, 1, p->now);
  sqlite3_bind_int64(st, 2, *seen);
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    int64_t idx = rt_tz_floor_div(sqlite3_column_int64(st, 1), MIN_MS) - p->base;
    if (ensure(p, idx) && p->cnt[idx] < 65535) p->cnt[idx]++;
  }
  sqlite3_finalize(st);
  if (rc != SQLITE_DONE) return rc;
  return planner_mark(db, seen);
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

/* ---- SQL ---- */

/* A linked conversation that the bot should not interrupt; ?3 is now - 3d. */
#define OPEN_EXPR                                                              \
  "(v.mode IN ('human','handoff','manager') OR v.last_in_at > ?3 OR "          \
  "(v.updated_at > ?3 AND v.step IS NOT NULL AND v.step <> 'done') OR "        \
  "EXISTS (SELECT 1 FROM timers t WHERE t.conv_id = v.id))"
/* 2 blocked, 1 open, 0 free, over the conversations linked to a customer. */
#define SEVERITY(phone, tg, wa)                                                \
  "(SELECT COALESCE(MAX(CASE WHEN v.mode = 'blocked' THEN 2 WHEN " OPEN_EXPR   \
  " THEN 1 ELSE 0 END), 0) FROM conversations v WHERE v.phone = " phone        \
  " OR (v.channel = 'telegram' AND v.chat_id = " tg ")"                        \
  " OR (v.channel = 'whatsapp' AND v.chat_id = " wa "))"

enum { R_FREE, R_OPTED_OUT, R_BLOCKED, R_COOLDOWN, R_OPEN };

static const char *retention_sql =
  "SELECT c.phone, c.telegram_id, c.whatsapp, c.timezone, "
  "CASE WHEN c.opted_out THEN 1 WHEN c.blocked THEN 2 "
  "WHEN EXISTS (SELECT 1 FROM campaign_contacts k WHERE k.phone = c.phone "
  "AND k.campaign = 'retention' AND k.at > ?2) THEN 3 "
  "ELSE CASE " SEVERITY("c.phone", "c.telegram_id", "c.whatsapp")
  " WHEN 2 THEN 2 WHEN 1 THEN 4 ELSE 0 END END "
  /* A plain scan in phone order (see 002_campaigns.sql), a chunk at a time
   * from the phone after the last one read. */
  "FROM customers c NOT INDEXED WHERE c.last_purchase <= ?1 AND c.phone > ?4 "
  "ORDER BY c.phone LIMIT ?5";

static const char *severity_sql = "SELECT " SEVERITY("?1", "?2", "?4");

static const char *gifts_sql =
  "SELECT o.order_id, o.phone, o.product, o.category, o.recipient_name, o.recipient_phone, "
  "b.telegram_id, b.whatsapp, b.timezone, COALESCE(b.opted_out, 0), COALESCE(b.blocked, 0), "
  "r.telegram_id, r.whatsapp, r.timezone, COALESCE(r.opted_out, 0), COALESCE(r.blocked, 0), "
  "EXISTS (SELECT 1 FROM campaign_contacts k WHERE k.campaign = 'gifts' "
  "AND k.phone IN (o.phone, o.recipient_phone) AND k.ref = o.order_id), o.date "
  "FROM orders o LEFT JOIN customers b ON b.phone = o.phone "
  "LEFT JOIN customers r ON r.phone = o.recipient_phone "
  "WHERE o.gift = 1 AND o.followup_at IS NULL AND o.date <= ?1 AND o.date >= ?2 "
  "AND (o.date > ?3 OR (o.date = ?3 AND o.order_id > ?4)) "
  "ORDER BY o.date, o.order_id LIMIT ?5";

enum { W_CONV, W_CONTACT, W_ORDER, W_COUNT };
static const char *write_sql[W_COUNT] = {
  /* Creating the conversation does not touch updated_at of an existing one,
   * and an already known phone is kept. */
  [W_CONV] = "INSERT INTO conversations (channel, chat_id, phone, created_at, updated_at) "
             "VALUES (?1, ?2, ?3, ?4, ?4) ON CONFLICT (channel, chat_id) DO UPDATE "
             "SET phone = COALESCE(conversations.phone, excluded.phone) RETURNING id",
  [W_CONTACT] = "INSERT OR IGNORE INTO campaign_contacts (campaign, phone, ref, at, conv_id) "
                "VALUES (?1, ?2, ?3, ?4, ?5)",
  [W_ORDER] = "UPDATE orders SET followup_at = ?2 WHERE order_id = ?1",
};

typedef struct {
  rt_store *s;
  sqlite3 *db;
  const rt_campaign_opts *o;
  rt_campaign_report *rep;
  planner pl;
  sqlite3_stmt *w[W_COUNT];
  sqlite3_stmt *sev;
  char **err;
  /* where the next chunk starts: after this phone (retention), after this
   * (date, order id) (gifts) */
  char *last_phone, *last_order;
  int64_t last_date;
  int64_t read;      /* candidates read by the current chunk */
} run_ctx;

static int sql_fail(run_ctx *c, const char *what) {
  int code = sqlite3_errcode(c->db) & 0xff;
  if (!*c->err) *c->err = rt_xasprintf("campaign %s: %s: %s", c->o->name, what, sqlite3_errmsg(c->db));
  return code == SQLITE_FULL ? RT_EFULL : code == SQLITE_BUSY ? RT_EBUSY
       : code == SQLITE_READONLY ? RT_EROFS : RT_EIO;
}

static void bind_opt(sqlite3_stmt *st, int i, const char *v) {
  if (v && *v) sqlite3_bind_text(st, i, v, -1, SQLITE_TRANSIENT);
  else sqlite3_bind_null(st, i);
}

static const char *col(sqlite3_stmt *st, int i) {
  const char *v = (const char *)sqlite3_column_text(st, i);
  return v && *v ? v : NULL;
}

static void note_due(rt_campaign_report *rep, int64_t due) {
  if (!rep->first_at || due < rep->first_at) rep->first_at = due;
  if (due > rep->last_at) rep->last_at = due;
}

/* Picks the channel and chat of a contact: Telegram, then WhatsApp, then
 * the phone on phone_channel. out must hold 64 bytes. */
static const char *pick_chat(const run_ctx *c, const char *phone, const char *tg, const char *wa,
                             char *chat) {
  if (tg) { snprintf(chat, 64, "%s", tg); return "telegram"; }
  if (wa) { snprintf(chat, 64, "%s", wa); return "whatsapp"; }
  if (!phone || !*phone) return NULL;
  const char *ch = c->o->phone_channel && *c->o->phone_channel ? c->o->phone_channel : "console";
  /* WhatsApp chat ids are digits without '+'; the console keys by E.164. */
  snprintf(chat, 64, "%s", strcmp(ch, "whatsapp") == 0 && phone[0] == '+' ? phone + 1 : phone);
  return ch;
}

/* Writes one scheduled contact: conversation, timer, campaign_contacts. */
static int schedule(run_ctx *c, const char *channel, const char *chat, const char *phone,
                    const char *ref, int64_t due, const char *timer, const char *step,
                    const char *data) {
  sqlite3_stmt *st = c->w[W_CONV];
  bind_opt(st, 1, channel);
  bind_opt(st, 2, chat);
  bind_opt(st, 3, phone);
  sqlite3_bind_int64(st, 4, c->o->now_ms);
  int rc = sqlite3_step(st);
  int64_t conv = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
  if (rc == SQLITE_ROW) rc = sqlite3_step(st);
  sqlite3_reset(st);
  if (rc != SQLITE_DONE || !conv) return sql_fail(c, "conversation");
  int r = rt_store_timer_set(c->s, conv, timer, due, step, data, c->o->now_ms);
  if (r != RT_OK) {
    if (!*c->err) *c->err = rt_xasprintf("campaign %s: timer: %s", c->o->name, rt_store_errmsg(c->s));
    return r;
  }
  st = c->w[W_CONTACT];
  bind_opt(st, 1, c->o->name);
  bind_opt(st, 2, phone);
  sqlite3_bind_text(st, 3, ref ? ref : "", -1, SQLITE_TRANSIENT);
  sqlite3_bind_int64(st, 4, due);
  sqlite3_bind_int64(st, 5, conv);
  rc = sqlite3_step(st);
  sqlite3_reset(st);
  if (rc != SQLITE_DONE) return sql_fail(c, "campaign_contacts");
  c->rep->scheduled++;
  return RT_OK;
}

/* ---- retention ---- */

static int run_retention(run_ctx *c) {
  const rt_campaign_opts *o = c->o;
  rt_campaign_report *rep = c->rep;
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(c->db, retention_sql, -1, &st, NULL) != SQLITE_OK)
    return sql_fail(c, "select");
  sqlite3_bind_int64(st, 1, o->now_ms - (int64_t)o->idle_days * DAY_MS);
  sqlite3_bind_int64(st, 2, o->now_ms - (int64_t)o->cooldown_days * DAY_MS);
  sqlite3_bind_int64(st, 3, o->now_ms - RECENT_MS);
  sqlite3_bind_text(st, 4, c->last_phone ? c->last_phone : "", -1, SQLITE_TRANSIENT);
  sqlite3_bind_int(st, 5, CHUNK_ROWS);
  int rc, ret = RT_OK;
  while (ret == RT_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
    rep->candidates++;
    c->read++;
    const char *ph = (const char *)sqlite3_column_text(st, 0);
    free(c->last_phone);
    c->last_phone = rt_xstrdup(ph ? ph : "");
    switch (sqlite3_column_int(st, 4)) {
    case R_OPTED_OUT: rep->skipped.opted_out++; continue;
    case R_BLOCKED: rep->skipped.blocked++; continue;
    case R_COOLDOWN: rep->skipped.cooldown++; continue;
    case R_OPEN: rep->skipped.open_conversation++; continue;
    default: break;
    }
    const char *phone = col(st, 0);
    char chat[64];
    const char *channel = pick_chat(c, phone, col(st, 1), col(st, 2), chat);
    if (!channel) { rep->skipped.no_channel++; continue; }
    int64_t due;
    if ((ret = take_slot(&c->pl, zone_get(&c->pl, col(st, 3)), &due)) != RT_OK) {
      *c->err = rt_xasprintf("campaign retention: no working time left in the next 5 years");
      break;
    }
    rep->selected++;
    note_due(rep, due);
    if (!o->dry_run)
      ret = schedule(c, channel, chat, phone, "", due, "campaign:retention", "retention.checkin",
                     "{\"campaign\":\"retention\"}");
  }
  if (ret == RT_OK && rc != SQLITE_DONE) ret = sql_fail(c, "select");
  sqlite3_finalize(st);
  return ret;
}

/* ---- gifts ---- */

enum { G_ORDER, G_BUYER, G_PRODUCT, G_CATEGORY, G_RNAME, G_RPHONE,
       G_B_TG, G_B_WA, G_B_TZ, G_B_OPT, G_B_BLK,
       G_R_TG, G_R_WA, G_R_TZ, G_R_OPT, G_R_BLK, G_DONE, G_NCOL };

typedef struct {
  char *v[G_NCOL];   /* text columns, owned; NULL when empty */
  int opt_b, blk_b, opt_r, blk_r, done;
} gift_row;

static int severity(run_ctx *c, const char *phone, const char *tg, const char *wa, int *out) {
  sqlite3_stmt *st = c->sev;
  bind_opt(st, 1, phone);
  bind_opt(st, 2, tg);
  sqlite3_bind_int64(st, 3, c->o->now_ms - RECENT_MS);
  bind_opt(st, 4, wa);
  int rc = sqlite3_step(st);
  *out = rc == SQLITE_ROW ? sqlite3_column_int(st, 0) : 0;
  sqlite3_reset(st);
  return rc == SQLITE_ROW ? RT_OK : sql_fail(c, "conversations");
}

static int gift_one(run_ctx *c, gift_row *g) {
  rt_campaign_report *rep = c->rep;
  char **v = g->v;
  if (g->done) { rep->skipped.cooldown++; return RT_OK; }
  int sev_r = 0, sev_b = 0, rc;
  bool to_r = false;
  if (v[G_RPHONE] && (!v[G_BUYER] || strcmp(v[G_RPHONE], v[G_BUYER]) != 0) && !g->opt_r &&
      !g->blk_r) {
    if ((rc = severity(c, v[G_RPHONE], v[G_R_TG], v[G_R_WA], &sev_r)) != RT_OK) return rc;
    to_r = sev_r != 2;
  }
  const char *phone, *tg, *wa, *tz;
  int sev;
  if (to_r) {
    phone = v[G_RPHONE]; tg = v[G_R_TG]; wa = v[G_R_WA];
    tz = v[G_R_TZ] ? v[G_R_TZ] : v[G_B_TZ];
    sev = sev_r;
  } else {
    if (g->opt_b) { rep->skipped.opted_out++; return RT_OK; }
    if (g->blk_b) { rep->skipped.blocked++; return RT_OK; }
    phone = v[G_BUYER]; tg = v[G_B_TG]; wa = v[G_B_WA]; tz = v[G_B_TZ];
    if ((rc = severity(c, phone, tg, wa, &sev_b)) != RT_OK) return rc;
    sev = sev_b;
  }
  if (sev == 2) { rep->skipped.blocked++; return RT_OK; }
  if (sev == 1) { rep->skipped.open_conversation++; return RT_OK; }
  char chat[64];
  const char *channel = pick_chat(c, phone, tg, wa, chat);
  if (!channel) { rep->skipped.no_channel++; return RT_OK; }
  int64_t due;
  if ((rc = take_slot(&c->pl, zone_get(&c->pl, tz), &due)) != RT_OK) {
    *c->err = rt_xasprintf("campaign gifts: no working time left in the next 5 years");
    return rc;
  }
  rep->selected++;
  note_due(rep, due);
  if (c->o->dry_run) return RT_OK;
  json_t *data = json_pack("{s:s, s:s, s:s?, s:s?, s:b, s:s?}", "campaign", "gifts",
                           "order_id", v[G_ORDER], "product", v[G_PRODUCT], "category",
                           v[G_CATEGORY], "recipient", to_r, "recipient_name", v[G_RNAME]);
  char *text = json_dumps(data, JSON_COMPACT);
  json_decref(data);
  char *timer = rt_xasprintf("campaign:gifts:%s", v[G_ORDER]);
  rc = schedule(c, channel, chat, phone, v[G_ORDER], due, timer, "gifts.checkin", text);
  free(timer);
  free(text);
  if (rc != RT_OK) return rc;
  sqlite3_stmt *st = c->w[W_ORDER];
  sqlite3_bind_text(st, 1, v[G_ORDER], -1, SQLITE_TRANSIENT);
  sqlite3_bind_int64(st, 2, due);
  int r = sqlite3_step(st);
  sqlite3_reset(st);
  return r == SQLITE_DONE ? RT_OK : sql_fail(c, "orders");
}

static int run_gifts(run_ctx *c) {
  const rt_campaign_opts *o = c->o;
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(c->db, gifts_sql, -1, &st, NULL) != SQLITE_OK)
    return sql_fail(c, "select");
  if (!c->sev && sqlite3_prepare_v2(c->db, severity_sql, -1, &c->sev, NULL) != SQLITE_OK) {
    sqlite3_finalize(st);
    return sql_fail(c, "select");
  }
  int max_age = o->max_age_days > 0 ? o->max_age_days : 60;
  sqlite3_bind_int64(st, 1, o->now_ms - (int64_t)o->after_days * DAY_MS);
  sqlite3_bind_int64(st, 2, o->now_ms - (int64_t)max_age * DAY_MS);
  sqlite3_bind_int64(st, 3, c->last_order ? c->last_date : INT64_MIN);
  sqlite3_bind_text(st, 4, c->last_order ? c->last_order : "", -1, SQLITE_TRANSIENT);
  sqlite3_bind_int(st, 5, CHUNK_ROWS);
  /* The rows of a chunk are read first and written after: the loop updates
   * orders, the table the query walks. */
  gift_row *rows = NULL;
  size_t n = 0, cap = 0;
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    if (n == cap) {
      cap = cap ? cap * 2 : 64;
      rows = rt_xrealloc(rows, cap * sizeof *rows);
    }
    gift_row *g = &rows[n++];
    memset(g, 0, sizeof *g);
    for (int i = 0; i < G_NCOL; i++) {
      if (i == G_B_OPT || i == G_B_BLK || i == G_R_OPT || i == G_R_BLK || i == G_DONE) continue;
      const char *t = col(st, i);
      g->v[i] = t ? rt_xstrdup(t) : NULL;
    }
    g->opt_b = sqlite3_column_int(st, G_B_OPT);
    g->blk_b = sqlite3_column_int(st, G_B_BLK);
    g->opt_r = sqlite3_column_int(st, G_R_OPT);
    g->blk_r = sqlite3_column_int(st, G_R_BLK);
    g->done = sqlite3_column_int(st, G_DONE);
    c->last_date = sqlite3_column_int64(st, G_NCOL);
    free(c->last_order);
    c->last_order = rt_xstrdup(g->v[G_ORDER] ? g->v[G_ORDER] : "");
  }
  int ret = rc == SQLITE_DONE ? RT_OK : sql_fail(c, "select");
  sqlite3_finalize(st);
  c->rep->candidates += (int64_t)n;
  c->read = (int64_t)n;
  for (size_t i = 0; i < n && ret == RT_OK; i++) ret = gift_one(c, &rows[i]);
  for (size_t i = 0; i < n; i++)
    for (int k = 0; k < G_NCOL; k++) free(rows[i].v[k]);
  free(rows);
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
  run_ctx c = {.s = s, .db = rt_store_db(s), .o = o, .rep = rep, .err = err};
  planner_init(&c.pl, o, tz);
  int ret = RT_OK;
  for (int i = 0; i < W_COUNT && ret == RT_OK && !o->dry_run; i++)
    if (sqlite3_prepare_v2(c.db, write_sql[i], -1, &c.w[i], NULL) != SQLITE_OK)
      ret = sql_fail(&c, "prepare");
  /* A dry run reads in one transaction, for a consistent picture; it takes
   * no lock a writer waits for (WAL). A real run works in chunks of
   * CHUNK_ROWS candidates, each in its own BEGIN IMMEDIATE transaction that
   * checks its candidates afresh -- against contacts another run committed
   * meanwhile too -- and writes them, so two runs at once contact nobody
   * twice and a kill leaves whole chunks only. */
  if (ret == RT_OK && o->dry_run && sqlite3_exec(c.db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
    ret = sql_fail(&c, "begin");
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
    if (planner_seed(&c.pl, c.db, &seen) != SQLITE_OK) ret = sql_fail(&c, "campaign_contacts");
    c.read = 0;
    if (ret == RT_OK) ret = retention ? run_retention(&c) : run_gifts(&c);
    if (ret == RT_OK && !o->dry_run && planner_mark(c.db, &seen) != SQLITE_OK)
      ret = sql_fail(&c, "campaign_contacts");
    if (ret == RT_OK && !o->dry_run) {
      in_tx = false;
      if ((ret = rt_store_commit(s)) != RT_OK)
        *err = rt_xasprintf("campaign %s: commit: %s", o->name, rt_store_errmsg(s));
      else
        committed = rep->scheduled;
    }
    if (c.read < CHUNK_ROWS) break;
  }
  if (in_tx) rt_store_rollback(s);
  /* What earlier chunks committed stays scheduled; a later run goes on
   * from there (the cooldown rule skips whoever was contacted). */
  if (ret != RT_OK && !o->dry_run) rep->scheduled = committed;
  for (int i = 0; i < W_COUNT; i++) sqlite3_finalize(c.w[i]);
  sqlite3_finalize(c.sev);
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
  char *out = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
  json_decref(j);
  char *r = rt_xstrdup(out);
  free(out);
  return r;
}
