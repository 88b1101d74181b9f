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
 * returns the effects as a typed structure (rt_fx). Host calls that do
 * I/O (http, providers) yield; when the answer comes the host's ready
 * callback runs and the engine resumes the turn. A turn that dies first
 * (deadline, free) cancels that I/O through the cancel hook its call
 * registered (rt_lturn_set_cancel). The only thing of a conversation that
 * outlives its turn inside Lua is its saved state, kept as a table for the
 * next event once the engine has committed it (rt_lturn_keep_state).
 *
 * Limits: an instruction budget per turn (count hook, re-armed at 1 once
 * exceeded so pcall cannot keep a loop alive), a memory cap for the whole
 * state (allocator refuses growth past it while a step runs) and a
 * load-time budget for top-level code. Only this file and lapi_*.c see Lua. */
#ifndef RT_LVM_H
#define RT_LVM_H
#include "record.h"
#include "rt.h"
#include <jansson.h>

typedef struct rt_bundle rt_bundle;
typedef struct rt_lturn rt_lturn;
struct rt_http;
struct rt_provider;

/* What the host gives a bundle. All callbacks run on the loop. */
typedef struct {
  void *ud;
  /* Called when a yielded turn has its I/O result and can be resumed. */
  void (*ready)(void *ud, rt_lturn *t);
  /* Customer record by phone or chat, handed to k field by field
   * (record.h); 1 found, 0 none, or an error code (the flow sees none). */
  int (*customer)(void *ud, const char *phone, const char *channel, const char *chat,
                  const rt_record_sink *k);
  /* The found customer's addresses (the map "addresses" of the record),
   * read when a flow first looks at them; RT_OK or an error code. NULL:
   * none. */
  int (*customer_addresses)(void *ud, const char *phone, const rt_record_sink *k);
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
  /* Saved states kept as Lua tables between the events of a conversation
   * (rt_lturn_keep_state), at most this many; 0 = none. Also bounded to a
   * quarter of mem_limit. Off in the engine: tests/bench/bench_core
   * measured it slower than decoding the text (thousands of live state
   * tables cost the collector and malloc more than the decode they save). */
  int state_cache;
  const rt_host *host;       /* borrowed, must outlive the bundle */
  /* Lent to the flows' http module; NULL: http calls answer (nil,
   * "network"). Must outlive the bundle's turns. */
  struct rt_http *http;
  /* Lent providers (integration.h), each exposed to flows as a module of
   * its name (llm.chat{...}); started, and outliving the bundle's turns. */
  struct rt_provider *const *providers;
  size_t nproviders;
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
/* Steps of this process, of any bundle, that ran 5 ms of CPU or more: the
 * ones the instruction budget counted (limits.step_instructions is counted
 * from there on: docs/architecture.md, "Limits a flow runs under"). */
uint64_t rt_lvm_long_steps(void);
/* The facts of a note to the managers (any may be NULL). */
typedef struct {
  const char *chat;          /* "channel:chat" */
  const char *flow, *step;
  const char *where;         /* "file.lua:line" */
  const char *msg;
  const char *who;           /* the manager who acted ("taken", "owned"); the
                                customer ("relayed") */
  const char *owner;         /* the manager who has the chat ("owned") */
  const char *what;          /* what was refused ("owned": "say" or "release");
                                what was relayed ("relayed": "text", "photo",
                                "empty") */
  const json_t *figures;     /* "stats": today's figures (effects.h rt_figures_fn) */
} rt_note_facts;
/* The text of a note to the managers, in the persona's words: host.lua's
 * note(kind, facts) asks the flows' `notes` module (kind "stopped": the
 * bot stopped in a chat, with a plain line when that fails; "taken": a
 * manager took a chat; "owned": another manager's answer was refused;
 * "relayed": a customer's message relayed to the managers;
 * "stats": /stats). Owned; NULL when no text could be built (no module
 * function for the kind, an error, no memory): the caller has its facts. */
char *rt_bundle_note(rt_bundle *b, const char *kind, const rt_note_facts *f);
/* States held in the cache (rt_lturn_keep_state). */
size_t rt_bundle_cached_states(const rt_bundle *b);
/* Whether the bundle keeps states at all (rt_bundle_opts.state_cache). */
bool rt_bundle_keeps_states(const rt_bundle *b);
/* Gives back what the bundle keeps between turns (kept states, pooled
 * coroutines, buffers) and runs a full collection: for an idle bot, and
 * for tests that count allocations. */
void rt_bundle_collect(rt_bundle *b);

/* Turn status. */
enum { RT_LTURN_DONE = 0, RT_LTURN_YIELD = 1, RT_LTURN_ERROR = 2 };

/* What a turn starts from; everything borrowed for the call. */
typedef struct {
  int64_t id;                /* conversation id: the key of the state cache */
  int64_t rev;               /* its revision: a cached state is used only for the
                              * revision it was kept for */
  const char *channel, *chat, *user, *phone, *name, *flow, *step, *mode;
  const char *state;         /* the saved state as JSON text; NULL = {} */
  size_t state_len;
  const char *event;         /* the event, a JSON object as text (the inbox
                              * payload), decoded straight into Lua */
  size_t event_len;
} rt_lturn_in;

/* ---- the effects of a finished step, typed ----
 * Built from the values the runner returns when the step ends. Strings are
 * owned by the turn and live until rt_lturn_free; NULL = absent. The
 * *_json members are JSON text written by lconv.h (keys sorted), ready to
 * be stored as they are. */
typedef enum { RT_FX_SELF, RT_FX_MANAGERS, RT_FX_CHAT } rt_fx_target;

typedef struct {
  rt_fx_target to;
  const char *channel, *chat;    /* RT_FX_CHAT only */
  const char *text;
  const char *const *buttons;    /* labels */
  size_t nbuttons;
  const char *media_ref, *media_kind;
  const char *template_name;
  /* The outbox payload: {about (the conversation's chat, when not RT_FX_SELF),
   * buttons, media, template, text, topic (RT_FX_MANAGERS: the customer's
   * forum topic, managers.topics)}. */
  const char *payload_json;
  int64_t size;                  /* bytes it stands for: text plus buttons
                                  * written out (limits.message_max_kb) */
} rt_fx_msg;

typedef struct {
  bool cancel;                   /* else set */
  const char *name;
  int64_t due_s;                 /* unix seconds; valid when due_ok */
  bool due_ok;                   /* due was an integer (range is the host's check) */
  double due_num;                /* the number as given, for the message otherwise */
  const char *step;
  const char *data_json;         /* NULL when none */
} rt_fx_timer;

typedef struct {
  const char *flow;              /* the flow that recorded it */
  const char *campaign;          /* lead.campaign, else the conversation's */
  const char *car, *car_kind, *name, *phone;   /* text fields of the lead, when text */
  const char *parts_json;        /* lead.parts written out, NULL when none */
  const char *data_json;         /* the whole lead */
} rt_fx_lead;

typedef struct {
  const char *kind, *flow;
  const char *campaign;          /* data.campaign, else the conversation's */
  const char *outcome;           /* data.outcome when text */
  const char *data_json;         /* NULL when none */
} rt_fx_event;

typedef enum { RT_FX_HANDOFF, RT_FX_RELEASE, RT_FX_OPTOUT } rt_fx_op_kind;

typedef struct {
  rt_fx_op_kind op;
  const char *reason;            /* handoff */
  const char *data_json;         /* handoff: {"reason":..} or {} */
} rt_fx_op;

/* What provider calls of the turn cost (integration.h), added up. */
typedef struct {
  int64_t calls, tokens_in, tokens_out, cost_micro;
} rt_fx_usage;

typedef struct {
  const char *flow, *step;       /* where the conversation waits now */
  const char *mode;              /* "handoff"/"bot" when the step changed it */
  const char *phone, *name, *campaign;
  bool migrated;                 /* the saved step no longer existed */
  const char *migrated_from, *migrated_to, *migrated_json;
  const char *state_json;        /* the new state, keys sorted */
  size_t state_len;
  rt_fx_msg *out;
  size_t nout;
  rt_fx_timer *timers;
  size_t ntimers;
  rt_fx_lead *leads;
  size_t nleads;
  rt_fx_event *events;
  size_t nevents;
  rt_fx_op *ops;
  size_t nops;
  rt_fx_usage usage;
} rt_fx;

/* Starts a turn. host_turn is the engine's handle (rt_lturn_host). The
 * state comes from the cache when it holds this conversation at in->rev,
 * else from in->state. */
int rt_lturn_begin(rt_bundle *b, void *host_turn, const rt_lturn_in *in, rt_lturn **out);
/* The same from jansson values, for tests and tools: conv {id, channel,
 * chat, user, phone, name, flow, step, mode}; slots: the state as text (NULL
 * = {}); ev: the event object. All borrowed. */
int rt_lturn_start(rt_bundle *b, void *host_turn, json_t *conv, const char *slots, json_t *ev,
                   rt_lturn **out);
/* Resumes after the turn's I/O is done (rt_host.ready was called). */
int rt_lturn_resume(rt_lturn *t);
void *rt_lturn_host(rt_lturn *t);
/* Effects of a finished turn (RT_LTURN_DONE), owned by the turn. */
const rt_fx *rt_lturn_effects(rt_lturn *t);
/* The new state of a finished turn as JSON text, keys sorted (borrowed). */
const char *rt_lturn_slots(rt_lturn *t);
/* Error of a failed turn (borrowed): {code, msg, flow, step, source, line}. */
json_t *rt_lturn_error(rt_lturn *t);
/* The finished turn's effects were committed and the conversation is now
 * at revision rev: its new state stays as a Lua table for the next event.
 * Not called (a failed step, a rolled-back commit, limits), the next turn
 * reads the stored text: a cached state is never one that was not saved. */
void rt_lturn_keep_state(rt_lturn *t, int64_t rev);
/* Drops a conversation's cached state (its row changed outside a turn). */
void rt_bundle_forget_state(rt_bundle *b, int64_t conv_id);
/* Stops a yielded turn for good (step timeout); it becomes an error and
 * its pending I/O is cancelled. */
void rt_lturn_kill(rt_lturn *t, const char *code, const char *msg);
void rt_lturn_free(rt_lturn *t);   /* cancels pending I/O too */

/* For C functions flows call that do work not counted by the instruction
 * hook (pattern matching, conversions): adds units (about one per
 * elementary step) to the running turn's or load's budget, and raises the
 * budget or step-timeout error when it is spent. Never returns then. */
struct lua_State;
void rt_lvm_charge(struct lua_State *L, int64_t units);
#endif
