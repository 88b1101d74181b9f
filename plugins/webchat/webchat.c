/* webchat.c -- see webchat.h and README.md beside it. */
#include "webchat.h"
#include "buf.h"
#include "http_server.h"
#include "log.h"
#include "map.h"
#include "utf8.h"
#include "plugins/webchat_schema.h" /* generated from schema.json (CMakeLists.txt) */
#include "webchat_static.h"          /* generated from static/ (CMakeLists.txt) */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#define COOKIE_NAME "shopbot_vid"
#define COOKIE_MAX_AGE_S (400 * 86400)  /* browsers cap a cookie's life at 400 days */
#define CONNS_PER_VISITOR 8             /* tabs of one browser; more is a script */
#define ACK_TIMEOUT_MS 15000            /* a bot message the browser has not acked */
#define HOLD_MS 20000                   /* a send waits this long for a page to open */
#define RETRY_SEEN_MS 1000              /* then retry soon for a visitor seen lately... */
#define SEEN_RECENT_MS (10 * 60000)     /* ...that is, within ten minutes */
#define RETRY_AWAY_MS 10000             /* else every half a minute or so (hold + this) */
#define VISITOR_IDLE_MS (30 * 60000)    /* forget a visitor's counters after this */
#define FLOOD_STRIKES 20                /* refused messages in a row: close the socket */
#define HELLO_MS 10000                  /* a socket without a cookie says hello by then */
#define MSG_ID_MAX 64
#define HISTORY_MAX 50                  /* messages a page gets back when it opens */
#define HISTORY_MAX_BYTES (256 * 1024)  /* and at most this much of them */

/* ---- protocol pieces (webchat.h) ---- */

static void hex(const unsigned char *p, size_t n, char *out) {
  static const char d[] = "0123456789abcdef";
  for (size_t i = 0; i < n; i++) {
    out[2 * i] = d[p[i] >> 4];
    out[2 * i + 1] = d[p[i] & 15];
  }
  out[2 * n] = '\0';
}

/* libcrypto, opened at the first signature rather than linked: the web
 * chat is its only user in this binary, and its relocations alone cost
 * every bot process some 1.2 MB (http_server.c opens libwebsockets the
 * same way, which brings libcrypto in too). */
static struct {
  bool loaded;
  __typeof__(HMAC) *hmac;
  __typeof__(EVP_sha256) *sha256;
  __typeof__(CRYPTO_memcmp) *memcmp;
} cr;

static void crypto_load(void) {
  if (cr.loaded) return;
  void *lib = dlopen("libcrypto.so.3", RTLD_NOW | RTLD_LOCAL);
  if (lib) {
    *(void **)&cr.hmac = dlsym(lib, "HMAC");
    *(void **)&cr.sha256 = dlsym(lib, "EVP_sha256");
    *(void **)&cr.memcmp = dlsym(lib, "CRYPTO_memcmp");
  }
  if (!lib || !cr.hmac || !cr.sha256 || !cr.memcmp) {
    fprintf(stderr, "level=fatal msg=\"cannot load libcrypto (apt-get install libssl3)\" "
            "err=\"%s\"\n", lib ? "a function is missing" : dlerror());
    abort();
  }
  cr.loaded = true;
}

static void sign(const char *secret, const char *vid, char out[33]) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  crypto_load();
  cr.hmac(cr.sha256(), secret, (int)strlen(secret), (const unsigned char *)vid, strlen(vid), mac,
          &len);
  hex(mac, 16, out);  /* 128 bits of the MAC: plenty against guessing */
}

static bool is_hex32(const char *s, size_t n) {
  if (n != 32) return false;
  for (size_t i = 0; i < n; i++)
    if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return false;
  return true;
}

char *rt_webchat_cookie_make(const char *secret, const char *vid) {
  char sig[33];
  sign(secret, vid, sig);
  return rt_xasprintf("%s.%s", vid, sig);
}

bool rt_webchat_token_check(const char *secret, const char *token, size_t n, char vid[33]) {
  if (!token || n != 65 || !is_hex32(token, 32) || token[32] != '.' || !is_hex32(token + 33, 32))
    return false;
  char id[33], want[33];
  memcpy(id, token, 32);
  id[32] = '\0';
  sign(secret, id, want);
  if (cr.memcmp(want, token + 33, 32) != 0) return false;
  memcpy(vid, id, 33);
  return true;
}

bool rt_webchat_cookie_check(const char *secret, const char *hdr, char vid[33]) {
  if (!hdr) return false;
  const size_t nl = strlen(COOKIE_NAME);
  const char *p = hdr;
  while (*p) {
    while (*p == ' ' || *p == ';' || *p == ',') p++;
    const char *end = p + strcspn(p, ";,");
    if ((size_t)(end - p) == nl + 1 + 65 && strncmp(p, COOKIE_NAME "=", nl + 1) == 0 &&
        rt_webchat_token_check(secret, p + nl + 1, 65, vid))
      return true;
    p = end;
  }
  return false;
}

const char *rt_webchat_image_kind(const unsigned char *p, size_t n) {
  if (n >= 3 && p[0] == 0xFF && p[1] == 0xD8 && p[2] == 0xFF) return "jpeg";
  if (n >= 8 && memcmp(p, "\x89PNG\r\n\x1a\n", 8) == 0) return "png";
  if (n >= 6 && (memcmp(p, "GIF87a", 6) == 0 || memcmp(p, "GIF89a", 6) == 0)) return "gif";
  if (n >= 12 && memcmp(p, "RIFF", 4) == 0 && memcmp(p + 8, "WEBP", 4) == 0) return "webp";
  return NULL;
}

bool rt_webchat_origin_ok(const json_t *allowed, const char *origin, const char *host) {
  if (!origin) return true;  /* not a browser: the visitor still has to verify */
  size_t i;
  json_t *v;
  json_array_foreach(allowed, i, v) {
    const char *s = json_string_value(v);
    if (s && (strcmp(s, "*") == 0 || strcasecmp(s, origin) == 0)) return true;
  }
  /* The chat page itself, always: framed on the shop's site (listed
   * above, for frame-ancestors) it still opens its socket from its own
   * origin, and a same-origin socket is no cross-site request. */
  if (!host) return false;
  const char *rest = strncasecmp(origin, "http://", 7) == 0    ? origin + 7
                     : strncasecmp(origin, "https://", 8) == 0 ? origin + 8
                                                               : NULL;
  return rest && strcasecmp(rest, host) == 0;
}

/* ---- state ---- */

typedef struct visitor visitor;
typedef struct conn conn;
typedef struct pending pending;

/* v is NULL while the socket waits for the page's hello (no cookie came:
 * a page framed on another site, its cookies blocked); such a socket sits
 * in the lobby list and takes nothing but the hello. */
struct conn {
  rt_httpd_ws *ws;
  visitor *v;
  int64_t opened_ms;
  bool closing;
  conn *next;
};

/* A bot message sent to the visitor's sockets, waiting for the browser's
 * ack. The delivery queue keeps one message per chat in flight. */
struct pending {
  int64_t id;
  char *frame;
  size_t len;
  int64_t deadline;
  int attempt;
  rt_send_done done;
  void *ud;
  pending *next;
};

struct visitor {
  char vid[33];
  conn *conns;
  int nconns;
  pending *sends;
  double tokens;
  int64_t refill_ms, seen_ms;
  int strikes;
};

struct rt_webchat {
  rt_channel ch;
  const rt_plugin_env *env;
  char *path, *ws_path, *title;
  json_t *origins;
  size_t max_msg, max_photo;
  double rate_per_ms, burst;
  char secret[65];
  rt_map visitors;
  conn *lobby;            /* sockets waiting for their hello */
  uv_timer_t sweep;
  bool sweep_on;
  int tickets;            /* receive acks still to come */
  void (*close_done)(void *);
  void *close_ud;
};

typedef struct {
  rt_webchat *w;
  char vid[33];
  char id[MSG_ID_MAX + 1];
} ticket;

static int64_t now_ms(rt_webchat *w) {
  if (w->env && w->env->now_ms) return w->env->now_ms(w->env->host);
  return (int64_t)(uv_now(w->env->loop));
}

static visitor *visitor_get(rt_webchat *w, const char *vid, bool make) {
  visitor *v = rt_map_get(&w->visitors, vid);
  if (v || !make) return v;
  v = rt_xcalloc(1, sizeof *v);
  memcpy(v->vid, vid, 33);
  v->tokens = w->burst;
  v->refill_ms = v->seen_ms = now_ms(w);
  rt_map_set(&w->visitors, vid, v);
  return v;
}

static void to_visitor(visitor *v, const char *frame, size_t len) {
  for (conn *c = v->conns; c; c = c->next) rt_httpd_ws_send(c->ws, frame, len, false);
}

static void send_json(rt_httpd_ws *ws, json_t *j) {
  char *s = json_dumps(j, JSON_COMPACT);
  json_decref(j);
  if (s) rt_httpd_ws_send(ws, s, strlen(s), false);
  free(s);
}

static void send_err(rt_httpd_ws *ws, const char *id, const char *code, const char *text) {
  json_t *j = json_pack("{s:s, s:s, s:s}", "t", "err", "code", code, "error", text);
  if (id) json_object_set_new(j, "id", json_string(id));
  send_json(ws, j);
}

/* Token bucket per visitor: burst messages at once, rate_per_minute on
 * average. Photos count too. */
static bool take_token(rt_webchat *w, visitor *v) {
  int64_t now = now_ms(w);
  v->tokens += (double)(now - v->refill_ms) * w->rate_per_ms;
  if (v->tokens > w->burst) v->tokens = w->burst;
  v->refill_ms = now;
  v->seen_ms = now;
  if (v->tokens < 1.0) return false;
  v->tokens -= 1.0;
  return true;
}

static int64_t token_wait_ms(rt_webchat *w, visitor *v) {
  return (int64_t)((1.0 - v->tokens) / w->rate_per_ms) + 1;
}

/* ---- inbound ---- */

static void close_finish(rt_webchat *w);

static void on_received(void *ud, int status) {
  ticket *t = ud;
  rt_webchat *w = t->w;
  w->tickets--;
  visitor *v = visitor_get(w, t->vid, false);
  if (v) {
    json_t *j = status == RT_OK || status == 1
                    ? json_pack("{s:s, s:s}", "t", "ack", "id", t->id)
                    : json_pack("{s:s, s:s, s:s, s:s}", "t", "err", "id", t->id, "code", "store",
                                "error", "the shop could not take the message now; it is kept "
                                         "in the page and sent again");
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    if (s) to_visitor(v, s, strlen(s));
    free(s);
  }
  free(t);
  close_finish(w);
}

static bool id_ok(const char *id) {
  size_t n = id ? strlen(id) : 0;
  if (n == 0 || n > MSG_ID_MAX) return false;
  for (size_t i = 0; i < n; i++) {
    char c = id[i];
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-' ||
          c == '_'))
      return false;
  }
  return true;
}

/* A photo the visitor uploaded: "<vid>-<hex>.<ext>" in the data folder. */
static bool file_ok(const char *vid, const char *name) {
  if (!name || strncmp(name, vid, 32) != 0 || name[32] != '-') return false;
  const char *p = name + 33;
  size_t n = strspn(p, "0123456789abcdef");
  if (n != 16 || p[n] != '.') return false;
  const char *ext = p + n + 1;
  return !strcmp(ext, "jpeg") || !strcmp(ext, "png") || !strcmp(ext, "gif") || !strcmp(ext, "webp");
}

static void handle_message(rt_webchat *w, conn *c, json_t *j) {
  rt_httpd_ws *ws = c->ws;
  visitor *v = c->v;
  const char *t = json_string_value(json_object_get(j, "t"));
  const char *id = json_string_value(json_object_get(j, "id"));
  if (!t) { send_err(ws, NULL, "malformed", "a message is a JSON object with \"t\""); return; }
  /* The page says hello on every socket; one its cookie opened has had
   * the server's hello already. */
  if (strcmp(t, "hello") == 0) return;
  if (strcmp(t, "ack") == 0) {
    json_t *jid = json_object_get(j, "id");
    if (!json_is_integer(jid)) { send_err(ws, NULL, "malformed", "ack needs the message's id"); return; }
    int64_t oid = json_integer_value(jid);
    for (pending **pp = &v->sends; *pp; pp = &(*pp)->next) {
      if ((*pp)->id != oid) continue;
      pending *p = *pp;
      *pp = p->next;
      p->done(p->ud, &(rt_send_result){.verdict = RT_SEND_DELIVERED});
      free(p->frame);
      free(p);
      break;
    }
    return;   /* an ack for nothing pending (a second tab, a replay): fine */
  }
  bool photo = strcmp(t, "photo") == 0;
  if (strcmp(t, "msg") != 0 && !photo) {
    send_err(ws, id_ok(id) ? id : NULL, "malformed", "unknown message type");
    return;
  }
  if (!id_ok(id)) {
    send_err(ws, NULL, "malformed", "id must be 1-64 characters of A-Z a-z 0-9 - _");
    return;
  }
  json_t *jt = json_object_get(j, "text");
  if (jt && !json_is_string(jt)) { send_err(ws, id, "malformed", "text must be a string"); return; }
  const char *text = jt ? json_string_value(jt) : "";
  size_t tl = jt ? json_string_length(jt) : 0;
  if (tl > w->max_msg) {
    char msg[160];
    snprintf(msg, sizeof msg, "the message is %zu bytes; at most %zu are taken", tl, w->max_msg);
    send_err(ws, id, "too_long", msg);
    return;
  }
  /* jansson has checked the UTF-8 and refuses \u0000; the bytes must also
   * be what the store and the flows can take. */
  if (!rt_utf8_valid(text, tl)) { send_err(ws, id, "malformed", "text is not UTF-8"); return; }
  const char *file = photo ? json_string_value(json_object_get(j, "file")) : NULL;
  if (photo && !file_ok(v->vid, file)) {
    send_err(ws, id, "bad_photo", "upload the photo first; \"file\" is the name it got");
    return;
  }
  if (!photo && tl == 0) { send_err(ws, id, "empty", "the message is empty"); return; }
  if (!take_token(w, v)) {
    char msg[160];
    snprintf(msg, sizeof msg, "too many messages: wait %lld ms", (long long)token_wait_ms(w, v));
    json_t *e = json_pack("{s:s, s:s, s:s, s:s, s:I}", "t", "err", "id", id, "code", "rate",
                          "error", msg, "retry_ms", (json_int_t)token_wait_ms(w, v));
    send_json(ws, e);
    if (++v->strikes >= FLOOD_STRIKES) rt_httpd_ws_close(ws, 1008, "flood");
    return;
  }
  v->strikes = 0;
  char ext_id[32 + MSG_ID_MAX + 8];
  snprintf(ext_id, sizeof ext_id, "wc:%s:%s", v->vid, id);
  char *extra = NULL;
  if (photo) {
    char *path = rt_xasprintf("%s/%s", w->env->data_dir, file);
    struct stat st;
    if (stat(path, &st) != 0) {
      free(path);
      send_err(ws, id, "bad_photo", "no such photo: upload it again");
      return;
    }
    json_t *ph = json_pack("{s:[{s:s, s:s, s:I}]}", "photos", "id", file, "path", path, "size",
                           (json_int_t)st.st_size);
    extra = json_dumps(ph, JSON_COMPACT);
    json_decref(ph);
    free(path);
  }
  ticket *tk = rt_xcalloc(1, sizeof *tk);
  tk->w = w;
  memcpy(tk->vid, v->vid, 33);
  snprintf(tk->id, sizeof tk->id, "%s", id);
  rt_event_in ev = {.channel = "webchat", .ext_id = ext_id, .chat_id = v->vid,
                    .user_id = v->vid, .kind = photo ? "photo" : "text", .text = text,
                    .extra_json = extra};
  w->tickets++;
  int rc = w->env->receive(w->env->host, &ev, on_received, tk);
  free(extra);
  if (rc != RT_OK) {
    /* Refused at once: the ack will not come. */
    w->tickets--;
    free(tk);
    send_err(ws, id, "refused", "the shop refused the message");
  }
}

/* ---- history: what the page shows after a reload or in a new tab ---- */

static const char *str_or_text(json_t *v) {
  return json_is_string(v) ? json_string_value(v) : json_string_value(json_object_get(v, "text"));
}

/* One stored message as the page keeps it: {"k":"me","id":"<the page's
 * id>","text","file"} or {"k":"bot","id":N,"text","buttons","media"}. */
static json_t *history_item(const char *vid, json_t *row) {
  const char *from = json_string_value(json_object_get(row, "from"));
  json_t *it = json_object();
  if (from && strcmp(from, "customer") == 0) {
    json_t *ev = json_object_get(row, "event");
    json_object_set_new(it, "k", json_string("me"));
    /* ext_id "wc:<vid>:<id>": the page's own id, so a message the page
     * still holds as pending is known as taken */
    const char *ext = json_string_value(json_object_get(row, "ext_id"));
    if (ext && strncmp(ext, "wc:", 3) == 0 && strncmp(ext + 3, vid, 32) == 0 && ext[35] == ':' &&
        id_ok(ext + 36))
      json_object_set_new(it, "id", json_string(ext + 36));
    const char *text = json_string_value(json_object_get(ev, "text"));
    if (text && *text) json_object_set_new(it, "text", json_string(text));
    const char *file =
        json_string_value(json_object_get(json_array_get(json_object_get(ev, "photos"), 0), "id"));
    if (file && file_ok(vid, file)) json_object_set_new(it, "file", json_string(file));
  } else {
    json_t *m = json_object_get(row, "message");
    json_object_set_new(it, "k", json_string("bot"));
    json_object_set(it, "id", json_object_get(row, "id"));
    const char *text = json_string_value(json_object_get(m, "text"));
    json_object_set_new(it, "text", json_string(text ? text : ""));
    json_t *bs = json_object_get(m, "buttons"), *out = NULL;
    size_t i;
    json_t *b;
    json_array_foreach(bs, i, b) {
      const char *s = str_or_text(b);
      if (!s) continue;
      if (!out) out = json_array();
      json_array_append_new(out, json_string(s));
    }
    if (out) json_object_set_new(it, "buttons", out);
    const char *ref = json_string_value(json_object_get(json_object_get(m, "media"), "ref"));
    if (ref) json_object_set_new(it, "media", json_string(ref));
  }
  return it;
}

/* {"t":"history","items":[...]}: the conversation's newest messages from
 * the store, both ways, oldest first; the visitor's own chat only (vid is
 * the verified cookie's). Nothing is sent when the store cannot say. */
static void send_history(rt_webchat *w, rt_httpd_ws *ws, const char *vid) {
  const rt_plugin_env *e = w->env;
  json_t *rows = e->history ? e->history(e->host, vid, HISTORY_MAX) : NULL;
  if (!rows) return;
  json_t *items = json_array();
  size_t i;
  json_t *row;
  json_array_foreach(rows, i, row) json_array_append_new(items, history_item(vid, row));
  json_decref(rows);
  json_t *f = json_pack("{s:s, s:o}", "t", "history", "items", items);
  char *s = json_dumps(f, JSON_COMPACT);
  /* Long messages: the oldest go first until it fits. */
  while (s && strlen(s) > HISTORY_MAX_BYTES && json_array_size(items)) {
    free(s);
    json_array_remove(items, 0);
    s = json_dumps(f, JSON_COMPACT);
  }
  json_decref(f);
  if (s) rt_httpd_ws_send(ws, s, strlen(s), false);
  free(s);
}

static void new_vid(char vid[33]);

static void lobby_drop(rt_webchat *w, conn *c) {
  for (conn **pp = &w->lobby; *pp; pp = &(*pp)->next)
    if (*pp == c) { *pp = c->next; break; }
  c->next = NULL;
}

/* The socket becomes the visitor's: the server's hello (with the token the
 * page keeps for a framed page whose cookie is blocked), the history, and
 * what went out while no socket was there. False: too many tabs. */
static bool bind_visitor(rt_webchat *w, conn *c, const char *vid) {
  visitor *v = visitor_get(w, vid, true);
  if (v->nconns >= CONNS_PER_VISITOR) return false;
  c->v = v;
  c->next = v->conns;
  v->conns = c;
  v->nconns++;
  v->seen_ms = now_ms(w);
  char *tok = rt_webchat_cookie_make(w->secret, vid);
  json_t *h = json_pack("{s:s, s:s, s:s, s:I}", "t", "hello", "vid", vid, "token", tok,
                        "max_message_bytes", (json_int_t)w->max_msg);
  free(tok);
  send_json(c->ws, h);
  send_history(w, c->ws, vid);
  /* The page drops ids it has shown and acks them once more. */
  for (pending *p = v->sends; p; p = p->next) rt_httpd_ws_send(c->ws, p->frame, p->len, false);
  return true;
}

static int ws_open(void *ud, rt_httpd_ws *ws, rt_httpd_req *req) {
  rt_webchat *w = ud;
  const char *origin = rt_httpd_req_header(req, "origin");
  if (!rt_webchat_origin_ok(w->origins, origin, rt_httpd_req_header(req, "host"))) {
    char q[256];
    rt_log_quote(origin, q, sizeof q);
    rt_log(RT_LOG_WARN, "webchat.origin-refused", "origin=%s", q);
    return 403;
  }
  const char *cookie = rt_httpd_req_header(req, "cookie");
  conn *c = rt_xcalloc(1, sizeof *c);
  c->ws = ws;
  c->opened_ms = now_ms(w);
  char vid[33];
  if (rt_webchat_cookie_check(w->secret, cookie, vid)) {
    if (!bind_visitor(w, c, vid)) { free(c); return 429; }
  } else if (cookie && strstr(cookie, COOKIE_NAME "=")) {
    /* A visitor cookie that does not verify: forged, or signed under a
     * secret the shop no longer has (the page fetches a new one). */
    free(c);
    return 401;
  } else {
    /* No cookie (a page framed on the shop's site, third-party cookies
     * blocked): the page's hello says who it is. */
    c->next = w->lobby;
    w->lobby = c;
  }
  rt_httpd_ws_set_user(ws, c);
  return 0;
}

/* {"t":"hello","token":"<vid>.<sig>"} on a socket that came without a
 * cookie: the token the server handed out before (the page keeps it in
 * its own storage). No token: a new visitor. A token that does not verify
 * is said so, and the socket gets a new visitor: nobody chooses an id. */
static void on_hello(rt_webchat *w, conn *c, json_t *j) {
  const char *t = json_string_value(json_object_get(j, "t"));
  if (!t || strcmp(t, "hello") != 0) {
    send_err(c->ws, NULL, "hello_first",
             "no visitor cookie came with the socket: send {\"t\":\"hello\",\"token\":...} first");
    c->closing = true;
    rt_httpd_ws_close(c->ws, 1008, "hello first");
    return;
  }
  json_t *jt = json_object_get(j, "token");
  char vid[33];
  lobby_drop(w, c);
  if (json_is_string(jt) &&
      rt_webchat_token_check(w->secret, json_string_value(jt), json_string_length(jt), vid)) {
    /* the page's own visitor */
  } else {
    if (jt && !json_is_null(jt)) {
      rt_log(RT_LOG_WARN, "webchat.token-refused", "msg=\"a new visitor instead\"");
      send_err(c->ws, NULL, "bad_token",
               "the visitor token was not issued by this shop (forged, or from another one): "
               "a new conversation starts");
    }
    new_vid(vid);
  }
  if (!bind_visitor(w, c, vid)) {
    c->closing = true;
    rt_httpd_ws_close(c->ws, 1008, "too many tabs");
  }
}

static void ws_message(void *ud, rt_httpd_ws *ws, const void *data, size_t len, bool binary) {
  rt_webchat *w = ud;
  conn *c = rt_httpd_ws_user(ws);
  if (!c || c->closing) return;
  if (binary) {
    send_err(ws, NULL, "malformed", "binary frames are not taken: send JSON text");
    return;
  }
  json_error_t je;
  json_t *j = json_loadb(data, len, JSON_REJECT_DUPLICATES, &je);
  if (!json_is_object(j)) {
    char msg[200];
    snprintf(msg, sizeof msg, "not a JSON object: %s", j ? "another JSON value" : je.text);
    send_err(ws, NULL, "malformed", msg);
    json_decref(j);
    if (!c->v) { c->closing = true; rt_httpd_ws_close(ws, 1008, "hello first"); }
    else if (++c->v->strikes >= FLOOD_STRIKES) rt_httpd_ws_close(ws, 1008, "flood");
    return;
  }
  if (!c->v) on_hello(w, c, j);
  else handle_message(w, c, j);
  json_decref(j);
}

static void ws_close(void *ud, rt_httpd_ws *ws) {
  rt_webchat *w = ud;
  conn *c = rt_httpd_ws_user(ws);
  if (!c) return;
  visitor *v = c->v;
  if (!v) { lobby_drop(w, c); free(c); return; }
  for (conn **pp = &v->conns; *pp; pp = &(*pp)->next)
    if (*pp == c) { *pp = c->next; break; }
  v->nconns--;
  v->seen_ms = now_ms(w);
  free(c);
}

/* ---- HTTP: the page, its files, photos ---- */

static void respond_json(rt_httpd_req *req, int status, const char *err) {
  json_t *j = json_pack("{s:s}", "error", err);
  char *s = json_dumps(j, JSON_COMPACT);
  json_decref(j);
  rt_httpd_respond(req, status, "application/json", s, strlen(s));
  free(s);
}

static void common_headers(rt_webchat *w, rt_httpd_req *req) {
  rt_httpd_reply_header(req, "X-Content-Type-Options", "nosniff");
  rt_httpd_reply_header(req, "Referrer-Policy", "same-origin");
  /* The page may be framed by the sites allowed to open the chat. */
  rt_buf fa = {0};
  rt_buf_adds(&fa, "default-src 'self'; img-src 'self' blob: data:; "
                   "connect-src 'self' ws: wss:; style-src 'self'; script-src 'self'; "
                   "frame-ancestors 'self'");
  size_t i;
  json_t *v;
  json_array_foreach(w->origins, i, v) {
    const char *s = json_string_value(v);
    if (!s || strpbrk(s, ";\r\n ,'")) continue;
    rt_buf_addc(&fa, ' ');
    rt_buf_adds(&fa, s);
  }
  char *csp = rt_buf_take(&fa, NULL);
  rt_httpd_reply_header(req, "Content-Security-Policy", csp);
  free(csp);
}

static void new_vid(char vid[33]) {
  unsigned char r[16];
  if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r) {
    /* getrandom cannot fail for 16 bytes once the pool is up; be safe */
    for (size_t i = 0; i < sizeof r; i++) r[i] = (unsigned char)rand();
  }
  hex(r, sizeof r, vid);
}

/* The visitor of an HTTP request: its cookie, or for a framed page with
 * no cookie the token it keeps, in X-Shopbot-Visitor (an upload) or in
 * ?v= (a photo's <img>, which cannot send a header). */
static bool visitor_of(rt_webchat *w, rt_httpd_req *req, char vid[33]) {
  if (rt_webchat_cookie_check(w->secret, rt_httpd_req_header(req, "cookie"), vid)) return true;
  const char *h = rt_httpd_req_header(req, "x-shopbot-visitor");
  if (h && *h) return rt_webchat_token_check(w->secret, h, strlen(h), vid);
  const char *q = rt_httpd_req_query(req);
  for (const char *p = q; p && *p; p += strcspn(p, "&"), p += *p == '&') {
    if (strncmp(p, "v=", 2) == 0)
      return rt_webchat_token_check(w->secret, p + 2, strcspn(p + 2, "&"), vid);
  }
  return false;
}

/* Behind an https proxy (X-Forwarded-Proto or Forwarded): the cookie can
 * be SameSite=None; Secure; Partitioned, so a page framed on the shop's
 * site keeps it where the browser allows partitioned cookies. */
static bool via_https(rt_httpd_req *req) {
  const char *p = rt_httpd_req_header(req, "x-forwarded-proto");
  if (p && strncasecmp(p, "https", 5) == 0) return true;
  const char *f = rt_httpd_req_header(req, "forwarded");
  return f && (strstr(f, "proto=https") || strstr(f, "proto=\"https\""));
}

static void on_page(void *ud, rt_httpd_req *req) {
  rt_webchat *w = ud;
  char vid[33];
  if (!rt_webchat_cookie_check(w->secret, rt_httpd_req_header(req, "cookie"), vid)) {
    new_vid(vid);
    char *val = rt_webchat_cookie_make(w->secret, vid);
    char *c = rt_xasprintf(COOKIE_NAME "=%s; Path=/; Max-Age=%d; HttpOnly; %s", val,
                           COOKIE_MAX_AGE_S,
                           via_https(req) ? "SameSite=None; Secure; Partitioned" : "SameSite=Lax");
    rt_httpd_reply_header(req, "Set-Cookie", c);
    free(c);
    free(val);
  }
  /* The same id as a token in the page: framed with its cookie blocked,
   * the page keeps it in its own storage and says it in its hello (it
   * keeps an older one it already has instead). */
  char *token = rt_webchat_cookie_make(w->secret, vid);
  common_headers(w, req);
  rt_httpd_reply_header(req, "Cache-Control", "no-store");
  /* The page's template: the title and the base path go in. */
  rt_buf b = {0};
  const char *p = (const char *)rt_webchat_index_html, *end = p + sizeof rt_webchat_index_html;
  while (p < end) {
    const char *hit = memmem(p, (size_t)(end - p), "{{", 2);
    if (!hit) { rt_buf_add(&b, p, (size_t)(end - p)); break; }
    rt_buf_add(&b, p, (size_t)(hit - p));
    if (strncmp(hit, "{{base}}", 8) == 0) { rt_buf_adds(&b, w->path); p = hit + 8; }
    else if (strncmp(hit, "{{token}}", 9) == 0) { rt_buf_adds(&b, token); p = hit + 9; }
    else if (strncmp(hit, "{{title}}", 9) == 0) {
      /* HTML text: escape the five characters */
      for (const char *s = w->title; *s; s++) {
        switch (*s) {
        case '<': rt_buf_adds(&b, "&lt;"); break;
        case '>': rt_buf_adds(&b, "&gt;"); break;
        case '&': rt_buf_adds(&b, "&amp;"); break;
        case '"': rt_buf_adds(&b, "&quot;"); break;
        case '\'': rt_buf_adds(&b, "&#39;"); break;
        default: rt_buf_addc(&b, *s);
        }
      }
      p = hit + 9;
    } else { rt_buf_add(&b, hit, 2); p = hit + 2; }
  }
  size_t n;
  char *html = rt_buf_take(&b, &n);
  rt_httpd_respond(req, 200, "text/html; charset=utf-8", html, n);
  free(html);
  free(token);
}

static void on_asset(void *ud, rt_httpd_req *req) {
  rt_webchat *w = ud;
  const char *path = rt_httpd_req_path(req), *name = path + strlen(w->path);
  common_headers(w, req);
  rt_httpd_reply_header(req, "Cache-Control", "no-cache");
  if (strcmp(name, "chat.js") == 0)
    rt_httpd_respond(req, 200, "text/javascript; charset=utf-8", rt_webchat_chat_js,
                     sizeof rt_webchat_chat_js);
  else if (strcmp(name, "embed.js") == 0)
    rt_httpd_respond(req, 200, "text/javascript; charset=utf-8", rt_webchat_embed_js,
                     sizeof rt_webchat_embed_js);
  else if (strcmp(name, "chat.css") == 0)
    rt_httpd_respond(req, 200, "text/css; charset=utf-8", rt_webchat_chat_css,
                     sizeof rt_webchat_chat_css);
  else
    respond_json(req, 404, "not found");
}

static bool same_site(rt_webchat *w, rt_httpd_req *req) {
  return rt_webchat_origin_ok(w->origins, rt_httpd_req_header(req, "origin"),
                              rt_httpd_req_header(req, "host"));
}

static void on_upload(void *ud, rt_httpd_req *req) {
  rt_webchat *w = ud;
  char vid[33];
  if (!same_site(w, req)) { respond_json(req, 403, "this site may not send photos here"); return; }
  if (!visitor_of(w, req, vid)) { respond_json(req, 401, "no visitor cookie: reload the page"); return; }
  size_t n;
  const unsigned char *body = rt_httpd_req_body(req, &n);
  if (n == 0) { respond_json(req, 400, "the photo is empty"); return; }
  if (n > w->max_photo) {
    char m[120];
    snprintf(m, sizeof m, "the photo is %zu bytes; at most %zu are taken", n, w->max_photo);
    respond_json(req, 413, m);
    return;
  }
  const char *kind = rt_webchat_image_kind(body, n);
  if (!kind) { respond_json(req, 415, "not a photo: JPEG, PNG, GIF or WebP only"); return; }
  visitor *v = visitor_get(w, vid, true);
  if (v->tokens < 1.0 && !take_token(w, v)) {
    respond_json(req, 429, "too many messages: wait a little");
    return;
  }
  unsigned char r[8];
  if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r) memset(r, 0, sizeof r);
  char rh[17];
  hex(r, sizeof r, rh);
  char *name = rt_xasprintf("%s-%s.%s", vid, rh, kind);
  char *path = rt_xasprintf("%s/%s", w->env->data_dir, name);
  char *tmp = rt_xasprintf("%s.part", path);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  bool ok = fd >= 0;
  for (size_t off = 0; ok && off < n;) {
    ssize_t wr = write(fd, body + off, n - off);
    if (wr < 0 && errno == EINTR) continue;
    if (wr <= 0) ok = false;
    else off += (size_t)wr;
  }
  if (fd >= 0 && close(fd) != 0) ok = false;
  if (ok && rename(tmp, path) != 0) ok = false;
  if (!ok) {
    char q[256];
    rt_log_quote(strerror(errno), q, sizeof q);
    rt_log(RT_LOG_ERROR, "webchat.upload-failed", "err=%s", q);
    unlink(tmp);
    respond_json(req, 507, "the shop could not keep the photo; try again later");
  } else {
    json_t *j = json_pack("{s:s}", "file", name);
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    rt_httpd_respond(req, 200, "application/json", s, strlen(s));
    free(s);
  }
  free(tmp);
  free(path);
  free(name);
}

static void on_media(void *ud, rt_httpd_req *req) {
  rt_webchat *w = ud;
  char vid[33];
  const char *name = rt_httpd_req_path(req) + strlen(w->path) + strlen("media/");
  /* A visitor sees its own photos only. */
  if (!visitor_of(w, req, vid) || !file_ok(vid, name)) { respond_json(req, 404, "not found"); return; }
  char *path = rt_xasprintf("%s/%s", w->env->data_dir, name);
  FILE *f = fopen(path, "rb");
  free(path);
  if (!f) { respond_json(req, 404, "not found"); return; }
  rt_buf b = {0};
  char chunk[16384];
  size_t k;
  while ((k = fread(chunk, 1, sizeof chunk, f)) > 0) rt_buf_add(&b, chunk, k);
  fclose(f);
  size_t n;
  char *data = rt_buf_take(&b, &n);
  const char *ext = strrchr(name, '.') + 1;
  char ctype[32];
  snprintf(ctype, sizeof ctype, "image/%s", ext);
  rt_httpd_reply_header(req, "Cache-Control", "private, max-age=86400");
  rt_httpd_reply_header(req, "X-Content-Type-Options", "nosniff");
  rt_httpd_respond(req, 200, ctype, data, n);
  free(data);
}

/* ---- outbound ---- */

static char *out_frame(const rt_out_msg *m, size_t *len) {
  json_t *j = json_pack("{s:s, s:I, s:s}", "t", "msg", "id", (json_int_t)m->id, "text",
                        m->text ? m->text : "");
  if (!j) {
    /* not UTF-8 (a flow's bytes): shown with replacement characters */
    size_t n;
    char *clean = rt_utf8_clean(m->text, strlen(m->text), &n);
    j = json_pack("{s:s, s:I, s:s%}", "t", "msg", "id", (json_int_t)m->id, "text", clean, n);
    free(clean);
  }
  if (m->nbuttons) {
    json_t *b = json_array();
    for (size_t i = 0; i < m->nbuttons; i++) {
      json_t *s = json_string(m->buttons[i]);
      if (s) json_array_append_new(b, s);
    }
    json_object_set_new(j, "buttons", b);
  }
  if (m->kind == RT_MSG_MEDIA && m->media_ref) {
    json_t *s = json_string(m->media_ref);
    if (s) json_object_set_new(j, "media", s);
    json_object_set_new(j, "media_kind", json_string(m->media_kind ? m->media_kind : "photo"));
  }
  char *s = json_dumps(j, JSON_COMPACT);
  json_decref(j);
  *len = strlen(s);
  return s;
}

static void wc_send(rt_channel *ch, const rt_out_msg *m, rt_send_done done, void *ud) {
  rt_webchat *w = ch->impl;
  visitor *v = is_hex32(m->chat_id, strlen(m->chat_id)) ? visitor_get(w, m->chat_id, false) : NULL;
  if (!is_hex32(m->chat_id, strlen(m->chat_id))) {
    done(ud, &(rt_send_result){.verdict = RT_SEND_FAILED, .reason = RT_FAIL_CHAT_NOT_FOUND,
                               .text = "not a web chat visitor id"});
    return;
  }
  int64_t now = now_ms(w);
  /* With no page open the message waits here a while for one to open (a
   * reload, a reconnect, a visitor back after a restart of the bot), then
   * goes back to the queue, which tries again soon. */
  if (!v) {
    v = visitor_get(w, m->chat_id, true);
    v->seen_ms = 0;   /* not seen: only asked for */
  }
  pending *p = rt_xcalloc(1, sizeof *p);
  p->id = m->id;
  p->frame = out_frame(m, &p->len);
  p->deadline = now + (v->conns ? ACK_TIMEOUT_MS : HOLD_MS);
  p->attempt = m->attempt;
  p->done = done;
  p->ud = ud;
  pending **tail = &v->sends;
  while (*tail) tail = &(*tail)->next;
  *tail = p;
  to_visitor(v, p->frame, p->len);
}

/* Once a second: unacked sends time out (the queue tries them again), and
 * visitors with nothing open are forgotten after a while. */
static void on_sweep(uv_timer_t *t) {
  rt_webchat *w = t->data;
  int64_t now = now_ms(w);
  size_t it = 0;
  const char *key;
  void *val;
  char **drop = NULL;
  size_t ndrop = 0;
  /* A socket that never said hello is closed (the page says it at once). */
  for (conn *c = w->lobby; c; c = c->next)
    if (!c->closing && now - c->opened_ms > HELLO_MS) {
      c->closing = true;
      rt_httpd_ws_close(c->ws, 1008, "no hello");
    }
  while (rt_map_next(&w->visitors, &it, &key, &val)) {
    visitor *v = val;
    for (pending **pp = &v->sends; *pp;) {
      pending *p = *pp;
      if (p->deadline > now) { pp = &p->next; continue; }
      *pp = p->next;
      /* Soon while the visitor is around; for a chat left for good, the
       * queue's own back-off (up to ten minutes) after an hour or so. */
      int64_t after = v->conns || now - v->seen_ms < SEEN_RECENT_MS ? RETRY_SEEN_MS
                      : p->attempt < 120                         ? RETRY_AWAY_MS
                                                                 : 0;
      p->done(p->ud, &(rt_send_result){.verdict = RT_SEND_RETRY_LATER, .after_ms = after,
                                       .text = v->conns ? "the page did not confirm the message"
                                                        : "no page open for this visitor"});
      free(p->frame);
      free(p);
    }
    if (!v->conns && !v->sends && now - v->seen_ms > VISITOR_IDLE_MS) {
      drop = rt_xrealloc(drop, (ndrop + 1) * sizeof *drop);
      drop[ndrop++] = rt_xstrdup(key);
    }
  }
  for (size_t i = 0; i < ndrop; i++) {
    free(rt_map_del(&w->visitors, drop[i]));
    free(drop[i]);
  }
  free(drop);
}

/* ---- lifecycle ---- */

static void load_secret(rt_webchat *w) {
  const rt_plugin_env *e = w->env;
  char *s = e->kv_get ? e->kv_get(e->host, e->name, "cookie_secret") : NULL;
  if (s && strlen(s) == 64) {
    memcpy(w->secret, s, 65);
    free(s);
    return;
  }
  free(s);
  unsigned char r[32];
  if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r) memset(r, 0, sizeof r);
  hex(r, sizeof r, w->secret);
  if (!e->kv_set || e->kv_set(e->host, e->name, "cookie_secret", w->secret) != RT_OK)
    rt_log(RT_LOG_WARN, "webchat.secret-not-kept",
           "msg=\"visitors get new ids when the bot restarts\"");
}

static void wc_start(rt_channel *ch, const rt_plugin_env *env,
                     void (*done)(void *, int, const char *), void *ud) {
  rt_webchat *w = ch->impl;
  w->env = env;
  if (!env->httpd) {
    /* On by default only: a shop without the HTTP server has no web chat,
     * which is no fault unless it asked for one. */
    if (json_is_true(json_object_get(env->conf, "enabled"))) {
      done(ud, RT_EINVAL, "the web chat needs the HTTP server: set http.listen and "
                          "http.enabled");
      return;
    }
    rt_log(RT_LOG_INFO, "webchat", "off=\"http is disabled\"");
    done(ud, RT_OK, NULL);
    return;
  }
  if (!env->data_dir) {
    done(ud, RT_EINVAL, "the web chat needs a data folder for photos");
    return;
  }
  mkdir(env->data_dir, 0755);
  load_secret(w);
  rt_httpd_route(env->httpd, "GET", w->path, on_page, w);
  char *p = rt_xasprintf("%schat.js", w->path);
  rt_httpd_route(env->httpd, "GET", p, on_asset, w);
  free(p);
  p = rt_xasprintf("%schat.css", w->path);
  rt_httpd_route(env->httpd, "GET", p, on_asset, w);
  free(p);
  p = rt_xasprintf("%sembed.js", w->path);
  rt_httpd_route(env->httpd, "GET", p, on_asset, w);
  free(p);
  p = rt_xasprintf("%supload", w->path);
  rt_httpd_route_opts uo = {.max_body = w->max_photo};
  rt_httpd_route_ex(env->httpd, "POST", p, &uo, on_upload, w);
  free(p);
  p = rt_xasprintf("%smedia/*", w->path);
  rt_httpd_route(env->httpd, "GET", p, on_media, w);
  free(p);
  rt_httpd_ws_callbacks cb = {.on_open = ws_open, .on_message = ws_message, .on_close = ws_close,
                              .max_message = w->max_msg * 2 + 1024};
  rt_httpd_ws_route(env->httpd, w->ws_path, &cb, w);
  uv_timer_init(env->loop, &w->sweep);
  w->sweep.data = w;
  uv_timer_start(&w->sweep, on_sweep, 1000, 1000);
  w->sweep_on = true;
  rt_log(RT_LOG_INFO, "webchat", "page=%s ws=%s", w->path, w->ws_path);
  done(ud, RT_OK, NULL);
}

static void wc_free(rt_webchat *w) {
  size_t it = 0;
  const char *key;
  void *val;
  while (rt_map_next(&w->visitors, &it, &key, &val)) {
    visitor *v = val;
    while (v->conns) {
      conn *c = v->conns;
      v->conns = c->next;
      rt_httpd_ws_set_user(c->ws, NULL);
      free(c);
    }
    free(v);
  }
  rt_map_free(&w->visitors);
  while (w->lobby) {
    conn *c = w->lobby;
    w->lobby = c->next;
    rt_httpd_ws_set_user(c->ws, NULL);
    free(c);
  }
  json_decref(w->origins);
  free(w->path); free(w->ws_path); free(w->title);
  free(w);
}

/* The instance frees itself once the sweep timer is closed and every
 * receive ack has come (channel.h: close may free). */
static void close_finish(rt_webchat *w) {
  if (w->sweep_on || w->tickets || !w->close_done) return;
  void (*done)(void *) = w->close_done;
  void *ud = w->close_ud;
  w->close_done = NULL;
  wc_free(w);
  done(ud);
}

static void sweep_closed(uv_handle_t *h) {
  rt_webchat *w = h->data;
  w->sweep_on = false;
  close_finish(w);
}

static void wc_close(rt_channel *ch, void (*done)(void *), void *ud) {
  rt_webchat *w = ch->impl;
  /* Every send still waiting for a browser goes back to the queue. */
  size_t it = 0;
  const char *key;
  void *val;
  while (rt_map_next(&w->visitors, &it, &key, &val)) {
    visitor *v = val;
    while (v->sends) {
      pending *p = v->sends;
      v->sends = p->next;
      p->done(p->ud, &(rt_send_result){.verdict = RT_SEND_RETRY_LATER,
                                       .text = "the bot is stopping"});
      free(p->frame);
      free(p);
    }
  }
  w->close_done = done;
  w->close_ud = ud;
  if (w->sweep_on && !uv_is_closing((uv_handle_t *)&w->sweep))
    uv_close((uv_handle_t *)&w->sweep, sweep_closed);
  else
    close_finish(w);
}

/* For a channel never started and never closed (tests). */
void rt_webchat_free(rt_webchat *w);
void rt_webchat_free(rt_webchat *w) { if (w) wc_free(w); }

static int64_t conf_int(const json_t *c, const char *k, int64_t dflt) {
  json_t *v = c ? json_object_get(c, k) : NULL;
  return json_is_integer(v) ? json_integer_value(v) : dflt;
}

int rt_webchat_new(const json_t *conf, rt_webchat **out, char **err) {
  *out = NULL;
  const char *path = conf ? json_string_value(json_object_get(conf, "path")) : NULL;
  if (!path) path = "/";
  if (path[0] != '/' || path[strlen(path) - 1] != '/' || strstr(path, "//") || strpbrk(path, "*?#")) {
    *err = rt_xasprintf("channels.webchat.path \"%s\" must start and end with / (like /chat/)", path);
    return RT_EINVAL;
  }
  json_t *orig = conf ? json_object_get(conf, "allowed_origins") : NULL;
  if (orig && !json_is_array(orig)) {
    *err = rt_xstrdup("channels.webchat.allowed_origins must be a list of origins");
    return RT_EINVAL;
  }
  rt_webchat *w = rt_xcalloc(1, sizeof *w);
  w->path = rt_xstrdup(path);
  w->ws_path = rt_xasprintf("%sws", path);
  const char *title = conf ? json_string_value(json_object_get(conf, "title")) : NULL;
  /* the wording is the shop's: channels.webchat.title, default in schema.json */
  w->title = rt_xstrdup(title ? title : "");
  w->origins = orig ? json_deep_copy(orig) : json_array();
  w->max_msg = (size_t)conf_int(conf, "max_message_bytes", 4096);
  w->max_photo = (size_t)conf_int(conf, "max_photo_bytes", 5 << 20);
  w->rate_per_ms = (double)conf_int(conf, "rate_per_minute", 20) / 60000.0;
  w->burst = (double)conf_int(conf, "burst", 5);
  if (w->max_msg < 16 || w->max_msg > 60000 || w->rate_per_ms <= 0 || w->burst < 1) {
    *err = rt_xstrdup("channels.webchat: max_message_bytes is 16..60000, rate_per_minute and "
                      "burst at least 1");
    wc_free(w);
    return RT_EINVAL;
  }
  rt_map_init(&w->visitors);
  /* A send waits in the plugin while its visitor has no page open, so
   * many may be in flight at once; each costs a few hundred bytes. */
  w->ch = (rt_channel){.name = "webchat", .impl = w,
                       .caps = RT_CH_BUTTONS | RT_CH_MEDIA | RT_CH_HISTORY,
                       .limits = {.in_flight = 100000},
                       .start = wc_start, .send = wc_send, .close = wc_close};
  *out = w;
  return RT_OK;
}

rt_channel *rt_webchat_channel(rt_webchat *w) { return &w->ch; }

/* ---- the plugin ---- */

static bool wc_wanted(const json_t *conf) {
  json_t *e = json_object_get(conf, "enabled");
  return !json_is_false(e);
}

static int wc_create(const json_t *conf, rt_channel **ch, struct rt_provider **pv, char **err) {
  (void)pv;
  rt_webchat *w;
  int rc = rt_webchat_new(conf, &w, err);
  if (rc == RT_OK) *ch = &w->ch;
  return rc;
}

const rt_plugin rt_plugin_webchat = {
  .name = "webchat",
  .version = "0.1.0",
  .kind = RT_PLUGIN_CHANNEL,
  .schema_json = (const char *)rt_webchat_schema_json,
  .wanted = wc_wanted,
  .fallback = true,
  .no_http = true,
  .create = wc_create,
};
