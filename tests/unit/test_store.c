/* test_store.c -- the store's own contract: migrations, inbox dedup,
 * conversation rows and revisions (the phone written only when changed),
 * per-channel outbox, timers, pruning. */
#include "convs.h"
#include "paths.h"
#include "rt.h"
#include "store_impl.h"
#include "t.h"
#include "tstore.h"
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static rt_store *s;
static int counted;
static void count_out(void *ud, const rt_outbox_row *r) { (void)ud; (void)r; counted++; }
static void count_timer(void *ud, const rt_timer_row *r) { (void)ud; (void)r; counted++; }

static int64_t q(const char *sql) { return q_int(s, sql); }

/* SQLite's plan of sql, its steps' details joined by "; ". */
static void query_plan(const char *sql, char *plan, size_t cap) {
  char *x = rt_xasprintf("EXPLAIN QUERY PLAN %s", sql);
  sqlite3_stmt *st = NULL;
  plan[0] = '\0';
  CHECK(sqlite3_prepare_v2(rt_store_db(s), x, -1, &st, NULL) == SQLITE_OK);
  free(x);
  while (st && sqlite3_step(st) == SQLITE_ROW) {
    strncat(plan, (const char *)sqlite3_column_text(st, 3), cap - strlen(plan) - 3);
    strcat(plan, "; ");
  }
  sqlite3_finalize(st);
}

T(migrations) {
  CHECK(q("PRAGMA user_version") >= 3);
  CHECK_STR((const char *)"wal", "wal");
  /* 008 drops the outbox indexes no query uses (003's among them). */
  CHECK(q("SELECT count(*) FROM sqlite_master WHERE name = 'outbox_channel_pending'") == 0);
  /* 023 leaves the outbox three b-trees besides the table: pending rows by
   * priority, pending rows by chat (a chat's head) and every row by bucket
   * of ids and chat (history). */
  CHECK(q("SELECT count(*) FROM sqlite_master WHERE name = 'outbox_chat_pending'") == 1);
  CHECK(q("SELECT count(*) FROM sqlite_master WHERE type = 'index' AND tbl_name = 'outbox'") == 3);
  CHECK(q("SELECT count(*) FROM sqlite_master WHERE name = 'outbox_prio_pending'") == 1);
  /* 021: the deliveries' scan reads pending rows in its order (priority,
   * then id) off outbox_prio_pending, with no sort of all of them. */
  char plan[512];
  query_plan("SELECT id FROM outbox WHERE status = 'pending' AND channel = 'x' "
             "ORDER BY priority * 1000000000000000 + id LIMIT 5", plan, sizeof plan);
  CHECK_STR(plan, "SCAN outbox USING INDEX outbox_prio_pending; ");
  /* The count of pending rows (S_OUT_PENDING) stays on that index under
   * the visible-id bound, instead of walking the rowids up to it. */
  query_plan("SELECT count(*) FROM outbox WHERE status = 'pending' AND channel = 'x' "
             "AND +id <= 5", plan, sizeof plan);
  CHECK_STR(plan, "SCAN outbox USING INDEX outbox_prio_pending; ");
  /* 023: a chat's head is one probe of the pending rows by chat; a chat's
   * history one probe of a bucket; the inbox's unique key starts with the
   * channel's id. */
  const char *plans[][2] = {
    {"SELECT id FROM outbox AS o WHERE status = 'pending' AND channel = 'x' AND NOT EXISTS "
     "(SELECT 1 FROM outbox AS p WHERE p.status = 'pending' AND p.chat_id = o.chat_id "
     "AND p.channel = o.channel AND p.id < o.id) ORDER BY priority * 1000000000000000 + id",
     "SCAN o USING INDEX outbox_prio_pending; CORRELATED SCALAR SUBQUERY 1; "
     "SEARCH p USING INDEX outbox_chat_pending (chat_id=? AND channel=? AND rowid<?); "},
    {"SELECT payload FROM inbox WHERE (id >> 12) = 3 AND chat_id = 'c' AND channel = 'x' "
     "AND history = 1 ORDER BY id DESC LIMIT 5",
     "SEARCH inbox USING INDEX inbox_chat (<expr>=? AND chat_id=? AND channel=?); "},
    {"SELECT payload FROM outbox WHERE (id >> 12) = 3 AND chat_id = 'c' AND channel = 'x' "
     "AND history = 1 AND status = 'sent' ORDER BY id DESC LIMIT 5",
     "SEARCH outbox USING INDEX outbox_chat (<expr>=? AND chat_id=? AND channel=?); "},
    {"SELECT id FROM inbox WHERE ext_id = 'e' AND channel = 'x' AND chat_id = 'c'",
     "SEARCH inbox USING COVERING INDEX sqlite_autoindex_inbox_1 (ext_id=? AND channel=? "
     "AND chat_id=?); "},
    /* 025: a channel's open rows are found by a walk of the ids from its
     * mark on (S_MARK_PARK, and the count in rt_store_counts_get: CROSS
     * JOIN keeps the marks outside), never a scan of the whole outbox. */
    {"UPDATE outbox SET status = 'pending' WHERE id >= (SELECT next FROM outbox_mark "
     "WHERE channel = 'x') AND channel = 'x' AND status = 'sent' AND sent_at IS NULL",
     "SEARCH outbox USING INTEGER PRIMARY KEY (rowid>?); SCALAR SUBQUERY 1; "
     "SEARCH outbox_mark USING INDEX sqlite_autoindex_outbox_mark_1 (channel=?); "},
    {"SELECT COUNT(*) FROM outbox_mark AS m CROSS JOIN outbox AS o ON o.id >= m.next "
     "AND +o.channel = m.channel WHERE +o.status = 'sent' AND +o.sent_at IS NULL",
     "SCAN m; SEARCH o USING INTEGER PRIMARY KEY (rowid>?); "},
  };
  for (size_t i = 0; i < sizeof plans / sizeof plans[0]; i++) {
    query_plan(plans[i][0], plan, sizeof plan);
    CHECK_STR(plan, plans[i][1]);
  }
}

/* sync_later (walsync.h): a commit's outbox rows are neither handed over
 * nor seen by the deliveries' scans until the caller says the commit is on
 * disk; rows a killed process left are all visible at the next open. */
static int nheads;
static bool count_head(void *ud, const rt_outbox_row *r) { (void)ud; (void)r; nheads++; return true; }

T(sync_later_hides_rows) {
  char d[] = "/tmp/test_store_sync.XXXXXX", path[64], sql[600];
  CHECK(mkdtemp(d) != NULL);
  snprintf(path, sizeof path, "%s/s.db", d);
  snprintf(sql, sizeof sql, "%s/schema/sql", getenv("RT_SOURCE_DIR"));
  rt_store_opts o = {.sql_dir = sql, .sync_full = true, .own_checkpoints = true,
                     .sync_later = true};
  rt_store *w = NULL;
  char *err = NULL;
  CHECK_INT(rt_store_open(path, &o, &w, &err), RT_OK);
  if (!w) return;
  CHECK(rt_store_sync_later(w));
  CHECK(!rt_store_sync_pending(w));   /* the migrations were synced at open */
  rt_store_outbox_track(w, 100);
  int64_t id = 0;
  CHECK_INT(rt_store_begin(w), RT_OK);
  CHECK_INT(rt_store_outbox_add(w, 1, "web", "c1", "k1", "text", "{}", 1, &id), RT_OK);
  CHECK_INT(rt_store_commit(w), RT_OK);
  /* autocommit counts as a commit of its own */
  CHECK_INT(rt_store_outbox_add(w, 1, "web", "c2", "k2", "text", "{}", 1, &id), RT_OK);
  CHECK(rt_store_sync_pending(w));
  size_t n = 0;
  bool over = false;
  rt_outbox_row **v = rt_store_outbox_take(w, &n, &over);
  CHECK(n == 0 && !v);
  nheads = 0;
  CHECK_INT(rt_store_outbox_heads(w, "web", 10, 50, count_head, NULL), RT_OK);
  CHECK_INT(nheads, 0);
  CHECK_INT(rt_store_outbox_pending(w, "web"), 0);
  counted = 0;
  CHECK_INT(rt_store_outbox_due(w, "web", 10, 50, count_out, NULL), RT_OK);
  CHECK_INT(counted, 0);
  /* A sync that began before the second commit covers only the first. */
  CHECK_INT(rt_store_begin(w), RT_OK);
  CHECK_INT(rt_store_outbox_add(w, 1, "web", "c3", "k3", "text", "{}", 1, &id), RT_OK);
  CHECK_INT(rt_store_commit(w), RT_OK);
  int64_t upto = rt_store_sync_begin(w);
  CHECK_INT(rt_store_begin(w), RT_OK);
  CHECK_INT(rt_store_outbox_add(w, 1, "web", "c4", "k4", "text", "{}", 1, &id), RT_OK);
  CHECK_INT(rt_store_commit(w), RT_OK);
  CHECK_INT(rt_store_wal_fsync(rt_store_wal_path(w)), 0);
  rt_store_synced(w, upto);
  CHECK(rt_store_sync_pending(w));
  v = rt_store_outbox_take(w, &n, &over);
  CHECK(n == 3 && !over);
  for (size_t i = 0; i < n; i++) free(v[i]);
  free(v);
  nheads = 0;
  CHECK_INT(rt_store_outbox_heads(w, "web", 10, 50, count_head, NULL), RT_OK);
  CHECK_INT(nheads, 3);
  CHECK_INT(rt_store_outbox_pending(w, "web"), 3);
  /* Killed here: the last row's commit was never synced. The next open
   * syncs the WAL and everything in the store may go. */
  rt_store_close(w);
  CHECK_INT(rt_store_open(path, &o, &w, &err), RT_OK);
  if (!w) return;
  CHECK(!rt_store_sync_pending(w));
  CHECK_INT(rt_store_outbox_pending(w, "web"), 4);
  /* Without sync_later every commit counts as synced at once. */
  rt_store_close(w);
  o.sync_later = false;
  CHECK_INT(rt_store_open(path, &o, &w, &err), RT_OK);
  if (!w) return;
  CHECK(!rt_store_sync_later(w));
  CHECK_INT(rt_store_outbox_add(w, 1, "web", "c5", "k5", "text", "{}", 1, &id), RT_OK);
  CHECK(!rt_store_sync_pending(w));
  CHECK_INT(rt_store_outbox_pending(w, "web"), 5);
  rt_store_close(w);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", d);
  if (system(cmd) != 0) { /* best effort */ }
}

T(inbox_dedup) {
  int64_t id = 0;
  CHECK_INT(rt_store_inbox_add(s, "telegram", "u1", "c1", "text", "{}", 1, &id), RT_OK);
  CHECK(id > 0);
  CHECK_INT(rt_store_inbox_add(s, "telegram", "u1", "c1", "text", "{}", 2, &id), 1);
  CHECK_INT(rt_store_inbox_add(s, "whatsapp", "u1", "c1", "text", "{}", 2, &id), RT_OK);
  CHECK_INT(q("SELECT count(*) FROM inbox WHERE status = 'new'"), 2);
}

T(conversations) {
  rt_conv_row r;
  CHECK_INT(rt_store_conv_get(s, "console", "a", false, 1, &r), RT_ENOENT);
  CHECK_INT(rt_store_conv_ensure(s, "console", "a", 5), RT_OK);
  CHECK_INT(rt_store_conv_ensure(s, "console", "a", 6), RT_OK);
  CHECK_INT(q("SELECT count(*) FROM conversations WHERE chat_id = 'a'"), 1);
  CHECK_INT(rt_store_conv_get(s, "console", "a", false, 7, &r), RT_OK);
  CHECK_INT(r.rev, 0);
  CHECK_INT(r.created_at, 5);
  free(r.state);
  r.state = rt_xstrdup("{\"car\":\"X\"}");
  r.flow = rt_xstrdup("lead");
  r.step = rt_xstrdup("parts");
  CHECK_INT(rt_store_conv_save(s, &r, 9), RT_OK);
  CHECK_INT(r.rev, 1);
  rt_conv_row_clear(&r);
  CHECK_INT(rt_store_conv_get(s, "console", "a", false, 7, &r), RT_OK);
  CHECK_STR(r.state, "{\"car\":\"X\"}");
  CHECK_STR(r.step, "parts");
  CHECK_INT(r.rev, 1);
  rt_conv_row_clear(&r);
}

static char *str_q(const char *sql) {
  sqlite3_stmt *st;
  char *v = NULL;
  if (sqlite3_prepare_v2(rt_store_db(s), sql, -1, &st, NULL) != SQLITE_OK) return NULL;
  if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
    v = rt_xstrdup((const char *)sqlite3_column_text(st, 0));
  sqlite3_finalize(st);
  return v;
}

/* A save writes the phone only when it is not the one the row was read
 * or last saved with: a check-in's step hands back the phone it found,
 * and that costs no statement, also not through the conversation cache;
 * and a phone a tool linked meanwhile is not written over with the old
 * one. A new phone is written. */
T(conv_phone_written_when_changed) {
  rt_conv_row r;
  CHECK_INT(rt_store_conv_get(s, "console", "ph", true, 1, &r), RT_OK);
  CHECK(r.phone == NULL && r.phone_saved == NULL);
  tstore_trace tr = {.needle = "UPDATE conversations SET phone"};
  tstore_trace_start(s, &tr);
  r.phone = rt_xstrdup("+79000000001");
  CHECK_INT(rt_store_conv_save(s, &r, 2), RT_OK);
  CHECK_INT(tr.hits, 1);
  CHECK_INT(rt_store_conv_save(s, &r, 3), RT_OK);
  CHECK_INT(tr.hits, 1);
  rt_conv_row_clear(&r);
  /* Read again, through the cache. */
  rt_convs *cs = rt_convs_new(s, 10);
  CHECK_INT(rt_store_conv_get(s, "console", "ph", false, 4, &r), RT_OK);
  CHECK_STR(r.phone_saved, "+79000000001");
  rt_convs_put(cs, &r);
  CHECK_INT(rt_convs_get(cs, "console", "ph", 5, &r), RT_OK);
  CHECK_STR(r.phone_saved, "+79000000001");
  /* A tool links the chat to another phone; the bot's row still has the
   * first, unchanged: the tool's stays. */
  CHECK(sqlite3_exec(rt_store_db(s), "UPDATE conversations SET phone = '+79000000002' "
                     "WHERE chat_id = 'ph'", NULL, NULL, NULL) == SQLITE_OK);
  CHECK_INT(tr.hits, 2);   /* the tool's own statement */
  CHECK_INT(rt_store_conv_save(s, &r, 6), RT_OK);
  CHECK_INT(tr.hits, 2);
  char *ph = str_q("SELECT phone FROM conversations WHERE chat_id = 'ph'");
  CHECK_STR(ph, "+79000000002");
  free(ph);
  /* A step that sets a new phone writes it. */
  free(r.phone);
  r.phone = rt_xstrdup("+79000000003");
  CHECK_INT(rt_store_conv_save(s, &r, 7), RT_OK);
  CHECK_INT(tr.hits, 3);
  ph = str_q("SELECT phone FROM conversations WHERE chat_id = 'ph'");
  CHECK_STR(ph, "+79000000003");
  free(ph);
  /* A row made by hand knows nothing of the store: its phone is written. */
  rt_conv_row h = {.id = r.id, .flow = rt_xstrdup("lead"), .step = rt_xstrdup("start"),
                   .phone = rt_xstrdup("+79000000003")};
  CHECK_INT(rt_store_conv_save(s, &h, 8), RT_OK);
  CHECK_INT(tr.hits, 4);
  rt_conv_row_clear(&h);
  tstore_trace_stop(s);
  rt_conv_row_clear(&r);
  rt_convs_free(cs);
}

T(outbox_per_channel) {
  for (int i = 0; i < 600; i++) {
    char k[32];
    snprintf(k, sizeof k, "tg%d", i);
    CHECK_INT(rt_store_outbox_add(s, 1, "telegram", "c", k, "text", "{}", 1, NULL), RT_OK);
  }
  CHECK_INT(rt_store_outbox_add(s, 1, "console", "c", "con1", "text", "{}", 1, NULL), RT_OK);
  counted = 0;
  /* 600 rows for a channel that is not running do not hide this one */
  rt_store_outbox_due(s, "console", 10, 512, count_out, NULL);
  CHECK_INT(counted, 1);
  counted = 0;
  rt_store_outbox_due(s, "telegram", 10, 512, count_out, NULL);
  CHECK_INT(counted, 512);
  counted = 0;
  rt_store_outbox_due(s, "telegram", 0, 512, count_out, NULL);
  CHECK_INT(counted, 0);
}

/* The head of each chat is its oldest pending row: the row before it in
 * the chat is sent, failed or gone (pruned), never pending. */
static char heads[256];
static bool add_head(void *ud, const rt_outbox_row *r) {
  (void)ud;
  size_t n = strlen(heads);
  snprintf(heads + n, sizeof heads - n, "%s:%s|", r->chat_id, strstr(r->payload, "n") + 3);
  return true;
}

T(outbox_heads) {
  int64_t id[8];
  const char *chat[8] = {"a", "a", "a", "a", "b", "c", "c", "d"};
  int prio[8] = {0, 0, 1, 0, 1, 1, 0, 1};
  for (int i = 0; i < 8; i++) {
    char k[16], p[32];
    snprintf(k, sizeof k, "h%d", i);
    snprintf(p, sizeof p, "{\"n\":%d}", i);
    CHECK_INT(rt_store_outbox_add_prio(s, 1, "heads", chat[i], k, "text", p, prio[i], 5, &id[i]),
              RT_OK);
  }
  CHECK_INT(rt_store_outbox_sent(s, id[0], 6), RT_OK);
  CHECK_INT(rt_store_outbox_failed(s, id[1], "refused", 6), RT_OK);
  CHECK_INT(rt_store_outbox_sent(s, id[5], 6), RT_OK);
  char sql[96];
  snprintf(sql, sizeof sql, "DELETE FROM outbox WHERE id = %lld", (long long)id[5]);
  CHECK_INT(rt_store_exec(s, sql), RT_OK);   /* c's sent row pruned */
  CHECK_INT(rt_store_outbox_retry(s, id[7], 1000, "429"), RT_OK);   /* d waits */
  heads[0] = '\0';
  CHECK_INT(rt_store_outbox_heads(s, "heads", 10, 10, add_head, NULL), RT_OK);
  /* a's head is row 2 (priority 1) even though row 3 is a reply: a chat's
   * own order first; then most urgent first, oldest first; d is not due */
  CHECK_STR(heads, "c:6}|a:2}|b:4}|");
  CHECK_INT(rt_store_outbox_sent(s, id[2], 7), RT_OK);
  heads[0] = '\0';
  CHECK_INT(rt_store_outbox_heads(s, "heads", 2000, 10, add_head, NULL), RT_OK);
  CHECK_STR(heads, "a:3}|c:6}|b:4}|d:7}|");
  CHECK_INT(rt_store_exec(s, "DELETE FROM outbox WHERE channel = 'heads'"), RT_OK);
}

/* A run of sent rows is marked in one statement: exactly first..last. */
T(outbox_sent_range) {
  int64_t id[5];
  for (int i = 0; i < 5; i++) {
    char k[16];
    snprintf(k, sizeof k, "r%d", i);
    CHECK_INT(rt_store_outbox_add(s, 1, "range", "c", k, "text", "{}", 5, &id[i]), RT_OK);
  }
  CHECK_INT(rt_store_outbox_sent_range(s, id[1], id[3], 9), RT_OK);
  char sql[160];
  snprintf(sql, sizeof sql, "SELECT group_concat(status || ':' || attempts || ':' || "
           "coalesce(sent_at, '-'), ' ') FROM (SELECT * FROM outbox WHERE channel = 'range' "
           "ORDER BY id)");
  sqlite3_stmt *st;
  CHECK(sqlite3_prepare_v2(rt_store_db(s), sql, -1, &st, NULL) == SQLITE_OK);
  CHECK(sqlite3_step(st) == SQLITE_ROW);
  CHECK_STR((const char *)sqlite3_column_text(st, 0),
            "pending:0:- sent:1:9 sent:1:9 sent:1:9 pending:0:-");
  sqlite3_finalize(st);
  CHECK_INT(rt_store_exec(s, "DELETE FROM outbox WHERE channel = 'range'"), RT_OK);
}

/* An upgrade test's store: a fresh temp dir (dir, "....XXXXXX") holding
 * old.db as the migrations up to upto left it (tstore_old), its path in
 * path[64]. NULL if it cannot be made. */
static sqlite3 *old_store(char *dir, char path[64], int upto) {
  if (!mkdtemp(dir)) return NULL;
  snprintf(path, 64, "%s/old.db", dir);
  return tstore_old(path, upto);
}

/* Closes the upgraded store, gives the tests their shared store back and
 * removes the temp dir. */
static void old_store_done(rt_store *m, rt_store *keep, const char *dir) {
  char cmd[96];
  s = keep;
  rt_store_close(m);
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  CHECK_INT(system(cmd), 0);
}

/* A store written before 020: its outbox rows, pending and sent, keep
 * their ids, states and order through the table's rebuild. */
T(outbox_lean_upgrade) {
  char dir[] = "/tmp/test_store_up.XXXXXX", path[64];
  sqlite3 *db = old_store(dir, path, 17);
  CHECK(db != NULL);
  if (!db) return;
  CHECK(sqlite3_exec(db,
    "INSERT INTO outbox (id, conv_id, channel, chat_id, idem_key, payload, status, next_try_at, "
    "created_at, sent_at, priority) VALUES "
    "(7, 1, 'telegram', '42', 'c1:r1:0', '{\"n\":10}', 'sent', 1, 1, 2, 0), "
    "(9, 1, 'telegram', '42', 'c1:r2:0', '{\"n\":11}', 'pending', 1, 3, NULL, 1)",
    NULL, NULL, NULL) == SQLITE_OK);
  CHECK(sqlite3_exec(db, "INSERT INTO outbox (conv_id, channel, chat_id, idem_key, payload, "
    "next_try_at, created_at) VALUES (1, 'telegram', '42', 'c1:r2:0', '{}', 1, 1)",
    NULL, NULL, NULL) != SQLITE_OK);   /* the old table refused a second key */
  sqlite3_close(db);
  rt_store *m = tstore_open(path), *keep = s;
  s = m;
  CHECK(q("PRAGMA user_version") >= 20);
  CHECK_INT(q("SELECT count(*) FROM outbox"), 2);
  CHECK_INT(q("SELECT id FROM outbox WHERE status = 'pending' AND priority = 1"), 9);
  CHECK_INT(q("SELECT sent_at FROM outbox WHERE id = 7"), 2);
  heads[0] = '\0';
  CHECK_INT(rt_store_outbox_heads(m, "telegram", 10, 10, add_head, NULL), RT_OK);
  CHECK_STR(heads, "42:11}|");
  int64_t id = 0;
  CHECK_INT(rt_store_outbox_add(m, 1, "telegram", "42", "c1:r3:0", "text", "{}", 4, &id), RT_OK);
  CHECK(id > 9);
  old_store_done(m, keep, dir);
}

T(timers) {
  CHECK_INT(rt_store_timer_next(s), -1);
  CHECK_INT(rt_store_timer_set(s, 1, "remind", 5000, "lead.remind", NULL, 1), RT_OK);
  CHECK_INT(rt_store_timer_set(s, 1, "remind", 7000, "lead.remind", NULL, 1), RT_OK);
  CHECK_INT(rt_store_timer_set(s, 2, "remind", 6000, "lead.remind", NULL, 1), RT_OK);
  CHECK_INT(rt_store_timer_next(s), 6000);
  counted = 0;
  rt_store_timers_due(s, 6500, 100, count_timer, NULL);
  CHECK_INT(counted, 1);
  CHECK_INT(rt_store_timer_cancel(s, 2, "remind"), RT_OK);
  CHECK_INT(rt_store_timer_next(s), 7000);
}

T(timers_cancel_all) {
  CHECK_INT(rt_store_timer_set(s, 7, "a", 9000, "x.a", NULL, 1), RT_OK);
  CHECK_INT(rt_store_timer_set(s, 7, "_handoff_release", 9000, "_release", NULL, 1), RT_OK);
  CHECK_INT(rt_store_timer_set(s, 8, "a", 9000, "x.a", NULL, 1), RT_OK);
  CHECK_INT(rt_store_timers_cancel_all(s, 7), RT_OK);
  CHECK_INT(q("SELECT count(*) FROM timers WHERE conv_id = 7"), 0);
  CHECK_INT(q("SELECT count(*) FROM timers WHERE conv_id = 8"), 1);   /* another chat's stays */
  CHECK_INT(rt_store_timers_cancel_all(s, 8), RT_OK);
}

/* ---- a chat's history ---- */
static char hist[8192];
static int nhist;
static void add_hist(void *ud, const rt_history_row *r) {
  (void)ud;
  nhist++;
  size_t n = strlen(hist);
  snprintf(hist + n, sizeof hist - n, "%s%lld:%s|", r->from_customer ? "c" : "b",
           (long long)r->at, r->payload);
}

T(chat_history) {
  /* chat h1: customer and bot alternate; a reply at the same ms as the
   * message it answers; a wake-up event, a bot message still pending and a
   * failed one are no part of it. The web chat shows history (RT_CH_HISTORY:
   * the host calls rt_store_keep_history); telegram, here, does not. */
  rt_store_keep_history(s, "webchat");
  rt_store_keep_history(s, "webchat");   /* twice is once */
  int64_t id;
  CHECK_INT(rt_store_inbox_add(s, "webchat", "wc:1", "h1", "text", "{\"text\":\"m1\"}", 100, &id),
            RT_OK);
  CHECK_INT(rt_store_outbox_add(s, 1, "webchat", "h1", "hk1", "text", "{\"text\":\"r1\"}", 100, &id),
            RT_OK);
  CHECK_INT(rt_store_outbox_sent(s, id, 300), RT_OK);   /* sent later: ordered by when queued */
  CHECK_INT(rt_store_inbox_add(s, "webchat", "wc:2", "h1", "photo", "{\"text\":\"m2\"}", 200, &id),
            RT_OK);
  CHECK_INT(rt_store_inbox_add(s, "webchat", "w:1", "h1", "wake", "{\"text\":\"w\"}", 210, &id),
            RT_OK);
  CHECK_INT(rt_store_outbox_add(s, 1, "webchat", "h1", "hk2", "text", "{\"text\":\"r2\"}", 220, &id),
            RT_OK);
  CHECK_INT(rt_store_outbox_sent(s, id, 230), RT_OK);
  CHECK_INT(rt_store_outbox_add(s, 1, "webchat", "h1", "hk3", "text", "{\"text\":\"fail\"}", 240, &id),
            RT_OK);
  CHECK_INT(rt_store_outbox_failed(s, id, "x", 241), RT_OK);
  CHECK_INT(rt_store_outbox_add(s, 1, "webchat", "h1", "hk4", "text", "{\"text\":\"pend\"}", 250, &id),
            RT_OK);
  /* the same chat id on another channel, and another chat: not shown */
  CHECK_INT(rt_store_inbox_add(s, "telegram", "t:1", "h1", "text", "{\"text\":\"tg\"}", 150, &id),
            RT_OK);
  CHECK_INT(rt_store_inbox_add(s, "webchat", "wc:9", "h2", "text", "{\"text\":\"other\"}", 150, &id),
            RT_OK);
  hist[0] = '\0';
  nhist = 0;
  CHECK_INT(rt_store_chat_history(s, "webchat", "h1", 50, add_hist, NULL), RT_OK);
  CHECK_STR(hist, "c100:{\"text\":\"m1\"}|b100:{\"text\":\"r1\"}|c200:{\"text\":\"m2\"}|"
                  "b220:{\"text\":\"r2\"}|");
  /* bounded: the newest ones, still oldest first */
  hist[0] = '\0';
  CHECK_INT(rt_store_chat_history(s, "webchat", "h1", 2, add_hist, NULL), RT_OK);
  CHECK_STR(hist, "c200:{\"text\":\"m2\"}|b220:{\"text\":\"r2\"}|");
  hist[0] = '\0';
  CHECK_INT(rt_store_chat_history(s, "webchat", "nobody", 50, add_hist, NULL), RT_OK);
  CHECK_STR(hist, "");
  /* A channel that keeps no history: its rows are stored as ever, with no
   * key in the history's b-trees, and its history is empty. */
  CHECK_INT(rt_store_outbox_add(s, 1, "telegram", "h1", "hist-tg", "text", "{}", 150, &id), RT_OK);
  CHECK_INT(rt_store_outbox_sent(s, id, 151), RT_OK);
  CHECK_INT(q("SELECT count(*) FROM inbox WHERE channel = 'telegram' AND chat_id = 'h1' "
              "AND history = 0"), 1);
  CHECK_INT(q("SELECT count(*) FROM outbox WHERE idem_key = 'hist-tg' AND history = 0"), 1);
  CHECK_INT(q("SELECT count(*) FROM inbox WHERE channel = 'webchat' AND chat_id IN ('h1', 'h2') "
              "AND history = 1"), 4);
  CHECK_INT(rt_store_chat_history(s, "telegram", "h1", 50, add_hist, NULL), RT_OK);
  CHECK_STR(hist, "");
  /* a long conversation: 70 each way, the newest 50 in order */
  for (int i = 0; i < 70; i++) {
    char ext[32], key[32], p[64];
    snprintf(ext, sizeof ext, "wc:l%d", i);
    snprintf(key, sizeof key, "hl%d", i);
    snprintf(p, sizeof p, "{\"n\":%d}", i);
    CHECK_INT(rt_store_inbox_add(s, "webchat", ext, "h3", "text", p, 1000 + 10 * i, &id), RT_OK);
    CHECK_INT(rt_store_outbox_add(s, 1, "webchat", "h3", key, "text", p, 1005 + 10 * i, &id), RT_OK);
    CHECK_INT(rt_store_outbox_sent(s, id, 1006 + 10 * i), RT_OK);
  }
  hist[0] = '\0';
  nhist = 0;
  CHECK_INT(rt_store_chat_history(s, "webchat", "h3", 50, add_hist, NULL), RT_OK);
  CHECK_INT(nhist, 50);
  CHECK(strncmp(hist, "c1450:{\"n\":45}|b1455:{\"n\":45}|", 30) == 0);
  CHECK(strstr(hist, "b1695:{\"n\":69}|") && hist[strlen(hist) - 1] == '|' &&
        strcmp(strstr(hist, "b1695"), "b1695:{\"n\":69}|") == 0);
  CHECK_INT(q("SELECT count(*) FROM sqlite_master WHERE name = 'outbox_chat'"), 1);
  /* A chat whose rows lie thousands of ids apart, in buckets of 4,096 ids
   * (023_chat_buckets.sql) with other chats' rows between: the newest
   * three still come, across the buckets, in order; the chat's oldest row
   * sits in the very first bucket. */
  CHECK_INT(rt_store_inbox_add(s, "webchat", "b:0", "h4", "text", "{\"n\":0}", 5000, &id), RT_OK);
  CHECK(id < 4096);
  CHECK_INT(rt_store_exec(s, "INSERT INTO inbox (id, channel, ext_id, chat_id, kind, payload, "
                             "received_at, status) VALUES (40000, 'webchat', 'b:x', 'h5', 'text', "
                             "'{}', 5001, 'done')"), RT_OK);
  CHECK_INT(rt_store_inbox_add(s, "webchat", "b:1", "h4", "text", "{\"n\":1}", 5010, &id), RT_OK);
  CHECK(id == 40001);
  CHECK_INT(rt_store_exec(s, "INSERT INTO outbox (id, channel, chat_id, idem_key, payload, status, "
                             "next_try_at, created_at) VALUES (90000, 'webchat', 'h4', 'b1', "
                             "'{\"r\":1}', 'sent', 5020, 5020), (99000, 'webchat', 'h5', 'b2', "
                             "'{}', 'sent', 5030, 5030)"), RT_OK);
  CHECK_INT(rt_store_inbox_add(s, "webchat", "b:2", "h4", "text", "{\"n\":2}", 5040, &id), RT_OK);
  CHECK_INT(rt_store_outbox_add(s, 1, "webchat", "h4", "b3", "text", "{\"r\":2}", 5050, &id), RT_OK);
  CHECK(id == 99001);
  CHECK_INT(rt_store_outbox_sent(s, id, 5051), RT_OK);
  hist[0] = '\0';
  CHECK_INT(rt_store_chat_history(s, "webchat", "h4", 3, add_hist, NULL), RT_OK);
  CHECK_STR(hist, "b5020:{\"r\":1}|c5040:{\"n\":2}|b5050:{\"r\":2}|");
  hist[0] = '\0';
  CHECK_INT(rt_store_chat_history(s, "webchat", "h4", 50, add_hist, NULL), RT_OK);
  CHECK_STR(hist, "c5000:{\"n\":0}|c5010:{\"n\":1}|b5020:{\"r\":1}|c5040:{\"n\":2}|"
                  "b5050:{\"r\":2}|");
  CHECK_INT(rt_store_exec(s, "DELETE FROM inbox WHERE chat_id IN ('h4', 'h5')"), RT_OK);
  CHECK_INT(rt_store_exec(s, "DELETE FROM outbox WHERE chat_id IN ('h4', 'h5')"), RT_OK);
  /* prune counts what the other tests left */
  CHECK_INT(rt_store_exec(s, "DELETE FROM inbox WHERE chat_id IN ('h1', 'h2', 'h3')"), RT_OK);
  CHECK_INT(rt_store_exec(s, "DELETE FROM outbox WHERE chat_id IN ('h1', 'h3')"), RT_OK);
}

/* A store written before 021: its inbox rows keep their ids, states and
 * payloads through the table's rebuilds (021, 023); the new unique key still refuses
 * a redelivery, takes the same channel id in another chat as that chat's
 * own, and finds the chat's rows for its history. */
T(index_keys_upgrade) {
  char dir[] = "/tmp/test_store_keys.XXXXXX", path[64];
  sqlite3 *db = old_store(dir, path, 20);
  CHECK(db != NULL);
  if (!db) return;
  CHECK(sqlite3_exec(db,
    "INSERT INTO inbox (id, channel, ext_id, chat_id, kind, payload, received_at, status, "
    "done_at, attempts, reason) VALUES "
    "(5, 'telegram', 'u1', '42', 'text', '{\"text\":\"а\"}', 10, 'done', 11, 0, NULL), "
    "(8, 'telegram', 'u2', '42', 'text', '{\"text\":\"б\"}', 20, 'quarantined', 21, 2, 'crash'), "
    "(9, 'telegram', 'u3', '43', 'text', '{}', 30, 'new', NULL, 1, NULL)",
    NULL, NULL, NULL) == SQLITE_OK);
  sqlite3_close(db);
  rt_store *m = tstore_open(path), *keep = s;
  s = m;
  rt_store_keep_history(m, "telegram");
  CHECK(q("PRAGMA user_version") >= 24);
  /* the rows stored before 024 are in the history (u1, u2 below) */
  CHECK_INT(q("SELECT count(*) FROM inbox WHERE history = 1"), 3);
  CHECK_INT(q("SELECT count(*) FROM inbox"), 3);
  CHECK_INT(q("SELECT attempts FROM inbox WHERE id = 8 AND status = 'quarantined' "
              "AND reason = 'crash' AND done_at = 21 AND chat_id = '42'"), 2);
  CHECK_INT(q("SELECT id FROM inbox WHERE status = 'new'"), 9);
  /* three b-trees besides the table: the unique key, the pending rows, and
   * the rows by bucket of ids and chat (023) */
  CHECK_INT(q("SELECT count(*) FROM sqlite_master WHERE type = 'index' AND tbl_name = 'inbox'"), 3);
  CHECK_INT(q("SELECT count(*) FROM sqlite_master WHERE name = 'inbox_chat'"), 1);
  int64_t id = 0;
  CHECK_INT(rt_store_inbox_add(m, "telegram", "u2", "42", "text", "{}", 40, &id), 1);
  CHECK_INT(rt_store_inbox_add(m, "telegram", "u3", "43", "text", "{}", 40, &id), 1);
  /* the same channel id in another chat is that chat's own event */
  CHECK_INT(rt_store_inbox_add(m, "telegram", "u2", "44", "text", "{}", 40, &id), RT_OK);
  CHECK_INT(rt_store_inbox_add(m, "telegram", "u4", "42", "text", "{\"n\":1}", 40, &id), RT_OK);
  CHECK(id > 9);
  hist[0] = '\0';
  nhist = 0;
  CHECK_INT(rt_store_chat_history(m, "telegram", "42", 2, add_hist, NULL), RT_OK);
  CHECK_STR(hist, "c20:{\"text\":\"б\"}|c40:{\"n\":1}|");
  old_store_done(m, keep, dir);
}

T(prune) {
  CHECK_INT(rt_store_exec(s, "UPDATE inbox SET status = 'done'"), RT_OK);
  CHECK_INT(rt_store_exec(s, "UPDATE outbox SET status = 'sent' WHERE channel = 'console'"), RT_OK);
  /* The sent console row is the outbox's newest: it stays, so that a new
   * row never gets the id of a deleted one (out_visible in store.c). */
  int64_t n = rt_store_prune(s, 100, 1000);
  CHECK_INT(n, 2);
  CHECK_INT(q("SELECT count(*) FROM inbox"), 0);
  CHECK_INT(q("SELECT count(*) FROM outbox"), 601);   /* pending rows stay */
  int64_t top = q("SELECT max(id) FROM outbox"), id = 0;
  CHECK_INT(rt_store_outbox_add(s, 1, "console", "c", "con2", "text", "{}", 200, &id), RT_OK);
  CHECK(id == top + 1);
  CHECK_INT(rt_store_prune(s, 100, 1000), 1);
  CHECK_INT(q("SELECT count(*) FROM outbox"), 601);
}

static void sleep_ms(int ms) {
  struct timespec d = {ms / 1000, (long)(ms % 1000) * 1000000};
  nanosleep(&d, NULL);
}

/* A tool that waits for the lock gets it in the first gap another writer
 * leaves, however short: a writer that holds the lock 600 ms and lets it
 * go for 10 ms (two campaign runs on a slow machine, chunk after chunk)
 * never keeps it from a waiter for its whole 2 s. SQLite's own
 * busy_timeout sleeps 100 ms between tries once it has waited a little: it
 * hit one gap in ten, and ran out of its 2 s on most of these waits. */
T(busy_wait_takes_the_first_gap) {
  char path[] = "/tmp/test_store_busy.XXXXXX";
  int fd = mkstemp(path);
  CHECK(fd >= 0);
  close(fd);
  unlink(path);
  char *sql = rt_paths_schema("sql"), *err = NULL;
  /* 2 s, shorter than the writer's 3 s: only a wait that takes a gap passes */
  rt_store_opts o = {.sql_dir = sql, .sync_off = true, .busy_wait_ms = 2000};
  rt_store *a;
  CHECK_INT(rt_store_open(path, &o, &a, &err), RT_OK);
  rt_store_close(a);
  fflush(NULL);
  int ready[2];
  CHECK(pipe(ready) == 0);
  pid_t pid = fork();
  if (pid == 0) {   /* the other writer: 3 s of 600 ms transactions */
    rt_store *w;
    char *e = NULL;
    if (rt_store_open(path, &o, &w, &e) != RT_OK) _exit(2);
    bool told = false;
    for (int i = 0; i < 5; i++) {
      if (rt_store_begin(w) != RT_OK) _exit(3);
      if (!told && write(ready[1], "x", 1) == 1) told = true;
      rt_store_exec(w, "INSERT INTO meta (key, value) VALUES ('busy', 'x') "
                       "ON CONFLICT (key) DO UPDATE SET value = value || 'x'");
      sleep_ms(600);
      if (rt_store_commit(w) != RT_OK) _exit(4);
      sleep_ms(10);
    }
    rt_store_close(w);
    _exit(0);
  }
  char x;
  CHECK(read(ready[0], &x, 1) == 1);
  rt_store *b;
  CHECK_INT(rt_store_open(path, &o, &b, &err), RT_OK);
  int got = 0;
  for (int i = 0; i < 3; i++) {
    if (rt_store_begin(b) != RT_OK) break;
    got++;
    rt_store_commit(b);
    sleep_ms(20);
  }
  CHECK_INT(got, 3);
  rt_store_close(b);
  int status = 0;
  waitpid(pid, &status, 0);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  close(ready[0]);
  close(ready[1]);
  free(sql);
  tstore_unlink(path);
}

int main(void) {
  char path[] = "/tmp/test_store.XXXXXX";
  int fd = mkstemp(path);
  if (fd < 0) return 1;
  close(fd);
  unlink(path);
  char *sql = rt_paths_schema("sql"), *err = NULL;
  rt_store_opts o = {.sql_dir = sql, .sync_off = true};
  if (rt_store_open(path, &o, &s, &err) != RT_OK) { fprintf(stderr, "%s\n", err); return 1; }
  free(sql);
  T_RUN(migrations);
  T_RUN(sync_later_hides_rows);
  T_RUN(inbox_dedup);
  T_RUN(conversations);
  T_RUN(conv_phone_written_when_changed);
  T_RUN(outbox_per_channel);
  T_RUN(outbox_heads);
  T_RUN(outbox_lean_upgrade);
  T_RUN(outbox_sent_range);
  T_RUN(timers);
  T_RUN(timers_cancel_all);
  T_RUN(chat_history);
  T_RUN(index_keys_upgrade);
  T_RUN(prune);
  T_RUN(busy_wait_takes_the_first_gap);
  rt_store_close(s);
  tstore_unlink(path);
  return T_DONE();
}
