/* bench_floor.c -- the floor under bench_core: the least durable SQLite
 * work the bot's job needs, with no Lua, no JSON library and no engine
 * (prints, never asserts).
 *
 *   bench_floor [--events N] [--convs C] [--batch B]
 *
 * Per event: insert the received event (unique by channel and its id, as
 * the inbox), upsert the conversation's state (a ~300-byte JSON text made
 * with snprintf) and insert the reply. Set up as bench_core runs the store:
 * WAL, synchronous = full, 16 MB cache, temp_store in memory, persistent
 * prepared statements, BEGIN IMMEDIATE ... COMMIT per group. Event i goes to
 * conversation i % C, events arrive in chunks of min(C, 5000) as bench_core
 * injects them, and each chunk is committed in groups of at most B events
 * (default 2048, the engine's turns per pump). tests/bench/run prints
 * core.events_per_s over floor.events_per_s as core_vs_floor. */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double cpu_s(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static const char *schema =
  "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA temp_store=MEMORY;"
  "PRAGMA cache_size=-16384;"
  "CREATE TABLE inbox (id INTEGER PRIMARY KEY, channel TEXT NOT NULL, ext_id TEXT NOT NULL, "
  "  chat_id TEXT NOT NULL, payload TEXT NOT NULL, received_at INTEGER NOT NULL, "
  "  UNIQUE (channel, ext_id));"
  "CREATE TABLE conversations (id INTEGER PRIMARY KEY, channel TEXT NOT NULL, "
  "  chat_id TEXT NOT NULL, state TEXT NOT NULL, rev INTEGER NOT NULL, "
  "  updated_at INTEGER NOT NULL, last_inbox_id INTEGER, UNIQUE (channel, chat_id));"
  "CREATE TABLE outbox (id INTEGER PRIMARY KEY, channel TEXT NOT NULL, chat_id TEXT NOT NULL, "
  "  payload TEXT NOT NULL, created_at INTEGER NOT NULL);";

enum { F_INBOX, F_CONV, F_OUT, F_BEGIN, F_COMMIT, F_COUNT };
static const char *stmt_sql[F_COUNT] = {
  [F_INBOX] = "INSERT INTO inbox (channel, ext_id, chat_id, payload, received_at) "
              "VALUES ('console', ?1, ?2, ?3, ?4)",
  [F_CONV] = "INSERT INTO conversations (channel, chat_id, state, rev, updated_at, last_inbox_id) "
             "VALUES ('console', ?1, ?2, 1, ?3, ?4) ON CONFLICT (channel, chat_id) DO UPDATE "
             "SET state = excluded.state, rev = rev + 1, updated_at = excluded.updated_at, "
             "last_inbox_id = excluded.last_inbox_id",
  [F_OUT] = "INSERT INTO outbox (channel, chat_id, payload, created_at) VALUES ('console', ?1, ?2, ?3)",
  [F_BEGIN] = "BEGIN IMMEDIATE",
  [F_COMMIT] = "COMMIT",
};

static int step(sqlite3 *db, sqlite3_stmt *st) {
  int rc = sqlite3_step(st);
  sqlite3_reset(st);
  if (rc != SQLITE_DONE) fprintf(stderr, "bench_floor: %s\n", sqlite3_errmsg(db));
  return rc == SQLITE_DONE ? 0 : -1;
}

static long long count(sqlite3 *db, const char *sql) {
  sqlite3_stmt *st;
  long long n = -1;
  if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
    n = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  return n;
}

int main(int argc, char **argv) {
  long events = 100000, convs = 10000, batch = 2048;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--events") == 0 && i + 1 < argc) events = atol(argv[++i]);
    else if (strcmp(argv[i], "--convs") == 0 && i + 1 < argc) convs = atol(argv[++i]);
    else if (strcmp(argv[i], "--batch") == 0 && i + 1 < argc) batch = atol(argv[++i]);
    else { fprintf(stderr, "usage: bench_floor [--events N] [--convs C] [--batch B]\n"); return 2; }
  }
  if (events < 1 || convs < 1 || batch < 1) { fprintf(stderr, "bench_floor: counts must be > 0\n"); return 2; }
  char dir[] = "/var/tmp/bench_floor.XXXXXX", path[64], cmd[96];
  if (!mkdtemp(dir)) { perror("mkdtemp"); return 1; }
  snprintf(path, sizeof path, "%s/floor.db", dir);
  sqlite3 *db;
  if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                      NULL) != SQLITE_OK ||
      sqlite3_exec(db, schema, NULL, NULL, NULL) != SQLITE_OK) {
    fprintf(stderr, "bench_floor: %s: %s\n", path, sqlite3_errmsg(db));
    return 1;
  }
  sqlite3_stmt *st[F_COUNT];
  for (int i = 0; i < F_COUNT; i++)
    if (sqlite3_prepare_v3(db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &st[i], NULL) != SQLITE_OK) {
      fprintf(stderr, "bench_floor: %s\n", sqlite3_errmsg(db));
      return 1;
    }

  static const char *lines[] = {"/start", "XW8ZZZ614BG012345", "колодки передние", "фильтр масляный",
                                "свечи", "масло 5w30", "диски", "лампы h7", "щетки", "нет"};
  long chunk = convs < 5000 ? convs : 5000, commits = 0;
  char chat[32], ext[32], payload[256], state[512], reply[256];
  int fail = 0;
  double t0 = now_s(), c0 = cpu_s();
  for (long i = 0; i < events && !fail;) {
    /* One chunk as bench_core queues it, committed in groups of batch. */
    long end = i + chunk < events ? i + chunk : events;
    while (i < end && !fail) {
      long group_end = i + batch < end ? i + batch : end;
      fail |= step(db, st[F_BEGIN]);
      for (; i < group_end && !fail; i++) {
        long conv = i % convs, round = i / convs;
        long long at = 1772434800000LL + i;
        const char *text = lines[round % 10];
        snprintf(chat, sizeof chat, "a%ld", conv);
        snprintf(ext, sizeof ext, "a:%ld", i);
        snprintf(payload, sizeof payload,
                 "{\"at\":%lld,\"chat\":\"%s\",\"kind\":\"text\",\"text\":\"%s\",\"user\":\"%s\"}",
                 at / 1000, chat, text, chat);
        sqlite3_bind_text(st[F_INBOX], 1, ext, -1, SQLITE_STATIC);
        sqlite3_bind_text(st[F_INBOX], 2, chat, -1, SQLITE_STATIC);
        sqlite3_bind_text(st[F_INBOX], 3, payload, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st[F_INBOX], 4, at);
        fail |= step(db, st[F_INBOX]);
        sqlite3_int64 in_id = sqlite3_last_insert_rowid(db);
        snprintf(state, sizeof state,
                 "{\"flow\":\"lead\",\"step\":\"parts\",\"slots\":{\"car\":\"XW8ZZZ614BG012345\","
                 "\"car_kind\":\"vin\",\"parts\":[\"колодки передние\",\"фильтр масляный\","
                 "\"свечи\"],\"last\":\"%s\",\"n\":%ld,\"name\":\"Иван\",\"phone\":null}}",
                 text, round);
        sqlite3_bind_text(st[F_CONV], 1, chat, -1, SQLITE_STATIC);
        sqlite3_bind_text(st[F_CONV], 2, state, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st[F_CONV], 3, at);
        sqlite3_bind_int64(st[F_CONV], 4, in_id);
        fail |= step(db, st[F_CONV]);
        snprintf(reply, sizeof reply, "{\"text\":\"Записал: %s. Что-нибудь ещё?\",\"n\":%ld}",
                 text, round);
        sqlite3_bind_text(st[F_OUT], 1, chat, -1, SQLITE_STATIC);
        sqlite3_bind_text(st[F_OUT], 2, reply, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st[F_OUT], 3, at);
        fail |= step(db, st[F_OUT]);
      }
      if (!fail) fail |= step(db, st[F_COMMIT]);
      commits++;
    }
  }
  double t1 = now_s(), c1 = cpu_s();
  if (fail) return 1;
  long long nin = count(db, "SELECT COUNT(*) FROM inbox"), nconv = count(db, "SELECT COUNT(*) FROM conversations"),
            nout = count(db, "SELECT COUNT(*) FROM outbox");
  printf("floor.events_per_s: %.0f events/s (3 statements per event, %ld commits of <= %ld, "
         "synchronous=full)\n", events / (t1 - t0), commits, batch);
  printf("floor.cpu_us_per_event: %.1f us\n", (c1 - c0) * 1e6 / events);
  printf("floor.rows: %lld inbox, %lld conversations, %lld outbox\n", nin, nconv, nout);
  for (int i = 0; i < F_COUNT; i++) sqlite3_finalize(st[i]);
  sqlite3_close(db);
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", dir);
  return 0;
}
