/* walsync.c -- the WAL's fsync on libuv's thread pool (see walsync.h). */
#include "walsync.h"
#include "log.h"
#include <stdlib.h>
#include <string.h>

struct rt_walsync {
  rt_walsync_opts o;
  uv_work_t req;
  char *path;                /* the WAL's path, the worker's only input */
  int64_t upto;              /* the last commit the sync under way covers */
  int err;                   /* its errno, written by the worker */
  bool running, closing;
  void (*close_done)(void *ud);
  void *close_ud;
  uv_idle_t idle;            /* calls close_done from the loop when nothing runs */
  uv_work_t ckpt;
  rt_store_ckpt *ck;         /* the checkpoints' connection: the workers' only */
  const char *ckpt_err;      /* SQLite's static text, or NULL */
  int ckpt_log, ckpt_copied;
  bool ckpt_running;
};

static void maybe_closed(rt_walsync *w);

static void die(rt_walsync *w, int err) {
  rt_log(RT_LOG_ERROR, "store-sync-failed", "path=%s err=\"%s\": stopping: the disk may have "
         "lost what was written since the last sync; nothing of it was acked or sent",
         w->path, strerror(err));
  abort();
}

rt_walsync *rt_walsync_new(const rt_walsync_opts *o) {
  rt_walsync *w = rt_xcalloc(1, sizeof *w);
  w->o = *o;
  if (!w->o.fsync) w->o.fsync = rt_store_wal_fsync;
  w->path = rt_xstrdup(rt_store_wal_path(o->store));
  w->ck = rt_store_ckpt_new(o->store);
  w->req.data = w->ckpt.data = w;
  return w;
}

/* On a worker thread; one checkpoint at a time. */
static void ckpt_work(uv_work_t *req) {
  rt_walsync *w = req->data;
  w->ckpt_err = rt_store_ckpt_run(w->ck, &w->ckpt_log, &w->ckpt_copied);
}

static void ckpt_after(uv_work_t *req, int status) {
  rt_walsync *w = req->data;
  w->ckpt_running = false;
  if (status == 0 && !w->ckpt_err) {
    rt_store_checkpointed(w->o.store, w->ckpt_log, w->ckpt_copied);
    if (!w->closing && w->o.checkpointed) w->o.checkpointed(w->o.ud);
  }
  else if (status == 0)   /* another process's checkpoint, a full disk: the next one retries */
    rt_log(RT_LOG_DEBUG, "checkpoint-later", "err=\"%s\"", w->ckpt_err);
  if (w->closing) maybe_closed(w);
}

void rt_walsync_checkpoint(rt_walsync *w) {
  if (w->ckpt_running || w->closing || !w->ck) return;
  w->ckpt_running = true;
  if (uv_queue_work(w->o.loop, &w->ckpt, ckpt_work, ckpt_after) != 0) w->ckpt_running = false;
}

bool rt_walsync_checkpointing(const rt_walsync *w) { return w->ckpt_running; }

/* What commits wait, synced on the calling thread (the loop's fallback,
 * a clean stop). */
static void sync_here(rt_walsync *w) {
  int64_t upto = rt_store_sync_begin(w->o.store);
  int err = w->o.fsync(w->path);
  if (err) die(w, err);
  rt_store_synced(w->o.store, upto);
}

static void work(uv_work_t *req) {
  rt_walsync *w = req->data;
  w->err = w->o.fsync(w->path);
}

static void idle_closed(uv_handle_t *h) {
  rt_walsync *w = h->data;
  w->close_done(w->close_ud);
}

static void idle_cb(uv_idle_t *h) { uv_close((uv_handle_t *)h, idle_closed); }

static void after(uv_work_t *req, int status) {
  rt_walsync *w = req->data;
  w->running = false;
  if (status == 0 && w->err) die(w, w->err);
  if (status == 0) rt_store_synced(w->o.store, w->upto);
  if (w->closing) {
    maybe_closed(w);
    return;
  }
  if (status == 0 && w->o.synced) w->o.synced(w->o.ud);
  rt_walsync_kick(w);
}

void rt_walsync_kick(rt_walsync *w) {
  if (w->running || w->closing || !rt_store_sync_pending(w->o.store)) return;
  w->upto = rt_store_sync_begin(w->o.store);
  w->err = 0;
  w->running = true;
  int rc = uv_queue_work(w->o.loop, &w->req, work, after);
  if (rc != 0) {   /* cannot be on a live loop; sync here rather than never */
    w->running = false;
    sync_here(w);
    if (w->o.synced) w->o.synced(w->o.ud);
  }
}

bool rt_walsync_busy(const rt_walsync *w) {
  return w->running || w->ckpt_running || rt_store_sync_pending(w->o.store);
}

/* Closing: done once neither worker runs (from the loop's next turn, so
 * that the caller's close has returned). */
static void maybe_closed(rt_walsync *w) {
  if (w->running || w->ckpt_running) return;
  uv_idle_init(w->o.loop, &w->idle);
  w->idle.data = w;
  uv_idle_start(&w->idle, idle_cb);
}

void rt_walsync_close(rt_walsync *w, void (*done)(void *ud), void *ud) {
  w->closing = true;
  w->close_done = done;
  w->close_ud = ud;
  maybe_closed(w);
}

void rt_walsync_free(rt_walsync *w) {
  if (!w) return;
  if (rt_store_sync_pending(w->o.store)) sync_here(w);
  rt_store_ckpt_free(w->ck);
  free(w->path);
  free(w);
}
