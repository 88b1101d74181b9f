/* store.c -- SQLite store (see store.h).
 *
 * Statements are prepared once at open and reset after each use. The file
 * is in WAL mode so readers (stats, check) never block the bot; the one
 * writer is this process, guarded by the shop lock in main.c. */
#include "store_impl.h"
#include "log.h"
#include "store_tools.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

enum {
  S_INBOX_ADD, S_INBOX_ADD_DONE, S_INBOX_REOPEN, S_INBOX_PENDING, S_INBOX_GET, S_INBOX_FINISH, S_INBOX_ATTEMPT, S_INBOX_QUARANTINE,
  S_CONV_GET, S_CONV_BY_ID, S_CONV_CREATE, S_CONV_SAVE, S_CONV_PHONE,
  S_OUT_ADD, S_OUT_DUE, S_OUT_SENT, S_OUT_RETRY, S_OUT_FAILED, S_OUT_HEADS, S_OUT_PENDING,
  S_TIMER_SET, S_TIMER_CANCEL, S_TIMER_CANCEL_ALL, S_TIMER_NEXT, S_TIMER_DUE, S_TIMER_DEL, S_TIMER_COUNT,
  S_TIMER_EXISTS, S_META_GET, S_META_SET,
  S_EVENT_ADD, S_LEAD_ADD, S_CUSTOMER_GET, S_CUSTOMER_ADDRS, S_ADDR_PHONE, S_ADDR_SET,
  S_ADDR_BLOCK, S_OUT_CHAT, S_HIST_IN, S_HIST_OUT, S_HIST_IDS, S_MARK_SET, S_MARK_PARK,
  S_BEGIN, S_COMMIT, S_ROLLBACK,
  S_COUNT
};

#define CONV_COLS "id, channel, chat_id, user_id, phone, flow, step, state, mode, " \
                  "last_error, rev, created_at, updated_at, last_in_at, owner, owner_name"
#define CONV_COLS_V "v.id, v.channel, v.chat_id, v.user_id, v.phone, v.flow, v.step, " \
                    "v.state, v.mode, v.last_error, v.rev, v.created_at, v.updated_at, " \
                    "v.last_in_at, v.owner, v.owner_name"

static const char *stmt_sql[S_COUNT] = {
  [S_INBOX_ADD] = "INSERT INTO inbox (channel, ext_id, chat_id, kind, payload, received_at, "
                  "history) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT DO NOTHING",
  [S_INBOX_ADD_DONE] = "INSERT INTO inbox (channel, ext_id, chat_id, kind, payload, received_at, "
                       "status, done_at, history) VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'done', ?6, ?7) "
                       "ON CONFLICT DO NOTHING",
  [S_INBOX_REOPEN] = "UPDATE inbox SET status = 'new', done_at = NULL WHERE id = ?1",
  [S_INBOX_PENDING] = "SELECT id, channel, chat_id, kind, payload FROM inbox "
                      "WHERE status = 'new' ORDER BY id",
  [S_INBOX_GET] = "SELECT payload FROM inbox WHERE id = ?1",
  [S_INBOX_FINISH] = "UPDATE inbox SET status = ?2, done_at = ?3 WHERE id = ?1",
  [S_INBOX_ATTEMPT] = "UPDATE inbox SET attempts = attempts + 1 WHERE id = ?1 "
                      "RETURNING attempts - 1",
  [S_INBOX_QUARANTINE] = "UPDATE inbox SET status = 'quarantined', done_at = ?2, reason = ?3 "
                         "WHERE id = ?1",
  [S_CONV_GET] = "SELECT " CONV_COLS " FROM conversations WHERE channel = ?1 AND chat_id = ?2",
  [S_CONV_BY_ID] = "SELECT " CONV_COLS " FROM conversations WHERE id = ?1",
  [S_CONV_CREATE] = "INSERT INTO conversations (channel, chat_id, created_at, updated_at) "
                    "VALUES (?1, ?2, ?3, ?3) ON CONFLICT DO NOTHING",
  /* The phone is set apart, and only when it changes: SQLite rewrites the
   * entry of every index on a column an UPDATE sets (conversations_phone),
   * changed or not, and most steps learn no phone. */
  [S_CONV_SAVE] = "UPDATE conversations SET flow = ?2, step = ?3, state = ?4, mode = ?5, "
                  "user_id = ?7, last_in_at = ?8, last_error = ?9, "
                  "rev = rev + 1, updated_at = ?10, owner = ?11, owner_name = ?12 WHERE id = ?1",
  [S_CONV_PHONE] = "UPDATE conversations SET phone = ?2 WHERE id = ?1 AND phone IS NOT ?2",
  [S_OUT_ADD] = "INSERT INTO outbox (conv_id, channel, chat_id, idem_key, kind, payload, "
                "next_try_at, created_at, priority, history, status) "
                "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?8, ?9, ?10)",
  /* The first pending row of each chat (per-chat order), if it is due,
   * most urgent first. A chat's pending rows are its newest (its next row
   * leaves only after the one before is sent or failed for good), so a
   * pending row is the head when no earlier row of its chat is pending:
   * one probe of outbox_chat_pending, which holds the pending rows only
   * (023_chat_buckets.sql). The order is outbox_prio_pending's key,
   * priority then id (021_index_keys.sql). "+id <= ?" is out_visible's
   * bound: the + keeps SQLite on the pending rows' index instead of a walk
   * of every row up to that id. */
  [S_OUT_HEADS] = "SELECT id, conv_id, attempts, channel, chat_id, kind, payload, idem_key, "
                  "priority FROM outbox AS o WHERE status = 'pending' AND channel = ?1 "
                  "AND next_try_at <= ?2 AND NOT EXISTS (SELECT 1 FROM outbox AS p "
                  "WHERE p.status = 'pending' AND p.chat_id = o.chat_id "
                  "AND p.channel = o.channel AND p.id < o.id) "
                  "AND +id <= ?4 ORDER BY priority * 1000000000000000 + id LIMIT ?3",
  [S_OUT_PENDING] = "SELECT count(*) FROM outbox WHERE status = 'pending' AND channel = ?1 "
                    "AND +id <= ?2",
  [S_OUT_DUE] = "SELECT id, conv_id, attempts, channel, chat_id, kind, payload, idem_key "
                "FROM outbox WHERE status = 'pending' AND channel = ?3 AND next_try_at <= ?1 "
                "AND +id <= ?4 ORDER BY id LIMIT ?2",
  /* Rows ?1 to ?2, each of them sent (rt_store_outbox_sent_range). */
  [S_OUT_SENT] = "UPDATE outbox SET status = 'sent', sent_at = ?3, attempts = attempts + 1 "
                 "WHERE id BETWEEN ?1 AND ?2",
  /* 'pending' again for a row that was open (025_outbox_mark.sql): from
   * now on it waits in the pending indexes. */
  [S_OUT_RETRY] = "UPDATE outbox SET attempts = attempts + 1, next_try_at = ?2, error = ?3, "
                  "status = 'pending' WHERE id = ?1",
  [S_OUT_FAILED] = "UPDATE outbox SET status = 'failed', attempts = attempts + 1, "
                   "error = ?2, sent_at = ?3, fail_reason = ?4 WHERE id = ?1",
  [S_TIMER_SET] = "INSERT INTO timers (conv_id, name, due_at, step, data, created_at) "
                  "VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (conv_id, name) DO UPDATE "
                  "SET due_at = excluded.due_at, step = excluded.step, data = excluded.data",
  [S_TIMER_CANCEL] = "DELETE FROM timers WHERE conv_id = ?1 AND name = ?2",
  [S_TIMER_CANCEL_ALL] = "DELETE FROM timers WHERE conv_id = ?1",
  [S_TIMER_NEXT] = "SELECT MIN(due_at) FROM timers",
  /* With the whole conversation row: the wake event's step needs it, and
   * the firing puts it in the bot's memory instead of reading it again. */
  [S_TIMER_DUE] = "SELECT t.id, t.conv_id, t.due_at, t.name, t.step, t.data, " CONV_COLS_V " "
                  "FROM timers t LEFT JOIN conversations v ON v.id = t.conv_id "
                  "WHERE t.due_at <= ?1 ORDER BY t.due_at, t.id LIMIT ?2",
  [S_TIMER_DEL] = "DELETE FROM timers WHERE id = ?1",
  /* The flow's own wake-ups: names starting with _ are the runtime's. */
  [S_TIMER_COUNT] = "SELECT COUNT(*) FROM timers WHERE conv_id = ?1 AND substr(name, 1, 1) != '_'",
  [S_TIMER_EXISTS] = "SELECT 1 FROM timers WHERE conv_id = ?1 AND name = ?2",
  [S_META_GET] = "SELECT value FROM meta WHERE key = ?1",
  [S_META_SET] = "INSERT INTO meta (key, value) VALUES (?1, ?2) "
                 "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
  [S_EVENT_ADD] = "INSERT INTO events (at, conv_id, flow, campaign, kind, data) "
                  "VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
  [S_LEAD_ADD] = "INSERT INTO leads (conv_id, at, flow, channel, campaign, car, car_kind, "
                 "parts, name, phone, data) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, "
                 "?10, ?11)",
  /* The customer by phone: a primary-key lookup (rt_store_customer_read
   * finds the phone first, each way a point lookup). */
  [S_CUSTOMER_GET] = "SELECT phone, name, last_purchase, bonus_balance, timezone, car, "
                     "opted_out, blocked FROM customers WHERE phone = ?1",
  /* In the order of customer_addresses_by_phone (017): no sort per call. */
  [S_CUSTOMER_ADDRS] = "SELECT channel, address, status FROM customer_addresses "
                       "WHERE phone = ?1 ORDER BY channel, updated_at DESC, address",
  [S_ADDR_PHONE] = "SELECT phone FROM customer_addresses WHERE channel = ?1 AND address = ?2",
  /* An address moves to the customer who has it now and becomes their
   * newest on the channel; its status stays (an export read again does not
   * undo what the channel said). */
  [S_ADDR_SET] = "INSERT INTO customer_addresses (channel, address, phone, updated_at) "
                 "VALUES (?1, ?2, ?3, ?4) ON CONFLICT (channel, address) DO UPDATE "
                 "SET phone = excluded.phone, updated_at = excluded.updated_at",
  /* A chat the channel refused for good: the row is made for the customer
   * of the chat's conversation when the address was not known yet (a
   * WhatsApp number taken from the phone). */
  [S_ADDR_BLOCK] = "INSERT INTO customer_addresses (channel, address, phone, status, reason, "
                   "status_at, updated_at) SELECT ?1, ?2, COALESCE((SELECT phone FROM "
                   "customer_addresses WHERE channel = ?1 AND address = ?2), (SELECT phone "
                   "FROM conversations WHERE channel = ?1 AND chat_id = ?2)), ?5, ?3, ?4, ?4 "
                   "WHERE COALESCE((SELECT phone FROM customer_addresses WHERE channel = ?1 "
                   "AND address = ?2), (SELECT phone FROM conversations WHERE channel = ?1 "
                   "AND chat_id = ?2)) IS NOT NULL ON CONFLICT (channel, address) DO UPDATE "
                   "SET status = excluded.status, reason = excluded.reason, "
                   "status_at = excluded.status_at",
  [S_OUT_CHAT] = "SELECT channel, chat_id FROM outbox WHERE id = ?1",
  /* A chat's rows in one bucket of 4,096 ids (?1 = id >> 12), newest
   * first, at most ?4: one probe of inbox_chat or outbox_chat
   * (023_chat_buckets.sql), which hold the rows of the channels that keep
   * history (024_history_kept.sql). The expression and the condition must
   * be the indexes'. */
  [S_HIST_IN] = "SELECT received_at, id, ext_id, payload FROM inbox WHERE (id >> 12) = ?1 "
                "AND chat_id = ?2 AND channel = ?3 AND history = 1 AND kind IN ('text', 'photo') "
                "ORDER BY id DESC LIMIT ?4",
  [S_HIST_OUT] = "SELECT created_at, id, NULL, payload FROM outbox WHERE (id >> 12) = ?1 "
                 "AND chat_id = ?2 AND channel = ?3 AND history = 1 AND status = 'sent' "
                 "ORDER BY id DESC LIMIT ?4",
  [S_HIST_IDS] = "SELECT (SELECT min(id) FROM inbox), (SELECT max(id) FROM inbox), "
                 "(SELECT min(id) FROM outbox), (SELECT max(id) FROM outbox)",
  /* The channel's mark moves past the rows its deliveries settled. */
  [S_MARK_SET] = "UPDATE outbox_mark SET next = ?2 WHERE channel = ?1 AND next < ?2",
  /* The open rows of a channel (025_outbox_mark.sql) back in the pending
   * indexes: a walk of the ids from the mark on (none without a mark). */
  [S_MARK_PARK] = "UPDATE outbox SET status = 'pending' WHERE id >= (SELECT next FROM outbox_mark "
                  "WHERE channel = ?1) AND channel = ?1 AND status = 'sent' AND sent_at IS NULL",
  [S_BEGIN] = "BEGIN IMMEDIATE",
  [S_COMMIT] = "COMMIT",
  [S_ROLLBACK] = "ROLLBACK",
};

typedef struct {
  rt_outbox_row **v;
  size_t n, cap;
} row_list;

struct rt_store {
  sqlite3 *db;
  sqlite3_stmt *prepared[S_COUNT];   /* NULL until first used (stmt()) */
  int last_rc;
  int64_t busy_since_ns;       /* the wait for the lock now being retried began */
  int64_t busy_wait_ns;        /* how long a wait may last (rt_store_opts) */
  size_t track_max;            /* outbox rows kept for the deliveries; 0: none */
  char **hist_ch;              /* channels whose rows go into the history b-trees */
  size_t nhist_ch;
  char **mark_ch;              /* channels with a mark: their rows are written open */
  size_t nmark_ch;
  row_list out_txn, out_done;  /* inserted in the open transaction / committed */
  bool out_overflow;
  int64_t wal_frames;          /* own_checkpoints: frames in the WAL after the last commit */
  int64_t wal_copied;          /* of those, copied into the file by rt_store_checkpoint */
  int64_t wal_written;         /* frames written since open (figures) */
  /* sync_later: commits are counted by the WAL hook; the rows a commit
   * queued wait in out_wait (with their commit's number) until the caller
   * says that commit is on disk, and the outbox scans see rows up to
   * out_synced only. */
  bool sync_later;
  int64_t commits, synced, sync_upto;   /* commits seen; on disk; the sync under way covers */
  int64_t out_committed, out_synced;    /* highest outbox id committed; of a synced commit */
  int64_t out_txn_max, sync_out;        /* highest id of the open transaction; of sync_upto */
  char *wal_path;
  row_list out_wait;
  int64_t *wait_seq;                    /* the commit of each row of out_wait */
  size_t wait_cap;
  void (*on_commit)(void *ud);
  void *on_commit_ud;
};

#define BUSY_WAIT_MS 10000

/* Replaces SQLite's automatic checkpoint (which is this same hook, set by
 * wal_autocheckpoint): only counts. The WAL starts again from its first
 * frame once everything was copied; fewer frames than were copied means
 * that happened. */
static int wal_count(void *ud, sqlite3 *db, const char *name, int frames) {
  (void)db;
  (void)name;
  rt_store *s = ud;
  s->commits++;
  if (s->on_commit) s->on_commit(s->on_commit_ud);
  if (frames < s->wal_copied) s->wal_copied = 0;
  s->wal_written += frames >= s->wal_frames ? frames - s->wal_frames : frames;
  s->wal_frames = frames;
  return SQLITE_OK;
}

static int64_t mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Waits for another process's write lock, trying again every millisecond
 * for up to busy_wait_ms. SQLite's own busy_timeout sleeps longer and
 * longer, up to 100 ms between tries: against a writer that lets the lock
 * go for only a few ms between its transactions (a campaign pauses 12 ms
 * between chunks) it keeps waking up inside the next transaction, and two
 * campaign runs at once starved one of them into "database is locked"
 * (unit.campaign, under ASan on a loaded machine). Trying every ms takes
 * the lock in the first gap, so two writers take turns. */
static int busy_wait(void *ud, int tries) {
  rt_store *s = ud;
  int64_t now = mono_ns();
  if (tries == 0) s->busy_since_ns = now;
  if (now - s->busy_since_ns >= s->busy_wait_ns) return 0;
  struct timespec d = {0, 1000000};
  nanosleep(&d, NULL);
  return 1;
}

/* ---- helpers ---- */

static sqlite3_stmt *prep(rt_store *s, const char *sql);
static int64_t count(rt_store *s, const char *sql);

static int fail(rt_store *s, int rc) {
  s->last_rc = rc;
  return rt_store_errcode(s);
}

int rt_store_errcode(rt_store *s) {
  switch (s->last_rc & 0xff) {
  case SQLITE_OK: case SQLITE_DONE: case SQLITE_ROW: return RT_OK;
  case SQLITE_FULL: return RT_EFULL;
  case SQLITE_READONLY: case SQLITE_CANTOPEN: case SQLITE_PERM: return RT_EROFS;
  case SQLITE_BUSY: case SQLITE_LOCKED: return RT_EBUSY;
  default: return RT_EIO;
  }
}

const char *rt_store_errmsg(rt_store *s) {
  return s->db ? sqlite3_errmsg(s->db) : "store not open";
}

static void bind_text(sqlite3_stmt *st, int i, const char *v) {
  if (v) sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC);
  else sqlite3_bind_null(st, i);
}

static char *col_dup(sqlite3_stmt *st, int i) {
  const unsigned char *t = sqlite3_column_text(st, i);
  return t ? rt_xstrdup((const char *)t) : NULL;
}

/* Runs a write statement to completion and resets it. */
/* Statement i, prepared at its first use (rt_store_open checked that it
 * prepares) and kept until the store is closed or rt_store_release_memory.
 * NULL when it cannot be prepared now (no memory): SQLite answers
 * SQLITE_MISUSE to a NULL statement, which the caller reports as a store
 * error, with the prepare's message. */
static sqlite3_stmt *stmt(rt_store *s, int i) {
  if (!s->prepared[i] && sqlite3_prepare_v3(s->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
                                            &s->prepared[i], NULL) != SQLITE_OK) {
    s->last_rc = sqlite3_errcode(s->db);
    sqlite3_finalize(s->prepared[i]);
    s->prepared[i] = NULL;
  }
  return s->prepared[i];
}

static int run(rt_store *s, sqlite3_stmt *st) {
  int rc = sqlite3_step(st);
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  if (rc != SQLITE_DONE && rc != SQLITE_ROW) return fail(s, rc);
  s->last_rc = SQLITE_OK;
  return RT_OK;
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static char *read_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *buf = rt_xmalloc((size_t)n + 1);
  size_t got = fread(buf, 1, (size_t)n, f);
  buf[got] = '\0';
  fclose(f);
  return buf;
}

/* Applies schema/sql/NNN_*.sql files whose number is above user_version,
 * each in its own transaction together with the version bump. */
static int migrate(rt_store *s, const char *dir, char **err) {
  sqlite3_stmt *st;
  int version = 0;
  if (sqlite3_prepare_v2(s->db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK) {
    if (sqlite3_step(st) == SQLITE_ROW) version = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
  }
  DIR *d = opendir(dir);
  if (!d) {
    *err = rt_xasprintf("%s: cannot read migrations: %s", dir, strerror(errno));
    return RT_ENOENT;
  }
  char **names = NULL;
  size_t n = 0;
  struct dirent *de;
  while ((de = readdir(d))) {
    size_t len = strlen(de->d_name);
    if (len > 4 && strcmp(de->d_name + len - 4, ".sql") == 0 &&
        de->d_name[0] >= '0' && de->d_name[0] <= '9') {
      names = rt_xrealloc(names, (n + 1) * sizeof *names);
      names[n++] = rt_xstrdup(de->d_name);
    }
  }
  closedir(d);
  if (n) qsort(names, n, sizeof *names, cmp_str);
  int rc = RT_OK;
  /* A newer shopbot may have renamed or dropped what this one's statements
   * use, or rely on rows this one would write wrongly: refuse rather than
   * run on a schema we do not know. */
  int newest = n ? atoi(names[n - 1]) : 0;
  if (version > newest) {
    *err = rt_xasprintf("this database was written by a newer shopbot (schema %d, this one "
                        "knows %d): run that version, or restore a backup made by this one",
                        version, newest);
    rc = RT_EINVAL;
  }
  for (size_t i = 0; i < n && rc == RT_OK; i++) {
    int num = atoi(names[i]);
    if (num <= version) continue;
    char *path = rt_xasprintf("%s/%s", dir, names[i]);
    char *sql = read_file(path);
    char *msg = NULL;
    char *full = sql ? rt_xasprintf("BEGIN;\n%s\n;PRAGMA user_version = %d;\nCOMMIT;", sql, num) : NULL;
    if (!full) {
      *err = rt_xasprintf("%s: cannot read", path);
      rc = RT_EIO;
    } else if (sqlite3_exec(s->db, full, NULL, NULL, &msg) != SQLITE_OK) {
      *err = rt_xasprintf("%s: %s", path, msg ? msg : "migration failed");
      s->last_rc = sqlite3_errcode(s->db);
      rc = rt_store_errcode(s) ? rt_store_errcode(s) : RT_EIO;
      sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    } else {
      version = num;
    }
    sqlite3_free(msg);
    free(full);
    free(sql);
    free(path);
  }
  for (size_t i = 0; i < n; i++) free(names[i]);
  free(names);
  return rc;
}

/* ---- open / close ---- */

static int64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Stops PRAGMA quick_check once its time budget is spent (see check_pages). */
static int check_deadline(void *ud) {
  const int64_t *deadline = ud;
  return mono_ms() > *deadline;
}

/* The message for a damaged file, whichever step of opening found it. */
static char *damaged(const char *path, const char *detail) {
  return rt_xasprintf(
      "%s: the database file is damaged (%s). Stop every shopbot using it, keep a copy of the "
      "file, then restore the latest backup, or salvage what is readable with "
      "`sqlite3 %s .recover | sqlite3 recovered.db` and put recovered.db in its place",
      path, detail, path);
}

/* Replaces *err by the damaged-file message when SQLite's last error says
 * the file is damaged or not a database at all. */
static void name_damage(rt_store *s, const char *path, char **err) {
  int a = s->last_rc & 0xff, b = sqlite3_errcode(s->db) & 0xff;
  if (a != SQLITE_CORRUPT && a != SQLITE_NOTADB && b != SQLITE_CORRUPT && b != SQLITE_NOTADB)
    return;
  /* *err says what failed; a ROLLBACK since may have reset the handle's. */
  const char *detail = *err ? *err : sqlite3_errmsg(s->db);
  size_t n = strlen(path);
  if (strncmp(detail, path, n) == 0 && strncmp(detail + n, ": ", 2) == 0) detail += n + 2;
  char *m = damaged(path, detail);
  free(*err);
  *err = m;
}

/* PRAGMA quick_check: catches damaged interior pages that opening the file
 * does not touch (the header and page 1 can be intact), before the bot
 * writes into them. It reads every page once: 0.2 s for a 100 MB store in
 * the page cache, 2 s from a cold disk (measured on a 2-core VM). A store
 * too large to finish within budget_ms is checked as far as it got and
 * opened with a warning, so a start stays bounded; `sqlite3 FILE 'PRAGMA
 * integrity_check'` with the bot stopped checks it all. */
static int check_pages(rt_store *s, const char *path, int budget_ms, char **err) {
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(s->db, "PRAGMA quick_check(1)", -1, &st, NULL) != SQLITE_OK) {
    s->last_rc = sqlite3_errcode(s->db);
    *err = rt_xasprintf("%s: cannot check the store: %s", path, sqlite3_errmsg(s->db));
    return RT_EIO;
  }
  int64_t t0 = mono_ms(), deadline = t0 + budget_ms;
  sqlite3_progress_handler(s->db, 10000, check_deadline, &deadline);
  int rc = sqlite3_step(st);
  char *res = rc == SQLITE_ROW ? rt_xstrdup((const char *)sqlite3_column_text(st, 0)) : NULL;
  sqlite3_finalize(st);
  sqlite3_progress_handler(s->db, 0, NULL, NULL);
  int ret = RT_OK;
  if (rc == SQLITE_INTERRUPT) {
    rt_log(RT_LOG_WARN, "store-check-partial",
           "path=%s ms=%lld note=\"quick_check stopped at its time budget; run PRAGMA "
           "integrity_check offline to check the whole file\"",
           path, (long long)(mono_ms() - t0));
  } else if (rc != SQLITE_ROW || !res || strcmp(res, "ok") != 0) {
    s->last_rc = rc == SQLITE_ROW ? SQLITE_CORRUPT : rc;
    char *detail = rt_xasprintf("quick_check: %s", res ? res : sqlite3_errmsg(s->db));
    *err = damaged(path, detail);
    free(detail);
    ret = RT_EIO;
  }
  free(res);
  return ret;
}

/* Creates the folders above path ("data/" of a new shop). */
static void mkdir_parents(const char *path) {
  char *p = rt_xstrdup(path);
  for (char *q = p + 1; *q; q++) {
    if (*q != '/') continue;
    *q = '\0';
    mkdir(p, 0755);
    *q = '/';
  }
  free(p);
}

int rt_store_open(const char *path, const rt_store_opts *o, rt_store **out, char **err) {
  rt_store *s = rt_xcalloc(1, sizeof *s);
  if (strcmp(path, ":memory:") != 0 && !o->read_only) mkdir_parents(path);
  *out = NULL;
  /* SQLite counts every allocation of the process under a mutex for
   * sqlite3_memory_used() (some 80 allocations per event: Debian builds it
   * without lookaside). Nothing here reads that counter (rt_store_mem_used
   * asks the connection), so the count is switched off; this works only
   * before SQLite's first use in the process, and is harmless after. */
  sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
  /* Nor does each connection's page cache start with a block of 20 pages
   * (87 KB) that no release gives back: its pages are allocated one by
   * one, as they are after those 20. */
  sqlite3_config(SQLITE_CONFIG_PAGECACHE, (void *)NULL, 0, 0);
  int rc = sqlite3_open_v2(path, &s->db,
                           o->read_only ? SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX
                                        : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                                              SQLITE_OPEN_NOMUTEX, NULL);
  if (rc != SQLITE_OK) {
    s->last_rc = rc;
    *err = rt_xasprintf("%s: cannot open store: %s", path, s->db ? sqlite3_errmsg(s->db) : "out of memory");
    int code = rt_store_errcode(s);
    rt_store_close(s);
    return code;
  }
  /* A tool (import, campaign) waits for the bot's short writes. The bot
   * itself must not block its loop -- HTTP, timers, every chat -- while a
   * tool holds the lock: it gets SQLITE_BUSY at once and retries later. */
  s->busy_wait_ns = (int64_t)(o->busy_wait_ms > 0 ? o->busy_wait_ms : BUSY_WAIT_MS) * 1000000;
  if (!o->no_busy_wait) sqlite3_busy_handler(s->db, busy_wait, s);
  /* NORMAL is SQLite's own WAL setting that syncs at checkpoints and when
   * the WAL starts again, never at a commit; the caller's fsync of the WAL
   * after the commit (rt_store_wal_fsync) then gives what FULL gives. */
  bool want_later = o->sync_later && o->sync_full && !o->sync_off && !o->read_only &&
                    o->own_checkpoints && strcmp(path, ":memory:") != 0;
  char pragmas[256];
  if (o->read_only)
    snprintf(pragmas, sizeof pragmas, "PRAGMA query_only=ON; PRAGMA temp_store=MEMORY; "
             "PRAGMA cache_size=-%d;", (o->cache_mb > 0 ? o->cache_mb : 16) * 1024);
  else
    snprintf(pragmas, sizeof pragmas,
             "PRAGMA journal_mode=WAL; PRAGMA synchronous=%s; PRAGMA foreign_keys=OFF;"
             "PRAGMA temp_store=MEMORY; PRAGMA cache_size=-%d;",
             o->sync_off ? "OFF" : o->sync_full && !want_later ? "FULL" : "NORMAL",
             (o->cache_mb > 0 ? o->cache_mb : 16) * 1024);
  char *msg = NULL;
  if (sqlite3_exec(s->db, pragmas, NULL, NULL, &msg) != SQLITE_OK) {
    s->last_rc = sqlite3_errcode(s->db);
    *err = rt_xasprintf("%s: %s", path, msg ? msg : "cannot set up the store");
    sqlite3_free(msg);
    name_damage(s, path, err);
    int code = rt_store_errcode(s);
    rt_store_close(s);
    return code ? code : RT_EIO;
  }
  /* After a burst the WAL file is cut back to 4 MB when it starts again,
   * so its size on disk does not stay at the burst's. */
  if (o->own_checkpoints && !o->read_only) {
    sqlite3_wal_hook(s->db, wal_count, s);
    sqlite3_exec(s->db, "PRAGMA journal_size_limit=4194304", NULL, NULL, NULL);
  }
  if (want_later) {
    /* Only a WAL can be synced apart from its commits (a file system
     * without shared memory for it leaves SQLite in another mode). */
    sqlite3_stmt *jm = NULL;
    if (sqlite3_prepare_v2(s->db, "PRAGMA journal_mode", -1, &jm, NULL) == SQLITE_OK &&
        sqlite3_step(jm) == SQLITE_ROW &&
        sqlite3_stricmp((const char *)sqlite3_column_text(jm, 0), "wal") == 0) {
      s->sync_later = true;
      s->wal_path = rt_xasprintf("%s-wal", path);
    } else {
      sqlite3_exec(s->db, "PRAGMA synchronous=FULL", NULL, NULL, NULL);
    }
    sqlite3_finalize(jm);
  }
  if (o->max_pages > 0) {
    char q[64];
    snprintf(q, sizeof q, "PRAGMA max_page_count=%ld", o->max_pages);
    sqlite3_exec(s->db, q, NULL, NULL, NULL);
  }
  if (strcmp(path, ":memory:") != 0 && !o->read_only &&
      (rc = check_pages(s, path, o->check_ms > 0 ? o->check_ms : 3000, err)) != RT_OK) {
    rt_store_close(s);
    return rc;
  }
  /* quick_check read every page through the page cache; keeping them would
   * hold up to cache_mb of a file the bot mostly does not touch again (the
   * start-up RSS grew by the size of the store). The pages the bot does use
   * come back as it reads them. */
  sqlite3_db_release_memory(s->db);
  char *merr = NULL;
  rc = o->read_only ? RT_OK : migrate(s, o->sql_dir, &merr);
  if (rc != RT_OK) {
    *err = rc == RT_EINVAL ? rt_xasprintf("%s: %s", path, merr) : merr;
    if (rc == RT_EINVAL) free(merr);
    else name_damage(s, path, err);
    rt_store_close(s);
    return rc;
  }
  /* Every statement is checked against the schema here, and kept only
   * from its first use (stmt()): the 43 of them took some 190 KB, held by
   * every process that opens the store, most of it for statements a bot
   * at rest or a tool never runs. */
  for (int i = 0; i < S_COUNT; i++) {
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(s->db, stmt_sql[i], -1, &st, NULL) != SQLITE_OK) {
      *err = rt_xasprintf("%s: internal statement %d: %s", path, i, sqlite3_errmsg(s->db));
      s->last_rc = sqlite3_errcode(s->db);
      name_damage(s, path, err);
      rt_store_close(s);
      return RT_EIO;
    }
    sqlite3_finalize(st);
  }
  /* Indexes an import dropped for its load and did not live to rebuild
   * (store_tools.c; reads one meta row when there are none). A store that
   * cannot be written now is left as it is. */
  if (!o->read_only) rt_store_import_restore_indexes(s);
  /* Before the store serves, on disk: what the migrations wrote, and what
   * a process killed before its sync left in the WAL (still in the OS's
   * cache). Every row already there may then be sent. */
  if (s->sync_later) {
    int64_t upto = rt_store_sync_begin(s);
    int en = rt_store_wal_fsync(s->wal_path);
    if (en && en != ENOENT) {
      *err = rt_xasprintf("%s: cannot sync the store's WAL: %s", path, strerror(en));
      rt_store_close(s);
      return RT_EIO;
    }
    rt_store_synced(s, upto);
    sqlite3_stmt *mx = NULL;
    if (sqlite3_prepare_v2(s->db, "SELECT max(rowid) FROM outbox", -1, &mx, NULL) == SQLITE_OK &&
        sqlite3_step(mx) == SQLITE_ROW)
      s->out_committed = s->out_synced = sqlite3_column_int64(mx, 0);
    sqlite3_finalize(mx);
  }
  *out = s;
  return RT_OK;
}

static void rows_free(row_list *l) {
  for (size_t i = 0; i < l->n; i++) free(l->v[i]);
  l->n = 0;
}

static void rows_push(row_list *l, rt_outbox_row *r) {
  if (l->n == l->cap) {
    l->cap = l->cap ? l->cap * 2 : 64;
    l->v = rt_xrealloc(l->v, l->cap * sizeof *l->v);
  }
  l->v[l->n++] = r;
}

static void row_done(rt_store *s, rt_outbox_row *r) {
  if (s->out_done.n < s->track_max) rows_push(&s->out_done, r);
  else {
    free(r);
    s->out_overflow = true;
  }
}

/* The transaction committed (or a row was inserted in autocommit): its
 * rows are handed over now, or with sync_later once the commit is synced. */
static void rows_committed(rt_store *s) {
  if (s->out_txn_max > s->out_committed) s->out_committed = s->out_txn_max;
  s->out_txn_max = 0;
  if (!s->sync_later) s->out_synced = s->out_committed;
  for (size_t i = 0; i < s->out_txn.n; i++) {
    if (!s->sync_later || s->synced >= s->commits) {
      row_done(s, s->out_txn.v[i]);
      continue;
    }
    if (s->out_wait.n == s->wait_cap) {
      s->wait_cap = s->wait_cap ? s->wait_cap * 2 : 64;
      s->wait_seq = rt_xrealloc(s->wait_seq, s->wait_cap * sizeof *s->wait_seq);
    }
    s->wait_seq[s->out_wait.n] = s->commits;
    rows_push(&s->out_wait, s->out_txn.v[i]);
  }
  s->out_txn.n = 0;
}

bool rt_store_sync_later(const rt_store *s) { return s->sync_later; }

const char *rt_store_wal_path(const rt_store *s) { return s->wal_path; }

bool rt_store_sync_pending(const rt_store *s) { return s->sync_later && s->synced < s->commits; }

int64_t rt_store_sync_begin(rt_store *s) {
  s->sync_upto = s->commits;
  s->sync_out = s->out_committed;
  return s->sync_upto;
}

void rt_store_synced(rt_store *s, int64_t upto) {
  if (upto <= s->synced) return;
  s->synced = upto;
  if (upto == s->sync_upto && s->sync_out > s->out_synced) s->out_synced = s->sync_out;
  size_t k = 0;
  while (k < s->out_wait.n && s->wait_seq[k] <= upto) row_done(s, s->out_wait.v[k++]);
  if (!k) return;
  memmove(s->out_wait.v, s->out_wait.v + k, (s->out_wait.n - k) * sizeof *s->out_wait.v);
  memmove(s->wait_seq, s->wait_seq + k, (s->out_wait.n - k) * sizeof *s->wait_seq);
  s->out_wait.n -= k;
}

int64_t rt_store_synced_commits(const rt_store *s) { return s->sync_later ? s->synced : s->commits; }

int64_t rt_store_commit_count(const rt_store *s) { return s->commits; }

void rt_store_on_commit(rt_store *s, void (*fn)(void *ud), void *ud) {
  s->on_commit = fn;
  s->on_commit_ud = ud;
}

/* Runs on any thread: it touches nothing of a store, only the file. */
int rt_store_wal_fsync(const char *wal_path) {
  int fd = open(wal_path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno;
  int en = fdatasync(fd) == 0 ? 0 : errno;
  close(fd);
  return en;
}

void rt_store_close(rt_store *s) {
  if (!s) return;
  rows_free(&s->out_txn);
  rows_free(&s->out_done);
  rows_free(&s->out_wait);
  free(s->out_txn.v);
  free(s->out_done.v);
  free(s->out_wait.v);
  free(s->wait_seq);
  free(s->wal_path);
  for (size_t i = 0; i < s->nhist_ch; i++) free(s->hist_ch[i]);
  free(s->hist_ch);
  for (size_t i = 0; i < s->nmark_ch; i++) free(s->mark_ch[i]);
  free(s->mark_ch);
  for (int i = 0; i < S_COUNT; i++) sqlite3_finalize(s->prepared[i]);
  if (s->db) sqlite3_close(s->db);
  free(s);
}

sqlite3 *rt_store_db(rt_store *s) { return s->db; }

int rt_store_sqlfail(rt_store *s, int rc) { return fail(s, rc); }

int rt_store_begin(rt_store *s) { return run(s, stmt(s, S_BEGIN)); }

int rt_store_commit(rt_store *s) {
  int rc = run(s, stmt(s, S_COMMIT));
  if (rc == RT_OK) rows_committed(s);
  /* A failed COMMIT (disk full) may leave the transaction open; roll it back
   * so the next batch starts clean and nothing half-written stays. */
  if (rc != RT_OK && !sqlite3_get_autocommit(s->db)) {
    int keep = s->last_rc;
    rt_store_rollback(s);
    s->last_rc = keep;
  }
  if (rc != RT_OK) {   /* not stored: never handed over */
    rows_free(&s->out_txn);
    s->out_txn_max = 0;
  }
  return rc;
}

void rt_store_rollback(rt_store *s) {
  if (!sqlite3_get_autocommit(s->db)) run(s, stmt(s, S_ROLLBACK));
  rows_free(&s->out_txn);
  s->out_txn_max = 0;
}

int rt_store_exec(rt_store *s, const char *sql) {
  int rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
  if (rc != SQLITE_OK) return fail(s, rc);
  return RT_OK;
}

int64_t rt_store_wal_pages(rt_store *s) { return s->wal_frames - s->wal_copied; }

int64_t rt_store_wal_written(rt_store *s) { return s->wal_written; }

int64_t rt_store_wal_frames(rt_store *s) { return s->wal_frames; }

int rt_store_checkpoint(rt_store *s) {
  int log = 0, copied = 0;
  int rc = sqlite3_wal_checkpoint_v2(s->db, NULL, SQLITE_CHECKPOINT_PASSIVE, &log, &copied);
  if (rc != SQLITE_OK) return fail(s, rc);
  if (log >= 0 && copied >= 0) {
    s->wal_frames = log;
    s->wal_copied = copied;
  }
  return RT_OK;
}

struct rt_store_ckpt {
  char *path;
  sqlite3 *db;   /* opened by the first checkpoint, on the worker */
};

rt_store_ckpt *rt_store_ckpt_new(const rt_store *s) {
  if (!s->wal_path) return NULL;
  rt_store_ckpt *c = rt_xcalloc(1, sizeof *c);
  c->path = rt_xstrdup(s->wal_path);
  c->path[strlen(c->path) - 4] = '\0';   /* "<db>-wal" */
  return c;
}

const char *rt_store_ckpt_run(rt_store_ckpt *c, int *log, int *copied) {
  *log = *copied = -1;
  if (!c->db) {
    int rc = sqlite3_open_v2(c->path, &c->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
      sqlite3_close(c->db);
      c->db = NULL;
      return sqlite3_errstr(rc);
    }
    /* A new connection knows the file is in WAL mode only once it has read
     * it; until then a checkpoint reports "not WAL" and copies nothing. The
     * copy reads and writes the files directly: no page cache needed. */
    sqlite3_exec(c->db, "PRAGMA cache_size=16; PRAGMA journal_mode=WAL", NULL, NULL, NULL);
  }
  int rc = sqlite3_wal_checkpoint_v2(c->db, NULL, SQLITE_CHECKPOINT_PASSIVE, log, copied);
  return rc == SQLITE_OK ? NULL : sqlite3_errstr(rc);
}

void rt_store_ckpt_free(rt_store_ckpt *c) {
  if (!c) return;
  sqlite3_close(c->db);
  free(c->path);
  free(c);
}

void rt_store_checkpointed(rt_store *s, int log, int copied) {
  /* A WAL that started again since holds fewer frames than that copy saw:
   * its figures are already right (wal_count). */
  if (log < 0 || copied < 0 || log > s->wal_frames) return;
  if (copied > s->wal_copied) s->wal_copied = copied;
}

int64_t rt_store_page_reads(rt_store *s) {
  int cur = 0, hi = 0;
  if (!s->db || sqlite3_db_status(s->db, SQLITE_DBSTATUS_CACHE_MISS, &cur, &hi, 0) != SQLITE_OK)
    return 0;
  return cur;
}

int64_t rt_store_mem_used(rt_store *s) {
  int64_t sum = 0;
  static const int what[] = {SQLITE_DBSTATUS_CACHE_USED, SQLITE_DBSTATUS_SCHEMA_USED,
                             SQLITE_DBSTATUS_STMT_USED};
  for (size_t i = 0; s->db && i < sizeof what / sizeof *what; i++) {
    int cur = 0, hi = 0;
    if (sqlite3_db_status(s->db, what[i], &cur, &hi, 0) == SQLITE_OK) sum += cur;
  }
  return sum;
}

void rt_store_release_memory(rt_store *s) {
  if (!s->db || !sqlite3_get_autocommit(s->db)) return;
  /* The statements too: prepared again at their next use (some 30 us
   * each), they hold up to 190 KB. */
  for (int i = 0; i < S_COUNT; i++)
    if (s->prepared[i] && !sqlite3_stmt_busy(s->prepared[i])) {
      sqlite3_finalize(s->prepared[i]);
      s->prepared[i] = NULL;
    }
  sqlite3_db_release_memory(s->db);
}

/* ---- inbox ---- */

int rt_store_inbox_add(rt_store *s, const char *channel, const char *ext_id,
                       const char *chat_id, const char *kind, const char *payload,
                       int64_t now, int64_t *id) {
  return rt_store_inbox_add_as(s, channel, ext_id, chat_id, kind, payload, "new", now, id);
}

/* A shop has one to three channels: a row's `history` is a strcmp or two. */
static int keeps_history(const rt_store *s, const char *channel) {
  for (size_t i = 0; i < s->nhist_ch; i++)
    if (strcmp(s->hist_ch[i], channel) == 0) return 1;
  return 0;
}

/* A shop has one to three channels: a strcmp or two. */
static ssize_t marked(const rt_store *s, const char *channel) {
  for (size_t i = 0; i < s->nmark_ch; i++)
    if (strcmp(s->mark_ch[i], channel) == 0) return (ssize_t)i;
  return -1;
}

void rt_store_keep_history(rt_store *s, const char *channel) {
  if (keeps_history(s, channel)) return;
  s->hist_ch = rt_xrealloc(s->hist_ch, (s->nhist_ch + 1) * sizeof *s->hist_ch);
  s->hist_ch[s->nhist_ch++] = rt_xstrdup(channel);
}

int rt_store_inbox_reopen(rt_store *s, int64_t id) {
  sqlite3_stmt *st = stmt(s, S_INBOX_REOPEN);
  sqlite3_bind_int64(st, 1, id);
  return run(s, st);
}

int rt_store_inbox_add_as(rt_store *s, const char *channel, const char *ext_id,
                          const char *chat_id, const char *kind, const char *payload,
                          const char *status, int64_t now, int64_t *id) {
  sqlite3_stmt *st = stmt(s, strcmp(status, "done") == 0 ? S_INBOX_ADD_DONE : S_INBOX_ADD);
  bind_text(st, 1, channel);
  bind_text(st, 2, ext_id);
  bind_text(st, 3, chat_id);
  bind_text(st, 4, kind);
  bind_text(st, 5, payload);
  sqlite3_bind_int64(st, 6, now);
  sqlite3_bind_int(st, 7, keeps_history(s, channel));
  int rc = run(s, st);
  if (rc != RT_OK) return rc;
  if (sqlite3_changes(s->db) == 0) return 1;
  if (id) *id = sqlite3_last_insert_rowid(s->db);
  return RT_OK;
}

int rt_store_inbox_pending(rt_store *s, void (*fn)(void *, const rt_inbox_row *), void *ud) {
  sqlite3_stmt *st = stmt(s, S_INBOX_PENDING);
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    rt_inbox_row r = {
      .id = sqlite3_column_int64(st, 0),
      .channel = (const char *)sqlite3_column_text(st, 1),
      .chat_id = (const char *)sqlite3_column_text(st, 2),
      .kind = (const char *)sqlite3_column_text(st, 3),
      .payload = (const char *)sqlite3_column_text(st, 4),
    };
    fn(ud, &r);
  }
  sqlite3_reset(st);
  return rc == SQLITE_DONE ? RT_OK : fail(s, rc);
}

typedef struct {
  bool from_customer;
  int64_t at, id;
  char *ext_id, *payload;
} hist_item;

/* (at, side, id), the customer's first at the same ms: a reply is stored
 * after the message it answers (engine.c, apply_done). */
static int hist_cmp(const void *a, const void *b) {
  const hist_item *x = a, *y = b;
  if (x->at != y->at) return x->at < y->at ? -1 : 1;
  if (x->from_customer != y->from_customer) return x->from_customer ? -1 : 1;
  return x->id < y->id ? -1 : x->id > y->id;
}

/* Up to `limit` of the chat's rows of one side, newest first, bucket by
 * bucket from the one of `hi` down to the one of `lo`. */
static int hist_side(rt_store *s, int which, const char *channel, const char *chat_id,
                     int64_t lo, int64_t hi, int limit, hist_item **v, size_t *n,
                     size_t *cap) {
  sqlite3_stmt *st = stmt(s, which);
  int got = 0, rc = SQLITE_DONE;
  for (int64_t b = hi >> 12; b >= lo >> 12 && got < limit; b--) {
    sqlite3_bind_int64(st, 1, b);
    bind_text(st, 2, chat_id);
    bind_text(st, 3, channel);
    sqlite3_bind_int(st, 4, limit - got);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
      if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 16;
        *v = rt_xrealloc(*v, *cap * sizeof **v);
      }
      (*v)[(*n)++] = (hist_item){.from_customer = which == S_HIST_IN,
                                 .at = sqlite3_column_int64(st, 0),
                                 .id = sqlite3_column_int64(st, 1),
                                 .ext_id = col_dup(st, 2), .payload = col_dup(st, 3)};
      got++;
    }
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) return fail(s, rc);
  }
  return RT_OK;
}

int rt_store_chat_history(rt_store *s, const char *channel, const char *chat_id, int limit,
                          void (*fn)(void *ud, const rt_history_row *r), void *ud) {
  if (limit <= 0) return RT_OK;
  /* The buckets that hold rows at all: ids only grow, the prune takes the
   * oldest. */
  sqlite3_stmt *st = stmt(s, S_HIST_IDS);
  int rc = sqlite3_step(st);
  int64_t ids[4];
  bool any[2] = {false, false};
  if (rc == SQLITE_ROW) {
    for (int i = 0; i < 4; i++) ids[i] = sqlite3_column_int64(st, i);
    any[0] = sqlite3_column_type(st, 0) != SQLITE_NULL;
    any[1] = sqlite3_column_type(st, 2) != SQLITE_NULL;
  }
  sqlite3_reset(st);
  if (rc != SQLITE_ROW) return fail(s, rc);
  hist_item *v = NULL;
  size_t n = 0, cap = 0;
  int ret = RT_OK;
  if (any[0]) ret = hist_side(s, S_HIST_IN, channel, chat_id, ids[0], ids[1], limit, &v, &n, &cap);
  if (ret == RT_OK && any[1])
    ret = hist_side(s, S_HIST_OUT, channel, chat_id, ids[2], ids[3], limit, &v, &n, &cap);
  if (ret == RT_OK) {
    /* The newest `limit` of both sides together, oldest first. */
    if (n > 1) qsort(v, n, sizeof *v, hist_cmp);
    for (size_t i = n > (size_t)limit ? n - (size_t)limit : 0; i < n; i++) {
      rt_history_row r = {.from_customer = v[i].from_customer, .at = v[i].at, .id = v[i].id,
                          .ext_id = v[i].ext_id, .payload = v[i].payload};
      fn(ud, &r);
    }
  }
  for (size_t i = 0; i < n; i++) {
    free(v[i].ext_id);
    free(v[i].payload);
  }
  free(v);
  return ret;
}

int rt_store_inbox_get(rt_store *s, int64_t id, char **payload) {
  sqlite3_stmt *st = stmt(s, S_INBOX_GET);
  sqlite3_bind_int64(st, 1, id);
  int rc = sqlite3_step(st);
  int ret = RT_ENOENT;
  if (rc == SQLITE_ROW) {
    *payload = col_dup(st, 0);
    ret = RT_OK;
  } else if (rc != SQLITE_DONE) {
    ret = fail(s, rc);
  }
  sqlite3_reset(st);
  return ret;
}

int rt_store_inbox_finish(rt_store *s, int64_t id, const char *status, int64_t now) {
  sqlite3_stmt *st = stmt(s, S_INBOX_FINISH);
  sqlite3_bind_int64(st, 1, id);
  bind_text(st, 2, status);
  sqlite3_bind_int64(st, 3, now);
  return run(s, st);
}

int rt_store_inbox_attempt(rt_store *s, int64_t id, int64_t *before) {
  sqlite3_stmt *st = stmt(s, S_INBOX_ATTEMPT);
  sqlite3_bind_int64(st, 1, id);
  int rc = sqlite3_step(st);
  int ret;
  if (rc == SQLITE_ROW) {
    *before = sqlite3_column_int64(st, 0);
    rc = sqlite3_step(st);   /* RETURNING: the write is complete at SQLITE_DONE */
    ret = rc == SQLITE_DONE ? RT_OK : fail(s, rc);
  } else {
    ret = rc == SQLITE_DONE ? RT_ENOENT : fail(s, rc);
  }
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  return ret;
}

int rt_store_inbox_quarantine(rt_store *s, int64_t id, const char *reason, int64_t now) {
  sqlite3_stmt *st = stmt(s, S_INBOX_QUARANTINE);
  sqlite3_bind_int64(st, 1, id);
  sqlite3_bind_int64(st, 2, now);
  bind_text(st, 3, reason);
  return run(s, st);
}

/* ---- meta ---- */

int rt_store_meta_get(rt_store *s, const char *key, char **value) {
  sqlite3_stmt *st = stmt(s, S_META_GET);
  bind_text(st, 1, key);
  *value = NULL;
  int rc = sqlite3_step(st);
  int ret = RT_OK;
  if (rc == SQLITE_ROW) *value = col_dup(st, 0);
  else if (rc != SQLITE_DONE) ret = fail(s, rc);
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  return ret;
}

int rt_store_meta_set(rt_store *s, const char *key, const char *value) {
  sqlite3_stmt *st = stmt(s, S_META_SET);
  bind_text(st, 1, key);
  bind_text(st, 2, value);
  return run(s, st);
}

/* ---- conversations ---- */

void rt_conv_row_clear(rt_conv_row *r) {
  free(r->channel); free(r->chat_id); free(r->user_id); free(r->phone);
  free(r->flow); free(r->step); free(r->state); free(r->mode); free(r->last_error);
  free(r->owner); free(r->owner_name); free(r->phone_saved);
  memset(r, 0, sizeof *r);
}

/* The row from columns b .. b+15 of st, in CONV_COLS order. */
static void conv_from(sqlite3_stmt *st, int b, rt_conv_row *r) {
  r->id = sqlite3_column_int64(st, b + 0);
  r->channel = col_dup(st, b + 1);
  r->chat_id = col_dup(st, b + 2);
  r->user_id = col_dup(st, b + 3);
  r->phone = col_dup(st, b + 4);
  r->flow = col_dup(st, b + 5);
  r->step = col_dup(st, b + 6);
  r->state = col_dup(st, b + 7);
  r->mode = col_dup(st, b + 8);
  r->last_error = col_dup(st, b + 9);
  r->rev = sqlite3_column_int64(st, b + 10);
  r->created_at = sqlite3_column_int64(st, b + 11);
  r->updated_at = sqlite3_column_int64(st, b + 12);
  r->last_in_at = sqlite3_column_int64(st, b + 13);
  r->owner = col_dup(st, b + 14);
  r->owner_name = col_dup(st, b + 15);
  r->phone_saved = r->phone ? rt_xstrdup(r->phone) : NULL;
}

static int conv_query(rt_store *s, sqlite3_stmt *st, rt_conv_row *out) {
  int rc = sqlite3_step(st);
  int ret = RT_ENOENT;
  if (rc == SQLITE_ROW) {
    conv_from(st, 0, out);
    ret = RT_OK;
  } else if (rc != SQLITE_DONE) {
    ret = fail(s, rc);
  }
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  return ret;
}

int rt_store_conv_get(rt_store *s, const char *channel, const char *chat_id,
                      bool create, int64_t now, rt_conv_row *out) {
  memset(out, 0, sizeof *out);
  sqlite3_stmt *st = stmt(s, S_CONV_GET);
  bind_text(st, 1, channel);
  bind_text(st, 2, chat_id);
  int rc = conv_query(s, st, out);
  if (rc != RT_ENOENT || !create) return rc;
  st = stmt(s, S_CONV_CREATE);
  bind_text(st, 1, channel);
  bind_text(st, 2, chat_id);
  sqlite3_bind_int64(st, 3, now);
  if ((rc = run(s, st)) != RT_OK) return rc;
  return rt_store_conv_by_id(s, sqlite3_last_insert_rowid(s->db), out);
}

int rt_store_conv_ensure(rt_store *s, const char *channel, const char *chat_id, int64_t now) {
  sqlite3_stmt *st = stmt(s, S_CONV_CREATE);
  bind_text(st, 1, channel);
  bind_text(st, 2, chat_id);
  sqlite3_bind_int64(st, 3, now);
  return run(s, st);
}

int rt_store_conv_by_id(rt_store *s, int64_t id, rt_conv_row *out) {
  memset(out, 0, sizeof *out);
  sqlite3_stmt *st = stmt(s, S_CONV_BY_ID);
  sqlite3_bind_int64(st, 1, id);
  return conv_query(s, st, out);
}

bool rt_store_in_txn(rt_store *s) { return !sqlite3_get_autocommit(s->db); }

int64_t rt_store_convs_in_mode(rt_store *s, const char *mode) {
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(s->db, "SELECT COUNT(*) FROM conversations WHERE mode = ?1", -1, &st,
                         NULL) != SQLITE_OK)
    return -1;
  bind_text(st, 1, mode);
  int64_t n = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
  sqlite3_finalize(st);
  return n;
}

int rt_store_conv_save(rt_store *s, rt_conv_row *r, int64_t now) {
  sqlite3_stmt *st = stmt(s, S_CONV_SAVE);
  sqlite3_bind_int64(st, 1, r->id);
  bind_text(st, 2, r->flow);
  bind_text(st, 3, r->step);
  bind_text(st, 4, r->state ? r->state : "{}");
  bind_text(st, 5, r->mode ? r->mode : "bot");
  bind_text(st, 7, r->user_id);
  if (r->last_in_at) sqlite3_bind_int64(st, 8, r->last_in_at);
  else sqlite3_bind_null(st, 8);
  bind_text(st, 9, r->last_error);
  sqlite3_bind_int64(st, 10, now);
  bind_text(st, 11, r->owner);
  bind_text(st, 12, r->owner_name);
  int rc = run(s, st);
  /* A NULL keeps the stored one; the phone the row has is not written
   * again (a check-in's step returns the conversation's phone as it
   * found it). */
  if (rc == RT_OK && r->phone && !(r->phone_saved && strcmp(r->phone, r->phone_saved) == 0)) {
    st = stmt(s, S_CONV_PHONE);
    sqlite3_bind_int64(st, 1, r->id);
    bind_text(st, 2, r->phone);
    rc = run(s, st);
    if (rc == RT_OK) {
      free(r->phone_saved);
      r->phone_saved = rt_xstrdup(r->phone);
    }
  }
  if (rc == RT_OK) {
    r->rev++;
    r->updated_at = now;
  }
  return rc;
}

/* ---- outbox ---- */

int rt_store_outbox_add(rt_store *s, int64_t conv_id, const char *channel,
                        const char *chat_id, const char *idem_key, const char *kind,
                        const char *payload, int64_t now, int64_t *id) {
  return rt_store_outbox_add_prio(s, conv_id, channel, chat_id, idem_key, kind, payload, 0,
                                  now, id);
}

int rt_store_outbox_add_prio(rt_store *s, int64_t conv_id, const char *channel,
                             const char *chat_id, const char *idem_key, const char *kind,
                             const char *payload, int priority, int64_t now, int64_t *id) {
  sqlite3_stmt *st = stmt(s, S_OUT_ADD);
  sqlite3_bind_int(st, 8, priority);
  if (conv_id) sqlite3_bind_int64(st, 1, conv_id);
  else sqlite3_bind_null(st, 1);
  bind_text(st, 2, channel);
  bind_text(st, 3, chat_id);
  bind_text(st, 4, idem_key);
  bind_text(st, 5, kind);
  bind_text(st, 6, payload);
  sqlite3_bind_int64(st, 7, now);
  int history = keeps_history(s, channel);
  bool open = !history && marked(s, channel) >= 0;
  sqlite3_bind_int(st, 9, history);
  sqlite3_bind_text(st, 10, open ? "sent" : "pending", -1, SQLITE_STATIC);
  int rc = run(s, st);
  if (rc != RT_OK) return rc;
  int64_t rowid = sqlite3_last_insert_rowid(s->db);
  if (id) *id = rowid;
  if (rowid > s->out_txn_max) s->out_txn_max = rowid;
  if (s->track_max) {
    rt_outbox_row r = {.id = rowid, .conv_id = conv_id, .channel = channel, .chat_id = chat_id,
                       .kind = kind, .payload = payload, .idem_key = idem_key,
                       .priority = priority, .next_try_at = now, .open = open};
    rows_push(&s->out_txn, rt_outbox_row_dup(&r));
  }
  if (sqlite3_get_autocommit(s->db)) rows_committed(s);
  return RT_OK;
}

static size_t slen(const char *v) { return v ? strlen(v) + 1 : 0; }

static const char *scopy(char **at, const char *v) {
  if (!v) return NULL;
  size_t n = strlen(v) + 1;
  memcpy(*at, v, n);
  const char *r = *at;
  *at += n;
  return r;
}

rt_outbox_row *rt_outbox_row_dup(const rt_outbox_row *r) {
  size_t n = sizeof *r + slen(r->channel) + slen(r->chat_id) + slen(r->kind) +
             slen(r->payload) + slen(r->idem_key);
  rt_outbox_row *c = rt_xmalloc(n);
  *c = *r;
  char *at = (char *)(c + 1);
  c->channel = scopy(&at, r->channel);
  c->chat_id = scopy(&at, r->chat_id);
  c->kind = scopy(&at, r->kind);
  c->payload = scopy(&at, r->payload);
  c->idem_key = scopy(&at, r->idem_key);
  return c;
}

void rt_store_outbox_track(rt_store *s, size_t max) {
  s->track_max = max;
  if (!max) {
    rows_free(&s->out_txn);
    rows_free(&s->out_done);
    rows_free(&s->out_wait);
  }
}

rt_outbox_row **rt_store_outbox_take(rt_store *s, size_t *n, bool *overflow) {
  *overflow = s->out_overflow;
  s->out_overflow = false;
  *n = s->out_done.n;
  if (!*n) return NULL;
  rt_outbox_row **v = s->out_done.v;
  s->out_done = (row_list){0};
  return v;
}

/* ---- the channels' marks (025_outbox_mark.sql) ---- */

/* Runs fn in a transaction of its own, or in the caller's if one is open. */
static int in_txn(rt_store *s, int (*fn)(rt_store *s, const void *arg), const void *arg) {
  bool own = !rt_store_in_txn(s);
  int rc = own ? rt_store_begin(s) : RT_OK;
  if (rc == RT_OK) rc = fn(s, arg);
  if (own) {
    if (rc == RT_OK) rc = rt_store_commit(s);
    else rt_store_rollback(s);
  }
  return rc;
}

/* The open rows of channel, from its mark on, set 'pending'; its mark's
 * row removed. */
static int park(rt_store *s, const void *channel) {
  sqlite3_stmt *st = stmt(s, S_MARK_PARK);
  bind_text(st, 1, channel);
  int rc = run(s, st);
  if (rc != RT_OK) return rc;
  if (!(st = prep(s, "DELETE FROM outbox_mark WHERE channel = ?1"))) return RT_EIO;
  bind_text(st, 1, channel);
  rc = sqlite3_step(st) == SQLITE_DONE ? RT_OK : fail(s, sqlite3_errcode(s->db));
  sqlite3_finalize(st);
  return rc;
}

/* Every channel's mark, one at a time: each park removes the row read. */
static int park_all(rt_store *s, const void *unused) {
  (void)unused;
  sqlite3_stmt *st = prep(s, "SELECT channel FROM outbox_mark LIMIT 1");
  if (!st) return RT_EIO;
  int rc = RT_OK, step;
  while (rc == RT_OK && (step = sqlite3_step(st)) == SQLITE_ROW) {
    char *ch = rt_xstrdup((const char *)sqlite3_column_text(st, 0));
    sqlite3_reset(st);
    rc = park(s, ch);
    free(ch);
  }
  if (rc == RT_OK && step != SQLITE_DONE) rc = fail(s, step);
  sqlite3_finalize(st);
  return rc;
}

typedef struct {
  const char *channel;
  int64_t next;
} mark_arg;

static int mark_new(rt_store *s, const void *arg) {
  mark_arg *m = (mark_arg *)arg;
  int rc = park(s, m->channel);
  sqlite3_stmt *st = rc == RT_OK ? prep(s, "INSERT INTO outbox_mark (channel, next) "
                                           "SELECT ?1, coalesce(max(id), 0) + 1 FROM outbox "
                                           "RETURNING next")
                                 : NULL;
  if (!st) return rc == RT_OK ? RT_EIO : rc;
  bind_text(st, 1, m->channel);
  rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) m->next = sqlite3_column_int64(st, 0);
  if (rc == SQLITE_ROW) rc = sqlite3_step(st);   /* RETURNING: written at SQLITE_DONE */
  rc = rc == SQLITE_DONE ? RT_OK : fail(s, sqlite3_errcode(s->db));
  sqlite3_finalize(st);
  return rc;
}

int rt_store_outbox_mark_start(rt_store *s, const char *channel, int64_t *next) {
  *next = 0;
  if (keeps_history(s, channel)) return RT_EINVAL;   /* the history reads 'sent' as sent */
  if (rt_store_in_txn(s)) return RT_EBUSY;   /* a rollback would take the mark's row */
  /* The ids only grow (rt_store_prune keeps the newest row): every row
   * inserted from now on is at or above the mark. */
  mark_arg m = {channel, 0};
  int rc = in_txn(s, mark_new, &m);
  if (rc != RT_OK) return rc;
  *next = m.next;
  if (marked(s, channel) < 0) {
    s->mark_ch = rt_xrealloc(s->mark_ch, (s->nmark_ch + 1) * sizeof *s->mark_ch);
    s->mark_ch[s->nmark_ch++] = rt_xstrdup(channel);
  }
  return RT_OK;
}

int rt_store_outbox_mark_set(rt_store *s, const char *channel, int64_t next) {
  sqlite3_stmt *st = stmt(s, S_MARK_SET);
  bind_text(st, 1, channel);
  sqlite3_bind_int64(st, 2, next);
  return run(s, st);
}

int rt_store_outbox_mark_stop(rt_store *s, const char *channel) {
  /* No row is written open from here on, whatever the outcome: one that
   * was is in the window the next stop or start sets pending. */
  ssize_t i = marked(s, channel);
  if (i >= 0) {
    free(s->mark_ch[i]);
    s->mark_ch[i] = s->mark_ch[--s->nmark_ch];
  }
  return in_txn(s, park, channel);
}

int rt_store_outbox_recover(rt_store *s) {
  for (size_t i = 0; i < s->nmark_ch; i++) free(s->mark_ch[i]);
  s->nmark_ch = 0;
  int64_t n = count(s, "SELECT count(*) FROM outbox_mark");   /* no write at all without */
  if (n < 0) return RT_EIO;
  return n ? in_txn(s, park_all, NULL) : RT_OK;
}

/* The highest outbox id the scans may see: with sync_later, that of the
 * last synced commit, so a row is never sent before its step is on disk.
 * Ids only grow (rt_store_prune keeps the newest row). */
static int64_t out_visible(const rt_store *s) { return s->sync_later ? s->out_synced : INT64_MAX; }

int64_t rt_store_outbox_pending(rt_store *s, const char *channel) {
  sqlite3_stmt *st = stmt(s, S_OUT_PENDING);
  bind_text(st, 1, channel);
  sqlite3_bind_int64(st, 2, out_visible(s));
  int64_t n = -1;
  int rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) n = sqlite3_column_int64(st, 0);
  else fail(s, rc);
  sqlite3_reset(st);
  return n;
}

/* The outbox columns both outbox queries select first, in this order. */
static void outbox_row(sqlite3_stmt *st, rt_outbox_row *r) {
  *r = (rt_outbox_row){
    .id = sqlite3_column_int64(st, 0),
    .conv_id = sqlite3_column_int64(st, 1),
    .attempts = sqlite3_column_int64(st, 2),
    .channel = (const char *)sqlite3_column_text(st, 3),
    .chat_id = (const char *)sqlite3_column_text(st, 4),
    .kind = (const char *)sqlite3_column_text(st, 5),
    .payload = (const char *)sqlite3_column_text(st, 6),
    .idem_key = (const char *)sqlite3_column_text(st, 7),
  };
}

int rt_store_outbox_due(rt_store *s, const char *channel, int64_t now, int limit,
                        void (*fn)(void *, const rt_outbox_row *), void *ud) {
  sqlite3_stmt *st = stmt(s, S_OUT_DUE);
  sqlite3_bind_int64(st, 1, now);
  sqlite3_bind_int(st, 2, limit);
  bind_text(st, 3, channel);
  sqlite3_bind_int64(st, 4, out_visible(s));
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    rt_outbox_row r;
    outbox_row(st, &r);
    fn(ud, &r);
  }
  sqlite3_reset(st);
  return rc == SQLITE_DONE ? RT_OK : fail(s, rc);
}

int rt_store_outbox_heads(rt_store *s, const char *channel, int64_t now, int limit,
                          bool (*fn)(void *, const rt_outbox_row *), void *ud) {
  sqlite3_stmt *st = stmt(s, S_OUT_HEADS);
  bind_text(st, 1, channel);
  sqlite3_bind_int64(st, 2, now);
  sqlite3_bind_int(st, 3, limit);
  sqlite3_bind_int64(st, 4, out_visible(s));
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    rt_outbox_row r;
    outbox_row(st, &r);
    r.priority = sqlite3_column_int(st, 8);
    if (!fn(ud, &r)) { rc = SQLITE_DONE; break; }
  }
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  return rc == SQLITE_DONE ? RT_OK : fail(s, rc);
}

int rt_store_outbox_sent(rt_store *s, int64_t id, int64_t now) {
  return rt_store_outbox_sent_range(s, id, id, now);
}

int rt_store_outbox_sent_range(rt_store *s, int64_t first, int64_t last, int64_t now) {
  sqlite3_stmt *st = stmt(s, S_OUT_SENT);
  sqlite3_bind_int64(st, 1, first);
  sqlite3_bind_int64(st, 2, last);
  sqlite3_bind_int64(st, 3, now);
  return run(s, st);
}

int rt_store_outbox_retry(rt_store *s, int64_t id, int64_t next_try, const char *err) {
  sqlite3_stmt *st = stmt(s, S_OUT_RETRY);
  sqlite3_bind_int64(st, 1, id);
  sqlite3_bind_int64(st, 2, next_try);
  bind_text(st, 3, err);
  return run(s, st);
}

int rt_store_outbox_failed(rt_store *s, int64_t id, const char *err, int64_t now) {
  return rt_store_outbox_failed_why(s, id, "other", err, now);
}

int rt_store_outbox_failed_why(rt_store *s, int64_t id, const char *reason, const char *err,
                               int64_t now) {
  sqlite3_stmt *st = stmt(s, S_OUT_FAILED);
  sqlite3_bind_int64(st, 1, id);
  bind_text(st, 2, err);
  sqlite3_bind_int64(st, 3, now);
  bind_text(st, 4, reason);
  return run(s, st);
}

/* ---- timers ---- */

int rt_store_timer_set(rt_store *s, int64_t conv_id, const char *name, int64_t due_at,
                       const char *step, const char *data, int64_t now) {
  sqlite3_stmt *st = stmt(s, S_TIMER_SET);
  sqlite3_bind_int64(st, 1, conv_id);
  bind_text(st, 2, name);
  sqlite3_bind_int64(st, 3, due_at);
  bind_text(st, 4, step);
  bind_text(st, 5, data ? data : "{}");
  sqlite3_bind_int64(st, 6, now);
  return run(s, st);
}

int rt_store_timer_cancel(rt_store *s, int64_t conv_id, const char *name) {
  sqlite3_stmt *st = stmt(s, S_TIMER_CANCEL);
  sqlite3_bind_int64(st, 1, conv_id);
  bind_text(st, 2, name);
  return run(s, st);
}

int rt_store_timers_cancel_all(rt_store *s, int64_t conv_id) {
  sqlite3_stmt *st = stmt(s, S_TIMER_CANCEL_ALL);
  sqlite3_bind_int64(st, 1, conv_id);
  return run(s, st);
}

int64_t rt_store_timer_next(rt_store *s) {
  sqlite3_stmt *st = stmt(s, S_TIMER_NEXT);
  int64_t due = -1;
  if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
    due = sqlite3_column_int64(st, 0);
  sqlite3_reset(st);
  return due;
}

int rt_store_timers_due(rt_store *s, int64_t now, int limit,
                        void (*fn)(void *, const rt_timer_row *), void *ud) {
  sqlite3_stmt *st = stmt(s, S_TIMER_DUE);
  sqlite3_bind_int64(st, 1, now);
  sqlite3_bind_int(st, 2, limit);
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    rt_conv_row conv = {0};
    bool has_conv = sqlite3_column_type(st, 6) != SQLITE_NULL;
    if (has_conv) conv_from(st, 6, &conv);
    rt_timer_row r = {
      .id = sqlite3_column_int64(st, 0),
      .conv_id = sqlite3_column_int64(st, 1),
      .due_at = sqlite3_column_int64(st, 2),
      .name = (const char *)sqlite3_column_text(st, 3),
      .step = (const char *)sqlite3_column_text(st, 4),
      .data = (const char *)sqlite3_column_text(st, 5),
      .conv = has_conv ? &conv : NULL,
    };
    fn(ud, &r);
    rt_conv_row_clear(&conv);
  }
  sqlite3_reset(st);
  return rc == SQLITE_DONE ? RT_OK : fail(s, rc);
}

int rt_store_timer_delete(rt_store *s, int64_t id) {
  sqlite3_stmt *st = stmt(s, S_TIMER_DEL);
  sqlite3_bind_int64(st, 1, id);
  return run(s, st);
}

int64_t rt_store_timer_count(rt_store *s, int64_t conv_id) {
  sqlite3_stmt *st = stmt(s, S_TIMER_COUNT);
  sqlite3_bind_int64(st, 1, conv_id);
  int rc = sqlite3_step(st);
  int64_t n = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
  if (n < 0) fail(s, rc);
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  return n;
}

int rt_store_timer_exists(rt_store *s, int64_t conv_id, const char *name) {
  sqlite3_stmt *st = stmt(s, S_TIMER_EXISTS);
  sqlite3_bind_int64(st, 1, conv_id);
  bind_text(st, 2, name);
  int rc = sqlite3_step(st);
  int ret = rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
  if (ret < 0) fail(s, rc);
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  return ret;
}

/* ---- events and leads ---- */

int rt_store_event_add(rt_store *s, int64_t at, int64_t conv_id, const char *flow,
                       const char *campaign, const char *kind, const char *data) {
  sqlite3_stmt *st = stmt(s, S_EVENT_ADD);
  sqlite3_bind_int64(st, 1, at);
  if (conv_id) sqlite3_bind_int64(st, 2, conv_id);
  else sqlite3_bind_null(st, 2);
  bind_text(st, 3, flow);
  bind_text(st, 4, campaign);
  bind_text(st, 5, kind);
  bind_text(st, 6, data ? data : "{}");
  return run(s, st);
}

int rt_store_lead_add(rt_store *s, const rt_lead_in *l, int64_t *id) {
  sqlite3_stmt *st = stmt(s, S_LEAD_ADD);
  sqlite3_bind_int64(st, 1, l->conv_id);
  sqlite3_bind_int64(st, 2, l->at);
  bind_text(st, 3, l->flow);
  bind_text(st, 4, l->channel);
  bind_text(st, 5, l->campaign);
  bind_text(st, 6, l->car);
  bind_text(st, 7, l->car_kind);
  bind_text(st, 8, l->parts ? l->parts : "[]");
  bind_text(st, 9, l->name);
  bind_text(st, 10, l->phone);
  bind_text(st, 11, l->data ? l->data : "{}");
  int rc = run(s, st);
  if (rc == RT_OK && id) *id = sqlite3_last_insert_rowid(s->db);
  return rc;
}

/* Row o is not open (025_outbox_mark.sql): an open row is still to send. */
#define OPEN_NOT(o) \
  "AND NOT EXISTS (SELECT 1 FROM outbox_mark AS m WHERE m.channel = " o ".channel " \
  "AND " o ".id >= m.next AND " o ".status = 'sent' AND " o ".sent_at IS NULL)"

int64_t rt_store_prune(rt_store *s, int64_t before, int limit) {
  static const char *sql[] = {
    "DELETE FROM inbox WHERE rowid IN (SELECT rowid FROM inbox WHERE status != 'new' "
    "AND received_at < ?1 LIMIT ?2)",
    /* The newest row stays, whatever its age: a new row's id is then never
     * one a deleted row had (out_visible counts on ids that only grow). */
    "DELETE FROM outbox WHERE rowid IN (SELECT rowid FROM outbox AS o WHERE status != 'pending' "
    "AND created_at < ?1 AND rowid < (SELECT max(rowid) FROM outbox) " OPEN_NOT("o") " LIMIT ?2)",
  };
  int64_t n = 0;
  for (size_t i = 0; i < 2; i++) {
    sqlite3_stmt *st = prep(s, sql[i]);
    if (!st) return -1;
    sqlite3_bind_int64(st, 1, before);
    sqlite3_bind_int(st, 2, limit);
    if (sqlite3_step(st) == SQLITE_DONE) n += sqlite3_changes(s->db);
    sqlite3_finalize(st);
  }
  return n;
}

/* ---- figures ---- */

static int64_t count(rt_store *s, const char *sql) {
  sqlite3_stmt *st;
  int64_t n = -1;
  if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) == SQLITE_OK) {
    if (sqlite3_step(st) == SQLITE_ROW) n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
  }
  return n;
}

int rt_store_counts_get(rt_store *s, rt_store_counts *c) {
  c->conversations = count(s, "SELECT COUNT(*) FROM conversations");
  /* With the open rows (025_outbox_mark.sql): a walk of the ids from each
   * mark on. The + keep SQLite from an automatic index over all rows. */
  c->outbox_pending = count(s, "SELECT (SELECT COUNT(*) FROM outbox WHERE status = 'pending') + "
                               "(SELECT COUNT(*) FROM outbox_mark AS m CROSS JOIN outbox AS o "
                               "ON o.id >= m.next AND +o.channel = m.channel "
                               "WHERE +o.status = 'sent' AND +o.sent_at IS NULL)");
  c->timers_pending = count(s, "SELECT COUNT(*) FROM timers");
  c->inbox_pending = count(s, "SELECT COUNT(*) FROM inbox WHERE status = 'new'");
  c->leads = count(s, "SELECT COUNT(*) FROM leads");
  return RT_OK;
}

/* ---- customers ---- */

static sqlite3_stmt *prep(rt_store *s, const char *sql) {
  sqlite3_stmt *st = NULL;
  if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK) {
    s->last_rc = sqlite3_errcode(s->db);
    return NULL;
  }
  return st;
}

/* addresses: {channel: address}, the newest per channel, reachable ones
 * only (a flow must not offer to write where the channel refused). The
 * rows come by channel, newest first. */
int rt_store_customer_addresses(rt_store *s, const char *phone, const rt_record_sink *k) {
  sqlite3_stmt *st = stmt(s, S_CUSTOMER_ADDRS);
  bind_text(st, 1, phone);
  k->map_begin(k->ud, "addresses");
  char *last = NULL;
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    const char *ch = (const char *)sqlite3_column_text(st, 0);
    const char *ad = (const char *)sqlite3_column_text(st, 1);
    const char *status = (const char *)sqlite3_column_text(st, 2);
    if (!ch || !ad || (status && strcmp(status, "reachable") != 0)) continue;
    if (last && strcmp(last, ch) == 0) continue;
    k->map_entry(k->ud, ch, ad);
    free(last);
    last = rt_xstrdup(ch);
  }
  free(last);
  sqlite3_reset(st);
  return rc == SQLITE_DONE ? RT_OK : fail(s, rc);
}

/* Reads the customer of that phone into k (if not NULL), the addresses
 * too when k has map_begin; 1 found, 0 not, or a store error. */
static int customer_emit(rt_store *s, const char *phone, const rt_record_sink *k) {
  sqlite3_stmt *st = stmt(s, S_CUSTOMER_GET);
  bind_text(st, 1, phone);
  int rc = sqlite3_step(st);
  if (rc != SQLITE_ROW) {
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : fail(s, rc);
  }
  if (!k) {
    sqlite3_reset(st);
    return 1;
  }
  static const char *names[] = {"phone", "name", "last_purchase", "bonus_balance",
                                "timezone", "car", "opted_out", "blocked"};
  for (int i = 0; i < 8; i++) {
    rt_rv v = {0};
    switch (sqlite3_column_type(st, i)) {
    case SQLITE_INTEGER:
      v.i = sqlite3_column_int64(st, i);
      /* last_purchase is kept in ms, flows see seconds like time.now() */
      if (i == 2) v.i /= 1000;
      v.type = i >= 6 ? RT_RV_BOOL : RT_RV_INT;
      if (i >= 6) v.i = v.i != 0;
      break;
    case SQLITE_FLOAT:
      v.type = RT_RV_REAL;
      v.d = sqlite3_column_double(st, i);
      break;
    case SQLITE_TEXT:
    case SQLITE_BLOB:
      v.type = RT_RV_TEXT;
      v.s = (const char *)sqlite3_column_text(st, i);
      v.len = (size_t)sqlite3_column_bytes(st, i);
      break;
    default: continue;
    }
    k->field(k->ud, names[i], &v);
  }
  sqlite3_reset(st);
  if (!k->map_begin) return 1;
  rc = rt_store_customer_addresses(s, phone, k);
  return rc == RT_OK ? 1 : rc;
}

static int phone_cmp(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

int rt_store_customer_read(rt_store *s, const char *phone, const char *channel,
                           const char *chat_id, const rt_record_sink *k) {
  /* The candidates: the conversation's phone, the phone of the chat's
   * address, the console's chat itself. When they are different customers
   * the lowest phone that is a customer wins, as it always did. */
  const char *cand[3];
  int n = 0;
  char *by_addr = NULL;
  if (phone) cand[n++] = phone;
  if (channel && chat_id) {
    sqlite3_stmt *st = stmt(s, S_ADDR_PHONE);
    bind_text(st, 1, channel);
    bind_text(st, 2, chat_id);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) by_addr = col_dup(st, 0);
    sqlite3_reset(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return fail(s, rc);
    if (by_addr) cand[n++] = by_addr;
    if (strcmp(channel, "console") == 0) cand[n++] = chat_id;
  }
  qsort(cand, (size_t)n, sizeof *cand, phone_cmp);
  int rc = 0;
  for (int i = 0; i < n && rc == 0; i++) {
    if (i > 0 && strcmp(cand[i], cand[i - 1]) == 0) continue;
    rc = customer_emit(s, cand[i], k);
  }
  free(by_addr);
  return rc;
}

/* ---- the same as a jansson tree ---- */

typedef struct { json_t *root, *map; } tree_sink;

static void tree_field(void *ud, const char *name, const rt_rv *v) {
  tree_sink *t = ud;
  json_t *j = v->type == RT_RV_INT ? json_integer(v->i)
            : v->type == RT_RV_BOOL ? json_boolean(v->i)
            : v->type == RT_RV_REAL ? json_real(v->d) : json_stringn(v->s, v->len);
  json_object_set_new(t->root, name, j);
}

static void tree_map_begin(void *ud, const char *name) {
  tree_sink *t = ud;
  t->map = json_object();
  json_object_set_new(t->root, name, t->map);
}

static void tree_map_entry(void *ud, const char *key, const char *value) {
  tree_sink *t = ud;
  json_object_set_new(t->map, key, json_string(value));
}

json_t *rt_store_customer_json(rt_store *s, const char *phone, const char *channel,
                               const char *chat_id) {
  tree_sink t = {json_object(), NULL};
  rt_record_sink k = {tree_field, tree_map_begin, tree_map_entry, &t};
  if (rt_store_customer_read(s, phone, channel, chat_id, &k) == 1) return t.root;
  json_decref(t.root);
  return NULL;
}

int rt_store_customer_by_address(rt_store *s, const char *channel, const char *address,
                                 char **phone) {
  *phone = NULL;
  if (!channel || !address) return RT_ENOENT;
  sqlite3_stmt *st = stmt(s, S_ADDR_PHONE);
  bind_text(st, 1, channel);
  bind_text(st, 2, address);
  int rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) *phone = col_dup(st, 0);
  sqlite3_reset(st);
  if (rc == SQLITE_ROW) return RT_OK;
  if (rc == SQLITE_DONE && channel && strcmp(channel, "console") == 0 && address[0] == '+') {
    /* The console's chat id is the phone itself. */
    int found = rt_store_customer_read(s, address, NULL, NULL, NULL);
    if (found < 0) return found;
    if (found) *phone = rt_xstrdup(address);
    return found ? RT_OK : RT_ENOENT;
  }
  return rc == SQLITE_DONE ? RT_ENOENT : fail(s, rc);
}

json_t *rt_store_customer_by_phone(rt_store *s, const char *phone) {
  return phone ? rt_store_customer_json(s, phone, NULL, NULL) : NULL;
}

int rt_store_address_set(rt_store *s, const char *phone, const char *channel,
                         const char *address, int64_t now) {
  if (!phone || !channel || !*channel || !address || !*address) return RT_EINVAL;
  sqlite3_stmt *st = stmt(s, S_ADDR_SET);
  bind_text(st, 1, channel);
  bind_text(st, 2, address);
  bind_text(st, 3, phone);
  sqlite3_bind_int64(st, 4, now);
  return run(s, st);
}

int rt_store_address_mark(rt_store *s, const char *channel, const char *address,
                          const char *status, const char *reason, int64_t now) {
  if (!channel || !address) return RT_EINVAL;
  sqlite3_stmt *st = stmt(s, S_ADDR_BLOCK);
  bind_text(st, 1, channel);
  bind_text(st, 2, address);
  bind_text(st, 3, reason);
  sqlite3_bind_int64(st, 4, now);
  bind_text(st, 5, status ? status : "blocked");
  return run(s, st);
}

int rt_store_address_failed(rt_store *s, int64_t outbox_id, const char *reason, int64_t now) {
  /* Only what the channel says is for good about the chat itself; a message
   * too long or outside WhatsApp's window says nothing about the address. */
  if (!reason || (strcmp(reason, "blocked") != 0 && strcmp(reason, "chat_not_found") != 0))
    return RT_OK;
  sqlite3_stmt *st = stmt(s, S_OUT_CHAT);
  sqlite3_bind_int64(st, 1, outbox_id);
  int rc = sqlite3_step(st);
  char *ch = rc == SQLITE_ROW ? col_dup(st, 0) : NULL, *chat = rc == SQLITE_ROW ? col_dup(st, 1) : NULL;
  sqlite3_reset(st);
  int r = rc == SQLITE_ROW ? rt_store_address_mark(s, ch, chat, "blocked", reason, now)
        : rc == SQLITE_DONE ? RT_OK : fail(s, rc);
  free(ch);
  free(chat);
  return r;
}

int rt_store_customer_optout(rt_store *s, const char *phone, const char *channel,
                             const char *chat_id, int64_t now) {
  sqlite3_stmt *st = prep(s,
    "UPDATE customers SET opted_out = 1, updated_at = ?4 WHERE phone IN (?1, "
    "(SELECT a.phone FROM customer_addresses a WHERE a.channel = ?2 AND a.address = ?3), "
    "CASE WHEN ?2 = 'console' THEN ?3 END)");
  if (!st) return rt_store_errcode(s);
  bind_text(st, 1, phone);
  bind_text(st, 2, channel);
  bind_text(st, 3, chat_id);
  sqlite3_bind_int64(st, 4, now);
  int rc = sqlite3_step(st);
  sqlite3_finalize(st);
  if (rc != SQLITE_DONE) return fail(s, rc);
  /* Someone never imported (a walk-in, a gift's recipient) is remembered
   * too, so no later campaign writes to them. */
  const char *p = phone ? phone : (channel && strcmp(channel, "console") == 0 &&
                                   chat_id && chat_id[0] == '+') ? chat_id : NULL;
  if (!p || sqlite3_changes(s->db) > 0) return RT_OK;
  st = prep(s, "INSERT INTO customers (phone, opted_out, updated_at) VALUES (?1, 1, ?2) "
               "ON CONFLICT (phone) DO UPDATE SET opted_out = 1, updated_at = ?2");
  if (!st) return rt_store_errcode(s);
  bind_text(st, 1, p);
  sqlite3_bind_int64(st, 2, now);
  rc = sqlite3_step(st);
  sqlite3_finalize(st);
  return rc == SQLITE_DONE ? RT_OK : fail(s, rc);
}

int rt_store_campaign_outcome(rt_store *s, const char *campaign, const char *phone,
                              const char *outcome) {
  if (!phone) return RT_OK;
  sqlite3_stmt *st = prep(s,
    "UPDATE campaign_contacts SET outcome = ?3 WHERE rowid = (SELECT rowid FROM "
    "campaign_contacts WHERE campaign = ?1 AND phone = ?2 ORDER BY at DESC LIMIT 1)");
  if (!st) return rt_store_errcode(s);
  bind_text(st, 1, campaign);
  bind_text(st, 2, phone);
  bind_text(st, 3, outcome);
  int rc = sqlite3_step(st);
  sqlite3_finalize(st);
  return rc == SQLITE_DONE ? RT_OK : fail(s, rc);
}

/* ---- plugin values ----
 *
 * Rare (a plugin's start, a secret rotated): prepared per call. */

int rt_store_plugin_get(rt_store *s, const char *plugin, const char *key, char **value) {
  *value = NULL;
  sqlite3_stmt *st = prep(s, "SELECT value FROM plugin_values WHERE plugin = ?1 AND key = ?2");
  if (!st) return rt_store_errcode(s);
  bind_text(st, 1, plugin);
  bind_text(st, 2, key);
  int rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) *value = col_dup(st, 0);
  sqlite3_finalize(st);
  return rc == SQLITE_ROW || rc == SQLITE_DONE ? RT_OK : fail(s, rc);
}

int rt_store_plugin_set(rt_store *s, const char *plugin, const char *key, const char *value,
                        int64_t now) {
  sqlite3_stmt *st = prep(s, value ? "INSERT INTO plugin_values (plugin, key, value, updated_at) "
                                     "VALUES (?1, ?2, ?3, ?4) ON CONFLICT (plugin, key) DO "
                                     "UPDATE SET value = ?3, updated_at = ?4"
                                   : "DELETE FROM plugin_values WHERE plugin = ?1 AND key = ?2");
  if (!st) return rt_store_errcode(s);
  bind_text(st, 1, plugin);
  bind_text(st, 2, key);
  if (value) {
    bind_text(st, 3, value);
    sqlite3_bind_int64(st, 4, now);
  }
  int rc = sqlite3_step(st);
  sqlite3_finalize(st);
  return rc == SQLITE_DONE ? RT_OK : fail(s, rc);
}
