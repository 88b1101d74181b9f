/* test_plugin.c -- the plugin host (runtime/plugin.c) with test plugins:
 * create and start in list order, a channel reaches deliveries only after
 * its start answered, a failing create or start is logged and in health
 * while the others run, close in reverse order each after the previous
 * one's done, plugin values survive a restart; the plugins' schema
 * fragments merged into shop.json validation; and a whole `run` process
 * (app.c) with a plugin whose start fails: /healthz names it with 503 and
 * the rest of the bot serves. */
#include "app.h"
#include "buf.h"
#include "channel.h"
#include "config.h"
#include "http_client.h"
#include "http_server.h"
#include "integration.h"
#include "log.h"
#include "store.h"
#include "t.h"
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- test plugins: each records what the host did to it ---- */

static char trace[1024];

static void note(const char *what, const char *name) {
  size_t n = strlen(trace);
  snprintf(trace + n, sizeof trace - n, "%s%s:%s", n ? " " : "", what, name);
}

typedef struct {
  rt_channel ch;
  uv_timer_t t;              /* an asynchronous start or close */
  void (*start_done)(void *, int, const char *);
  void (*close_done)(void *);
  void *ud;
  const rt_plugin_env *env;
  bool async, fail_start;
} tplug;

static void tp_send(rt_channel *ch, const rt_out_msg *m, rt_send_done done, void *ud) {
  (void)ch; (void)m;
  done(ud, &(rt_send_result){.verdict = RT_SEND_DELIVERED});
}

static void tp_start_later(uv_timer_t *t) {
  tplug *p = t->data;
  note("started", p->ch.name);
  p->start_done(p->ud, RT_OK, NULL);
}

static void tp_start(rt_channel *ch, const rt_plugin_env *env,
                     void (*done)(void *, int, const char *), void *ud) {
  tplug *p = ch->impl;
  p->env = env;
  note("start", ch->name);
  if (p->fail_start) {
    done(ud, RT_EINVAL, "the service refused the token (401 Unauthorized)");
    return;
  }
  if (!p->async) {
    done(ud, RT_OK, NULL);
    return;
  }
  p->start_done = done;
  p->ud = ud;
  uv_timer_init(env->loop, &p->t);
  p->t.data = p;
  uv_timer_start(&p->t, tp_start_later, 20, 0);
}

static void tp_freed(uv_handle_t *h) {
  tplug *p = h->data;
  note("closed", p->ch.name);
  void (*done)(void *) = p->close_done;
  void *ud = p->ud;
  free(p);
  done(ud);
}

static void tp_close(rt_channel *ch, void (*done)(void *), void *ud) {
  tplug *p = ch->impl;
  note("close", ch->name);
  p->close_done = done;
  p->ud = ud;
  if (p->async) {   /* answers from the loop, after its handle closed */
    uv_close((uv_handle_t *)&p->t, tp_freed);
    return;
  }
  note("closed", ch->name);
  free(p);
  done(ud);
}

static tplug *tp_new(const char *name) {
  tplug *p = rt_xcalloc(1, sizeof *p);
  p->ch = (rt_channel){.name = name, .impl = p, .start = tp_start, .send = tp_send,
                       .close = tp_close};
  return p;
}

static int create_sync(const json_t *conf, rt_channel **ch, rt_provider **pv, char **err) {
  (void)conf; (void)pv; (void)err;
  *ch = &tp_new("one")->ch;
  return RT_OK;
}
static int create_async(const json_t *conf, rt_channel **ch, rt_provider **pv, char **err) {
  (void)pv; (void)err;
  tplug *p = tp_new("two");
  p->async = true;
  /* The section with its defaults filled reaches create. */
  if (json_integer_value(json_object_get(conf, "n")) != 7) note("bad-conf", "two");
  *ch = &p->ch;
  return RT_OK;
}
static int create_failing_start(const json_t *conf, rt_channel **ch, rt_provider **pv,
                                char **err) {
  (void)conf; (void)pv; (void)err;
  tplug *p = tp_new("broken");
  p->fail_start = true;
  *ch = &p->ch;
  return RT_OK;
}
static int create_refused(const json_t *conf, rt_channel **ch, rt_provider **pv, char **err) {
  (void)conf; (void)ch; (void)pv;
  *err = rt_xstrdup("token: not a bot token");
  return RT_EINVAL;
}
static bool never(const json_t *conf) { (void)conf; return false; }

static const rt_plugin p_one = {.name = "one", .version = "1.0.0", .kind = RT_PLUGIN_CHANNEL,
                                .schema_json = "{}", .no_http = true, .create = create_sync};
static const rt_plugin p_two = {.name = "two", .version = "2.0.0", .kind = RT_PLUGIN_CHANNEL,
                                .schema_json = "{}", .create = create_async};
static const rt_plugin p_broken = {.name = "broken", .version = "0.1.0",
                                   .kind = RT_PLUGIN_CHANNEL, .schema_json = "{}",
                                   .no_http = true, .create = create_failing_start};
static const rt_plugin p_refused = {.name = "refused", .version = "0.1.0",
                                    .kind = RT_PLUGIN_CHANNEL, .schema_json = "{}",
                                    .no_http = true, .create = create_refused};
static const rt_plugin p_off = {.name = "off", .version = "0.1.0", .kind = RT_PLUGIN_CHANNEL,
                                .schema_json = "{}", .wanted = never, .create = create_sync};

/* ---- a shop folder and its config ---- */

static char tmpdir[256];

static void write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  fputs(text, f);
  fclose(f);
}

static rt_config *load(const char *json, char **err) {
  char path[512];
  snprintf(path, sizeof path, "%s/shop.json", tmpdir);
  write_file(path, json);
  snprintf(path, sizeof path, "%s/schema/shop.schema.json", RT_SOURCE_DIR);
  rt_config *c = NULL;
  *err = NULL;
  rt_config_load(tmpdir, path, &c, err);
  return c;
}

/* ---- the host ---- */

static int ready_count;
static char ready_names[256];
static int64_t host_now(void *ud) { (void)ud; return 1700000000000; }
static int host_receive(void *ud, const rt_event_in *ev, void (*ack)(void *, int), void *a) {
  (void)ud; (void)ev; (void)ack; (void)a;
  return RT_OK;
}
static void host_ready(void *ud, rt_channel *ch) {
  (void)ud;
  ready_count++;
  size_t n = strlen(ready_names);
  snprintf(ready_names + n, sizeof ready_names - n, "%s%s", n ? "," : "", ch->name);
}
static void closed_flag(void *ud) { *(int *)ud = 1; }

T(order_failure_and_health) {
  trace[0] = ready_names[0] = '\0';
  ready_count = 0;
  char *err;
  rt_config *cfg = load("{\"name\": \"t\", \"persona\": {}}", &err);
  CHECK(cfg != NULL);
  if (!cfg) { free(err); return; }
  /* p_two reads its section with a default the host does not know about:
   * here the test puts it in the config as validation would have. */
  json_object_set_new(json_object_get(rt_config_json(cfg), "channels"), "two",
                      json_pack("{s:i}", "n", 7));
  uv_loop_t loop;
  uv_loop_init(&loop);
  char files[512];
  snprintf(files, sizeof files, "%s/data/files", tmpdir);
  const rt_plugin *const list[] = {&p_one, &p_refused, &p_two, &p_broken, &p_off, NULL};
  rt_plugin_host_opts o = {.loop = &loop, .cfg = cfg, .plugins = list, .files_dir = files,
                           .now_ms = host_now, .receive = host_receive,
                           .channel_ready = host_ready};
  rt_plugin_host *h = rt_plugin_host_new(&o);
  CHECK_INT(rt_plugin_host_create(h, false), 1);   /* refused */
  char sp[512];
  char *sdir = rt_xasprintf("%s/schema/sql", RT_SOURCE_DIR);
  rt_store_opts so = {.sql_dir = sdir, .sync_off = true};
  rt_store *st = NULL;
  snprintf(sp, sizeof sp, "%s/kv.db", tmpdir);
  CHECK_INT(rt_store_open(sp, &so, &st, &err), RT_OK);
  rt_plugin_host_start(h, st, NULL);
  /* Starts are called in list order; the synchronous one is ready at
   * once, the asynchronous one only when its start answers. */
  CHECK_STR(trace, "start:one start:two start:broken");
  CHECK_STR(ready_names, "one");
  bool ok;
  json_t *hj = rt_plugin_host_health(h, &ok);
  CHECK(!ok);
  CHECK_STR(json_string_value(json_object_get(json_object_get(hj, "two"), "state")), "starting");
  CHECK_STR(json_string_value(json_object_get(json_object_get(hj, "broken"), "state")), "failed");
  CHECK_STR(json_string_value(json_object_get(json_object_get(hj, "broken"), "problem")),
            "cannot start: the service refused the token (401 Unauthorized)");
  CHECK_STR(json_string_value(json_object_get(json_object_get(hj, "refused"), "problem")),
            "cannot start: token: not a bot token");
  CHECK(json_object_get(hj, "off") == NULL);
  json_decref(hj);
  while (ready_count < 2) uv_run(&loop, UV_RUN_ONCE);
  CHECK_STR(ready_names, "one,two");
  CHECK_STR(trace, "start:one start:two start:broken started:two");
  hj = rt_plugin_host_health(h, &ok);
  CHECK_STR(json_string_value(json_object_get(json_object_get(hj, "two"), "state")), "running");
  CHECK_STR(json_string_value(json_object_get(json_object_get(hj, "two"), "version")), "2.0.0");
  json_decref(hj);
  /* Data folders exist before start; the env lends what plugin.h lists. */
  struct stat sb;
  char dd[600];
  snprintf(dd, sizeof dd, "%s/one", files);
  CHECK(stat(dd, &sb) == 0 && S_ISDIR(sb.st_mode));
  /* Close: reverse order, each close after the previous one's done. */
  trace[0] = '\0';
  int closed = 0;
  rt_plugin_host_close(h, closed_flag, &closed);
  while (!closed) uv_run(&loop, UV_RUN_ONCE);
  CHECK_STR(trace, "close:broken closed:broken close:two closed:two close:one closed:one");
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK_INT(uv_loop_close(&loop), 0);
  rt_store_close(st);
  free(sdir);
  rt_config_free(cfg);
}

/* ---- plugin values and health through the env ---- */

static const rt_plugin_env *last_env;
static void grab_start(rt_channel *ch, const rt_plugin_env *env,
                       void (*done)(void *, int, const char *), void *ud) {
  (void)ch;
  last_env = env;
  done(ud, RT_OK, NULL);
}
static void free_close(rt_channel *ch, void (*done)(void *), void *ud) {
  free(ch);
  done(ud);
}
static int create_grab(const json_t *conf, rt_channel **ch, rt_provider **pv, char **err) {
  (void)conf; (void)pv; (void)err;
  rt_channel *c = rt_xcalloc(1, sizeof *c);
  *c = (rt_channel){.name = "kv", .start = grab_start, .send = tp_send, .close = free_close};
  *ch = c;
  return RT_OK;
}
static const rt_plugin p_kv = {.name = "kv", .version = "1.0.0", .kind = RT_PLUGIN_CHANNEL,
                               .schema_json = "{}", .create = create_grab};

/* One run of a host with p_kv on the store at path: fn gets the env. */
static void with_kv(const char *path, void (*fn)(const rt_plugin_env *env, rt_plugin_host *h)) {
  char *err;
  rt_config *cfg = load("{\"name\": \"t\", \"persona\": {}}", &err);
  uv_loop_t loop;
  uv_loop_init(&loop);
  char *sdir = rt_xasprintf("%s/schema/sql", RT_SOURCE_DIR);
  rt_store_opts so = {.sql_dir = sdir, .sync_off = true};
  rt_store *st = NULL;
  CHECK_INT(rt_store_open(path, &so, &st, &err), RT_OK);
  const rt_plugin *const list[] = {&p_kv, NULL};
  char files[512];
  snprintf(files, sizeof files, "%s/data/files", tmpdir);
  rt_plugin_host_opts o = {.loop = &loop, .cfg = cfg, .plugins = list, .files_dir = files,
                           .now_ms = host_now, .receive = host_receive,
                           .channel_ready = host_ready};
  rt_plugin_host *h = rt_plugin_host_new(&o);
  rt_plugin_host_create(h, false);
  last_env = NULL;
  rt_plugin_host_start(h, st, NULL);
  CHECK(last_env != NULL);
  if (last_env) {
    CHECK(last_env->http != NULL);   /* p_kv does not say no_http */
    CHECK(json_is_object(last_env->conf));
    CHECK_STR(last_env->name, "kv");
    fn(last_env, h);
  }
  int closed = 0;
  rt_plugin_host_close(h, closed_flag, &closed);
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK(closed);
  CHECK_INT(uv_loop_close(&loop), 0);
  rt_store_close(st);
  free(sdir);
  rt_config_free(cfg);
}

static void kv_write(const rt_plugin_env *env, rt_plugin_host *h) {
  (void)h;
  CHECK(env->kv_get(env->host, env->name, "secret") == NULL);
  CHECK_INT(env->kv_set(env->host, env->name, "secret", "s3cr3t-значение"), RT_OK);
  CHECK_INT(env->kv_set(env->host, env->name, "offset", "41"), RT_OK);
  CHECK_INT(env->kv_set(env->host, env->name, "offset", "42"), RT_OK);
  CHECK_INT(env->kv_set(env->host, env->name, "gone", "x"), RT_OK);
  CHECK_INT(env->kv_set(env->host, env->name, "gone", NULL), RT_OK);
  /* health */
  bool ok;
  json_decref(rt_plugin_host_health(h, &ok));
  CHECK(ok);
  env->set_health(env->host, env->name, "webhook not set: check the public URL");
  json_t *hj = rt_plugin_host_health(h, &ok);
  CHECK(!ok);
  CHECK_STR(json_string_value(json_object_get(json_object_get(hj, "kv"), "problem")),
            "webhook not set: check the public URL");
  CHECK(json_is_false(json_object_get(json_object_get(hj, "kv"), "ok")));
  CHECK_STR(json_string_value(json_object_get(json_object_get(hj, "kv"), "error")),
            "webhook not set: check the public URL");
  json_decref(hj);
  env->set_health(env->host, env->name, NULL);
  json_decref(rt_plugin_host_health(h, &ok));
  CHECK(ok);
  CHECK_INT(env->now_ms(env->host), 1700000000000);
}

static void kv_read(const rt_plugin_env *env, rt_plugin_host *h) {
  (void)h;
  char *v = env->kv_get(env->host, env->name, "secret");
  CHECK_STR(v, "s3cr3t-значение");
  free(v);
  v = env->kv_get(env->host, env->name, "offset");
  CHECK_STR(v, "42");
  free(v);
  CHECK(env->kv_get(env->host, env->name, "gone") == NULL);
}

/* /metrics: a plugin's own series after set_metrics; a block that names
 * series outside shopbot_<plugin>_ is dropped (it could shadow the
 * engine's). */
static int metrics_calls;
static void kv_series(void *ud, rt_buf *out) {
  metrics_calls++;
  rt_buf_printf(out, "# HELP shopbot_kv_things_total Things.\n# TYPE shopbot_kv_things_total counter\n"
                     "shopbot_kv_things_total{kind=\"a\"} %d", *(int *)ud);
}
static void kv_bad_series(void *ud, rt_buf *out) {
  (void)ud;
  rt_buf_adds(out, "shopbot_kv_ok 1\nshopbot_events_processed_total 0\n");
}
static void kv_metrics(const rt_plugin_env *env, rt_plugin_host *h) {
  static int things = 41;
  rt_buf b = RT_BUF_INIT;
  rt_plugin_host_metrics(h, &b);
  CHECK_INT((int)b.len, 0);            /* nothing set yet */
  CHECK(env->set_metrics != NULL);
  env->set_metrics(env->host, env->name, kv_series, &things);
  things++;
  rt_plugin_host_metrics(h, &b);
  CHECK(strstr(rt_buf_str(&b), "# TYPE shopbot_kv_things_total counter\n") != NULL);
  CHECK(strstr(rt_buf_str(&b), "\nshopbot_kv_things_total{kind=\"a\"} 42\n") != NULL);  /* read now, line ended */
  rt_buf_free(&b);
  env->set_metrics(env->host, env->name, kv_bad_series, NULL);
  rt_plugin_host_metrics(h, &b);
  CHECK_INT((int)b.len, 0);
  rt_buf_free(&b);
  CHECK_INT(metrics_calls, 1);   /* called for each read, not cached */
}

T(plugin_metrics) {
  char path[512];
  snprintf(path, sizeof path, "%s/metrics.db", tmpdir);
  with_kv(path, kv_metrics);
}

/* Shutdown began: the store is about to close with the engine. */
static void kv_stopping(const rt_plugin_env *env, rt_plugin_host *h) {
  rt_plugin_host_stopping(h);
  CHECK(env->kv_get(env->host, env->name, "secret") == NULL);
  CHECK_INT(env->kv_set(env->host, env->name, "secret", "x"), RT_EINVAL);
  rt_event_in ev = {.chat_id = "c", .text = "late"};
  CHECK_INT(env->receive(env->host, &ev, NULL, NULL), RT_EINVAL);
}

T(values_survive_a_restart) {
  char path[512];
  snprintf(path, sizeof path, "%s/values.db", tmpdir);
  with_kv(path, kv_write);
  with_kv(path, kv_read);   /* a new store handle and host: a restart */
  with_kv(path, kv_stopping);
  with_kv(path, kv_read);   /* nothing was written after the stop began */
}

/* ---- schema fragments ---- */

T(fragments_merged_into_validation) {
  /* Every built-in plugin: a name, x.y.z, a fragment that parses. */
  for (const rt_plugin *const *pp = rt_plugins; *pp; pp++) {
    const rt_plugin *p = *pp;
    int a, b, c;
    char end;
    CHECK(p->name && *p->name);
    CHECK(p->version && sscanf(p->version, "%d.%d.%d%c", &a, &b, &c, &end) == 3);
    json_t *f = json_loads(p->schema_json, 0, NULL);
    CHECK(json_is_object(f));
    json_decref(f);
    CHECK(p->create != NULL);
  }
  char *err;
  rt_config *c = load("{\"name\": \"t\", \"persona\": {}, \"channels\": {\"console\": "
                      "{\"enabled\": \"yes\"}}}", &err);
  CHECK(c == NULL);
  CHECK_STR(err, "shop.json: $.channels.console.enabled: expected boolean, got string");
  free(err);
  c = load("{\"name\": \"t\", \"persona\": {}, \"channels\": {\"console\": {\"enabld\": true}}}",
           &err);
  CHECK(c == NULL);
  CHECK(err && strstr(err, "$.channels.console") && strstr(err, "enabld"));
  free(err);
  /* Defaults of a fragment are filled; sections of plugins not built stay
   * as free as before. */
  c = load("{\"name\": \"t\", \"persona\": {}, \"channels\": {\"whatsapp\": {\"anything\": 1}}}",
           &err);
  CHECK(c != NULL);
  if (c) {
    CHECK_INT(rt_config_bool(c, "channels.console.enabled", 0), 1);
    rt_config_free(c);
  }
  free(err);
  json_t *s = NULL;
  char sp[512];
  snprintf(sp, sizeof sp, "%s/schema/shop.schema.json", RT_SOURCE_DIR);
  CHECK_INT(rt_config_schema(sp, &s, &err), RT_OK);
  json_t *console = json_object_get(
      json_object_get(json_object_get(json_object_get(s, "properties"), "channels"), "properties"),
      "console");
  CHECK(json_object_get(json_object_get(console, "properties"), "enabled") != NULL);
  json_decref(s);
}

/* ---- rt_plugin_check ---- */

T(check_reports_the_section) {
  char *err;
  rt_config *cfg = load("{\"name\": \"t\", \"persona\": {}}", &err);
  const rt_plugin *const list[] = {&p_one, &p_refused, NULL};
  CHECK_INT(rt_plugin_check(cfg, list, &err), RT_EINVAL);
  CHECK_STR(err, "shop.json: $.channels.refused: token: not a bot token");
  free(err);
  const rt_plugin *const good[] = {&p_one, &p_off, NULL};
  CHECK_INT(rt_plugin_check(cfg, good, &err), RT_OK);
  rt_config_free(cfg);
}

/* ---- a whole run: app.c with a plugin whose start fails ----
 *
 * The prober plugin, once started, asks the bot's own /healthz through the
 * HTTP client it was lent, keeps the answer and stops the process with
 * SIGTERM, as an operator would. */

static int probe_status;
static char *probe_body;
static const rt_plugin_env *probe_env;

static void probe_answer(rt_http_resp *r, void *ud) {
  (void)ud;
  probe_status = r->status;
  probe_body = rt_xstrdup(r->body);
  kill(getpid(), SIGTERM);
}

static void probe_start(rt_channel *ch, const rt_plugin_env *env,
                        void (*done)(void *, int, const char *), void *ud) {
  (void)ch;
  probe_env = env;
  done(ud, RT_OK, NULL);
  char url[128];
  snprintf(url, sizeof url, "http://127.0.0.1:%d/healthz", rt_httpd_port(env->httpd));
  rt_http_request(env->http, &(rt_http_opts){.url = url, .timeout_ms = 5000}, probe_answer,
                  NULL, NULL);
}
static int create_probe(const json_t *conf, rt_channel **ch, rt_provider **pv, char **err) {
  (void)conf; (void)pv; (void)err;
  rt_channel *c = rt_xcalloc(1, sizeof *c);
  *c = (rt_channel){.name = "probe", .start = probe_start, .send = tp_send, .close = free_close};
  *ch = c;
  return RT_OK;
}
static const rt_plugin p_probe = {.name = "probe", .version = "1.0.0", .kind = RT_PLUGIN_CHANNEL,
                                  .schema_json = "{}", .create = create_probe};

T(run_with_a_broken_plugin) {
  char shop[300], path[400], logp[400];
  snprintf(shop, sizeof shop, "%s/shop", tmpdir);
  mkdir(shop, 0755);
  snprintf(path, sizeof path, "%s/shop.json", shop);
  char *json = rt_xasprintf(
      "{\"name\": \"t\", \"persona\": {}, \"flows\": {\"dir\": \"%s/tests/flows/shop/flows\", "
      "\"start\": \"main\"}, \"http\": {\"listen\": \"127.0.0.1:0\"}, "
      "\"channels\": {\"console\": {\"enabled\": false}}, \"log\": {\"level\": \"info\"}}",
      RT_SOURCE_DIR);
  write_file(path, json);
  free(json);
  /* The log goes to a file for the duration of the run. */
  snprintf(logp, sizeof logp, "%s/run.log", tmpdir);
  fflush(stderr);
  int saved = dup(2), fd = open(logp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  dup2(fd, 2);
  close(fd);
  trace[0] = '\0';
  const rt_plugin *const list[] = {&p_broken, &p_probe, NULL};
  int status = rt_app_run(&(rt_app_opts){.cmd = "run", .shop_dir = shop, .plugins = list});
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  rt_log_set_level(RT_LOG_OFF);
  CHECK_INT(status, 0);
  CHECK_INT(probe_status, 503);
  json_t *h = json_loads(probe_body ? probe_body : "", 0, NULL);
  CHECK(json_is_false(json_object_get(h, "ok")));
  json_t *pl = json_object_get(h, "plugins");
  CHECK_STR(json_string_value(json_object_get(json_object_get(pl, "broken"), "state")), "failed");
  CHECK_STR(json_string_value(json_object_get(json_object_get(pl, "broken"), "problem")),
            "cannot start: the service refused the token (401 Unauthorized)");
  CHECK_STR(json_string_value(json_object_get(json_object_get(pl, "probe"), "state")), "running");
  CHECK(json_integer_value(json_object_get(h, "flows")) > 0);   /* the engine serves */
  json_decref(h);
  free(probe_body);
  /* The log line names the plugin and what the service said; both were
   * closed, in reverse order. */
  FILE *f = fopen(logp, "r");
  char buf[8192] = "";
  size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
  buf[n] = '\0';
  if (f) fclose(f);
  CHECK(strstr(buf, "level=error msg=plugin-failed plugin=broken what=start "
                    "err=\"the service refused the token (401 Unauthorized)\"") != NULL);
  CHECK(strstr(buf, "msg=plugin-started plugin=probe version=1.0.0") != NULL);
  CHECK_STR(trace, "start:broken close:broken closed:broken");
}

int main(void) {
  snprintf(tmpdir, sizeof tmpdir, "/tmp/test_plugin.XXXXXX");
  if (!mkdtemp(tmpdir)) return 1;
  rt_log_set_level(RT_LOG_OFF);
  T_RUN(order_failure_and_health);
  T_RUN(values_survive_a_restart);
  T_RUN(plugin_metrics);
  T_RUN(fragments_merged_into_validation);
  T_RUN(check_reports_the_section);
  T_RUN(run_with_a_broken_plugin);
  char *rm = rt_xasprintf("rm -rf %s", tmpdir);
  if (system(rm) != 0) fprintf(stderr, "cannot remove %s\n", tmpdir);
  free(rm);
  return T_DONE();
}
