/* deliver_crash.c -- the delivery queue under kill -9 (it.deliver_kill).
 *
 *   deliver_crash init DB CHATS ROWS   queue ROWS messages to each of CHATS chats
 *   deliver_crash run DB LOG           deliver them through a fake asynchronous
 *                                      channel until none is pending
 *   deliver_crash pending DB           print the rows not yet delivered
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
static void deliver_stop(void *d) { rt_deliver_close(d, NULL, NULL); }

/* Done when the store has no row left to send. */
static bool deliver_finished(void *s) { return crash_pending(s) == 0; }

int main(int argc, char **argv) {
  if (crash_usage(argc, "deliver_crash init DB CHATS ROWS | run DB LOG | pending DB")) return 2;
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
  } else if (strcmp(argv[1], "run") == 0 && argc == 4) {
    log_fd = crash_log_open(argv[3]);
    if (log_fd < 0) return 1;
    uv_loop_init(&loop);
    rt_clock clk = {0};
    rt_channel ch = {.name = "fake", .send = fake_send,
                     .limits = {.per_sec = 5000, .in_flight = 16}};
    rt_deliver_opts d_o = {.loop = &loop, .store = s, .clock = &clk};
    rt_deliver *d = rt_deliver_new(&d_o);
    rt_deliver_add_channel(d, &ch);
    crash_run(&loop, d, deliver_start, deliver_stop, deliver_finished, s);
    close(log_fd);
  } else if (strcmp(argv[1], "pending") == 0) {
    printf("%lld\n", (long long)crash_pending(s));
  } else {
    rc = 2;
  }
  rt_store_close(s);
  return rc;
}
