/* deliver.h -- the durable delivery queue: committed outbox rows to channels.
 *
 * Owns everything about sending what a step's commit queued:
 *   - strict per-chat order: a chat's next row leaves only after the
 *     previous one's result (delivered, or failed for good) is committed,
 *     so per (channel, chat) at most one row is in flight or unconfirmed;
 *   - per-channel and per-chat token buckets from the channel's declared
 *     limits, and a bound on the sends in flight per channel;
 *   - a pause of the whole channel when the service asks (429 for the bot);
 *   - priorities across chats (replies before wake-ups and campaigns);
 *   - backoff with jitter for transient failures.
 * Rows stay in the outbox until their result is committed; a restart
 * resumes from the store in the same order. The one duplicate: a row the
 * channel may have taken but whose answer was lost is sent again -- one in
 * flight or not yet committed when the process died (with the same
 * idempotency key), or, without a crash, one whose send timed out, was
 * reset after it went out or was answered cut short (a transient failure,
 * retried). At most one row per chat at a time, the chat's last while its
 * next row waits for the retry's commit; only a first attempt the service
 * delivers late may land after the retry or the chat's next row
 * (docs/architecture.md, Deliveries).
 *
 * Results are written in the host's transaction (rt_deliver_save inside it,
 * rt_deliver_saved after), so a result costs no fsync of its own; without
 * a wake callback the module commits them itself. Everything runs on the
 * loop. The store, clock and channels are borrowed. */
#ifndef RT_DELIVER_H
#define RT_DELIVER_H
#include "channel.h"
#include "clock.h"
#include "store.h"
#include <uv.h>

typedef struct rt_deliver rt_deliver;

typedef struct {
  uv_loop_t *loop;
  rt_store *store;
  rt_clock *clock;
  /* Results are waiting: the host should commit soon (rt_deliver_save in
   * its transaction). NULL: rt_deliver commits them on the next loop turn,
   * in a transaction of its own. */
  void (*wake)(void *ud);
  void *wake_ud;
  int scan_limit;            /* head rows read per channel and scan; 0 = 512 */
  uint64_t seed;             /* jitter; 0 = from the time */
} rt_deliver_opts;

typedef struct {
  uint64_t sent, failed, retried, paused;
  uint64_t from_memory;      /* sends of rows handed over at their commit, not read back */
} rt_deliver_stats;

rt_deliver *rt_deliver_new(const rt_deliver_opts *o);
/* Registers a channel (borrowed until close); any number of them. */
void rt_deliver_add_channel(rt_deliver *d, rt_channel *ch);
size_t rt_deliver_nchannels(const rt_deliver *d);
/* Arms the retry timer and sends what the outbox holds. */
void rt_deliver_start(rt_deliver *d);
/* The host committed new outbox rows: send what may go now. */
void rt_deliver_committed(rt_deliver *d);
/* True when send results wait to be written. */
bool rt_deliver_has_results(const rt_deliver *d);
/* Writes the waiting results; call inside the host's open transaction. */
int rt_deliver_save(rt_deliver *d);
/* After the host's commit (committed) or rollback (!committed): the chats
 * whose results are durable may send their next row. */
void rt_deliver_saved(rt_deliver *d, bool committed);
/* Nothing in flight, no result waiting, no due row held back by a rate. */
bool rt_deliver_idle(const rt_deliver *d);
const rt_deliver_stats *rt_deliver_get_stats(const rt_deliver *d);
/* Forgets the chats that carry nothing (idle, full bucket): their memory
 * goes back once a burst is over. */
void rt_deliver_trim(rt_deliver *d);
/* Stops sending; done(ud) once the handles are closed. Results not yet
 * committed are dropped (their rows go again at the next start). A send
 * still in flight may answer later: the answer is ignored, and the module's
 * memory goes with the last answer. */
void rt_deliver_close(rt_deliver *d, void (*done)(void *ud), void *ud);
#endif
