/* store_tools.c -- the offline tools' queries (see store_tools.h). */
#include "store_tools.h"
#include "store_impl.h"
#include "buf.h"
#include "log.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- rows and helpers ---- */

int64_t rt_store_row_int(const rt_store_row *r, int col) {
  return sqlite3_column_int64((sqlite3_stmt *)r, col);
}
double rt_store_row_double(const rt_store_row *r, int col) {
  return sqlite3_column_double((sqlite3_stmt *)r, col);
}
const char *rt_store_row_text(const rt_store_row *r, int col) {
  return (const char *)sqlite3_column_text((sqlite3_stmt *)r, col);
}
bool rt_store_row_null(const rt_store_row *r, int col) {
  return sqlite3_column_type((sqlite3_stmt *)r, col) == SQLITE_NULL;
}

static void bind_opt(sqlite3_stmt *st, int i, const char *v) {
  if (v) sqlite3_bind_text(st, i, v, -1, SQLITE_TRANSIENT);
  else sqlite3_bind_null(st, i);
}

/* Empty text is no value, as in the CSV and the campaign rules. */
static void bind_nonempty(sqlite3_stmt *st, int i, const char *v) {
  bind_opt(st, i, v && *v ? v : NULL);
}

static sqlite3_stmt *prep(rt_store *s, const char *sql) {
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2(rt_store_db(s), sql, -1, &st, NULL);
  if (rc != SQLITE_OK) {
    rt_store_sqlfail(s, rc);
    return NULL;
  }
  return st;
}

/* Steps st to the end, calling fn per row; resets st. */
static int each(rt_store *s, sqlite3_stmt *st, rt_store_row_fn fn, void *ud) {
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW)
    if (fn && !fn(ud, (const rt_store_row *)st)) { rc = SQLITE_DONE; break; }
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  return rc == SQLITE_DONE ? RT_OK : rt_store_sqlfail(s, rc);
}

/* Runs a statement that writes (or returns one row that is ignored). */
static int exec_st(rt_store *s, sqlite3_stmt *st) {
  int rc = sqlite3_step(st);
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  return rc == SQLITE_DONE || rc == SQLITE_ROW ? RT_OK : rt_store_sqlfail(s, rc);
}

/* A one-off query: prepared, bound with since at ?1, run, finalized. */
static int once_since(rt_store *s, const char *sql, int64_t since, rt_store_row_fn fn, void *ud) {
  sqlite3_stmt *st = prep(s, sql);
  if (!st) return rt_store_errcode(s);
  sqlite3_bind_int64(st, 1, since);
  int rc = each(s, st, fn, ud);
  sqlite3_finalize(st);
  return rc;
}

int rt_store_read_begin(rt_store *s) {
  int rc = sqlite3_exec(rt_store_db(s), "BEGIN", NULL, NULL, NULL);
  return rc == SQLITE_OK ? RT_OK : rt_store_sqlfail(s, rc);
}

void rt_store_read_end(rt_store *s) {
  if (!sqlite3_get_autocommit(rt_store_db(s))) sqlite3_exec(rt_store_db(s), "COMMIT", NULL, NULL, NULL);
}

/* ---- the transcript runner ---- */

int rt_store_query_text(rt_store *s, const char *sql, const char *arg, int limit,
                        bool (*fn)(void *ud, int ncols, const char *const *vals), void *ud,
                        char **err) {
  *err = NULL;
  sqlite3 *db = rt_store_db(s);
  sqlite3_stmt *st = NULL;
  const char *tail = NULL;
  if (sqlite3_prepare_v2(db, sql, -1, &st, &tail) != SQLITE_OK) {
    *err = rt_xstrdup(sqlite3_errmsg(db));
    return RT_EINVAL;
  }
  if (!st) {
    *err = rt_xstrdup("no statement");
    return RT_EINVAL;
  }
  /* A test's check must not change what it checks. */
  if (!sqlite3_stmt_readonly(st)) {
    sqlite3_finalize(st);
    *err = rt_xstrdup("only a query that reads is allowed");
    return RT_EINVAL;
  }
  if (arg) sqlite3_bind_text(st, 1, arg, -1, SQLITE_TRANSIENT);
  int n = sqlite3_column_count(st), rc, rows = 0;
  const char **vals = rt_xcalloc((size_t)(n ? n : 1), sizeof *vals);
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    for (int i = 0; i < n; i++) vals[i] = (const char *)sqlite3_column_text(st, i);
    rows++;
    if (!fn(ud, n, vals) || (limit > 0 && rows >= limit)) { rc = SQLITE_DONE; break; }
  }
  free(vals);
  if (rc != SQLITE_DONE) *err = rt_xstrdup(sqlite3_errmsg(db));
  sqlite3_finalize(st);
  return rc == SQLITE_DONE ? RT_OK : RT_EIO;
}

static bool first_int(void *ud, const rt_store_row *r) {
  *(int64_t *)ud = rt_store_row_int(r, 0);
  return false;
}

static bool first_text(void *ud, const rt_store_row *r) {
  const char *t = rt_store_row_text(r, 0);
  *(char **)ud = t ? rt_xstrdup(t) : NULL;
  return false;
}

int64_t rt_store_leads_count(rt_store *s) {
  int64_t n = -1;
  return once_since(s, "SELECT COUNT(*) FROM leads WHERE ?1 IS NOT NULL", 0, first_int, &n) == RT_OK
             ? n : -1;
}

char *rt_store_lead_last_json(rt_store *s) {
  char *j = NULL;
  once_since(s, "SELECT json_object('car', car, 'car_kind', car_kind, 'parts', json(parts), "
                "'name', name, 'phone', phone, 'flow', flow, 'channel', channel, "
                "'campaign', campaign, 'data', json(data)) FROM leads WHERE ?1 IS NOT NULL "
                "ORDER BY id DESC LIMIT 1", 0, first_text, &j);
  return j;
}

typedef struct { bool (*fn)(void *, const char *); void *ud; } json_each;
static bool json_row(void *ud, const rt_store_row *r) {
  json_each *e = ud;
  const char *t = rt_store_row_text(r, 0);
  return e->fn(e->ud, t ? t : "");
}

int rt_store_events_json(rt_store *s, const char *kind, bool (*fn)(void *ud, const char *json),
                         void *ud) {
  sqlite3_stmt *st = prep(s, "SELECT json_object('kind', kind, 'campaign', campaign, 'flow', flow, "
                             "'data', json(data)) FROM events WHERE kind = ?1 ORDER BY id DESC");
  if (!st) return rt_store_errcode(s);
  bind_opt(st, 1, kind);
  json_each e = {fn, ud};
  int rc = each(s, st, json_row, &e);
  sqlite3_finalize(st);
  return rc;
}

int rt_store_timer_due(rt_store *s, int64_t conv_id, const char *name, int64_t *due) {
  sqlite3_stmt *st = prep(s, "SELECT due_at FROM timers WHERE conv_id = ?1 AND name = ?2");
  if (!st) return -1;
  sqlite3_bind_int64(st, 1, conv_id);
  bind_opt(st, 2, name);
  int rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) *due = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

/* ---- the studio ---- */

int rt_store_conv_timers(rt_store *s, int64_t conv_id, rt_store_row_fn fn, void *ud) {
  sqlite3_stmt *st = prep(s, "SELECT name, due_at, step FROM timers WHERE conv_id = ?1 "
                             "ORDER BY due_at, id");
  if (!st) return rt_store_errcode(s);
  sqlite3_bind_int64(st, 1, conv_id);
  int rc = each(s, st, fn, ud);
  sqlite3_finalize(st);
  return rc;
}

int rt_store_conv_events(rt_store *s, int64_t conv_id, int limit, rt_store_row_fn fn, void *ud) {
  sqlite3_stmt *st = prep(s, "SELECT at, kind, flow, campaign, data FROM events "
                             "WHERE conv_id = ?1 ORDER BY id DESC LIMIT ?2");
  if (!st) return rt_store_errcode(s);
  sqlite3_bind_int64(st, 1, conv_id);
  sqlite3_bind_int(st, 2, limit);
  int rc = each(s, st, fn, ud);
  sqlite3_finalize(st);
  return rc;
}

int64_t rt_store_conv_leads(rt_store *s, int64_t conv_id) {
  sqlite3_stmt *st = prep(s, "SELECT COUNT(*) FROM leads WHERE conv_id = ?1");
  if (!st) return -1;
  sqlite3_bind_int64(st, 1, conv_id);
  int64_t n = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
  sqlite3_finalize(st);
  return n;
}

int rt_store_customers_list(rt_store *s, int limit, rt_store_row_fn fn, void *ud) {
  sqlite3_stmt *st = prep(s, "SELECT phone, name, car, last_purchase, bonus_balance "
                             "FROM customers ORDER BY phone LIMIT ?1");
  if (!st) return rt_store_errcode(s);
  sqlite3_bind_int(st, 1, limit);
  int rc = each(s, st, fn, ud);
  sqlite3_finalize(st);
  return rc;
}

int rt_store_customer_known(rt_store *s, const char *phone) {
  sqlite3_stmt *st = prep(s, "SELECT 1 FROM customers WHERE phone = ?1");
  if (!st) return -1;
  bind_opt(st, 1, phone);
  int rc = sqlite3_step(st);
  sqlite3_finalize(st);
  return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

/* ---- import ---- */

enum { I_CUST_INS, I_CUST_UPD, I_ORD_INS, I_ORD_UPD, I_ADDR, I_COUNT };

static const char *import_sql[I_COUNT] = {
  [I_CUST_INS] = "INSERT OR IGNORE INTO customers (phone, name, last_purchase, bonus_balance, "
                 "timezone, car, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
  /* Empty cells (NULL) keep what is there; last_purchase only moves forward. */
  [I_CUST_UPD] = "UPDATE customers SET name = COALESCE(?2, name), "
                 "last_purchase = CASE WHEN ?3 IS NULL THEN last_purchase "
                 "WHEN last_purchase IS NULL OR ?3 > last_purchase THEN ?3 "
                 "ELSE last_purchase END, "
                 "bonus_balance = COALESCE(?4, bonus_balance), "
                 "timezone = COALESCE(?5, timezone), car = COALESCE(?6, car), updated_at = ?7 "
                 "WHERE phone = ?1",
  [I_ORD_INS] = "INSERT OR IGNORE INTO orders (order_id, phone, date, product, category, gift, "
                "recipient_name, recipient_phone) VALUES (?1, ?2, ?3, ?4, ?5, COALESCE(?6, 0), ?7, ?8)",
  [I_ORD_UPD] = "UPDATE orders SET phone = ?2, date = COALESCE(?3, date), "
                "product = COALESCE(?4, product), category = COALESCE(?5, category), "
                "gift = COALESCE(?6, gift), recipient_name = COALESCE(?7, recipient_name), "
                "recipient_phone = COALESCE(?8, recipient_phone) WHERE order_id = ?1",
  /* as rt_store_address_set */
  [I_ADDR] = "INSERT INTO customer_addresses (channel, address, phone, updated_at) "
             "VALUES (?1, ?2, ?3, ?4) ON CONFLICT (channel, address) DO UPDATE "
             "SET phone = excluded.phone, updated_at = excluded.updated_at",
};

struct rt_store_import {
  rt_store *s;
  sqlite3_stmt *q[I_COUNT];
};

/* ---- bulk load ----
 *
 * Filling an empty table, its secondary indexes are dropped first and
 * built once at the end: a CREATE INDEX sorts, where keeping the index up
 * to date during the load writes one random index page per row (the phone
 * order of customer_addresses has nothing to do with its key). What was
 * dropped is saved in meta, in the same transaction, so an import killed
 * half way has its indexes rebuilt by the next open of the store. */
#define DROPPED_KEY "import.dropped_indexes"
static const char *const bulk_tables[] = {"customers", "customer_addresses", "orders"};

int rt_store_import_restore_indexes(rt_store *s) {
  char *saved = NULL;
  int rc = rt_store_meta_get(s, DROPPED_KEY, &saved);
  if (rc != RT_OK || !saved) return rc;
  /* In a transaction of its own unless the caller has one. */
  bool own = sqlite3_get_autocommit(rt_store_db(s));
  if (own && (rc = rt_store_begin(s)) != RT_OK) {
    free(saved);
    return rc;
  }
  char *msg = NULL;
  rc = sqlite3_exec(rt_store_db(s), saved, NULL, NULL, &msg);
  if (rc == SQLITE_OK) rc = sqlite3_exec(rt_store_db(s), "DELETE FROM meta WHERE key = '"
                                         DROPPED_KEY "'", NULL, NULL, &msg);
  int ret = rc == SQLITE_OK ? RT_OK : rt_store_sqlfail(s, rc);
  if (own && ret == RT_OK) ret = rt_store_commit(s);
  else if (own) rt_store_rollback(s);
  if (rc != SQLITE_OK) rt_log(RT_LOG_ERROR, "store-indexes", "cannot rebuild: %s", msg ? msg : "");
  sqlite3_free(msg);
  free(saved);
  return ret;
}

static bool table_empty(rt_store *s, const char *table) {
  char sql[128];
  snprintf(sql, sizeof sql, "SELECT NOT EXISTS (SELECT 1 FROM %s)", table);
  sqlite3_stmt *st = prep(s, sql);
  bool empty = st && sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int(st, 0);
  sqlite3_finalize(st);
  return empty;
}

/* In its own transaction: saves and drops the secondary indexes of the
 * empty tables the import fills. */
static int bulk_begin(rt_store *s) {
  int rc = rt_store_begin(s);
  if (rc != RT_OK) return rc;
  rt_buf b = RT_BUF_INIT, names = RT_BUF_INIT;
  for (size_t t = 0; t < RT_ARRAY_LEN(bulk_tables) && rc == RT_OK; t++) {
    if (!table_empty(s, bulk_tables[t])) continue;
    sqlite3_stmt *st = prep(s, "SELECT name, sql FROM sqlite_master WHERE type = 'index' "
                               "AND tbl_name = ?1 AND sql IS NOT NULL");
    if (!st) { rc = rt_store_errcode(s); break; }
    sqlite3_bind_text(st, 1, bulk_tables[t], -1, SQLITE_STATIC);
    while (sqlite3_step(st) == SQLITE_ROW) {
      /* sqlite_master keeps "CREATE [UNIQUE] INDEX name ...": made IF NOT
       * EXISTS, a rebuild stopped half way can run again. */
      const char *sql = (const char *)sqlite3_column_text(st, 1);
      bool uniq = strncmp(sql, "CREATE UNIQUE INDEX ", 20) == 0;
      size_t skip = uniq ? 20 : strncmp(sql, "CREATE INDEX ", 13) == 0 ? 13 : 0;
      if (!skip) continue;   /* not an index we know how to rebuild: left alone */
      rt_buf_adds(&b, uniq ? "CREATE UNIQUE INDEX IF NOT EXISTS " : "CREATE INDEX IF NOT EXISTS ");
      rt_buf_adds(&b, sql + skip);
      rt_buf_adds(&b, ";\n");
      rt_buf_adds(&names, "DROP INDEX \"");
      rt_buf_adds(&names, (const char *)sqlite3_column_text(st, 0));
      rt_buf_adds(&names, "\";\n");
    }
    sqlite3_finalize(st);
  }
  if (rc == RT_OK && b.len) {
    rc = rt_store_meta_set(s, DROPPED_KEY, rt_buf_str(&b));
    if (rc == RT_OK) rc = rt_store_exec(s, rt_buf_str(&names));
  }
  rt_buf_free(&b);
  rt_buf_free(&names);
  if (rc == RT_OK) return rt_store_commit(s);
  rt_store_rollback(s);
  return rc;
}

int rt_store_import_finish(rt_store_import *w) { return rt_store_import_restore_indexes(w->s); }

int rt_store_import_new(rt_store *s, rt_store_import **out, char **err) {
  /* An index left dropped by an import that did not finish. */
  int r = rt_store_import_restore_indexes(s);
  if (r == RT_OK) r = bulk_begin(s);
  if (r != RT_OK) {
    *err = rt_xasprintf("import: %s", rt_store_errmsg(s));
    *out = NULL;
    return r;
  }
  rt_store_import *w = rt_xcalloc(1, sizeof *w);
  w->s = s;
  for (int i = 0; i < I_COUNT; i++) {
    if (!(w->q[i] = prep(s, import_sql[i]))) {
      *err = rt_xasprintf("import: %s", rt_store_errmsg(s));
      int rc = rt_store_errcode(s);
      rt_store_import_free(w);
      *out = NULL;
      return rc ? rc : RT_EIO;
    }
  }
  *out = w;
  return RT_OK;
}

void rt_store_import_free(rt_store_import *w) {
  if (!w) return;
  for (int i = 0; i < I_COUNT; i++) sqlite3_finalize(w->q[i]);
  free(w);
}

/* Binds without copying: the import's strings outlive the step. */
static void bind_static(sqlite3_stmt *st, int i, const char *v) {
  if (v) sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC);
  else sqlite3_bind_null(st, i);
}

static void bind_cust(sqlite3_stmt *st, const rt_import_customer *c, int64_t now) {
  bind_static(st, 1, c->phone);
  bind_static(st, 2, c->name);
  if (c->has_last_purchase) sqlite3_bind_int64(st, 3, c->last_purchase); else sqlite3_bind_null(st, 3);
  if (c->has_bonus) sqlite3_bind_double(st, 4, c->bonus); else sqlite3_bind_null(st, 4);
  bind_static(st, 5, c->timezone);
  bind_static(st, 6, c->car);
  sqlite3_bind_int64(st, 7, now);
}

/* Steps a statement bound by the caller; resets it, keeps the bindings
 * (they are all rebound next time). */
static int step_reset(rt_store *s, sqlite3_stmt *st) {
  int rc = sqlite3_step(st);
  sqlite3_reset(st);
  return rc == SQLITE_DONE || rc == SQLITE_ROW ? RT_OK : rt_store_sqlfail(s, rc);
}

int rt_store_import_customer(rt_store_import *w, const rt_import_customer *c, int64_t now,
                             bool *inserted) {
  sqlite3_stmt *st = w->q[I_CUST_INS];
  bind_cust(st, c, now);
  int rc = step_reset(w->s, st);
  if (rc != RT_OK) return rc;
  *inserted = sqlite3_changes(rt_store_db(w->s)) > 0;
  if (*inserted) return RT_OK;
  st = w->q[I_CUST_UPD];
  bind_cust(st, c, now);
  return step_reset(w->s, st);
}

static void bind_order(sqlite3_stmt *st, const rt_import_order *o) {
  bind_static(st, 1, o->order_id);
  bind_static(st, 2, o->phone);
  if (o->has_date) sqlite3_bind_int64(st, 3, o->date); else sqlite3_bind_null(st, 3);
  bind_static(st, 4, o->product);
  bind_static(st, 5, o->category);
  if (o->gift >= 0) sqlite3_bind_int(st, 6, o->gift); else sqlite3_bind_null(st, 6);
  bind_static(st, 7, o->recipient_name);
  bind_static(st, 8, o->recipient_phone);
}

int rt_store_import_order(rt_store_import *w, const rt_import_order *o, bool *inserted) {
  sqlite3_stmt *st = w->q[I_ORD_INS];
  bind_order(st, o);
  int rc = step_reset(w->s, st);
  if (rc != RT_OK) return rc;
  *inserted = sqlite3_changes(rt_store_db(w->s)) > 0;
  if (*inserted) return RT_OK;
  st = w->q[I_ORD_UPD];
  bind_order(st, o);
  return step_reset(w->s, st);
}

int rt_store_import_address(rt_store_import *w, const char *phone, const char *channel,
                            const char *address, int64_t now) {
  if (!phone || !channel || !*channel || !address || !*address) return RT_EINVAL;
  sqlite3_stmt *st = w->q[I_ADDR];
  bind_static(st, 1, channel);
  bind_static(st, 2, address);
  bind_static(st, 3, phone);
  sqlite3_bind_int64(st, 4, now);
  return step_reset(w->s, st);
}

/* ---- campaigns ---- */

/* A linked conversation that the bot should not interrupt; ?3 is now - 3d. */
#define OPEN_EXPR                                                              \
  "(v.mode IN ('human','handoff','manager') OR v.last_in_at > ?3 OR "          \
  "(v.updated_at > ?3 AND v.step IS NOT NULL AND v.step <> 'done') OR "        \
  "EXISTS (SELECT 1 FROM timers t WHERE t.conv_id = v.id))"
/* 2 blocked, 1 open, 0 free, over the conversations linked to a customer:
 * those with the customer's phone and those of the customer's addresses
 * (each found through an index). */
#define SEV_CASE "CASE WHEN v.mode = 'blocked' THEN 2 WHEN " OPEN_EXPR " THEN 1 ELSE 0 END"
#define SEV_PHONE(phone)                                                       \
  "(SELECT COALESCE(MAX(" SEV_CASE "), 0) FROM conversations v "               \
  "WHERE v.phone = " phone ")"
#define SEVERITY(phone)                                                        \
  "MAX((SELECT COALESCE(MAX(" SEV_CASE "), 0) FROM conversations v "           \
  "WHERE v.phone = " phone "), (SELECT COALESCE(MAX(" SEV_CASE "), 0) FROM "   \
  "customer_addresses a JOIN conversations v ON v.channel = a.channel AND "    \
  "v.chat_id = a.address WHERE a.phone = " phone "))"
/* Whether the channel has seen the chat of address a: the customer wrote
 * from it (a conversation with a message in), or the channel said
 * something of it (blocked, unblocked: status_at). A Telegram bot can
 * write first only to such a chat. */
#define SEEN_EXPR                                                              \
  "(a.status_at IS NOT NULL OR EXISTS (SELECT 1 FROM conversations w WHERE "   \
  "w.channel = a.channel AND w.chat_id = a.address AND w.last_in_at IS NOT NULL))"
/* A customer's addresses packed in one text: fields split by 0x1F, rows by
 * 0x1E (rt_store_addrs_split); NULL when there are none. */
#define ADDRS(phone)                                                           \
  "(SELECT group_concat(a.channel || char(31) || a.address || char(31) || "    \
  "a.status || char(31) || COALESCE(a.reason, '') || char(31) || "             \
  "a.updated_at || char(31) || " SEEN_EXPR ", char(30)) FROM customer_addresses a " \
  "WHERE a.phone = " phone ")"

enum { K_CONV, K_CONTACT, K_ORDER, K_SEED, K_MARK, K_SEV, K_RETENTION, K_RET_ADDRS, K_GIFTS,
       K_COUNT };

static const char *campaign_sql[K_COUNT] = {
  /* Creating the conversation does not touch updated_at of an existing one,
   * and an already known phone is kept. */
  [K_CONV] = "INSERT INTO conversations (channel, chat_id, phone, created_at, updated_at) "
             "VALUES (?1, ?2, ?3, ?4, ?4) ON CONFLICT (channel, chat_id) DO UPDATE "
             "SET phone = COALESCE(conversations.phone, excluded.phone) RETURNING id",
  [K_CONTACT] = "INSERT OR IGNORE INTO campaign_contacts (campaign, phone, ref, at, conv_id, "
                "channel, address) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
  [K_ORDER] = "UPDATE orders SET followup_at = ?2 WHERE order_id = ?1",
  [K_SEED] = "SELECT rowid, at FROM campaign_contacts WHERE rowid > ?2 AND at >= ?1",
  [K_MARK] = "SELECT COALESCE(MAX(rowid), 0) FROM campaign_contacts",
  [K_SEV] = "SELECT " SEVERITY("?1"),
  [K_RETENTION] =
    "SELECT c.phone, c.timezone, "
    "CASE WHEN c.opted_out THEN 1 WHEN c.blocked THEN 2 "
    "WHEN EXISTS (SELECT 1 FROM campaign_contacts k WHERE k.phone = c.phone "
    "AND k.campaign = 'retention' AND k.at > ?2) THEN 3 "
    "ELSE CASE " SEV_PHONE("c.phone") " WHEN 2 THEN 2 WHEN 1 THEN 4 ELSE 0 END END "
    /* A plain scan in phone order (see 002_campaigns.sql), a chunk at a time
     * from the phone after the last one read. */
    "FROM customers c NOT INDEXED WHERE c.last_purchase <= ?1 AND c.phone > ?4 "
    "ORDER BY c.phone LIMIT ?5",
  /* The addresses of a chunk's customers in one range read (phone order,
   * as the chunk), each with the severity of its conversation: a lookup per
   * customer was most of a retention run's time. ?3 as in OPEN_EXPR. */
  [K_RET_ADDRS] =
    "SELECT a.phone, a.channel, a.address, a.status, a.reason, a.updated_at, "
    "COALESCE((SELECT " SEV_CASE " FROM conversations v WHERE v.channel = a.channel "
    "AND v.chat_id = a.address), 0), " SEEN_EXPR " FROM customer_addresses a "
    "WHERE a.phone > ?1 AND a.phone <= ?2 ORDER BY a.phone",
  [K_GIFTS] =
    "SELECT o.order_id, o.phone, o.product, o.category, o.recipient_name, o.recipient_phone, "
    ADDRS("o.phone") ", b.timezone, COALESCE(b.opted_out, 0), COALESCE(b.blocked, 0), "
    ADDRS("o.recipient_phone") ", r.timezone, COALESCE(r.opted_out, 0), "
    "COALESCE(r.blocked, 0), "
    "EXISTS (SELECT 1 FROM campaign_contacts k WHERE k.campaign = 'gifts' "
    "AND k.phone IN (o.phone, o.recipient_phone) AND k.ref = o.order_id), o.date "
    "FROM orders o LEFT JOIN customers b ON b.phone = o.phone "
    "LEFT JOIN customers r ON r.phone = o.recipient_phone "
    "WHERE o.gift = 1 AND o.followup_at IS NULL AND o.date <= ?1 AND o.date >= ?2 "
    "AND (o.date > ?3 OR (o.date = ?3 AND o.order_id > ?4)) "
    "ORDER BY o.date, o.order_id LIMIT ?5",
};

struct rt_store_campaign {
  rt_store *s;
  sqlite3_stmt *q[K_COUNT];
};

int rt_store_campaign_new(rt_store *s, rt_store_campaign **out, char **err) {
  rt_store_campaign *c = rt_xcalloc(1, sizeof *c);
  c->s = s;
  for (int i = 0; i < K_COUNT; i++) {
    if (!(c->q[i] = prep(s, campaign_sql[i]))) {
      *err = rt_xasprintf("campaign: %s", rt_store_errmsg(s));
      int rc = rt_store_errcode(s);
      rt_store_campaign_free(c);
      *out = NULL;
      return rc ? rc : RT_EIO;
    }
  }
  *out = c;
  return RT_OK;
}

void rt_store_campaign_free(rt_store_campaign *c) {
  if (!c) return;
  for (int i = 0; i < K_COUNT; i++) sqlite3_finalize(c->q[i]);
  free(c);
}

int rt_store_campaign_mark(rt_store_campaign *c, int64_t *seen) {
  return each(c->s, c->q[K_MARK], first_int, seen);
}

typedef struct { void (*fn)(void *, int64_t); void *ud; } seed_ctx;
static bool seed_row(void *ud, const rt_store_row *r) {
  seed_ctx *x = ud;
  x->fn(x->ud, rt_store_row_int(r, 1));
  return true;
}

int rt_store_campaign_seed(rt_store_campaign *c, int64_t from_ms, int64_t *seen,
                           void (*fn)(void *ud, int64_t at), void *ud) {
  sqlite3_stmt *st = c->q[K_SEED];
  sqlite3_bind_int64(st, 1, from_ms);
  sqlite3_bind_int64(st, 2, *seen);
  seed_ctx x = {fn, ud};
  int rc = each(c->s, st, seed_row, &x);
  return rc == RT_OK ? rt_store_campaign_mark(c, seen) : rc;
}

int rt_store_campaign_retention(rt_store_campaign *c, int64_t idle_before,
                                int64_t contacted_after, int64_t recent_after,
                                const char *after_phone, int limit, rt_store_row_fn fn,
                                void *ud) {
  sqlite3_stmt *st = c->q[K_RETENTION];
  sqlite3_bind_int64(st, 1, idle_before);
  sqlite3_bind_int64(st, 2, contacted_after);
  sqlite3_bind_int64(st, 3, recent_after);
  sqlite3_bind_text(st, 4, after_phone ? after_phone : "", -1, SQLITE_TRANSIENT);
  sqlite3_bind_int(st, 5, limit);
  return each(c->s, st, fn, ud);
}

int rt_store_campaign_addresses(rt_store_campaign *c, const char *after_phone,
                                const char *last_phone, int64_t recent_after,
                                rt_store_row_fn fn, void *ud) {
  sqlite3_stmt *st = c->q[K_RET_ADDRS];
  sqlite3_bind_text(st, 1, after_phone ? after_phone : "", -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(st, 2, last_phone ? last_phone : "", -1, SQLITE_TRANSIENT);
  sqlite3_bind_int64(st, 3, recent_after);
  return each(c->s, st, fn, ud);
}

int rt_store_campaign_gifts(rt_store_campaign *c, int64_t newest, int64_t oldest,
                            int64_t after_date, const char *after_order, int limit,
                            rt_store_row_fn fn, void *ud) {
  sqlite3_stmt *st = c->q[K_GIFTS];
  sqlite3_bind_int64(st, 1, newest);
  sqlite3_bind_int64(st, 2, oldest);
  sqlite3_bind_int64(st, 3, after_order ? after_date : INT64_MIN);
  sqlite3_bind_text(st, 4, after_order ? after_order : "", -1, SQLITE_TRANSIENT);
  sqlite3_bind_int(st, 5, limit);
  return each(c->s, st, fn, ud);
}

static bool first_int_as_int(void *ud, const rt_store_row *r) {
  *(int *)ud = (int)rt_store_row_int(r, 0);
  return false;
}

int rt_store_campaign_severity(rt_store_campaign *c, const char *phone, int64_t recent_after,
                               int *sev) {
  sqlite3_stmt *st = c->q[K_SEV];
  *sev = 0;
  bind_nonempty(st, 1, phone);
  sqlite3_bind_int64(st, 3, recent_after);
  return each(c->s, st, first_int_as_int, sev);
}

int rt_store_campaign_schedule(rt_store_campaign *c, const rt_campaign_contact *k) {
  sqlite3_stmt *st = c->q[K_CONV];
  bind_nonempty(st, 1, k->channel);
  bind_nonempty(st, 2, k->address);
  bind_nonempty(st, 3, k->phone);
  sqlite3_bind_int64(st, 4, k->now);
  int64_t conv = 0;
  int rc = each(c->s, st, first_int, &conv);
  if (rc != RT_OK) return rc;
  if (!conv) return rt_store_sqlfail(c->s, SQLITE_ERROR);
  if ((rc = rt_store_timer_set(c->s, conv, k->timer, k->due, k->step, k->data, k->now)) != RT_OK)
    return rc;
  st = c->q[K_CONTACT];
  bind_nonempty(st, 1, k->campaign);
  bind_nonempty(st, 2, k->phone);
  sqlite3_bind_text(st, 3, k->ref ? k->ref : "", -1, SQLITE_TRANSIENT);
  sqlite3_bind_int64(st, 4, k->due);
  sqlite3_bind_int64(st, 5, conv);
  bind_nonempty(st, 6, k->channel);
  bind_nonempty(st, 7, k->address);
  return exec_st(c->s, st);
}

int rt_store_campaign_order_done(rt_store_campaign *c, const char *order_id, int64_t due) {
  sqlite3_stmt *st = c->q[K_ORDER];
  bind_opt(st, 1, order_id);
  sqlite3_bind_int64(st, 2, due);
  return exec_st(c->s, st);
}

int rt_store_addrs_split(char *packed, rt_store_addr *out, int max) {
  int n = 0;
  for (char *row = packed; row && *row && n < max;) {
    char *next = strchr(row, '\x1e');
    if (next) *next++ = '\0';
    char *f[6] = {row, NULL, NULL, NULL, NULL, NULL};
    for (int i = 1; i < 6 && f[i - 1]; i++) {
      char *sep = strchr(f[i - 1], '\x1f');
      if (sep) { *sep = '\0'; f[i] = sep + 1; }
    }
    if (f[0][0] && f[1] && f[1][0])
      out[n++] = (rt_store_addr){f[0], f[1], f[2] ? f[2] : "reachable", f[3] && *f[3] ? f[3] : NULL,
                                 f[4] ? strtoll(f[4], NULL, 10) : 0, f[5] && f[5][0] == '1'};
    row = next;
  }
  return n;
}

/* ---- stats ---- */

int rt_store_stats_outcomes(rt_store *s, int64_t since_ms, rt_store_row_fn fn, void *ud) {
  return once_since(s,
    "SELECT campaign, kind, CASE WHEN kind = 'outcome' AND json_valid(data) "
    "THEN json_extract(data, '$.outcome') END, COUNT(*) FROM events "
    "WHERE at >= ?1 AND campaign IS NOT NULL AND campaign <> '' AND kind IN "
    "('contacted', 'outcome', 'later_kept', 'offer', 'offer_accepted', 'offer_expired') "
    "GROUP BY 1, 2, 3", since_ms, fn, ud);
}

int rt_store_stats_campaign_leads(rt_store *s, int64_t since_ms, rt_store_row_fn fn, void *ud) {
  return once_since(s,
    "SELECT campaign, COUNT(*) FROM leads WHERE at >= ?1 AND campaign IS NOT NULL "
    "AND campaign <> '' GROUP BY 1", since_ms, fn, ud);
}

int rt_store_stats_flow_convs(rt_store *s, int64_t since_ms, rt_store_row_fn fn, void *ud) {
  return once_since(s,
    "SELECT flow, COUNT(DISTINCT conv_id) FROM ("
    " SELECT flow, conv_id FROM events WHERE at >= ?1 AND conv_id IS NOT NULL"
    " AND flow IS NOT NULL AND flow <> ''"
    " UNION SELECT flow, conv_id FROM leads WHERE at >= ?1 AND flow IS NOT NULL AND flow <> '')"
    " GROUP BY flow", since_ms, fn, ud);
}

/* A lead's time runs from the customer's first message after the chat's
 * previous lead (else from the conversation's start): a wake-up is the
 * bot's, not the customer's, and most have no inbox row at all (inbox.h,
 * rt_inbox_add_wake). */
int rt_store_stats_lead_times(rt_store *s, int64_t since_ms, rt_store_row_fn fn, void *ud) {
  return once_since(s,
    /* No b-tree of the inbox is ordered by chat (023_chat_buckets.sql):
     * the customers' messages are read once, and SQLite indexes them by
     * chat for the lookups (an automatic index). */
    "WITH m AS MATERIALIZED (SELECT channel, chat_id, received_at FROM inbox"
    " WHERE kind <> 'wake')"
    " SELECT COALESCE(l.flow, ''), l.at - COALESCE("
    " (SELECT MIN(i.received_at) FROM m i WHERE i.channel = c.channel"
    "  AND i.chat_id = c.chat_id"
    "  AND i.received_at <= l.at AND i.received_at > COALESCE("
    "   (SELECT MAX(p.at) FROM leads p WHERE p.conv_id = l.conv_id AND p.at < l.at), -1)),"
    " MAX(c.created_at, COALESCE((SELECT MAX(p.at) FROM leads p WHERE p.conv_id = l.conv_id"
    "  AND p.at < l.at), 0)))"
    " FROM leads l LEFT JOIN conversations c ON c.id = l.conv_id"
    " WHERE l.at >= ?1 ORDER BY 1", since_ms, fn, ud);
}

int rt_store_stats_llm(rt_store *s, int64_t since_ms, rt_store_row_fn fn, void *ud) {
  return once_since(s,
    /* 'usage': what a turn's provider calls cost (lvm: calls, tokens_in,
     * tokens_out, cost_micro); 'llm': one call as flows recorded it before */
    "SELECT COALESCE(SUM(CASE kind WHEN 'usage' THEN COALESCE(json_extract(data, '$.calls'), 1)"
    "                    ELSE 1 END), 0),"
    " COUNT(DISTINCT conv_id),"
    " COALESCE(SUM(COALESCE(json_extract(data, '$.prompt_tokens'), json_extract(data, '$.tokens_in'), 0) +"
    "              COALESCE(json_extract(data, '$.completion_tokens'), json_extract(data, '$.tokens_out'), 0)), 0),"
    " COALESCE(SUM(COALESCE(json_extract(data, '$.cost'), json_extract(data, '$.cost_micro') / 1e6, 0)), 0),"
    " (SELECT COUNT(*) FROM leads WHERE at >= ?1),"
    " (SELECT COUNT(*) FROM conversations WHERE updated_at >= ?1)"
    " FROM events WHERE kind IN ('llm', 'usage') AND at >= ?1 AND json_valid(data)", since_ms, fn, ud);
}

int rt_store_stats_llm_saved(rt_store *s, int64_t since_ms, rt_store_row_fn fn, void *ud) {
  return once_since(s,
    /* 'llm_saved': a call the flows did not make because OCR or a rule read
     * the message (scripts/vitaly/lib/ai.lua: what such a request costs) */
    "SELECT COALESCE(json_extract(data, '$.by'), 'rules'), COUNT(*),"
    " COALESCE(SUM(json_extract(data, '$.tokens')), 0)"
    " FROM events WHERE kind = 'llm_saved' AND at >= ?1 AND json_valid(data) GROUP BY 1", since_ms,
    fn, ud);
}

int rt_store_stats_llm_outcomes(rt_store *s, int64_t since_ms, rt_store_row_fn fn, void *ud) {
  return once_since(s,
    /* what the dialogs of each campaign outcome cost: a conversation's
     * usage in the campaign, under the outcome it ended with (its last
     * 'outcome' event of that campaign), and how many dialogs had it */
    "WITH o AS (SELECT conv_id, campaign, json_extract(data, '$.outcome') AS outcome FROM events e"
    "  WHERE kind = 'outcome' AND at >= ?1 AND json_valid(data) AND campaign IS NOT NULL"
    "  AND campaign <> '' AND id = (SELECT MAX(id) FROM events x WHERE x.kind = 'outcome'"
    "  AND x.conv_id = e.conv_id AND x.campaign = e.campaign)),"
    " u AS (SELECT conv_id, campaign,"
    "  SUM(COALESCE(json_extract(data, '$.tokens_in'), 0) + COALESCE(json_extract(data, '$.tokens_out'), 0)) AS tokens,"
    "  SUM(COALESCE(json_extract(data, '$.cost_micro'), 0)) / 1e6 AS cost"
    "  FROM events WHERE kind = 'usage' AND at >= ?1 AND json_valid(data) GROUP BY 1, 2)"
    " SELECT o.campaign, o.outcome, COUNT(*), COALESCE(SUM(u.tokens), 0), COALESCE(SUM(u.cost), 0)"
    " FROM o LEFT JOIN u ON u.conv_id = o.conv_id AND u.campaign = o.campaign GROUP BY 1, 2",
    since_ms, fn, ud);
}

int rt_store_stats_event_counts(rt_store *s, int64_t since_ms, rt_store_row_fn fn, void *ud) {
  return once_since(s,
    "SELECT kind, COUNT(*) FROM events WHERE at >= ?1 AND kind IN ('handoff', 'step_error') "
    "GROUP BY kind", since_ms, fn, ud);
}

int rt_store_stats_lead_times_at(rt_store *s, int64_t since_ms, rt_store_row_fn fn, void *ud) {
  return once_since(s, "SELECT at FROM leads WHERE at >= ?1 ORDER BY at", since_ms, fn, ud);
}
