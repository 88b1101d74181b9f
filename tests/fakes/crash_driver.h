/* crash_driver.h -- what the kill -9 drivers (wake_crash for it.wake_kill,
 * deliver_crash for it.deliver_kill) share: the usage line, the store they
 * open, the log that stands for the outside world, and the loop that runs
 * until nothing is left to send.
 *
 * Header only, like tests/unit/t.h: tests/tests.cmake makes a program of
 * every .c in tests/fakes, so a shared .c there would need a main. */
#ifndef RT_CRASH_DRIVER_H
#define RT_CRASH_DRIVER_H
#include "channel.h"
#include "paths.h"
#include "rt.h"
#include "store.h"
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <uv.h>

/* True, after "usage: <usage>" on stderr, when argv has no command and
 * first argument; the driver then exits 2, as for an unknown command. */
static inline bool crash_usage(int argc, const char *usage) {
  if (argc >= 3) return false;
  fprintf(stderr, "usage: %s\n", usage);
  return true;
}

/* Opens (creating and migrating) the store at db, every commit synced: a
 * kill must not take back what the log shows as sent. On failure prints
 * "<prog>: <error>" and returns NULL. */
static inline rt_store *crash_store_open(const char *prog, const char *db) {
  char *sql = rt_paths_schema("sql"), *err = NULL;
  rt_store_opts o = {.sql_dir = sql, .sync_full = true};
  rt_store *s = NULL;
  if (rt_store_open(db, &o, &s, &err) != RT_OK) {
    fprintf(stderr, "%s: %s\n", prog, err);
    free(err);
    s = NULL;
  }
  free(sql);
  return s;
}

/* The log, opened for appending (runs after a kill add to it); -1, after
 * perror, when it cannot be. */
static inline int crash_log_open(const char *path) {
  int fd = open(path, O_WRONLY | O_APPEND | O_CREAT, 0644);
  if (fd < 0) perror(path);
  return fd;
}

/* Appends "chat outbox-id tail" to the log and fsyncs it before the fake
 * channel answers, so the log is what the outside world received whatever
 * moment the driver is killed. A line that cannot be written ends the
 * driver (exit 2): a log with a hole would make the test's count wrong. */
static inline void crash_log_send(int fd, const rt_out_msg *m, const char *tail) {
  char line[256];
  int n = snprintf(line, sizeof line, "%s %lld %s\n", m->chat_id, (long long)m->id, tail);
  if (n < 0 || n >= (int)sizeof line || write(fd, line, (size_t)n) != n || fsync(fd)) {
    perror("log");
    exit(2);
  }
}

/* Outbox rows not yet delivered. */
static inline int64_t crash_pending(rt_store *s) {
  rt_store_counts c = {0};
  rt_store_counts_get(s, &c);
  return c.outbox_pending;
}

typedef struct {
  uv_timer_t t;
  bool (*finished)(void *ud);
  void *ud;
} crash_tick;

static inline void crash_tick_cb(uv_timer_t *t) {
  crash_tick *k = t->data;
  if (k->finished(k->ud)) uv_stop(t->loop);
}

/* Runs what the driver drives (the engine, the delivery queue: part) on
 * loop until finished(ud) holds, checked every 20 ms: start(part) once the
 * check is armed, then stop(part) (its close) and the loop again until
 * every handle is closed, and closes the loop. A run the test does not
 * kill thus ends by itself when the work is done. */
static inline void crash_run(uv_loop_t *loop, void *part, void (*start)(void *part),
                             void (*stop)(void *part), bool (*finished)(void *ud), void *ud) {
  crash_tick k = {.finished = finished, .ud = ud};
  uv_timer_init(loop, &k.t);
  k.t.data = &k;
  uv_timer_start(&k.t, crash_tick_cb, 20, 20);
  start(part);
  uv_run(loop, UV_RUN_DEFAULT);
  uv_close((uv_handle_t *)&k.t, NULL);
  stop(part);
  uv_run(loop, UV_RUN_DEFAULT);
  uv_loop_close(loop);
}
#endif
