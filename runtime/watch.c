/* watch.c -- see watch.h. */
#include "watch.h"
#include "log.h"
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct rt_watch {
  rt_engine *e;
  uv_fs_event_t ev[2];       /* the folder and its lib/ */
  int nev;
  uv_timer_t debounce;
  int debounce_ms;
  int open;
  unsigned reloads;
  uint64_t first_change;     /* hrtime of the first change of this burst */
  void (*done)(void *);
  void *ud;
  void (*on_reload)(void *, int, const char *);
  void *on_reload_ud;
};

void rt_watch_on_reload(rt_watch *w, void (*fn)(void *, int, const char *), void *ud) {
  w->on_reload = fn;
  w->on_reload_ud = ud;
}

static void reload_cb(uv_timer_t *t) {
  rt_watch *w = t->data;
  char *err = NULL;
  uint64_t t0 = uv_hrtime();
  int rc = rt_engine_reload(w->e, &err);
  w->reloads++;
  rt_log(rc == RT_OK ? RT_LOG_INFO : RT_LOG_WARN, "flows-changed",
         "ok=%d load_ms=%.2f since_change_ms=%.1f", rc == RT_OK,
         (double)(uv_hrtime() - t0) / 1e6, (double)(uv_hrtime() - w->first_change) / 1e6);
  w->first_change = 0;
  if (w->on_reload) w->on_reload(w->on_reload_ud, rc, err);
  free(err);
}

static void change_cb(uv_fs_event_t *h, const char *name, int events, int status) {
  (void)events;
  rt_watch *w = h->data;
  if (status < 0) return;
  /* Editors' swap and backup files are not flows. */
  if (name) {
    size_t n = strlen(name);
    if (n < 4 || strcmp(name + n - 4, ".lua") != 0) {
      if (strcmp(name, "lib") != 0) return;
    }
  }
  if (!w->first_change) w->first_change = uv_hrtime();
  uv_timer_start(&w->debounce, reload_cb, (uint64_t)w->debounce_ms, 0);
}

static int watch_dir(rt_watch *w, uv_loop_t *loop, const char *dir) {
  uv_fs_event_t *h = &w->ev[w->nev];
  uv_fs_event_init(loop, h);
  h->data = w;
  w->open++;
  w->nev++;
  return uv_fs_event_start(h, change_cb, dir, 0);
}

int rt_watch_new(uv_loop_t *loop, rt_engine *e, const char *dir, int debounce_ms,
                 rt_watch **out, char **err) {
  rt_watch *w = rt_xcalloc(1, sizeof *w);
  w->e = e;
  w->debounce_ms = debounce_ms > 0 ? debounce_ms : 1;
  uv_timer_init(loop, &w->debounce);
  w->debounce.data = w;
  w->open = 1;
  int rc = watch_dir(w, loop, dir);
  char *lib = rt_xasprintf("%s/lib", dir);
  struct stat st;
  if (rc == 0 && stat(lib, &st) == 0 && S_ISDIR(st.st_mode)) rc = watch_dir(w, loop, lib);
  free(lib);
  *out = w;
  if (rc != 0) {
    *err = rt_xasprintf("%s: cannot watch for changes: %s", dir, uv_strerror(rc));
    return RT_EIO;
  }
  return RT_OK;
}

unsigned rt_watch_reloads(const rt_watch *w) { return w->reloads; }

static void closed(uv_handle_t *h) {
  rt_watch *w = h->data;
  if (--w->open) return;
  void (*done)(void *) = w->done;
  void *ud = w->ud;
  free(w);
  if (done) done(ud);
}

void rt_watch_close(rt_watch *w, void (*done)(void *), void *ud) {
  w->done = done;
  w->ud = ud;
  for (int i = 0; i < w->nev; i++) uv_close((uv_handle_t *)&w->ev[i], closed);
  uv_close((uv_handle_t *)&w->debounce, closed);
}
