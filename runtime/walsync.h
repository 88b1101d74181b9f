/* walsync.h -- the store's commits made durable off the loop.
 *
 * With a store opened sync_later, a COMMIT writes the WAL and returns; its
 * fsync runs here, on libuv's thread pool, while the loop goes on with the
 * next batch. When it is done the store hands over the commits' outbox rows
 * and the host sends their acks (the synced callback): nothing is acked or
 * sent before it is on disk, as with synchronous=FULL, but the disk's wait
 * no longer stops the loop. One sync at a time; one started while commits
 * came in covers them all (fdatasync of the whole file), so a burst costs
 * one fsync per batch or fewer. A failed fsync stops the process: the
 * kernel may have dropped the pages, and a retry would report success over
 * lost data; what was acked or sent before is on disk, the rest comes again
 * from the channels and the store at the next start.
 *
 * The checkpoint (the WAL's pages copied into the database file, and that
 * file's fsync: tens of milliseconds for a burst's pages) runs on the pool
 * too, on a connection of its own that only the worker uses, one at a
 * time; SQLite lets a passive checkpoint run beside the loop's writes.
 * The workers touch only the file's path and that connection; the rest
 * runs on the loop. Borrowed: loop, store. */
#ifndef RT_WALSYNC_H
#define RT_WALSYNC_H
#include "store.h"
#include <uv.h>

typedef struct rt_walsync rt_walsync;

typedef struct {
  uv_loop_t *loop;
  rt_store *store;                 /* opened with sync_later */
  void (*synced)(void *ud);        /* more commits are on disk (rt_store_synced done) */
  /* A checkpoint finished (its figures are in the store); not called
   * once closing. The pages committed while it ran are still to copy: a
   * loop that went idle meanwhile would otherwise leave them until its
   * next occasion. */
  void (*checkpointed)(void *ud);
  void *ud;
  /* The sync itself, on a worker thread: 0 or an errno. NULL: the store's
   * fdatasync (rt_store_wal_fsync); tests pass a slow or failing one. */
  int (*fsync)(const char *wal_path);
} rt_walsync_opts;

rt_walsync *rt_walsync_new(const rt_walsync_opts *o);
/* Starts a sync when commits wait for one and none is under way. Call
 * after commits, outside SQLite calls (not from rt_store_on_commit). */
void rt_walsync_kick(rt_walsync *w);
/* Starts a passive checkpoint unless one is under way; its result reaches
 * the store's figures (rt_store_checkpointed) when it is done. */
void rt_walsync_checkpoint(rt_walsync *w);
bool rt_walsync_checkpointing(const rt_walsync *w);
/* A sync or a checkpoint is under way, or commits wait for a sync. */
bool rt_walsync_busy(const rt_walsync *w);
/* Stops kicking; done(ud) once no sync or checkpoint is under way (from
 * the loop's next turn when none is). The synced callback is not called any
 * more. Then rt_walsync_free. */
void rt_walsync_close(rt_walsync *w, void (*done)(void *ud), void *ud);
/* Syncs what is left on the calling thread (a clean stop), and frees. */
void rt_walsync_free(rt_walsync *w);
#endif
