/* timers.c -- durable wake-ups (see timers.h). */
#include "timers.h"
#include "buf.h"
#include "log.h"
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FIRE_BATCH 1000

/* A fired timer: its event, and its conversation as read with it. */
typedef struct { rt_conv_row conv; char *payload; int64_t id; } fired;

struct rt_timers {
  rt_timers_opts o;
  uv_timer_t wake;
  bool closing;
  bool held;                 /* rt_timers_fire stopped at backlog_max */
  bool due;                  /* the uv_timer went off, or a staged batch was full:
                              * the host's next transaction stages more */
  fired *staged;             /* rt_timers_stage: queued once the host commits */
  int nstaged, capstaged;
  rt_buf b;                  /* the payload being written */
  void (*closed)(void *);
  void *closed_ud;
};

static void wake_cb(uv_timer_t *h) {
  rt_timers *tm = h->data;
  tm->due = true;
  if (tm->o.due) tm->o.due(tm->o.due_ud);
}

rt_timers *rt_timers_new(const rt_timers_opts *o) {
  rt_timers *tm = rt_xcalloc(1, sizeof *tm);
  tm->o = *o;
  uv_timer_init(o->loop, &tm->wake);
  tm->wake.data = tm;
  return tm;
}

static void staged_free(rt_timers *tm) {
  for (int i = 0; i < tm->nstaged; i++) {
    rt_conv_row_clear(&tm->staged[i].conv);
    free(tm->staged[i].payload);
  }
  tm->nstaged = 0;
}

static void wake_closed(uv_handle_t *h) {
  rt_timers *tm = h->data;
  void (*done)(void *) = tm->closed;
  void *ud = tm->closed_ud;
  staged_free(tm);
  free(tm->staged);
  free(tm->b.s);
  free(tm);
  if (done) done(ud);
}

void rt_timers_close(rt_timers *tm, void (*done)(void *), void *ud) {
  tm->closing = true;
  tm->closed = done;
  tm->closed_ud = ud;
  uv_close((uv_handle_t *)&tm->wake, wake_closed);
}

typedef struct {
  rt_timers *tm;
  int64_t now;
  int rc, n, cap, read;      /* read: rows the query gave, fired or not */
  fired *list;
  rt_buf b;                  /* the payload being written */
  const rt_inbox_direct *direct;   /* rt_timers_stage: may run them at once */
  int ran;                   /* handed to direct->run */
} fire_ctx;

/* Appends s as a JSON string. Timer names and steps are the flows' own
 * identifiers (ASCII in practice); quotes, backslashes and control bytes
 * are escaped, other bytes go as they are, as jansson writes them. */
static void add_json_str(rt_buf *b, const char *s) {
  rt_buf_addc(b, '"');
  for (const char *p = s ? s : ""; *p; p++) {
    unsigned char c = (unsigned char)*p;
    if (c == '"' || c == '\\') {
      rt_buf_addc(b, '\\');
      rt_buf_addc(b, (char)c);
    } else if (c < 0x20) {
      rt_buf_printf(b, "\\u%04x", c);
    } else {
      rt_buf_addc(b, (char)c);
    }
  }
  rt_buf_addc(b, '"');
}

/* The wake event's payload, keys in sorted order as the inbox's other
 * payloads: {"at":s,"data":...,"kind":"wake","name":...,"step":...}. data
 * is the timer's JSON text as the step's effects (lconv) or a campaign
 * wrote it, put in as it is instead of parsed and written again. */
static void wake_payload(rt_buf *b, const rt_timer_row *r) {
  rt_buf_reset(b);
  rt_buf_printf(b, "{\"at\":%lld,\"data\":", (long long)(r->due_at / 1000));
  rt_buf_adds(b, r->data && *r->data ? r->data : "{}");
  rt_buf_adds(b, ",\"kind\":\"wake\",\"name\":");
  add_json_str(b, r->name);
  rt_buf_adds(b, ",\"step\":");
  add_json_str(b, r->step);
  rt_buf_addc(b, '}');
}

/* The wake event as the object a step's C side reads (the same keys and
 * values as the payload text), built from the row: the text need not be
 * parsed again. data is the only part that is JSON text already. */
static json_t *wake_doc(const rt_timer_row *r) {
  json_t *data = r->data && *r->data ? json_loads(r->data, JSON_DECODE_ANY, NULL) : json_object();
  if (!data) return NULL;   /* not what wake_payload wrote: the step parses its text */
  json_t *name = json_string(r->name ? r->name : ""), *step = json_string(r->step ? r->step : "");
  if (!name || !step) {   /* not UTF-8: the text does not parse either */
    json_decref(data);
    json_decref(name);
    json_decref(step);
    return NULL;
  }
  json_t *d = json_object();
  json_object_set_new(d, "at", json_integer((json_int_t)(r->due_at / 1000)));
  json_object_set_new(d, "data", data);
  json_object_set_new(d, "kind", json_string("wake"));
  json_object_set_new(d, "name", name);
  json_object_set_new(d, "step", step);
  return d;
}

static void fire_one(void *ud, const rt_timer_row *r) {
  fire_ctx *f = ud;
  if (f->rc != RT_OK) return;
  f->read++;
  rt_store *s = f->tm->o.store;
  /* A row whose conversation is gone is only deleted. */
  bool live = r->conv && r->conv->channel && r->conv->chat_id;
  const rt_inbox_direct *d = f->direct;
  bool now = false;
  json_t *doc = NULL;
  if (live) {
    wake_payload(&f->b, r);
    now = d && !(d->full && d->full(d->ud)) && d->can_run(d->ud, r->conv->channel,
                                                         r->conv->chat_id);
    if (now) doc = wake_doc(r);
  }
  /* Deleted by its id before its step runs, while its pages are in the
   * cache: a step that sets a wake-up of the same name again makes a new
   * row, and nothing but the rows read here is deleted. (A delete of "the
   * first N due" after the steps ran took a re-set row out of that count
   * and a due one that had not fired in its place.) The row's text is not
   * read after this. */
  int rc = rt_store_timer_delete(s, r->id);
  if (rc != RT_OK || !live) {
    json_decref(doc);
    f->rc = rc;
    return;
  }
  const char *channel = r->conv->channel, *chat_id = r->conv->chat_id;
  if (now) {
    /* Its chat is idle: the step runs now, in this transaction, with no
     * inbox row (rt_inbox_add_wake: the host writes one only if the step
     * waits on I/O, fails or is skipped). A rollback takes back the step
     * and the timer's delete together, so the timer fires again. */
    /* The row as committed, read in this transaction: what another process
     * changed (a campaign linking the chat to a phone) is in it, and the
     * step takes it from here instead of reading it again. */
    char *chan = rt_xstrdup(channel), *chat = rt_xstrdup(chat_id);
    if (f->tm->o.convs) rt_convs_put(f->tm->o.convs, r->conv);
    d->run(d->ud, chan, chat, 0, r->id, rt_xstrndup(f->b.s, f->b.len), doc, true);
    free(chan);
    free(chat);
    f->ran++;
    return;
  }
  /* The wake-up's identity is its timer's id, which is never reused
   * (AUTOINCREMENT, 004_wakeups.sql), and moving a timer keeps it unfired.
   * So the inbox already holding this key means this very row was fired,
   * in the same transaction that deleted it: a store edited by hand. */
  int64_t id = 0;
  rc = rt_inbox_add_wake(s, channel, chat_id, r->id, rt_buf_str(&f->b), "new", f->now, &id);
  if (rc == 1) {
    rt_log(RT_LOG_WARN, "wake-duplicate", "timer=%lld conv=%lld: already in the inbox",
           (long long)r->id, (long long)r->conv_id);
    rc = RT_OK;
  }
  if (rc == RT_OK && id) {
    /* Queued only once the batch commits: a rolled-back wake-up must not
     * run, its timer is still there and fires again. */
    if (f->n == f->cap) {
      f->cap = f->cap ? f->cap * 2 : 64;
      f->list = rt_xrealloc(f->list, (size_t)f->cap * sizeof *f->list);
    }
    fired *x = &f->list[f->n++];
    *x = (fired){*r->conv, rt_xstrndup(f->b.s, f->b.len), id};
    memset(r->conv, 0, sizeof *r->conv);
  }
  f->rc = rc;
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
  tm->due = false;
  rt_buf b = RT_BUF_INIT;
  for (;;) {
    if (backlog_full(tm)) {
      tm->held = true;
      break;
    }
    /* One transaction per batch: the due rows become inbox rows and are
     * deleted (each as it is read), committed together, so a
     * kill -9 leaves either the timers or their wake events, never both
     * and never neither. */
    fire_ctx f = {tm, rt_clock_now(tm->o.clock), RT_OK, 0, 0, 0, NULL, b, NULL, 0};
    int rc = rt_store_begin(s);
    if (rc == RT_OK) rc = rt_store_timers_due(s, f.now, FIRE_BATCH, fire_one, &f);
    if (rc == RT_OK) rc = f.rc;
    if (rc == RT_OK) rc = rt_store_commit(s);
    else rt_store_rollback(s);
    b = f.b;
    for (int i = 0; i < f.n; i++) {
      fired *x = &f.list[i];
      if (rc == RT_OK) {
        rt_convq_push(tm->o.queues, x->conv.channel, x->conv.chat_id, x->id, x->payload, true,
                      false);
        x->payload = NULL;
        /* The row as committed now, read in this transaction: whatever
         * another process changed (a campaign linking the chat to a phone)
         * is in it, so the step need not read it again. */
        if (tm->o.convs) rt_convs_put(tm->o.convs, &x->conv);
      }
      rt_conv_row_clear(&x->conv);
      free(x->payload);
    }
    free(f.list);
    if (rc != RT_OK) {
      free(b.s);
      return rc;
    }
    *n += f.n;
    if (f.read < FIRE_BATCH) break;
  }
  free(b.s);
  return RT_OK;
}

bool rt_timers_due(const rt_timers *tm) { return tm->due && !backlog_full(tm); }

void rt_timers_poke(rt_timers *tm) { tm->due = true; }

int rt_timers_stage(rt_timers *tm, const rt_inbox_direct *direct, int max, int *ran) {
  rt_store *s = tm->o.store;
  *ran = 0;
  staged_free(tm);
  free(tm->staged);
  tm->staged = NULL;
  /* Still due, for when the queues have room again. */
  if (backlog_full(tm) || max <= 0) return RT_OK;   /* no room in this transaction: the next one */
  fire_ctx f = {tm, rt_clock_now(tm->o.clock), RT_OK, 0, 0, 0, NULL, tm->b, direct, 0};
  int rc = rt_store_timers_due(s, f.now, max, fire_one, &f);
  if (rc == RT_OK) rc = f.rc;
  tm->b = f.b;
  /* Those that did not run now go into their chats' queues after the
   * commit (rt_timers_staged). */
  tm->staged = f.list;
  tm->nstaged = f.n;
  tm->capstaged = f.cap;
  *ran = f.ran;
  /* A full batch: more may be due, for the next transaction. */
  tm->due = rc != RT_OK || f.read == max;
  return rc;
}

void rt_timers_staged(rt_timers *tm, bool committed) {
  for (int i = 0; committed && i < tm->nstaged; i++) {
    fired *x = &tm->staged[i];
    rt_convq_push(tm->o.queues, x->conv.channel, x->conv.chat_id, x->id, x->payload, true,
                  false);
    x->payload = NULL;
    if (tm->o.convs) rt_convs_put(tm->o.convs, &x->conv);
  }
  if (!committed) tm->due = true;   /* the timers are back: they fire again */
  staged_free(tm);
  free(tm->staged);
  tm->staged = NULL;
  tm->capstaged = 0;
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
