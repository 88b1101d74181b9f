/* tstore.h -- small queries on a test store, shared by the unit tests of
 * the store-level tools (import, campaign) and of the migrations. */
#ifndef RT_TSTORE_H
#define RT_TSTORE_H
#include "store_impl.h"
#include <sqlite3.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Opens (creating and migrating) a test store at path, durability off;
 * exits the test on failure. The migrations come from $RT_SOURCE_DIR. */
static inline rt_store *tstore_open(const char *path) {
  char sql[512];
  const char *src = getenv("RT_SOURCE_DIR");
  snprintf(sql, sizeof sql, "%s/schema/sql", src && *src ? src : RT_SOURCE_DIR);
  rt_store_opts o = {.sql_dir = sql, .sync_off = true};
  rt_store *s = NULL;
  char *err = NULL;
  if (rt_store_open(path, &o, &s, &err) != RT_OK) {
    fprintf(stderr, "store: %s\n", err);
    free(err);
    exit(1);
  }
  return s;
}

/* Counts the statements a store runs whose SQL text has needle, from
 * tstore_trace_start until tstore_trace_stop (sqlite3_trace_v2): what a
 * test asks of "this read is not made" or "made once". */
typedef struct {
  const char *needle;
  int hits;
} tstore_trace;

static inline int tstore_trace_cb(unsigned type, void *ud, void *p, void *x) {
  (void)type;
  (void)x;
  tstore_trace *t = ud;
  const char *sql = sqlite3_sql(p);
  if (sql && strstr(sql, t->needle)) t->hits++;
  return 0;
}

static inline void tstore_trace_start(rt_store *s, tstore_trace *t) {
  sqlite3_trace_v2(rt_store_db(s), SQLITE_TRACE_STMT, tstore_trace_cb, t);
}

static inline void tstore_trace_stop(rt_store *s) {
  sqlite3_trace_v2(rt_store_db(s), 0, NULL, NULL);
}

/* Removes a test store's files: the database, its -wal and its -shm. */
static inline void tstore_unlink(const char *path) {
  char side[600];
  unlink(path);
  snprintf(side, sizeof side, "%s-wal", path);
  unlink(side);
  snprintf(side, sizeof side, "%s-shm", path);
  unlink(side);
}

/* A new, empty test store at /tmp/<name>_<pid>.db (what an earlier run
 * left there removed); its path goes to path[n]. */
static inline rt_store *tstore_fresh(char *path, size_t n, const char *name) {
  snprintf(path, n, "/tmp/%s_%d.db", name, (int)getpid());
  tstore_unlink(path);
  return tstore_open(path);
}

static inline int tstore_cmp_name(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A store as an older shopbot left it: the migrations of $RT_SOURCE_DIR
 * numbered up to upto, applied by SQLite alone (this build's store would
 * apply them all), and user_version = upto. Returns the open database,
 * for the test to add the rows that build wrote, or NULL. */
static inline sqlite3 *tstore_old(const char *path, int upto) {
  char dir[512];
  const char *src = getenv("RT_SOURCE_DIR");
  snprintf(dir, sizeof dir, "%s/schema/sql", src && *src ? src : RT_SOURCE_DIR);
  DIR *d = opendir(dir);
  if (!d) return NULL;
  char *names[256];
  size_t n = 0;
  for (struct dirent *de; (de = readdir(d)) && n < 256;) {
    size_t len = strlen(de->d_name);
    if (len > 4 && strcmp(de->d_name + len - 4, ".sql") == 0 && atoi(de->d_name) >= 1 &&
        atoi(de->d_name) <= upto)
      names[n++] = strdup(de->d_name);
  }
  closedir(d);
  qsort(names, n, sizeof *names, tstore_cmp_name);
  sqlite3 *db = NULL;
  bool ok = sqlite3_open(path, &db) == SQLITE_OK;
  for (size_t i = 0; i < n; i++) {
    char file[800];
    snprintf(file, sizeof file, "%s/%s", dir, names[i]);
    FILE *f = ok ? fopen(file, "r") : NULL;
    static char sql[1 << 16];
    size_t len = f ? fread(sql, 1, sizeof sql - 1, f) : 0;
    if (f) fclose(f);
    sql[len] = '\0';
    if (ok && (!f || sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK)) {
      fprintf(stderr, "  %s: %s\n", file, f ? sqlite3_errmsg(db) : "cannot read");
      ok = false;
    }
    free(names[i]);
  }
  char v[48];
  snprintf(v, sizeof v, "PRAGMA user_version = %d", upto);
  if (ok && sqlite3_exec(db, v, NULL, NULL, NULL) == SQLITE_OK) return db;
  sqlite3_close(db);
  return NULL;
}

/* The first column of the first row as an integer; -1 on a bad query. */
static inline long long q_int(rt_store *s, const char *sql) {
  sqlite3_stmt *st;
  long long v = -1;
  if (sqlite3_prepare_v2(rt_store_db(s), sql, -1, &st, NULL) != SQLITE_OK) {
    fprintf(stderr, "  sql: %s: %s\n", sql, sqlite3_errmsg(rt_store_db(s)));
    return -1;
  }
  if (sqlite3_step(st) == SQLITE_ROW) v = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  return v;
}

/* The same as text, "(none)" without a row and "(null)" for NULL; the
 * result lives in one of four rotating buffers. */
static inline const char *q_text(rt_store *s, const char *sql) {
  static char buf[4][512];
  static int k;
  char *out = buf[k++ % 4];
  sqlite3_stmt *st;
  snprintf(out, 512, "(none)");
  if (sqlite3_prepare_v2(rt_store_db(s), sql, -1, &st, NULL) != SQLITE_OK) return out;
  if (sqlite3_step(st) == SQLITE_ROW) {
    const char *t = (const char *)sqlite3_column_text(st, 0);
    snprintf(out, 512, "%s", t ? t : "(null)");
  }
  sqlite3_finalize(st);
  return out;
}
#endif
