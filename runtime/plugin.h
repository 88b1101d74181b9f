/* plugin.h -- what a plugin is, and what the host lends it.
 *
 * A plugin lives in its own folder under plugins/ (Kong's handler + schema):
 * <name>.c, schema.json (the JSON Schema of its section of shop.json,
 * merged into the validation so `shopbot check` names its keys with paths)
 * and README.md. plugins/plugins.c lists every plugin built in; the host
 * (runtime/plugin.c) validates each configured section against its
 * schema, creates the instances, starts them in order, and closes them in
 * reverse order at shutdown. A plugin includes this header, channel.h or
 * integration.h, and the leaves (log.h, http_client.h, http_server.h,
 * rt.h...), never the engine's: everything else is lent to it here.
 *
 * Kinds: a channel (channel.h: a messenger; its section is
 * channels.<name>) or a provider (integration.h: a service used inside a
 * step, the LLM or a CRM; its section is the plugin's own top-level key,
 * e.g. "llm"). */
#ifndef RT_PLUGIN_H
#define RT_PLUGIN_H
#include "rt.h"
#include <jansson.h>
#include <uv.h>

struct rt_http;
struct rt_httpd;
struct rt_buf;
struct rt_channel;
struct rt_provider;

/* A normalised inbound event. Strings are borrowed for the call. */
typedef struct {
  const char *channel;
  const char *ext_id;        /* the channel's own id: dedup key; NULL = generated */
  const char *chat_id;
  const char *user_id;
  const char *kind;          /* text, photo, contact, button, manager */
  const char *text;
  const char *name;          /* the user's display name, if known */
  const char *extra_json;    /* optional JSON object merged into the event */
} rt_event_in;

/* What the host lends a plugin at start; everything is borrowed until the
 * plugin's close has called its done. All callbacks run on the loop. */
typedef struct rt_plugin_env {
  uv_loop_t *loop;
  const char *name;          /* the plugin's name ("console", "telegram") */
  const json_t *conf;        /* its section of shop.json, validated, defaults filled;
                              * never NULL (an empty object when absent) */
  struct rt_http *http;      /* the process's HTTP client (http_client.h); NULL
                              * for a plugin that says no_http */
  struct rt_httpd *httpd;    /* the HTTP server for routes and websockets
                              * (http_server.h); NULL when http.listen is off */
  const char *data_dir;      /* where the plugin may keep files (photos): <the
                              * store's folder>/files/<name>, created before start */
  int keep_days;             /* store.keep_days: files kept about events (downloaded
                              * photos) may be removed this many days after they
                              * were written; 0 = kept forever */
  const char *shop_dir;      /* the shop's folder (absolute), for files the shop
                              * edits (the llm's prompt.md); NULL without a config */
  /* Host clock, unix ms (virtual in tests). */
  int64_t (*now_ms)(void *host);
  /* Queues an inbound event; ack (may be NULL) runs after the receive
   * commit with RT_OK, 1 for a duplicate, or an error: answer a webhook or
   * move a long-poll offset only then. RT_EINVAL for an event without a
   * chat. */
  int (*receive)(void *host, const rt_event_in *ev, void (*ack)(void *ud, int status),
                 void *ud);
  /* The plugin's own durable values (a webhook secret, a migrated group
   * id): kv_get returns an owned copy or NULL; kv_set writes at once
   * (durable when it returns RT_OK); val NULL deletes. Keys are the
   * plugin's own namespace. */
  char *(*kv_get)(void *host, const char *name, const char *key);
  int (*kv_set)(void *host, const char *name, const char *key, const char *val);
  /* Reports the plugin's health for /healthz: status NULL = fine, else a
   * short sentence saying what is wrong and what to do (copied). */
  void (*set_health)(void *host, const char *name, const char *problem);
  /* An operator command typed into the channel ("reload"); RT_OK or an
   * error with an owned message. */
  int (*command)(void *host, const char *cmd, char **err);
  /* Optional exporter for /metrics: from now on, every read of /metrics
   * calls write(ud, out), which appends the plugin's own series to out in
   * Prometheus text format (# HELP, # TYPE, samples), after the engine's.
   * Names begin shopbot_<plugin name>_ so plugins never collide; the host
   * drops a block that does not keep to that (and logs it once). Call it
   * at start (again: replaces; write NULL: none); ud must live until the
   * plugin's close has called its done (the host stops calling write when
   * close begins). NULL in hosts without /metrics (tests): check it. */
  void (*set_metrics)(void *host, const char *name, void (*write)(void *ud, struct rt_buf *out),
                      void *ud);
  /* Who talks in a chat of this channel, as stored: "bot", "handoff" (the
   * bot asked for a manager) or "manager" (one took it), owned; NULL when
   * the chat has no conversation yet (or the store is gone). */
  char *(*conv_mode)(void *host, const char *chat_id);
  /* The newest messages (at most limit, and RT_PLUGIN_HISTORY_MAX) of a
   * chat of this channel, both ways, oldest first, from the store: a new
   * JSON array of {"from": "customer" or "bot", "at": ms, "id": the row,
   * "ext_id": the channel's id of a customer's message, "event" (the
   * customer's, as received) or "message" (sent: {text, buttons, media})}.
   * NULL when the store is gone or failed (logged). Kept only for a
   * channel that declares RT_CH_HISTORY (channel.h); empty for others. */
  json_t *(*history)(void *host, const char *chat_id, int limit);
  void *host;
} rt_plugin_env;

#define RT_PLUGIN_HISTORY_MAX 200

typedef enum { RT_PLUGIN_CHANNEL, RT_PLUGIN_PROVIDER } rt_plugin_kind;

/* One built-in plugin (static, listed in plugins/plugins.c). */
typedef struct rt_plugin {
  const char *name;          /* folder name; the config section's name */
  const char *version;       /* x.y.z */
  rt_plugin_kind kind;
  /* The schema fragment (plugins/<name>/schema.json, compiled in at build
   * time) for the plugin's section. */
  const char *schema_json;
  /* True for a plugin that never calls out (the console): when no running
   * plugin needs it the host creates no HTTP client, so a bot without
   * outside services does not load libcurl. Otherwise env.http is set. */
  bool no_http;
  /* True when the section asks for the plugin to run (e.g. a token is
   * set, or enabled is true); conf never NULL. NULL = always. */
  bool (*wanted)(const json_t *conf);
  /* A channel for shops without a messenger (the web chat): while its
   * section says nothing of "enabled" it runs only when no other channel
   * but the console is wanted, and wanted decides otherwise. */
  bool fallback;
  /* Creates an instance from its validated section. Exactly one of the
   * outputs is set according to kind. Returns RT_OK or an error with an
   * owned message for `shopbot check` and the log. */
  int (*create)(const json_t *conf, struct rt_channel **ch, struct rt_provider **pv, char **err);
} rt_plugin;

/* plugins/plugins.c: NULL-terminated, in start order. */
extern const rt_plugin *const rt_plugins[];

/* ---- the host side (runtime/plugin.c; app.c drives it, plugins never) ----
 *
 * rt_plugin_host owns the plugin instances of one process and what it
 * lends them: each instance's env, data folder, health and, when a running
 * plugin needs it, the shared HTTP client. Lifecycle:
 *   new -> [adopt] -> create (each wanted plugin, list order) ->
 *   start (list order: a start is called once and answers through done;
 *   a channel reaches deliveries, opts.channel_ready, only after its
 *   done(RT_OK)) -> close (reverse order, each after the previous one's
 *   done; then the HTTP client).
 * A plugin whose create or start fails is logged (plugin-failed, with the
 * plugin's message) and reported by health; the other plugins and the bot
 * go on (a Telegram token the service refuses stops Telegram, not the shop). */
struct rt_config;
struct rt_store;

typedef struct rt_plugin_host rt_plugin_host;

typedef struct {
  uv_loop_t *loop;
  const struct rt_config *cfg;       /* borrowed: sections are read from it */
  const rt_plugin *const *plugins;   /* NULL: rt_plugins */
  const char *files_dir;             /* data folders go in <files_dir>/<name> */
  /* The app's half of rt_plugin_env, all called with ud. */
  int64_t (*now_ms)(void *ud);
  int (*receive)(void *ud, const rt_event_in *ev, void (*ack)(void *, int), void *ack_ud);
  int (*command)(void *ud, const char *cmd, char **err);
  /* A channel finished starting: deliveries to it may begin. */
  void (*channel_ready)(void *ud, struct rt_channel *ch);
  /* Optional: a plugin's create or start failed (after it was logged). */
  void (*failed)(void *ud, const char *name, const char *err);
  void *ud;
} rt_plugin_host_opts;

rt_plugin_host *rt_plugin_host_new(const rt_plugin_host_opts *o);
/* Takes ch (made by the app: chat's console) as the instance of the
 * plugin name; create then makes no other of that name. Before create. */
void rt_plugin_host_adopt(rt_plugin_host *h, const char *name, struct rt_channel *ch);
/* Creates an instance of every plugin of the list whose section is wanted
 * (adopted ones excepted); with only_adopted, none. Returns how many
 * failed (each logged and in health). */
int rt_plugin_host_create(rt_plugin_host *h, bool only_adopted);
/* Starts the instances in order, lending them the store (kv values; the
 * store must stay open until close is done) and the HTTP server (NULL: off). */
void rt_plugin_host_start(rt_plugin_host *h, struct rt_store *store, struct rt_httpd *httpd);
/* The providers created (integration.h), in list order; borrowed. */
struct rt_provider *const *rt_plugin_host_providers(const rt_plugin_host *h, size_t *n);
/* The process's HTTP client (http_client.h), lent to every plugin and to
 * the flows; owned by the host, closed last. */
struct rt_http *rt_plugin_host_http(rt_plugin_host *h);
/* {"console": {"state": "running", "version": "1.0.0"}, "telegram":
 * {"state": "failed", "problem": "..."}} (new reference); *ok is false when
 * any plugin failed or reports a problem. */
json_t *rt_plugin_host_health(const rt_plugin_host *h, bool *ok);
/* Appends the series of every running plugin that set_metrics (start
 * order) to out, for /metrics. */
void rt_plugin_host_metrics(rt_plugin_host *h, struct rt_buf *out);
/* Shutdown began: from now receive refuses (RT_EINVAL) and kv_get/kv_set
 * answer NULL/RT_EINVAL, since the store closes with the engine, before
 * the plugins are closed. */
void rt_plugin_host_stopping(rt_plugin_host *h);
/* Closes the instances in reverse order, then frees h and calls done(ud)
 * (may be NULL) from the loop or before returning. */
void rt_plugin_host_close(rt_plugin_host *h, void (*done)(void *ud), void *ud);

/* `shopbot check`: creates every wanted plugin of the list (NULL:
 * rt_plugins) from cfg and closes it again, starting nothing. Returns RT_OK,
 * or RT_EINVAL and an owned message, one line per plugin that refused its
 * section: "shop.json: $.channels.telegram: token: ...". */
int rt_plugin_check(const struct rt_config *cfg, const rt_plugin *const *plugins, char **err);
#endif
