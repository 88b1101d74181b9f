/* timers.h -- durable wake-ups become inbox events.
 *
 * c:wake() writes a timers row in the step's transaction. Here one
 * uv_timer is armed for the earliest due time (and at least every 5 s, so
 * timers another process adds are seen). A due timer becomes an inbox
 * event in the same transaction that deletes it, and is queued into its
 * chat (convq) once that commits, so a wake-up is processed exactly like a
 * message. Borrowed: the loop, the store, the clock, the queues. */
#ifndef RT_TIMERS_H
#define RT_TIMERS_H
#include "clock.h"
#include "convq.h"
#include "convs.h"
#include "inbox.h"
#include "store.h"
#include <uv.h>

typedef struct rt_timers rt_timers;

typedef struct {
  uv_loop_t *loop;
  rt_store *store;
  rt_clock *clock;
  rt_convq *queues;
  rt_convs *convs;           /* a fired conversation's row, read with its timer
                              * (whoever set the timer may have changed it), is
                              * put here once the batch commits */
  size_t backlog_max;        /* no more fired while this many chats have events
                              * queued or running (0: no bound), so a burst of
                              * due timers is not all held in memory at once */
  bool manual;               /* test mode: never armed, the caller fires */
  void (*due)(void *ud);     /* the uv_timer went off: the host fires and re-arms */
  void *due_ud;
} rt_timers_opts;

rt_timers *rt_timers_new(const rt_timers_opts *o);
/* Closes the uv_timer; done(ud) once closed; frees. */
void rt_timers_close(rt_timers *tm, void (*done)(void *ud), void *ud);
/* Moves the timers due now into the inbox and their chats' queues, a batch
 * at a time until the queues reach backlog_max; *n counts them. A store
 * failure rolls the batch back and returns its code. */
int rt_timers_fire(rt_timers *tm, int *n);
/* True when the last rt_timers_fire stopped at backlog_max with timers
 * still due and the queues have room again: the host fires once more. */
bool rt_timers_can_resume(const rt_timers *tm);
/* Timers are due for rt_timers_stage: the uv_timer went off, or the last
 * staged batch was full or rolled back (and the queues are not at
 * backlog_max). */
bool rt_timers_due(const rt_timers *tm);
/* Timers may be due (at start): the next rt_timers_stage looks. */
void rt_timers_poke(rt_timers *tm);
/* Inside the host's open transaction: up to max due timers (at most a
 * batch) become inbox events and are deleted, so a rollback puts them
 * back. A wake-up whose chat direct (may be NULL) lets run is written as
 * done and handed to direct->run, to run in this same transaction (*ran
 * counts them), as a received event is; the others are queued into their
 * chats by rt_timers_staged after the commit. A store failure returns its
 * code: the host rolls back. */
int rt_timers_stage(rt_timers *tm, const rt_inbox_direct *direct, int max, int *ran);
/* After the host's transaction: committed, the staged wake-ups go into
 * their chats' queues (and their conversation rows into convs: call it
 * before the committed steps put theirs, which are newer); rolled back,
 * they are dropped and fire again. */
void rt_timers_staged(rt_timers *tm, bool committed);
/* Arms the uv_timer for the earliest due timer, at most 5 s ahead, and not
 * before not_before (ms; 0: no such bound), e.g. a store retry time. */
void rt_timers_arm(rt_timers *tm, int64_t not_before);
/* Arms the uv_timer to go off in ms (a short store retry). */
void rt_timers_arm_in(rt_timers *tm, int64_t ms);
#endif
