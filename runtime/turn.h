/* turn.h -- one step of one chat: the event at the head of a chat's queue
 * run as a Lua turn, and the turns in flight.
 *
 * A turn starts from the conversation row and the event, runs in the
 * bundle (lvm.h) until it finishes or yields on I/O, and is resumed when
 * the I/O answers. Each has a wall-clock deadline (limits.step_timeout_ms);
 * a yielded turn past it is killed, and whatever I/O it waits on is
 * cancelled through the turn's release hook (lapi.h), inside lvm. Finished turns wait in a done list
 * until the pump applies them (effects.h) and frees them. This module also
 * answers the bundle's host calls (rt_host): the clock and customer
 * look-ups, and owns the HTTP client lent to bundles (the flows' http
 * module calls it directly). Borrowed: the loop,
 * the store, the clock. */
#ifndef RT_TURN_H
#define RT_TURN_H
#include "clock.h"
#include "convq.h"
#include "lvm.h"
#include "store.h"
#include <uv.h>

/* What became of a turn (beside RT_LTURN_DONE, _YIELD, _ERROR). */
enum {
  RT_TURN_SKIPPED = -1,      /* the bot does not run this event (handoff.h) */
  RT_TURN_STORE_ERROR = -2,  /* the conversation could not be read */
  RT_TURN_QUARANTINED = -3,  /* set aside after crashes, not run */
};

typedef struct rt_turns rt_turns;

typedef struct rt_turn {
  rt_convq_chat *chat;
  rt_convq_ev ev;            /* the event (payload owned) */
  json_t *event;             /* the event's payload, parsed */
  rt_conv_row conv;          /* the conversation as read; effects update it */
  rt_lturn *lt;              /* NULL when the step did not run */
  rt_bundle *bundle;         /* the flows it started in (borrowed: held by lt
                              * while it waits; applied before any reload else) */
  int status;                /* RT_LTURN_* or RT_TURN_* */
  json_t *limit_err;         /* set by effects: over a limit of its effects */
  int64_t started_ms;
  char kind[32];             /* the event's kind, kept by rt_turn_settle for the
                              * log line after the commit ("-" when none) */
  struct rt_turn *next;      /* the done list */
  /* private */
  rt_turns *owner;
  struct rt_turn *prev_y, *next_y;
} rt_turn;

typedef struct {
  uv_loop_t *loop;
  rt_store *store;
  rt_clock *clock;
  int64_t step_timeout_ms;
  struct rt_http *http;      /* lent to bundles; NULL: the turns make their own */
  void (*kick)(void *ud);    /* a turn is done or can be resumed: run the pump */
  void *kick_ud;
  /* The conversation of a chat (an owned copy, created when new); NULL:
   * read from the store. */
  int (*conv_get)(void *ud, const char *channel, const char *chat_id, int64_t now,
                  rt_conv_row *out);
  void *conv_ud;
} rt_turns_opts;

rt_turns *rt_turns_new(const rt_turns_opts *o);
/* Abandons the turns in flight (their events run again at the next start),
 * closes the HTTP client, frees; done(ud) once closed (maybe at once). */
void rt_turns_close(rt_turns *ts, void (*done)(void *ud), void *ud);
/* The host calls bundles get (rt_bundle_opts.host); valid until close. */
const rt_host *rt_turns_host(rt_turns *ts);
/* The HTTP client lent to bundles (rt_bundle_opts.http). */
struct rt_http *rt_turns_http(rt_turns *ts);

/* Runs the head event of chat in bundle b (quarantine: do not run it, set
 * it aside). doc: the event's payload as an object, a reference the turn
 * takes (never changed: it may be shared), or NULL to parse the payload.
 * The turn ends in the done list or waits on I/O; returned for the caller
 * to follow until then. */
rt_turn *rt_turns_start(rt_turns *ts, rt_bundle *b, rt_convq_chat *chat, json_t *doc,
                        bool quarantine);
/* Frees a yielded turn whose event turned out never stored (its receive
 * rolled back); its I/O is cancelled. */
void rt_turns_abandon(rt_turns *ts, rt_turn *t);
/* Resumes the yielded turns whose I/O answered. */
void rt_turns_resume(rt_turns *ts);
/* Kills the yielded turns past their deadline. */
void rt_turns_deadlines(rt_turns *ts, int64_t now);
/* Takes the done list (oldest first; linked by next). */
rt_turn *rt_turns_take_done(rt_turns *ts);
bool rt_turns_any_done(const rt_turns *ts);
/* Yielded turns whose I/O has answered, waiting for the pump. */
bool rt_turns_any_resumable(const rt_turns *ts);
/* Turns started and not yet freed. */
size_t rt_turns_running(const rt_turns *ts);
/* Frees a turn taken off the done list. The event's payload goes with it
 * unless taken first. */
void rt_turn_free(rt_turn *t);
/* After its effects are written (in the open transaction): frees what only
 * the step and its apply needed, the Lua turn (unless keep_lt: its state is
 * kept after the commit, rt_lturn_keep_state), the event's tree and text,
 * the limit error. What the commit needs stays: chat, ev.id and ev.fresh,
 * conv, status, started_ms, kind. A stored event's payload, gone, is read
 * again from the store if the transaction rolls back and it runs again. */
void rt_turn_settle(rt_turn *t, bool keep_lt);
#endif
