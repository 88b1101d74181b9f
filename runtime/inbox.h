/* inbox.h -- the first hop of the event path: receive, dedup, ack after
 * commit, and the events a crash left behind.
 *
 * Events a channel hands in during one loop turn wait in memory; the pump
 * writes them together in one transaction (inbox rows, unique on channel
 * and the channel's id, so a redelivery is a no-op) and only then acks the
 * channel and queues them into their chats (convq). At start the events
 * received but not applied are queued again. After an unclean stop
 * (meta "engine.running" still set) they run one at a time, each attempt
 * committed first, so an event that takes the process down is known; one
 * that was running alone at RT_INBOX_CRASHES_TO_QUARANTINE crashes is set
 * aside. Borrowed: the store, the clock and the queues. */
#ifndef RT_INBOX_H
#define RT_INBOX_H
#include "clock.h"
#include "convq.h"
#include "plugin.h"
#include "store.h"

/* One is not enough: a kill -9 or a power cut in the middle of an innocent
 * event must not set it aside. */
#define RT_INBOX_CRASHES_TO_QUARANTINE 2

typedef struct rt_inbox rt_inbox;

typedef struct {
  rt_store *store;
  rt_clock *clock;
  rt_convq *queues;          /* committed events go here */
  bool test_mode;            /* no running mark (transcripts, tests) */
  void (*kick)(void *ud);    /* something was received: run the pump */
  void *kick_ud;
} rt_inbox_opts;

rt_inbox *rt_inbox_new(const rt_inbox_opts *o);
/* Clears the running mark when the stop is clean (clean: the store works
 * and no recovered event still waits to run alone), and frees. Unacked
 * events are dropped: the channel never heard they were stored. */
void rt_inbox_free(rt_inbox *in, bool clean);

/* Queues an inbound event (copied). ack (may be NULL) is called once the
 * receive commit is on disk with RT_OK, 1 for a duplicate, or an error. */
int rt_inbox_receive(rt_inbox *in, const rt_event_in *ev, void (*ack)(void *ud, int status),
                     void *ud);
/* Events waiting for the receive commit. */
size_t rt_inbox_waiting(const rt_inbox *in);
/* The receive commit of what waits (up to a batch), then the acks. On a
 * store failure nothing is acked, the batch stays for the next try, and
 * the store's code is returned. The same as rt_inbox_stage and
 * rt_inbox_staged in a transaction of its own, with nothing run at once. */
int rt_inbox_flush(rt_inbox *in);

/* Events that may run in the transaction that stores them: the host says
 * which (their chat is idle), and starts those. */
typedef struct {
  bool (*can_run)(void *ud, const char *channel, const char *chat_id);
  /* No room for another step in this transaction (may be NULL): the events
   * from here on wait, unstaged and unacked, for the next one, where they
   * can run with their receive instead of being stored first and updated
   * when their step finishes. */
  bool (*full)(void *ud);
  /* Stored (its row written as done, provisionally: the host fixes it if
   * the step ends otherwise) and to run now; payload and doc (the payload
   * as an object, read-only: shared with the batch) move to the host.
   * A due wake-up comes with id 0 and its timer's id instead: it has no
   * inbox row (rt_inbox_add_wake). */
  void (*run)(void *ud, const char *channel, const char *chat_id, int64_t id, int64_t timer_id,
              char *payload, json_t *doc, bool wake);
  void *ud;
} rt_inbox_direct;

/* The inbox row of the wake-up of timer timer_id, with status "new" or
 * "done", in the open transaction; its ext_id is "wake:<timer id>", which
 * no other wake-up has (timer ids are never reused). A due wake-up that
 * runs in the transaction that deletes its timer needs no row when its
 * step ends done there: the delete and the step's writes commit or roll
 * back together, and a rollback leaves the timer to fire again. It gets
 * one when the step waits on I/O past that transaction (new: found again
 * after a crash) or fails or is skipped (the record of it). 0, 1 when the
 * inbox holds that key already (a store edited by hand), or an error. */
int rt_inbox_add_wake(rt_store *s, const char *channel, const char *chat_id, int64_t timer_id,
                      const char *payload, const char *status, int64_t now, int64_t *id);

/* Inside the host's open transaction: writes what waits (up to a batch).
 * New events that direct (may be NULL) lets run are handed to it; the
 * others are queued into their chats after the commit. A store failure
 * returns its code (the host rolls back). */
int rt_inbox_stage(rt_inbox *in, const rt_inbox_direct *direct);
/* After the host's commit (committed): queues the staged events and acks
 * them -- or, when the store syncs its commits apart (sync_later) and this
 * one is not on disk yet, holds the acks for rt_inbox_synced. After a
 * rollback: the batch waits for the next try, unacked. */
void rt_inbox_staged(rt_inbox *in, bool committed);
/* The store synced more commits: the acks they held go, in order. */
void rt_inbox_synced(rt_inbox *in);
/* False after an unclean stop: then every event is stored before its step
 * runs, for the whole run, so an event that takes the process down is on
 * disk the next time and can be isolated and quarantined. */
bool rt_inbox_may_run_direct(const rt_inbox *in);

/* At start: reads the running mark, sets it, and queues the events left
 * unfinished. */
void rt_inbox_recover(rt_inbox *in);
/* Recovered events of an unclean stop still run one at a time. */
bool rt_inbox_isolating(const rt_inbox *in);
/* The next recovered event to run alone: *chat (NULL when none is left:
 * isolation ends) and whether it is to be quarantined instead of run. Its
 * attempt is committed first; a store failure returns its code. Call only
 * while no step runs. */
int rt_inbox_isolated_next(rt_inbox *in, rt_convq_chat **chat, bool *quarantine);
#endif
