/* http_server.c -- libwebsockets HTTP server on a foreign uv loop
 * (see http_server.h).
 *
 * Request flow, per connection (lws per-session data is our rt_httpd_conn):
 *   LWS_CALLBACK_HTTP            copy method, path, query; find the route
 *                                (or decide 404/405/426) and the body limit
 *   LWS_CALLBACK_HTTP_BODY       append (or discard when over the limit)
 *   LWS_CALLBACK_HTTP_BODY_COMPLETION / no body: finish() -> dispatch()
 *                                hands the handler an rt_httpd_req
 *   rt_httpd_respond             now or later: fills the reply in the conn,
 *                                conn_ready() asks for WRITEABLE
 *   LWS_CALLBACK_HTTP_WRITEABLE  headers, then the body in chunks, then
 *                                lws_http_transaction_completed (keep-alive)
 * A request that waits for its answer is on s->pending with a deadline (a
 * 50 ms uv timer answers 504 when it passes); the conn and the request
 * point at each other until one of them goes (req_detach).
 *
 * Websockets: LWS_CALLBACK_HTTP_CONFIRM_UPGRADE accepts "websocket" on a
 * websocket route whose on_open agrees and refuses every other upgrade
 * (h2c included) with an HTTP status. The rt_httpd_ws lives in our
 * conn_rec of the connection; frames to send queue there and leave one per
 * SERVER_WRITEABLE.
 *
 * Teardown with a foreign libuv loop in lws 4.1: lws_context_destroy() only
 * starts closing the handles lws put on our loop; when the last one is
 * closed nobody calls back (the internal-loop path does, the foreign one does
 * not), and a second lws_context_destroy() then frees the context. So
 * rt_httpd_close runs a small uv timer: first turn, lws_context_destroy();
 * then each turn, look whether lws still has handles on the loop; when none
 * is left, lws_context_destroy() again, close the timer, free. lws creates
 * two per-thread static handles (an idle and a timer, with handle->data ==
 * the context) in lws_create_context and closes them only after every
 * connection handle is closed; we note their addresses at creation (the
 * handles that appeared on the loop with data == ctx), and once neither is
 * on the loop any more, lws is off the loop. */
#include "http_server.h"
#include "log.h"
#include "rt.h"
#include <libwebsockets.h>
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>
#include <dlfcn.h>
#include <stddef.h>

/* libwebsockets, opened when the first connection is accepted (lw_load),
 * not linked: it brings libssl and libcrypto with it, whose relocations
 * alone are some 1.7 MB of every bot's memory, and a bot that nobody calls
 * over HTTP never needs any of the three. The listening socket is ours
 * (open_listener, on_listen), so the port is open from the start. */
static struct {
  bool loaded;
  __typeof__(lws_add_http_common_headers) *add_http_common_headers;
  __typeof__(lws_add_http_header_by_name) *add_http_header_by_name;
  __typeof__(lws_add_http_header_by_token) *add_http_header_by_token;
  __typeof__(lws_adopt_socket_vhost) *adopt_socket_vhost;
  __typeof__(lws_callback_http_dummy) *callback_http_dummy;
  __typeof__(lws_callback_on_writable) *callback_on_writable;
  __typeof__(lws_close_reason) *close_reason;
  __typeof__(lws_context_destroy) *context_destroy;
  __typeof__(lws_context_user) *context_user;
  __typeof__(lws_create_context) *create_context;
  __typeof__(lws_create_vhost) *create_vhost;
  __typeof__(lws_finalize_write_http_header) *finalize_write_http_header;
  __typeof__(lws_frame_is_binary) *frame_is_binary;
  __typeof__(lws_get_context) *get_context;
  __typeof__(lws_get_network_wsi) *get_network_wsi;
  __typeof__(lws_get_opaque_user_data) *get_opaque_user_data;
  __typeof__(lws_get_peer_simple) *get_peer_simple;
  __typeof__(lws_get_socket_fd) *get_socket_fd;
  __typeof__(lws_hdr_copy) *hdr_copy;
  __typeof__(lws_hdr_copy_fragment) *hdr_copy_fragment;
  __typeof__(lws_hdr_custom_copy) *hdr_custom_copy;
  __typeof__(lws_hdr_custom_length) *hdr_custom_length;
  __typeof__(lws_hdr_total_length) *hdr_total_length;
  __typeof__(lws_http_transaction_completed) *http_transaction_completed;
  __typeof__(lws_is_final_fragment) *is_final_fragment;
  __typeof__(lws_is_first_fragment) *is_first_fragment;
  __typeof__(lws_remaining_packet_payload) *remaining_packet_payload;
  __typeof__(lws_return_http_status) *return_http_status;
  __typeof__(lws_set_log_level) *set_log_level;
  __typeof__(lws_set_opaque_user_data) *set_opaque_user_data;
  __typeof__(lws_set_timeout) *set_timeout;
  __typeof__(lws_token_to_string) *token_to_string;
  __typeof__(lws_write) *write;
} lw;

static void lws_log_emit(int level, const char *line);

#define LW_SONAME "libwebsockets.so.17"

/* Loads libwebsockets once, for the first accepted connection; false (and
 * logged) when it cannot, and the caller closes its connections. Not
 * checked at start: a probe would have to load it, and libcrypto, which it
 * brings, cannot be unloaded (about 2 MB kept for nothing). The package is
 * a dependency that `./dev.sh` installs with the rest. */
static bool lw_load(void) {
  if (lw.loaded) return true;
  void *lib = dlopen(LW_SONAME, RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    rt_log(RT_LOG_ERROR, "httpd.lws", "detail=\"cannot load libwebsockets: %s\"", dlerror());
    return false;
  }
  static const struct { const char *name; size_t off; } syms[] = {
#define SYM(f) {"lws_" #f, offsetof(__typeof__(lw), f)}
    SYM(add_http_common_headers), SYM(add_http_header_by_name), SYM(add_http_header_by_token),
    SYM(adopt_socket_vhost), SYM(callback_http_dummy), SYM(callback_on_writable),
    SYM(close_reason), SYM(context_destroy), SYM(context_user), SYM(create_context),
    SYM(create_vhost), SYM(finalize_write_http_header), SYM(frame_is_binary), SYM(get_context),
    SYM(get_network_wsi), SYM(get_opaque_user_data), SYM(get_peer_simple), SYM(get_socket_fd),
    SYM(hdr_copy), SYM(hdr_copy_fragment), SYM(hdr_custom_copy), SYM(hdr_custom_length),
    SYM(hdr_total_length), SYM(http_transaction_completed), SYM(is_final_fragment),
    SYM(is_first_fragment), SYM(remaining_packet_payload), SYM(return_http_status),
    SYM(set_log_level), SYM(set_opaque_user_data), SYM(set_timeout), SYM(token_to_string),
    SYM(write),
#undef SYM
  };
  for (size_t i = 0; i < sizeof syms / sizeof syms[0]; i++) {
    void *f = dlsym(lib, syms[i].name);
    if (!f) {
      rt_log(RT_LOG_ERROR, "httpd.lws", "detail=\"libwebsockets lacks %s\"", syms[i].name);
      dlclose(lib);
      return false;
    }
    memcpy((char *)&lw + syms[i].off, &f, sizeof f);
  }
  lw.loaded = true;
  lw.set_log_level(LLL_ERR | LLL_WARN, lws_log_emit);
  return true;
}

#define DISCARD_MAX ((long long)64 << 20) /* bigger bodies: 413 and close */
#define WCHUNK 16384
#define TEARDOWN_WARN_MS 10000
#define LISTEN_BACKLOG 511
#define ACCEPT_BATCH 64      /* accepts per listen-socket wakeup */
#define FD_RESERVE 64        /* descriptors kept for the rest of the process */
/* Connections over the cap while idle ones they replace are closing. */
#define EVICT_SLACK 16
#define FULL_WARN_MS 60000   /* "at the cap" warning at most this often */
#define BACKOFF_MIN_MS 50u   /* accept back-off on EMFILE and the like */
#define BACKOFF_MAX_MS 1000u
/* lws's descriptors besides connections (its cancel pipe) plus slack, so
 * that its own table never refuses a connection we have counted in. */
#define LWS_FD_EXTRA 16

typedef struct rt_httpd_conn rt_httpd_conn;

/* One accepted connection (lws's network wsi). The idle list, oldest
 * first, holds those not inside a request: just accepted, sending headers
 * slowly, or quiet between keep-alive requests. At the cap, each new
 * connection closes the head of that list, so idle connections cannot
 * lock out requests; connections inside a request, and websockets, are
 * never closed for room. */
typedef struct conn_rec {
  struct lws *wsi;                   /* NULL: on the free list */
  struct conn_rec *prev, *next;      /* idle list, or next free */
  bool idle, evicting;
  rt_httpd_ws *ws;                   /* the websocket on it, owned, or NULL */
  /* Reading a request's body (body list, oldest first): since when. */
  struct conn_rec *bprev, *bnext;
  bool in_body;
  uint64_t body_since;               /* uv_now ms at the headers */
} conn_rec;

typedef struct {
  char *method;                      /* NULL: any */
  char *path;                        /* a prefix route: without its slash-star */
  size_t len;
  bool prefix, ws;
  rt_httpd_handler fn;
  rt_httpd_ws_callbacks wcb;
  void *ud;
  size_t max_body;                   /* 0: the server's */
  unsigned timeout_ms;               /* 0: the server's */
} route;

typedef struct {
  char *name, *value;                /* owned; request names in lower case */
} hdr;

typedef struct {
  hdr *v;
  size_t n, cap, bytes;
} hdr_list;

/* A request handed to a handler. While attached (c != NULL) the
 * connection's rt_httpd_conn points back at it (c->req); whichever side
 * goes first cuts both links (req_detach), so the holder's later
 * rt_httpd_respond sees c == NULL and only frees. The server never frees a
 * request that a handler may still hold: it is freed by rt_httpd_respond,
 * or by dispatch when the handler answered during its call. */
struct rt_httpd_req {
  rt_httpd *s;                       /* NULL once detached */
  struct lws *wsi;
  rt_httpd_conn *c;
  const char *method;                /* static string */
  char *path, *query;                /* owned */
  unsigned char *body;               /* owned, NUL after body_len bytes */
  size_t body_len;
  hdr_list h;                        /* request headers */
  hdr_list rh;                       /* reply headers */
  char remote[64];
  bool in_call;                      /* inside the handler (or on_open) */
  bool answered, borrowed;           /* borrowed: on_open's, not answerable */
  uint64_t deadline;                 /* uv_now ms, while pending */
  struct rt_httpd_req *prev, *next;  /* s->pending */
  bool pending;
};

typedef struct frame {
  struct frame *next;
  size_t len;
  bool binary;
  unsigned char buf[];               /* LWS_PRE + len */
} frame;

/* A websocket connection: owned by its conn_rec from the upgrade until
 * lws closes it (ws_finish). */
struct rt_httpd_ws {
  rt_httpd *s;
  struct lws *wsi;                   /* NULL once gone */
  rt_httpd_ws_callbacks cb;
  void *ud, *user;
  size_t max_message, max_queued;
  unsigned char *msg;                /* the message being reassembled */
  size_t msg_len, msg_cap;
  bool msg_binary;
  frame *head, *tail;
  size_t queued;
  bool accepted, established, closing, killed;
  int close_code;
  char close_reason[124];            /* a close frame holds 123 bytes */
};

struct rt_httpd {
  uv_loop_t *loop;                   /* borrowed */
  struct lws_context *ctx;           /* owned */
  struct lws_context *ctx_watch;     /* lws writes NULL here when freed */
  struct lws_vhost *vh;
  struct lws_protocols protocols[2]; /* [1] zeroed: end of list */
  lws_retry_bo_t idle_policy;        /* websocket ping / hang-up */
  int port;
  int lfd;                           /* listening socket, owned */
  uv_poll_t lpoll;                   /* readable lfd -> on_listen */
  uv_timer_t retry;                  /* accept back-off */
  uv_timer_t deadlines;              /* deferred answers' timeouts */
  bool handles_init;                 /* lpoll, retry, deadlines on the loop */
  bool listening, retry_pending, deadlines_on;
  unsigned backoff_ms;
  int nconn, max_conn;               /* accepted connections open, cap */
  conn_rec *recs;                    /* max_conn + EVICT_SLACK, owned */
  size_t nrecs;
  conn_rec *free_recs, *idle_head, *idle_tail;
  conn_rec *body_head, *body_tail;   /* reading a body, oldest first */
  unsigned body_timeout_ms;          /* headers to the body's last byte */
  uint64_t body_timeouts, body_evictions;
  int nws, ws_max;                   /* accepted websockets, their cap */
  uint64_t full_warned_ms;
  bool full_warned;
  int pending_closes;                /* our handles not closed yet */
  route *routes;
  size_t nroutes, routes_cap;
  rt_httpd_req *pending;             /* deferred answers, attached */
  size_t max_body, ws_max_message, ws_max_queued;
  unsigned reply_timeout_ms;
  unsigned short max_header;         /* for the lws context, made at the first accept */
  int keepalive_s, header_timeout_s;
  bool lws_failed;                   /* lws could not make them: connections are closed */
  uv_timer_t reap;                   /* teardown driver */
  uv_handle_t *lws_handles[8];       /* lws's static handles (borrowed) */
  size_t nlws;
  int closing;                       /* 0 running, 1 asked, 2 destroying */
  uint64_t close_ms;
  bool warned;
  void (*done)(void *ud);
  void *done_ud;
  unsigned char wbuf[LWS_PRE + WCHUNK]; /* body chunk staging */
};

/* lws per-session data: zeroed by lws, lives as long as the connection;
 * with keep-alive it serves one request after another (conn_reset). */
struct rt_httpd_conn {
  const char *method;       /* static string */
  char *path, *query;       /* owned until dispatch hands them on */
  unsigned char *body;      /* owned, request body */
  size_t body_len, body_cap, body_max;
  bool want_body, too_big;
  int reject;               /* 404/405/426 decided at the headers */
  char *allow;              /* owned, the Allow header of a 405 */
  rt_httpd_handler fn;      /* the route's, copied at the headers */
  void *ud;
  unsigned timeout_ms;
  rt_httpd_req *req;        /* the request a handler holds, or NULL */
  bool ready;               /* reply filled, waiting for WRITEABLE */
  bool hdr_sent, close_after, close_now;
  int spurious;             /* repeated BODY_COMPLETIONs (see lws_cb) */
  int status;
  char *ctype;              /* owned */
  char *out;                /* owned, reply body */
  size_t out_len, sent;
  hdr_list rh;              /* reply headers, owned */
};

typedef struct {
  struct sockaddr_storage ss;
  socklen_t len;
} listen_addr;

static void on_listen(uv_poll_t *h, int status, int events);
static bool lws_up(rt_httpd *s);
static void conn_gone(rt_httpd *s, struct lws *wsi);
static void conn_busy(rt_httpd *s, struct lws *wsi, bool busy);
static conn_rec *rec_of(rt_httpd *s, struct lws *wsi);
static void req_detach(rt_httpd_req *q);
static void idle_remove(rt_httpd *s, conn_rec *r);
static void listen_start(rt_httpd *s);

static void hdrs_free(hdr_list *l) {
  for (size_t i = 0; i < l->n; i++) {
    free(l->v[i].name);
    free(l->v[i].value);
  }
  free(l->v);
  memset(l, 0, sizeof *l);
}

static void hdrs_add(hdr_list *l, char *name, char *value) {
  if (l->n == l->cap) {
    l->cap = l->cap ? l->cap * 2 : 16;
    l->v = rt_xrealloc(l->v, l->cap * sizeof *l->v);
  }
  l->v[l->n].name = name;
  l->v[l->n].value = value;
  l->bytes += strlen(name) + strlen(value) + 4;
  l->n++;
}

static void conn_reset(rt_httpd_conn *c) {
  if (c->req) req_detach(c->req);
  free(c->path);
  free(c->query);
  free(c->body);
  free(c->allow);
  free(c->ctype);
  free(c->out);
  hdrs_free(&c->rh);
  memset(c, 0, sizeof *c);
}

/* ---- lws log -> rt_log ---------------------------------------------------- */

static void lws_log_emit(int level, const char *line) {
  char msg[512], q[600];
  size_t n = strlen(line);
  while (n && (line[n - 1] == '\n' || line[n - 1] == '\r')) n--;
  if (n >= sizeof msg) n = sizeof msg - 1;
  memcpy(msg, line, n);
  msg[n] = '\0';
  rt_log_quote(msg, q, sizeof q);
  rt_log(RT_LOG_WARN, "lws", "line=%s", q);
}

/* ---- request handling ------------------------------------------------------ */

static const char *method_of(struct lws *wsi, bool *has_body) {
  static const struct { enum lws_token_indexes tok; const char *name; bool body; } m[] = {
    {WSI_TOKEN_GET_URI, "GET", false},      {WSI_TOKEN_POST_URI, "POST", true},
    {WSI_TOKEN_PUT_URI, "PUT", true},       {WSI_TOKEN_PATCH_URI, "PATCH", true},
    {WSI_TOKEN_DELETE_URI, "DELETE", false}, {WSI_TOKEN_OPTIONS_URI, "OPTIONS", false},
    {WSI_TOKEN_HEAD_URI, "HEAD", false},
  };
  for (size_t i = 0; i < RT_ARRAY_LEN(m); i++)
    if (lw.hdr_total_length(wsi, m[i].tok) > 0) {
      *has_body = m[i].body;
      return m[i].name;
    }
  *has_body = false;
  return NULL;
}

/* lws splits the query at '&' and URL-decodes each piece; put them back
 * together, re-encoding everything but unreserved characters and the first
 * '=' of each piece. */
static char *query_of(struct lws *wsi) {
  int total = lw.hdr_total_length(wsi, WSI_TOKEN_HTTP_URI_ARGS);
  if (total <= 0) return rt_xstrdup("");
  char *frag = rt_xmalloc((size_t)total + 1);
  size_t cap = (size_t)total * 3 + 64, o = 0;
  char *q = rt_xmalloc(cap);
  for (int i = 0;; i++) {
    int n = lw.hdr_copy_fragment(wsi, frag, total + 1, WSI_TOKEN_HTTP_URI_ARGS, i);
    if (n < 0) break;
    if (o + (size_t)n * 3 + 2 > cap) {
      cap = (o + (size_t)n * 3 + 2) * 2;
      q = rt_xrealloc(q, cap);
    }
    if (i > 0) q[o++] = '&';
    bool eq = false;
    for (int k = 0; k < n; k++) {
      unsigned char ch = (unsigned char)frag[k];
      if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
          (ch >= '0' && ch <= '9') || ch == '-' || ch == '.' || ch == '_' ||
          ch == '~' || (ch == '=' && !eq)) {
        if (ch == '=') eq = true;
        q[o++] = (char)ch;
      } else {
        static const char hex[] = "0123456789ABCDEF";
        q[o++] = '%';
        q[o++] = hex[ch >> 4];
        q[o++] = hex[ch & 15];
      }
    }
  }
  q[o] = '\0';
  free(frag);
  return q;
}


/* ---- routes ------------------------------------------------------------------ */

static bool method_ok(const route *r, const char *method) {
  return !r->method || strcmp(r->method, method) == 0 ||
         (strcmp(method, "HEAD") == 0 && strcmp(r->method, "GET") == 0);
}

/* How well r's path matches: 0 not at all; an exact route beats every
 * prefix, a longer prefix beats a shorter one. */
static size_t path_score(const route *r, const char *path) {
  if (!r->prefix) return strcmp(path, r->path) == 0 ? SIZE_MAX : 0;
  if (strncmp(path, r->path, r->len) != 0) return 0;
  char next = path[r->len];
  return next == '\0' || next == '/' ? r->len + 1 : 0;
}

/* The HTTP route for method and path, or NULL with *status 404, 405 (and
 * *allow, owned by the caller: the methods the path takes) or 426 (only a
 * websocket lives there). */
static const route *route_match(const rt_httpd *s, const char *method, const char *path,
                                int *status, char **allow) {
  const route *best = NULL;
  size_t best_score = 0;
  bool path_seen = false, ws_seen = false;
  *allow = NULL;
  for (size_t i = 0; i < s->nroutes; i++) {
    const route *r = &s->routes[i];
    size_t sc = path_score(r, path);
    if (!sc) continue;
    if (r->ws) {
      ws_seen = true;
      continue;
    }
    path_seen = true;
    if (method_ok(r, method) && sc > best_score) {
      best = r;
      best_score = sc;
    }
  }
  if (best) return best;
  if (path_seen) {
    /* Allow: the methods of every route that matches the path */
    size_t cap = 64, o = 0;
    char *a = rt_xmalloc(cap);
    a[0] = '\0';
    for (size_t i = 0; i < s->nroutes; i++) {
      const route *r = &s->routes[i];
      if (r->ws || !path_score(r, path) || !r->method) continue;
      size_t ml = strlen(r->method);
      if (strstr(a, r->method)) continue;
      if (o + ml + 3 > cap) a = rt_xrealloc(a, cap = (o + ml + 3) * 2);
      o += (size_t)sprintf(a + o, "%s%s", o ? ", " : "", r->method);
    }
    *allow = a;
    *status = 405;
  } else {
    *status = ws_seen ? 426 : 404;
  }
  return NULL;
}

static route *route_slot(rt_httpd *s, const char *method, const char *path, bool ws) {
  size_t pl = strlen(path);
  bool prefix = !ws && pl >= 2 && strcmp(path + pl - 2, "/*") == 0;
  size_t len = prefix ? pl - 2 : pl;
  if (method && strcmp(method, "*") == 0) method = NULL;
  for (size_t i = 0; i < s->nroutes; i++) {
    route *r = &s->routes[i];
    if (r->ws == ws && r->prefix == prefix && r->len == len &&
        strncmp(r->path, path, len) == 0 &&
        (r->method == method || (r->method && method && strcmp(r->method, method) == 0)))
      return r;
  }
  if (s->nroutes == s->routes_cap) {
    s->routes_cap = s->routes_cap ? s->routes_cap * 2 : 8;
    s->routes = rt_xrealloc(s->routes, s->routes_cap * sizeof *s->routes);
  }
  route *r = &s->routes[s->nroutes++];
  memset(r, 0, sizeof *r);
  r->method = method ? rt_xstrdup(method) : NULL;
  r->path = rt_xstrndup(path, len);
  r->len = len;
  r->prefix = prefix;
  r->ws = ws;
  return r;
}

/* ---- request headers ----------------------------------------------------------- */

/* A header value of n bytes as lws copied it into v: false when it held
 * a NUL (lws's copy stops there, so what is left would match what the
 * client did not send); else its trailing spaces and tabs go (RFC 9110
 * 5.5: they are not part of the value; lws drops the leading ones). */
static bool value_clean(char *v, int n) {
  if (n < 0 || strlen(v) != (size_t)n) return false;
  while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t')) v[--n] = '\0';
  return true;
}

/* The headers lws parsed into its table ("content-type:" and the like; the
 * method and pseudo-header tokens are not headers). */
static void snapshot_headers(hdr_list *l, struct lws *wsi) {
  for (int t = 0; t < (int)WSI_TOKEN_COUNT; t++) {
    const char *nm = (const char *)lw.token_to_string((enum lws_token_indexes)t);
    size_t nl = nm ? strlen(nm) : 0;
    if (nl < 2 || nm[nl - 1] != ':' || nm[0] == ':') continue;
    int tl = lw.hdr_total_length(wsi, (enum lws_token_indexes)t);
    if (tl <= 0) continue;
    int cap = tl * 2 + 2; /* room for the separators lws puts between repeats */
    char *v = rt_xmalloc((size_t)cap);
    if (!value_clean(v, lw.hdr_copy(wsi, v, cap, (enum lws_token_indexes)t))) {
      free(v);
      continue;
    }
    hdrs_add(l, rt_xstrndup(nm, nl - 1), v);
  }
}

static bool known_header(const char *lname_colon) {
  for (int t = 0; t < (int)WSI_TOKEN_COUNT; t++) {
    const char *nm = (const char *)lw.token_to_string((enum lws_token_indexes)t);
    if (nm && strcmp(nm, lname_colon) == 0) return true;
  }
  return false;
}

static void req_fill(rt_httpd_req *q, rt_httpd *s, struct lws *wsi) {
  q->s = s;
  q->wsi = wsi;
  lw.get_peer_simple(wsi, q->remote, sizeof q->remote);
  snapshot_headers(&q->h, wsi);
}

static void req_free(rt_httpd_req *q) {
  free(q->path);
  free(q->query);
  free(q->body);
  hdrs_free(&q->h);
  hdrs_free(&q->rh);
  free(q);
}

const char *rt_httpd_req_method(const rt_httpd_req *q) { return q->method; }
const char *rt_httpd_req_path(const rt_httpd_req *q) { return q->path; }
const char *rt_httpd_req_query(const rt_httpd_req *q) { return q->query; }
const char *rt_httpd_req_remote(const rt_httpd_req *q) { return q->remote; }
bool rt_httpd_req_gone(const rt_httpd_req *q) { return q->c == NULL; }

const unsigned char *rt_httpd_req_body(const rt_httpd_req *q, size_t *len) {
  if (len) *len = q->body_len;
  return q->body ? q->body : (const unsigned char *)"";
}

const char *rt_httpd_req_header(rt_httpd_req *q, const char *name) {
  if (!name) return NULL;
  for (size_t i = 0; i < q->h.n; i++)
    if (strcasecmp(q->h.v[i].name, name) == 0) return q->h.v[i].value;
  /* Not one lws keeps in its table: ask lws by name while its header
   * table is surely there (during the call), and keep the answer. */
  size_t nl = strlen(name);
  if (!q->in_call || !q->wsi || nl == 0 || nl > 120) return NULL;
  char lname[124];
  for (size_t i = 0; i < nl; i++) lname[i] = (char)tolower((unsigned char)name[i]);
  lname[nl] = ':';
  lname[nl + 1] = '\0';
  if (known_header(lname)) return NULL;
  int n = lw.hdr_custom_length(q->wsi, lname, (int)nl + 1);
  if (n < 0) return NULL;
  char *v = rt_xmalloc((size_t)n + 1);
  if (!value_clean(v, lw.hdr_custom_copy(q->wsi, v, n + 1, lname, (int)nl + 1))) {
    free(v);
    return NULL;
  }
  hdrs_add(&q->h, rt_xstrndup(lname, nl), v);
  return v;
}

bool rt_httpd_req_header_at(const rt_httpd_req *q, size_t i, const char **name,
                            const char **value) {
  if (i >= q->h.n) return false;
  if (name) *name = q->h.v[i].name;
  if (value) *value = q->h.v[i].value;
  return true;
}

/* ---- replies ------------------------------------------------------------------ */

#define REPLY_HDR_MAX 3072 /* reply headers a handler may add, in bytes */

int rt_httpd_reply_header(rt_httpd_req *q, const char *name, const char *value) {
  if (!q || !name || !*name || !value) return RT_EINVAL;
  for (const char *p = name; *p; p++)
    if (!isalnum((unsigned char)*p) && !strchr("!#$%&'*+-.^_`|~", *p)) return RT_EINVAL;
  if (strpbrk(value, "\r\n")) return RT_EINVAL;
  if (strcasecmp(name, "content-length") == 0 || strcasecmp(name, "connection") == 0 ||
      strcasecmp(name, "transfer-encoding") == 0)
    return RT_EINVAL;
  if (q->rh.bytes + strlen(name) + strlen(value) + 4 > REPLY_HDR_MAX) return RT_ELIMIT;
  hdrs_add(&q->rh, rt_xasprintf("%s:", name), rt_xstrdup(value));
  return RT_OK;
}

/* The reply is in c: ask lws for a WRITEABLE callback to send it. */
static void conn_ready(struct lws *wsi, rt_httpd_conn *c) {
  c->ready = true;
  lw.callback_on_writable(wsi);
}

static void conn_error(struct lws *wsi, rt_httpd_conn *c, int status,
                       const char *msg, bool close_after) {
  c->status = status;
  free(c->ctype);
  free(c->out);
  c->ctype = rt_xstrdup("application/json");
  c->out = rt_xasprintf("{\"error\":\"%s\"}", msg);
  c->out_len = strlen(c->out);
  c->close_after = close_after;
  conn_ready(wsi, c);
}

static void pending_remove(rt_httpd *s, rt_httpd_req *q) {
  if (!q->pending) return;
  if (q->prev) q->prev->next = q->next;
  else s->pending = q->next;
  if (q->next) q->next->prev = q->prev;
  q->prev = q->next = NULL;
  q->pending = false;
}

/* Cuts the request off its connection: the connection closed, the answer
 * timed out, or it was answered. */
static void req_detach(rt_httpd_req *q) {
  if (q->s) pending_remove(q->s, q);
  if (q->c && q->c->req == q) q->c->req = NULL;
  q->c = NULL;
  q->wsi = NULL;
  q->s = NULL;
}

/* True when the client of a waiting request has closed or reset its side.
 * lws reads nothing more from a connection inside a request, so it would
 * only notice when the answer is written; peeking tells at once. */
static bool client_left(struct lws *wsi) {
  int fd = (int)lw.get_socket_fd(wsi);
  if (fd < 0) return true;
  char b;
  ssize_t n = recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
  return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

static void body_end(rt_httpd *s, conn_rec *r) {
  if (!r->in_body) return;
  if (r->bprev) r->bprev->bnext = r->bnext;
  else s->body_head = r->bnext;
  if (r->bnext) r->bnext->bprev = r->bprev;
  else s->body_tail = r->bprev;
  r->bprev = r->bnext = NULL;
  r->in_body = false;
}

/* Closes a connection that is reading a request body, from our own uv
 * callback (never inside lws): the answer goes straight to the socket
 * when it fits (nothing of a reply has been written yet while a body is
 * read), then lws closes the connection at once; its record goes back in
 * conn_gone. */
static void body_abort(rt_httpd *s, conn_rec *r, const char *answer) {
  body_end(s, r);
  idle_remove(s, r);
  r->evicting = true;
  int fd = (int)lw.get_socket_fd(r->wsi);
  if (fd >= 0) {
    (void)send(fd, answer, strlen(answer), MSG_DONTWAIT | MSG_NOSIGNAL);
    (void)shutdown(fd, SHUT_WR);
  }
  lw.set_timeout(r->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_SYNC);
}

static const char ANSWER_408[] =
  "HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
  "content-length: 27\r\nconnection: close\r\n\r\n{\"error\":\"request timeout\"}";
static const char ANSWER_503[] =
  "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
  "content-length: 30\r\nconnection: close\r\n\r\n{\"error\":\"server at capacity\"}";

static void on_deadlines(uv_timer_t *t) {
  rt_httpd *s = t->data;
  uint64_t now = uv_now(s->loop);
  /* Bodies not complete body_timeout_ms after their headers: the list is
   * oldest first and they share the bound, so the scan stops at the first
   * one still in time. lws's own timer only catches a body that stalls;
   * one byte every few seconds would hold the connection for days. */
  while (s->body_head && now - s->body_head->body_since >= s->body_timeout_ms) {
    conn_rec *r = s->body_head;
    s->body_timeouts++;
    rt_log(RT_LOG_WARN, "httpd.body_timeout", "timeout_ms=%u detail=\"request body not "
           "complete in time: 408 and close\"", s->body_timeout_ms);
    body_abort(s, r, ANSWER_408);
  }
  rt_httpd_req *next;
  for (rt_httpd_req *q = s->pending; q; q = next) {
    next = q->next;
    if (client_left(q->wsi)) {
      /* the late answer becomes a no-op; lws closes the socket */
      struct lws *wsi = q->wsi;
      req_detach(q);
      lw.set_timeout(wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
      continue;
    }
    if (q->deadline > now) continue;
    char qp[300];
    rt_log_quote(q->path, qp, sizeof qp);
    rt_log(RT_LOG_WARN, "httpd.reply_timeout", "path=%s", qp);
    struct lws *wsi = q->wsi;
    rt_httpd_conn *c = q->c;
    req_detach(q);
    lw.set_timeout(wsi, NO_PENDING_TIMEOUT, 0);
    conn_error(wsi, c, 504, "timeout", false);
  }
  if (!s->pending && !s->body_head) {
    uv_timer_stop(t);
    s->deadlines_on = false;
  }
}

#define DEADLINE_TICK_MS 50

static void deadlines_arm(rt_httpd *s) {
  if (!s->deadlines_on && s->handles_init && !s->closing) {
    uv_timer_start(&s->deadlines, on_deadlines, DEADLINE_TICK_MS, DEADLINE_TICK_MS);
    s->deadlines_on = true;
  }
}

/* The connection starts reading a request body: on the body list (the
 * deadline, and the first to go when the cap is reached with nothing
 * idle), and the listener may take a new connection again. */
static void body_begin(rt_httpd *s, struct lws *wsi) {
  conn_rec *r = rec_of(s, wsi);
  if (!r || r->evicting || r->in_body) return;
  r->in_body = true;
  r->body_since = uv_now(s->loop);
  r->bnext = NULL;
  r->bprev = s->body_tail;
  if (s->body_tail) s->body_tail->bnext = r;
  else s->body_head = r;
  s->body_tail = r;
  deadlines_arm(s);
  listen_start(s);
}

static void pending_add(rt_httpd *s, rt_httpd_req *q, unsigned timeout_ms) {
  q->deadline = uv_now(s->loop) + timeout_ms;
  q->pending = true;
  q->prev = NULL;
  q->next = s->pending;
  if (s->pending) s->pending->prev = q;
  s->pending = q;
  /* lws must not close the connection first on a timer of its own; this
   * one is only a backstop behind ours. */
  lw.set_timeout(q->wsi, PENDING_TIMEOUT_USER_OK, (int)(timeout_ms / 1000) + 5);
  deadlines_arm(s);
}

void rt_httpd_respond(rt_httpd_req *q, int status, const char *content_type,
                      const void *body, size_t len) {
  if (!q || q->borrowed) return;
  if (q->c && !q->answered) {
    rt_httpd_conn *c = q->c;
    struct lws *wsi = q->wsi;
    bool deferred = q->pending;
    c->status = status >= 100 && status <= 599 ? status : 500;
    c->ctype = content_type ? rt_xstrdup(content_type) : NULL;
    c->out_len = body ? len : 0;
    c->out = c->out_len ? rt_xmalloc(c->out_len) : NULL;
    if (c->out_len) memcpy(c->out, body, c->out_len);
    c->rh = q->rh;
    memset(&q->rh, 0, sizeof q->rh);
    req_detach(q);
    if (deferred) lw.set_timeout(wsi, NO_PENDING_TIMEOUT, 0);
    conn_ready(wsi, c);
  }
  q->answered = true;
  if (!q->in_call) req_free(q);
}

static void dispatch(rt_httpd *s, struct lws *wsi, rt_httpd_conn *c) {
  rt_httpd_req *q = rt_xcalloc(1, sizeof *q);
  req_fill(q, s, wsi);
  q->c = c;
  c->req = q;
  q->method = c->method;
  q->path = c->path;
  q->query = c->query;
  q->body = c->body;
  q->body_len = c->body_len;
  c->path = c->query = NULL;
  c->body = NULL;
  c->body_len = c->body_cap = 0;
  q->in_call = true;
  c->fn(c->ud, q);
  q->in_call = false;
  if (q->answered) {
    req_free(q);
    return;
  }
  if (q->c) pending_add(s, q, c->timeout_ms);
}

/* Headers and body are in: reply with what was decided at the headers,
 * or run the handler. */
static void finish(rt_httpd *s, struct lws *wsi, rt_httpd_conn *c) {
  if (c->reject == 405) {
    if (c->allow && *c->allow)
      hdrs_add(&c->rh, rt_xstrdup("allow:"), rt_xstrdup(c->allow));
    conn_error(wsi, c, 405, "method not allowed", false);
  } else if (c->reject == 426) {
    hdrs_add(&c->rh, rt_xstrdup("upgrade:"), rt_xstrdup("websocket"));
    conn_error(wsi, c, 426, "upgrade required", false);
  } else if (c->reject) {
    conn_error(wsi, c, c->reject, "not found", false);
  } else if (c->too_big) {
    conn_error(wsi, c, 413, "body too large", false);
  } else {
    dispatch(s, wsi, c);
  }
}

/* A Content-Length value of k bytes: its number, -1 when it is not
 * 1*DIGIT (signs, spaces, hex, the commas of repeated headers), -2 when
 * it has more digits than fit. */
static long long content_length(const char *v, int k) {
  if (k <= 0 || (size_t)k != strlen(v)) return -1;
  long long n = 0;
  for (int i = 0; i < k; i++) {
    if (v[i] < '0' || v[i] > '9') return -1;
    if (n > (DISCARD_MAX + 1) * 10) return -2;
    n = n * 10 + (v[i] - '0');
  }
  return n;
}

static int on_request(rt_httpd *s, struct lws *wsi, rt_httpd_conn *c,
                      const char *in, size_t len) {
  bool has_body;
  conn_reset(c);
  c->path = rt_xstrndup(in ? in : "/", in ? len : 1);
  c->query = query_of(wsi);
  c->method = method_of(wsi, &has_body);
  if (!c->method) {
    c->method = "?";
    conn_error(wsi, c, 405, "method not allowed", true);
    return 0;
  }
  const route *r = route_match(s, c->method, c->path, &c->reject, &c->allow);
  if (r) {
    c->reject = 0;
    c->fn = r->fn;
    c->ud = r->ud;
    c->timeout_ms = r->timeout_ms ? r->timeout_ms : s->reply_timeout_ms;
    c->body_max = r->max_body ? r->max_body : s->max_body;
  }
  /* How the request is framed (RFC 9112 6.1, 6.3), for every method: lws
   * frames it by the first number of Content-Length (atoll) and ignores
   * Transfer-Encoding, so anything else would let a client hide a
   * request inside another one's body. No transfer coding is decoded here:
   * with one, the end of the body is unknown, and the connection closes. */
  bool has_te = lw.hdr_total_length(wsi, WSI_TOKEN_HTTP_TRANSFER_ENCODING) > 0;
  int cl_len = lw.hdr_total_length(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH);
  if (has_te) {
    if (cl_len > 0) conn_error(wsi, c, 400, "transfer-encoding with content-length", true);
    else conn_error(wsi, c, 501, "transfer-encoding not supported", true);
    return 0;
  }
  long long n = 0;
  if (cl_len > 0) {
    char *cl = rt_xmalloc((size_t)cl_len * 2 + 2); /* room for lws's separators */
    int k = lw.hdr_copy(wsi, cl, cl_len * 2 + 2, WSI_TOKEN_HTTP_CONTENT_LENGTH);
    n = content_length(cl, k);
    free(cl);
    if (n == -1) {
      /* not 1*DIGIT, or repeated (lws joins repeats with ',') */
      conn_error(wsi, c, 400, "bad content-length", true);
      return 0;
    }
    if (n == -2) n = DISCARD_MAX + 1; /* more digits than fit: far too big */
  }
  if (!has_body) {
    finish(s, wsi, c);
    return 0;
  }
  if (cl_len <= 0) {
    conn_error(wsi, c, 411, "length required", true);
    return 0;
  }
  if (n > DISCARD_MAX) {
    /* too much to read and drop for the sake of keep-alive */
    if (c->reject) finish(s, wsi, c);
    else conn_error(wsi, c, 413, "body too large", true);
    c->close_after = true;
    return 0;
  }
  c->too_big = !c->reject && (unsigned long long)n > (unsigned long long)c->body_max;
  if (n == 0 && strcmp(c->method, "POST") != 0) {
    /* lws sends BODY_COMPLETION for an empty POST only */
    finish(s, wsi, c);
    return 0;
  }
  c->want_body = true;
  return 0;
}

static void on_body(rt_httpd_conn *c, const void *in, size_t len) {
  if (!c->want_body || c->too_big || c->reject || !len) return;
  if (c->body_len + len > c->body_max) {
    c->too_big = true;
    return;
  }
  if (c->body_len + len + 1 > c->body_cap) {
    size_t cap = c->body_cap ? c->body_cap : 1024;
    while (cap < c->body_len + len + 1) cap *= 2;
    c->body = rt_xrealloc(c->body, cap);
    c->body_cap = cap;
  }
  memcpy(c->body + c->body_len, in, len);
  c->body_len += len;
  c->body[c->body_len] = '\0';
}

/* Returns what the lws callback returns: -1 closes the connection. */
static int on_writeable(rt_httpd *s, struct lws *wsi, rt_httpd_conn *c) {
  if (c->close_now) return -1; /* everything flushed, close as promised */
  if (!c->ready) return 0;
  bool head = c->method && strcmp(c->method, "HEAD") == 0;
  if (!c->hdr_sent) {
    unsigned char buf[LWS_PRE + 1024 + REPLY_HDR_MAX];
    unsigned char *start = buf + LWS_PRE, *p = start, *end = buf + sizeof buf - 1;
    /* HEAD: the length a GET would get, and no body */
    if (lw.add_http_common_headers(wsi, (unsigned)c->status, c->ctype, c->out_len, &p, end))
      return -1;
    for (size_t i = 0; i < c->rh.n; i++)
      if (lw.add_http_header_by_name(wsi, (const unsigned char *)c->rh.v[i].name,
                                      (const unsigned char *)c->rh.v[i].value,
                                      (int)strlen(c->rh.v[i].value), &p, end))
        return -1;
    if (c->close_after &&
        lw.add_http_header_by_token(wsi, WSI_TOKEN_CONNECTION,
                                     (const unsigned char *)"close", 5, &p, end))
      return -1;
    if (lw.finalize_write_http_header(wsi, start, &p, end)) return -1;
    c->hdr_sent = true;
    if (c->out_len && !head) {
      lw.callback_on_writable(wsi);
      return 0;
    }
  } else if (c->sent < c->out_len) {
    size_t n = c->out_len - c->sent;
    if (n > WCHUNK) n = WCHUNK;
    bool last = c->sent + n == c->out_len;
    memcpy(s->wbuf + LWS_PRE, c->out + c->sent, n);
    if (lw.write(wsi, s->wbuf + LWS_PRE, n,
                  last ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP) != (int)n)
      return -1;
    c->sent += n;
    if (!last) {
      lw.callback_on_writable(wsi);
      return 0;
    }
  }
  /* Reply complete. */
  if (c->close_after) {
    /* lws flushes any partial write before the next WRITEABLE */
    c->close_now = true;
    lw.callback_on_writable(wsi);
    return 0;
  }
  conn_reset(c);
  conn_busy(s, wsi, false);
  return lw.http_transaction_completed(wsi) ? -1 : 0;
}

/* ---- websockets ------------------------------------------------------------- */

static void ws_free(rt_httpd_ws *ws) {
  for (frame *f = ws->head, *n; f; f = n) {
    n = f->next;
    free(f);
  }
  free(ws->msg);
  free(ws);
}

/* The websocket's connection is closing or closed: tell the plugin once,
 * then free. */
static void ws_finish(conn_rec *r) {
  rt_httpd_ws *ws = r->ws;
  if (!ws) return;
  r->ws = NULL;
  ws->wsi = NULL;
  ws->closing = true;
  if (ws->accepted) {
    ws->s->nws--;
    if (ws->cb.on_close) ws->cb.on_close(ws->ud, ws);
  }
  ws_free(ws);
}

/* Closes at lws's next service, without a close frame: for a client that
 * does not read (its socket would never turn writeable for one). */
static void ws_kill(rt_httpd_ws *ws) {
  if (ws->killed || !ws->wsi) return;
  ws->killed = ws->closing = true;
  lw.set_timeout(ws->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
}

int rt_httpd_ws_send(rt_httpd_ws *ws, const void *data, size_t len, bool binary) {
  if (!ws || !ws->wsi || ws->closing) return RT_ENET;
  if (ws->queued + len > ws->max_queued) {
    rt_log(RT_LOG_WARN, "httpd.ws_slow", "queued=%zu max=%zu detail=\"client does not "
           "keep up: disconnected\"", ws->queued, ws->max_queued);
    ws_kill(ws);
    return RT_ELIMIT;
  }
  frame *f = rt_xmalloc(sizeof *f + LWS_PRE + len);
  f->next = NULL;
  f->len = len;
  f->binary = binary;
  if (len) memcpy(f->buf + LWS_PRE, data, len);
  if (ws->tail) ws->tail->next = f;
  else ws->head = f;
  ws->tail = f;
  ws->queued += len;
  if (ws->established) lw.callback_on_writable(ws->wsi);
  return RT_OK;
}

void rt_httpd_ws_close(rt_httpd_ws *ws, int code, const char *reason) {
  if (!ws || !ws->wsi || ws->closing) return;
  ws->closing = true;
  ws->close_code = code >= 1000 && code <= 4999 ? code : 1000;
  snprintf(ws->close_reason, sizeof ws->close_reason, "%s", reason ? reason : "");
  if (ws->established) lw.callback_on_writable(ws->wsi);
  else ws_kill(ws);
}

void rt_httpd_ws_set_user(rt_httpd_ws *ws, void *user) { ws->user = user; }
void *rt_httpd_ws_user(const rt_httpd_ws *ws) { return ws->user; }
size_t rt_httpd_ws_queued(const rt_httpd_ws *ws) { return ws ? ws->queued : 0; }

/* Refuses an upgrade with an HTTP status; >0 tells lws we answered. */
static int upgrade_refuse(struct lws *wsi, int status) {
  if (status < 400 || status > 599) status = 403;
  return lw.return_http_status(wsi, (unsigned)status, NULL) ? -1 : 1;
}

/* LWS_CALLBACK_HTTP_CONFIRM_UPGRADE: only "websocket", only on a websocket
 * route, only if the plugin's on_open agrees. */
static int on_upgrade(rt_httpd *s, struct lws *wsi, const char *proto) {
  if (!s || s->closing || !proto || strcasecmp(proto, "websocket") != 0)
    return upgrade_refuse(wsi, 403);
  char path[1024];
  if (lw.hdr_copy(wsi, path, sizeof path, WSI_TOKEN_GET_URI) <= 0)
    return upgrade_refuse(wsi, 403);
  const route *r = NULL;
  for (size_t i = 0; i < s->nroutes && !r; i++)
    if (s->routes[i].ws && strcmp(s->routes[i].path, path) == 0) r = &s->routes[i];
  if (!r) return upgrade_refuse(wsi, 403);
  conn_rec *cr = rec_of(s, wsi);
  if (!cr || cr->ws) return -1;
  if (s->nws >= s->ws_max) {
    /* websockets stay open for good: past their share, plain HTTP (the
     * webhook, /healthz) would find no room */
    rt_log(RT_LOG_WARN, "httpd.ws_full", "ws_max_connections=%d detail=\"websocket "
           "upgrade refused: 503\"", s->ws_max);
    return upgrade_refuse(wsi, 503);
  }
  rt_httpd_ws *ws = rt_xcalloc(1, sizeof *ws);
  ws->s = s;
  ws->wsi = wsi;
  ws->cb = r->wcb;
  ws->ud = r->ud;
  ws->max_message = r->wcb.max_message ? r->wcb.max_message : s->ws_max_message;
  ws->max_queued = r->wcb.max_queued ? r->wcb.max_queued : s->ws_max_queued;
  cr->ws = ws;
  if (ws->cb.on_open) {
    rt_httpd_req q;
    memset(&q, 0, sizeof q);
    req_fill(&q, s, wsi);
    q.method = "GET";
    q.path = rt_xstrdup(path);
    q.query = query_of(wsi);
    q.in_call = q.borrowed = true;
    int st = ws->cb.on_open(ws->ud, ws, &q);
    free(q.path);
    free(q.query);
    hdrs_free(&q.h);
    hdrs_free(&q.rh);
    if (st != 0) {
      cr->ws = NULL;
      ws_free(ws);
      return upgrade_refuse(wsi, st);
    }
  }
  ws->accepted = true;
  s->nws++;
  return 0;
}

static int ws_receive(rt_httpd_ws *ws, struct lws *wsi, const void *in, size_t len) {
  if (ws->closing) return 0; /* dropping input until the close goes out */
  if (lw.is_first_fragment(wsi) && ws->msg_len == 0)
    ws->msg_binary = lw.frame_is_binary(wsi);
  /* The frame's announced length counts at once, so a huge frame is
   * refused at its first bytes. */
  size_t rest = lw.remaining_packet_payload(wsi);
  if (ws->msg_len + len > ws->max_message || rest > ws->max_message - ws->msg_len - len) {
    static const char why[] = "message too large";
    lw.close_reason(wsi, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, (unsigned char *)why,
                     sizeof why - 1);
    return -1;
  }
  if (ws->msg_len + len + 1 > ws->msg_cap) {
    size_t cap = ws->msg_cap ? ws->msg_cap : 256;
    while (cap < ws->msg_len + len + 1) cap *= 2;
    ws->msg = rt_xrealloc(ws->msg, cap);
    ws->msg_cap = cap;
  }
  if (len) memcpy(ws->msg + ws->msg_len, in, len);
  ws->msg_len += len;
  ws->msg[ws->msg_len] = '\0';
  if (!lw.is_final_fragment(wsi)) return 0;
  size_t n = ws->msg_len;
  ws->msg_len = 0;
  if (ws->cb.on_message) ws->cb.on_message(ws->ud, ws, ws->msg, n, ws->msg_binary);
  return 0;
}

static int ws_writeable(rt_httpd_ws *ws, struct lws *wsi) {
  frame *f = ws->head;
  if (f && !ws->killed) {
    ws->head = f->next;
    if (!ws->head) ws->tail = NULL;
    ws->queued -= f->len;
    int n = lw.write(wsi, f->buf + LWS_PRE, f->len,
                      f->binary ? LWS_WRITE_BINARY : LWS_WRITE_TEXT);
    bool ok = n >= 0 && (size_t)n >= f->len;
    free(f);
    if (!ok) return -1;
    if (ws->head || ws->closing) lw.callback_on_writable(wsi);
    return 0;
  }
  if (ws->closing) {
    lw.close_reason(wsi, (enum lws_close_status)ws->close_code,
                     (unsigned char *)ws->close_reason, strlen(ws->close_reason));
    return -1;
  }
  return 0;
}

/* ---- the lws callback ---------------------------------------------------------- */

static int lws_cb(struct lws *wsi, enum lws_callback_reasons reason,
                  void *user, void *in, size_t len) {
  struct lws_context *cx = lw.get_context(wsi);
  rt_httpd *s = cx ? lw.context_user(cx) : NULL;
  rt_httpd_conn *c = user;
  conn_rec *r;
  switch (reason) {
  case LWS_CALLBACK_HTTP: {
    if (!s || !c) return -1;
    conn_busy(s, wsi, true);
    int rc = on_request(s, wsi, c, in, len);
    if (c->want_body) body_begin(s, wsi); /* bounded by body_timeout_ms */
    return rc;
  }
  case LWS_CALLBACK_HTTP_BODY:
    if (s && (r = rec_of(s, wsi)) && r->evicting) return -1; /* cut off (body_abort) */
    if (c) on_body(c, in, len);
    return 0;
  case LWS_CALLBACK_HTTP_BODY_COMPLETION:
    if (!s || !c) return -1;
    if ((r = rec_of(s, wsi)) && r->evicting) return -1;
    if (!c->want_body) {
      /* lws 4.1 repeats the completion while a reply is pending when more
       * requests were pipelined behind one with a body: usually once or
       * twice (harmless), but for a POST pipelined after a GET it repeats
       * forever without returning to the loop. Closing the connection is
       * the only way out of that. */
      return ++c->spurious > 16 ? -1 : 0;
    }
    c->want_body = false;
    if ((r = rec_of(s, wsi))) body_end(s, r);
    finish(s, wsi, c);
    return 0;
  case LWS_CALLBACK_HTTP_WRITEABLE:
    if (!s || !c) return -1;
    return on_writeable(s, wsi, c);
  case LWS_CALLBACK_CLOSED_HTTP:
  case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
    if (c) conn_reset(c);
    return 0;
  case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
    return on_upgrade(s, wsi, in);
  case LWS_CALLBACK_ESTABLISHED:
    r = s ? rec_of(s, wsi) : NULL;
    if (!r || !r->ws) return -1;
    r->ws->established = true;
    conn_busy(s, wsi, true); /* a websocket is never closed for room */
    if (r->ws->head || r->ws->closing) lw.callback_on_writable(wsi);
    return 0;
  case LWS_CALLBACK_RECEIVE:
    r = s ? rec_of(s, wsi) : NULL;
    if (!r || !r->ws) return -1;
    return ws_receive(r->ws, wsi, in, len);
  case LWS_CALLBACK_SERVER_WRITEABLE:
    r = s ? rec_of(s, wsi) : NULL;
    if (!r || !r->ws) return -1;
    return ws_writeable(r->ws, wsi);
  case LWS_CALLBACK_CLOSED:
    r = s ? rec_of(s, wsi) : NULL;
    if (r) ws_finish(r);
    return 0;
  case LWS_CALLBACK_WSI_DESTROY:
    if (s) conn_gone(s, wsi);
    return 0;
  default:
    return lw.callback_http_dummy(wsi, reason, user, in, len);
  }
}

/* ---- listen address -------------------------------------------------------- */

/* Parses listen: "PORT", ":PORT", "*:PORT", "0.0.0.0:PORT" (every IPv4
 * interface), "IPv4:PORT", "localhost:PORT" (127.0.0.1) or "[IPv6]:PORT"
 * ("[::]" is every IPv6 interface). Host names are refused: the server binds
 * one address and must not depend on DNS at start. On error *why says what
 * was expected. */
static bool parse_listen(const char *listen, listen_addr *a, const char **why) {
  *why = "expected IPv4:PORT, [IPv6]:PORT, :PORT or PORT";
  memset(a, 0, sizeof *a);
  if (!listen) return false;
  const char *colon = strrchr(listen, ':');
  const char *ps = colon ? colon + 1 : listen;
  char host[64] = "";
  bool v6 = false;
  if (colon) {
    const char *h = listen;
    size_t hl = (size_t)(colon - listen);
    if (hl > 0 && listen[0] == '[') {
      if (listen[hl - 1] != ']') return false;
      h++;
      hl -= 2;
      v6 = true;
      if (hl == 0) return false;
    } else if (memchr(listen, ':', hl)) {
      *why = "an IPv6 address goes in brackets, like [::1]:8080";
      return false;
    }
    if (hl >= sizeof host) return false;
    memcpy(host, h, hl);
    host[hl] = '\0';
  }
  if (!*ps || strlen(ps) > 5) return false;
  long port = 0;
  for (const char *p = ps; *p; p++) {
    if (*p < '0' || *p > '9') return false;
    port = port * 10 + (*p - '0');
  }
  if (port > 65535) {
    *why = "port must be 0..65535";
    return false;
  }
  if (v6) {
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&a->ss;
    s6->sin6_family = AF_INET6;
    s6->sin6_port = htons((uint16_t)port);
    a->len = sizeof *s6;
    if (inet_pton(AF_INET6, host, &s6->sin6_addr) != 1) {
      *why = "not an IPv6 address in the brackets";
      return false;
    }
    return true;
  }
  struct sockaddr_in *s4 = (struct sockaddr_in *)&a->ss;
  s4->sin_family = AF_INET;
  s4->sin_port = htons((uint16_t)port);
  a->len = sizeof *s4;
  if (!*host || strcmp(host, "*") == 0) {
    s4->sin_addr.s_addr = htonl(INADDR_ANY);
    return true;
  }
  if (strcmp(host, "localhost") == 0) strcpy(host, "127.0.0.1");
  return inet_pton(AF_INET, host, &s4->sin_addr) == 1;
}

int rt_httpd_check_listen(const char *listen, char **err) {
  listen_addr a;
  const char *why;
  if (err) *err = NULL;
  if (parse_listen(listen, &a, &why)) return RT_OK;
  if (err) *err = rt_xasprintf("cannot listen on %s: %s", listen ? listen : "(null)", why);
  return RT_EINVAL;
}

/* Binds and listens on a non-blocking socket. Returns 0 or an errno. The
 * socket is ours, not lws's: we accept ourselves (see on_listen) so that
 * the connection cap and the back-off on EMFILE are in our hands. */
static int open_listener(const listen_addr *a, int *fd_out, int *port_out) {
  int fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return errno;
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  /* [::] means IPv6 only, so that it never takes an IPv4 port by surprise */
  if (a->ss.ss_family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  struct sockaddr_storage got;
  socklen_t gl = sizeof got;
  if (bind(fd, (const struct sockaddr *)&a->ss, a->len) != 0 ||
      listen(fd, LISTEN_BACKLOG) != 0 ||
      getsockname(fd, (struct sockaddr *)&got, &gl) != 0) {
    int e = errno;
    close(fd);
    return e;
  }
  *port_out = ntohs(got.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&got)->sin6_port
                                              : ((struct sockaddr_in *)&got)->sin_port);
  *fd_out = fd;
  return 0;
}

static const char *errno_text(int e) {
  switch (e) {
  case EADDRINUSE: return "address in use";
  case EADDRNOTAVAIL: return "address not available on this host";
  case EACCES: return "permission denied";
  case EAFNOSUPPORT: return "address family not supported on this host";
  default: return strerror(e);
  }
}

/* ---- connection cap and accept ------------------------------------------- */

/* Makes room for max connections under RLIMIT_NOFILE, keeping FD_RESERVE
 * descriptors for everything else the process opens (SQLite and its WAL,
 * curl's sockets, the watcher, libuv's own). The soft limit is raised only
 * as far as needed (up to the hard limit): a soft limit above 1024 can break
 * select() users we do not know about. Returns the cap that fits. */
static int fit_fd_limit(int want, rlim_t *limit) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
    *limit = 0;
    return want;
  }
  rlim_t need = (rlim_t)want + EVICT_SLACK + FD_RESERVE;
  if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need) {
    rlim_t to = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= need ? need : rl.rlim_max;
    if (to > rl.rlim_cur) {
      struct rlimit nl = {to, rl.rlim_max};
      if (setrlimit(RLIMIT_NOFILE, &nl) == 0) rl.rlim_cur = to;
    }
  }
  *limit = rl.rlim_cur;
  if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= need) return want;
  rlim_t reserve = rl.rlim_cur / 2 < FD_RESERVE + EVICT_SLACK ? rl.rlim_cur / 2
                                                               : FD_RESERVE + EVICT_SLACK;
  rlim_t fit = rl.rlim_cur - reserve;
  return fit < 1 ? 1 : (int)fit;
}

static void listen_start(rt_httpd *s) {
  if (s->closing || s->listening || s->retry_pending) return;
  if (s->nconn >= s->max_conn && !((s->idle_head || s->body_head) && s->free_recs)) return;
  uv_poll_start(&s->lpoll, UV_READABLE, on_listen);
  s->listening = true;
}

static void listen_stop(rt_httpd *s) {
  if (!s->listening) return;
  uv_poll_stop(&s->lpoll);
  s->listening = false;
}

static void on_retry(uv_timer_t *t) {
  rt_httpd *s = t->data;
  s->retry_pending = false;
  listen_start(s);
}

/* accept failed for want of a resource (EMFILE, ENFILE, ENOBUFS, ENOMEM):
 * the connection stays in the kernel's queue and the socket stays
 * readable, so polling again at once would spin. Stop polling and retry
 * after a delay that doubles up to BACKOFF_MAX_MS; an accept that works
 * resets it. One log line per pause. */
static void accept_backoff(rt_httpd *s, int e) {
  s->backoff_ms = s->backoff_ms ? s->backoff_ms * 2 : BACKOFF_MIN_MS;
  if (s->backoff_ms > BACKOFF_MAX_MS) s->backoff_ms = BACKOFF_MAX_MS;
  listen_stop(s);
  s->retry_pending = true;
  uv_timer_start(&s->retry, on_retry, s->backoff_ms, 0);
  rt_log(RT_LOG_WARN, "httpd.accept", "errno=%d err=\"%s\" open=%d retry_ms=%u", e,
         strerror(e), s->nconn, s->backoff_ms);
}

static void idle_push(rt_httpd *s, conn_rec *r) {
  r->idle = true;
  r->next = NULL;
  r->prev = s->idle_tail;
  if (s->idle_tail) s->idle_tail->next = r;
  else s->idle_head = r;
  s->idle_tail = r;
}

static void idle_remove(rt_httpd *s, conn_rec *r) {
  if (!r->idle) return;
  if (r->prev) r->prev->next = r->next;
  else s->idle_head = r->next;
  if (r->next) r->next->prev = r->prev;
  else s->idle_tail = r->prev;
  r->prev = r->next = NULL;
  r->idle = false;
}

/* The record of the connection wsi belongs to (h2 streams belong to their
 * network connection), or NULL. */
static conn_rec *rec_of(rt_httpd *s, struct lws *wsi) {
  struct lws *nw = lw.get_network_wsi(wsi);
  conn_rec *r = nw ? lw.get_opaque_user_data(nw) : NULL;
  if (!r || r < s->recs || r >= s->recs + s->nrecs || r->wsi != nw) return NULL;
  return r;
}

/* A request starts (busy) or the connection waits for the next (idle). */
static void conn_busy(rt_httpd *s, struct lws *wsi, bool busy) {
  conn_rec *r = rec_of(s, wsi);
  if (!r || r->evicting) return;
  if (busy) {
    idle_remove(s, r);
  } else if (!r->idle) {
    idle_push(s, r);
    listen_start(s); /* at the cap, an idle connection makes room */
  }
}

static void note_full(rt_httpd *s) {
  uint64_t now = uv_now(s->loop);
  if (s->full_warned && now - s->full_warned_ms < FULL_WARN_MS) return;
  s->full_warned = true;
  s->full_warned_ms = now;
  rt_log(RT_LOG_WARN, "httpd.full", "max_connections=%d detail=\"at the cap: the oldest idle "
         "connection (else the oldest body being read) is closed for each new one, or new "
         "ones wait\"", s->max_conn);
}

static void on_listen(uv_poll_t *h, int status, int events) {
  (void)events;
  rt_httpd *s = h->data;
  if (status < 0) {
    accept_backoff(s, -status);
    return;
  }
  /* A batch per wakeup, so a connect storm cannot hold the loop. */
  for (int i = 0; i < ACCEPT_BATCH; i++) {
    if (s->closing) return;
    if (s->nconn >= s->max_conn) {
      note_full(s);
      if ((!s->idle_head && !s->body_head) || !s->free_recs) {
        /* Every connection is a websocket, waits for its answer or is
         * closing: stop accepting; new connects wait in the kernel's
         * backlog until one finishes (conn_busy), starts reading a body
         * (body_begin) or closes (conn_gone). */
        listen_stop(s);
        return;
      }
    }
    int fd = accept4(s->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      int e = errno;
      if (e == EAGAIN || e == EWOULDBLOCK) return;
      if (e == EINTR || e == ECONNABORTED || e == EPROTO || e == EPERM) continue;
      accept_backoff(s, e);
      return;
    }
    s->backoff_ms = 0;
    /* Our own accept skips the socket options lws sets on connections it
     * accepts: without TCP_NODELAY a reply written right after a small
     * frame (the web chat's ack, then the bot's message) waits in the
     * kernel for the peer's delayed ACK, 40 ms on Linux. */
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (!lws_up(s)) {
      close(fd);
      continue;
    }
    /* On failure lws closes fd itself. */
    struct lws *wsi = lw.adopt_socket_vhost(s->vh, fd);
    if (!wsi) continue;
    conn_rec *r = s->free_recs;
    s->free_recs = r->next;
    memset(r, 0, sizeof *r);
    r->wsi = wsi;
    /* The mark tells conn_gone which wsis are our accepted connections
     * (h2 streams and the like are wsis without a socket of their own). */
    lw.set_opaque_user_data(wsi, r);
    s->nconn++;
    idle_push(s, r);
    if (s->nconn > s->max_conn) {
      /* Make room: close the connection idle for the longest, else the
       * one reading a body for the longest (a client trickling a body
       * must not keep the new one out: /healthz and the webhook come
       * first). We are in our own uv callback, not inside lws, so a
       * synchronous close is allowed; its record goes back in conn_gone. */
      conn_rec *v = s->idle_head;
      if (v != r) {
        idle_remove(s, v);
        v->evicting = true;
        lw.set_timeout(v->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_SYNC);
      } else if (s->body_head) {
        s->body_evictions++;
        rt_log(RT_LOG_WARN, "httpd.body_evict", "max_connections=%d evictions=%llu "
               "detail=\"at the cap with none idle: the oldest body being read is cut "
               "off (503 and close)\"", s->max_conn, (unsigned long long)s->body_evictions);
        body_abort(s, s->body_head, ANSWER_503);
      }
    }
  }
}

/* LWS_CALLBACK_WSI_DESTROY: lws has closed the socket. */
static void conn_gone(rt_httpd *s, struct lws *wsi) {
  conn_rec *r = lw.get_opaque_user_data(wsi);
  if (!r || r < s->recs || r >= s->recs + s->nrecs || r->wsi != wsi) return;
  ws_finish(r); /* lws said CLOSED first, unless the upgrade never finished */
  lw.set_opaque_user_data(wsi, NULL);
  idle_remove(s, r);
  body_end(s, r);
  r->wsi = NULL;
  r->evicting = false;
  r->next = s->free_recs;
  s->free_recs = r;
  s->nconn--;
  listen_start(s);
}

/* Handles on the loop, by address only: the data field of a handle someone
 * else owns may never have been set, so it is not read. */
typedef struct {
  uv_handle_t **v;
  size_t n, cap;
} handle_set;

static void collect_cb(uv_handle_t *h, void *arg) {
  handle_set *hs = arg;
  if (hs->n == hs->cap) {
    hs->cap = hs->cap ? hs->cap * 2 : 32;
    hs->v = rt_xrealloc(hs->v, hs->cap * sizeof *hs->v);
  }
  hs->v[hs->n++] = h;
}

static bool set_has(const handle_set *hs, const uv_handle_t *h) {
  for (size_t i = 0; i < hs->n; i++)
    if (hs->v[i] == h) return true;
  return false;
}

/* After lws_create_context: remembers the handles lws created that carry
 * the context in their data (its per-thread idle and timer). They live
 * inside the context, so their addresses stay theirs until it is freed. */
static void note_lws_handles(rt_httpd *s, const handle_set *before) {
  handle_set after = {0};
  uv_walk(s->loop, collect_cb, &after);
  for (size_t i = 0; i < after.n; i++) {
    uv_handle_t *h = after.v[i];
    if (set_has(before, h) || h->data != (void *)s->ctx) continue;
    if (s->nlws < RT_ARRAY_LEN(s->lws_handles)) s->lws_handles[s->nlws++] = h;
  }
  free(after.v);
  if (s->nlws == 0)
    rt_log(RT_LOG_WARN, "httpd.lws_handles", "detail=\"none found; teardown "
           "will wait a fixed time\"");
}

/* True while any of lws's static handles is still on the loop. */
static bool lws_on_loop(rt_httpd *s) {
  if (s->nlws == 0) return uv_now(s->loop) - s->close_ms < 200;
  handle_set now = {0};
  uv_walk(s->loop, collect_cb, &now);
  bool found = false;
  for (size_t i = 0; i < s->nlws && !found; i++) found = set_has(&now, s->lws_handles[i]);
  free(now.v);
  return found;
}

/* ---- lifetime ---------------------------------------------------------------- */

static void start_teardown(rt_httpd *s);

int rt_httpd_new(uv_loop_t *loop, const char *listen, rt_httpd **out,
                 char **err) {
  rt_httpd_opts o = {.listen = listen};
  return rt_httpd_start(loop, &o, out, err);
}

int rt_httpd_start(uv_loop_t *loop, const rt_httpd_opts *o, rt_httpd **out,
                   char **err) {
  *out = NULL;
  if (err) *err = NULL;
  const char *listen = o->listen;
  listen_addr la;
  const char *why;
  if (!parse_listen(listen, &la, &why)) {
    if (err) *err = rt_xasprintf("cannot listen on %s: %s", listen ? listen : "(null)", why);
    return RT_EINVAL;
  }
  int want = o->max_connections > 0 ? o->max_connections : RT_HTTPD_DEFAULT_MAX_CONN;
  rlim_t limit;
  int cap = fit_fd_limit(want, &limit);
  int lfd = -1, port = 0;
  int e = open_listener(&la, &lfd, &port);
  if (e) {
    if (err) *err = rt_xasprintf("cannot listen on %s: %s", listen, errno_text(e));
    return RT_ENET;
  }
  if (cap < want)
    rt_log(RT_LOG_WARN, "httpd.max_connections", "wanted=%d max_connections=%d fd_limit=%llu "
           "detail=\"lowered to fit the open-files limit (ulimit -n)\"", want, cap,
           (unsigned long long)limit);

  rt_httpd *s = rt_xcalloc(1, sizeof *s);
  s->loop = loop;
  s->lfd = lfd;
  s->port = port;
  s->max_conn = cap;
  s->max_body = o->max_body ? o->max_body : RT_HTTPD_MAX_BODY;
  s->reply_timeout_ms = o->reply_timeout_ms ? o->reply_timeout_ms : RT_HTTPD_REPLY_TIMEOUT_MS;
  s->ws_max_message = o->ws_max_message ? o->ws_max_message : RT_HTTPD_WS_MAX_MESSAGE;
  s->ws_max_queued = o->ws_max_queued ? o->ws_max_queued : RT_HTTPD_WS_MAX_QUEUED;
  s->nrecs = (size_t)cap + EVICT_SLACK;
  s->recs = rt_xcalloc(s->nrecs, sizeof *s->recs);
  for (size_t i = s->nrecs; i > 0; i--) {
    s->recs[i - 1].next = s->free_recs;
    s->free_recs = &s->recs[i - 1];
  }
  s->protocols[0].name = "http";
  s->protocols[0].callback = lws_cb;
  s->protocols[0].per_session_data_size = sizeof(rt_httpd_conn);
  s->protocols[0].rx_buffer_size = 0;
  s->max_header = (unsigned short)(o->max_header > 0 && o->max_header < 65535
                                       ? o->max_header : RT_HTTPD_MAX_HEADER);
  s->keepalive_s = o->idle_timeout_s > 0 ? o->idle_timeout_s : RT_HTTPD_KEEPALIVE_S;
  s->header_timeout_s = o->header_timeout_s > 0 ? o->header_timeout_s : RT_HTTPD_HEADER_TIMEOUT_S;
  s->body_timeout_ms = (unsigned)(o->body_timeout_s > 0 ? o->body_timeout_s
                                                         : RT_HTTPD_BODY_DEADLINE_S) * 1000u;
  /* half the cap by default; never all of it, so plain HTTP has room */
  s->ws_max = o->ws_max_connections > 0 ? o->ws_max_connections : cap / 2;
  if (s->ws_max >= cap) s->ws_max = cap - 1;
  if (s->ws_max < 1) s->ws_max = 1;
  uv_timer_init(loop, &s->reap);
  s->reap.data = s;
  uv_poll_init_socket(loop, &s->lpoll, lfd);
  s->lpoll.data = s;
  uv_timer_init(loop, &s->retry);
  s->retry.data = s;
  uv_timer_init(loop, &s->deadlines);
  s->deadlines.data = s;
  s->handles_init = true;
  listen_start(s);
  *out = s;
  return RT_OK;
}

/* The lws context and vhost, made (and libwebsockets loaded) for the first
 * accepted connection; false when lws cannot make them (logged once, and
 * the connections are closed as they come). */
static bool lws_up(rt_httpd *s) {
  if (s->vh) return true;
  if (s->lws_failed) return false;
  if (!lw_load()) {
    s->lws_failed = true;
    return false;
  }
  void *loops[1] = {s->loop};
  struct lws_context_creation_info info;
  memset(&info, 0, sizeof info);
  /* UTF-8 checking of websocket text is read from the context's options */
  info.options = LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_EXPLICIT_VHOSTS |
                 LWS_SERVER_OPTION_VALIDATE_UTF8;
  info.foreign_loops = loops;
  info.pcontext = &s->ctx_watch;
  info.port = CONTEXT_PORT_NO_LISTEN;
  info.user = s;
  info.server_string = "shopbot";
  /* every request header together, and the most lws holds per connection */
  info.max_http_header_data = s->max_header;
  /* Sizes lws's fd table by our cap, not by the process limit. */
  info.fd_limit_per_thread = (unsigned)s->nrecs + LWS_FD_EXTRA;
  /* lws's general network timeout; for a server that is a stalled body */
  info.timeout_secs = RT_HTTPD_BODY_TIMEOUT_S;
  handle_set before = {0};
  uv_walk(s->loop, collect_cb, &before);
  s->ctx = lw.create_context(&info);
  if (!s->ctx) {
    /* lws cleaned up after itself */
    free(before.v);
    s->lws_failed = true;
    rt_log(RT_LOG_ERROR, "httpd.lws", "detail=\"lws_create_context failed; connections are "
           "closed\"");
    return false;
  }
  s->ctx_watch = s->ctx;
  note_lws_handles(s, &before);
  free(before.v);

  memset(&info, 0, sizeof info);
  info.options = LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_VALIDATE_UTF8;
  info.vhost_name = "shopbot";
  /* Websockets: a ping after RT_HTTPD_WS_PING_S of silence, hang up 10 s
   * later without an answer. */
  s->idle_policy.secs_since_valid_ping = RT_HTTPD_WS_PING_S;
  s->idle_policy.secs_since_valid_hangup = RT_HTTPD_WS_PING_S + 10;
  info.retry_and_idle_policy = &s->idle_policy;
  info.port = CONTEXT_PORT_NO_LISTEN; /* we listen and hand lws the sockets */
  info.protocols = s->protocols;
  info.keepalive_timeout = s->keepalive_s;
  /* an accepted socket holds a header table from the start, so this is
   * also the limit for a connection that sends nothing */
  info.timeout_secs_ah_idle = s->header_timeout_s;
  s->vh = lw.create_vhost(s->ctx, &info);
  if (!s->vh) {
    /* The context stays until the server closes (its teardown). */
    s->lws_failed = true;
    rt_log(RT_LOG_ERROR, "httpd.lws", "detail=\"lws_create_vhost failed; connections are "
           "closed\"");
    return false;
  }
  return true;
}

int rt_httpd_route_ex(rt_httpd *s, const char *method, const char *path,
                      const rt_httpd_route_opts *o, rt_httpd_handler fn, void *ud) {
  if (!s || !path || path[0] != '/' || !fn) return RT_EINVAL;
  route *r = route_slot(s, method, path, false);
  r->fn = fn;
  r->ud = ud;
  r->max_body = o ? o->max_body : 0;
  r->timeout_ms = o ? o->timeout_ms : 0;
  return RT_OK;
}

int rt_httpd_route(rt_httpd *s, const char *method, const char *path,
                   rt_httpd_handler fn, void *ud) {
  return rt_httpd_route_ex(s, method, path, NULL, fn, ud);
}

int rt_httpd_ws_route(rt_httpd *s, const char *path, const rt_httpd_ws_callbacks *cb,
                      void *ud) {
  if (!s || !path || path[0] != '/' || !cb) return RT_EINVAL;
  route *r = route_slot(s, NULL, path, true);
  r->wcb = *cb;
  r->ud = ud;
  return RT_OK;
}

int rt_httpd_port(const rt_httpd *s) { return s ? s->port : 0; }

int rt_httpd_connections(const rt_httpd *s) { return s ? s->nconn : 0; }

int rt_httpd_max_connections(const rt_httpd *s) { return s ? s->max_conn : 0; }

int rt_httpd_ws_connections(const rt_httpd *s) { return s ? s->nws : 0; }

int rt_httpd_ws_max_connections(const rt_httpd *s) { return s ? s->ws_max : 0; }

void rt_httpd_body_stats(const rt_httpd *s, uint64_t *timeouts, uint64_t *evictions) {
  if (timeouts) *timeouts = s ? s->body_timeouts : 0;
  if (evictions) *evictions = s ? s->body_evictions : 0;
}

/* Frees s once the reap timer and our own handles are all closed. */
static void handle_closed(uv_handle_t *h) {
  rt_httpd *s = h->data;
  if (h == (uv_handle_t *)&s->lpoll) close(s->lfd);
  if (--s->pending_closes > 0) return;
  void (*done)(void *) = s->done;
  void *ud = s->done_ud;
  /* Requests still held by handlers outlive the server: cut them loose. */
  while (s->pending) req_detach(s->pending);
  for (size_t i = 0; i < s->nroutes; i++) {
    free(s->routes[i].method);
    free(s->routes[i].path);
  }
  free(s->routes);
  free(s->recs);
  free(s);
  if (done) done(ud);
}

static void on_reap(uv_timer_t *t) {
  rt_httpd *s = t->data;
  if (!s->ctx) {   /* lws never made (no connection came): nothing of it to close */
    uv_timer_stop(t);
    uv_close((uv_handle_t *)t, handle_closed);
    return;
  }
  if (s->closing == 1) {
    /* Outside any lws callback: start closing everything lws owns. */
    s->closing = 2;
    s->close_ms = uv_now(s->loop);
    lw.context_destroy(s->ctx);
    return;
  }
  if (lws_on_loop(s)) {
    if (!s->warned && uv_now(s->loop) - s->close_ms > TEARDOWN_WARN_MS) {
      s->warned = true;
      rt_log(RT_LOG_WARN, "httpd.slow_teardown", "waited_ms=%d",
             TEARDOWN_WARN_MS);
    }
    return;
  }
  /* Every lws handle is closed: the second destroy frees the context. */
  lw.context_destroy(s->ctx);
  if (s->ctx_watch)
    rt_log(RT_LOG_WARN, "httpd.teardown", "detail=\"lws context not freed\"");
  s->ctx = NULL;
  uv_timer_stop(t);
  uv_close((uv_handle_t *)t, handle_closed);
}

static void start_teardown(rt_httpd *s) {
  s->closing = 1;
  s->pending_closes = 1; /* reap */
  if (s->handles_init) {
    /* Stop accepting at once; the listening socket closes with its handle. */
    listen_stop(s);
    uv_timer_stop(&s->retry);
    uv_timer_stop(&s->deadlines);
    s->deadlines_on = false;
    s->pending_closes += 3;
    uv_close((uv_handle_t *)&s->lpoll, handle_closed);
    uv_close((uv_handle_t *)&s->retry, handle_closed);
    uv_close((uv_handle_t *)&s->deadlines, handle_closed);
  } else {
    close(s->lfd);
  }
  uv_timer_start(&s->reap, on_reap, 0, 1);
}

void rt_httpd_close(rt_httpd *s, void (*done)(void *ud), void *ud) {
  if (!s || s->closing) return;
  s->done = done;
  s->done_ud = ud;
  start_teardown(s);
}
