/* main.c -- the shopbot command line: run, chat, test, check, import,
 * campaign, stats. The only file outside the rtcore library. */
#include "cmd_new.h"
#include "cmd_tools.h"
#include "config.h"
#include "console/console.h"
#include "engine.h"
#include "http_server.h"
#include "log.h"
#include "paths.h"
#include "reload.h"
#include "rt.h"
#include "transcript.h"
#include "watch.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

static const char usage[] =
  "usage: shopbot COMMAND [ARGS]\n"
  "\n"
  "  run      SHOP_DIR                 run the shop's bot\n"
  "  chat     SHOP_DIR [--user ID]     talk to the flows in the terminal\n"
  "  test     SHOP_DIR [FILES...]      run transcript tests of the flows\n"
  "  check    SHOP_DIR                 validate shop.json and compile the flows\n"
  "  import   SHOP_DIR FILE.csv        import customers and orders\n"
  "  campaign SHOP_DIR retention|gifts schedule check-ins\n"
  "  stats    SHOP_DIR                 campaign funnels, leads, LLM cost\n"
  "  new      SHOP_DIR [--name TEXT]   make a new shop folder from a persona\n"
  "\n"
  "  shopbot COMMAND --help   help on one command\n"
  "  shopbot --version        print the version\n";

static int bad_usage(const char *cmd, const char *msg, const char *u) {
  fprintf(stderr, "shopbot %s: %s\n%s", cmd, msg, u);
  return 2;
}

static bool is_help(const char *a) { return strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0; }

/* ---- shared setup ---- */

typedef struct app {
  uv_loop_t loop;
  rt_config *cfg;
  rt_engine *e;
  rt_reload *reload;
  rt_httpd *httpd;
  rt_watch *watch;
  rt_console *console;
  rt_plugin_env chan_env;     /* lent to the channels until they are closed */
  uv_signal_t sighup;
  uv_async_t stop_async;       /* SIGINT/SIGTERM, from our own handler */
  uv_timer_t eof_check;
  int lock_fd;
  bool stopping, eof;
  int exit_code;
  int closing;
} app;

static int load_config(const char *cmd, const char *shop_dir, rt_config **cfg) {
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

static void on_health(void *ud, rt_httpd_req *req) {
  app *a = ud;
  json_t *h = rt_engine_health(a->e);
  char *body = json_dumps(h, JSON_COMPACT);
  rt_httpd_respond(req, json_is_true(json_object_get(h, "ok")) ? 200 : 503,
                   "application/json", body, body ? strlen(body) : 0);
  free(body);
  json_decref(h);
}

static void on_metrics(void *ud, rt_httpd_req *req) {
  app *a = ud;
  char *body = rt_engine_metrics(a->e);
  rt_httpd_respond(req, 200, "text/plain; version=0.0.4", body, body ? strlen(body) : 0);
  free(body);
}

/* See on_stop_signal. */
static volatile sig_atomic_t stop_requested;
static uv_async_t *volatile stop_async_now;

static void closed_one(void *ud) {
  app *a = ud;
  a->closing--;
}

static void closed_handle(uv_handle_t *h) { closed_one(h->data); }

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
  if (a->httpd) { a->closing++; rt_httpd_close(a->httpd, closed_one, a); a->httpd = NULL; }
  if (a->reload) {
    if (a->e) rt_engine_set_reloader(a->e, NULL, NULL);
    a->closing++;
    rt_reload_close(a->reload, closed_one, a);
    a->reload = NULL;
  }
  /* Deliveries stop first, then the channels close (channel.h). */
  if (a->e) { a->closing++; rt_engine_close(a->e, closed_one, a); a->e = NULL; }
  if (a->console) {
    rt_channel *ch = rt_console_channel(a->console);
    a->closing++;
    ch->close(ch, closed_one, a);
    a->console = NULL;
  }
}

static void on_signal(uv_signal_t *s, int signum) {
  app *a = s->data;
  (void)signum;
  char *err = NULL;
  rt_engine_reload(a->e, &err);
  free(err);
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
  if (rt_engine_idle(a->e)) app_stop(a);
}

static void on_eof(void *ud) {
  app *a = ud;
  a->eof = true;
  uv_timer_start(&a->eof_check, eof_tick, 1, 10);
}

/* chat in a terminal: a plain line about each reload, since the log
 * level there is kept at warn so logs do not drown the conversation. */
static void tell_reload(void *ud, int rc, const char *err) {
  app *a = ud;
  if (rc == RT_OK)
    fprintf(stderr, "-- сценарии обновлены (версия %s)\n", rt_engine_flows_version(a->e));
  else
    fprintf(stderr, "-- сценарии НЕ обновлены, работают прежние: %s\n", err ? err : "?");
}

/* What a channel may do to the host (channel.h's rt_plugin_env). */
static int chan_receive(void *host, const rt_event_in *ev, void (*ack)(void *, int), void *ud) {
  app *a = host;
  return a->e ? rt_engine_receive(a->e, ev, ack, ud) : RT_EINVAL;
}

static int chan_command(void *host, const char *cmd, char **err) {
  app *a = host;
  if (a->e && strcmp(cmd, "reload") == 0) return rt_engine_reload(a->e, err);
  *err = rt_xasprintf("unknown command: %s", cmd);
  return RT_EINVAL;
}

static void chan_started(void *ud, int status, const char *err) {
  app *a = ud;
  if (status == RT_OK) return;
  fprintf(stderr, "shopbot: console: %s\n", err ? err : "cannot start");
  app_stop(a);
}

static int app_run(const char *cmd, const char *shop_dir, const char *user) {
  app a;
  memset(&a, 0, sizeof a);
  a.lock_fd = -1;
  if (load_config(cmd, shop_dir, &a.cfg) != RT_OK) return 1;
  /* Talking to a person in a terminal: only warnings and errors go to the
   * same screen (set log.level to debug/info and redirect stderr to see
   * every event). */
  bool tty_chat = user && isatty(0) && isatty(2);
  if (tty_chat && rt_log_get_level() < RT_LOG_WARN) rt_log_set_level(RT_LOG_WARN);
  if (take_lock(cmd, a.cfg, &a.lock_fd) != RT_OK) {
    rt_config_free(a.cfg);
    return 1;
  }
  uv_loop_init(&a.loop);
  char *err = NULL;
  rt_engine_opts eo = {.loop = &a.loop, .cfg = a.cfg};
  int rc = rt_engine_new(&eo, &a.e, &err);
  if (rc != RT_OK) {
    fprintf(stderr, "shopbot %s: %s\n", cmd, err);
    free(err);
    goto out;
  }
  a.reload = rt_reload_new(&a.loop, a.cfg, a.e);
  rt_engine_set_reloader(a.e, rt_reload_run, a.reload);
  char qname[256], qdir[1024];
  rt_log_quote(rt_config_str(a.cfg, "name", "?"), qname, sizeof qname);
  rt_log_quote(rt_engine_flows_dir(a.e), qdir, sizeof qdir);
  rt_log(RT_LOG_INFO, "start", "shop=%s flows=%s version=%s pid=%d", qname, qdir,
         rt_engine_flows_version(a.e), (int)getpid());
  if (user) {
    a.console = rt_console_new(user, on_eof, &a);
    rt_engine_add_channel(a.e, rt_console_channel(a.console));
  } else if (rt_config_bool(a.cfg, "channels.console.enabled", 1)) {
    /* run: the console channel prints what the bot sends (no stdin). */
    a.console = rt_console_new("-", NULL, NULL);
    rt_engine_add_channel(a.e, rt_console_channel(a.console));
  }
  if (rt_config_bool(a.cfg, "http.enabled", 1)) {
    const char *listen = rt_config_str(a.cfg, "http.listen", "127.0.0.1:8080");
    rt_httpd_opts ho = {.listen = listen,
                        .max_connections = (int)rt_config_int(a.cfg, "http.max_connections", 0)};
    if (rt_httpd_start(&a.loop, &ho, &a.httpd, &err) != RT_OK) {
      if (!user) {
        fprintf(stderr, "shopbot %s: %s\n", cmd, err);
        free(err);
        app_stop(&a);
        uv_run(&a.loop, UV_RUN_DEFAULT);
        rc = 1;
        goto out;
      }
      /* chat works without the status page; say so and go on. */
      rt_log(RT_LOG_WARN, "http-disabled", "err=\"%s\"", err);
      free(err);
      err = NULL;
    } else {
      rt_httpd_route(a.httpd, "GET", "/healthz", on_health, &a);
      rt_httpd_route(a.httpd, "GET", "/metrics", on_metrics, &a);
      rt_log(RT_LOG_INFO, "http", "listen=%s port=%d", listen, rt_httpd_port(a.httpd));
    }
  }
  if (rt_watch_new(&a.loop, a.e, rt_engine_flows_dir(a.e),
                   (int)rt_config_int(a.cfg, "flows.reload_debounce_ms", 15), &a.watch, &err) != RT_OK) {
    rt_log(RT_LOG_WARN, "watch-disabled", "err=\"%s\"", err);
    free(err);
    err = NULL;
  } else if (tty_chat) {
    rt_watch_on_reload(a.watch, tell_reload, &a);
  }
  stop_signals_install(&a);
  uv_signal_init(&a.loop, &a.sighup);
  a.sighup.data = &a;
  uv_signal_start(&a.sighup, on_signal, SIGHUP);
  uv_timer_init(&a.loop, &a.eof_check);
  a.eof_check.data = &a;
  rt_engine_start(a.e);
  a.chan_env = (rt_plugin_env){.loop = &a.loop, .name = "console", .receive = chan_receive,
                                .command = chan_command, .host = &a};
  if (a.console) {
    rt_channel *ch = rt_console_channel(a.console);
    ch->start(ch, &a.chan_env, chan_started, &a);
  }
  uv_run(&a.loop, UV_RUN_DEFAULT);
  rc = RT_OK;
out:
  if (a.e || a.console) app_stop(&a);
  uv_run(&a.loop, UV_RUN_DEFAULT);
  if (uv_loop_close(&a.loop) != 0) rt_log(RT_LOG_WARN, "loop-not-empty", NULL);
  rt_config_free(a.cfg);
  if (a.lock_fd >= 0) close(a.lock_fd);
  return rc == RT_OK ? 0 : 1;
}

/* ---- commands ---- */

static const char run_usage[] =
  "usage: shopbot run SHOP_DIR\n"
  "\n"
  "Runs the shop's bot: channels from shop.json, durable timers, the\n"
  "outbox, /healthz and /metrics on http.listen, and hot reload of the\n"
  "flows folder. SIGHUP reloads flows; SIGINT/SIGTERM stop cleanly.\n";

static int cmd_run(int argc, char **argv) {
  const char *shop = NULL;
  for (int i = 1; i < argc; i++) {
    if (is_help(argv[i])) { fputs(run_usage, stdout); return 0; }
    if (argv[i][0] == '-') return bad_usage("run", "unknown option", run_usage);
    if (shop) return bad_usage("run", "too many arguments", run_usage);
    shop = argv[i];
  }
  if (!shop) return bad_usage("run", "SHOP_DIR is required", run_usage);
  return app_run("run", shop, NULL);
}

static const char chat_usage[] =
  "usage: shopbot chat SHOP_DIR [--user ID]\n"
  "\n"
  "Talk to the shop's flows in the terminal: your lines go to the bot as a\n"
  "customer's messages, the bot's messages come back one per line\n"
  "(continuation lines indented). Works in a pipe, so it can be scripted;\n"
  "end of input ends it once every reply is out. The store is the shop's,\n"
  "so the conversation continues across runs, and flows reload on edit.\n"
  "\n"
  "  --user ID   chat as this customer (default: local); 1-512 characters\n"
  "              of A-Z a-z 0-9 . _ - + @\n"
  "\n"
  "Lines starting with a slash:\n"
  "  /manager take      act as the shop's manager taking the chat\n"
  "  /manager release   hand the chat back to the bot\n"
  "  /reload            reload the flows now\n";

static int cmd_chat(int argc, char **argv) {
  const char *shop = NULL, *user = "local";
  for (int i = 1; i < argc; i++) {
    if (is_help(argv[i])) { fputs(chat_usage, stdout); return 0; }
    if (strcmp(argv[i], "--user") == 0) {
      if (++i >= argc || !*argv[i]) return bad_usage("chat", "--user needs an ID", chat_usage);
      user = argv[i];
    } else if (strncmp(argv[i], "--user=", 7) == 0) {
      user = argv[i] + 7;
    } else if (argv[i][0] == '-') {
      return bad_usage("chat", "unknown option", chat_usage);
    } else if (shop) {
      return bad_usage("chat", "too many arguments", chat_usage);
    } else {
      shop = argv[i];
    }
  }
  if (!shop) return bad_usage("chat", "SHOP_DIR is required", chat_usage);
  const char *bad_user = rt_console_user_problem(user);
  if (bad_user) return bad_usage("chat", bad_user, chat_usage);
  return app_run("chat", shop, user);
}

static const char test_usage[] =
  "usage: shopbot test SHOP_DIR [FILES...] [-v]\n"
  "\n"
  "Runs transcript tests (*.chat) against the shop's flows, each with a\n"
  "fresh temporary store and a virtual clock. Without FILES it runs\n"
  "SHOP_DIR/tests/*.chat (tests.dir in shop.json). A FILE may be a folder.\n"
  "Prints PASS/FAIL per file, and for a failure the line, what was\n"
  "expected and what came. Exit status 1 if any test failed.\n"
  "The format: docs/transcripts.md.\n"
  "\n"
  "  -v, --verbose   print the conversations as they run\n";

static int cmp_str(const void *x, const void *y) {
  return strcmp(*(char *const *)x, *(char *const *)y);
}

/* Appends the .chat files of a folder (sorted), or the file itself. */
static void collect(const char *path, char ***files, size_t *n) {
  struct stat st;
  if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
    DIR *d = opendir(path);
    struct dirent *de;
    size_t start = *n;
    while (d && (de = readdir(d))) {
      size_t len = strlen(de->d_name);
      if (len > 5 && strcmp(de->d_name + len - 5, ".chat") == 0) {
        *files = rt_xrealloc(*files, (*n + 1) * sizeof **files);
        (*files)[(*n)++] = rt_xasprintf("%s/%s", path, de->d_name);
      }
    }
    if (d) closedir(d);
    if (*n > start) qsort(*files + start, *n - start, sizeof **files, cmp_str);
  } else {
    *files = rt_xrealloc(*files, (*n + 1) * sizeof **files);
    (*files)[(*n)++] = rt_xstrdup(path);
  }
}

static int cmd_test(int argc, char **argv) {
  const char *shop = NULL;
  bool verbose = false;
  char **files = NULL;
  size_t n = 0;
  for (int i = 1; i < argc; i++) {
    if (is_help(argv[i])) { fputs(test_usage, stdout); return 0; }
    if (strcmp(argv[i], "-v") == 0 || strcmp(argv[i], "--verbose") == 0) verbose = true;
    else if (argv[i][0] == '-') { for (size_t k = 0; k < n; k++) free(files[k]); free(files);
                                  return bad_usage("test", "unknown option", test_usage); }
    else if (!shop) shop = argv[i];
    else {
      /* A file may be named from here or from the shop folder
       * (tests/lead.chat), as a marketer would write it. */
      struct stat st;
      char *alt = rt_xasprintf("%s/%s", shop, argv[i]);
      collect(stat(argv[i], &st) != 0 && stat(alt, &st) == 0 ? alt : argv[i], &files, &n);
      free(alt);
    }
  }
  if (!shop) return bad_usage("test", "SHOP_DIR is required", test_usage);
  rt_log_set_level(verbose ? RT_LOG_INFO : RT_LOG_OFF);
  if (n == 0) {
    rt_config *cfg;
    if (load_config("test", shop, &cfg) != RT_OK) return 1;
    rt_log_set_level(verbose ? RT_LOG_INFO : RT_LOG_OFF);
    char *dir = rt_config_path(cfg, rt_config_str(cfg, "tests.dir", "tests"));
    collect(dir, &files, &n);
    free(dir);
    rt_config_free(cfg);
  }
  if (n == 0) {
    fprintf(stderr, "shopbot test: no transcripts (*.chat) found\n");
    free(files);
    return 1;
  }
  int passed = 0, failed = 0;
  rt_transcript_opts o = {.shop_dir = shop, .verbose = verbose, .out = stdout};
  for (size_t i = 0; i < n; i++) {
    int rc = rt_transcript_run(&o, files[i]);
    if (rc == 0) passed++;
    else failed++;
    fflush(stdout);
    free(files[i]);
  }
  free(files);
  printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}

static const char check_usage[] =
  "usage: shopbot check SHOP_DIR [--print-config]\n"
  "\n"
  "Validates shop.json against schema/shop.schema.json and compiles every\n"
  "flow without starting the bot. Prints what is wrong with file, line or\n"
  "JSON path; exit status 1 if anything is. Secrets are never printed.\n"
  "\n"
  "  --print-config   print the effective config (defaults filled, secrets ***)\n";

static int cmd_check(int argc, char **argv) {
  const char *shop = NULL;
  bool print = false;
  for (int i = 1; i < argc; i++) {
    if (is_help(argv[i])) { fputs(check_usage, stdout); return 0; }
    if (strcmp(argv[i], "--print-config") == 0) print = true;
    else if (argv[i][0] == '-') return bad_usage("check", "unknown option", check_usage);
    else if (shop) return bad_usage("check", "too many arguments", check_usage);
    else shop = argv[i];
  }
  if (!shop) return bad_usage("check", "SHOP_DIR is required", check_usage);
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

int main(int argc, char **argv) {
  signal(SIGPIPE, SIG_IGN);
  if (argc < 2) {
    fputs(usage, stderr);
    return 2;
  }
  const char *cmd = argv[1];
  if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "version") == 0) {
    printf("shopbot %s\n", RT_VERSION);
    return 0;
  }
  if (is_help(cmd) || strcmp(cmd, "help") == 0) {
    fputs(usage, stdout);
    return 0;
  }
  static const struct { const char *name; int (*fn)(int, char **); } cmds[] = {
    {"run", cmd_run}, {"chat", cmd_chat}, {"test", cmd_test}, {"check", cmd_check},
    {"import", rt_cmd_import}, {"campaign", rt_cmd_campaign}, {"stats", rt_cmd_stats},
    {"new", rt_cmd_new},
  };
  for (size_t i = 0; i < RT_ARRAY_LEN(cmds); i++)
    if (strcmp(cmd, cmds[i].name) == 0) return cmds[i].fn(argc - 1, argv + 1);
  fprintf(stderr, "shopbot: unknown command '%s'\n%s", cmd, usage);
  return 2;
}
