/* watch.h -- reload flows when their files change.
 *
 * uv_fs_event on the flows folder (and its lib/ folder), debounced: an
 * editor's save is several events (write temp, rename, chmod), and we want
 * one reload after the last of them. The engine swaps only a bundle that
 * loaded and validated, so a half-saved file just reports an error and the
 * next save fixes it. */
#ifndef RT_WATCH_H
#define RT_WATCH_H
#include "engine.h"

typedef struct rt_watch rt_watch;

int rt_watch_new(uv_loop_t *loop, rt_engine *e, const char *dir, int debounce_ms,
                 rt_watch **out, char **err);
void rt_watch_close(rt_watch *w, void (*done)(void *ud), void *ud);
/* Called after each reload with RT_OK or the error (borrowed): `chat`
 * tells the person at the terminal. */
void rt_watch_on_reload(rt_watch *w, void (*fn)(void *ud, int rc, const char *err), void *ud);
/* Reloads done by this watcher (for tests and the bench). */
unsigned rt_watch_reloads(const rt_watch *w);
#endif
