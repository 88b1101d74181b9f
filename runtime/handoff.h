/* handoff.h -- who talks in a chat: the bot, or a manager.
 *
 * A conversation's mode is "bot", "handoff" (the bot asked for a manager)
 * or "manager" (one took it). An event of kind "reset" starts the chat over
 * (mode "bot", no flow, slots, error or timers). While it is not "bot", customer messages are
 * recorded but run no step, and each pushes back the release timer
 * (handoff.release_after of silence gives the chat back). This module is
 * that policy: the gate before a step, the manager's take and release, the
 * silence timer, and the note the managers get when the bot stops in a
 * chat. Borrowed: the store. */
#ifndef RT_HANDOFF_H
#define RT_HANDOFF_H
#include "lvm.h"
#include "store.h"
#include <jansson.h>

typedef struct rt_handoff rt_handoff;

typedef struct {
  rt_store *store;
  int64_t release_after_ms;   /* handoff.release_after, saturated */
} rt_handoff_opts;

rt_handoff *rt_handoff_new(const rt_handoff_opts *o);
void rt_handoff_free(rt_handoff *h);

/* Latest due time the store keeps for a timer (ms): the end of year 9999. */
#define RT_HANDOFF_MAX_DUE_MS (INT64_C(253402300799) * 1000)

/* True when the bot runs a step for this event: mode "bot" and a customer
 * message or a flow wake-up, or a flow wake-up while handed off (not after
 * a failed step). kind: event kind; wake_step: a wake-up's step or NULL. */
bool rt_handoff_bot_runs(const rt_conv_row *c, const char *kind, const char *wake_step);
/* The event the bot does not run (manager actions, system wake-ups,
 * messages while a manager has the chat), applied to c and the store in
 * the open transaction. */
int rt_handoff_apply(rt_handoff *h, rt_conv_row *c, json_t *event, int64_t now);
/* The chat's owner's name when event is another manager's answer or /bot
 * to a chat a manager owns: the first manager to answer owns it until it
 * goes back to the bot (their /bot, handoff.release_after's silence, a
 * reset), and only they may answer or give it back. NULL otherwise. */
const char *rt_handoff_owned_by(const rt_conv_row *c, json_t *event);
/* (Re)arms the silence timer that gives the chat back to the bot. */
int rt_handoff_hold(rt_handoff *h, int64_t conv_id, int64_t now);
/* The chat goes to a manager because the bot stopped (a failed step, a
 * quarantined event): mode, last_error, the statistics event named
 * event_kind, the timer. err: {code, msg, flow, step, source, line}. */
int rt_handoff_stop(rt_handoff *h, rt_conv_row *c, json_t *err, const char *event_kind,
                    int64_t now);
/* The note to the managers for a stop, in the persona's words (the flows
 * of bundle b build it from the facts: chat, flow, step, file and line,
 * message; lvm.h rt_bundle_note). Owned, valid UTF-8. */
char *rt_handoff_note(rt_handoff *h, rt_bundle *b, const rt_conv_row *c, json_t *err);
#endif
