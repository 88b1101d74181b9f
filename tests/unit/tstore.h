/* tstore.h -- small queries on a test store, shared by the unit tests of
 * the store-level tools (import, campaign). */
#ifndef RT_TSTORE_H
#define RT_TSTORE_H
#include "store_impl.h"
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>

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
