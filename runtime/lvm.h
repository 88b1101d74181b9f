/* lvm.h -- the Lua host: flow bundles and the turns that run in them.
 *
 * A bundle is one lua_State holding one version of the shop's flows: every
 * *.lua file of the flows folder loaded into a locked-down environment,
 * validated, and kept with the trusted runner that drives steps. A reload
 * builds a new bundle beside the old one and the engine swaps them; turns
 * hold a reference, so a step in flight finishes on the code it started
 * with (OpenResty's graceful HUP).
 *
 * A turn is one event of one conversation: a fresh coroutine in the bundle
 * that gets the conversation (plain data) and the event, runs steps, and
 * returns the effects as one JSON object. Host calls that do I/O (http)
 * yield; the engine resumes the turn when the reply comes. Nothing of a
 * conversation outlives its turn inside Lua.
 *
 * Limits: an instruction budget per turn (count hook, re-armed at 1 once
 * exceeded so pcall cannot keep a loop alive), a memory cap for the whole
 * state (allocator refuses growth past it while a step runs) and a
 * load-time budget for top-level code. Only this file and lapi_*.c see Lua. */
#ifndef RT_LVM_H
#define RT_LVM_H
#include "rt.h"
#include <jansson.h>

typedef struct rt_bundle rt_bundle;
typedef struct rt_lturn rt_lturn;

/* What the host gives a bundle. All callbacks run on the loop. */
typedef struct {
  void *ud;
  /* Starts an HTTP request for turn t (req: {method,url,body,headers,
   * timeout_ms}); the host later calls rt_lturn_io_done. Returns RT_OK or an
   * error (then nothing is called back). */
  int (*http)(void *ud, rt_lturn *t, json_t *req);
  /* Called when a yielded turn has its I/O result and can be resumed. */
  void (*ready)(void *ud, rt_lturn *t);
  /* Customer record by phone or chat; new reference or NULL. */
  json_t *(*customer)(void *ud, const char *phone, const char *channel, const char *chat);
  int64_t (*now_ms)(void *ud);
} rt_host;

typedef struct {
  const char *flows_dir;     /* *.lua flows; lib/ beneath it holds modules */
  const char *lib_dir;       /* optional extra module folder */
  const char *start_flow;    /* flow a new conversation starts in */
  json_t *shop;              /* borrowed: config shown to flows as `shop` */
  size_t mem_limit;          /* bytes */
  size_t state_max_bytes;    /* c.slots written out; 0 = 1 MB */
  int64_t step_instructions;
  int64_t step_timeout_ms;   /* wall time of a turn, checked inside Lua and C work too; 0 = none */
  int64_t load_instructions;
  int max_http_per_turn;
  const rt_host *host;       /* borrowed, must outlive the bundle */
} rt_bundle_opts;

/* Loads and validates every flow. On failure returns RT_EINVAL (or RT_ENOENT
 * for a missing folder) with an owned message naming the file and line. */
int rt_bundle_load(const rt_bundle_opts *o, rt_bundle **out, char **err);
void rt_bundle_ref(rt_bundle *b);
void rt_bundle_unref(rt_bundle *b);       /* closes the state at zero */
const char *rt_bundle_version(const rt_bundle *b);   /* content hash, 16 hex */
int rt_bundle_flow_count(const rt_bundle *b);
/* Owned JSON array of flow names with their step names, for `check`. */
json_t *rt_bundle_describe(rt_bundle *b);
size_t rt_bundle_mem(const rt_bundle *b);

/* Turn status. */
enum { RT_LTURN_DONE = 0, RT_LTURN_YIELD = 1, RT_LTURN_ERROR = 2 };

/* Starts a turn. conv: {id, channel, chat, user, phone, flow, step, mode};
 * slots: the saved state as JSON text (NULL = {}); ev: the event object.
 * All borrowed. host_turn is the engine's handle (rt_lturn_host). */
int rt_lturn_start(rt_bundle *b, void *host_turn, json_t *conv, const char *slots, json_t *ev,
                   rt_lturn **out);
/* Resumes after rt_lturn_io_done. */
int rt_lturn_resume(rt_lturn *t);
void *rt_lturn_host(rt_lturn *t);
/* Hands the I/O result (new reference stolen) to a yielded turn. */
void rt_lturn_io_done(rt_lturn *t, json_t *result);
/* Result of a finished turn (borrowed): {flow, step, mode, phone, campaign,
 * out:[], timers:[], leads:[], events:[], ops:[]}; lists may be absent. */
json_t *rt_lturn_result(rt_lturn *t);
/* The new state of a finished turn as JSON text, keys sorted (borrowed). */
const char *rt_lturn_slots(rt_lturn *t);
/* Error of a failed turn (borrowed): {code, msg, flow, step, source, line}. */
json_t *rt_lturn_error(rt_lturn *t);
/* Stops a yielded turn for good (step timeout); it becomes an error. */
void rt_lturn_kill(rt_lturn *t, const char *code, const char *msg);
void rt_lturn_free(rt_lturn *t);

/* For C functions flows call that do work not counted by the instruction
 * hook (pattern matching, conversions): adds units (about one per
 * elementary step) to the running turn's or load's budget, and raises the
 * budget or step-timeout error when it is spent. Never returns then. */
struct lua_State;
void rt_lvm_charge(struct lua_State *L, int64_t units);
#endif
