/* app.h -- the `run` and `chat` process, wired together.
 *
 * Owns what lives as long as the process serves a shop: the loop, the shop
 * lock (one bot per shop), the signals (SIGHUP reloads; SIGINT/SIGTERM stop
 * cleanly, a second one or 5 s without the loop answering end the process
 * at once), the store and engine, the HTTP server (with /healthz and
 * /metrics), the plugins (plugin.h: created and started in list order,
 * closed in reverse after the deliveries stopped) and the watcher that
 * reloads the flows when a .lua file of the flows or of a module folder
 * (scripts/lib, the flows' lib/, flows.lib) changes.
 *
 * Start: config -> lock -> loop -> plugins created -> engine (store,
 * flows) -> HTTP server -> plugins started -> engine started (a channel
 * ready at once gets the first deliveries) -> watcher.
 * Stop: watcher, engine (deliveries stop first), HTTP server, then the
 * plugins in reverse order, then the loop ends and the lock goes. */
#ifndef RT_APP_H
#define RT_APP_H
#include "config.h"
#include "plugin.h"

typedef struct {
  const char *cmd;          /* "run" or "chat": names the command in messages */
  const char *shop_dir;
  /* chat: the customer at the terminal; the console reads stdin and the
   * process ends once input ended and every reply is out. Only the console
   * runs then. NULL: run, with the plugins shop.json asks for. */
  const char *chat_user;
  bool chat_fresh;          /* chat --fresh: the chat's conversation starts over */
  const rt_plugin *const *plugins;   /* NULL: rt_plugins (tests pass their own) */
  /* studio (tools/studio.h, docs/studio.md): a private copy of the shop --
   * the engine in test mode (virtual clock) on a store in a temporary
   * folder removed at exit, the shop's flows watched and reloaded, no
   * channel plugins (providers only), no shop lock, and the studio's page
   * on http.listen (listen, when set, instead). */
  bool studio;
  const char *listen;
} rt_app_opts;

/* Serves the shop until stopped; returns the process's exit status (0, or
 * 1 with the reason on stderr). */
int rt_app_run(const rt_app_opts *o);

/* Loads SHOP_DIR/shop.json with the shop schema and applies its log
 * settings; on failure prints "shopbot CMD: ..." to stderr. */
int rt_app_load_config(const char *cmd, const char *shop_dir, rt_config **cfg);

/* `shopbot check`: shop.json, what the plugins say of their sections, the
 * listen address, and the flows compiled in a throwaway store; prints the
 * result. Returns the exit status. */
int rt_app_check(const char *shop_dir, bool print_config);
#endif
