/* engine.h -- the runtime core: events in, flow steps, effects out.
 *
 * The engine owns the store and the current flow bundle and runs the pump
 * on one libuv loop; the pieces of the event path are its own modules
 * (inbox, convq, turn, effects, handoff, timers, deliver, metrics).
 *
 * An inbound event passes two commits (ARCHITECTURE.md):
 *   receive: inbox row (unique per channel id) -> commit -> ack the channel;
 *   apply:   step runs (may yield on I/O) -> state, outbox, timers, leads,
 *            stats and the inbox mark written together -> commit -> send.
 * Both commits are grouped per loop turn: every event received (or step
 * finished) during one loop iteration shares one transaction, so a burst
 * of N events costs two fsyncs, not 2N. Nothing is acknowledged or sent
 * before its commit, so the guarantee is the same as one commit per event.
 * Events of one chat run strictly one after another; chats interleave. */
#ifndef RT_ENGINE_H
#define RT_ENGINE_H
#include "channel.h"
#include "clock.h"
#include "config.h"
#include "lvm.h"
#include "store.h"
#include <jansson.h>
#include <uv.h>

typedef struct {
  uv_loop_t *loop;
  rt_config *cfg;             /* borrowed; must outlive the engine */
  const char *store_path;     /* NULL: store.path from the config */
  bool test_mode;             /* virtual clock, no fsync, no real timers */
  int64_t clock_ms;           /* start of the virtual clock in test mode */
  long store_max_pages;       /* tests: simulate a full disk */
  int64_t wal_max_pages;      /* tests: a busy loop copies the WAL into the file
                               * at this many pages (0: 8,192, 32 MB) */
  const char *flows_dir;      /* NULL: flows.dir from the config */
  /* The process's HTTP client, lent to the flows' http module; NULL: the
   * engine makes its own. The transcript runner lends one whose transport
   * answers from the script (http_client.h). Borrowed until close. */
  struct rt_http *http;
  /* Providers lent to the flows (integration.h), borrowed until close:
   * each is the Lua module of its name. */
  struct rt_provider *const *providers;
  size_t nproviders;
  /* Today's figures for the managers' /stats (effects.h rt_figures_fn);
   * NULL: /stats answers without them. */
  json_t *(*figures)(void *ud, rt_store *s, int64_t now);
  void *figures_ud;
  /* Tests: the WAL's fsync (walsync.h), slow or failing; NULL: fdatasync. */
  int (*wal_fsync)(const char *wal_path);
} rt_engine_opts;

typedef struct rt_engine rt_engine;

/* Opens the store, loads the flows, re-queues events left unfinished by a
 * crash. Returns RT_E* and an owned message on failure. */
int rt_engine_new(const rt_engine_opts *o, rt_engine **out, char **err);
/* Stops timers and handles; calls done(ud) once everything is closed and
 * the engine freed. In-flight turns are abandoned: their events stay in
 * the inbox and run again at the next start. */
void rt_engine_close(rt_engine *e, void (*done)(void *ud), void *ud);

/* Registers a channel (borrowed; stays valid until close). */
void rt_engine_add_channel(rt_engine *e, rt_channel *ch);
/* Arms timers and sends what the outbox holds. */
void rt_engine_start(rt_engine *e);

/* Queues an inbound event. ack (may be NULL) is called once the receive
 * commit is on disk with RT_OK, 1 for a duplicate, or an error. */
int rt_engine_receive(rt_engine *e, const rt_event_in *ev,
                      void (*ack)(void *ud, int status), void *ud);

/* The bundle options a shop's config gives (lvm.h): the limits a step runs
 * under (limits.*, clamped as the engine clamps them, with its defaults),
 * the start flow (flows.start, borrowed from cfg) and the view of the shop
 * the flows see (*shop_view: the config without tokens and plumbing, owned
 * by the caller, who frees it after the bundle). Folders, host calls, HTTP
 * and providers stay the caller's. The engine (so the transcript runner
 * too) and the benches that load flows without it take their options from
 * here, so flows run under the same limits everywhere. */
void rt_engine_bundle_opts(rt_config *cfg, rt_bundle_opts *o, json_t **shop_view);

/* Rebuilds the flows from disk and swaps them in when they load and
 * validate (no transcript check: that is the process's, reload.h).
 * Returns RT_OK or an error with an owned message (old flows keep
 * serving). */
int rt_engine_reload(rt_engine *e, char **err);
/* The parts of a reload: loads the flows with the engine's settings (not
 * swapped in; the caller owns *out) ... */
int rt_engine_load(rt_engine *e, rt_bundle **out, char **err);
/* ... swaps b in (the engine owns it; t0: uv_hrtime at the reload's start,
 * for the log) ... */
void rt_engine_swap(rt_engine *e, rt_bundle *b, uint64_t t0);
/* ... or records that the reload failed (err copied). */
void rt_engine_reload_failed(rt_engine *e, const char *err);
/* The last reload error, or NULL after a good reload. Borrowed. */
const char *rt_engine_reload_error(const rt_engine *e);
const char *rt_engine_flows_version(const rt_engine *e);
const char *rt_engine_flows_dir(const rt_engine *e);
json_t *rt_engine_describe(rt_engine *e);

/* True when nothing is queued, running, uncommitted, being sent, synced
 * or copied into the database file. */
bool rt_engine_idle(const rt_engine *e);
rt_clock *rt_engine_clock(rt_engine *e);
rt_store *rt_engine_store(rt_engine *e);
rt_config *rt_engine_config(rt_engine *e);
uv_loop_t *rt_engine_loop(rt_engine *e);
/* Moves timers that are due now into the inbox (test mode drives this). */
int rt_engine_fire_timers(rt_engine *e);
/* Test mode: one step of moving the virtual clock forward to target, so
 * every wake-up on the way fires at its own time, in order. When a timer
 * is due at or before target, sets the clock to its due time (never back),
 * fires what is due and returns true: let the loop run until the engine is
 * idle, then call again. Else sets the clock to target (never back) and
 * returns false. The transcript runner and the studio both move time so. */
bool rt_engine_clock_step(rt_engine *e, int64_t target);
/* The store error that stops commits, or NULL. Borrowed. */
const char *rt_engine_store_error(const rt_engine *e);


/* Prometheus text (owned) and /healthz JSON (new reference). */
char *rt_engine_metrics(rt_engine *e);
json_t *rt_engine_health(rt_engine *e);

typedef struct {
  uint64_t events, steps_failed, reloads_ok, reloads_failed, sent, send_failed;
  uint64_t wal_copies;   /* checkpoints begun, on the worker or the loop */
} rt_engine_stats;
const rt_engine_stats *rt_engine_get_stats(const rt_engine *e);
#endif
