/* watch.c -- see watch.h. */
#include "watch.h"
#include "rt.h"
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct rt_watch {
  uv_fs_event_t *ev;         /* one per folder watched */
  size_t nev;
  uv_timer_t debounce;
  int debounce_ms;
  int open;                  /* handles not yet closed */
  unsigned changes;
  uint64_t first_change;     /* hrtime of the first change of this burst */
  void (*on_change)(void *);
  void *ud;
  void (*done)(void *);
  void *done_ud;
};

static void fire_cb(uv_timer_t *t) {
  rt_watch *w = t->data;
  w->changes++;
  w->on_change(w->ud);
  w->first_change = 0;
}

double rt_watch_since_change_ms(const rt_watch *w) {
  return w->first_change ? (double)(uv_hrtime() - w->first_change) / 1e6 : 0;
}

unsigned rt_watch_changes(const rt_watch *w) { return w->changes; }

static void change_cb(uv_fs_event_t *h, const char *name, int events, int status) {
  (void)events;
  rt_watch *w = h->data;
  if (status < 0) return;
  /* Editors' swap and backup files are not flows. */
  if (name) {
    size_t n = strlen(name);
    if ((n < 4 || strcmp(name + n - 4, ".lua") != 0) && strcmp(name, "lib") != 0) return;
  }
  if (!w->first_change) w->first_change = uv_hrtime();
  uv_timer_start(&w->debounce, fire_cb, (uint64_t)w->debounce_ms, 0);
}

int rt_watch_new(uv_loop_t *loop, const char *const *dirs, size_t n, int debounce_ms,
                 void (*on_change)(void *), void *ud, rt_watch **out, char **err) {
  rt_watch *w = rt_xcalloc(1, sizeof *w);
  w->on_change = on_change;
  w->ud = ud;
  w->debounce_ms = debounce_ms > 0 ? debounce_ms : 1;
  w->ev = rt_xcalloc(n ? n : 1, sizeof *w->ev);
  uv_timer_init(loop, &w->debounce);
  w->debounce.data = w;
  w->open = 1;
  *out = w;
  int rc = RT_OK;
  for (size_t i = 0; i < n; i++) {
    struct stat st;
    if (!dirs[i] || stat(dirs[i], &st) != 0 || !S_ISDIR(st.st_mode)) continue;
    /* The same folder twice (flows.lib naming the flows' lib/) is one watch. */
    bool dup = false;
    for (size_t k = 0; k < i; k++) dup |= dirs[k] && strcmp(dirs[k], dirs[i]) == 0;
    if (dup) continue;
    uv_fs_event_t *h = &w->ev[w->nev++];
    uv_fs_event_init(loop, h);
    h->data = w;
    w->open++;
    int r = uv_fs_event_start(h, change_cb, dirs[i], 0);
    if (r != 0 && rc == RT_OK) {
      *err = rt_xasprintf("%s: cannot watch for changes: %s", dirs[i], uv_strerror(r));
      rc = RT_EIO;
    }
  }
  return rc;
}

static void closed(uv_handle_t *h) {
  rt_watch *w = h->data;
  if (--w->open) return;
  void (*done)(void *) = w->done;
  void *ud = w->done_ud;
  free(w->ev);
  free(w);
  if (done) done(ud);
}

void rt_watch_close(rt_watch *w, void (*done)(void *), void *ud) {
  w->done = done;
  w->done_ud = ud;
  for (size_t i = 0; i < w->nev; i++) uv_close((uv_handle_t *)&w->ev[i], closed);
  uv_close((uv_handle_t *)&w->debounce, closed);
}
