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
};

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
  w->req.data = w;
  return w;
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
    w->close_done(w->close_ud);
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
    w->err = w->o.fsync(w->path);
    if (w->err) die(w, w->err);
    rt_store_synced(w->o.store, w->upto);
    if (w->o.synced) w->o.synced(w->o.ud);
  }
}

bool rt_walsync_busy(const rt_walsync *w) {
  return w->running || rt_store_sync_pending(w->o.store);
}

void rt_walsync_close(rt_walsync *w, void (*done)(void *ud), void *ud) {
  w->closing = true;
  w->close_done = done;
  w->close_ud = ud;
  if (w->running) return;   /* after() calls done */
  uv_idle_init(w->o.loop, &w->idle);
  w->idle.data = w;
  uv_idle_start(&w->idle, idle_cb);
}

void rt_walsync_free(rt_walsync *w) {
  if (!w) return;
  if (rt_store_sync_pending(w->o.store)) {
    int64_t upto = rt_store_sync_begin(w->o.store);
    int err = w->o.fsync(w->path);
    if (err) die(w, err);
    rt_store_synced(w->o.store, upto);
  }
  free(w->path);
  free(w);
}
