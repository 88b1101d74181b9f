/* bench_store.c -- the store's cost per event, statement by statement,
 * for the write pattern of one message (receive, apply, mark sent) in
 * batches of 2000 with durable commits. Prints figures only.
 * usage: bench_store [EVENTS] */
#include "store.h"
#include "paths.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>
int main(int argc, char **argv) {
  int n = argc > 1 ? atoi(argv[1]) : 100000;
  rt_store *s; char *err;
  char *sql = rt_paths_schema("sql");
  rt_store_opts o = {.sql_dir = sql, .sync_full = true, .cache_mb = 16};
  unlink("/var/tmp/bench_store.db"); unlink("/var/tmp/bench_store.db-wal");
  if (rt_store_open("/var/tmp/bench_store.db", &o, &s, &err)) { puts(err); return 1; }
  int convs = 10000;
  double t[8] = {0};
  const char *payload = "{\"at\":1772434800,\"kind\":\"text\",\"text\":\"колодки передние\",\"user\":\"a123\"}";
  const char *state = "{\"car\":\"XW8ZZZ614BG012345\",\"parts\":[\"колодки передние\",\"фильтр масляный\",\"свечи\"]}";
  int64_t *ids = malloc(sizeof(int64_t) * 2000), *oids = malloc(sizeof(int64_t) * 2000);
  for (int base = 0; base < n; base += 2000) {
    uint64_t a = uv_hrtime();
    rt_store_begin(s);
    for (int i = 0; i < 2000; i++) {
      char chat[32], ext[32]; snprintf(chat, 32, "c%d", (base + i) % convs); snprintf(ext, 32, "e%d", base + i);
      uint64_t x = uv_hrtime();
      rt_store_inbox_add(s, "console", ext, chat, "text", payload, 1, &ids[i]);
      uint64_t y = uv_hrtime(); t[0] += y - x;
      rt_store_conv_ensure(s, "console", chat, 1);
      t[1] += uv_hrtime() - y;
    }
    uint64_t c0 = uv_hrtime();
    rt_store_commit(s);
    t[7] += uv_hrtime() - c0;
    rt_store_begin(s);
    for (int i = 0; i < 2000; i++) {
      char chat[32], idem[32]; snprintf(chat, 32, "c%d", (base + i) % convs); snprintf(idem, 32, "k%d", base + i);
      rt_conv_row r;
      uint64_t x = uv_hrtime();
      rt_store_conv_get(s, "console", chat, false, 1, &r);
      uint64_t y = uv_hrtime(); t[2] += y - x;
      rt_store_outbox_add(s, r.id, "console", chat, idem, "text", "{\"text\":\"Записал: колодки. Нужно что-нибудь ещё?\"}", 1, &oids[i]);
      uint64_t z = uv_hrtime(); t[3] += z - y;
      free(r.state); r.state = strdup(state);
      rt_store_conv_save(s, &r, 1);
      uint64_t w = uv_hrtime(); t[4] += w - z;
      rt_store_inbox_finish(s, ids[i], "done", 1);
      t[5] += uv_hrtime() - w;
      rt_conv_row_clear(&r);
    }
    c0 = uv_hrtime();
    rt_store_commit(s);
    t[7] += uv_hrtime() - c0;
    rt_store_begin(s);
    uint64_t x = uv_hrtime();
    for (int i = 0; i < 2000; i++) rt_store_outbox_sent(s, oids[i], 2);
    t[6] += uv_hrtime() - x;
    c0 = uv_hrtime();
    rt_store_commit(s);
    t[7] += uv_hrtime() - c0;
    (void)a;
  }
  const char *names[] = {"inbox_add", "conv_ensure", "conv_get", "outbox_add", "conv_save", "inbox_finish", "outbox_sent", "commits"};
  double tot = 0;
  for (int i = 0; i < 8; i++) { printf("store.%s: %.2f us\n", names[i], t[i] / 1e3 / n); tot += t[i]; }
  printf("store.total: %.2f us per event\n", tot / 1e3 / n);
  rt_store_close(s);
  free(sql);
  free(ids);
  free(oids);
  unlink("/var/tmp/bench_store.db");
  unlink("/var/tmp/bench_store.db-wal");
  unlink("/var/tmp/bench_store.db-shm");
  return 0;
}
