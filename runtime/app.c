/* app.c -- the run/chat process (see app.h). */
#include "app.h"
#include "buf.h"
#include "console/console.h"
#include "engine.h"
#include "http_server.h"
#include "log.h"
#include "paths.h"
#include "reload.h"
#include "rt.h"
#include "stats.h"
#include "studio.h"
#include "tz.h"
#include "watch.h"
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

typedef struct app {
  const rt_app_opts *o;
  uv_loop_t loop;
  rt_config *cfg;
  rt_engine *e;
  rt_reload *reload;            /* load -> tests.on_reload check -> swap */
  rt_httpd *httpd;
  rt_watch *watch;
  rt_plugin_host *plugins;
  rt_studio *studio;
  char *studio_tmp;            /* studio: the private copy's folder */
  char *real_store;            /* studio: the shop's own store (read-only stats) */
  const rt_plugin *providers[16];  /* studio: the plugins it runs */
  char *files_dir;
  char *watch_dirs[4];
  uv_signal_t sighup;
  uv_async_t stop_async;       /* SIGINT/SIGTERM, from our own handler */
  uv_timer_t eof_check;
  int lock_fd;
  bool stopping, eof, tty_chat;
  bool tell_reload;            /* the newest reload came from a file change */
  int closing;                 /* things still closing at shutdown */
} app;

/* The managers' /stats: what `shopbot stats` computes (tools/stats.h),
 * since the shop's local midnight, cut to what the note shows: leads,
 * hand-offs no manager has taken yet, and the campaigns that ran today. */
static json_t *today_figures(void *ud, rt_store *s, int64_t now) {
  rt_config *cfg = ud;
  int64_t mid = rt_tz_local_midnight(rt_config_str(cfg, "timezone", RT_TZ_DEFAULT), now / 1000);
  json_t *st = NULL;
  char *err = NULL;
  if (rt_stats_collect(s, mid > 0 ? mid * 1000 : 0, &st, &err) != RT_OK) {
    rt_log(RT_LOG_WARN, "stats-failed", "err=%s", err ? err : "-");
    free(err);
    return NULL;
  }
  json_int_t leads = 0;
  const char *k;
  json_t *v;
  json_object_foreach(json_object_get(st, "flows"), k, v)
    leads += json_integer_value(json_object_get(v, "leads"));
  json_t *camps = json_array();
  json_object_foreach(json_object_get(st, "campaigns"), k, v) {
    json_int_t contacted = json_integer_value(json_object_get(v, "contacted"));
    json_int_t cleads = json_integer_value(json_object_get(v, "leads"));
    if (!contacted && !cleads) continue;
    json_t *outc = json_object();
    const char *ok;
    json_t *ov;
    json_object_foreach(json_object_get(v, "outcomes"), ok, ov)
      json_object_set_new(outc, ok, json_integer(json_integer_value(json_object_get(ov, "count"))));
    json_array_append_new(camps, json_pack("{s:s, s:I, s:I, s:o}", "name", k, "contacted",
                                           contacted, "leads", cleads, "outcomes", outc));
  }
  int64_t waiting = rt_store_convs_in_mode(s, "handoff");
  json_t *out = json_pack("{s:I, s:I, s:o}", "leads", leads, "waiting",
                          (json_int_t)(waiting > 0 ? waiting : 0), "campaigns", camps);
  json_decref(st);
  return out;
}

static void app_stop(app *a);

int rt_app_load_config(const char *cmd, const char *shop_dir, rt_config **cfg) {
  char *schema = rt_paths_schema("shop.schema.json"), *err = NULL;
  int rc = rt_config_load(shop_dir, schema, cfg, &err);
  free(schema);
  if (rc != RT_OK) {
    fprintf(stderr, "shopbot %s: %s\n", cmd, err);
    free(err);
    return rc;
  }
  int lvl = rt_log_parse_level(rt_config_str(*cfg, "log.level", "info"));
  if (lvl >= 0) rt_log_set_level((rt_log_level)lvl);
  rt_log_set_json(strcmp(rt_config_str(*cfg, "log.format", "logfmt"), "json") == 0);
  rt_log_set_rate((unsigned)rt_config_int(*cfg, "log.max_lines_per_s", RT_LOG_DEFAULT_PER_S));
  return RT_OK;
}

/* One bot per shop: an exclusive flock on SHOP_DIR/data/shopbot.lock held
 * for the life of the process (the kernel drops it if we are killed). */
static int take_lock(const char *cmd, rt_config *cfg, int *fd_out) {
  char *dir = rt_config_path(cfg, "data");
  mkdir(dir, 0755);
  char *path = rt_xasprintf("%s/shopbot.lock", dir);
  free(dir);
  int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    fprintf(stderr, "shopbot %s: %s: %s\n", cmd, path, strerror(errno));
    free(path);
    return RT_EIO;
  }
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    char pid[32] = "";
    ssize_t n = pread(fd, pid, sizeof pid - 1, 0);
    pid[n > 0 ? n : 0] = '\0';
    pid[strcspn(pid, "\n")] = '\0';
    fprintf(stderr, "shopbot %s: the shop %s is already served by another shopbot (pid %s); "
                    "one bot per shop: stop it first\n", cmd, rt_config_dir(cfg), *pid ? pid : "?");
    close(fd);
    free(path);
    return RT_EBUSY;
  }
  if (ftruncate(fd, 0) == 0) {
    char pid[32];
    int n = snprintf(pid, sizeof pid, "%d\n", (int)getpid());
    if (pwrite(fd, pid, (size_t)n, 0) < 0) { /* the lock matters, not the note */ }
  }
  free(path);
  *fd_out = fd;
  return RT_OK;
}

/* ---- /healthz and /metrics ---- */

/* The engine's health with the plugins' beside it: a plugin that failed to
 * start or reports a problem makes the whole status failing (503), so a
 * monitor sees a dead Telegram while the console and webchat keep going. */
static void on_health(void *ud, rt_httpd_req *req) {
  app *a = ud;
  json_t *h = rt_engine_health(a->e);
  if (a->plugins) {
    bool ok;
    json_object_set_new(h, "plugins", rt_plugin_host_health(a->plugins, &ok));
    if (!ok) json_object_set_new(h, "ok", json_false());
  }
  char *body = json_dumps(h, JSON_COMPACT);
  rt_httpd_respond(req, json_is_true(json_object_get(h, "ok")) ? 200 : 503,
                   "application/json", body, body ? strlen(body) : 0);
  free(body);
  json_decref(h);
}

static void on_metrics(void *ud, rt_httpd_req *req) {
  app *a = ud;
  char *body = rt_engine_metrics(a->e);
  rt_buf b = RT_BUF_INIT;
  rt_buf_adds(&b, body ? body : "");
  free(body);
  /* the HTTP server's defences (docs/http.md, limits): bodies cut off at
   * their deadline or to make room, and the websockets against their share */
  uint64_t timeouts = 0, evictions = 0;
  rt_httpd_body_stats(a->httpd, &timeouts, &evictions);
  rt_buf_printf(&b,
              "# HELP shopbot_http_body_timeouts_total Request bodies not complete in "
              "http.body_timeout_s (408).\n"
              "# TYPE shopbot_http_body_timeouts_total counter\n"
              "shopbot_http_body_timeouts_total %llu\n"
              "# HELP shopbot_http_body_evictions_total Request bodies cut off to make room at "
              "http.max_connections (503).\n"
              "# TYPE shopbot_http_body_evictions_total counter\n"
              "shopbot_http_body_evictions_total %llu\n"
              "# HELP shopbot_http_websockets Open websockets (at most "
              "shopbot_http_websockets_max).\n"
              "# TYPE shopbot_http_websockets gauge\n"
              "shopbot_http_websockets %d\n"
              "# TYPE shopbot_http_websockets_max gauge\n"
              "shopbot_http_websockets_max %d\n",
              (unsigned long long)timeouts, (unsigned long long)evictions,
              rt_httpd_ws_connections(a->httpd), rt_httpd_ws_max_connections(a->httpd));
  /* the plugins' own series (plugin.h: set_metrics), after the engine's */
  if (a->plugins) rt_plugin_host_metrics(a->plugins, &b);
  rt_httpd_respond(req, 200, "text/plain; version=0.0.4", rt_buf_str(&b), b.len);
  rt_buf_free(&b);
}

/* ---- reload ---- */

/* chat in a terminal: a plain line about each reload a file change made,
 * since the log level there is kept at warn so logs do not drown the
 * conversation. It comes with the reload's result: at once, or when the
 * shop's transcripts (tests.on_reload) have passed or failed. */
static void tell_reload(void *ud, int rc, const char *err) {
  app *a = ud;
  if (a->studio && !a->stopping) rt_studio_reloaded(a->studio, rc, err);
  if (!a->tell_reload || !a->e || a->stopping) return;
  /* the shop's words: channels.console.texts (defaults in its schema) */
  static const char *const names[] = {"version", "error"};
  const char *values[] = {rc == RT_OK ? rt_engine_flows_version(a->e) : NULL, err ? err : "?"};
  const char *tmpl = rt_config_str(a->cfg, rc == RT_OK ? "channels.console.texts.reloaded"
                                                       : "channels.console.texts.reload_failed", "");
  rt_buf b = RT_BUF_INIT;
  rt_buf_fill(&b, tmpl, names, values, 2);
  if (b.len) fprintf(stderr, "-- %s\n", rt_buf_str(&b));
  rt_buf_free(&b);
}

static int reload_as(app *a, bool tell, char **err) {
  *err = NULL;
  if (!a->e || a->stopping) {
    *err = rt_xstrdup("the bot is stopping");
    return RT_EINVAL;
  }
  /* A newer reload cancels an older one's check: the flag is the newest's. */
  a->tell_reload = tell && a->tty_chat;
  return rt_reload_run(a->reload, err);
}

static int app_reload(app *a, char **err) { return reload_as(a, false, err); }

/* A flow or module file changed (watch.h). */
static void on_files_changed(void *ud) {
  app *a = ud;
  char *err = NULL;
  uint64_t t0 = uv_hrtime();
  int rc = reload_as(a, true, &err);
  rt_log(rc == RT_OK ? RT_LOG_INFO : RT_LOG_WARN, "flows-changed",
         "ok=%d load_ms=%.2f since_change_ms=%.1f", rc == RT_OK,
         (double)(uv_hrtime() - t0) / 1e6, rt_watch_since_change_ms(a->watch));
  free(err);
}

static void on_sighup(uv_signal_t *s, int signum) {
  app *a = s->data;
  (void)signum;
  char *err = NULL;
  app_reload(a, &err);
  free(err);
}

/* What runs when shop files change: the flows, their lib/, flows.lib and
 * the shared scripts/lib -- every folder the bundle loads modules from. */
static void start_watch(app *a) {
  const char *flows = rt_engine_flows_dir(a->e);
  const char *lib = rt_config_str(a->cfg, "flows.lib", NULL);
  a->watch_dirs[0] = rt_xstrdup(flows);
  a->watch_dirs[1] = rt_xasprintf("%s/lib", flows);
  a->watch_dirs[2] = lib ? rt_config_path(a->cfg, lib) : NULL;
  a->watch_dirs[3] = rt_paths_scripts("lib");
  char *err = NULL;
  if (rt_watch_new(&a->loop, (const char *const *)a->watch_dirs, RT_ARRAY_LEN(a->watch_dirs),
                   (int)rt_config_int(a->cfg, "flows.reload_debounce_ms", 15), on_files_changed,
                   a, &a->watch, &err) != RT_OK) {
    char q[1024];
    rt_log_quote(err, q, sizeof q);
    rt_log(RT_LOG_WARN, "watch-disabled", "err=%s", q);
    free(err);
  }
}

/* ---- what the plugins get from the app (plugin.h) ---- */

static int64_t wall_ms(void) {
  struct timeval tv;
  gettimeofday(&tv, NULL);
  return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

static int64_t host_now(void *ud) {
  app *a = ud;
  return a->e ? rt_clock_now(rt_engine_clock(a->e)) : wall_ms();
}

static int host_receive(void *ud, const rt_event_in *ev, void (*ack)(void *, int), void *ack_ud) {
  app *a = ud;
  return a->e && !a->stopping ? rt_engine_receive(a->e, ev, ack, ack_ud) : RT_EINVAL;
}

static int host_command(void *ud, const char *cmd, char **err) {
  app *a = ud;
  if (strcmp(cmd, "reload") == 0) return app_reload(a, err);
  *err = rt_xasprintf("unknown command: %s", cmd);
  return RT_EINVAL;
}

/* chat has nothing to do without its console (stdin unreadable). */
static void host_failed(void *ud, const char *name, const char *err) {
  app *a = ud;
  if (!a->o->chat_user) return;
  fprintf(stderr, "shopbot: %s: %s\n", name, err ? err : "cannot start");
  app_stop(a);
}

static void host_channel_ready(void *ud, rt_channel *ch) {
  app *a = ud;
  if (a->e && !a->stopping) rt_engine_add_channel(a->e, ch);
}

/* ---- stop ---- */

/* See on_stop_signal. */
static volatile sig_atomic_t stop_requested;
static uv_async_t *volatile stop_async_now;

static void closed_one(void *ud) {
  app *a = ud;
  a->closing--;
}

static void closed_handle(uv_handle_t *h) { closed_one(h->data); }

static void close_plugins(app *a) {
  if (!a->plugins) return;
  rt_plugin_host *p = a->plugins;
  a->plugins = NULL;
  a->closing++;
  rt_plugin_host_close(p, closed_one, a);
}

/* The HTTP server is gone (every websocket's on_close has run, deferred
 * requests are answered as dropped): now the plugins may free themselves. */
static void close_studio(app *a) {
  if (!a->studio) return;
  rt_studio *st = a->studio;
  a->studio = NULL;
  a->closing++;
  rt_studio_close(st, closed_one, a);
}

static void httpd_closed(void *ud) {
  app *a = ud;
  close_plugins(a);
  /* The studio's routes and websockets are gone with the server, and its
   * channels with the engine (closed before the server). */
  close_studio(a);
  a->closing--;
}

static void app_stop(app *a) {
  if (a->stopping) return;
  a->stopping = true;
  stop_async_now = NULL;   /* a later signal must not touch a closing handle */
  uv_handle_t *hs[] = {(uv_handle_t *)&a->stop_async,
                       (uv_handle_t *)&a->sighup, (uv_handle_t *)&a->eof_check};
  for (size_t i = 0; i < RT_ARRAY_LEN(hs); i++) {
    if (!hs[i]->loop || uv_is_closing(hs[i])) continue;
    hs[i]->data = a;
    a->closing++;
    uv_close(hs[i], closed_handle);
  }
  if (a->watch) { a->closing++; rt_watch_close(a->watch, closed_one, a); a->watch = NULL; }
  /* A reload check still running: its child is killed and reaped. */
  if (a->reload) { a->closing++; rt_reload_close(a->reload, closed_one, a); a->reload = NULL; }
  /* Deliveries stop first, then the channels close (channel.h); the store
   * goes with the engine, so plugins lose receive and kv from here on. */
  if (a->plugins) rt_plugin_host_stopping(a->plugins);
  if (a->studio) rt_studio_stopping(a->studio);
  if (a->e) { a->closing++; rt_engine_close(a->e, closed_one, a); a->e = NULL; }
  if (a->httpd) {
    a->closing++;
    rt_httpd_close(a->httpd, httpd_closed, a);
    a->httpd = NULL;
  } else {
    close_plugins(a);
    close_studio(a);
  }
}

/* SIGINT/SIGTERM: a stop the loop carries out, and a way out when the loop
 * cannot. uv_signal would deliver the signal through the loop only, so a
 * loop stuck in C (a library call, a hostile step) would ignore it. Our
 * handler wakes the loop with uv_async_send (async-signal-safe) and arms a
 * grace alarm; a second signal, or the alarm, ends the process at once.
 * That is safe: nothing is acknowledged or sent before it is committed.
 * These are the only process globals: a signal is process-wide. */
#define STOP_GRACE_S 5

static void hard_exit(const char *why) {
  ssize_t w = write(2, why, strlen(why));
  (void)w;
  _exit(1);
}

static void on_stop_signal(int sig) {
  if (stop_requested)
    hard_exit("level=error msg=shutdown-forced reason=\"second stop signal\"\n");
  stop_requested = sig;
  alarm(STOP_GRACE_S);
  uv_async_t *as = stop_async_now;
  if (as) uv_async_send(as);
}

static void on_stop_alarm(int sig) {
  (void)sig;
  hard_exit("level=error msg=shutdown-forced reason=\"the loop did not stop within "
            "5 s of the stop signal\"\n");
}

static void on_stop_async(uv_async_t *h) {
  app *a = h->data;
  rt_log(RT_LOG_INFO, "shutdown", "signal=%d", (int)stop_requested);
  app_stop(a);
}

static void stop_signals_install(app *a) {
  stop_requested = 0;
  uv_async_init(&a->loop, &a->stop_async, on_stop_async);
  a->stop_async.data = a;
  stop_async_now = &a->stop_async;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sigemptyset(&sa.sa_mask);
  sa.sa_handler = on_stop_signal;
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  sa.sa_handler = on_stop_alarm;
  sigaction(SIGALRM, &sa, NULL);
}

/* After stdin ends, `chat` waits until every reply is out, then exits. */
static void eof_tick(uv_timer_t *t) {
  app *a = t->data;
  if (a->e && rt_engine_idle(a->e)) app_stop(a);
}

static void on_eof(void *ud) {
  app *a = ud;
  a->eof = true;
  uv_timer_start(&a->eof_check, eof_tick, 1, 10);
}

/* ---- start ---- */

/* The HTTP server with its limits from shop.json (docs/http.md). Returns
 * RT_OK when it listens or is off. */
static int start_httpd(app *a, char **err) {
  if (!rt_config_bool(a->cfg, "http.enabled", 1)) return RT_OK;
  rt_config *c = a->cfg;
  const char *listen = rt_config_str(c, "http.listen", "127.0.0.1:8080");
  rt_httpd_opts ho = {
    .listen = listen,
    .max_connections = (int)rt_config_int(c, "http.max_connections", 0),
    .max_header = (int)rt_config_int(c, "http.max_header_bytes", 0),
    .max_body = (size_t)rt_config_int(c, "http.max_body_bytes", 0),
    .reply_timeout_ms = (unsigned)rt_config_int(c, "http.reply_timeout_ms", 0),
    .ws_max_message = (size_t)rt_config_int(c, "http.ws_max_message_bytes", 0),
    .ws_max_queued = (size_t)rt_config_int(c, "http.ws_max_queued_bytes", 0),
    .header_timeout_s = (int)rt_config_int(c, "http.header_timeout_s", 0),
    .idle_timeout_s = (int)rt_config_int(c, "http.idle_timeout_s", 0),
    .body_timeout_s = (int)rt_config_int(c, "http.body_timeout_s", 0),
    .ws_max_connections = (int)rt_config_int(c, "http.ws_max_connections", 0),
  };
  int rc = rt_httpd_start(&a->loop, &ho, &a->httpd, err);
  if (rc != RT_OK) return rc;
  rt_httpd_route(a->httpd, "GET", "/healthz", on_health, a);
  rt_httpd_route(a->httpd, "GET", "/metrics", on_metrics, a);
  rt_log(RT_LOG_INFO, "http", "listen=%s port=%d", listen, rt_httpd_port(a->httpd));
  return RT_OK;
}

/* <the store's folder>/files: where the plugins' data folders go. */
static char *files_dir(rt_config *cfg) {
  char *db = rt_config_path(cfg, rt_config_str(cfg, "store.path", "data/shop.db"));
  char *slash = strrchr(db, '/');
  char *dir = slash ? rt_xasprintf("%.*s/files", (int)(slash - db), db) : rt_xstrdup("files");
  free(db);
  return dir;
}

/* Created before the engine: providers (a Lua module each) and the
 * process's HTTP client are lent to the flows' bundle when it loads;
 * started once the store and the HTTP server are there. */
static void create_plugins(app *a) {
  a->files_dir = files_dir(a->cfg);
  rt_plugin_host_opts po = {
    .loop = &a->loop, .cfg = a->cfg, .plugins = a->o->studio ? a->providers : a->o->plugins,
    .files_dir = a->files_dir,
    .now_ms = host_now, .receive = host_receive, .command = host_command,
    .channel_ready = host_channel_ready, .failed = host_failed, .ud = a,
  };
  a->plugins = rt_plugin_host_new(&po);
  if (a->o->chat_user)
    rt_plugin_host_adopt(a->plugins, "console",
                         rt_console_channel(rt_console_new(a->o->chat_user, a->o->chat_fresh,
                                                           on_eof, a)));
  rt_plugin_host_create(a->plugins, a->o->chat_user != NULL);
}

/* ---- the studio's private copy ---- */

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
  (void)sb; (void)ftw;
  return flag == FTW_DP ? rmdir(path) : unlink(path);
}

/* A temporary folder for the private store, shop.json's store.path and
 * http.listen pointed there, the channel plugins left out: nothing the
 * studio does reaches the shop's data or a real customer. */
static int studio_setup(app *a, char **err) {
  /* $TMPDIR, as for every temporary file (./dev.sh demo keeps it inside
   * the repository's build folder). */
  const char *td = getenv("TMPDIR");
  char *tmpl = rt_xasprintf("%s/shopbot-studio-XXXXXX", td && *td ? td : "/tmp");
  if (!mkdtemp(tmpl)) {
    *err = rt_xasprintf("cannot make a temporary folder %s: %s", tmpl, strerror(errno));
    free(tmpl);
    return RT_EIO;
  }
  a->studio_tmp = tmpl;
  a->real_store = rt_config_path(a->cfg, rt_config_str(a->cfg, "store.path", "data/shop.db"));
  json_t *root = rt_config_json(a->cfg);
  json_t *store = json_object_get(root, "store");
  if (!json_is_object(store)) json_object_set_new(root, "store", store = json_object());
  json_object_set_new(store, "path", json_sprintf("%s/shop.db", a->studio_tmp));
  json_t *http = json_object_get(root, "http");
  if (!json_is_object(http)) json_object_set_new(root, "http", http = json_object());
  json_object_set_new(http, "enabled", json_true());
  if (a->o->listen) json_object_set_new(http, "listen", json_string(a->o->listen));
  else if (!json_object_get(http, "listen")) json_object_set_new(http, "listen", json_string("127.0.0.1:8080"));
  const rt_plugin *const *all = a->o->plugins ? a->o->plugins : rt_plugins;
  size_t n = 0;
  for (size_t i = 0; all[i] && n + 1 < RT_ARRAY_LEN(a->providers); i++)
    if (all[i]->kind == RT_PLUGIN_PROVIDER) a->providers[n++] = all[i];
  a->providers[n] = NULL;
  return RT_OK;
}

static int studio_start(app *a, char **err) {
  char shop[4096];
  const char *dir = realpath(a->o->shop_dir, shop) ? shop : a->o->shop_dir;
  rt_studio_opts so = {.loop = &a->loop, .e = a->e, .cfg = a->cfg, .httpd = a->httpd,
                       .shop_dir = dir, .real_store = a->real_store};
  int rc = rt_studio_new(&so, &a->studio, err);
  if (rc != RT_OK) return rc;
  /* The one line a marketer needs; the log keeps to warnings meanwhile. */
  const char *listen = rt_config_str(a->cfg, "http.listen", "127.0.0.1:8080");
  const char *colon = strrchr(listen, ':');
  size_t hl = colon ? (size_t)(colon - listen) : 0;
  bool any = hl == 0 || (hl == 1 && listen[0] == '*') || strncmp(listen, "0.0.0.0", hl) == 0;
  printf("shopbot studio: open http://%.*s:%d/ in a browser (a private copy of %s: its own "
         "store and clock; Ctrl-C stops)\n", any ? 9 : (int)hl, any ? "127.0.0.1" : listen,
         rt_httpd_port(a->httpd), rt_config_str(a->cfg, "name", "the shop"));
  fflush(stdout);
  return RT_OK;
}

int rt_app_run(const rt_app_opts *o) {
  app a;
  memset(&a, 0, sizeof a);
  a.o = o;
  a.lock_fd = -1;
  const char *cmd = o->cmd;
  if (rt_app_load_config(cmd, o->shop_dir, &a.cfg) != RT_OK) return 1;
  /* Talking to a person in a terminal: only warnings and errors go to the
   * same screen (set log.level to debug/info and redirect stderr to see
   * every event). */
  a.tty_chat = o->chat_user && isatty(0) && isatty(2);
  if ((a.tty_chat || (o->studio && isatty(2))) && rt_log_get_level() < RT_LOG_WARN)
    rt_log_set_level(RT_LOG_WARN);
  char *err = NULL;
  if (o->studio && studio_setup(&a, &err) != RT_OK) {
    fprintf(stderr, "shopbot %s: %s\n", cmd, err);
    free(err);
    rt_config_free(a.cfg);
    return 1;
  }
  /* The studio touches nothing of the shop's store: a bot may serve it. */
  if (!o->studio && take_lock(cmd, a.cfg, &a.lock_fd) != RT_OK) {
    rt_config_free(a.cfg);
    return 1;
  }
  uv_loop_init(&a.loop);
  int status = 0;
  create_plugins(&a);
  size_t npv = 0;
  rt_provider *const *pvs = rt_plugin_host_providers(a.plugins, &npv);
  rt_engine_opts eo = {.loop = &a.loop, .cfg = a.cfg, .http = rt_plugin_host_http(a.plugins),
                       .providers = pvs, .nproviders = npv, .figures = today_figures,
                       .figures_ud = a.cfg};
  if (o->studio) {
    /* Test mode: a virtual clock the page moves (from now, to the
     * minute, as a saved transcript's clock: lines read it), no fsync. */
    eo.test_mode = true;
    eo.clock_ms = wall_ms() / 60000 * 60000;
  }
  if (rt_engine_new(&eo, &a.e, &err) != RT_OK) {
    fprintf(stderr, "shopbot %s: %s\n", cmd, err);
    free(err);
    a.e = NULL;
    status = 1;
    goto out;
  }
  a.reload = rt_reload_new(&a.loop, a.cfg, a.e);
  rt_reload_on_result(a.reload, tell_reload, &a);
  char qname[256], qdir[1024];
  rt_log_quote(rt_config_str(a.cfg, "name", "?"), qname, sizeof qname);
  rt_log_quote(rt_engine_flows_dir(a.e), qdir, sizeof qdir);
  rt_log(RT_LOG_INFO, "start", "shop=%s flows=%s version=%s pid=%d", qname, qdir,
         rt_engine_flows_version(a.e), (int)getpid());
  if (start_httpd(&a, &err) != RT_OK || (o->studio && studio_start(&a, &err) != RT_OK)) {
    if (!o->chat_user) {
      fprintf(stderr, "shopbot %s: %s\n", cmd, err);
      /* Most often a studio or a bot started before, still running. */
      if (o->studio && strstr(err, "address in use"))
        fprintf(stderr, "shopbot studio: another program listens there (a studio or a bot started "
                        "earlier?): stop it, or give another address: --listen 127.0.0.1:8081\n");
      free(err);
      status = 1;
      goto out;
    }
    /* chat works without the status page; say so and go on. */
    char q[1024];
    rt_log_quote(err, q, sizeof q);
    rt_log(RT_LOG_WARN, "http-disabled", "err=%s", q);
    free(err);
    err = NULL;
  }
  stop_signals_install(&a);
  uv_signal_init(&a.loop, &a.sighup);
  a.sighup.data = &a;
  uv_signal_start(&a.sighup, on_sighup, SIGHUP);
  uv_timer_init(&a.loop, &a.eof_check);
  a.eof_check.data = &a;
  /* Plugins start before the engine, so a channel that is ready at once
   * is there for the first deliveries (whatever the last run left). */
  rt_plugin_host_start(a.plugins, rt_engine_store(a.e), a.httpd);
  if (a.e) rt_engine_start(a.e);
  if (a.e && !a.stopping) start_watch(&a);
  uv_run(&a.loop, UV_RUN_DEFAULT);
out:
  app_stop(&a);
  uv_run(&a.loop, UV_RUN_DEFAULT);
  if (uv_loop_close(&a.loop) != 0) rt_log(RT_LOG_WARN, "loop-not-empty", NULL);
  alarm(0);   /* stopped in time: the grace alarm has nothing left to do */
  for (size_t i = 0; i < RT_ARRAY_LEN(a.watch_dirs); i++) free(a.watch_dirs[i]);
  if (a.studio_tmp) nftw(a.studio_tmp, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
  free(a.studio_tmp);
  free(a.real_store);
  free(a.files_dir);
  rt_config_free(a.cfg);
  if (a.lock_fd >= 0) close(a.lock_fd);
  return status;
}

/* ---- check ---- */

int rt_app_check(const char *shop, bool print) {
  rt_config *cfg;
  rt_log_set_level(RT_LOG_OFF);
  char *schema = rt_paths_schema("shop.schema.json"), *err = NULL;
  int rc = rt_config_load(shop, schema, &cfg, &err);
  free(schema);
  if (rc != RT_OK) {
    fprintf(stderr, "%s\n", err);
    free(err);
    return 1;
  }
  /* What the schema cannot say about http.listen, said by the parser that
   * `run` uses, with its message. */
  if (rt_config_bool(cfg, "http.enabled", 1) &&
      rt_httpd_check_listen(rt_config_str(cfg, "http.listen", "127.0.0.1:8080"), &err) != RT_OK) {
    fprintf(stderr, "shop.json: $.http.listen: %s\n", err);
    free(err);
    rt_config_free(cfg);
    return 1;
  }
  /* What each plugin says of its section beyond its schema. */
  if (rt_plugin_check(cfg, NULL, &err) != RT_OK) {
    fprintf(stderr, "%s\n", err);
    free(err);
    rt_config_free(cfg);
    return 1;
  }
  printf("shop.json: ok (%s)\n", rt_config_str(cfg, "name", "?"));
  if (print) {
    char *r = rt_config_redacted(cfg);
    printf("%s\n", r);
    free(r);
  }
  /* Compile the flows exactly as the bot would, in a throwaway store. */
  char tmpl[] = "/tmp/shopbot-check-XXXXXX";
  char *tmp = mkdtemp(tmpl);
  char *db = rt_xasprintf("%s/check.db", tmp ? tmp : "/tmp");
  uv_loop_t loop;
  uv_loop_init(&loop);
  rt_engine *e = NULL;
  rt_engine_opts eo = {.loop = &loop, .cfg = cfg, .store_path = db, .test_mode = true};
  rc = rt_engine_new(&eo, &e, &err);
  if (rc != RT_OK) {
    fprintf(stderr, "%s\n", err);
    free(err);
  } else {
    json_t *d = rt_engine_describe(e);
    printf("flows: ok, %zu flows, version %s (%s)\n", json_array_size(d),
           rt_engine_flows_version(e), rt_engine_flows_dir(e));
    size_t i;
    json_t *f;
    json_array_foreach(d, i, f) {
      printf("  %s (%s):", json_string_value(json_object_get(f, "name")),
             json_string_value(json_object_get(f, "file")));
      size_t k;
      json_t *s;
      json_array_foreach(json_object_get(f, "steps"), k, s) printf(" %s", json_string_value(s));
      printf("\n");
    }
    json_decref(d);
    rt_engine_close(e, NULL, NULL);
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  unlink(db);
  char *wal = rt_xasprintf("%s-wal", db), *shm = rt_xasprintf("%s-shm", db);
  unlink(wal);
  unlink(shm);
  free(wal);
  free(shm);
  if (tmp) rmdir(tmp);
  free(db);
  rt_config_free(cfg);
  return rc == RT_OK ? 0 : 1;
}
