/* engine.c -- events, turns, group commit, timers and the outbox sender
 * (see engine.h). */
#include "engine.h"
#include "deliver.h"
#include "http_client.h"
#include "log.h"
#include "lvm.h"
#include "map.h"
#include "paths.h"
#include "transcript.h"
#include "utf8.h"
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TURNS_PER_PUMP 2048
#define RECEIVES_PER_PUMP 4096

/* Due times a flow may set, in seconds: from the epoch to the end of the
 * year 9999. Far past any real reminder, and small enough that the
 * milliseconds the store keeps, plus any now, fit an int64_t. */
#define MAX_DUE_S INT64_C(253402300799)
#define MAX_DUE_MS (MAX_DUE_S * 1000)

/* After an unclean stop, an event that was running alone when the process
 * died this many times is quarantined. One is not enough: a kill -9 or a
 * power cut in the middle of an innocent event must not set it aside. */
#define CRASHES_TO_QUARANTINE 2

typedef struct pending_ev {
  int64_t id;
  char *payload;               /* owned; NULL = read from the inbox */
  bool wake;                   /* a wake-up (counts toward limits.wakeups_pending) */
  bool isolate;                /* pending at an unclean start: runs alone */
  bool marked;                 /* its attempt is counted in the store */
  int64_t attempts;            /* earlier attempts (when marked) */
} pending_ev;

typedef struct turn turn;

/* The queue of one chat: inbox events waiting, at most one turn running. */
typedef struct conv_q {
  char *key, *channel, *chat_id;
  pending_ev *evs;
  size_t head, len, cap;
  size_t nwake;                /* wake-ups among evs[head..len) */
  bool running, in_ready;
  struct conv_q *next_ready;
} conv_q;

struct turn {
  rt_engine *e;
  conv_q *q;
  pending_ev ev;
  json_t *event;
  rt_conv_row conv;
  rt_lturn *lt;
  int status;                   /* RT_LTURN_* or -1: not run (handoff), -2: store
                                 * error, -3: quarantined (not run) */
  json_t *limit_err;            /* the step went over a limit of its effects */
  int64_t started_ms;
  rt_http_req *http_req;
  turn *next;                   /* done list / yielded list */
  turn *prev_y, *next_y;
};

typedef struct recv_item {
  char *channel, *ext_id, *chat_id, *kind, *payload;
  void (*ack)(void *, int);
  void *ud;
} recv_item;

struct rt_engine {
  uv_loop_t *loop;
  rt_config *cfg;
  rt_store *store;
  rt_clock clock;
  bool test_mode;
  rt_bundle *bundle;
  rt_bundle_opts bopts;
  rt_host host;
  json_t *shop_view;
  char *flows_dir, *lib_dir, *start_flow;
  char *reload_error, *store_error;
  rt_transcript_check *check;   /* tests.on_reload: the child checking `pending` */
  rt_bundle *pending;
  uint64_t pending_t0;
  rt_http *http;
  json_t *(*http_script)(void *, json_t *);
  void *http_script_ud;

  rt_map convs;
  conv_q *ready_head, *ready_tail;
  recv_item *recv;
  size_t nrecv, caprecv;
  turn *done_head, *done_tail;
  turn *yielded;
  turn **resume;
  size_t nresume, capresume;
  size_t running;
  rt_deliver *dl;               /* committed outbox rows to the channels */

  uv_idle_t pump;
  uv_timer_t wake;             /* earliest durable timer */
  uv_timer_t watchdog;         /* step deadlines, store retries */
  bool pumping, closing;
  bool outbox_dirty;           /* a commit queued messages */
  bool timers_dirty;           /* a turn being applied set timers */
  int64_t next_prune;
  uint64_t gen_seq;            /* ids for events a channel gave none */
  int handles_open;
  void (*close_done)(void *);
  void *close_ud;
  int64_t store_retry_at;
  int64_t store_busy_since;    /* store_error is "locked" (a tool's write) since; 0: not */
  int64_t step_timeout_ms;
  int64_t release_after_ms;
  int64_t wakeups_per_step, wakeups_pending;   /* limits.* */
  int64_t message_max, step_output_max;       /* bytes */
  bool isolating;              /* running the events of an unclean stop one by one */
  char **iso_keys;             /* their queues, in order */
  size_t niso, iso_pos;
  rt_engine_stats st;
  char *mgr_channel, *mgr_chat;
};

static void pump_start(rt_engine *e);
/* Send results wait for the next apply commit. */
static void deliver_wake(void *ud) { pump_start(ud); }

static int64_t now_ms(rt_engine *e) { return rt_clock_now(&e->clock); }

/* Checked arithmetic for durations and counts that come from config, flows
 * or channels: the result saturates instead of overflowing. */
static int64_t sat_add(int64_t a, int64_t b) {
  int64_t r;
  if (__builtin_add_overflow(a, b, &r)) return b > 0 ? INT64_MAX : INT64_MIN;
  return r;
}

static int64_t sat_mul(int64_t a, int64_t b) {
  int64_t r;
  if (__builtin_mul_overflow(a, b, &r)) return (a < 0) != (b < 0) ? INT64_MIN : INT64_MAX;
  return r;
}

/* A config integer kept within [lo, hi]. The schema has its own bounds;
 * this keeps the arithmetic below safe whatever the file says. */
static int64_t cfg_int(rt_config *c, const char *key, int64_t dflt, int64_t lo, int64_t hi) {
  int64_t v = rt_config_int(c, key, dflt);
  if (v < lo || v > hi) {
    int64_t k = v < lo ? lo : hi;
    rt_log(RT_LOG_WARN, "config-clamped", "key=%s value=%lld used=%lld", key, (long long)v,
           (long long)k);
    v = k;
  }
  return v;
}

/* ---- queues ---- */

/* The key is the whole channel and chat id, however long: a cut key would
 * put two chats in one queue. */
static conv_q *queue_for(rt_engine *e, const char *channel, const char *chat_id) {
  char *key = rt_xasprintf("%s\x1f%s", channel, chat_id);
  conv_q *q = rt_map_get(&e->convs, key);
  if (!q) {
    q = rt_xcalloc(1, sizeof *q);
    q->key = key;
    q->channel = rt_xstrdup(channel);
    q->chat_id = rt_xstrdup(chat_id);
    rt_map_set(&e->convs, key, q);
  } else {
    free(key);
  }
  return q;
}

static void queue_free(conv_q *q) {
  for (size_t i = q->head; i < q->len; i++) free(q->evs[i].payload);
  free(q->evs);
  free(q->key);
  free(q->channel);
  free(q->chat_id);
  free(q);
}

static void make_ready(rt_engine *e, conv_q *q) {
  if (q->in_ready || q->running || q->head == q->len) return;
  q->in_ready = true;
  q->next_ready = NULL;
  if (e->ready_tail) e->ready_tail->next_ready = q;
  else e->ready_head = q;
  e->ready_tail = q;
}

static conv_q *enqueue(rt_engine *e, const char *channel, const char *chat_id, int64_t id,
                       char *payload, bool wake, bool isolate) {
  conv_q *q = queue_for(e, channel, chat_id);
  if (q->len == q->cap) {
    if (q->head > 0) {
      memmove(q->evs, q->evs + q->head, (q->len - q->head) * sizeof *q->evs);
      q->len -= q->head;
      q->head = 0;
    }
    if (q->len == q->cap) {
      q->cap = q->cap ? q->cap * 2 : 4;
      q->evs = rt_xrealloc(q->evs, q->cap * sizeof *q->evs);
    }
  }
  q->evs[q->len++] = (pending_ev){.id = id, .payload = payload, .wake = wake, .isolate = isolate};
  if (wake) q->nwake++;
  make_ready(e, q);
  return q;
}

/* Drops a chat's queue once it has nothing left, so idle chats cost no
 * memory: their state lives in SQLite only. */
static void queue_maybe_drop(rt_engine *e, conv_q *q) {
  if (q->running || q->in_ready || q->head < q->len) return;
  rt_map_del(&e->convs, q->key);
  queue_free(q);
}

/* ---- host callbacks for the Lua side ---- */

static int64_t host_now(void *ud) { return now_ms(ud); }

static json_t *host_customer(void *ud, const char *phone, const char *channel, const char *chat) {
  rt_engine *e = ud;
  return rt_store_customer_json(e->store, phone, channel, chat);
}

static void host_ready(void *ud, rt_lturn *lt) {
  rt_engine *e = ud;
  if (e->nresume == e->capresume) {
    e->capresume = e->capresume ? e->capresume * 2 : 16;
    e->resume = rt_xrealloc(e->resume, e->capresume * sizeof *e->resume);
  }
  e->resume[e->nresume++] = rt_lturn_host(lt);
  pump_start(e);
}

static void http_done(rt_http_resp *r, void *ud) {
  turn *t = ud;
  t->http_req = NULL;
  json_t *res;
  if (r->err != RT_OK) {
    const char *code = r->err == RT_ETIMEOUT ? "timeout" : r->err == RT_ELIMIT ? "too-large"
                                                                               : "network";
    res = json_pack("{s:s, s:s}", "error", code, "detail", r->errmsg);
  } else {
    res = json_pack("{s:i, s:s%}", "status", r->status, "body", r->body ? r->body : "",
                    r->body ? r->body_len : 0);
    if (!res) res = json_pack("{s:i, s:s}", "status", r->status, "body", "");
  }
  rt_lturn_io_done(t->lt, res);
}

static int host_http(void *ud, rt_lturn *lt, json_t *req) {
  rt_engine *e = ud;
  turn *t = rt_lturn_host(lt);
  if (e->http_script) {
    json_t *res = e->http_script(e->http_script_ud, req);
    rt_lturn_io_done(lt, res ? res : json_pack("{s:s, s:s}", "error", "network",
                                               "detail", "no scripted reply"));
    return RT_OK;
  }
  /* curl (and the TLS library under it) starts on the first request: a bot
   * whose flows never call out does not pay its memory. */
  if (!e->http && !e->closing) e->http = rt_http_new(e->loop);
  if (!e->http) return RT_EINVAL;
  const char *hdrs[34];
  size_t nh = 0;
  json_t *h = json_object_get(req, "headers"), *v;
  size_t i;
  json_array_foreach(h, i, v) if (nh < 32) hdrs[nh++] = json_string_value(v);
  if (json_object_get(req, "content_type")) hdrs[nh++] = "Content-Type: application/json";
  hdrs[nh] = NULL;
  json_t *body = json_object_get(req, "body");
  rt_http_opts o = {
    .method = json_string_value(json_object_get(req, "method")),
    .url = json_string_value(json_object_get(req, "url")),
    .body = json_string_value(body),
    .body_len = body ? json_string_length(body) : 0,
    .headers = hdrs,
    .timeout_ms = (long)json_integer_value(json_object_get(req, "timeout_ms")),
  };
  return rt_http_request(e->http, &o, http_done, t, &t->http_req);
}

/* ---- bundle ---- */

static json_t *shop_view(rt_config *cfg) {
  /* Flows see the shop's facts and settings, never tokens or plumbing. */
  json_t *v = json_deep_copy(rt_config_json(cfg));
  static const char *hide[] = {"channels", "llm", "crm", "store", "http", "log", "tests", "limits"};
  for (size_t i = 0; i < RT_ARRAY_LEN(hide); i++) json_object_del(v, hide[i]);
  return v;
}

/* tests.on_reload: the shop's transcripts must pass on the new flows before
 * they serve customers. They run in a child process (rt_transcript_check),
 * never on this loop, so the old flows keep serving and /healthz answers
 * while they run; a child that outlives tests.reload_timeout_s is killed and
 * the reload fails. The checked bundle waits in e->pending; a newer reload
 * cancels the check (its flows are no longer the newest), so only the
 * latest save can be swapped in. */
static void reload_finish(rt_engine *e, rt_bundle *b, uint64_t t0, const char *err);

static bool has_transcripts(const char *dir) {
  DIR *d = opendir(dir);
  struct dirent *de;
  bool any = false;
  while (d && !any && (de = readdir(d))) {
    size_t n = strlen(de->d_name);
    any = n > 5 && strcmp(de->d_name + n - 5, ".chat") == 0;
  }
  if (d) closedir(d);
  return any;
}

static void reload_checked(void *ud, int rc, const char *err) {
  rt_engine *e = ud;
  rt_bundle *b = e->pending;
  e->pending = NULL;
  e->check = NULL;
  if (rc != RT_OK) {
    rt_bundle_unref(b);
    b = NULL;
  }
  reload_finish(e, b, e->pending_t0, err);
}

/* Stops a check still running; closed(ud) once its child is reaped. */
static void reload_cancel(rt_engine *e, void (*closed)(void *), void *ud) {
  if (!e->check) return;
  rt_log(RT_LOG_INFO, "reload-check-cancelled", "version=%s reason=%s",
         rt_bundle_version(e->pending), e->closing ? "shutdown" : "newer-reload");
  rt_transcript_check_cancel(e->check, closed, ud);
  e->check = NULL;
  rt_bundle_unref(e->pending);
  e->pending = NULL;
}

/* Starts the check of b when the shop asks for one: then RT_OK with
 * *started, and b is kept in e->pending. RT_OK without *started: nothing
 * to check. Else RT_EIO and a message (the child could not start). */
static int reload_tests(rt_engine *e, rt_bundle *b, uint64_t t0, bool *started, char **err) {
  *started = false;
  if (e->test_mode || !rt_config_bool(e->cfg, "tests.on_reload", 0)) return RT_OK;
  char *dir = rt_config_path(e->cfg, rt_config_str(e->cfg, "tests.dir", "tests"));
  if (!has_transcripts(dir)) {
    free(dir);
    return RT_OK;
  }
  int64_t limit_s = rt_config_int(e->cfg, "tests.reload_timeout_s", 60);
  if (limit_s < 1 || limit_s > 3600) limit_s = 60;   /* the schema keeps it in 1..3600 */
  int rc = rt_transcript_check_start(e->loop, rt_config_dir(e->cfg), dir, limit_s * 1000,
                                     reload_checked, e, &e->check, err);
  free(dir);
  if (rc != RT_OK) return rc;
  e->pending = b;
  e->pending_t0 = t0;
  *started = true;
  rt_log(RT_LOG_INFO, "reload-check", "version=%s timeout_s=%lld", rt_bundle_version(b),
         (long long)limit_s);
  return RT_OK;
}

/* The end of every reload, at once or after its check: swaps b in, or
 * (b NULL) records err and keeps the old flows. */
static void reload_finish(rt_engine *e, rt_bundle *b, uint64_t t0, const char *err) {
  double ms = (double)(uv_hrtime() - t0) / 1e6;
  if (!b) {
    e->st.reloads_failed++;
    free(e->reload_error);
    e->reload_error = rt_xstrdup(err ? err : "reload failed");
    char q[1024];
    rt_log_quote(e->reload_error, q, sizeof q);
    rt_log(RT_LOG_ERROR, "reload-failed", "err=%s keep=%s", q,
           e->bundle ? rt_bundle_version(e->bundle) : "none");
    return;
  }
  rt_bundle *old = e->bundle;
  e->bundle = b;
  free(e->reload_error);
  e->reload_error = NULL;
  e->st.reloads_ok++;
  rt_log(RT_LOG_INFO, "reload", "version=%s flows=%d ms=%.2f", rt_bundle_version(b),
         rt_bundle_flow_count(b), ms);
  rt_bundle_unref(old);   /* turns in flight still hold it */
}

int rt_engine_reload(rt_engine *e, char **err) {
  rt_bundle *b;
  uint64_t t0 = uv_hrtime();
  reload_cancel(e, NULL, NULL);
  bool started = false;
  int rc = rt_bundle_load(&e->bopts, &b, err);
  if (rc == RT_OK && (rc = reload_tests(e, b, t0, &started, err)) != RT_OK) rt_bundle_unref(b);
  if (started) return RT_OK;   /* the result comes with the check: reload_checked */
  reload_finish(e, rc == RT_OK ? b : NULL, t0, rc == RT_OK ? NULL : *err);
  return rc;
}

/* ---- receive ---- */

int rt_engine_receive(rt_engine *e, const rt_event_in *ev,
                      void (*ack)(void *, int), void *ud) {
  if (!ev->channel || !ev->chat_id || !*ev->chat_id) return RT_EINVAL;
  json_t *p = json_object();
  if (ev->extra_json) {
    json_t *x = json_loads(ev->extra_json, 0, NULL);
    if (json_is_object(x)) json_object_update(p, x);
    json_decref(x);
  }
  const char *kind = ev->kind ? ev->kind : "text";
  json_object_set_new(p, "kind", json_string(kind));
  if (ev->text) {
    /* Broken UTF-8 from a channel keeps its readable part. */
    size_t n;
    char *clean = rt_utf8_clean(ev->text, strlen(ev->text), &n);
    json_object_set_new(p, "text", json_stringn(clean, n));
    free(clean);
  }
  if (ev->user_id) json_object_set_new(p, "user", json_string(ev->user_id));
  if (ev->name) {
    size_t n;
    char *clean = rt_utf8_clean(ev->name, strlen(ev->name), &n);
    json_object_set_new(p, "name", json_stringn(clean, n));
    free(clean);
  }
  int64_t at = now_ms(e);
  json_object_set_new(p, "at", json_integer(at / 1000));
  char *payload = json_dumps(p, JSON_COMPACT | JSON_SORT_KEYS);
  json_decref(p);
  if (e->nrecv == e->caprecv) {
    e->caprecv = e->caprecv ? e->caprecv * 2 : 64;
    e->recv = rt_xrealloc(e->recv, e->caprecv * sizeof *e->recv);
  }
  char gen[64];
  if (!ev->ext_id) snprintf(gen, sizeof gen, "gen:%lld:%llu", (long long)at,
                            (unsigned long long)++e->gen_seq);
  e->recv[e->nrecv++] = (recv_item){
    rt_xstrdup(ev->channel), rt_xstrdup(ev->ext_id ? ev->ext_id : gen),
    rt_xstrdup(ev->chat_id), rt_xstrdup(kind), payload, ack, ud};
  pump_start(e);
  return RT_OK;
}

static void recv_free(recv_item *r) {
  free(r->channel); free(r->ext_id); free(r->chat_id); free(r->kind); free(r->payload);
}

void rt__engine_wake_cb(uv_timer_t *h);

/* A tool (`shopbot campaign`, `import`) holding the write lock: the store
 * fails at once (no_busy_wait) and the loop retries soon, from a timer. For
 * up to STORE_BUSY_OK_MS this is normal operation, not an error. */
#define STORE_BUSY_RETRY_MS 10
#define STORE_BUSY_OK_MS 5000

static void set_store_error(rt_engine *e, const char *what) {
  if (rt_store_errcode(e->store) == RT_EBUSY) {
    int64_t now = now_ms(e);
    if (!e->store_busy_since) e->store_busy_since = now;
    if (now - e->store_busy_since < STORE_BUSY_OK_MS) {
      free(e->store_error);
      e->store_error = rt_xasprintf("%s: %s", what, rt_store_errmsg(e->store));
      e->store_retry_at = now + STORE_BUSY_RETRY_MS;
      if (!e->test_mode && !e->closing)
        uv_timer_start(&e->wake, rt__engine_wake_cb, STORE_BUSY_RETRY_MS, 0);
      return;
    }
  } else {
    e->store_busy_since = 0;
  }
  char *m = rt_xasprintf("%s: %s", what, rt_store_errmsg(e->store));
  if (!e->store_error || strcmp(e->store_error, m) != 0) {
    char q[512];
    rt_log_quote(m, q, sizeof q);
    rt_log(RT_LOG_ERROR, "store-error", "err=%s code=%d retry_in_ms=1000", q,
           rt_store_errcode(e->store));
  }
  free(e->store_error);
  e->store_error = m;
  e->store_retry_at = now_ms(e) + 1000;
}

static void clear_store_error(rt_engine *e) {
  /* A short wait for a tool's lock was never logged as an error. */
  bool quiet = e->store_busy_since && now_ms(e) - e->store_busy_since < STORE_BUSY_OK_MS;
  e->store_busy_since = 0;
  if (e->store_error && !quiet) rt_log(RT_LOG_INFO, "store-recovered", NULL);
  free(e->store_error);
  e->store_error = NULL;
}

/* Receive commit: every event that came in this loop turn, one
 * transaction, then the acks. On failure nothing is acked and the batch is
 * kept for the next try. */
static void flush_receives(rt_engine *e) {
  if (!e->nrecv) return;
  size_t n = e->nrecv < RECEIVES_PER_PUMP ? e->nrecv : RECEIVES_PER_PUMP;
  int64_t now = now_ms(e);
  int64_t *ids = rt_xcalloc(n, sizeof *ids);
  int *res = rt_xcalloc(n, sizeof *res);
  int rc = rt_store_begin(e->store);
  for (size_t i = 0; i < n && rc == RT_OK; i++) {
    recv_item *r = &e->recv[i];
    rc = rt_store_inbox_add(e->store, r->channel, r->ext_id, r->chat_id, r->kind, r->payload,
                            now, &ids[i]);
    if (rc == 1) { res[i] = 1; rc = RT_OK; continue; }
    if (rc == RT_OK) rc = rt_store_conv_ensure(e->store, r->channel, r->chat_id, now);
  }
  if (rc == RT_OK) rc = rt_store_commit(e->store);
  else rt_store_rollback(e->store);
  if (rc != RT_OK) {
    set_store_error(e, "cannot store received messages");
    free(ids);
    free(res);
    return;
  }
  clear_store_error(e);
  for (size_t i = 0; i < n; i++) {
    recv_item *r = &e->recv[i];
    if (res[i] == 0) {
      enqueue(e, r->channel, r->chat_id, ids[i], r->payload, strcmp(r->kind, "wake") == 0, false);
      r->payload = NULL;
    } else {
      rt_log(RT_LOG_DEBUG, "duplicate", "channel=%s ext_id=%s", r->channel, r->ext_id);
    }
    if (r->ack) r->ack(r->ud, res[i]);
    recv_free(r);
  }
  memmove(e->recv, e->recv + n, (e->nrecv - n) * sizeof *e->recv);
  e->nrecv -= n;
  free(ids);
  free(res);
}

/* ---- turns ---- */

static void yielded_add(rt_engine *e, turn *t) {
  t->prev_y = NULL;
  t->next_y = e->yielded;
  if (e->yielded) e->yielded->prev_y = t;
  e->yielded = t;
}

static void yielded_del(rt_engine *e, turn *t) {
  if (t->prev_y) t->prev_y->next_y = t->next_y;
  else if (e->yielded == t) e->yielded = t->next_y;
  if (t->next_y) t->next_y->prev_y = t->prev_y;
  t->prev_y = t->next_y = NULL;
}

static void turn_done(rt_engine *e, turn *t) {
  t->next = NULL;
  if (e->done_tail) e->done_tail->next = t;
  else e->done_head = t;
  e->done_tail = t;
}

static void turn_free(turn *t) {
  if (t->http_req) rt_http_cancel(t->http_req);
  rt_lturn_free(t->lt);
  json_decref(t->limit_err);
  json_decref(t->event);
  rt_conv_row_clear(&t->conv);
  free(t->ev.payload);
  free(t);
}

static bool is_customer_message(const char *kind) {
  return strcmp(kind, "wake") != 0 && strcmp(kind, "manager") != 0;
}

/* Starts the event at the head of q. quarantine: do not run it, set it
 * aside (crash recovery). */
static void start_turn(rt_engine *e, conv_q *q, bool quarantine) {
  turn *t = rt_xcalloc(1, sizeof *t);
  t->e = e;
  t->q = q;
  t->ev = q->evs[q->head];
  q->evs[q->head].payload = NULL;
  q->running = true;
  e->running++;
  t->started_ms = now_ms(e);
  /* A quarantined event is not even parsed: whatever in it brought the
   * process down stays untouched. */
  if (quarantine) t->event = json_object();
  else if (!t->ev.payload && rt_store_inbox_get(e->store, t->ev.id, &t->ev.payload) != RT_OK)
    t->ev.payload = rt_xstrdup("{}");
  if (!quarantine) t->event = json_loads(t->ev.payload, 0, NULL);
  if (!json_is_object(t->event)) {
    json_decref(t->event);
    t->event = json_pack("{s:s}", "kind", "text");
  }
  /* The receive commit creates the row; create=true only covers a row
   * removed by hand since, so the chat starts over instead of sticking. */
  if (rt_store_conv_get(e->store, q->channel, q->chat_id, true, t->started_ms, &t->conv) != RT_OK) {
    t->status = -2;
    turn_done(e, t);
    return;
  }
  if (quarantine) {
    t->status = -3;
    turn_done(e, t);
    return;
  }
  const char *kind = json_string_value(json_object_get(t->event, "kind"));
  if (!kind) kind = "text";
  const char *mode = t->conv.mode ? t->conv.mode : "bot";
  const char *wstep = json_string_value(json_object_get(t->event, "step"));
  bool system_wake = wstep && wstep[0] == '_';
  /* Handed off: the manager talks, the bot stays silent. Only wake-ups
   * (the flow's own reminders) still run, and not after a failed step: the
   * flow broke, and a broken flow's reminders could talk over the manager or
   * keep a runaway going (a step over limits.wakeups_pending). */
  bool failed = strcmp(mode, "bot") != 0 && t->conv.last_error;
  if ((strcmp(mode, "bot") != 0 && is_customer_message(kind)) || system_wake ||
      strcmp(kind, "manager") == 0 || (failed && strcmp(kind, "wake") == 0)) {
    t->status = -1;
    turn_done(e, t);
    return;
  }
  json_t *conv = json_pack("{s:I, s:s, s:s, s:s}", "id", (json_int_t)t->conv.id,
                           "channel", t->conv.channel, "chat", t->conv.chat_id, "mode", mode);
  if (t->conv.flow) json_object_set_new(conv, "flow", json_string(t->conv.flow));
  if (t->conv.step) json_object_set_new(conv, "step", json_string(t->conv.step));
  if (t->conv.phone) json_object_set_new(conv, "phone", json_string(t->conv.phone));
  json_t *user = json_object_get(t->event, "user");
  if (json_is_string(user)) json_object_set(conv, "user", user);
  else if (t->conv.user_id) json_object_set_new(conv, "user", json_string(t->conv.user_id));
  json_t *name = json_object_get(t->event, "name");
  if (json_is_string(name)) json_object_set(conv, "name", name);
  t->status = rt_lturn_start(e->bundle, t, conv, t->conv.state, t->event, &t->lt);
  json_decref(conv);
  if (t->status == RT_LTURN_YIELD) yielded_add(e, t);
  else turn_done(e, t);
}

static void resume_turns(rt_engine *e) {
  size_t n = e->nresume;
  turn **list = e->resume;
  e->resume = NULL;
  e->nresume = e->capresume = 0;
  for (size_t i = 0; i < n; i++) {
    turn *t = list[i];
    if (t->status != RT_LTURN_YIELD) continue;
    t->status = rt_lturn_resume(t->lt);
    if (t->status != RT_LTURN_YIELD) {
      yielded_del(e, t);
      turn_done(e, t);
    }
  }
  free(list);
}

/* ---- applying effects ---- */

static const char *jstr(json_t *o, const char *k) {
  return json_string_value(json_object_get(o, k));
}

static void free_set(char **p, const char *v) {
  char *n = v ? rt_xstrdup(v) : NULL;
  free(*p);
  *p = n;
}

static void json_raw(char **buf, size_t *len, size_t *cap, const char *s) {
  size_t n = strlen(s);
  if (*len + n + 1 > *cap) {
    *cap = *len + n + 64;
    *buf = rt_xrealloc(*buf, *cap);
  }
  memcpy(*buf + *len, s, n + 1);
  *len += n;
}

/* Appends s as a JSON string; s is valid UTF-8 (it came out of jansson). */
static void json_text(char **buf, size_t *len, size_t *cap, const char *s) {
  size_t n = strlen(s);
  if (*len + n * 6 + 3 > *cap) {
    *cap = *len + n * 6 + 64;
    *buf = rt_xrealloc(*buf, *cap);
  }
  char *o = *buf + *len;
  *o++ = '"';
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if (*p == '"' || *p == '\\') { *o++ = '\\'; *o++ = (char)*p; }
    else if (*p == '\n') { *o++ = '\\'; *o++ = 'n'; }
    else if (*p < 0x20) o += sprintf(o, "\\u%04x", *p);
    else *o++ = (char)*p;
  }
  *o++ = '"';
  *len = (size_t)(o - *buf);
  (*buf)[*len] = '\0';
}

/* Queues one message. The payload of a plain message is written as text
 * directly ({"about":..,"text":..}, keys sorted like every stored JSON);
 * one with buttons goes through jansson. */
static int add_out(rt_engine *e, turn *t, const char *channel, const char *chat,
                   json_t *msg, bool other_chat, int seq, int64_t now) {
  char idem[96];
  snprintf(idem, sizeof idem, "c%lld:r%lld:%d", (long long)t->conv.id,
           (long long)t->conv.rev + 1, seq);
  char *p = NULL;
  const char *text = jstr(msg, "text");
  if (!json_object_get(msg, "buttons") && text) {
    size_t len = 0, cap = 0;
    json_raw(&p, &len, &cap, "{");
    if (other_chat) {
      json_raw(&p, &len, &cap, "\"about\":");
      json_text(&p, &len, &cap, t->conv.chat_id);
      json_raw(&p, &len, &cap, ",");
    }
    json_raw(&p, &len, &cap, "\"text\":");
    json_text(&p, &len, &cap, text);
    json_raw(&p, &len, &cap, "}");
  } else {
    json_t *j = json_pack("{s:s?}", "text", text);
    if (json_object_get(msg, "buttons")) json_object_set(j, "buttons", json_object_get(msg, "buttons"));
    if (other_chat) json_object_set_new(j, "about", json_string(t->conv.chat_id));
    p = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(j);
  }
  /* Replies and notes to the managers go before what nobody waits for: a
   * wake-up's (or a campaign's) messages queue behind them across chats. */
  const char *ek = jstr(t->event, "kind");
  int prio = !other_chat && ek && strcmp(ek, "wake") == 0 ? 1 : 0;
  int rc = rt_store_outbox_add_prio(e->store, t->conv.id, channel, chat, idem, "text", p, prio,
                                    now, NULL);
  free(p);
  e->outbox_dirty = true;
  return rc == 1 ? RT_OK : rc;
}

static int apply_handoff_timer(rt_engine *e, turn *t, int64_t now) {
  /* handoff.release_after may be "never" in practice (years): the sum
   * saturates at the latest due time instead of wrapping into the past. */
  int64_t due = sat_add(now, e->release_after_ms);
  if (due > MAX_DUE_MS) due = MAX_DUE_MS;
  return rt_store_timer_set(e->store, t->conv.id, "_handoff_release", due, "_release", "{}", now);
}

/* The campaign an effect belongs to: named in its data, else the one the
 * conversation is in (c.slots.campaign, reported by host.lua). */
static const char *campaign_of(json_t *result, json_t *data) {
  const char *c = data ? jstr(data, "campaign") : NULL;
  if (!c && result) c = jstr(result, "campaign");
  return c;
}

/* The chat goes to a manager and the managers hear why: the common end of
 * a failed step and of a quarantined event. err: {code, msg, flow, step,
 * source, line}; event_kind names the statistics event. */
static int hand_over(rt_engine *e, turn *t, json_t *err, const char *event_kind, int64_t now) {
  char *ej = json_dumps(err, JSON_COMPACT | JSON_SORT_KEYS);
  free_set(&t->conv.last_error, ej);
  free_set(&t->conv.mode, "handoff");
  int rc = rt_store_event_add(e->store, now, t->conv.id, jstr(err, "flow"), NULL, event_kind, ej);
  free(ej);
  if (rc == RT_OK) rc = apply_handoff_timer(e, t, now);
  if (rc == RT_OK) {
    const char *src = jstr(err, "source");
    char *where = src ? rt_xasprintf(", %s:%lld", src,
                                     (long long)json_integer_value(json_object_get(err, "line")))
                      : rt_xstrdup("");
    char *text = rt_xasprintf(
        "Бот остановился в чате %s:%s (шаг %s.%s%s): %s. Ответьте клиенту, пожалуйста.",
        t->conv.channel, t->conv.chat_id, jstr(err, "flow") ? jstr(err, "flow") : "?",
        jstr(err, "step") ? jstr(err, "step") : "?", where,
        jstr(err, "msg") ? jstr(err, "msg") : "ошибка");
    json_t *p = json_pack("{s:s}", "text", text);
    if (!p) p = json_pack("{s:s}", "text", "Бот остановился в одном из чатов: ответьте клиенту.");
    rc = add_out(e, t, e->mgr_channel, e->mgr_chat, p, true, 0, now);
    json_decref(p);
    free(text);
    free(where);
  }
  return rc;
}

/* A step that failed: nothing it did is kept; the chat goes to a manager
 * and the managers hear why. */
static int apply_error(rt_engine *e, turn *t, int64_t now) {
  json_t *err = t->limit_err ? t->limit_err : rt_lturn_error(t->lt);
  e->st.steps_failed++;
  char q[1024];
  rt_log_quote(jstr(err, "msg") ? jstr(err, "msg") : "?", q, sizeof q);
  rt_log(RT_LOG_ERROR, "step-failed", "conv=%lld flow=%s step=%s source=%s line=%lld code=%s err=%s",
         (long long)t->conv.id, jstr(err, "flow") ? jstr(err, "flow") : "-",
         jstr(err, "step") ? jstr(err, "step") : "-",
         jstr(err, "source") ? jstr(err, "source") : "-",
         (long long)json_integer_value(json_object_get(err, "line")), jstr(err, "code"), q);
  return hand_over(e, t, err, "step_error", now);
}

/* The flow and step an event would have run in: the wake-up's step, else
 * where the conversation waits (the start flow for a new one). */
static void event_step(rt_engine *e, turn *t, json_t *err) {
  const char *ws = strcmp(jstr(t->event, "kind") ? jstr(t->event, "kind") : "", "wake") == 0
                       ? jstr(t->event, "step") : NULL;
  const char *flow = t->conv.flow ? t->conv.flow : e->start_flow;
  const char *step = t->conv.flow ? t->conv.step : "start";
  const char *dot = ws ? strchr(ws, '.') : NULL;
  if (dot) {
    json_object_set_new(err, "flow", json_stringn(ws, (size_t)(dot - ws)));
    json_object_set_new(err, "step", json_string(dot + 1));
    return;
  }
  json_object_set_new(err, "flow", json_string(flow));
  if (ws || step) json_object_set_new(err, "step", json_string(ws ? ws : step));
}

/* An event that took the process down with it: not run again, recorded,
 * and its chat handed to a manager. */
static int apply_quarantine(rt_engine *e, turn *t, int64_t now) {
  char *msg = rt_xasprintf("this message stopped the bot %d times while it ran alone; it was "
                           "set aside (quarantined, inbox id %lld) and will not run again",
                           CRASHES_TO_QUARANTINE, (long long)t->ev.id);
  json_t *err = json_pack("{s:s, s:s, s:I}", "code", "crash", "msg", msg,
                          "inbox_id", (json_int_t)t->ev.id);
  free(msg);
  event_step(e, t, err);
  rt_log(RT_LOG_ERROR, "quarantined", "conv=%lld inbox=%lld attempts=%lld flow=%s step=%s",
         (long long)t->conv.id, (long long)t->ev.id, (long long)t->ev.attempts,
         jstr(err, "flow") ? jstr(err, "flow") : "-", jstr(err, "step") ? jstr(err, "step") : "-");
  int rc = hand_over(e, t, err, "quarantined", now);
  if (rc == RT_OK) rc = rt_store_inbox_quarantine(e->store, t->ev.id, jstr(err, "msg"), now);
  json_decref(err);
  return rc;
}

/* ---- limits on a step's effects ----
 * Checked before anything of the step is written: a step over a limit
 * fails like one that ran out of memory or time, and keeps nothing. */

static json_t *limit_error(rt_engine *e, turn *t, char *msg) {
  json_t *err = json_pack("{s:s, s:s}", "code", "limit", "msg", msg);
  free(msg);
  event_step(e, t, err);
  return err;
}

/* Bytes one queued message stands for: its text and its buttons. */
static int64_t message_size(json_t *m) {
  const char *text = jstr(m, "text");
  int64_t n = text ? (int64_t)strlen(text) : 0;
  json_t *b = json_object_get(m, "buttons");
  if (b) n += (int64_t)json_dumpb(b, NULL, 0, JSON_COMPACT | JSON_ENCODE_ANY);
  return n;
}

static json_t *check_limits(rt_engine *e, turn *t) {
  json_t *r = rt_lturn_result(t->lt), *v;
  size_t i;
  int64_t total = 0;
  json_array_foreach(json_object_get(r, "out"), i, v) {
    int64_t n = message_size(v);
    if (n > e->message_max)
      return limit_error(e, t, rt_xasprintf(
          "message %zu of the step is %lld bytes; one message may be at most %lld KB "
          "(limits.message_max_kb)", i + 1, (long long)n, (long long)(e->message_max >> 10)));
    total += n;
    if (total > e->step_output_max)
      return limit_error(e, t, rt_xasprintf(
          "the step's messages come to more than %lld KB (limits.step_output_kb)",
          (long long)(e->step_output_max >> 10)));
  }
  json_t *timers = json_object_get(r, "timers");
  int64_t sets = 0;
  json_array_foreach(timers, i, v) {
    if (strcmp(jstr(v, "op"), "set") != 0) continue;
    json_t *at = json_object_get(v, "at");
    if (!json_is_integer(at) || json_integer_value(at) < 0 || json_integer_value(at) > MAX_DUE_S) {
      char shown[64];
      if (json_is_integer(at)) snprintf(shown, sizeof shown, "%lld", (long long)json_integer_value(at));
      else snprintf(shown, sizeof shown, "%g", json_number_value(at));
      return limit_error(e, t, rt_xasprintf(
          "wake: due time %s is out of range: whole unix seconds from 0 to %lld (the end of "
          "the year 9999)", shown, (long long)MAX_DUE_S));
    }
    if (++sets > e->wakeups_per_step)
      return limit_error(e, t, rt_xasprintf(
          "a step may set at most %lld wake-ups (limits.wakeups_per_step)",
          (long long)e->wakeups_per_step));
  }
  if (!sets) return NULL;
  /* Wake-ups pending after this step: the flow's timers in the store, the
   * fired ones waiting in this chat's queue (not this event), and what the
   * step's sets and cancels change, in order. */
  int64_t pending = rt_store_timer_count(e->store, t->conv.id);
  if (pending < 0) return NULL;   /* the write below reports the store error */
  pending += (int64_t)t->q->nwake - (t->ev.wake ? 1 : 0);
  int64_t added = 0;
  const char *names[64];
  bool exists[64];
  size_t nn = 0;
  json_array_foreach(timers, i, v) {
    const char *name = jstr(v, "name");
    if (!name || name[0] == '_') continue;
    size_t k = 0;
    while (k < nn && strcmp(names[k], name) != 0) k++;
    if (k == nn) {
      if (nn == RT_ARRAY_LEN(names)) break;
      names[nn] = name;
      exists[nn++] = rt_store_timer_exists(e->store, t->conv.id, name) == 1;
    }
    bool set = strcmp(jstr(v, "op"), "set") == 0;
    if (set && !exists[k]) added++;
    else if (!set && exists[k]) added--;
    exists[k] = set;
  }
  if (added > 0 && pending + added > e->wakeups_pending)
    return limit_error(e, t, rt_xasprintf(
        "the conversation would have %lld wake-ups pending; at most %lld "
        "(limits.wakeups_pending)", (long long)(pending + added), (long long)e->wakeups_pending));
  return NULL;
}

/* The bot is not running this chat: manager actions, system wake-ups and
 * messages that arrive while a manager has it. */
static int apply_system(rt_engine *e, turn *t, int64_t now) {
  const char *kind = jstr(t->event, "kind");
  const char *step = jstr(t->event, "step");
  const char *text = jstr(t->event, "text");
  int rc = RT_OK;
  if (kind && strcmp(kind, "manager") == 0) {
    if (text && strcmp(text, "release") == 0) {
      free_set(&t->conv.mode, "bot");
      free_set(&t->conv.flow, NULL);
      free_set(&t->conv.step, NULL);
      rc = rt_store_timer_cancel(e->store, t->conv.id, "_handoff_release");
      if (rc == RT_OK) rc = rt_store_event_add(e->store, now, t->conv.id, NULL, NULL, "released",
                                               "{\"by\":\"manager\"}");
    } else if (text && strcmp(text, "take") == 0) {
      free_set(&t->conv.mode, "manager");
      rc = apply_handoff_timer(e, t, now);
      if (rc == RT_OK) rc = rt_store_event_add(e->store, now, t->conv.id, NULL, NULL, "taken", "{}");
    }
  } else if (step && strcmp(step, "_release") == 0) {
    if (t->conv.mode && strcmp(t->conv.mode, "bot") != 0) {
      free_set(&t->conv.mode, "bot");
      free_set(&t->conv.flow, NULL);
      free_set(&t->conv.step, NULL);
      rc = rt_store_event_add(e->store, now, t->conv.id, NULL, NULL, "released",
                              "{\"by\":\"silence\"}");
    }
  } else if (kind && is_customer_message(kind)) {
    t->conv.last_in_at = now;
    rc = rt_store_event_add(e->store, now, t->conv.id, t->conv.flow, NULL,
                            "message_while_handoff", "{}");
    /* The silence that releases the chat counts from the last message. */
    if (rc == RT_OK) rc = apply_handoff_timer(e, t, now);
  }
  return rc;
}

static int apply_result(rt_engine *e, turn *t, int64_t now) {
  json_t *r = rt_lturn_result(t->lt);
  int rc = RT_OK;
  const char *kind = jstr(t->event, "kind");
  if (kind && is_customer_message(kind)) t->conv.last_in_at = now;
  free_set(&t->conv.flow, jstr(r, "flow"));
  free_set(&t->conv.step, jstr(r, "step"));
  if (jstr(r, "phone")) free_set(&t->conv.phone, jstr(r, "phone"));
  json_t *user = json_object_get(t->event, "user");
  if (json_is_string(user)) free_set(&t->conv.user_id, json_string_value(user));
  free(t->conv.state);
  t->conv.state = rt_xstrdup(rt_lturn_slots(t->lt) ? rt_lturn_slots(t->lt) : "{}");
  free_set(&t->conv.last_error, NULL);
  const char *flow = t->conv.flow;
  json_t *migrated = json_object_get(r, "migrated");
  if (json_is_object(migrated) && json_object_get(migrated, "from")) {
    char *d = json_dumps(migrated, JSON_COMPACT | JSON_SORT_KEYS);
    rc = rt_store_event_add(e->store, now, t->conv.id, flow, NULL, "step_migrated", d);
    rt_log(RT_LOG_WARN, "step-migrated", "conv=%lld flow=%s from=%s to=%s", (long long)t->conv.id,
           flow, jstr(migrated, "from"), jstr(migrated, "to"));
    free(d);
  }

  json_t *v;
  size_t i;
  int seq = 0;
  json_array_foreach(json_object_get(r, "out"), i, v) {
    if (rc != RT_OK) break;
    const char *to = jstr(v, "to");
    const char *ch = t->conv.channel, *chat = t->conv.chat_id;
    if (to && strcmp(to, "managers") == 0) { ch = e->mgr_channel; chat = e->mgr_chat; }
    else if (to && strcmp(to, "chat") == 0) { ch = jstr(v, "channel"); chat = jstr(v, "chat"); }
    rc = add_out(e, t, ch, chat, v, ch != t->conv.channel, seq++, now);
  }
  json_array_foreach(json_object_get(r, "timers"), i, v) {
    if (rc != RT_OK) break;
    e->timers_dirty = true;
    const char *name = jstr(v, "name");
    if (strcmp(jstr(v, "op"), "cancel") == 0) {
      rc = rt_store_timer_cancel(e->store, t->conv.id, name);
    } else {
      json_t *data = json_object_get(v, "data");
      char *d = data ? json_dumps(data, JSON_COMPACT | JSON_ENCODE_ANY | JSON_SORT_KEYS) : NULL;
      /* check_limits has kept "at" within [0, MAX_DUE_S]. */
      rc = rt_store_timer_set(e->store, t->conv.id, name,
                              sat_mul((int64_t)json_integer_value(json_object_get(v, "at")), 1000),
                              jstr(v, "step"), d, now);
      free(d);
    }
  }
  json_t *entry;
  json_array_foreach(json_object_get(r, "leads"), i, entry) {
    if (rc != RT_OK) break;
    /* Attributed to the flow that recorded it, even if the step then
     * switched flows. */
    json_t *v = json_object_get(entry, "lead");
    const char *lflow = jstr(entry, "flow") ? jstr(entry, "flow") : flow;
    json_t *parts = json_object_get(v, "parts");
    char *pj = parts ? json_dumps(parts, JSON_COMPACT | JSON_ENCODE_ANY | JSON_SORT_KEYS) : NULL;
    char *dj = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS);
    const char *campaign = campaign_of(r, v);
    rt_lead_in l = {
      .conv_id = t->conv.id, .at = now, .flow = lflow, .channel = t->conv.channel,
      .campaign = campaign, .car = jstr(v, "car"), .car_kind = jstr(v, "car_kind"),
      .parts = pj, .name = jstr(v, "name"), .phone = jstr(v, "phone") ? jstr(v, "phone") : t->conv.phone,
      .data = dj,
    };
    int64_t lead_id = 0;
    rc = rt_store_lead_add(e->store, &l, &lead_id);
    if (rc == RT_OK) {
      char ev[64];
      snprintf(ev, sizeof ev, "{\"lead_id\":%lld}", (long long)lead_id);
      rc = rt_store_event_add(e->store, now, t->conv.id, lflow, campaign, "lead", ev);
      rt_log(RT_LOG_INFO, "lead", "conv=%lld lead=%lld flow=%s", (long long)t->conv.id,
             (long long)lead_id, lflow);
    }
    free(pj);
    free(dj);
  }
  json_array_foreach(json_object_get(r, "events"), i, v) {
    if (rc != RT_OK) break;
    json_t *data = json_object_get(v, "data");
    char *dj = data ? json_dumps(data, JSON_COMPACT | JSON_ENCODE_ANY | JSON_SORT_KEYS) : NULL;
    const char *campaign = campaign_of(r, data);
    const char *eflow = jstr(v, "flow") ? jstr(v, "flow") : flow;
    rc = rt_store_event_add(e->store, now, t->conv.id, eflow, campaign, jstr(v, "kind"), dj);
    if (rc == RT_OK && campaign && strcmp(jstr(v, "kind"), "outcome") == 0 && jstr(data, "outcome"))
      rc = rt_store_campaign_outcome(e->store, campaign, t->conv.phone, jstr(data, "outcome"));
    free(dj);
  }
  json_array_foreach(json_object_get(r, "ops"), i, v) {
    if (rc != RT_OK) break;
    const char *op = jstr(v, "op");
    if (strcmp(op, "handoff") == 0) {
      json_t *d = json_pack("{s:s?}", "reason", jstr(v, "reason"));
      char *dj = json_dumps(d, JSON_COMPACT | JSON_SORT_KEYS);
      rc = rt_store_event_add(e->store, now, t->conv.id, flow, campaign_of(r, NULL), "handoff", dj);
      free(dj);
      json_decref(d);
      if (rc == RT_OK) rc = apply_handoff_timer(e, t, now);
    } else if (strcmp(op, "release") == 0) {
      rc = rt_store_timer_cancel(e->store, t->conv.id, "_handoff_release");
    } else if (strcmp(op, "optout") == 0) {
      rc = rt_store_customer_optout(e->store, t->conv.phone, t->conv.channel, t->conv.chat_id, now);
      if (rc == RT_OK) rc = rt_store_event_add(e->store, now, t->conv.id, flow,
                                               campaign_of(r, NULL), "optout", "{}");
    }
  }
  const char *mode = jstr(r, "mode");
  if (mode) free_set(&t->conv.mode, mode);
  return rc;
}

static void arm_wake(rt_engine *e);

/* Apply commit: every finished turn and send result of this loop turn in
 * one transaction. On failure everything rolls back and the turns' events
 * go back to the head of their queues. */
static void commit_done(rt_engine *e) {
  if (!e->done_head && !rt_deliver_has_results(e->dl)) return;
  int64_t now = now_ms(e);
  e->timers_dirty = false;
  int rc = rt_store_begin(e->store);
  for (turn *t = e->done_head; t && rc == RT_OK; t = t->next) {
    if (t->status == -2) { rc = rt_store_errcode(e->store) ? rt_store_errcode(e->store) : RT_EIO; break; }
    if (t->status == RT_LTURN_DONE && !t->limit_err && (t->limit_err = check_limits(e, t)))
      t->status = RT_LTURN_ERROR;
    if (t->status == RT_LTURN_DONE) rc = apply_result(e, t, now);
    else if (t->status == RT_LTURN_ERROR) rc = apply_error(e, t, now);
    else if (t->status == -3) rc = apply_quarantine(e, t, now);
    else rc = apply_system(e, t, now);
    if (rc == RT_OK) rc = rt_store_conv_save(e->store, &t->conv, now);
    if (rc == RT_OK && t->status != -3)
      rc = rt_store_inbox_finish(e->store, t->ev.id,
                                 t->status == RT_LTURN_ERROR ? "failed"
                                 : t->status == -1 ? "skipped" : "done", now);
  }
  /* Send results ride in the same transaction: no fsync of their own. */
  if (rc == RT_OK) rc = rt_deliver_save(e->dl);
  if (rc == RT_OK) rc = rt_store_commit(e->store);
  else rt_store_rollback(e->store);
  rt_deliver_saved(e->dl, rc == RT_OK);
  turn *t = e->done_head;
  e->done_head = e->done_tail = NULL;
  if (rc != RT_OK) {
    set_store_error(e, "cannot save conversation state");
    /* Put each event back where it was; its turn runs again later. */
    while (t) {
      turn *next = t->next;
      conv_q *q = t->q;
      q->evs[q->head].payload = t->ev.payload;
      t->ev.payload = NULL;
      q->running = false;
      e->running--;
      make_ready(e, q);
      turn_free(t);
      t = next;
    }
    return;
  }
  clear_store_error(e);
  /* A wake-up set for now fires now, not at the next poll. */
  if (e->timers_dirty) arm_wake(e);
  e->timers_dirty = false;
  while (t) {
    turn *next = t->next;
    conv_q *q = t->q;
    if (q->evs[q->head].wake) q->nwake--;
    q->head++;
    q->running = false;
    e->running--;
    e->st.events++;
    const char *kind = jstr(t->event, "kind");
    rt_log(RT_LOG_INFO, "event", "conv=%lld channel=%s chat=%s kind=%s flow=%s step=%s mode=%s "
           "result=%s ms=%lld",
           (long long)t->conv.id, t->conv.channel, t->conv.chat_id, kind ? kind : "-",
           t->conv.flow ? t->conv.flow : "-", t->conv.step ? t->conv.step : "-",
           t->conv.mode ? t->conv.mode : "bot",
           t->status == RT_LTURN_DONE ? "ok" : t->status == RT_LTURN_ERROR ? "failed"
           : t->status == -3 ? "quarantined" : "skipped",
           (long long)(now - t->started_ms));
    make_ready(e, q);
    queue_maybe_drop(e, q);
    turn_free(t);
    t = next;
  }
}

/* ---- durable timers ---- */

typedef struct { char *channel, *chat_id, *payload; int64_t id; } fired;
typedef struct { rt_engine *e; int rc; int n; fired *list; } fire_ctx;

static void fire_one(void *ud, const rt_timer_row *r) {
  fire_ctx *f = ud;
  if (f->rc != RT_OK) return;
  rt_engine *e = f->e;
  rt_conv_row c;
  if (rt_store_conv_by_id(e->store, r->conv_id, &c) != RT_OK) {
    f->rc = rt_store_timer_delete(e->store, r->id);
    return;
  }
  json_t *data = json_loads(r->data ? r->data : "{}", JSON_DECODE_ANY, NULL);
  json_t *p = json_pack("{s:s, s:s, s:s, s:I, s:o}", "kind", "wake", "name", r->name, "step",
                        r->step, "at", (json_int_t)(r->due_at / 1000),
                        "data", data ? data : json_object());
  char *payload = json_dumps(p, JSON_COMPACT | JSON_SORT_KEYS);
  json_decref(p);
  /* The wake-up's identity is its timer's id, which is never reused
   * (AUTOINCREMENT, 004_wakeups.sql), and moving a timer keeps it unfired.
   * So the inbox already holding this key means this very row was fired,
   * in the same transaction that deleted it: a store edited by hand. */
  char ext[32];
  snprintf(ext, sizeof ext, "wake:%lld", (long long)r->id);
  int64_t id = 0;
  int rc = rt_store_inbox_add(e->store, c.channel, ext, c.chat_id, "wake", payload, now_ms(e), &id);
  if (rc == 1)
    rt_log(RT_LOG_WARN, "wake-duplicate", "timer=%lld conv=%lld: already in the inbox",
           (long long)r->id, (long long)r->conv_id);
  if (rc == RT_OK || rc == 1) rc = rt_store_timer_delete(e->store, r->id);
  if (rc == RT_OK && id) {
    /* Queued only once the batch commits: a rolled-back wake-up must not
     * run, its timer is still there and fires again. */
    f->list = rt_xrealloc(f->list, (size_t)(f->n + 1) * sizeof *f->list);
    f->list[f->n++] = (fired){rt_xstrdup(c.channel), rt_xstrdup(c.chat_id), payload, id};
    payload = NULL;
  }
  free(payload);
  f->rc = rc;
  rt_conv_row_clear(&c);
}

int rt_engine_fire_timers(rt_engine *e) {
  int total = 0;
  for (;;) {
    fire_ctx f = {e, RT_OK, 0, NULL};
    int rc = rt_store_begin(e->store);
    if (rc == RT_OK) rc = rt_store_timers_due(e->store, now_ms(e), 1000, fire_one, &f);
    if (rc == RT_OK) rc = f.rc;
    if (rc == RT_OK) rc = rt_store_commit(e->store);
    else rt_store_rollback(e->store);
    for (int i = 0; i < f.n; i++) {
      if (rc == RT_OK) {
        enqueue(e, f.list[i].channel, f.list[i].chat_id, f.list[i].id, f.list[i].payload, true,
                false);
        f.list[i].payload = NULL;
      }
      free(f.list[i].channel);
      free(f.list[i].chat_id);
      free(f.list[i].payload);
    }
    free(f.list);
    if (rc != RT_OK) {
      set_store_error(e, "cannot fire timers");
      return rc;
    }
    clear_store_error(e);
    total += f.n;
    if (f.n < 1000) break;
  }
  if (total) pump_start(e);
  return RT_OK;
}

void rt__engine_wake_cb(uv_timer_t *h);

static void arm_wake(rt_engine *e) {
  if (e->test_mode || e->closing) return;
  int64_t next = rt_store_timer_next(e->store), now = now_ms(e);
  /* Poll at least every 5 s: `shopbot campaign` adds timers from another
   * process. */
  int64_t in = 5000;
  if (next >= 0) in = next <= now ? 0 : (next - now < in ? next - now : in);
  /* After a store failure, at its retry time: sooner would spin on due
   * timers that cannot fire yet. */
  if (e->store_error) in = e->store_retry_at > now ? e->store_retry_at - now : 0;
  uv_timer_start(&e->wake, rt__engine_wake_cb, (uint64_t)in, 0);
}

void rt__engine_wake_cb(uv_timer_t *h) {
  rt_engine *e = h->data;
  if (e->store_error && now_ms(e) >= e->store_retry_at) pump_start(e);
  if (!e->store_error || now_ms(e) >= e->store_retry_at) rt_engine_fire_timers(e);
  arm_wake(e);
}

/* ---- the pump: one round of work per loop iteration ---- */

/* After an unclean stop: the next left-over event runs alone, its attempt
 * committed first; one that was running alone at CRASHES_TO_QUARANTINE
 * crashes already is set aside instead. Events received meanwhile wait. */
static void iso_pump(rt_engine *e) {
  if (e->running || e->done_head) return;
  while (e->iso_pos < e->niso) {
    conv_q *q = rt_map_get(&e->convs, e->iso_keys[e->iso_pos]);
    if (!q || q->running || q->head == q->len || !q->evs[q->head].isolate) {
      e->iso_pos++;
      continue;
    }
    pending_ev *ev = &q->evs[q->head];
    if (!ev->marked) {
      int64_t before = 0;
      int rc = rt_store_begin(e->store);
      if (rc == RT_OK) rc = rt_store_inbox_attempt(e->store, ev->id, &before);
      if (rc == RT_OK) rc = rt_store_commit(e->store);
      else rt_store_rollback(e->store);
      if (rc != RT_OK && rc != RT_ENOENT) {
        set_store_error(e, "cannot count a recovered event's attempt");
        return;
      }
      ev->marked = true;
      ev->attempts = before;
    }
    start_turn(e, q, ev->attempts >= CRASHES_TO_QUARANTINE);
    return;
  }
  e->isolating = false;
  for (size_t i = 0; i < e->niso; i++) free(e->iso_keys[i]);
  free(e->iso_keys);
  e->iso_keys = NULL;
  e->niso = e->iso_pos = 0;
  rt_log(RT_LOG_INFO, "recovered", "the events left by the unclean stop are done");
}

static void pump_cb(uv_idle_t *h) {
  rt_engine *e = h->data;
  if (e->store_error && now_ms(e) < e->store_retry_at && !e->test_mode) {
    uv_idle_stop(&e->pump);
    e->pumping = false;
    return;
  }
  flush_receives(e);
  resume_turns(e);
  if (e->isolating) iso_pump(e);
  for (int n = 0; !e->isolating && n < TURNS_PER_PUMP && e->ready_head; n++) {
    conv_q *q = e->ready_head;
    e->ready_head = q->next_ready;
    if (!e->ready_head) e->ready_tail = NULL;
    q->in_ready = false;
    /* iso_pump may have run it meanwhile: still running (back in the list
     * when done), or with nothing left. */
    if (q->running) continue;
    if (q->head == q->len) { queue_maybe_drop(e, q); continue; }
    start_turn(e, q, false);
  }
  commit_done(e);
  if (e->outbox_dirty && !e->store_error) {
    e->outbox_dirty = false;
    rt_deliver_committed(e->dl);
  }
  const rt_deliver_stats *ds = rt_deliver_get_stats(e->dl);
  e->st.sent = ds->sent;
  e->st.send_failed = ds->failed;
  /* While one recovered event runs alone, the ready chats wait: nothing to
   * do until it finishes (and its finish restarts the pump). */
  bool waiting = e->isolating ? e->running > 0 : !e->ready_head;
  if (!e->nrecv && waiting && !e->done_head && !e->nresume && !rt_deliver_has_results(e->dl) &&
      !e->outbox_dirty) {
    uv_idle_stop(&e->pump);
    e->pumping = false;
  }
}

static void pump_start(rt_engine *e) {
  if (e->pumping || e->closing) return;
  e->pumping = true;
  uv_idle_start(&e->pump, pump_cb);
}

/* Every 250 ms: step deadlines, store retries. */
static void watchdog_cb(uv_timer_t *h) {
  rt_engine *e = h->data;
  int64_t now = now_ms(e);
  for (turn *t = e->yielded; t;) {
    turn *next = t->next_y;
    if (now - t->started_ms > e->step_timeout_ms) {
      if (t->http_req) { rt_http_cancel(t->http_req); t->http_req = NULL; }
      char msg[128];
      snprintf(msg, sizeof msg, "step waited longer than %lld ms (limits.step_timeout_ms)",
               (long long)e->step_timeout_ms);
      rt_lturn_kill(t->lt, "timeout", msg);
      t->status = RT_LTURN_ERROR;
      yielded_del(e, t);
      turn_done(e, t);
      pump_start(e);
    }
    t = next;
  }
  /* Old processed inbox and sent outbox rows go, a slice at a time, so the
   * file does not grow with every message ever handled. */
  if (!e->test_mode && now >= e->next_prune && !e->store_error) {
    int64_t keep = rt_config_int(e->cfg, "store.keep_days", 30);
    e->next_prune = now + 60000;
    int64_t span;   /* keep_days in ms; more than the clock's past: nothing is old enough */
    if (keep > 0 && !__builtin_mul_overflow(keep, INT64_C(86400000), &span) && span < now) {
      int64_t n = rt_store_prune(e->store, now - span, 2000);
      if (n > 0) rt_log(RT_LOG_INFO, "pruned", "rows=%lld keep_days=%lld", (long long)n, (long long)keep);
    }
  }
  if (e->store_error && now >= e->store_retry_at) pump_start(e);
}

/* ---- setup and teardown ---- */

/* Crash recovery: whatever was received but not applied runs again. After
 * an unclean stop those events run one at a time (iso_pump), so an event
 * that takes the process down is known exactly. */
static void recover_one(void *ud, const rt_inbox_row *r) {
  rt_engine *e = ud;
  conv_q *q = enqueue(e, r->channel, r->chat_id, r->id, NULL, strcmp(r->kind, "wake") == 0,
                      e->isolating);
  if (e->isolating && q->len - q->head == 1) {
    e->iso_keys = rt_xrealloc(e->iso_keys, (e->niso + 1) * sizeof *e->iso_keys);
    e->iso_keys[e->niso++] = rt_xstrdup(q->key);
  }
}

/* "engine.running" in the meta table is 1 from start to a clean close; 1 at
 * a start means the last run died (crash, kill -9, power). Two writes per
 * run, none per event. */
static int set_running_mark(rt_engine *e, const char *v) {
  int rc = rt_store_begin(e->store);
  if (rc == RT_OK) rc = rt_store_meta_set(e->store, "engine.running", v);
  if (rc == RT_OK) rc = rt_store_commit(e->store);
  else rt_store_rollback(e->store);
  return rc;
}

int rt_engine_new(const rt_engine_opts *o, rt_engine **out, char **err) {
  *out = NULL;
  rt_engine *e = rt_xcalloc(1, sizeof *e);
  e->loop = o->loop;
  e->cfg = o->cfg;
  e->test_mode = o->test_mode;
  if (o->test_mode) rt_clock_set(&e->clock, o->clock_ms);
  rt_map_init(&e->convs);
  rt_config *c = o->cfg;
  /* The bounds keep every product below in int64_t (the step deadline is
   * counted in ns): a year of step time, a TB of Lua memory. */
  e->step_timeout_ms = cfg_int(c, "limits.step_timeout_ms", 30000, 1, INT64_C(365) * 86400000);
  e->release_after_ms = sat_mul(rt_config_duration(c, "handoff.release_after", 86400), 1000);
  e->wakeups_per_step = cfg_int(c, "limits.wakeups_per_step", 10, 1, 1000000);
  e->wakeups_pending = cfg_int(c, "limits.wakeups_pending", 1000, 1, INT64_C(1) << 40);
  e->message_max = cfg_int(c, "limits.message_max_kb", 16, 1, INT64_C(1) << 30) << 10;
  e->step_output_max = cfg_int(c, "limits.step_output_kb", 64, 1, INT64_C(1) << 30) << 10;
  e->mgr_channel = rt_xstrdup(rt_config_str(c, "managers.channel", "console"));
  json_t *mc = json_object_get(json_object_get(rt_config_json(c), "managers"), "chat_id");
  e->mgr_chat = json_is_integer(mc) ? rt_xasprintf("%lld", (long long)json_integer_value(mc))
                                    : rt_xstrdup(json_is_string(mc) ? json_string_value(mc) : "managers");

  char *store_path = o->store_path ? rt_xstrdup(o->store_path)
                                   : rt_config_path(c, rt_config_str(c, "store.path", "data/shop.db"));
  char *sql_dir = rt_paths_schema("sql");
  rt_store_opts so = {
    .sql_dir = sql_dir,
    .sync_full = strcmp(rt_config_str(c, "store.synchronous", "full"), "full") == 0,
    .sync_off = o->test_mode,
    .max_pages = o->store_max_pages,
    .cache_mb = (int)cfg_int(c, "store.cache_mb", 16, 1, 1 << 20),
    .no_busy_wait = true,
  };
  int rc = rt_store_open(store_path, &so, &e->store, err);
  free(sql_dir);
  free(store_path);
  if (rc != RT_OK) {
    e->store = NULL;
    goto fail;
  }

  e->flows_dir = o->flows_dir ? rt_xstrdup(o->flows_dir)
                              : rt_paths_flows(rt_config_dir(c), rt_config_str(c, "flows.dir", "flows"));
  const char *lib = rt_config_str(c, "flows.lib", NULL);
  e->lib_dir = lib ? rt_config_path(c, lib) : NULL;
  e->start_flow = rt_xstrdup(rt_config_str(c, "flows.start", "lead"));
  e->shop_view = shop_view(c);
  e->host = (rt_host){.ud = e, .http = host_http, .ready = host_ready,
                      .customer = host_customer, .now_ms = host_now};
  e->bopts = (rt_bundle_opts){
    .flows_dir = e->flows_dir, .lib_dir = e->lib_dir, .start_flow = e->start_flow,
    .shop = e->shop_view,
    .mem_limit = (size_t)cfg_int(c, "limits.lua_memory_mb", 64, 1, 1 << 20) << 20,
    .step_instructions = cfg_int(c, "limits.step_instructions", 10000000, 1000, INT64_C(1) << 60),
    .step_timeout_ms = e->step_timeout_ms,
    .state_max_bytes = (size_t)cfg_int(c, "limits.state_max_kb", 1024, 1, INT64_C(1) << 30) << 10,
    .load_instructions = 50000000,
    .max_http_per_turn = (int)cfg_int(c, "limits.http_requests_per_step", 10, 0, 1000000),
    .host = &e->host,
  };
  if (!o->flows_dir && (rc = rt_paths_flows_check(rt_config_dir(c), rt_config_str(c, "flows.dir",
                                                  "flows"), e->flows_dir, err)) != RT_OK)
    goto fail;
  rc = rt_bundle_load(&e->bopts, &e->bundle, err);
  if (rc != RT_OK) goto fail;

  uv_idle_init(e->loop, &e->pump);
  e->pump.data = e;
  uv_timer_init(e->loop, &e->wake);
  e->wake.data = e;
  uv_timer_init(e->loop, &e->watchdog);
  e->watchdog.data = e;
  e->handles_open = 3;
  rt_deliver_opts dopts = {.loop = e->loop, .store = e->store, .clock = &e->clock,
                           .wake = deliver_wake, .wake_ud = e};
  e->dl = rt_deliver_new(&dopts);
  e->handles_open++;

  if (!e->test_mode) {
    char *mark = NULL;
    if (rt_store_meta_get(e->store, "engine.running", &mark) == RT_OK && mark &&
        strcmp(mark, "1") == 0)
      e->isolating = true;
    free(mark);
    /* Not fatal (a full disk must not stop the bot from starting and
     * reporting it): this run then goes without crash detection. */
    if (set_running_mark(e, "1") != RT_OK) {
      char q[512];
      rt_log_quote(rt_store_errmsg(e->store), q, sizeof q);
      rt_log(RT_LOG_ERROR, "store-error", "err=%s what=running-mark", q);
    }
  }
  rt_store_inbox_pending(e->store, recover_one, e);
  if (e->isolating && !e->niso) e->isolating = false;
  if (e->isolating)
    rt_log(RT_LOG_WARN, "unclean-stop", "chats=%zu: the events left over run one at a time",
           e->niso);
  *out = e;
  return RT_OK;
fail:
  rt_store_close(e->store);
  rt_map_free(&e->convs);
  json_decref(e->shop_view);
  free(e->flows_dir); free(e->lib_dir); free(e->start_flow);
  free(e->mgr_channel); free(e->mgr_chat);
  free(e);
  return rc;
}

void rt_engine_add_channel(rt_engine *e, rt_channel *ch) { rt_deliver_add_channel(e->dl, ch); }

void rt_engine_start(rt_engine *e) {
  uv_timer_start(&e->watchdog, watchdog_cb, 250, 250);
  rt_deliver_start(e->dl);    /* whatever a previous run left unsent */
  if (!e->test_mode) {
    rt_engine_fire_timers(e);
    arm_wake(e);
  }
  pump_start(e);
}

static void engine_free(rt_engine *e) {
  void (*done)(void *) = e->close_done;
  void *ud = e->close_ud;
  size_t it = 0;
  const char *k;
  void *v;
  /* A clean stop. While recovered events still wait to run alone, the mark
   * stays: the next start isolates them again. */
  if (!e->test_mode && !e->isolating && !e->store_error) set_running_mark(e, "0");
  for (size_t i = 0; i < e->niso; i++) free(e->iso_keys[i]);
  free(e->iso_keys);
  while (rt_map_next(&e->convs, &it, &k, &v)) queue_free(v);
  rt_map_free(&e->convs);
  for (size_t i = 0; i < e->nrecv; i++) recv_free(&e->recv[i]);
  free(e->recv);
  free(e->resume);
  rt_bundle_unref(e->bundle);
  rt_store_close(e->store);
  json_decref(e->shop_view);
  free(e->flows_dir); free(e->lib_dir); free(e->start_flow);
  free(e->reload_error); free(e->store_error);
  free(e->mgr_channel); free(e->mgr_chat);
  free(e);
  if (done) done(ud);
}

static void handle_closed(uv_handle_t *h) {
  rt_engine *e = h->data;
  if (--e->handles_open == 0) engine_free(e);
}

static void http_closed(void *ud) { handle_closed(ud); }

static void check_closed(void *ud) {
  rt_engine *e = ud;
  if (--e->handles_open == 0) engine_free(e);
}

void rt_engine_close(rt_engine *e, void (*done)(void *), void *ud) {
  e->closing = true;
  e->close_done = done;
  e->close_ud = ud;
  /* A reload check still running: its child is killed, and the engine is
   * freed only once it has been reaped (no zombie, no orphan). */
  if (e->check) {
    e->handles_open++;
    reload_cancel(e, check_closed, e);
  }
  /* Abandon turns in flight: their inbox rows stay 'new' and run again at
   * the next start. */
  for (turn *t = e->done_head; t;) { turn *n = t->next; turn_free(t); t = n; }
  e->done_head = e->done_tail = NULL;
  while (e->yielded) { turn *t = e->yielded; yielded_del(e, t); turn_free(t); }
  free(e->resume);
  e->resume = NULL;
  e->nresume = 0;
  uv_close((uv_handle_t *)&e->pump, handle_closed);
  uv_close((uv_handle_t *)&e->wake, handle_closed);
  uv_close((uv_handle_t *)&e->watchdog, handle_closed);
  rt_deliver_close(e->dl, check_closed, e);
  e->dl = NULL;
  if (e->http) {
    e->handles_open++;
    e->pump.data = e;
    rt_http *h = e->http;
    e->http = NULL;
    /* http_closed receives the handle's data pointer owner: reuse pump's. */
    rt_http_close(h, http_closed, &e->pump);
  }
}

/* ---- accessors ---- */

const char *rt_engine_reload_error(const rt_engine *e) { return e->reload_error; }
const char *rt_engine_store_error(const rt_engine *e) { return e->store_error; }
const char *rt_engine_flows_version(const rt_engine *e) { return rt_bundle_version(e->bundle); }
const char *rt_engine_flows_dir(const rt_engine *e) { return e->flows_dir; }
json_t *rt_engine_describe(rt_engine *e) { return rt_bundle_describe(e->bundle); }
rt_clock *rt_engine_clock(rt_engine *e) { return &e->clock; }
rt_store *rt_engine_store(rt_engine *e) { return e->store; }
rt_config *rt_engine_config(rt_engine *e) { return e->cfg; }
uv_loop_t *rt_engine_loop(rt_engine *e) { return e->loop; }
const rt_engine_stats *rt_engine_get_stats(const rt_engine *e) { return &e->st; }

void rt_engine_set_http_script(rt_engine *e, json_t *(*fn)(void *, json_t *), void *ud) {
  e->http_script = fn;
  e->http_script_ud = ud;
}

bool rt_engine_idle(const rt_engine *e) {
  if (!(!e->nrecv && !e->ready_head && !e->running && !e->done_head && !e->nresume &&
        rt_deliver_idle(e->dl) && (!e->outbox_dirty || !rt_deliver_nchannels(e->dl))))
    return false;
  /* A wake-up already due is work too (test mode fires timers itself). */
  if (e->test_mode || e->store_error) return true;
  int64_t next = rt_store_timer_next(e->store);
  return next < 0 || next > rt_clock_now(&e->clock);
}

char *rt_engine_metrics(rt_engine *e) {
  rt_store_counts c = {0};
  rt_store_counts_get(e->store, &c);
  return rt_xasprintf(
      "# HELP shopbot_events_processed_total Inbound events applied.\n"
      "# TYPE shopbot_events_processed_total counter\n"
      "shopbot_events_processed_total %llu\n"
      "# HELP shopbot_steps_failed_total Steps that raised, looped or ran out of memory.\n"
      "# TYPE shopbot_steps_failed_total counter\n"
      "shopbot_steps_failed_total %llu\n"
      "# HELP shopbot_reloads_total Flow reloads by result.\n"
      "# TYPE shopbot_reloads_total counter\n"
      "shopbot_reloads_total{result=\"ok\"} %llu\n"
      "shopbot_reloads_total{result=\"failed\"} %llu\n"
      "# HELP shopbot_messages_sent_total Outbox messages delivered.\n"
      "# TYPE shopbot_messages_sent_total counter\n"
      "shopbot_messages_sent_total %llu\n"
      "# HELP shopbot_conversations Stored conversations.\n"
      "# TYPE shopbot_conversations gauge\n"
      "shopbot_conversations %lld\n"
      "# HELP shopbot_outbox_depth Messages waiting to be sent.\n"
      "# TYPE shopbot_outbox_depth gauge\n"
      "shopbot_outbox_depth %lld\n"
      "# HELP shopbot_timers_pending Durable wake-ups scheduled.\n"
      "# TYPE shopbot_timers_pending gauge\n"
      "shopbot_timers_pending %lld\n"
      "# HELP shopbot_inbox_pending Received events not yet applied.\n"
      "# TYPE shopbot_inbox_pending gauge\n"
      "shopbot_inbox_pending %lld\n"
      "# HELP shopbot_lua_memory_bytes Memory used by the current flows' Lua state.\n"
      "# TYPE shopbot_lua_memory_bytes gauge\n"
      "shopbot_lua_memory_bytes %zu\n",
      (unsigned long long)e->st.events, (unsigned long long)e->st.steps_failed,
      (unsigned long long)e->st.reloads_ok, (unsigned long long)e->st.reloads_failed,
      (unsigned long long)e->st.sent, (long long)c.conversations, (long long)c.outbox_pending,
      (long long)c.timers_pending, (long long)c.inbox_pending, rt_bundle_mem(e->bundle));
}

json_t *rt_engine_health(rt_engine *e) {
  return json_pack("{s:b, s:s, s:i, s:s?, s:s?, s:I, s:I}",
                   "ok", !e->store_error || (e->store_busy_since &&
                                             now_ms(e) - e->store_busy_since < STORE_BUSY_OK_MS),
                   "flows_version", rt_bundle_version(e->bundle),
                   "flows", rt_bundle_flow_count(e->bundle),
                   "last_reload_error", e->reload_error,
                   "store_error", e->store_error,
                   "events_processed", (json_int_t)e->st.events,
                   "running", (json_int_t)e->running);
}
