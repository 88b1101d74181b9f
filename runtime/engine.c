/* engine.c -- the pump: received events -> ready chats -> turns -> one
 * apply commit -> deliveries, once per loop iteration (see engine.h).
 *
 * The pieces along the event path own their state and get only what they
 * need: inbox.c (receive commit, crash recovery), convq.c (per-chat
 * queues), turn.c (steps in Lua), effects.c and handoff.c (what a step
 * writes), timers.c (durable wake-ups), deliver.c (sending), metrics.c.
 * This file wires them, keeps the order of the pump, and decides what a
 * store failure means (retry later, health). */
#include "engine.h"
#include "convq.h"
#include "convs.h"
#include "deliver.h"
#include "effects.h"
#include "handoff.h"
#include "inbox.h"
#include "log.h"
#include "lvm.h"
#include "metrics.h"
#include "paths.h"
#include "timers.h"
#include "turn.h"
#include "walsync.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TURNS_PER_PUMP 2048
#define IDLE_RELEASE_MS 1000

/* The WAL's pages are copied into the database file by the loop, not by
 * SQLite inside a COMMIT (where the copy and its fsync held back that
 * batch's acks and sends): once the loop has nothing to do and the WAL
 * holds CKPT_IDLE_PAGES (SQLite's own threshold), after a second without
 * work whatever it holds, and during a burst that never lets the loop
 * rest once it holds CKPT_BUSY_PAGES (32 MB); the loop copies it itself
 * once it has grown to four times that, when a copy on the worker ends
 * (checkpoint()). */
#define CKPT_IDLE_PAGES 1000
#define CKPT_BUSY_PAGES 8192
/* The loop copies a WAL's last pages itself when they are at most this
 * part of the bound (256 pages, 1 MB: a millisecond or two). */
#define CKPT_TAIL_PART 32

/* A tool (`shopbot campaign`, `import`) holding the write lock: the store
 * fails at once (no_busy_wait) and the loop retries soon, from a timer. For
 * up to STORE_BUSY_OK_MS this is normal operation, not an error. */
#define STORE_BUSY_RETRY_MS 10
#define STORE_BUSY_OK_MS 5000

struct rt_engine {
  uv_loop_t *loop;
  rt_config *cfg;
  rt_store *store;
  rt_clock clock;
  bool test_mode;
  int64_t wal_max_pages;        /* CKPT_BUSY_PAGES unless a test says */
  int64_t ckpt_frames0, ckpt_copied0;   /* the WAL when the last worker copy began */
  bool ckpt_tail;               /* a worker copy finished: what it left is the tail */
  rt_bundle *bundle;
  rt_bundle_opts bopts;
  json_t *shop_view;
  char *flows_dir, *lib_dir, *start_flow;
  char *reload_error, *store_error;

  rt_convq queues;
  rt_convs *convs;              /* conversation rows as last committed */
  rt_turn **fresh;              /* steps started with their receive, this pump */
  size_t nfresh, capfresh;
  /* The open transaction: its steps already written (each as soon as it
   * finished, then settled: rt_turn_settle), oldest first, waiting for the
   * commit; its time, read at its first write; its first failure. */
  rt_turn *applied, *applied_tail;
  int64_t txn_now;
  int txn_rc;
  rt_inbox *inbox;
  rt_turns *turns;
  rt_handoff *handoff;
  rt_effects *effects;
  rt_timers *timers;
  rt_deliver *dl;               /* committed outbox rows to the channels */
  rt_walsync *ws;               /* the commits' fsync off the loop; NULL: in the COMMIT */

  uv_idle_t pump;
  uv_timer_t watchdog;         /* step deadlines, store retries, pruning */
  bool pumping, closing;
  bool outbox_dirty;           /* a commit queued messages */
  bool released;               /* memory given back since the last pump */
  uint64_t last_pump_ms;       /* loop time of the last pump with work */
  int64_t next_prune;
  int handles_open;
  void (*close_done)(void *);
  void *close_ud;
  int64_t store_retry_at;
  int64_t store_busy_since;    /* store_error is "locked" (a tool's write) since; 0: not */
  rt_engine_stats st;
};

static void pump_start(rt_engine *e);
static void arm_wake(rt_engine *e);
static void kick(void *ud) { pump_start(ud); }

/* A checkpoint that fails (another process's checkpoint holds its lock, a
 * full disk) is tried again at the next occasion; the WAL keeps the pages
 * meanwhile, and the commits stay durable. */
static void checkpoint(rt_engine *e, int64_t min_pages) {
  if (e->store_error || min_pages <= 0) return;
  /* With the commits synced off the loop (walsync.h), the copy is too.
   * SQLite starts the WAL again from its beginning only when a write
   * begins with everything copied, which a copy beside a burst never
   * sees: the pages committed while one copy ran are copied by the next,
   * each shorter than the one before as long as the worker copies faster
   * than the loop commits, and the loop copies the last few itself,
   * between two transactions. If the worker falls behind (its copies
   * write random pages of the file and sync them) and the WAL reaches four
   * times its bound, the loop copies what is left at once. */
  if (e->ws && rt_walsync_checkpointing(e->ws)) return;
  bool tail = e->ckpt_tail;
  e->ckpt_tail = false;
  int64_t left = rt_store_wal_pages(e->store), frames = rt_store_wal_frames(e->store);
  if (tail ? left <= 0 : left < min_pages) return;
  /* A copy that moved nothing on (a reader in another process still uses
   * the pages it stopped at) is not followed by another at once, which
   * would stop short the same way, again and again: the next occasion (a
   * pump round, a second without work) tries. */
  if (tail && frames >= e->ckpt_frames0 && frames - left <= e->ckpt_copied0) return;
  if (e->ws && !(tail && (left <= e->wal_max_pages / CKPT_TAIL_PART ||
                          frames >= 4 * e->wal_max_pages))) {
    e->ckpt_frames0 = frames;
    e->ckpt_copied0 = frames - left;
    e->st.wal_copies++;
    rt_walsync_checkpoint(e->ws);
    return;
  }
  e->st.wal_copies++;
  if (rt_store_checkpoint(e->store) != RT_OK)
    rt_log(RT_LOG_DEBUG, "checkpoint-later", "err=%s", rt_store_errmsg(e->store));
}

/* What an idle loop copies from: CKPT_IDLE_PAGES, or a test's smaller
 * bound. */
static int64_t idle_pages(const rt_engine *e) {
  return e->wal_max_pages < CKPT_IDLE_PAGES ? e->wal_max_pages : CKPT_IDLE_PAGES;
}

static int64_t now_ms(rt_engine *e) { return rt_clock_now(&e->clock); }

static int64_t sat_mul(int64_t a, int64_t b) {
  int64_t r;
  if (__builtin_mul_overflow(a, b, &r)) return (a < 0) != (b < 0) ? INT64_MIN : INT64_MAX;
  return r;
}

/* A config integer kept within [lo, hi]. The schema has its own bounds;
 * this keeps the arithmetic below safe whatever the file says. */
static int64_t cfg_int(rt_config *c, const char *key, int64_t dflt, int64_t lo, int64_t hi) {
  int64_t v = rt_config_int(c, key, dflt);
  if (v < lo || v > hi) {
    int64_t k = v < lo ? lo : hi;
    rt_log(RT_LOG_WARN, "config-clamped", "key=%s value=%lld used=%lld", key, (long long)v,
           (long long)k);
    v = k;
  }
  return v;
}

/* ---- store failures ---- */

static void set_store_error(rt_engine *e, const char *what) {
  if (rt_store_errcode(e->store) == RT_EBUSY) {
    int64_t now = now_ms(e);
    if (!e->store_busy_since) e->store_busy_since = now;
    if (now - e->store_busy_since < STORE_BUSY_OK_MS) {
      free(e->store_error);
      e->store_error = rt_xasprintf("%s: %s", what, rt_store_errmsg(e->store));
      e->store_retry_at = now + STORE_BUSY_RETRY_MS;
      if (!e->closing) rt_timers_arm_in(e->timers, STORE_BUSY_RETRY_MS);
      return;
    }
  } else {
    e->store_busy_since = 0;
  }
  char *m = rt_xasprintf("%s: %s", what, rt_store_errmsg(e->store));
  if (!e->store_error || strcmp(e->store_error, m) != 0) {
    char q[512];
    rt_log_quote(m, q, sizeof q);
    rt_log(RT_LOG_ERROR, "store-error", "err=%s code=%d retry_in_ms=1000", q,
           rt_store_errcode(e->store));
  }
  free(e->store_error);
  e->store_error = m;
  e->store_retry_at = now_ms(e) + 1000;
}

static void clear_store_error(rt_engine *e) {
  /* A short wait for a tool's lock was never logged as an error. */
  bool quiet = e->store_busy_since && now_ms(e) - e->store_busy_since < STORE_BUSY_OK_MS;
  e->store_busy_since = 0;
  if (e->store_error && !quiet) rt_log(RT_LOG_INFO, "store-recovered", NULL);
  free(e->store_error);
  e->store_error = NULL;
}

/* ---- bundle and reload ---- */

static json_t *shop_view(rt_config *cfg) {
  /* Flows see the shop's facts and settings, never tokens or plumbing. */
  json_t *v = json_deep_copy(rt_config_json(cfg));
  static const char *hide[] = {"channels", "llm", "crm", "store", "http", "log", "tests", "limits"};
  for (size_t i = 0; i < RT_ARRAY_LEN(hide); i++) json_object_del(v, hide[i]);
  return v;
}

void rt_engine_bundle_opts(rt_config *c, rt_bundle_opts *o, json_t **view) {
  /* The bounds keep every product below in int64_t (the step deadline is
   * counted in ns): a year of step time, a TB of Lua memory. */
  *view = shop_view(c);
  *o = (rt_bundle_opts){
    .start_flow = rt_config_str(c, "flows.start", "lead"),
    .shop = *view,
    .mem_limit = (size_t)cfg_int(c, "limits.lua_memory_mb", 64, 1, 1 << 20) << 20,
    .step_instructions = cfg_int(c, "limits.step_instructions", 10000000, 1000, INT64_C(1) << 60),
    .step_timeout_ms = cfg_int(c, "limits.step_timeout_ms", 30000, 1, INT64_C(365) * 86400000),
    .state_max_bytes = (size_t)cfg_int(c, "limits.state_max_kb", 1024, 1, INT64_C(1) << 30) << 10,
    .load_instructions = 50000000,
    .max_http_per_turn = (int)cfg_int(c, "limits.http_requests_per_step", 10, 0, 1000000),
  };
}

int rt_engine_load(rt_engine *e, rt_bundle **out, char **err) {
  return rt_bundle_load(&e->bopts, out, err);
}

void rt_engine_swap(rt_engine *e, rt_bundle *b, uint64_t t0) {
  double ms = (double)(uv_hrtime() - t0) / 1e6;
  rt_bundle *old = e->bundle;
  e->bundle = b;
  free(e->reload_error);
  e->reload_error = NULL;
  e->st.reloads_ok++;
  rt_log(RT_LOG_INFO, "reload", "version=%s flows=%d ms=%.2f", rt_bundle_version(b),
         rt_bundle_flow_count(b), ms);
  rt_bundle_unref(old);   /* turns in flight still hold it */
}

void rt_engine_reload_failed(rt_engine *e, const char *err) {
  e->st.reloads_failed++;
  free(e->reload_error);
  e->reload_error = rt_xstrdup(err ? err : "reload failed");
  char q[1024];
  rt_log_quote(e->reload_error, q, sizeof q);
  rt_log(RT_LOG_ERROR, "reload-failed", "err=%s keep=%s", q,
         e->bundle ? rt_bundle_version(e->bundle) : "none");
}

int rt_engine_reload(rt_engine *e, char **err) {
  uint64_t t0 = uv_hrtime();
  rt_bundle *b;
  int rc = rt_engine_load(e, &b, err);
  if (rc == RT_OK) rt_engine_swap(e, b, t0);
  else rt_engine_reload_failed(e, *err);
  return rc;
}

/* ---- receive ---- */

int rt_engine_receive(rt_engine *e, const rt_event_in *ev, void (*ack)(void *, int), void *ud) {
  return rt_inbox_receive(e->inbox, ev, ack, ud);
}

/* ---- the pump's transaction ----
 * One per loop iteration: the events received (an event whose chat is idle
 * runs at once and is stored together with its step's effects: one commit
 * for both), the steps that finished, and the send results. Acks, the
 * conversation cache and the deliveries follow the commit; a rollback
 * takes all of it back: received events stay unacked for the next try,
 * steps of stored events run again, steps of events that were never
 * stored are dropped. */

static bool direct_can_run(void *ud, const char *channel, const char *chat_id) {
  rt_engine *e = ud;
  return e->nfresh < TURNS_PER_PUMP && e->txn_rc == RT_OK &&
         rt_convq_idle(&e->queues, channel, chat_id);
}

static bool direct_full(void *ud) {
  rt_engine *e = ud;
  return e->nfresh >= TURNS_PER_PUMP || e->txn_rc != RT_OK;
}

/* Writes the steps finished so far into the open transaction, in the order
 * they finished, and settles each (rt_turn_settle): a transaction of 2,048
 * steps then holds, until its commit, each step's conversation row and a
 * few facts, not its Lua turn, event tree and effects (about 4 KB a step,
 * which made the peak of a burst). The transaction's time is read at its
 * first write: after the messages it takes are stamped (received_at), so
 * what their steps queue is never stamped before them (a chat's history,
 * rt_store_chat_history, orders the two by these times). After a failure
 * nothing more is written; the steps wait in the list for the rollback. */
static void apply_done(rt_engine *e) {
  bool keep_lt = rt_bundle_keeps_states(e->bundle);
  for (rt_turn *t = rt_turns_take_done(e->turns); t;) {
    rt_turn *next = t->next;
    if (e->txn_rc == RT_OK) {
      if (!e->txn_now) e->txn_now = now_ms(e);
      e->txn_rc = rt_effects_apply(e->effects, t, e->txn_now);
    }
    rt_turn_settle(t, keep_lt);
    t->next = NULL;
    if (e->applied_tail) e->applied_tail->next = t;
    else e->applied = t;
    e->applied_tail = t;
    t = next;
  }
}

static void direct_run(void *ud, const char *channel, const char *chat_id, int64_t id,
                       int64_t timer_id, char *payload, json_t *doc, bool wake) {
  rt_engine *e = ud;
  rt_convq_chat *c = rt_convq_push_running(&e->queues, channel, chat_id, id, payload, wake);
  if (!c) {   /* cannot be: direct_can_run said idle; keep the event anyway */
    free(payload);
    json_decref(doc);
    return;
  }
  rt_turn *t = rt_turns_start(e->turns, e->bundle, c, doc, false);
  t->ev.stored_done = id != 0;
  t->ev.timer_id = id ? 0 : timer_id;
  if (e->nfresh == e->capfresh) {
    e->capfresh = e->capfresh ? e->capfresh * 2 : 64;
    e->fresh = rt_xrealloc(e->fresh, e->capfresh * sizeof *e->fresh);
  }
  e->fresh[e->nfresh++] = t;
  apply_done(e);
}

static int conv_get(void *ud, const char *channel, const char *chat_id, int64_t now,
                    rt_conv_row *out) {
  rt_engine *e = ud;
  return rt_convs_get(e->convs, channel, chat_id, now, out);
}

/* After the commit: what the steps did is durable. */
static void committed(rt_engine *e, rt_turn *list, int64_t now, bool staged_timers) {
  clear_store_error(e);
  /* Before the steps' rows go into the conversation cache: theirs are newer. */
  rt_timers_staged(e->timers, true);
  if (staged_timers && !rt_timers_due(e->timers)) arm_wake(e);
  /* Fresh steps still waiting on I/O are stored events now. */
  for (size_t i = 0; i < e->nfresh; i++)
    if (e->fresh[i]->status == RT_LTURN_YIELD) e->fresh[i]->ev.fresh = false;
  e->nfresh = 0;
  rt_inbox_staged(e->inbox, true);
  if (rt_effects_take_outbox(e->effects)) e->outbox_dirty = true;
  /* A wake-up set for now fires now, not at the next poll. */
  if (rt_effects_take_timers(e->effects)) rt_timers_arm(e->timers, 0);
  for (rt_turn *t = list; t;) {
    rt_turn *next = t->next;
    e->st.events++;
    rt_log(RT_LOG_INFO, "event", "conv=%lld channel=%s chat=%s kind=%s flow=%s step=%s mode=%s "
           "result=%s ms=%lld",
           (long long)t->conv.id, t->conv.channel, t->conv.chat_id, t->kind,
           t->conv.flow ? t->conv.flow : "-", t->conv.step ? t->conv.step : "-",
           t->conv.mode ? t->conv.mode : "bot",
           t->status == RT_LTURN_DONE ? "ok" : t->status == RT_LTURN_ERROR ? "failed"
           : t->status == RT_TURN_QUARANTINED ? "quarantined" : "skipped",
           (long long)(now - t->started_ms));
    /* Committed: a bundle that keeps states keeps this one (lvm.h). */
    if (t->status == RT_LTURN_DONE && t->lt) rt_lturn_keep_state(t->lt, t->conv.rev);
    rt_convs_put(e->convs, &t->conv);
    rt_convq_done(&e->queues, t->chat);
    rt_turn_free(t);
    t = next;
  }
}

static void rolled_back(rt_engine *e, rt_turn *list) {
  set_store_error(e, "cannot save conversation state");
  rt_timers_staged(e->timers, false);
  rt_inbox_staged(e->inbox, false);
  rt_effects_take_outbox(e->effects);
  /* Steps of events that were never stored go; the events come again with
   * their receive batch. */
  for (size_t i = 0; i < e->nfresh; i++) {
    rt_turn *t = e->fresh[i];
    if (t->status != RT_LTURN_YIELD) continue;   /* in the list below */
    rt_convq_abort(&e->queues, t->chat);
    rt_turns_abandon(e->turns, t);
  }
  e->nfresh = 0;
  /* The others go back to the head of their queues and run again. */
  for (rt_turn *t = list; t;) {
    rt_turn *next = t->next;
    if (t->ev.fresh) {
      rt_convq_abort(&e->queues, t->chat);
    } else {
      /* Settled: the payload is read from the store again. */
      rt_convq_retry(&e->queues, t->chat, t->ev.payload);
      t->ev.payload = NULL;
    }
    rt_turn_free(t);
    t = next;
  }
}

static bool has_work(rt_engine *e) {
  return rt_inbox_waiting(e->inbox) || rt_timers_due(e->timers) ||
         rt_turns_any_resumable(e->turns) ||
         rt_turns_any_done(e->turns) || rt_deliver_has_results(e->dl) ||
         (!rt_inbox_isolating(e->inbox) && rt_convq_any_ready(&e->queues));
}

static void pump_txn(rt_engine *e) {
  int rc = rt_store_begin(e->store);
  if (rc != RT_OK) {
    set_store_error(e, "cannot store received messages");
    return;
  }
  e->applied = e->applied_tail = NULL;
  e->txn_now = 0;
  e->txn_rc = RT_OK;
  rt_effects_take_timers(e->effects);
  /* Steps that finished outside a pump (a deadline, a recovered event run
   * alone) first, then each step as it finishes (apply_done). */
  apply_done(e);
  rt_inbox_direct direct = {.can_run = direct_can_run, .full = direct_full, .run = direct_run,
                            .ud = e};
  rc = rt_inbox_stage(e->inbox, &direct);
  /* Due wake-ups next, in this same transaction: one whose chat is idle
   * runs now and is stored together with its step, like a received event
   * (one commit instead of the fire's and the step's, and its inbox row
   * written once); after an unclean stop they are stored first, as every
   * event then is. */
  bool staged_timers = false;
  if (rc == RT_OK && rt_timers_due(e->timers)) {
    int ran = 0;
    rc = rt_timers_stage(e->timers, rt_inbox_may_run_direct(e->inbox) ? &direct : NULL,
                         TURNS_PER_PUMP - (int)e->nfresh, &ran);
    staged_timers = true;
  }
  rt_turns_resume(e->turns);
  apply_done(e);
  for (int n = 0; rc == RT_OK && e->txn_rc == RT_OK && !rt_inbox_isolating(e->inbox) &&
                  n < TURNS_PER_PUMP; n++) {
    rt_convq_chat *c = rt_convq_pop_ready(&e->queues);
    if (!c) break;
    /* The isolated recovery may have run it meanwhile: still running
     * (back in the list when done), or with nothing left. */
    if (c->running || !rt_convq_head(c)) { rt_convq_skip(&e->queues, c); continue; }
    rt_turns_start(e->turns, e->bundle, c, NULL, false);
    apply_done(e);
  }
  /* A step that was to finish with its receive waits on I/O: its event is
   * stored as new, to be found again after a crash (a wake-up run with no
   * inbox row gets one now). */
  for (size_t i = 0; rc == RT_OK && i < e->nfresh; i++) {
    rt_turn *t = e->fresh[i];
    if (t->status != RT_LTURN_YIELD) continue;
    if (t->ev.stored_done) {
      rc = rt_store_inbox_reopen(e->store, t->ev.id);
      t->ev.stored_done = false;
    } else if (!t->ev.id && t->ev.timer_id) {
      rc = rt_inbox_add_wake(e->store, t->chat->channel, t->chat->chat_id, t->ev.timer_id,
                             t->ev.payload ? t->ev.payload : "{}", "new", now_ms(e), &t->ev.id);
      if (rc == 1) {   /* a store edited by hand */
        rt_log(RT_LOG_WARN, "wake-duplicate", "timer=%lld conv=%lld: already in the inbox",
               (long long)t->ev.timer_id, (long long)t->conv.id);
        rc = RT_OK;
      }
      t->ev.timer_id = 0;
    }
  }
  apply_done(e);
  if (rc == RT_OK) rc = e->txn_rc;
  rt_turn *list = e->applied;
  e->applied = e->applied_tail = NULL;
  int64_t now = e->txn_now ? e->txn_now : now_ms(e);
  /* Send results ride in the same transaction: no fsync of their own. */
  if (rc == RT_OK) rc = rt_deliver_save(e->dl);
  if (rc == RT_OK) rc = rt_store_commit(e->store);
  else rt_store_rollback(e->store);
  rt_deliver_saved(e->dl, rc == RT_OK);
  if (rc == RT_OK) committed(e, list, now, staged_timers);
  else rolled_back(e, list);
}

/* ---- durable timers ---- */

int rt_engine_fire_timers(rt_engine *e) {
  int n = 0;
  int rc = rt_timers_fire(e->timers, &n);
  if (rc != RT_OK) {
    set_store_error(e, "cannot fire timers");
    return rc;
  }
  clear_store_error(e);
  if (n) pump_start(e);
  return RT_OK;
}

bool rt_engine_clock_step(rt_engine *e, int64_t target) {
  int64_t next = rt_store_timer_next(e->store);
  if (next < 0 || next > target) {
    if (target > rt_clock_now(&e->clock)) rt_clock_set(&e->clock, target);
    return false;
  }
  if (next > rt_clock_now(&e->clock)) rt_clock_set(&e->clock, next);
  rt_engine_fire_timers(e);
  return true;
}

static void arm_wake(rt_engine *e) {
  rt_timers_arm(e->timers, e->store_error ? e->store_retry_at : 0);
}

/* The pump's next transaction fires them (rt_timers_stage) and re-arms
 * once none is left due. */
static void timers_due(void *ud) {
  rt_engine *e = ud;
  if (!e->store_error || now_ms(e) >= e->store_retry_at) pump_start(e);
  else arm_wake(e);
}

/* ---- the pump: one round of work per loop iteration ---- */

/* After an unclean stop the next left-over event runs alone (inbox.h),
 * its attempt committed before it runs; events received meanwhile wait. */
static void isolated_step(rt_engine *e) {
  if (rt_turns_running(e->turns) || rt_turns_any_done(e->turns)) return;
  rt_convq_chat *c;
  bool quarantine;
  if (rt_inbox_isolated_next(e->inbox, &c, &quarantine) != RT_OK) {
    set_store_error(e, "cannot count a recovered event's attempt");
    return;
  }
  if (c) rt_turns_start(e->turns, e->bundle, c, NULL, quarantine);
}

static void pump_cb(uv_idle_t *h) {
  rt_engine *e = h->data;
  if (e->store_error && now_ms(e) < e->store_retry_at && !e->test_mode) {
    uv_idle_stop(&e->pump);
    e->pumping = false;
    return;
  }
  if (rt_inbox_isolating(e->inbox)) isolated_step(e);
  if (has_work(e)) {
    pump_txn(e);
    e->last_pump_ms = uv_now(e->loop);
    e->released = false;
  }
  if (!e->store_error && rt_timers_can_resume(e->timers)) rt_engine_fire_timers(e);
  if (e->outbox_dirty && !e->store_error) {
    e->outbox_dirty = false;
    rt_deliver_committed(e->dl);
  }
  /* The round's commits (and any made since the last round: a manager's
   * command, a tool's) go to disk while the next round runs. */
  if (e->ws) rt_walsync_kick(e->ws);
  /* After the acks and the sends of this round. */
  checkpoint(e, e->wal_max_pages);
  const rt_deliver_stats *ds = rt_deliver_get_stats(e->dl);
  e->st.sent = ds->sent;
  e->st.send_failed = ds->failed;
  e->st.steps_failed = rt_effects_get_stats(e->effects)->steps_failed;
  /* While one recovered event runs alone, the ready chats wait: nothing to
   * do until it finishes (and its finish restarts the pump). */
  bool waiting = rt_inbox_isolating(e->inbox) ? rt_turns_running(e->turns) > 0
                                               : !rt_convq_any_ready(&e->queues);
  if (!rt_inbox_waiting(e->inbox) && waiting && !rt_turns_any_done(e->turns) &&
      !rt_turns_any_resumable(e->turns) && !rt_deliver_has_results(e->dl) && !e->outbox_dirty) {
    uv_idle_stop(&e->pump);
    e->pumping = false;
    checkpoint(e, idle_pages(e));
  }
}

/* More commits are on disk: the acks they held go to the channels, and
 * their outbox rows may be sent. */
static void synced(void *ud) {
  rt_engine *e = ud;
  rt_inbox_synced(e->inbox);
  if (!e->closing) rt_deliver_committed(e->dl);
}

/* A copy on the worker finished. During a burst the next pump round
 * copies the tail; if the loop went idle while it ran, the tail is
 * copied now, as an idle loop's WAL would have been. */
static void checkpointed(void *ud) {
  rt_engine *e = ud;
  e->ckpt_tail = true;
  if (!e->pumping && !e->closing) checkpoint(e, idle_pages(e));
}

static void pump_start(rt_engine *e) {
  if (e->pumping || e->closing) return;
  e->pumping = true;
  uv_idle_start(&e->pump, pump_cb);
}

/* Every 250 ms: step deadlines, store retries, pruning. */
static void watchdog_cb(uv_timer_t *h) {
  rt_engine *e = h->data;
  int64_t now = now_ms(e);
  rt_turns_deadlines(e->turns, now);
  /* Old processed inbox and sent outbox rows go, a slice at a time, so the
   * file does not grow with every message ever handled. */
  if (!e->test_mode && now >= e->next_prune && !e->store_error) {
    int64_t keep = rt_config_int(e->cfg, "store.keep_days", 30);
    e->next_prune = now + 60000;
    int64_t span;   /* keep_days in ms; more than the clock's past: nothing is old enough */
    if (keep > 0 && !__builtin_mul_overflow(keep, INT64_C(86400000), &span) && span < now) {
      int64_t n = rt_store_prune(e->store, now - span, 2000);
      if (n > 0) rt_log(RT_LOG_INFO, "pruned", "rows=%lld keep_days=%lld", (long long)n, (long long)keep);
    }
  }
  if (e->store_error && now >= e->store_retry_at) pump_start(e);
  /* A burst leaves the conversation cache, the Lua state's garbage and
   * spare coroutines, the deliveries' chats and SQLite's page cache full,
   * their allocations interleaved: malloc can give a page back only when
   * nothing on it is alive, so all of them are trimmed together once the
   * loop has had no work for a second, then malloc is asked to hand the
   * free pages back. The next event of a chat reads its row again, inside
   * its transaction (a few microseconds); a busy bot is never trimmed. */
  if (!e->pumping && !e->released && uv_now(e->loop) - e->last_pump_ms >= IDLE_RELEASE_MS) {
    e->released = true;
    checkpoint(e, 1);
    rt_convs_clear(e->convs);
    rt_deliver_trim(e->dl);
    rt_bundle_collect(e->bundle);
    rt_store_release_memory(e->store);
    rt_alloc_trim();
  }
}

/* ---- setup and teardown ---- */

int rt_engine_new(const rt_engine_opts *o, rt_engine **out, char **err) {
  *out = NULL;
  rt_engine *e = rt_xcalloc(1, sizeof *e);
  e->loop = o->loop;
  e->cfg = o->cfg;
  e->test_mode = o->test_mode;
  e->wal_max_pages = o->wal_max_pages > 0 ? o->wal_max_pages : CKPT_BUSY_PAGES;
  if (o->test_mode) rt_clock_set(&e->clock, o->clock_ms);
  rt_convq_init(&e->queues);
  rt_config *c = o->cfg;
  rt_engine_bundle_opts(c, &e->bopts, &e->shop_view);
  int64_t step_timeout_ms = e->bopts.step_timeout_ms;

  char *store_path = o->store_path ? rt_xstrdup(o->store_path)
                                   : rt_config_path(c, rt_config_str(c, "store.path", "data/shop.db"));
  char *sql_dir = rt_paths_schema("sql");
  rt_store_opts so = {
    .sql_dir = sql_dir,
    .sync_full = strcmp(rt_config_str(c, "store.synchronous", "full"), "full") == 0,
    .sync_off = o->test_mode,
    .max_pages = o->store_max_pages,
    /* 1 MB: a burst of 2,048 steps filled 12 MB of the 16 it had and
     * kept most of it until idle, for no measurable gain (the file is in
     * the OS's cache; tests/bench/rss.sh and bench_core, which shows no
     * difference between 2 MB and 1 either). */
    .cache_mb = (int)cfg_int(c, "store.cache_mb", 1, 1, 1 << 20),
    .no_busy_wait = true,
    .own_checkpoints = true,
    .sync_later = true,
  };
  int rc = rt_store_open(store_path, &so, &e->store, err);
  free(sql_dir);
  free(store_path);
  if (rc != RT_OK) {
    rt_convq_free(&e->queues);
    json_decref(e->shop_view);
    free(e);
    return rc;
  }

  e->flows_dir = o->flows_dir ? rt_xstrdup(o->flows_dir)
                              : rt_paths_flows(rt_config_dir(c), rt_config_str(c, "flows.dir", "flows"));
  const char *lib = rt_config_str(c, "flows.lib", NULL);
  e->lib_dir = lib ? rt_config_path(c, lib) : NULL;
  e->start_flow = rt_xstrdup(e->bopts.start_flow);

  /* The turns answer the bundle's host calls, so they come first; they
   * hold no loop handle until the first HTTP request. */
  e->turns = rt_turns_new(&(rt_turns_opts){.loop = e->loop, .store = e->store,
                                           .clock = &e->clock,
                                           .step_timeout_ms = step_timeout_ms,
                                           .http = o->http,
                                           .kick = kick, .kick_ud = e,
                                           .conv_get = conv_get, .conv_ud = e});
  e->convs = rt_convs_new(e->store, (size_t)cfg_int(c, "store.conv_cache", 10000, 0, 1 << 24));
  e->bopts.flows_dir = e->flows_dir;
  e->bopts.lib_dir = e->lib_dir;
  e->bopts.start_flow = e->start_flow;
  e->bopts.host = rt_turns_host(e->turns);
  e->bopts.http = rt_turns_http(e->turns);
  e->bopts.providers = o->providers;
  e->bopts.nproviders = o->nproviders;
  if (o->flows_dir || (rc = rt_paths_flows_check(rt_config_dir(c), rt_config_str(c, "flows.dir",
                                                 "flows"), e->flows_dir, err)) == RT_OK)
    rc = rt_bundle_load(&e->bopts, &e->bundle, err);
  if (rc != RT_OK) {
    rt_turns_close(e->turns, NULL, NULL);
    rt_convs_free(e->convs);
    rt_store_close(e->store);
    rt_convq_free(&e->queues);
    json_decref(e->shop_view);
    free(e->flows_dir); free(e->lib_dir); free(e->start_flow);
    free(e);
    return rc;
  }

  uv_idle_init(e->loop, &e->pump);
  e->pump.data = e;
  if (rt_store_sync_later(e->store)) {
    e->ws = rt_walsync_new(&(rt_walsync_opts){.loop = e->loop, .store = e->store,
                                              .synced = synced, .checkpointed = checkpointed,
                                              .ud = e, .fsync = o->wal_fsync});
    /* Any commit, the pump's or another's, gets the pump round that syncs it. */
    rt_store_on_commit(e->store, kick, e);
  }
  uv_timer_init(e->loop, &e->watchdog);
  e->watchdog.data = e;
  e->handles_open = 3;   /* pump, watchdog, turns */
  e->inbox = rt_inbox_new(&(rt_inbox_opts){.store = e->store, .clock = &e->clock,
                                           .queues = &e->queues, .test_mode = e->test_mode,
                                           .kick = kick, .kick_ud = e});
  e->handoff = rt_handoff_new(&(rt_handoff_opts){
      .store = e->store,
      .release_after_ms = sat_mul(rt_config_duration(c, "handoff.release_after", 86400), 1000)});
  json_t *mc = json_object_get(json_object_get(rt_config_json(c), "managers"), "chat_id");
  char *mgr_chat = json_is_integer(mc) ? rt_xasprintf("%lld", (long long)json_integer_value(mc))
                                       : rt_xstrdup(json_is_string(mc) ? json_string_value(mc)
                                                                       : "managers");
  e->effects = rt_effects_new(&(rt_effects_opts){
      .store = e->store, .handoff = e->handoff, .start_flow = e->start_flow,
      .figures = o->figures, .figures_ud = o->figures_ud,
      .mgr_channel = rt_config_str(c, "managers.channel", "console"), .mgr_chat = mgr_chat,
      .wakeups_per_step = cfg_int(c, "limits.wakeups_per_step", 10, 1, 1000000),
      .wakeups_pending = cfg_int(c, "limits.wakeups_pending", 1000, 1, INT64_C(1) << 40),
      .message_max = cfg_int(c, "limits.message_max_kb", 16, 1, INT64_C(1) << 30) << 10,
      .step_output_max = cfg_int(c, "limits.step_output_kb", 64, 1, INT64_C(1) << 30) << 10});
  free(mgr_chat);
  e->timers = rt_timers_new(&(rt_timers_opts){.loop = e->loop, .store = e->store,
                                              .clock = &e->clock, .queues = &e->queues,
                                              .convs = e->convs, .backlog_max = TURNS_PER_PUMP,
                                              .manual = e->test_mode, .due = timers_due,
                                              .due_ud = e});
  e->handles_open++;
  rt_deliver_opts dopts = {.loop = e->loop, .store = e->store, .clock = &e->clock,
                           .wake = kick, .wake_ud = e};
  e->dl = rt_deliver_new(&dopts);
  e->handles_open++;
  rt_inbox_recover(e->inbox);
  /* Opening the store, loading the bundle and recovering the inbox freed
   * what they used on the way; hand it back now rather than idle on it. */
  rt_alloc_trim();
  *out = e;
  return RT_OK;
}

void rt_engine_add_channel(rt_engine *e, rt_channel *ch) {
  if (ch->caps & RT_CH_HISTORY) rt_store_keep_history(e->store, ch->name);
  rt_deliver_add_channel(e->dl, ch);
}

void rt_engine_start(rt_engine *e) {
  uv_timer_start(&e->watchdog, watchdog_cb, 250, 250);
  rt_deliver_start(e->dl);    /* whatever a previous run left unsent */
  /* Whatever fell due while the bot was stopped fires in the first pump. */
  if (!e->test_mode) rt_timers_poke(e->timers);
  pump_start(e);
}

static void engine_free(rt_engine *e) {
  void (*done)(void *) = e->close_done;
  void *ud = e->close_ud;
  rt_inbox_free(e->inbox, !e->store_error);
  rt_convq_free(&e->queues);
  rt_convs_free(e->convs);
  free(e->fresh);
  rt_effects_free(e->effects);
  rt_handoff_free(e->handoff);
  rt_bundle_unref(e->bundle);
  /* What the last rounds and the clean mark committed, on disk now. */
  rt_walsync_free(e->ws);
  rt_store_close(e->store);
  json_decref(e->shop_view);
  free(e->flows_dir); free(e->lib_dir); free(e->start_flow);
  free(e->reload_error); free(e->store_error);
  free(e);
  if (done) done(ud);
}

static void closed_one(void *ud) {
  rt_engine *e = ud;
  if (--e->handles_open == 0) engine_free(e);
}

static void handle_closed(uv_handle_t *h) { closed_one(h->data); }

void rt_engine_close(rt_engine *e, void (*done)(void *), void *ud) {
  e->closing = true;
  e->close_done = done;
  e->close_ud = ud;
  uv_close((uv_handle_t *)&e->pump, handle_closed);
  uv_close((uv_handle_t *)&e->watchdog, handle_closed);
  rt_timers_close(e->timers, closed_one, e);
  e->timers = NULL;
  rt_deliver_close(e->dl, closed_one, e);
  e->dl = NULL;
  /* Turns in flight are abandoned: their inbox rows stay 'new' and run
   * again at the next start. */
  rt_turns_close(e->turns, closed_one, e);
  e->turns = NULL;
  /* A sync under way finishes first (the engine frees after it). */
  if (e->ws) {
    e->handles_open++;
    rt_walsync_close(e->ws, closed_one, e);
  }
}

/* ---- accessors ---- */

const char *rt_engine_reload_error(const rt_engine *e) { return e->reload_error; }
const char *rt_engine_store_error(const rt_engine *e) { return e->store_error; }
const char *rt_engine_flows_version(const rt_engine *e) { return rt_bundle_version(e->bundle); }
const char *rt_engine_flows_dir(const rt_engine *e) { return e->flows_dir; }
json_t *rt_engine_describe(rt_engine *e) { return rt_bundle_describe(e->bundle); }
rt_clock *rt_engine_clock(rt_engine *e) { return &e->clock; }
rt_store *rt_engine_store(rt_engine *e) { return e->store; }
rt_config *rt_engine_config(rt_engine *e) { return e->cfg; }
uv_loop_t *rt_engine_loop(rt_engine *e) { return e->loop; }
const rt_engine_stats *rt_engine_get_stats(const rt_engine *e) { return &e->st; }


bool rt_engine_idle(const rt_engine *e) {
  if (!(!rt_inbox_waiting(e->inbox) && !rt_convq_any_ready(&e->queues) &&
        !rt_turns_running(e->turns) && !rt_turns_any_done(e->turns) &&
        !rt_turns_any_resumable(e->turns) && rt_deliver_idle(e->dl) &&
        (!e->outbox_dirty || !rt_deliver_nchannels(e->dl)) &&
        !(e->ws && rt_walsync_busy(e->ws))))
    return false;
  /* A wake-up already due is work too (test mode fires timers itself). */
  if (e->test_mode || e->store_error) return true;
  int64_t next = rt_store_timer_next(e->store);
  return next < 0 || next > rt_clock_now(&e->clock);
}

char *rt_engine_metrics(rt_engine *e) {
  rt_metrics_in m = {.events = e->st.events, .steps_failed = e->st.steps_failed,
                     .reloads_ok = e->st.reloads_ok, .reloads_failed = e->st.reloads_failed,
                     .sent = e->st.sent, .lua_mem = rt_bundle_mem(e->bundle),
                     .long_steps = rt_lvm_long_steps()};
  rt_store_counts_get(e->store, &m.counts);
  return rt_metrics_text(&m);
}

json_t *rt_engine_health(rt_engine *e) {
  rt_health_in h = {
    .ok = !e->store_error ||
          (e->store_busy_since && now_ms(e) - e->store_busy_since < STORE_BUSY_OK_MS),
    .flows_version = rt_bundle_version(e->bundle), .flows = rt_bundle_flow_count(e->bundle),
    .reload_error = e->reload_error, .store_error = e->store_error,
    .events = e->st.events, .running = rt_turns_running(e->turns)};
  return rt_metrics_health(&h);
}
