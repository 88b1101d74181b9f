/* studio.h -- `shopbot studio`: the marketer's page over a private copy of
 * the shop (docs/studio.md).
 *
 * The process (app.c) runs the engine in test mode -- a temporary store, a
 * virtual clock, no real timers -- with the shop's own flows, watched and
 * reloaded as `run` does, and no channel plugins. The studio is what sits
 * on that engine: capture channels for every channel name (nothing leaves
 * the process; test customers write on the "test" channel), the page and
 * its JSON API on the shared HTTP server, a websocket that pushes the
 * state to open pages, time moves (rt_engine_clock_step, so every wake-up
 * fires at its own time, as in a transcript), the shop's transcript tests
 * in a child process (subproc.h), a recording of each test customer's
 * conversation that is saved as a transcript (docs/transcripts.md), and
 * the figures of the private store or, read-only, of the shop's real one.
 *
 * Everything runs on the loop; API handlers never block it. A request that
 * changes the conversation (say, manager, clock, campaign) is answered
 * once the engine is idle again, with the new state. */
#ifndef RT_STUDIO_H
#define RT_STUDIO_H
#include "config.h"
#include "engine.h"
#include "http_server.h"
#include <uv.h>

typedef struct rt_studio rt_studio;

typedef struct {
  uv_loop_t *loop;
  rt_engine *e;              /* test mode, private store; borrowed until close */
  rt_config *cfg;            /* borrowed */
  rt_httpd *httpd;           /* borrowed; the studio's routes go here */
  const char *shop_dir;      /* the shop's folder (absolute) */
  const char *real_store;    /* the shop's own store file (read-only stats), may not exist */
} rt_studio_opts;

/* Registers the capture channels with the engine (before rt_engine_start)
 * and the routes, imports SHOP_DIR/customers.csv into the private store
 * when there is one. RT_OK, or an error with an owned *err. */
int rt_studio_new(const rt_studio_opts *o, rt_studio **out, char **err);
/* The result of a reload (reload.h): the page shows "flows reloaded" or
 * the error's banner (file, line, Lua's message). */
void rt_studio_reloaded(rt_studio *st, int rc, const char *err);
/* Shutdown began: the test run is killed, waiting requests are answered
 * (503), new ones refused. Before the engine closes. */
void rt_studio_stopping(rt_studio *st);
/* Frees the studio once its handles are closed; done(ud) then. After the
 * HTTP server and the engine closed (their callbacks use the studio). */
void rt_studio_close(rt_studio *st, void (*done)(void *ud), void *ud);

/* ---- pieces, for the tests ---- */
/* A transcript name the studio writes as TESTS_DIR/<name>.chat: 1-64 of
 * A-Z a-z 0-9 _ - (no dots, no slashes: nothing outside the folder). */
bool rt_studio_name_ok(const char *name);
/* A flow file the page may show: a relative path of plain components
 * (A-Z a-z 0-9 _ - . and /, no empty, "." or ".." component) ending in
 * .lua. */
bool rt_studio_flow_path_ok(const char *path);
/* Splits a flows error "flows/lead.lua:12: msg" into file, line and
 * message (new object {"text", "file", "line", "message"}; file and line
 * missing when the text has none). */
json_t *rt_studio_error_json(const char *err);
#endif
