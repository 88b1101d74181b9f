/* studio.c -- the studio's page, API and session (see studio.h). */
#include "studio.h"
#include "buf.h"
#include "campaign.h"
#include "clock.h"
#include "import.h"
#include "log.h"
#include "stats.h"
#include "store_tools.h"
#include "subproc.h"
#include "utf8.h"
#include "studio_static.h"   /* generated from tools/studio/ (CMakeLists.txt) */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TICK_MS 2                  /* how often a waiting request looks for idle */
#define PUSH_DELAY_MS 30           /* state pushes to the pages are batched so */
#define MAX_MSGS 500               /* per chat, shown in the page */
#define MAX_LINES 5000             /* per chat, recorded for the transcript */
#define MAX_CHATS 200
#define MAX_TEXT 4096              /* bytes of a message typed in the page */
#define MAX_BODY (64 << 10)
#define TESTS_TIMEOUT_MS 300000
#define CLOCK_STEPS_MAX 100000     /* wake-ups fired by one time move */
#define CLOCK_MAX_MS INT64_C(253402300799999)  /* 9999-12-31, as transcripts */
#define CLOCK_STEP_MAX_SEC (INT64_C(36500) * 86400)
#define EVENTS_SHOWN 8

/* The channels captured: every name a flow or a campaign may address, so
 * nothing the private copy does can reach a real customer. */
static const char *const chan_names[] = {"test", "console", "telegram", "whatsapp", "webchat"};
#define NCHANS (sizeof chan_names / sizeof *chan_names)

typedef struct chat chat;
struct chat {
  char *key, *channel, *id;
  json_t *msgs;              /* [{dir: in|out|manager, text, at, buttons?}] */
  json_t *lines;             /* the transcript so far, one string a line */
  int64_t pending_clock;     /* a time move not yet written (-1: none) */
  char *rec_step, *rec_mode; /* what the last expect lines said */
  int64_t rec_leads;
  json_t *says;              /* the manager's replies not yet delivered, in order */
  bool truncated;            /* over MAX_LINES: cannot be saved whole */
  chat *next;
};

typedef struct waiter waiter;
struct waiter {
  rt_httpd_req *req;
  waiter *next;
};

typedef struct wsconn wsconn;
struct wsconn {
  rt_httpd_ws *ws;
  wsconn *next;
};

struct rt_studio {
  rt_studio_opts o;
  char *shop_dir, *real_store, *tests_dir, *tests_rel, *customers_csv;
  const char *tz, *managers_key_ch, *managers_key_id;
  rt_channel chans[NCHANS];
  chat *chats, *chats_tail;
  int nchats;
  json_t *managers;          /* messages to the managers' chat */
  json_t *imported;          /* the customers.csv import's report, or null */
  json_t *reload;            /* {seq, ok, at, version, error} */
  json_t *tests;             /* the last run: {running, passed, failed, files, ...} */
  rt_subproc *tests_proc;
  waiter *waiters;
  wsconn *conns;
  uv_timer_t tick, push;
  int open;                  /* handles not closed yet */
  bool moving, stopping, push_armed;
  int64_t target;
  int steps;
  unsigned long ev_seq;      /* ids of the events the page sends */
  char exe[PATH_MAX];
  void (*done)(void *);
  void *done_ud;
};

/* ---- small helpers ---- */

static int64_t now_ms(rt_studio *st) { return rt_clock_now(rt_engine_clock(st->o.e)); }

static json_t *time_json(rt_studio *st, int64_t ms) {
  char s[64];
  rt_clock_format(ms, st->tz, s, sizeof s);
  return json_string(s);
}

static void respond_json(rt_httpd_req *req, int status, json_t *j) {
  char *body = json_dumps(j, JSON_COMPACT);
  rt_httpd_reply_header(req, "Cache-Control", "no-store");
  rt_httpd_respond(req, status, "application/json; charset=utf-8", body, body ? strlen(body) : 0);
  free(body);
  json_decref(j);
}

static void respond_err(rt_httpd_req *req, int status, const char *fmt, ...)
  __attribute__((format(printf, 3, 4)));
static void respond_err(rt_httpd_req *req, int status, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *msg = NULL;
  if (vasprintf(&msg, fmt, ap) < 0) msg = NULL;
  va_end(ap);
  respond_json(req, status, json_pack("{s:s}", "error", msg ? msg : "error"));
  free(msg);
}

bool rt_studio_name_ok(const char *name) {
  size_t n = name ? strlen(name) : 0;
  if (n < 1 || n > 64) return false;
  for (size_t i = 0; i < n; i++) {
    char c = name[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
          c == '_' || c == '-'))
      return false;
  }
  return true;
}

bool rt_studio_flow_path_ok(const char *p) {
  size_t n = p ? strlen(p) : 0;
  if (n < 5 || n > 255 || strcmp(p + n - 4, ".lua") != 0 || p[0] == '/') return false;
  const char *seg = p;
  for (size_t i = 0; i <= n; i++) {
    char c = p[i];
    if (c == '/' || c == '\0') {
      size_t len = (size_t)(p + i - seg);
      if (len == 0 || (len == 1 && seg[0] == '.') || (len == 2 && seg[0] == '.' && seg[1] == '.'))
        return false;
      seg = p + i + 1;
      continue;
    }
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
          c == '_' || c == '-' || c == '.'))
      return false;
  }
  return true;
}

json_t *rt_studio_error_json(const char *err) {
  json_t *j = json_pack("{s:s}", "text", err ? err : "");
  if (!err) return j;
  /* Lua's "chunk:LINE: message"; the chunk is the file's path. The first
   * ".lua:" followed by digits and ": " marks it. */
  for (const char *p = strstr(err, ".lua:"); p; p = strstr(p + 1, ".lua:")) {
    const char *d = p + 5, *e = d;
    while (*e >= '0' && *e <= '9') e++;
    if (e == d || e - d > 9 || *e != ':') continue;
    const char *start = p;
    while (start > err && start[-1] != ' ' && start[-1] != '\n' && start[-1] != '"') start--;
    json_object_set_new(j, "file", json_stringn(start, (size_t)(p + 4 - start)));
    json_object_set_new(j, "line", json_integer(atoi(d)));
    const char *m = e + 1;
    while (*m == ' ') m++;
    json_object_set_new(j, "message", json_string(m));
    break;
  }
  return j;
}

/* ---- chats ---- */

static chat *chat_find(rt_studio *st, const char *channel, const char *id) {
  for (chat *c = st->chats; c; c = c->next)
    if (strcmp(c->channel, channel) == 0 && strcmp(c->id, id) == 0) return c;
  return NULL;
}

static void line_add(chat *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void line_add(chat *c, const char *fmt, ...) {
  if (json_array_size(c->lines) >= MAX_LINES) { c->truncated = true; return; }
  va_list ap;
  va_start(ap, fmt);
  char *s = NULL;
  if (vasprintf(&s, fmt, ap) < 0) s = NULL;
  va_end(ap);
  if (s) json_array_append_new(c->lines, json_string(s));
  free(s);
}

/* A transcript line holds one line: line breaks become spaces (a bot: line
 * ignores how whitespace is laid out, so it still matches). */
static char *one_line(const char *s) {
  char *o = rt_xstrdup(s ? s : "");
  for (char *p = o; *p; p++)
    if (*p == '\n' || *p == '\r' || *p == '\t') *p = ' ';
  size_t n = strlen(o);
  while (n && o[n - 1] == ' ') o[--n] = '\0';
  char *b = o;
  while (*b == ' ') b++;
  memmove(o, b, strlen(b) + 1);
  return o;
}

static void flush_clock(rt_studio *st, chat *c) {
  if (c->pending_clock < 0) return;
  char when[64];
  rt_clock_format(c->pending_clock, st->tz, when, sizeof when);
  line_add(c, "clock: %s", when);
  c->pending_clock = -1;
}

static chat *chat_new(rt_studio *st, const char *channel, const char *id) {
  chat *c = rt_xcalloc(1, sizeof *c);
  c->channel = rt_xstrdup(channel);
  c->id = rt_xstrdup(id);
  c->key = rt_xasprintf("%s:%s", channel, id);
  c->msgs = json_array();
  c->lines = json_array();
  c->says = json_array();
  c->pending_clock = -1;
  c->rec_mode = rt_xstrdup("bot");
  char when[64];
  rt_clock_format(now_ms(st), st->tz, when, sizeof when);
  /* The note is the shop's (tests.recorded_note, default in the schema). */
  rt_buf note = RT_BUF_INIT;
  const char *names[] = {"chat"}, *values[] = {c->key};
  rt_buf_fill(&note, rt_config_str(st->o.cfg, "tests.recorded_note", ""), names, values, 1);
  if (note.len) line_add(c, "# %s", rt_buf_str(&note));
  rt_buf_free(&note);
  line_add(c, "clock: %s", when);
  /* The private store holds the sample customers from the start, so the
   * replay imports them too (a check-in needs its customer; a chat may
   * name an imported phone). */
  if (st->customers_csv) line_add(c, "import: %s", st->customers_csv);
  line_add(c, "chat: %s", c->key);
  if (st->chats_tail) st->chats_tail->next = c;
  else st->chats = c;
  st->chats_tail = c;
  st->nchats++;
  return c;
}

static void chat_free(chat *c) {
  free(c->key); free(c->channel); free(c->id);
  json_decref(c->msgs);
  json_decref(c->lines);
  json_decref(c->says);
  free(c->rec_step); free(c->rec_mode);
  free(c);
}

static void msg_add(rt_studio *st, chat *c, const char *dir, const char *text, json_t *buttons) {
  if (json_array_size(c->msgs) >= MAX_MSGS) json_array_remove(c->msgs, 0);
  json_t *m = json_pack("{s:s, s:s, s:o}", "dir", dir, "text", text ? text : "", "at",
                        time_json(st, now_ms(st)));
  if (buttons) json_object_set_new(m, "buttons", buttons);
  json_array_append_new(c->msgs, m);
}

/* ---- the state the page shows ---- */

static bool timer_row(void *ud, const rt_store_row *r) {
  void **x = ud;
  rt_studio *st = x[0];
  const char *name = rt_store_row_text(r, 0), *step = rt_store_row_text(r, 2);
  json_array_append_new(x[1], json_pack("{s:s, s:o, s:s, s:I}", "name", name ? name : "", "due",
                                        time_json(st, rt_store_row_int(r, 1)), "step",
                                        step ? step : "", "due_ms",
                                        (json_int_t)rt_store_row_int(r, 1)));
  return true;
}

static bool event_row(void *ud, const rt_store_row *r) {
  void **x = ud;
  rt_studio *st = x[0];
  const char *kind = rt_store_row_text(r, 1), *flow = rt_store_row_text(r, 2),
             *camp = rt_store_row_text(r, 3), *data = rt_store_row_text(r, 4);
  json_t *d = data ? json_loads(data, 0, NULL) : NULL;
  json_array_append_new(x[1], json_pack("{s:o, s:s, s:s?, s:s?, s:o}", "at",
                                        time_json(st, rt_store_row_int(r, 0)), "kind",
                                        kind ? kind : "", "flow", flow, "campaign", camp, "data",
                                        d ? d : json_object()));
  return true;
}

static json_t *chat_state(rt_studio *st, chat *c) {
  rt_store *s = rt_engine_store(st->o.e);
  json_t *j = json_pack("{s:s, s:s, s:s, s:O, s:i, s:b}", "key", c->key, "channel", c->channel,
                        "chat", c->id, "messages", c->msgs, "lines",
                        (int)json_array_size(c->lines), "savable",
                        !c->truncated && strcmp(c->channel, "test") == 0);
  rt_conv_row row;
  if (rt_store_conv_get(s, c->channel, c->id, false, 0, &row) == RT_OK) {
    json_t *slots = json_loads(row.state ? row.state : "{}", 0, NULL);
    json_object_set_new(j, "flow", row.flow ? json_string(row.flow) : json_null());
    json_object_set_new(j, "step", row.step ? json_string(row.step) : json_null());
    json_object_set_new(j, "mode", json_string(row.mode ? row.mode : "bot"));
    json_object_set_new(j, "slots", slots ? slots : json_object());
    json_object_set_new(j, "phone", row.phone ? json_string(row.phone) : json_null());
    json_object_set_new(j, "error", row.last_error ? json_string(row.last_error) : json_null());
    json_t *timers = json_array(), *events = json_array();
    void *tx[2] = {st, timers}, *ex[2] = {st, events};
    rt_store_conv_timers(s, row.id, timer_row, tx);
    rt_store_conv_events(s, row.id, EVENTS_SHOWN, event_row, ex);
    json_object_set_new(j, "timers", timers);
    json_object_set_new(j, "events", events);
    json_object_set_new(j, "leads", json_integer(rt_store_conv_leads(s, row.id)));
    rt_conv_row_clear(&row);
  } else {
    json_object_set_new(j, "mode", json_string("bot"));
    json_object_set_new(j, "slots", json_object());
    json_object_set_new(j, "timers", json_array());
    json_object_set_new(j, "events", json_array());
    json_object_set_new(j, "leads", json_integer(0));
  }
  return j;
}

static bool customer_row(void *ud, const rt_store_row *r) {
  void **x = ud;
  rt_studio *st = x[0];
  const char *phone = rt_store_row_text(r, 0), *name = rt_store_row_text(r, 1),
             *car = rt_store_row_text(r, 2);
  json_t *c = json_pack("{s:s, s:s?, s:s?}", "phone", phone ? phone : "", "name", name, "car", car);
  if (!rt_store_row_null(r, 3)) {
    char d[64];
    rt_clock_format(rt_store_row_int(r, 3), st->tz, d, sizeof d);
    d[10] = '\0';
    json_object_set_new(c, "last_purchase", json_string(d));
  }
  json_array_append_new(x[1], c);
  return true;
}

static json_t *state_json(rt_studio *st) {
  rt_engine *e = st->o.e;
  json_t *chats = json_array(), *customers = json_array();
  for (chat *c = st->chats; c; c = c->next) json_array_append_new(chats, chat_state(st, c));
  void *cx[2] = {st, customers};
  rt_store_customers_list(rt_engine_store(e), 200, customer_row, cx);
  const char *rerr = rt_engine_reload_error(e);
  struct stat sb;
  json_t *j = json_pack(
    "{s:s, s:s, s:I, s:o, s:s, s:{s:s, s:s, s:o}, s:O, s:O, s:o, s:o, s:O, s:O, s:s, s:b, s:b}",
    "shop", rt_config_str(st->o.cfg, "name", "?"), "shop_dir", st->shop_dir, "clock",
    (json_int_t)now_ms(st), "clock_text", time_json(st, now_ms(st)), "tz", st->tz, "flows",
    "version", rt_engine_flows_version(e), "dir", rt_engine_flows_dir(e), "error",
    rerr ? rt_studio_error_json(rerr) : json_null(), "reload", st->reload, "tests", st->tests,
    "chats", chats, "customers", customers, "managers", st->managers, "imported", st->imported,
    "managers_chat", st->managers_key_id,
    "moving", st->moving, "shop_store", stat(st->real_store, &sb) == 0);
  json_object_set_new(j, "private_store", json_string(rt_config_str(st->o.cfg, "store.path", "")));
  return j;
}

/* Pushes the state to every open page, batched: many messages of one turn
 * make one push. */
static void push_now(uv_timer_t *t) {
  rt_studio *st = t->data;
  st->push_armed = false;
  if (!st->conns || st->stopping) return;
  json_t *j = json_pack("{s:s, s:o}", "t", "state", "state", state_json(st));
  char *s = json_dumps(j, JSON_COMPACT);
  json_decref(j);
  if (!s) return;
  size_t n = strlen(s);
  for (wsconn *c = st->conns; c; c = c->next) rt_httpd_ws_send(c->ws, s, n, false);
  free(s);
}

static void push_soon(rt_studio *st) {
  if (st->push_armed || st->stopping) return;
  st->push_armed = true;
  uv_timer_start(&st->push, push_now, PUSH_DELAY_MS, 0);
}

/* ---- capture channels ---- */

static void cap_send(rt_channel *ch, const rt_out_msg *m, rt_send_done done, void *ud) {
  rt_studio *st = ch->impl;
  const char *text = m->text ? m->text : "";
  if (strcmp(ch->name, st->managers_key_ch) == 0 && strcmp(m->chat_id, st->managers_key_id) == 0) {
    if (json_array_size(st->managers) >= MAX_MSGS) json_array_remove(st->managers, 0);
    json_array_append_new(st->managers, json_pack("{s:s, s:o, s:s?}", "text", text, "at",
                                                  time_json(st, now_ms(st)), "about", m->about));
  } else {
    chat *c = chat_find(st, ch->name, m->chat_id);
    if (!c && st->nchats < MAX_CHATS) c = chat_new(st, ch->name, m->chat_id);
    const char *say = c ? json_string_value(json_array_get(c->says, 0)) : NULL;
    if (say && strcmp(say, text) == 0) {
      /* The manager's reply reaching the customer: shown as the manager's;
       * its manager: line checks it in a replay (no bot: line). */
      msg_add(st, c, "manager", text, NULL);
      json_array_remove(c->says, 0);
    } else if (c) {
      json_t *b = NULL;
      if (m->nbuttons) {
        b = json_array();
        for (size_t i = 0; i < m->nbuttons; i++) json_array_append_new(b, json_string(m->buttons[i]));
      }
      msg_add(st, c, "out", text, b);
      flush_clock(st, c);
      char *l = one_line(text);
      line_add(c, "bot: %s", l);
      free(l);
    }
  }
  push_soon(st);
  done(ud, &(rt_send_result){.verdict = RT_SEND_DELIVERED});
}

/* ---- waiting for the bot: answers once the engine is idle ---- */

/* The expectations a replay must meet, written when they change: the step
 * the conversation waits in, who has it, a new lead. */
static void record_expectations(rt_studio *st) {
  rt_store *s = rt_engine_store(st->o.e);
  for (chat *c = st->chats; c; c = c->next) {
    rt_conv_row row;
    if (rt_store_conv_get(s, c->channel, c->id, false, 0, &row) != RT_OK) continue;
    char *step = row.flow && row.step ? rt_xasprintf("%s.%s", row.flow, row.step) : NULL;
    const char *mode = row.mode ? row.mode : "bot";
    int64_t leads = rt_store_conv_leads(s, row.id);
    bool step_changed = step && (!c->rec_step || strcmp(step, c->rec_step) != 0);
    bool mode_changed = strcmp(mode, c->rec_mode) != 0;
    if (leads > c->rec_leads || step_changed || mode_changed) flush_clock(st, c);
    if (leads > c->rec_leads) line_add(c, "expect lead");
    if (step_changed) line_add(c, "expect step %s", step);
    if (mode_changed) line_add(c, "expect mode %s", mode);
    if (leads > c->rec_leads) c->rec_leads = leads;
    if (step) { free(c->rec_step); c->rec_step = step; }
    if (mode_changed) { free(c->rec_mode); c->rec_mode = rt_xstrdup(mode); }
    rt_conv_row_clear(&row);
  }
}

static void tick(uv_timer_t *t);

static void tick_start(rt_studio *st) {
  if (!st->stopping && !uv_is_active((uv_handle_t *)&st->tick))
    uv_timer_start(&st->tick, tick, 0, TICK_MS);
}

static void wait_idle(rt_studio *st, rt_httpd_req *req) {
  waiter *w = rt_xcalloc(1, sizeof *w);
  w->req = req;
  w->next = st->waiters;
  st->waiters = w;
  tick_start(st);
}

static void answer_waiters(rt_studio *st, int status, const char *err) {
  waiter *w = st->waiters;
  st->waiters = NULL;
  while (w) {
    waiter *n = w->next;
    if (err) respond_err(w->req, status, "%s", err);
    else respond_json(w->req, status, json_pack("{s:b, s:o}", "ok", 1, "state", state_json(st)));
    free(w);
    w = n;
  }
}

/* One turn of the wait: while the engine works, nothing; a time move takes
 * its next wake-up; when all is quiet the waiting requests get the state. */
static void tick(uv_timer_t *t) {
  rt_studio *st = t->data;
  if (st->stopping) { uv_timer_stop(t); return; }
  if (!rt_engine_idle(st->o.e)) return;
  if (st->moving) {
    if (st->steps++ < CLOCK_STEPS_MAX && rt_engine_clock_step(st->o.e, st->target)) return;
    if (now_ms(st) < st->target) rt_clock_set(rt_engine_clock(st->o.e), st->target);
    st->moving = false;
  }
  uv_timer_stop(t);
  record_expectations(st);
  answer_waiters(st, 200, NULL);
  push_soon(st);
}

/* ---- requests ---- */

/* A browser page of another site must not drive the studio: POSTs carry
 * JSON (a cross-site form cannot send that without asking first, and the
 * studio never says yes), and an Origin, when sent, is this host. */
static bool same_origin(rt_httpd_req *req) {
  const char *origin = rt_httpd_req_header(req, "Origin"), *host = rt_httpd_req_header(req, "Host");
  if (!origin) return true;
  if (!host || strncmp(origin, "http://", 7) != 0) return false;
  return strcmp(origin + 7, host) == 0;
}

/* The request's JSON object, or NULL after answering 4xx. */
static json_t *body_json(rt_httpd_req *req) {
  if (!same_origin(req)) {
    respond_err(req, 403, "requests come from the studio's own page only");
    return NULL;
  }
  const char *ct = rt_httpd_req_header(req, "Content-Type");
  if (!ct || strncasecmp(ct, "application/json", 16) != 0) {
    respond_err(req, 415, "send JSON (Content-Type: application/json)");
    return NULL;
  }
  size_t len;
  const unsigned char *b = rt_httpd_req_body(req, &len);
  json_error_t je;
  json_t *j = json_loadb((const char *)b, len, JSON_REJECT_DUPLICATES, &je);
  if (!j || !json_is_object(j)) {
    if (j) respond_err(req, 400, "malformed request: expected a JSON object");
    else respond_err(req, 400, "malformed request: JSON at line %d column %d: %s", je.line,
                     je.column, je.text);
    json_decref(j);
    return NULL;
  }
  return j;
}

static const char *jstr(json_t *o, const char *k) { return json_string_value(json_object_get(o, k)); }

/* A chat ID the page may use: 1-64 of A-Z a-z 0-9 . _ - + @. */
static bool id_ok(const char *s) {
  size_t n = s ? strlen(s) : 0;
  if (n < 1 || n > 64) return false;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
          strchr("._-+@", c)))
      return false;
  }
  return true;
}

/* "ID" (a test customer) or "channel:ID" of a chat the studio knows. */
static bool parse_chat(rt_studio *st, rt_httpd_req *req, const char *spec, bool must_exist,
                       char *channel, size_t chn, const char **id, chat **out) {
  *out = NULL;
  if (!spec) { respond_err(req, 400, "chat is required"); return false; }
  const char *colon = strchr(spec, ':');
  const char *ch = "test";
  size_t clen = 4;
  *id = spec;
  if (colon) { ch = spec; clen = (size_t)(colon - spec); *id = colon + 1; }
  bool known = false;
  for (size_t i = 0; i < NCHANS; i++)
    if (strlen(chan_names[i]) == clen && strncmp(chan_names[i], ch, clen) == 0) known = true;
  if (!known || clen >= chn) { respond_err(req, 400, "unknown channel in chat \"%.64s\"", spec); return false; }
  if (!id_ok(*id)) {
    respond_err(req, 400, "bad chat id: 1-64 of A-Z a-z 0-9 . _ - + @");
    return false;
  }
  memcpy(channel, ch, clen);
  channel[clen] = '\0';
  if (strcmp(channel, st->managers_key_ch) == 0 && strcmp(*id, st->managers_key_id) == 0) {
    respond_err(req, 400, "%s:%s is the managers' chat, not a customer's", channel, *id);
    return false;
  }
  *out = chat_find(st, channel, *id);
  if (must_exist && !*out) {
    respond_err(req, 404, "no such chat: %s:%s", channel, *id);
    return false;
  }
  return true;
}

static bool refuse_busy(rt_studio *st, rt_httpd_req *req) {
  if (st->stopping) { respond_err(req, 503, "the studio is stopping"); return true; }
  if (st->moving) { respond_err(req, 409, "time is moving; try again when it stopped"); return true; }
  return false;
}

static int send_event(rt_studio *st, chat *c, const char *kind, const char *text,
                      const char *say) {
  char ext[64];
  snprintf(ext, sizeof ext, "studio-%lld-%lu", (long long)now_ms(st), ++st->ev_seq);
  char *extra = NULL;
  if (say) {
    json_t *x = json_pack("{s:s}", "say", say);
    extra = json_dumps(x, JSON_COMPACT);
    json_decref(x);
  }
  rt_event_in ev = {.channel = c->channel, .ext_id = ext, .chat_id = c->id, .user_id = c->id,
                    .kind = kind, .text = text, .extra_json = extra};
  int rc = rt_engine_receive(st->o.e, &ev, NULL, NULL);
  free(extra);
  return rc;
}

/* What the test customer or the manager did goes to the bot; once taken it
 * is shown in the chat (show; NULL: when delivered, a manager's reply),
 * written to the transcript as line, and the request answers when the bot
 * is idle. say: the text a manager writes to the customer (as a reply from
 * the managers' chat carries it), or NULL. */
static void act(rt_studio *st, rt_httpd_req *req, chat *c, const char *kind, const char *text,
                const char *say, const char *show, const char *line) {
  bool mgr = strcmp(kind, "manager") == 0;
  if (say) json_array_append_new(c->says, json_string(say));
  int rc = send_event(st, c, kind, text, say);
  if (rc != RT_OK) {
    if (say) json_array_remove(c->says, json_array_size(c->says) - 1);
    respond_err(req, 500, "the bot refused the %s (error %d)", mgr ? "manager's action" : "message",
                rc);
    return;
  }
  if (show) msg_add(st, c, mgr ? "manager" : "in", show, NULL);
  flush_clock(st, c);
  line_add(c, "%s", line);
  wait_idle(st, req);
}

static void api_say(void *ud, rt_httpd_req *req) {
  rt_studio *st = ud;
  json_t *j = body_json(req);
  if (!j) return;
  if (refuse_busy(st, req)) { json_decref(j); return; }
  char channel[16];
  const char *id;
  chat *c;
  const char *text = jstr(j, "text");
  if (!parse_chat(st, req, jstr(j, "chat"), false, channel, sizeof channel, &id, &c)) {
    json_decref(j);
    return;
  }
  if (!text) { respond_err(req, 400, "text is required"); json_decref(j); return; }
  size_t n = strlen(text);
  if (n > MAX_TEXT || !rt_utf8_valid(text, n)) {
    respond_err(req, n > MAX_TEXT ? 413 : 400, n > MAX_TEXT ? "the message is over %d bytes"
                                                           : "the message is not UTF-8%.0d", MAX_TEXT);
    json_decref(j);
    return;
  }
  char *line = one_line(text);
  if (!*line) { respond_err(req, 400, "the message is empty"); free(line); json_decref(j); return; }
  if (!c && st->nchats >= MAX_CHATS) {
    respond_err(req, 409, "at most %d chats in one studio session", MAX_CHATS);
    free(line);
    json_decref(j);
    return;
  }
  if (!c) c = chat_new(st, channel, id);
  char *l = rt_xasprintf("user: %s", line);
  act(st, req, c, "text", line, NULL, line, l);
  free(l);
  free(line);
  json_decref(j);
}

/* take and release as the managers' chat sends them; a reply as a reply
 * there does: the chat becomes the manager's and the text goes to the
 * customer through the outbox. The transcript's manager: line is the same
 * (docs/transcripts.md). */
static void api_manager(void *ud, rt_httpd_req *req) {
  rt_studio *st = ud;
  json_t *j = body_json(req);
  if (!j) return;
  if (refuse_busy(st, req)) { json_decref(j); return; }
  char channel[16];
  const char *id;
  chat *c;
  if (!parse_chat(st, req, jstr(j, "chat"), true, channel, sizeof channel, &id, &c)) {
    json_decref(j);
    return;
  }
  const char *action = jstr(j, "action"), *text = jstr(j, "text");
  char *what = NULL;
  bool reply = false;
  if (action && (strcmp(action, "take") == 0 || strcmp(action, "release") == 0)) {
    what = rt_xstrdup(action);
  } else if (action && strcmp(action, "reply") == 0 && text && strlen(text) <= MAX_TEXT &&
             rt_utf8_valid(text, strlen(text))) {
    what = one_line(text);
    reply = true;
    if (!*what || strcmp(what, "take") == 0 || strcmp(what, "release") == 0) {
      free(what);
      what = NULL;
    }
  }
  if (!what) {
    respond_err(req, 400, "action is take, release or reply (with a text of 1-%d bytes)", MAX_TEXT);
    json_decref(j);
    return;
  }
  char *l = rt_xasprintf("manager: %s", what);
  if (reply) act(st, req, c, "manager", "take", what, NULL, l);
  else act(st, req, c, "manager", what, NULL, what, l);
  free(l);
  free(what);
  json_decref(j);
}

static void api_clock(void *ud, rt_httpd_req *req) {
  rt_studio *st = ud;
  json_t *j = body_json(req);
  if (!j) return;
  if (refuse_busy(st, req)) { json_decref(j); return; }
  const char *by = jstr(j, "by"), *to = jstr(j, "to");
  int64_t now = now_ms(st), target = 0;
  if (by && !to) {
    int64_t sec;
    const char *d = by[0] == '+' ? by + 1 : by;
    int rc = rt_parse_duration(d, &sec);
    if (rc != RT_OK || sec <= 0 || sec > CLOCK_STEP_MAX_SEC || now + sec * 1000 > CLOCK_MAX_MS) {
      respond_err(req, 400, "by: a duration like +1h, +1d, +3d (at most 36500d)");
      json_decref(j);
      return;
    }
    target = now + sec * 1000;
  } else if (to && !by) {
    if (rt_clock_parse(to, st->tz, &target) != RT_OK || target > CLOCK_MAX_MS) {
      respond_err(req, 400, "to: a date like 2026-12-05 10:00 (the shop's local time)");
      json_decref(j);
      return;
    }
    if (target < now) {
      char when[64];
      rt_clock_format(now, st->tz, when, sizeof when);
      respond_err(req, 400, "to: the clock only goes forward (it is %s now)", when);
      json_decref(j);
      return;
    }
  } else {
    respond_err(req, 400, "give by (+1h) or to (a date)");
    json_decref(j);
    return;
  }
  json_decref(j);
  for (chat *c = st->chats; c; c = c->next) c->pending_clock = target;
  st->moving = true;
  st->target = target;
  st->steps = 0;
  wait_idle(st, req);
}

static void api_checkin(void *ud, rt_httpd_req *req) {
  rt_studio *st = ud;
  json_t *j = body_json(req);
  if (!j) return;
  if (refuse_busy(st, req)) { json_decref(j); return; }
  const char *camp = jstr(j, "campaign"), *phone = jstr(j, "phone");
  if (!camp || (strcmp(camp, "retention") != 0 && strcmp(camp, "gifts") != 0)) {
    respond_err(req, 400, "campaign is retention or gifts");
    json_decref(j);
    return;
  }
  if (!id_ok(phone)) {
    respond_err(req, 400, "phone: the customer's phone as listed (+79120000001)");
    json_decref(j);
    return;
  }
  chat *c = chat_find(st, "test", phone);
  if (!c && st->nchats >= MAX_CHATS) {
    respond_err(req, 409, "at most %d chats in one studio session", MAX_CHATS);
    json_decref(j);
    return;
  }
  char *err = NULL;
  rt_store *s = rt_engine_store(st->o.e);
  int known = rt_store_customer_known(s, phone);
  if (known == 0) {
    respond_err(req, 404, "unknown customer %s: pick one of the imported sample (customers.csv)", phone);
    json_decref(j);
    return;
  }
  if (!c) c = chat_new(st, "test", phone);
  int rc = rt_campaign_checkin(s, camp, phone, "test", phone, now_ms(st), &err);
  if (rc != RT_OK) {
    respond_err(req, rc == RT_ENOENT ? 404 : rc == RT_EINVAL ? 400 : 500, "%s", err ? err : "failed");
  } else {
    flush_clock(st, c);
    line_add(c, "campaign(test:%s): %s", phone, camp);
    rt_engine_fire_timers(st->o.e);
    wait_idle(st, req);
  }
  free(err);
  json_decref(j);
}

static void api_state(void *ud, rt_httpd_req *req) {
  rt_studio *st = ud;
  respond_json(req, 200, state_json(st));
}

/* ---- save as a transcript ---- */

static void api_save(void *ud, rt_httpd_req *req) {
  rt_studio *st = ud;
  json_t *j = body_json(req);
  if (!j) return;
  if (refuse_busy(st, req)) { json_decref(j); return; }
  char channel[16];
  const char *id;
  chat *c;
  const char *name = jstr(j, "name");
  bool overwrite = json_is_true(json_object_get(j, "overwrite"));
  if (!rt_studio_name_ok(name)) {
    respond_err(req, 400, "name: 1-64 of A-Z a-z 0-9 _ - (the file is tests/NAME.chat; no "
                          "folders, no dots)");
    json_decref(j);
    return;
  }
  if (!parse_chat(st, req, jstr(j, "chat"), true, channel, sizeof channel, &id, &c)) {
    json_decref(j);
    return;
  }
  if (strcmp(c->channel, "test") != 0 || c->truncated) {
    respond_err(req, 400, "only a test customer's conversation (test:ID) of at most %d lines "
                          "can be saved", MAX_LINES);
    json_decref(j);
    return;
  }
  if (!st->tests_dir) {
    respond_err(req, 400, "tests.dir in shop.json is outside the shop folder: the studio "
                          "writes only inside it");
    json_decref(j);
    return;
  }
  mkdir(st->tests_dir, 0755);
  char *path = rt_xasprintf("%s/%s.chat", st->tests_dir, name);
  char *tmp = rt_xasprintf("%s/.%s.chat.tmp", st->tests_dir, name);
  struct stat sb;
  if (!overwrite && lstat(path, &sb) == 0) {
    respond_err(req, 409, "%s/%s.chat exists (save with overwrite to replace it)", st->tests_rel,
                name);
    goto out;
  }
  /* The expectations of the moment of saving, after any time moved since. */
  record_expectations(st);
  flush_clock(st, c);
  FILE *f = fopen(tmp, "w");
  if (!f) {
    respond_err(req, 500, "cannot write %s: %s", tmp, strerror(errno));
    goto out;
  }
  size_t i;
  json_t *l;
  json_array_foreach(c->lines, i, l) fprintf(f, "%s\n", json_string_value(l));
  bool ok = !ferror(f) && fflush(f) == 0 && fsync(fileno(f)) == 0;
  ok = fclose(f) == 0 && ok;
  /* rename replaces only when asked; else link refuses an existing file. */
  if (ok && overwrite) ok = rename(tmp, path) == 0;
  else if (ok) {
    ok = link(tmp, path) == 0;
    if (!ok && errno == EEXIST) {
      unlink(tmp);
      respond_err(req, 409, "%s/%s.chat exists (save with overwrite to replace it)",
                  st->tests_rel, name);
      goto out;
    }
    unlink(tmp);
  }
  if (!ok) {
    unlink(tmp);
    respond_err(req, 500, "cannot write %s: %s", path, strerror(errno));
    goto out;
  }
  char *rel = rt_xasprintf("%s/%s.chat", st->tests_rel, name);
  rt_log(RT_LOG_INFO, "studio-saved", "file=%s lines=%zu", path, json_array_size(c->lines));
  respond_json(req, 200, json_pack("{s:b, s:s, s:s, s:i}", "ok", 1, "file", rel, "path", path,
                                   "lines", (int)json_array_size(c->lines)));
  free(rel);
out:
  free(path);
  free(tmp);
  json_decref(j);
}

/* ---- the shop's transcript tests, in a child ---- */

/* `shopbot test` prints "PASS file (N checks)", or "FAIL file:line: what"
 * with indented lines after it ("  got: ..."), then "N passed, N failed". */
static json_t *parse_tests(const char *out) {
  json_t *files = json_array(), *last = NULL;
  long passed = 0, failed = 0;
  const char *p = out;
  while (*p) {
    const char *e = strchr(p, '\n');
    size_t n = e ? (size_t)(e - p) : strlen(p);
    char *line = rt_xstrndup(p, n);
    if (strncmp(line, "PASS ", 5) == 0) {
      char *paren = strstr(line, " (");
      json_array_append_new(files, json_pack("{s:s%, s:b}", "file", line + 5,
                                             paren ? (size_t)(paren - line - 5) : strlen(line + 5),
                                             "ok", 1));
      last = NULL;
    } else if (strncmp(line, "FAIL ", 5) == 0) {
      char *rest = line + 5, *sep = strstr(rest, ": ");
      json_t *f = json_pack("{s:b}", "ok", 0);
      char *colon = NULL;
      if (sep) {
        *sep = '\0';
        colon = strrchr(rest, ':');
        if (colon && colon[1] >= '0' && colon[1] <= '9') {
          *colon = '\0';
          json_object_set_new(f, "line", json_integer(atoi(colon + 1)));
        }
        json_object_set_new(f, "message", json_string(sep + 2));
      } else {
        json_object_set_new(f, "message", json_string(rest));
      }
      json_object_set_new(f, "file", json_string(rest));
      json_array_append_new(files, f);
      last = f;
    } else if (line[0] == ' ' && last) {
      char *t = line;
      while (*t == ' ') t++;
      const char *key = strncmp(t, "got: ", 5) == 0 ? "got" : NULL;
      if (key) json_object_set_new(last, key, json_string(t + 5));
      else {
        const char *m = json_string_value(json_object_get(last, "message"));
        char *joined = rt_xasprintf("%s\n%s", m ? m : "", t);
        json_object_set_new(last, "message", json_string(joined));
        free(joined);
      }
    } else {
      char *end;
      long a = strtol(line, &end, 10);
      if (end != line && strncmp(end, " passed, ", 9) == 0) {
        passed = a;
        failed = strtol(end + 9, NULL, 10);
      }
    }
    free(line);
    p += n + (e ? 1 : 0);
  }
  /* "expected bot : X" in a message: split out for the page. */
  size_t i;
  json_t *f;
  json_array_foreach(files, i, f) {
    const char *m = json_string_value(json_object_get(f, "message"));
    if (m && strncmp(m, "expected ", 9) == 0) json_object_set_new(f, "expected", json_string(m + 9));
  }
  return json_pack("{s:b, s:i, s:i, s:o}", "running", 0, "passed", (int)passed, "failed",
                   (int)failed, "files", files);
}

static void tests_done(rt_subproc_result *r, void *ud) {
  rt_studio *st = ud;
  st->tests_proc = NULL;
  json_t *t;
  if (r->err != RT_OK) {
    t = json_pack("{s:b, s:s}", "running", 0, "error",
                  r->err == RT_ETIMEOUT ? "the tests took too long and were stopped" : r->errmsg);
  } else {
    t = parse_tests(r->out);
    json_object_set_new(t, "exit", json_integer(r->exit_status));
    if (r->exit_status > 1 || r->term_signal)
      json_object_set_new(t, "error", json_string(r->errout && *r->errout ? r->errout
                                                                          : "shopbot test failed"));
  }
  json_object_set_new(t, "ms", json_real(r->ms));
  json_decref(st->tests);
  st->tests = t;
  push_soon(st);
}

static void api_tests(void *ud, rt_httpd_req *req) {
  rt_studio *st = ud;
  json_t *j = body_json(req);
  if (!j) return;
  if (st->stopping) { respond_err(req, 503, "the studio is stopping"); json_decref(j); return; }
  if (st->tests_proc) { respond_err(req, 409, "the tests are running already"); json_decref(j); return; }
  const char *file = jstr(j, "name");
  if (file && !rt_studio_name_ok(file)) {
    respond_err(req, 400, "name: a transcript of the tests folder, without .chat");
    json_decref(j);
    return;
  }
  char *one = file ? rt_xasprintf("%s/%s.chat", st->tests_dir ? st->tests_dir : st->shop_dir, file)
                   : NULL;
  const char *argv[] = {st->exe, "test", st->shop_dir, one, NULL};
  rt_subproc_opts so = {.argv = argv, .timeout_ms = TESTS_TIMEOUT_MS, .max_out = 4u << 20};
  char msg[160] = "";
  int rc = rt_subproc_start(st->o.loop, &so, tests_done, st, &st->tests_proc, msg);
  free(one);
  json_decref(j);
  if (rc != RT_OK) {
    respond_err(req, 500, "cannot run the tests: %s", msg);
    return;
  }
  json_decref(st->tests);
  st->tests = json_pack("{s:b}", "running", 1);
  push_soon(st);
  respond_json(req, 202, json_pack("{s:b}", "running", 1));
}

/* ---- statistics ---- */

static void api_stats(void *ud, rt_httpd_req *req) {
  rt_studio *st = ud;
  const char *q = rt_httpd_req_query(req);
  bool shop = strstr(q, "of=shop") != NULL;
  if (*q && !shop && !strstr(q, "of=studio")) {
    respond_err(req, 400, "of is studio or shop");
    return;
  }
  rt_store *s = rt_engine_store(st->o.e), *ro = NULL;
  char *err = NULL;
  if (shop) {
    struct stat sb;
    if (stat(st->real_store, &sb) != 0) {
      respond_err(req, 404, "the shop has no store yet (%s): run the bot first", st->real_store);
      return;
    }
    /* The real shop's figures: opened read-only, never written. */
    rt_store_opts so = {.read_only = true};
    if (rt_store_open(st->real_store, &so, &ro, &err) != RT_OK) {
      respond_err(req, 500, "cannot read the shop's store: %s", err ? err : "?");
      free(err);
      return;
    }
    s = ro;
  }
  json_t *stats = NULL;
  int rc = rt_stats_collect(s, 0, &stats, &err);
  if (rc == RT_OK) rc = rt_stats_leads_per_day(s, 0, st->tz, stats, &err);
  if (ro) rt_store_close(ro);
  if (rc != RT_OK) {
    json_decref(stats);
    respond_err(req, 500, "%s", err ? err : "stats failed");
    free(err);
    return;
  }
  json_object_set_new(stats, "of", json_string(shop ? "shop" : "studio"));
  respond_json(req, 200, stats);
}

/* ---- flow sources (the banner's "show the line") ---- */

static void api_source(void *ud, rt_httpd_req *req) {
  rt_studio *st = ud;
  const char *q = rt_httpd_req_query(req);
  const char *f = strstr(q, "file=");
  char *file = f ? rt_xstrndup(f + 5, strcspn(f + 5, "&")) : NULL;
  /* The query comes re-encoded: %2F is a slash. */
  for (char *p = file; p && *p; p++)
    if (p[0] == '%' && p[1] == '2' && (p[2] == 'F' || p[2] == 'f')) {
      *p = '/';
      memmove(p + 1, p + 3, strlen(p + 3) + 1);
    }
  if (!rt_studio_flow_path_ok(file)) {
    respond_err(req, 400, "file: a .lua file of the flows folder (like lead.lua or lib/say.lua); "
                          "nothing outside it");
    free(file);
    return;
  }
  char dir[PATH_MAX], real[PATH_MAX];
  char *path = rt_xasprintf("%s/%s", rt_engine_flows_dir(st->o.e), file);
  bool inside = realpath(rt_engine_flows_dir(st->o.e), dir) && realpath(path, real) &&
                strncmp(real, dir, strlen(dir)) == 0 && real[strlen(dir)] == '/';
  if (!inside) {
    respond_err(req, 404, "no flow file %s", file);
    free(path);
    free(file);
    return;
  }
  FILE *fp = fopen(real, "r");
  char *text = NULL;
  size_t len = 0;
  if (fp) {
    text = rt_xcalloc(1, 1 << 20);
    len = fread(text, 1, (1 << 20) - 1, fp);
    fclose(fp);
  }
  if (!fp || !rt_utf8_valid(text, len)) {
    respond_err(req, 404, "cannot read %s", file);
  } else {
    respond_json(req, 200, json_pack("{s:s, s:s%}", "file", file, "text", text, len));
  }
  free(text);
  free(path);
  free(file);
}

/* ---- the page ---- */

static void on_static(void *ud, rt_httpd_req *req) {
  (void)ud;
  const char *p = rt_httpd_req_path(req);
  const unsigned char *b = rt_studio_index_html;
  size_t n = sizeof rt_studio_index_html;
  const char *type = "text/html; charset=utf-8";
  if (strcmp(p, "/studio.css") == 0) {
    b = rt_studio_studio_css; n = sizeof rt_studio_studio_css; type = "text/css; charset=utf-8";
  } else if (strcmp(p, "/studio.js") == 0) {
    b = rt_studio_studio_js; n = sizeof rt_studio_studio_js;
    type = "text/javascript; charset=utf-8";
  } else if (strcmp(p, "/") != 0 && strcmp(p, "/index.html") != 0) {
    respond_err(req, 404, "not found");
    return;
  }
  rt_httpd_reply_header(req, "Content-Security-Policy",
                        "default-src 'self'; connect-src 'self' ws: ; img-src 'self' data:");
  rt_httpd_reply_header(req, "X-Content-Type-Options", "nosniff");
  rt_httpd_reply_header(req, "Cache-Control", "no-store");
  rt_httpd_respond(req, 200, type, b, n);
}

static int ws_open(void *ud, rt_httpd_ws *ws, rt_httpd_req *req) {
  rt_studio *st = ud;
  if (st->stopping) return 503;
  if (!same_origin(req)) return 403;
  wsconn *c = rt_xcalloc(1, sizeof *c);
  c->ws = ws;
  c->next = st->conns;
  st->conns = c;
  rt_httpd_ws_set_user(ws, c);
  push_soon(st);
  return 0;
}

static void ws_message(void *ud, rt_httpd_ws *ws, const void *data, size_t len, bool binary) {
  (void)data; (void)len; (void)binary;
  /* The page asks for a fresh state by sending anything. */
  (void)ws;
  push_soon(ud);
}

static void ws_close(void *ud, rt_httpd_ws *ws) {
  rt_studio *st = ud;
  for (wsconn **pp = &st->conns; *pp; pp = &(*pp)->next)
    if ((*pp)->ws == ws) {
      wsconn *c = *pp;
      *pp = c->next;
      free(c);
      return;
    }
}

/* ---- life ---- */

void rt_studio_reloaded(rt_studio *st, int rc, const char *err) {
  json_int_t seq = json_integer_value(json_object_get(st->reload, "seq")) + 1;
  char at[64];
  time_t t = time(NULL);
  struct tm tm;
  localtime_r(&t, &tm);
  strftime(at, sizeof at, "%H:%M:%S", &tm);
  json_decref(st->reload);
  st->reload = json_pack("{s:I, s:b, s:s, s:s, s:o}", "seq", seq, "ok", rc == RT_OK, "at", at,
                         "version", rt_engine_flows_version(st->o.e), "error",
                         rc == RT_OK ? json_null() : rt_studio_error_json(err));
  push_soon(st);
}

/* The tests folder, when it is inside the shop; NULL otherwise. */
static char *tests_inside(rt_studio *st, const char *rel) {
  char *dir = rt_config_path(st->o.cfg, rel);
  mkdir(dir, 0755);
  char real[PATH_MAX], shop[PATH_MAX];
  bool ok = realpath(dir, real) && realpath(st->shop_dir, shop) &&
            (strcmp(real, shop) == 0 ||
             (strncmp(real, shop, strlen(shop)) == 0 && real[strlen(shop)] == '/'));
  free(dir);
  return ok ? rt_xstrdup(real) : NULL;
}

static void import_sample(rt_studio *st) {
  char *csv = rt_xasprintf("%s/customers.csv", st->shop_dir);
  struct stat sb;
  if (stat(csv, &sb) != 0) {
    free(csv);
    st->imported = json_null();
    return;
  }
  rt_import_report rep;
  memset(&rep, 0, sizeof rep);
  char *err = NULL;
  int rc = rt_import_csv(rt_engine_store(st->o.e), csv, now_ms(st), st->tz, &rep, &err);
  if (rc == RT_OK) {
    st->imported = json_pack("{s:s, s:I, s:I, s:I}", "file", "customers.csv", "rows",
                             (json_int_t)rep.rows, "customers",
                             (json_int_t)(rep.customers_inserted + rep.customers_updated),
                             "skipped", (json_int_t)rep.skipped);
    /* The saved transcripts import it too, from the tests folder. */
    if (st->tests_dir) {
      char shop[PATH_MAX];
      if (realpath(st->shop_dir, shop)) {
        const char *rest = st->tests_dir + strlen(shop);
        rt_buf b = {0};
        for (const char *p = rest; *p; p++)
          if (*p == '/') rt_buf_adds(&b, "../");
        rt_buf_adds(&b, "customers.csv");
        st->customers_csv = rt_buf_take(&b, NULL);
      }
    }
  } else {
    st->imported = json_pack("{s:s, s:s}", "file", "customers.csv", "error", err ? err : "failed");
  }
  free(err);
  free(csv);
}

int rt_studio_new(const rt_studio_opts *o, rt_studio **out, char **err) {
  *out = NULL;
  rt_studio *st = rt_xcalloc(1, sizeof *st);
  st->o = *o;
  st->shop_dir = rt_xstrdup(o->shop_dir);
  st->real_store = rt_xstrdup(o->real_store);
  st->tz = rt_config_str(o->cfg, "timezone", "Europe/Moscow");
  st->managers_key_ch = rt_config_str(o->cfg, "managers.channel", "console");
  st->managers_key_id = rt_config_str(o->cfg, "managers.chat_id", "managers");
  const char *trel = rt_config_str(o->cfg, "tests.dir", "tests");
  st->tests_rel = rt_xstrdup(trel);
  st->tests_dir = tests_inside(st, trel);
  st->managers = json_array();
  st->reload = json_pack("{s:i}", "seq", 0);
  st->tests = json_pack("{s:b}", "running", 0);
  size_t len = sizeof st->exe;
  if (uv_exepath(st->exe, &len) != 0) {
    *err = rt_xstrdup("studio: cannot find the running program (for the tests)");
    json_decref(st->managers); json_decref(st->reload); json_decref(st->tests);
    free(st->shop_dir); free(st->real_store); free(st->tests_rel); free(st->tests_dir);
    free(st);
    return RT_EIO;
  }
  uv_timer_init(o->loop, &st->tick);
  uv_timer_init(o->loop, &st->push);
  st->tick.data = st->push.data = st;
  st->open = 2;
  for (size_t i = 0; i < NCHANS; i++) {
    st->chans[i] = (rt_channel){.name = chan_names[i], .impl = st, .send = cap_send,
                                .caps = RT_CH_BUTTONS | RT_CH_MEDIA | RT_CH_TEMPLATES};
    rt_engine_add_channel(o->e, &st->chans[i]);
  }
  import_sample(st);
  rt_httpd *h = o->httpd;
  rt_httpd_route_opts big = {.max_body = MAX_BODY};
  rt_httpd_route(h, "GET", "/", on_static, st);
  rt_httpd_route(h, "GET", "/index.html", on_static, st);
  rt_httpd_route(h, "GET", "/studio.css", on_static, st);
  rt_httpd_route(h, "GET", "/studio.js", on_static, st);
  rt_httpd_route(h, "GET", "/api/state", api_state, st);
  rt_httpd_route(h, "GET", "/api/stats", api_stats, st);
  rt_httpd_route(h, "GET", "/api/source", api_source, st);
  rt_httpd_route_ex(h, "POST", "/api/say", &big, api_say, st);
  rt_httpd_route_ex(h, "POST", "/api/manager", &big, api_manager, st);
  rt_httpd_route_ex(h, "POST", "/api/clock", &big, api_clock, st);
  rt_httpd_route_ex(h, "POST", "/api/checkin", &big, api_checkin, st);
  rt_httpd_route_ex(h, "POST", "/api/tests", &big, api_tests, st);
  rt_httpd_route_ex(h, "POST", "/api/save", &big, api_save, st);
  rt_httpd_ws_callbacks cb = {.on_open = ws_open, .on_message = ws_message, .on_close = ws_close};
  rt_httpd_ws_route(h, "/ws", &cb, st);
  *out = st;
  return RT_OK;
}

void rt_studio_stopping(rt_studio *st) {
  if (st->stopping) return;
  answer_waiters(st, 503, "the studio is stopping");
  st->stopping = true;
  st->moving = false;
  uv_timer_stop(&st->tick);
  uv_timer_stop(&st->push);
  if (st->tests_proc) { rt_subproc_cancel(st->tests_proc); st->tests_proc = NULL; }
}

static void handle_closed(uv_handle_t *h) {
  rt_studio *st = h->data;
  if (--st->open > 0) return;
  while (st->chats) {
    chat *n = st->chats->next;
    chat_free(st->chats);
    st->chats = n;
  }
  while (st->conns) {
    wsconn *n = st->conns->next;
    free(st->conns);
    st->conns = n;
  }
  json_decref(st->managers); json_decref(st->reload); json_decref(st->tests);
  json_decref(st->imported);
  free(st->shop_dir); free(st->real_store); free(st->tests_rel); free(st->tests_dir);
  free(st->customers_csv);
  void (*done)(void *) = st->done;
  void *ud = st->done_ud;
  free(st);
  if (done) done(ud);
}

void rt_studio_close(rt_studio *st, void (*done)(void *ud), void *ud) {
  rt_studio_stopping(st);
  st->done = done;
  st->done_ud = ud;
  uv_close((uv_handle_t *)&st->tick, handle_closed);
  uv_close((uv_handle_t *)&st->push, handle_closed);
}
