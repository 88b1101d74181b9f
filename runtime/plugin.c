/* plugin.c -- the host side of the plugin contract (see plugin.h).
 *
 * One inst per plugin instance, in list order. Everything a plugin borrows
 * (its env, conf, data folder) lives in its inst until the host is freed,
 * after the plugin's close answered. The lifecycle calls of channels and
 * providers (start, close) are made here and nowhere else
 * (tests/integration/style.sh checks it). */
#include "plugin.h"
#include "buf.h"
#include "channel.h"
#include "config.h"
#include "http_client.h"
#include "integration.h"
#include "log.h"
#include "store.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef enum { ST_CREATED, ST_STARTING, ST_RUNNING, ST_FAILED, ST_CLOSING, ST_CLOSED } inst_state;

static const char *state_name[] = {"created", "starting", "running", "failed", "closing", "closed"};

typedef struct inst {
  rt_plugin_host *h;
  const rt_plugin *p;        /* NULL for an adopted instance the list does not know */
  char *name;
  rt_channel *ch;
  rt_provider *pv;
  json_t *conf;              /* own reference: the section, or {} */
  char *data_dir;
  rt_plugin_env env;
  inst_state state;
  char *problem;             /* set_health's, or why create/start failed */
  void (*metrics)(void *ud, rt_buf *out);   /* set_metrics' exporter */
  void *metrics_ud;
  bool metrics_refused;      /* its block broke the naming rule: logged once */
} inst;

struct rt_plugin_host {
  rt_plugin_host_opts o;
  inst **v;
  size_t n;
  rt_provider **pvs;
  size_t npvs;
  rt_store *store;
  rt_http *http;
  bool closing;
  size_t close_at;           /* close walks v from the end */
  void (*done)(void *);
  void *done_ud;
};

static const rt_plugin *const *list_of(const rt_plugin_host_opts *o) {
  return o->plugins ? o->plugins : rt_plugins;
}

/* The section of shop.json a plugin reads: channels.<name> for a channel,
 * <name> for a provider. Borrowed or NULL. */
static json_t *section(const rt_config *cfg, const rt_plugin *p) {
  json_t *root = rt_config_json(cfg);
  if (p->kind == RT_PLUGIN_CHANNEL) root = json_object_get(root, "channels");
  return json_object_get(root, p->name);
}

/* wanted, with the fallback rule (plugin.h). */
static bool is_wanted(const rt_plugin *const *list, const rt_config *cfg, const rt_plugin *p) {
  json_t *conf = section(cfg, p);
  json_t *empty = json_is_object(conf) ? NULL : json_object();
  json_t *use = empty ? empty : conf;
  bool wanted = !p->wanted || p->wanted(use);
  if (wanted && p->fallback && !json_object_get(use, "enabled")) {
    for (const rt_plugin *const *pp = list; *pp && wanted; pp++) {
      const rt_plugin *q = *pp;
      if (q == p || q->fallback || q->kind != RT_PLUGIN_CHANNEL || !strcmp(q->name, "console"))
        continue;
      json_t *qc = section(cfg, q);
      json_t *qe = json_is_object(qc) ? NULL : json_object();
      if (!q->wanted || q->wanted(qe ? qe : qc)) wanted = false;
      json_decref(qe);
    }
  }
  json_decref(empty);
  return wanted;
}

static const char *section_path(const rt_plugin *p, char *buf, size_t n) {
  snprintf(buf, n, p->kind == RT_PLUGIN_CHANNEL ? "$.channels.%s" : "$.%s", p->name);
  return buf;
}

static void set_problem(inst *in, const char *problem) {
  free(in->problem);
  in->problem = problem ? rt_xstrdup(problem) : NULL;
}

static void log_failed(inst *in, const char *what, const char *err) {
  char q[1024];
  rt_log_quote(err ? err : "?", q, sizeof q);
  rt_log(RT_LOG_ERROR, "plugin-failed", "plugin=%s what=%s err=%s", in->name, what, q);
  if (in->h->o.failed) in->h->o.failed(in->h->o.ud, in->name, err);
}

static inst *inst_add(rt_plugin_host *h, const rt_plugin *p, const char *name) {
  inst *in = rt_xcalloc(1, sizeof *in);
  in->h = h;
  in->p = p;
  in->name = rt_xstrdup(name);
  json_t *conf = p ? section(h->o.cfg, p) : NULL;
  in->conf = json_is_object(conf) ? json_incref(conf) : json_object();
  h->v = rt_xrealloc(h->v, (h->n + 1) * sizeof *h->v);
  h->v[h->n++] = in;
  return in;
}

static const rt_plugin *find(const rt_plugin_host *h, const char *name) {
  for (const rt_plugin *const *pp = list_of(&h->o); *pp; pp++)
    if (strcmp((*pp)->name, name) == 0) return *pp;
  return NULL;
}

rt_plugin_host *rt_plugin_host_new(const rt_plugin_host_opts *o) {
  rt_plugin_host *h = rt_xcalloc(1, sizeof *h);
  h->o = *o;
  return h;
}

void rt_plugin_host_adopt(rt_plugin_host *h, const char *name, rt_channel *ch) {
  inst *in = inst_add(h, find(h, name), name);
  in->ch = ch;
}

int rt_plugin_host_create(rt_plugin_host *h, bool only_adopted) {
  int failed = 0;
  if (only_adopted) return 0;
  /* Adopted instances keep their place in list order: rebuild v in it. */
  inst **had = h->v;
  size_t nhad = h->n;
  h->v = NULL;
  h->n = 0;
  for (const rt_plugin *const *pp = list_of(&h->o); *pp; pp++) {
    const rt_plugin *p = *pp;
    inst *in = NULL;
    for (size_t i = 0; i < nhad; i++)
      if (had[i] && strcmp(had[i]->name, p->name) == 0) { in = had[i]; had[i] = NULL; }
    if (in) {
      h->v = rt_xrealloc(h->v, (h->n + 1) * sizeof *h->v);
      h->v[h->n++] = in;
      continue;
    }
    if (!is_wanted(list_of(&h->o), h->o.cfg, p)) continue;
    in = inst_add(h, p, p->name);
    char *err = NULL;
    if (p->create(in->conf, &in->ch, &in->pv, &err) != RT_OK ||
        (p->kind == RT_PLUGIN_CHANNEL ? !in->ch : !in->pv)) {
      in->state = ST_FAILED;
      char *why = rt_xasprintf("cannot start: %s", err ? err : "create failed");
      set_problem(in, why);
      log_failed(in, "create", err ? err : "create failed");
      free(why);
      in->ch = NULL;
      in->pv = NULL;
      failed++;
    } else if (in->pv) {
      h->pvs = rt_xrealloc(h->pvs, (h->npvs + 1) * sizeof *h->pvs);
      h->pvs[h->npvs++] = in->pv;
    }
    free(err);
  }
  /* Adopted names the list does not have go last. */
  for (size_t i = 0; i < nhad; i++)
    if (had[i]) {
      h->v = rt_xrealloc(h->v, (h->n + 1) * sizeof *h->v);
      h->v[h->n++] = had[i];
    }
  free(had);
  return failed;
}

/* The process's HTTP client, lent to the plugins and the flows. Made with
 * the host: cheap, curl loads with the first request that goes out, so a
 * console-only bot does not carry libcurl. */
rt_http *rt_plugin_host_http(rt_plugin_host *h) {
  if (!h->http && !h->closing) h->http = rt_http_new(h->o.loop);
  return h->http;
}

rt_provider *const *rt_plugin_host_providers(const rt_plugin_host *h, size_t *n) {
  *n = h->npvs;
  return h->pvs;
}

/* ---- what a plugin borrows (rt_plugin_env) ---- */

static int64_t env_now(void *host) {
  inst *in = host;
  return in->h->o.now_ms(in->h->o.ud);
}

static int env_receive(void *host, const rt_event_in *ev, void (*ack)(void *, int), void *ud) {
  inst *in = host;
  if (in->state == ST_CLOSED || in->h->closing) return RT_EINVAL;
  rt_event_in e = *ev;
  if (!e.channel) e.channel = in->name;
  return in->h->o.receive(in->h->o.ud, &e, ack, ud);
}

static char *env_kv_get(void *host, const char *name, const char *key) {
  inst *in = host;
  char *v = NULL;
  (void)name;   /* a plugin reads its own namespace only */
  if (!in->h->store || !key) return NULL;
  if (rt_store_plugin_get(in->h->store, in->name, key, &v) != RT_OK) {
    char q[512];
    rt_log_quote(rt_store_errmsg(in->h->store), q, sizeof q);
    rt_log(RT_LOG_ERROR, "store-error", "what=plugin-value plugin=%s err=%s", in->name, q);
  }
  return v;
}

static int env_kv_set(void *host, const char *name, const char *key, const char *val) {
  inst *in = host;
  (void)name;
  if (!in->h->store || !key) return RT_EINVAL;
  int rc = rt_store_plugin_set(in->h->store, in->name, key, val, env_now(in));
  if (rc != RT_OK) {
    char q[512];
    rt_log_quote(rt_store_errmsg(in->h->store), q, sizeof q);
    rt_log(RT_LOG_ERROR, "store-error", "what=plugin-value plugin=%s err=%s", in->name, q);
  }
  return rc;
}

static char *env_conv_mode(void *host, const char *chat_id) {
  inst *in = host;
  if (!in->h->store || !chat_id) return NULL;
  rt_conv_row r;
  memset(&r, 0, sizeof r);
  char *mode = NULL;
  /* A plugin sees the chats of its own channel only. */
  int rc = rt_store_conv_get(in->h->store, in->name, chat_id, false, 0, &r);
  if (rc == RT_OK) {
    mode = rt_xstrdup(r.mode ? r.mode : "bot");
  } else if (rc != RT_ENOENT) {
    char q[512];
    rt_log_quote(rt_store_errmsg(in->h->store), q, sizeof q);
    rt_log(RT_LOG_ERROR, "store-error", "what=conversation plugin=%s err=%s", in->name, q);
  }
  rt_conv_row_clear(&r);
  return mode;
}

static void history_row(void *ud, const rt_history_row *r) {
  json_t *p = r->payload ? json_loads(r->payload, 0, NULL) : NULL;
  if (!json_is_object(p)) {   /* a row no reader could show: left out */
    json_decref(p);
    return;
  }
  json_t *o = json_pack("{s:s, s:I, s:I}", "from", r->from_customer ? "customer" : "bot", "at",
                        (json_int_t)r->at, "id", (json_int_t)r->id);
  json_object_set_new(o, r->from_customer ? "event" : "message", p);
  if (r->ext_id) json_object_set_new(o, "ext_id", json_string(r->ext_id));
  json_array_append_new(ud, o);
}

static json_t *env_history(void *host, const char *chat_id, int limit) {
  inst *in = host;
  if (!in->h->store || !chat_id) return NULL;
  if (limit > RT_PLUGIN_HISTORY_MAX) limit = RT_PLUGIN_HISTORY_MAX;
  json_t *a = json_array();
  /* A plugin sees the chats of its own channel only. */
  if (rt_store_chat_history(in->h->store, in->name, chat_id, limit, history_row, a) != RT_OK) {
    char q[512];
    rt_log_quote(rt_store_errmsg(in->h->store), q, sizeof q);
    rt_log(RT_LOG_ERROR, "store-error", "what=history plugin=%s err=%s", in->name, q);
    json_decref(a);
    return NULL;
  }
  return a;
}

static void env_set_health(void *host, const char *name, const char *problem) {
  inst *in = host;
  (void)name;
  if (problem ? in->problem && strcmp(problem, in->problem) == 0 : !in->problem) return;
  if (problem) {
    char q[1024];
    rt_log_quote(problem, q, sizeof q);
    rt_log(RT_LOG_WARN, "plugin-unhealthy", "plugin=%s problem=%s", in->name, q);
  } else {
    rt_log(RT_LOG_INFO, "plugin-healthy", "plugin=%s", in->name);
  }
  set_problem(in, problem);
}

static void env_set_metrics(void *host, const char *name, void (*write)(void *ud, rt_buf *out),
                            void *ud) {
  inst *in = host;
  (void)name;
  in->metrics = write;
  in->metrics_ud = ud;
}

/* Every series line of a plugin's block must carry its prefix: one plugin
 * cannot overwrite another's (or the engine's) series. */
static bool metrics_named(const char *text, const char *prefix) {
  size_t pl = strlen(prefix);
  for (const char *l = text; *l;) {
    const char *e = strchr(l, '\n');
    size_t n = e ? (size_t)(e - l) : strlen(l);
    const char *name = l;
    if (n > 7 && (strncmp(l, "# HELP ", 7) == 0 || strncmp(l, "# TYPE ", 7) == 0)) name = l + 7;
    else if (n > 0 && l[0] == '#') name = NULL;   /* a comment */
    if (n > 0 && name && (n < pl || strncmp(name, prefix, pl) != 0)) return false;
    l += n + (e ? 1 : 0);
  }
  return true;
}

void rt_plugin_host_metrics(rt_plugin_host *h, rt_buf *out) {
  for (size_t i = 0; i < h->n; i++) {
    inst *in = h->v[i];
    if (!in->metrics || (in->state != ST_RUNNING && in->state != ST_STARTING)) continue;
    rt_buf b = RT_BUF_INIT;
    in->metrics(in->metrics_ud, &b);
    char prefix[96];
    snprintf(prefix, sizeof prefix, "shopbot_%s_", in->name);
    if (!metrics_named(rt_buf_str(&b), prefix)) {
      if (!in->metrics_refused)
        rt_log(RT_LOG_WARN, "plugin-metrics-refused", "plugin=%s why=\"series not named %s...\"",
               in->name, prefix);
      in->metrics_refused = true;
    } else if (b.len) {
      rt_buf_add(out, b.s, b.len);
      if (b.s[b.len - 1] != '\n') rt_buf_addc(out, '\n');
    }
    rt_buf_free(&b);
  }
}

static int env_command(void *host, const char *cmd, char **err) {
  inst *in = host;
  *err = NULL;
  if (!in->h->o.command) {
    *err = rt_xasprintf("unknown command: %s", cmd);
    return RT_EINVAL;
  }
  return in->h->o.command(in->h->o.ud, cmd, err);
}

/* ---- start ---- */

static void started(void *ud, int status, const char *err) {
  inst *in = ud;
  if (in->state != ST_STARTING) return;   /* closing already, or a second answer */
  if (status == RT_OK) {
    in->state = ST_RUNNING;
    rt_log(RT_LOG_INFO, "plugin-started", "plugin=%s version=%s", in->name,
           in->p ? in->p->version : "?");
    if (in->ch && in->h->o.channel_ready) in->h->o.channel_ready(in->h->o.ud, in->ch);
    return;
  }
  in->state = ST_FAILED;
  char *why = rt_xasprintf("cannot start: %s", err && *err ? err : "start failed");
  set_problem(in, why);
  free(why);
  log_failed(in, "start", err && *err ? err : "start failed");
}

/* mkdir -p; RT_OK or errno's message in *err. */
static int make_dirs(const char *path, char **err) {
  char *p = rt_xstrdup(path);
  for (char *s = p + 1;; s++) {
    if (*s != '/' && *s) continue;
    char c = *s;
    *s = '\0';
    if (mkdir(p, 0755) != 0 && errno != EEXIST) {
      *err = rt_xasprintf("%s: %s", p, strerror(errno));
      free(p);
      return RT_EIO;
    }
    *s = c;
    if (!c) break;
  }
  free(p);
  return RT_OK;
}

void rt_plugin_host_start(rt_plugin_host *h, rt_store *store, struct rt_httpd *httpd) {
  h->store = store;
  for (size_t i = 0; i < h->n && !h->closing; i++) {
    inst *in = h->v[i];
    if (in->state != ST_CREATED) continue;
    in->data_dir = rt_xasprintf("%s/%s", h->o.files_dir ? h->o.files_dir : ".", in->name);
    in->env = (rt_plugin_env){
      .loop = h->o.loop, .name = in->name, .conf = in->conf,
      .http = in->p && in->p->no_http ? NULL : rt_plugin_host_http(h),
      .httpd = httpd, .data_dir = in->data_dir,
      .keep_days = h->o.cfg ? (int)rt_config_int(h->o.cfg, "store.keep_days", 30) : 0,
      .shop_dir = h->o.cfg ? rt_config_dir(h->o.cfg) : NULL,
      .now_ms = env_now, .receive = env_receive, .kv_get = env_kv_get, .kv_set = env_kv_set,
      .set_health = env_set_health, .command = env_command, .conv_mode = env_conv_mode,
      .history = env_history, .set_metrics = env_set_metrics, .host = in,
    };
    in->state = ST_STARTING;
    char *err = NULL;
    if (make_dirs(in->data_dir, &err) != RT_OK) {
      char *why = rt_xasprintf("cannot make its data folder: %s", err);
      started(in, RT_EIO, why);
      free(why);
      free(err);
      continue;
    }
    /* Before its start: the channel may take messages from then on. */
    if (in->ch && (in->ch->caps & RT_CH_HISTORY) && h->store)
      rt_store_keep_history(h->store, in->ch->name);
    if (in->ch && in->ch->start) in->ch->start(in->ch, &in->env, started, in);
    else if (in->pv && in->pv->start) in->pv->start(in->pv, &in->env, started, in);
    else started(in, RT_OK, NULL);
  }
}

/* ---- health ---- */

json_t *rt_plugin_host_health(const rt_plugin_host *h, bool *ok) {
  json_t *o = json_object();
  *ok = true;
  for (size_t i = 0; i < h->n; i++) {
    inst *in = h->v[i];
    json_t *e = json_pack("{s:s}", "state", state_name[in->state]);
    if (in->p) json_object_set_new(e, "version", json_string(in->p->version));
    if (in->problem) json_object_set_new(e, "problem", json_string(in->problem));
    /* "ok" and "error" for monitors that read every plugin the same way
     * ("llm": {"ok": false, "error": "the LLM server fails ..."}) */
    bool fine = !in->problem && in->state != ST_FAILED;
    json_object_set_new(e, "ok", json_boolean(fine));
    if (in->problem) json_object_set_new(e, "error", json_string(in->problem));
    if (!fine) *ok = false;
    json_object_set_new(o, in->name, e);
  }
  return o;
}

/* ---- close ---- */

static void host_free(rt_plugin_host *h) {
  void (*done)(void *) = h->done;
  void *ud = h->done_ud;
  for (size_t i = 0; i < h->n; i++) {
    inst *in = h->v[i];
    json_decref(in->conf);
    free(in->name);
    free(in->data_dir);
    free(in->problem);
    free(in);
  }
  free(h->v);
  free(h->pvs);
  free(h);
  if (done) done(ud);
}

static void http_closed(void *ud) { host_free(ud); }

static void close_next(rt_plugin_host *h);

static void closed(void *ud) {
  inst *in = ud;
  if (in->state != ST_CLOSING) return;   /* a second answer */
  in->state = ST_CLOSED;
  rt_plugin_host *h = in->h;
  rt_log(RT_LOG_DEBUG, "plugin-closed", "plugin=%s", in->name);
  close_next(h);
}

/* One at a time, from the last: a plugin's close may call back (its done)
 * before returning, so the walk continues from closed(). */
static void close_next(rt_plugin_host *h) {
  while (h->close_at > 0) {
    inst *in = h->v[--h->close_at];
    if (!in->ch && !in->pv) continue;   /* create failed: nothing to close */
    in->state = ST_CLOSING;
    in->metrics = NULL;
    if (in->ch && in->ch->close) {
      in->ch->close(in->ch, closed, in);
      return;
    }
    if (in->pv && in->pv->close) {
      in->pv->close(in->pv, closed, in);
      return;
    }
    in->state = ST_CLOSED;
  }
  if (h->http) {
    rt_http *http = h->http;
    h->http = NULL;
    rt_http_close(http, http_closed, h);
    return;
  }
  host_free(h);
}

void rt_plugin_host_stopping(rt_plugin_host *h) {
  h->closing = true;
  h->store = NULL;
}

void rt_plugin_host_close(rt_plugin_host *h, void (*done)(void *), void *ud) {
  rt_plugin_host_stopping(h);
  h->done = done;
  h->done_ud = ud;
  h->close_at = h->n;
  close_next(h);
}

/* ---- check ---- */

static void check_closed(void *ud) { (*(int *)ud)--; }

int rt_plugin_check(const rt_config *cfg, const rt_plugin *const *plugins, char **err) {
  *err = NULL;
  char *out = NULL;
  int open = 0;   /* a plugin never started holds no loop handles: closes answer at once */
  for (const rt_plugin *const *pp = plugins ? plugins : rt_plugins; *pp; pp++) {
    const rt_plugin *p = *pp;
    json_t *conf = section(cfg, p);
    json_t *use = json_is_object(conf) ? json_incref(conf) : json_object();
    if (is_wanted(plugins ? plugins : rt_plugins, cfg, p)) {
      rt_channel *ch = NULL;
      rt_provider *pv = NULL;
      char *e = NULL, path[256];
      if (p->create(use, &ch, &pv, &e) != RT_OK) {
        char *line = rt_xasprintf("%s%sshop.json: %s: %s", out ? out : "", out ? "\n" : "",
                                  section_path(p, path, sizeof path), e ? e : "refused");
        free(out);
        out = line;
      } else if (ch && ch->close) {
        open++;
        ch->close(ch, check_closed, &open);
      } else if (pv && pv->close) {
        open++;
        pv->close(pv, check_closed, &open);
      }
      free(e);
    }
    json_decref(use);
  }
  if (!out) return RT_OK;
  *err = out;
  return RT_EINVAL;
}
