/* timers.c -- durable wake-ups (see timers.h). */
#include "timers.h"
#include "log.h"
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

#define FIRE_BATCH 1000

struct rt_timers {
  rt_timers_opts o;
  uv_timer_t wake;
  bool closing;
  bool held;                 /* rt_timers_fire stopped at backlog_max */
  void (*closed)(void *);
  void *closed_ud;
};

static void wake_cb(uv_timer_t *h) {
  rt_timers *tm = h->data;
  if (tm->o.due) tm->o.due(tm->o.due_ud);
}

rt_timers *rt_timers_new(const rt_timers_opts *o) {
  rt_timers *tm = rt_xcalloc(1, sizeof *tm);
  tm->o = *o;
  uv_timer_init(o->loop, &tm->wake);
  tm->wake.data = tm;
  return tm;
}

static void wake_closed(uv_handle_t *h) {
  rt_timers *tm = h->data;
  void (*done)(void *) = tm->closed;
  void *ud = tm->closed_ud;
  free(tm);
  if (done) done(ud);
}

void rt_timers_close(rt_timers *tm, void (*done)(void *), void *ud) {
  tm->closing = true;
  tm->closed = done;
  tm->closed_ud = ud;
  uv_close((uv_handle_t *)&tm->wake, wake_closed);
}

typedef struct { char *channel, *chat_id, *payload; int64_t id; } fired;
typedef struct { rt_timers *tm; int rc; int n; fired *list; } fire_ctx;

static void fire_one(void *ud, const rt_timer_row *r) {
  fire_ctx *f = ud;
  if (f->rc != RT_OK) return;
  rt_store *s = f->tm->o.store;
  rt_conv_row c;
  if (rt_store_conv_by_id(s, r->conv_id, &c) != RT_OK) {
    f->rc = rt_store_timer_delete(s, r->id);
    return;
  }
  if (f->tm->o.convs) rt_convs_forget(f->tm->o.convs, c.channel, c.chat_id);
  json_t *data = json_loads(r->data ? r->data : "{}", JSON_DECODE_ANY, NULL);
  json_t *p = json_pack("{s:s, s:s, s:s, s:I, s:o}", "kind", "wake", "name", r->name, "step",
                        r->step, "at", (json_int_t)(r->due_at / 1000),
                        "data", data ? data : json_object());
  char *payload = json_dumps(p, JSON_COMPACT | JSON_SORT_KEYS);
  json_decref(p);
  /* The wake-up's identity is its timer's id, which is never reused
   * (AUTOINCREMENT, 004_wakeups.sql), and moving a timer keeps it unfired.
   * So the inbox already holding this key means this very row was fired,
   * in the same transaction that deleted it: a store edited by hand. */
  char ext[32];
  snprintf(ext, sizeof ext, "wake:%lld", (long long)r->id);
  int64_t id = 0;
  int rc = rt_store_inbox_add(s, c.channel, ext, c.chat_id, "wake", payload,
                              rt_clock_now(f->tm->o.clock), &id);
  if (rc == 1)
    rt_log(RT_LOG_WARN, "wake-duplicate", "timer=%lld conv=%lld: already in the inbox",
           (long long)r->id, (long long)r->conv_id);
  if (rc == RT_OK || rc == 1) rc = rt_store_timer_delete(s, r->id);
  if (rc == RT_OK && id) {
    /* Queued only once the batch commits: a rolled-back wake-up must not
     * run, its timer is still there and fires again. */
    f->list = rt_xrealloc(f->list, (size_t)(f->n + 1) * sizeof *f->list);
    f->list[f->n++] = (fired){rt_xstrdup(c.channel), rt_xstrdup(c.chat_id), payload, id};
    payload = NULL;
  }
  free(payload);
  f->rc = rc;
  rt_conv_row_clear(&c);
}

/* A campaign makes thousands of check-ins due at once: each queued one is
 * an event in memory (its payload, its chat's queue) until its step runs,
 * and all of them together were most of the peak of a burst. Firing stops
 * while the queues hold backlog_max chats -- enough for full pump
 * transactions -- and goes on as they drain (rt_timers_can_resume). */
static bool backlog_full(const rt_timers *tm) {
  return tm->o.backlog_max && rt_convq_chats(tm->o.queues) >= tm->o.backlog_max;
}

bool rt_timers_can_resume(const rt_timers *tm) { return tm->held && !backlog_full(tm); }

int rt_timers_fire(rt_timers *tm, int *n) {
  rt_store *s = tm->o.store;
  *n = 0;
  tm->held = false;
  for (;;) {
    if (backlog_full(tm)) {
      tm->held = true;
      break;
    }
    fire_ctx f = {tm, RT_OK, 0, NULL};
    int rc = rt_store_begin(s);
    if (rc == RT_OK) rc = rt_store_timers_due(s, rt_clock_now(tm->o.clock), FIRE_BATCH, fire_one, &f);
    if (rc == RT_OK) rc = f.rc;
    if (rc == RT_OK) rc = rt_store_commit(s);
    else rt_store_rollback(s);
    for (int i = 0; i < f.n; i++) {
      if (rc == RT_OK) {
        rt_convq_push(tm->o.queues, f.list[i].channel, f.list[i].chat_id, f.list[i].id,
                      f.list[i].payload, true, false);
        f.list[i].payload = NULL;
      }
      free(f.list[i].channel);
      free(f.list[i].chat_id);
      free(f.list[i].payload);
    }
    free(f.list);
    if (rc != RT_OK) return rc;
    *n += f.n;
    if (f.n < FIRE_BATCH) break;
  }
  return RT_OK;
}

void rt_timers_arm_in(rt_timers *tm, int64_t ms) {
  if (tm->o.manual || tm->closing) return;
  uv_timer_start(&tm->wake, wake_cb, (uint64_t)(ms > 0 ? ms : 0), 0);
}

void rt_timers_arm(rt_timers *tm, int64_t not_before) {
  if (tm->o.manual || tm->closing) return;
  int64_t next = rt_store_timer_next(tm->o.store), now = rt_clock_now(tm->o.clock);
  /* Poll at least every 5 s: `shopbot campaign` adds timers from another
   * process. */
  int64_t in = 5000;
  /* Held at backlog_max: the host fires again as the queues drain, the
   * uv_timer only polls. */
  if (next >= 0 && !tm->held) in = next <= now ? 0 : (next - now < in ? next - now : in);
  /* After a store failure, at its retry time: sooner would spin on due
   * timers that cannot fire yet. */
  if (not_before) in = not_before > now ? not_before - now : 0;
  rt_timers_arm_in(tm, in);
}
