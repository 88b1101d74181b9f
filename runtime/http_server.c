/* http_server.c -- libwebsockets HTTP server on a foreign uv loop
 * (see http_server.h).
 *
 * Request flow, per connection (lws per-session data is our rt_httpd_conn):
 *   LWS_CALLBACK_HTTP            copy method, path, query; decide about body
 *   LWS_CALLBACK_HTTP_BODY       append (or discard when over the cap)
 *   LWS_CALLBACK_HTTP_BODY_COMPLETION / no body: dispatch -> handler fills
 *                                the reply, conn_ready() asks for WRITEABLE
 *   LWS_CALLBACK_HTTP_WRITEABLE  headers, then the body in chunks, then
 *                                lws_http_transaction_completed (keep-alive)
 * Async replies (webhooks) fit in later without changing this flow: the
 * dispatch step would hand the handler a reply object that points back at
 * the conn, and conn_ready() would run when the handler completes it; the
 * conn's CLOSED_HTTP would have to detach such a pending reply.
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
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

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

/* One accepted connection (lws's network wsi). The idle list, oldest
 * first, holds those not inside a request: just accepted, sending headers
 * slowly, or quiet between keep-alive requests. At the cap, each new
 * connection closes the head of that list, so idle connections cannot
 * lock out requests; connections inside a request are never closed for
 * room. */
typedef struct conn_rec {
  struct lws *wsi;                   /* NULL: on the free list */
  struct conn_rec *prev, *next;      /* idle list, or next free */
  bool idle, evicting;
} conn_rec;

typedef struct {
  char *prefix;
  size_t len;
  rt_httpd_handler fn;
  void *ud;
} route;

struct rt_httpd {
  uv_loop_t *loop;                   /* borrowed */
  struct lws_context *ctx;           /* owned */
  struct lws_context *ctx_watch;     /* lws writes NULL here when freed */
  struct lws_vhost *vh;
  struct lws_protocols protocols[2]; /* [1] zeroed: end of list */
  int port;
  int lfd;                           /* listening socket, owned */
  uv_poll_t lpoll;                   /* readable lfd -> on_listen */
  uv_timer_t retry;                  /* accept back-off */
  bool handles_init;                 /* lpoll and retry are on the loop */
  bool listening, retry_pending;
  unsigned backoff_ms;
  int nconn, max_conn;               /* accepted connections open, cap */
  conn_rec *recs;                    /* max_conn + EVICT_SLACK, owned */
  size_t nrecs;
  conn_rec *free_recs, *idle_head, *idle_tail;
  uint64_t full_warned_ms;
  bool full_warned;
  int pending_closes;                /* our handles not closed yet */
  route *routes;
  size_t nroutes, routes_cap;
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
typedef struct {
  const char *method;       /* static string */
  char *path, *query;       /* owned */
  char *body;               /* owned, request body */
  size_t body_len, body_cap;
  bool want_body, too_big;
  bool ready;               /* reply filled, waiting for WRITEABLE */
  bool hdr_sent, close_after, close_now;
  int spurious;             /* repeated BODY_COMPLETIONs (see lws_cb) */
  int status;
  char *ctype;              /* owned */
  char *out;                /* owned, reply body */
  size_t out_len, sent;
} rt_httpd_conn;

typedef struct {
  struct sockaddr_storage ss;
  socklen_t len;
} listen_addr;

static void on_listen(uv_poll_t *h, int status, int events);
static void conn_gone(rt_httpd *s, struct lws *wsi);
static void conn_busy(rt_httpd *s, struct lws *wsi, bool busy);

static void conn_reset(rt_httpd_conn *c) {
  free(c->path);
  free(c->query);
  free(c->body);
  free(c->ctype);
  free(c->out);
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
    if (lws_hdr_total_length(wsi, m[i].tok) > 0) {
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
  int total = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_URI_ARGS);
  if (total <= 0) return rt_xstrdup("");
  char *frag = rt_xmalloc((size_t)total + 1);
  size_t cap = (size_t)total * 3 + 64, o = 0;
  char *q = rt_xmalloc(cap);
  for (int i = 0;; i++) {
    int n = lws_hdr_copy_fragment(wsi, frag, total + 1, WSI_TOKEN_HTTP_URI_ARGS, i);
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

static const route *route_find(const rt_httpd *s, const char *path) {
  const route *best = NULL;
  for (size_t i = 0; i < s->nroutes; i++) {
    const route *r = &s->routes[i];
    if (strncmp(path, r->prefix, r->len) != 0) continue;
    char next = path[r->len];
    if (next != '\0' && next != '/' && r->prefix[r->len - 1] != '/') continue;
    if (!best || r->len > best->len) best = r;
  }
  return best;
}

/* The reply is in c: ask lws for a WRITEABLE callback to send it. */
static void conn_ready(struct lws *wsi, rt_httpd_conn *c) {
  c->ready = true;
  lws_callback_on_writable(wsi);
}

static void conn_error(struct lws *wsi, rt_httpd_conn *c, int status,
                       const char *msg, bool close_after) {
  c->status = status;
  c->ctype = rt_xstrdup("application/json");
  c->out = rt_xasprintf("{\"error\":\"%s\"}", msg);
  c->out_len = strlen(c->out);
  c->close_after = close_after;
  conn_ready(wsi, c);
}

static void dispatch(rt_httpd *s, struct lws *wsi, rt_httpd_conn *c) {
  const route *r = route_find(s, c->path);
  if (!r) {
    conn_error(wsi, c, 404, "not found", false);
    return;
  }
  rt_httpd_reply reply = {200, "application/json", NULL, 0};
  r->fn(r->ud, c->method, c->path, c->query, c->body ? c->body : "",
        c->body_len, &reply);
  c->status = reply.status >= 100 && reply.status <= 599 ? reply.status : 500;
  c->ctype = reply.content_type ? rt_xstrdup(reply.content_type) : NULL;
  c->out = reply.body;
  c->out_len = reply.body && !reply.len ? strlen(reply.body) : reply.len;
  if (!c->out) c->out_len = 0;
  conn_ready(wsi, c);
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
  if (!has_body) {
    dispatch(s, wsi, c);
    return 0;
  }
  char cl[32];
  if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH) <= 0 ||
      lws_hdr_copy(wsi, cl, sizeof cl, WSI_TOKEN_HTTP_CONTENT_LENGTH) <= 0) {
    conn_error(wsi, c, 411, "length required", true);
    return 0;
  }
  char *end;
  long long n = strtoll(cl, &end, 10);
  if (end == cl || n < 0) {
    conn_error(wsi, c, 400, "bad content-length", true);
    return 0;
  }
  if (n > DISCARD_MAX) {
    conn_error(wsi, c, 413, "body too large", true);
    return 0;
  }
  c->too_big = n > (long long)RT_HTTPD_MAX_BODY;
  if (n == 0 && strcmp(c->method, "POST") != 0) {
    /* lws sends BODY_COMPLETION for an empty POST only */
    dispatch(s, wsi, c);
    return 0;
  }
  c->want_body = true;
  return 0;
}

static void on_body(rt_httpd_conn *c, const void *in, size_t len) {
  if (!c->want_body || c->too_big || !len) return;
  if (c->body_len + len > RT_HTTPD_MAX_BODY) {
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
    unsigned char buf[LWS_PRE + 1024];
    unsigned char *start = buf + LWS_PRE, *p = start, *end = buf + sizeof buf - 1;
    if (lws_add_http_common_headers(wsi, (unsigned)c->status, c->ctype,
                                    head ? 0 : c->out_len, &p, end))
      return -1;
    if (c->close_after &&
        lws_add_http_header_by_token(wsi, WSI_TOKEN_CONNECTION,
                                     (const unsigned char *)"close", 5, &p, end))
      return -1;
    if (lws_finalize_write_http_header(wsi, start, &p, end)) return -1;
    c->hdr_sent = true;
    if (c->out_len && !head) {
      lws_callback_on_writable(wsi);
      return 0;
    }
  } else if (c->sent < c->out_len) {
    size_t n = c->out_len - c->sent;
    if (n > WCHUNK) n = WCHUNK;
    bool last = c->sent + n == c->out_len;
    memcpy(s->wbuf + LWS_PRE, c->out + c->sent, n);
    if (lws_write(wsi, s->wbuf + LWS_PRE, n,
                  last ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP) != (int)n)
      return -1;
    c->sent += n;
    if (!last) {
      lws_callback_on_writable(wsi);
      return 0;
    }
  }
  /* Reply complete. */
  if (c->close_after) {
    /* lws flushes any partial write before the next WRITEABLE */
    c->close_now = true;
    lws_callback_on_writable(wsi);
    return 0;
  }
  conn_reset(c);
  conn_busy(s, wsi, false);
  return lws_http_transaction_completed(wsi) ? -1 : 0;
}

static int lws_cb(struct lws *wsi, enum lws_callback_reasons reason,
                  void *user, void *in, size_t len) {
  struct lws_context *cx = lws_get_context(wsi);
  rt_httpd *s = cx ? lws_context_user(cx) : NULL;
  rt_httpd_conn *c = user;
  switch (reason) {
  case LWS_CALLBACK_HTTP:
    if (!s || !c) return -1;
    conn_busy(s, wsi, true);
    return on_request(s, wsi, c, in, len);
  case LWS_CALLBACK_HTTP_BODY:
    if (c) on_body(c, in, len);
    return 0;
  case LWS_CALLBACK_HTTP_BODY_COMPLETION:
    if (!s || !c) return -1;
    if (!c->want_body) {
      /* lws 4.1 repeats the completion while a reply is pending when more
       * requests were pipelined behind one with a body: usually once or
       * twice (harmless), but for a POST pipelined after a GET it repeats
       * forever without returning to the loop. Closing the connection is
       * the only way out of that. */
      return ++c->spurious > 16 ? -1 : 0;
    }
    c->want_body = false;
    if (c->too_big)
      conn_error(wsi, c, 413, "body too large", false);
    else
      dispatch(s, wsi, c);
    return 0;
  case LWS_CALLBACK_HTTP_WRITEABLE:
    if (!s || !c) return -1;
    return on_writeable(s, wsi, c);
  case LWS_CALLBACK_CLOSED_HTTP:
  case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
    if (c) conn_reset(c);
    return 0;
  case LWS_CALLBACK_WSI_DESTROY:
    if (s) conn_gone(s, wsi);
    return 0;
  default:
    return lws_callback_http_dummy(wsi, reason, user, in, len);
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
  if (s->nconn >= s->max_conn && !(s->idle_head && s->free_recs)) return;
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
  struct lws *nw = lws_get_network_wsi(wsi);
  conn_rec *r = nw ? lws_get_opaque_user_data(nw) : NULL;
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
         "connection is closed for each new one, or new ones wait\"", s->max_conn);
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
      if (!s->idle_head || !s->free_recs) {
        /* Every connection is inside a request (or closing): stop
         * accepting; new connects wait in the kernel's backlog until one
         * finishes (conn_busy) or closes (conn_gone). */
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
    /* On failure lws closes fd itself. */
    struct lws *wsi = lws_adopt_socket_vhost(s->vh, fd);
    if (!wsi) continue;
    conn_rec *r = s->free_recs;
    s->free_recs = r->next;
    memset(r, 0, sizeof *r);
    r->wsi = wsi;
    /* The mark tells conn_gone which wsis are our accepted connections
     * (h2 streams and the like are wsis without a socket of their own). */
    lws_set_opaque_user_data(wsi, r);
    s->nconn++;
    idle_push(s, r);
    if (s->nconn > s->max_conn) {
      /* Make room: close the connection idle for the longest. We are in
       * our own uv callback, not inside lws, so a synchronous close is
       * allowed; its record goes back in conn_gone. */
      conn_rec *v = s->idle_head;
      idle_remove(s, v);
      v->evicting = true;
      lws_set_timeout(v->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_SYNC);
    }
  }
}

/* LWS_CALLBACK_WSI_DESTROY: lws has closed the socket. */
static void conn_gone(rt_httpd *s, struct lws *wsi) {
  conn_rec *r = lws_get_opaque_user_data(wsi);
  if (!r || r < s->recs || r >= s->recs + s->nrecs || r->wsi != wsi) return;
  lws_set_opaque_user_data(wsi, NULL);
  idle_remove(s, r);
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

  lws_set_log_level(LLL_ERR | LLL_WARN, lws_log_emit);

  rt_httpd *s = rt_xcalloc(1, sizeof *s);
  s->loop = loop;
  s->lfd = lfd;
  s->port = port;
  s->max_conn = cap;
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

  void *loops[1] = {loop};
  struct lws_context_creation_info info;
  memset(&info, 0, sizeof info);
  info.options = LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_EXPLICIT_VHOSTS;
  info.foreign_loops = loops;
  info.pcontext = &s->ctx_watch;
  info.port = CONTEXT_PORT_NO_LISTEN;
  info.user = s;
  info.server_string = "shopbot";
  info.max_http_header_data = 8192;
  /* Sizes lws's fd table by our cap, not by the process limit. */
  info.fd_limit_per_thread = (unsigned)s->nrecs + LWS_FD_EXTRA;
  /* lws's general network timeout; for a server that is a stalled body */
  info.timeout_secs = RT_HTTPD_BODY_TIMEOUT_S;
  handle_set before = {0};
  uv_walk(loop, collect_cb, &before);
  s->ctx = lws_create_context(&info);
  if (!s->ctx) {
    /* lws cleaned up after itself */
    free(before.v);
    if (err) *err = rt_xasprintf("cannot listen on %s: %s", listen, "lws_create_context failed");
    close(lfd);
    free(s->recs);
    free(s);
    return RT_ENET;
  }
  s->ctx_watch = s->ctx;
  note_lws_handles(s, &before);
  free(before.v);
  uv_timer_init(loop, &s->reap);
  s->reap.data = s;

  memset(&info, 0, sizeof info);
  info.options = LWS_SERVER_OPTION_LIBUV;
  info.vhost_name = "shopbot";
  info.port = CONTEXT_PORT_NO_LISTEN; /* we listen and hand lws the sockets */
  info.protocols = s->protocols;
  info.keepalive_timeout = RT_HTTPD_KEEPALIVE_S;
  /* an accepted socket holds a header table from the start, so this is
   * also the limit for a connection that sends nothing */
  info.timeout_secs_ah_idle = RT_HTTPD_HEADER_TIMEOUT_S;
  s->vh = lws_create_vhost(s->ctx, &info);
  if (!s->vh) {
    /* lws already put handles on the loop: let the teardown timer remove
     * them and free s. */
    if (err) *err = rt_xasprintf("cannot listen on %s: %s", listen, "lws_create_vhost failed");
    start_teardown(s);
    return RT_ENET;
  }
  uv_poll_init_socket(loop, &s->lpoll, lfd);
  s->lpoll.data = s;
  uv_timer_init(loop, &s->retry);
  s->retry.data = s;
  s->handles_init = true;
  listen_start(s);
  *out = s;
  return RT_OK;
}

int rt_httpd_route(rt_httpd *s, const char *path_prefix, rt_httpd_handler fn,
                   void *ud) {
  if (!s || !path_prefix || path_prefix[0] != '/' || !fn) return RT_EINVAL;
  for (size_t i = 0; i < s->nroutes; i++)
    if (strcmp(s->routes[i].prefix, path_prefix) == 0) {
      s->routes[i].fn = fn;
      s->routes[i].ud = ud;
      return RT_OK;
    }
  if (s->nroutes == s->routes_cap) {
    s->routes_cap = s->routes_cap ? s->routes_cap * 2 : 8;
    s->routes = rt_xrealloc(s->routes, s->routes_cap * sizeof *s->routes);
  }
  route *r = &s->routes[s->nroutes++];
  r->prefix = rt_xstrdup(path_prefix);
  r->len = strlen(path_prefix);
  r->fn = fn;
  r->ud = ud;
  return RT_OK;
}

int rt_httpd_port(const rt_httpd *s) { return s ? s->port : 0; }

int rt_httpd_connections(const rt_httpd *s) { return s ? s->nconn : 0; }

int rt_httpd_max_connections(const rt_httpd *s) { return s ? s->max_conn : 0; }

/* Frees s once the reap timer and our own handles are all closed. */
static void handle_closed(uv_handle_t *h) {
  rt_httpd *s = h->data;
  if (h == (uv_handle_t *)&s->lpoll) close(s->lfd);
  if (--s->pending_closes > 0) return;
  void (*done)(void *) = s->done;
  void *ud = s->done_ud;
  for (size_t i = 0; i < s->nroutes; i++) free(s->routes[i].prefix);
  free(s->routes);
  free(s->recs);
  free(s);
  if (done) done(ud);
}

static void on_reap(uv_timer_t *t) {
  rt_httpd *s = t->data;
  if (s->closing == 1) {
    /* Outside any lws callback: start closing everything lws owns. */
    s->closing = 2;
    s->close_ms = uv_now(s->loop);
    lws_context_destroy(s->ctx);
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
  lws_context_destroy(s->ctx);
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
    s->pending_closes += 2;
    uv_close((uv_handle_t *)&s->lpoll, handle_closed);
    uv_close((uv_handle_t *)&s->retry, handle_closed);
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
