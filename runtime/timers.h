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
#include "store.h"
#include <uv.h>

typedef struct rt_timers rt_timers;

typedef struct {
  uv_loop_t *loop;
  rt_store *store;
  rt_clock *clock;
  rt_convq *queues;
  rt_convs *convs;           /* a fired conversation's cached row is dropped:
                              * whoever set the timer may have changed it */
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
/* Arms the uv_timer for the earliest due timer, at most 5 s ahead, and not
 * before not_before (ms; 0: no such bound), e.g. a store retry time. */
void rt_timers_arm(rt_timers *tm, int64_t not_before);
/* Arms the uv_timer to go off in ms (a short store retry). */
void rt_timers_arm_in(rt_timers *tm, int64_t ms);
#endif
