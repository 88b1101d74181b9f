/* reload.h -- hot reload as the process does it: load the flows, let the
 * shop's transcripts check them (tests.on_reload), then swap them in.
 *
 * The check runs in a child process (rt_transcript_check), never on this
 * loop, so the old flows keep serving and /healthz answers meanwhile; a
 * child that outlives tests.reload_timeout_s is killed and the reload
 * fails. A newer reload cancels a check still running (its flows are no
 * longer the newest), so only the latest save can be swapped in. The
 * engine only loads and swaps (rt_engine_load, rt_engine_swap); it knows
 * nothing of transcripts. Borrowed: the loop, the config, the engine. */
#ifndef RT_RELOAD_H
#define RT_RELOAD_H
#include "config.h"
#include "engine.h"
#include <uv.h>

typedef struct rt_reload rt_reload;

rt_reload *rt_reload_new(uv_loop_t *loop, rt_config *cfg, rt_engine *e);
/* Rebuilds the flows from disk; with tests.on_reload (and transcripts in
 * tests.dir) checks them first. RT_OK: swapped, or the check has started
 * (its result comes later on the loop: the "reload" or "reload-failed"
 * log line, rt_engine_reload_error). Else an error with an owned message;
 * the old flows keep serving. */
int rt_reload_run(rt_reload *r, char **err);
/* Optional: fn(ud, RT_OK or the error, message) at the end of every
 * reload, at once or when its check ends (a cancelled check reports
 * nothing): `chat` in a terminal tells the person there. */
void rt_reload_on_result(rt_reload *r, void (*fn)(void *ud, int rc, const char *err), void *ud);
/* Cancels a check still running; done(ud) once its child is reaped (maybe
 * at once); frees. */
void rt_reload_close(rt_reload *r, void (*done)(void *ud), void *ud);
#endif
