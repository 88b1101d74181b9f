/* watch.h -- tell when the flows' files change.
 *
 * uv_fs_event on a list of folders (the flows folder and every module
 * folder the bundle loads from: the flows' lib/, flows.lib, scripts/lib),
 * debounced: an editor's save is several events (write temp, rename,
 * chmod), and we want one call after the last of them. Only .lua files (and
 * a lib folder appearing) count; editors' swap and backup files do not.
 * The watcher knows nothing of the engine: app.c reloads on on_change, and
 * the engine swaps only a bundle that loaded and validated, so a half-saved
 * file just reports an error and the next save fixes it. */
#ifndef RT_WATCH_H
#define RT_WATCH_H
#include <stddef.h>
#include <uv.h>

typedef struct rt_watch rt_watch;

/* Watches each of the n folders that exists (NULL entries and missing
 * folders are skipped: a shop without lib/ has none to watch) and calls
 * on_change(ud) debounce_ms after the last change of a burst. On RT_OK or
 * RT_EIO (a folder that exists could not be watched; *err says which, the
 * others are watched) *out is the watcher, to close either way. */
int rt_watch_new(uv_loop_t *loop, const char *const *dirs, size_t n, int debounce_ms,
                 void (*on_change)(void *ud), void *ud, rt_watch **out, char **err);
void rt_watch_close(rt_watch *w, void (*done)(void *ud), void *ud);
/* Milliseconds from the first change of the burst just reported to now;
 * meaningful inside on_change. */
double rt_watch_since_change_ms(const rt_watch *w);
/* Bursts reported so far (for tests and the bench). */
unsigned rt_watch_changes(const rt_watch *w);
#endif
