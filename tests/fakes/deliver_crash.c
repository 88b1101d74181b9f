/* deliver_crash.c -- the delivery queue under kill -9 (it.deliver_kill).
 *
 *   deliver_crash init DB CHATS ROWS   queue ROWS messages to each of CHATS chats
 *   deliver_crash run DB LOG           deliver them through a fake asynchronous
 *                                      channel until none is pending
 *   deliver_crash pending DB           print the rows not yet delivered
 *   deliver_crash feed DB LOG CHATS ROWS
 *                                      queue the messages while delivering them,
 *                                      a round of one per chat a millisecond, each
 *                                      round in the transaction that also saves
 *                                      the answers so far, as the engine does: the
 *                                      rows are handed over in memory and written
 *                                      open under the channel's mark
 *                                      (025_outbox_mark.sql); a run after a kill
 *                                      goes on from the rounds stored
 *
 * The fake channel is the service: it appends "chat id idem" to LOG and
 * fsyncs before it answers (after 0-3 ms, from a uv timer), so the log is
 * what the outside world received, whatever moment the driver is killed. */
#include "crash_driver.h"
#include "deliver.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static uv_loop_t loop;
static int log_fd = -1;
static uint64_t rng = 0x9E3779B97F4A7C15ULL;

typedef struct { uv_timer_t t; rt_send_done done; void *ud; } pend;

static void pend_closed(uv_handle_t *h) { free(h->data); }

static void answer(uv_timer_t *t) {
  pend *p = t->data;
  p->done(p->ud, &(rt_send_result){.verdict = RT_SEND_DELIVERED});
  uv_close((uv_handle_t *)&p->t, pend_closed);
}

static void fake_send(rt_channel *ch, const rt_out_msg *m, rt_send_done done, void *ud) {
  (void)ch;
  crash_log_send(log_fd, m, m->idem_key);
  rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
  pend *p = rt_xcalloc(1, sizeof *p);
  p->done = done;
  p->ud = ud;
  uv_timer_init(&loop, &p->t);
  p->t.data = p;
  uv_timer_start(&p->t, answer, rng % 4, 0);
}

static void deliver_start(void *d) { rt_deliver_start(d); }

/* ---- feed ---- */

typedef struct {
  uv_timer_t t;
  rt_store *s;
  rt_deliver *d;
  int chats, rows, round;
} feeder;

/* The rounds stored, kept with them (meta feed_rounds). */
static int rounds_stored(rt_store *s) {
  char *v = NULL;
  int n = rt_store_meta_get(s, "feed_rounds", &v) == RT_OK && v ? atoi(v) : 0;
  free(v);
  return n;
}

static void feed_tick(uv_timer_t *t) {
  feeder *f = t->data;
  int rc = rt_store_begin(f->s);
  for (int c = 0; rc == RT_OK && f->round < f->rows && c < f->chats; c++) {
    char chat[32], idem[64];
    snprintf(chat, sizeof chat, "c%d", c);
    snprintf(idem, sizeof idem, "k:%d:%d", c, f->round);
    rc = rt_store_outbox_add(f->s, 0, "fake", chat, idem, "text", "{\"text\":\"m\"}", 0, NULL);
  }
  char n[16];
  snprintf(n, sizeof n, "%d", f->round + 1);
  if (rc == RT_OK && f->round < f->rows) rc = rt_store_meta_set(f->s, "feed_rounds", n);
  if (rc == RT_OK) rc = rt_deliver_save(f->d);
  if (rc == RT_OK) rc = rt_store_commit(f->s);
  else rt_store_rollback(f->s);
  rt_deliver_saved(f->d, rc == RT_OK);
  if (rc != RT_OK) { fprintf(stderr, "deliver_crash: %s\n", rt_store_errmsg(f->s)); exit(1); }
  if (f->round < f->rows) f->round++;
  rt_deliver_committed(f->d);
}

static void feed_start(void *ud) {
  feeder *f = ud;
  rt_deliver_start(f->d);
  uv_timer_start(&f->t, feed_tick, 1, 1);
}

static void feed_stop(void *ud) {
  feeder *f = ud;
  uv_close((uv_handle_t *)&f->t, NULL);
  rt_deliver_close(f->d, NULL, NULL);
}

static bool feed_finished(void *ud) {
  feeder *f = ud;
  return f->round >= f->rows && crash_pending(f->s) == 0 && rt_deliver_idle(f->d);
}

static void no_wake(void *ud) { (void)ud; }   /* the feed's next tick saves the answers */
static void deliver_stop(void *d) { rt_deliver_close(d, NULL, NULL); }

/* Done when the store has no row left to send. */
static bool deliver_finished(void *s) { return crash_pending(s) == 0; }

int main(int argc, char **argv) {
  if (crash_usage(argc, "deliver_crash init DB CHATS ROWS | run DB LOG | pending DB | "
                        "feed DB LOG CHATS ROWS")) return 2;
  rt_store *s = crash_store_open("deliver_crash", argv[2]);
  if (!s) return 1;
  int rc = 0;
  if (strcmp(argv[1], "init") == 0 && argc == 5) {
    int chats = atoi(argv[3]), rows = atoi(argv[4]);
    rt_store_begin(s);
    for (int k = 0; k < rows; k++)
      for (int c = 0; c < chats; c++) {
        char chat[32], idem[64];
        snprintf(chat, sizeof chat, "c%d", c);
        snprintf(idem, sizeof idem, "k:%d:%d", c, k);
        if (rt_store_outbox_add(s, 0, "fake", chat, idem, "text", "{\"text\":\"m\"}", 0, NULL))
          rc = 1;
      }
    if (rt_store_commit(s) != RT_OK) rc = 1;
  } else if ((strcmp(argv[1], "run") == 0 && argc == 4) ||
             (strcmp(argv[1], "feed") == 0 && argc == 6)) {
    bool feed = argv[1][0] == 'f';
    log_fd = crash_log_open(argv[3]);
    if (log_fd < 0) return 1;
    uv_loop_init(&loop);
    rt_clock clk = {0};
    rt_channel ch = {.name = "fake", .send = fake_send,
                     .limits = {.per_sec = 5000, .in_flight = 16}};
    rt_deliver_opts d_o = {.loop = &loop, .store = s, .clock = &clk, .wake = feed ? no_wake : NULL};
    rt_deliver *d = rt_deliver_new(&d_o);
    rt_deliver_add_channel(d, &ch);
    if (feed) {
      feeder f = {.s = s, .d = d, .chats = atoi(argv[4]), .rows = atoi(argv[5]),
                  .round = rounds_stored(s)};
      uv_timer_init(&loop, &f.t);
      f.t.data = &f;
      crash_run(&loop, &f, feed_start, feed_stop, feed_finished, &f);
    } else {
      crash_run(&loop, d, deliver_start, deliver_stop, deliver_finished, s);
    }
    close(log_fd);
  } else if (strcmp(argv[1], "pending") == 0) {
    printf("%lld\n", (long long)crash_pending(s));
  } else {
    rc = 2;
  }
  rt_store_close(s);
  return rc;
}
