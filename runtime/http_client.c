/* http_client.c -- libcurl multi on the uv loop (see http_client.h).
 *
 * curl tells us which sockets to watch (on_socket) and when to wake it up
 * (on_timer_set); we answer with uv_poll_t and uv_timer_t events that call
 * curl_multi_socket_action, and after each of those we collect finished
 * transfers. Finished requests go to a done queue first and their callbacks
 * run after the queue is filled, outside any curl call, so a callback may
 * start, cancel or close anything. Plain http:// to a numeric address skips
 * curl: see "direct" below. */
#include "http_client.h"
#include "buf.h"
#include "log.h"
#include "rt.h"
#define CURL_DISABLE_TYPECHECK
#include <curl/curl.h>
#include <dlfcn.h>
#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <stddef.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <unistd.h>

/* ---- libcurl, loaded on first use ----------------------------------------
 *
 * libcurl pulls in some thirty libraries (TLS, LDAP, RTMP, Kerberos...)
 * whose constructors run and touch memory at load. A shop's bot that never
 * calls out should not pay for that in every process, so the library is
 * opened by the first request that goes to the network (a client whose
 * requests a transport answers never opens it). The table below is a cache of
 * the loaded library, the same for every loop. */

static struct {
  bool loaded;
  CURLcode (*global_init)(long);
  void (*global_cleanup)(void);
  CURL *(*easy_init)(void);
  CURLcode (*easy_setopt)(CURL *, CURLoption, ...);
  CURLcode (*easy_getinfo)(CURL *, CURLINFO, ...);
  void (*easy_cleanup)(CURL *);
  const char *(*easy_strerror)(CURLcode);
  time_t (*getdate)(const char *, const time_t *);
  CURLM *(*multi_init)(void);
  CURLMcode (*multi_add_handle)(CURLM *, CURL *);
  CURLMcode (*multi_remove_handle)(CURLM *, CURL *);
  CURLMcode (*multi_assign)(CURLM *, curl_socket_t, void *);
  CURLMcode (*multi_cleanup)(CURLM *);
  CURLMsg *(*multi_info_read)(CURLM *, int *);
  CURLMcode (*multi_setopt)(CURLM *, CURLMoption, ...);
  CURLMcode (*multi_socket_action)(CURLM *, curl_socket_t, int, int *);
  const char *(*multi_strerror)(CURLMcode);
  struct curl_slist *(*slist_append)(struct curl_slist *, const char *);
  void (*slist_free_all)(struct curl_slist *);
} cu;

/* Loads libcurl once; aborts with the package to install if it is missing,
 * as a missing shared library at start would. */
static void curl_load(void) {
  if (cu.loaded) return;
  /* libcurl brings GnuTLS in (through librtmp and libldap, for protocols
   * the client never uses; its own TLS is OpenSSL), and GnuTLS sets itself
   * up in a library constructor: about 1 MB of its pages and p11-kit's
   * touched for nothing. Whoever does use GnuTLS initialises it
   * explicitly, as its documentation asks. A value set by the user stays. */
  setenv("GNUTLS_NO_IMPLICIT_INIT", "1", 0);
  void *lib = dlopen("libcurl.so.4", RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    fprintf(stderr, "level=fatal msg=\"cannot load libcurl (apt-get install libcurl4)\" err=\"%s\"\n",
            dlerror());
    abort();
  }
  static const struct { const char *name; size_t off; } syms[] = {
#define SYM(f) {"curl_" #f, offsetof(__typeof__(cu), f)}
    SYM(global_init), SYM(global_cleanup), SYM(easy_init), SYM(easy_setopt),
    SYM(easy_getinfo), SYM(easy_cleanup), SYM(easy_strerror), SYM(getdate),
    SYM(multi_init), SYM(multi_add_handle), SYM(multi_remove_handle), SYM(multi_assign),
    SYM(multi_cleanup), SYM(multi_info_read), SYM(multi_setopt), SYM(multi_socket_action),
    SYM(multi_strerror), SYM(slist_append), SYM(slist_free_all),
#undef SYM
  };
  for (size_t i = 0; i < sizeof syms / sizeof syms[0]; i++) {
    void *f = dlsym(lib, syms[i].name);
    if (!f) {
      fprintf(stderr, "level=fatal msg=\"libcurl lacks %s\"\n", syms[i].name);
      abort();
    }
    memcpy((char *)&cu + syms[i].off, &f, sizeof f);
  }
  cu.loaded = true;
}


#ifndef RT_VERSION
#define RT_VERSION "dev"
#endif

#define DEFAULT_TIMEOUT_MS 30000L
#define DEFAULT_MAX_BODY ((size_t)8 << 20)
/* Idle connections kept open for the next request: at least the sends a
 * channel may have in flight (128 for Telegram) and its long poll, so a
 * burst of replies finds its connections again instead of opening new
 * ones (curl's default keeps 4 per transfer in the multi handle, and the
 * transfers that just finished no longer count). */
#define MAX_IDLE_CONNS 256L
/* Finished easy handles kept for the next requests: curl_easy_init costs
 * a dozen allocations (some 7,000 instructions). As many as the sends a
 * channel keeps in flight and then some: with 64, a burst of 128 replies
 * made a third of its handles anew. */
#define EASY_POOL 256
#define RECV_BUFFER 4096L

/* One socket curl asked us to watch. Owned by rt_http (socks list) until
 * its poll handle's close callback frees it.
 *
 * A watcher lives as long as its socket, not as long as one transfer:
 * curl says CURL_POLL_REMOVE each time a keep-alive connection goes back
 * to its cache and asks again when the next request takes it, and closing
 * and making the uv_poll_t each time cost three syscalls per request
 * (ioctl, epoll_ctl ADD and DEL). So REMOVE only marks it idle (still
 * watched for reading: an idle connection becomes readable only when the
 * server closes it, and then it is stopped once), and the watcher goes
 * when curl closes the socket (on_close_socket, before the close(2), as
 * libuv wants). h->byfd finds it again by descriptor. Only connections
 * are kept so: curl closes other sockets it has us watch (the resolver's
 * wake-up pair) without telling, so those go at REMOVE as before. */
typedef struct rt_http_sock {
  uv_poll_t poll;
  rt_http *h;
  curl_socket_t fd;
  int events;               /* UV_READABLE | UV_WRITABLE being watched, 0 stopped */
  bool idle;                /* curl removed it: kept for the connection's reuse */
  struct rt_http_sock *prev, *next;
} rt_http_sock;

typedef enum { REQ_ACTIVE, REQ_DONE, REQ_DELIVERING } req_state;

struct rt_http_req {
  rt_http *h;
  CURL *easy;               /* owned; NULL once the transfer finished */
  rt_http_cb cb;
  void *ud;
  struct curl_slist *hdrs;  /* owned */
  char *req_body;           /* owned copy of the request body */
  rt_buf body;              /* owned response body while receiving */
  size_t max_body;
  bool keep_head;           /* rt_http_opts.keep_head */
  bool too_big;
  long retry_after;
  uint64_t start_ns;
  req_state state;
  rt_http_resp resp;        /* filled when the transfer finishes */
  char errbuf[CURL_ERROR_SIZE];
  rt_http_req *prev, *next; /* in h->active, or in the done queue */
  /* a direct request (see "direct" below) */
  struct rt_http_conn *conn;/* the connection carrying it, or NULL */
  char *wire;               /* owned: the request as sent */
  size_t wire_len;
  long timeout_ms;
  struct sockaddr_in addr;
  bool retried;             /* sent again once on a new connection */
};

struct rt_http {
  uv_loop_t *loop;          /* borrowed */
  CURLM *multi;             /* owned; NULL once closing */
  uv_timer_t timer;         /* curl's timeout */
  rt_http_req *active;      /* transfers inside the multi handle */
  rt_http_req *done_head, *done_tail; /* finished, callback pending */
  rt_http_sock *socks;
  rt_http_sock **byfd;      /* descriptor -> its watcher, or NULL */
  unsigned char *conn;      /* descriptor -> 1: a connection's socket, made by
                             * on_open_socket, closed by on_close_socket */
  size_t nbyfd;
  CURL *pool[EASY_POOL];    /* finished easy handles for reuse */
  int npool;
  size_t inflight;
  int open_handles;         /* uv handles not yet through their close cb */
  bool closing;
  bool in_timeout;          /* inside on_timeout (see on_timer_set) */
  bool curl_up;             /* global_init done and multi made (first request) */
  rt_http_transport transport;   /* answers instead of the network, or NULL */
  void *transport_ud;
  void (*done)(void *ud);
  void *done_ud;
  struct rt_http_conn *conns;  /* direct connections, busy and idle */
  size_t nidle;
  bool no_direct;           /* every request through curl (tests) */
  /* Direct reads land here, parsed at once; made at the first direct
   * connection (64 KB a process that never makes one need not hold). */
  char *rbuf;
};

#define RBUF_SIZE 65536

static void check_multi_info(rt_http *h);

/* ---- lists --------------------------------------------------------------- */

static void active_unlink(rt_http *h, rt_http_req *r) {
  if (r->prev) r->prev->next = r->next; else h->active = r->next;
  if (r->next) r->next->prev = r->prev;
  r->prev = r->next = NULL;
}

static void done_push(rt_http *h, rt_http_req *r) {
  r->next = NULL;
  r->prev = h->done_tail;
  if (h->done_tail) h->done_tail->next = r; else h->done_head = r;
  h->done_tail = r;
}

static rt_http_req *done_pop(rt_http *h) {
  rt_http_req *r = h->done_head;
  if (!r) return NULL;
  h->done_head = r->next;
  if (h->done_head) h->done_head->prev = NULL; else h->done_tail = NULL;
  r->prev = r->next = NULL;
  return r;
}

static void done_unlink(rt_http *h, rt_http_req *r) {
  if (r->prev) r->prev->next = r->next; else h->done_head = r->next;
  if (r->next) r->next->prev = r->prev; else h->done_tail = r->prev;
  r->prev = r->next = NULL;
}

/* ---- requests ------------------------------------------------------------ */

/* An easy handle out of the multi handle goes back to the pool (reset at
 * its next use) or, with the pool full or the client closing, away. */
static void easy_put(rt_http *h, CURL *e) {
  if (!e) return;
  if (h->npool < EASY_POOL && !h->closing) {
    /* nothing left pointing into the request about to be freed */
    cu.easy_setopt(e, CURLOPT_ERRORBUFFER, NULL);
    cu.easy_setopt(e, CURLOPT_HTTPHEADER, NULL);
    cu.easy_setopt(e, CURLOPT_POSTFIELDS, NULL);
    h->pool[h->npool++] = e;
  } else {
    cu.easy_cleanup(e);
  }
}

static size_t on_write(char *p, size_t size, size_t n, void *ud);
static size_t on_header(char *p, size_t size, size_t n, void *ud);
static int on_close_socket(void *userp, curl_socket_t fd);
static curl_socket_t on_open_socket(void *userp, curlsocktype purpose, struct curl_sockaddr *a);

/* A pooled handle keeps the options every request of the client shares,
 * set once when it is made: a reset and twenty setopts per request were a
 * tenth of the client's own work. rt_http_request sets the rest (URL,
 * method, body, headers, limits, the request's own pointers) each time,
 * all of them, so nothing of the previous request carries over. */
static CURL *easy_get(rt_http *h) {
  if (h->npool) return h->pool[--h->npool];
  CURL *e = cu.easy_init();
  if (!e) return NULL;
  cu.easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  cu.easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
  cu.easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
  cu.easy_setopt(e, CURLOPT_PROXY, "");
  cu.easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  /* The encodings the header names (http_client.h): curl's "" lists every
   * one it was built with, 40 bytes formatted into every request. */
  cu.easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "gzip, deflate");
  cu.easy_setopt(e, CURLOPT_USERAGENT, "shopbot/" RT_VERSION);
  cu.easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
  cu.easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
  /* curl's receive buffer is per transfer, 16 KB by default: a channel
   * with 128 sends in flight held 2 MB of them, and the pooled handles
   * keep theirs. Bot API answers are a few hundred bytes; a big body (a
   * photo) only takes more reads. */
  cu.easy_setopt(e, CURLOPT_BUFFERSIZE, RECV_BUFFER);
  /* Kept by curl on the connection this transfer opens, so it is called
   * whoever closes the connection later (the cache, rt_http_close). */
  cu.easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, on_open_socket);
  cu.easy_setopt(e, CURLOPT_OPENSOCKETDATA, h);
  cu.easy_setopt(e, CURLOPT_CLOSESOCKETFUNCTION, on_close_socket);
  cu.easy_setopt(e, CURLOPT_CLOSESOCKETDATA, h);
  return e;
}

static void req_free(rt_http_req *r) {
  easy_put(r->h, r->easy);
  free(r->wire);
  if (r->hdrs) cu.slist_free_all(r->hdrs);
  free(r->req_body);
  rt_buf_free(&r->body);
  free(r->resp.body);
  free(r->resp.content_type);
  free(r);
}

/* Moves a transfer out of the multi handle into the done queue with its
 * response filled in. code is curl's result; cancelled means rt_http_close
 * is tearing it down. */
static void req_finish(rt_http_req *r, CURLcode code, bool cancelled) {
  rt_http *h = r->h;
  rt_http_resp *resp = &r->resp;
  cu.multi_remove_handle(h->multi, r->easy);
  active_unlink(h, r);

  memset(resp, 0, sizeof *resp);
  resp->retry_after = -1;
  resp->total_ms = (double)(uv_hrtime() - r->start_ns) / 1e6;
  if (cancelled) {
    resp->err = RT_ENET;
    snprintf(resp->errmsg, sizeof resp->errmsg, "cancelled");
  } else if (code == CURLE_OK) {
    long status = 0;
    char *ct = NULL;
    cu.easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
    cu.easy_getinfo(r->easy, CURLINFO_CONTENT_TYPE, &ct);
    resp->status = (int)status;
    resp->content_type = ct ? rt_xstrdup(ct) : NULL;
    resp->retry_after = r->retry_after;
    resp->err = RT_OK;
  } else if ((code == CURLE_WRITE_ERROR && r->too_big) ||
             code == CURLE_FILESIZE_EXCEEDED) {
    resp->err = RT_ELIMIT;
    snprintf(resp->errmsg, sizeof resp->errmsg,
             "response body over %zu bytes", r->max_body);
  } else {
    resp->err = code == CURLE_OPERATION_TIMEDOUT ? RT_ETIMEOUT : RT_ENET;
    snprintf(resp->errmsg, sizeof resp->errmsg, "%s",
             r->errbuf[0] ? r->errbuf : cu.easy_strerror(code));
  }
  if ((resp->err == RT_OK || (resp->err == RT_ELIMIT && r->keep_head)) && r->body.s) {
    resp->body = rt_buf_take(&r->body, &resp->body_len);
  } else {
    resp->body = rt_xstrdup("");
    resp->body_len = 0;
  }
  easy_put(h, r->easy);
  r->easy = NULL;
  r->state = REQ_DONE;
  done_push(h, r);
}

/* Runs the callbacks of finished requests, in the order they finished. */
static void deliver_done(rt_http *h) {
  rt_http_req *r;
  while ((r = done_pop(h))) {
    h->inflight--;
    r->state = REQ_DELIVERING;
    r->cb(&r->resp, r->ud);
    req_free(r);
  }
}

static size_t on_write(char *p, size_t size, size_t n, void *ud) {
  rt_http_req *r = ud;
  size_t k = size * n;
  if (k > r->max_body - r->body.len) {
    if (r->keep_head) rt_buf_add(&r->body, p, r->max_body - r->body.len);
    r->too_big = true;
    return 0; /* curl fails the transfer with CURLE_WRITE_ERROR */
  }
  rt_buf_add(&r->body, p, k);
  return k;
}

/* Retry-After is either delta-seconds or an HTTP-date. */
static long parse_retry_after(const char *v, size_t n) {
  char tmp[128];
  while (n && isspace((unsigned char)*v)) v++, n--;
  while (n && isspace((unsigned char)v[n - 1])) n--;
  if (n == 0 || n >= sizeof tmp) return -1;
  memcpy(tmp, v, n);
  tmp[n] = '\0';
  bool digits = true;
  for (size_t i = 0; i < n; i++)
    if (!isdigit((unsigned char)tmp[i])) digits = false;
  if (digits) {
    char *end;
    long s = strtol(tmp, &end, 10);
    return s < 0 ? -1 : s;
  }
  time_t t = cu.getdate(tmp, NULL);
  if (t == -1) return -1;
  time_t now = time(NULL);
  return t > now ? (long)(t - now) : 0;
}

static size_t on_header(char *p, size_t size, size_t n, void *ud) {
  rt_http_req *r = ud;
  size_t k = size * n;
  static const char ra[] = "Retry-After:";
  if (k >= 5 && strncasecmp(p, "HTTP/", 5) == 0)
    r->retry_after = -1; /* a new response (after 100 Continue) starts over */
  else if (k > sizeof ra - 1 && strncasecmp(p, ra, sizeof ra - 1) == 0)
    r->retry_after = parse_retry_after(p + sizeof ra - 1, k - (sizeof ra - 1));
  return k;
}

static bool method_ok(const char *m) {
  if (!*m || strlen(m) > 16) return false;
  for (const char *p = m; *p; p++)
    if (!isupper((unsigned char)*p)) return false;
  return true;
}

static struct curl_slist *slist_add(struct curl_slist *l, const char *s) {
  struct curl_slist *n = cu.slist_append(l, s);
  if (!n) {
    fprintf(stderr, "level=fatal msg=\"out of memory\" where=curl_slist_append\n");
    abort();
  }
  return n;
}

static void on_transport(uv_timer_t *t);
static void timer_up(rt_http *h);

/* A transport's answer, queued like a finished transfer and delivered from
 * the loop (a 0 ms timer), so the callback contract is the network's. */
static int transport_request(rt_http *h, rt_http_req *r, const rt_http_opts *o,
                             rt_http_req **out) {
  rt_http_resp *resp = &r->resp;
  resp->retry_after = -1;
  h->transport(h->transport_ud, o, resp);
  if (resp->err != RT_OK) {
    resp->status = 0;
    free(resp->body);
    resp->body = NULL;
  }
  if (!resp->body) {
    resp->body = rt_xstrdup("");
    resp->body_len = 0;
  } else if (resp->body_len > r->max_body) {
    if (r->keep_head) {
      resp->body[r->max_body] = '\0';
      resp->body_len = r->max_body;
    } else {
      free(resp->body);
      resp->body = rt_xstrdup("");
      resp->body_len = 0;
    }
    resp->status = 0;
    resp->err = RT_ELIMIT;
    snprintf(resp->errmsg, sizeof resp->errmsg, "response body over %zu bytes", r->max_body);
  }
  resp->total_ms = (double)(uv_hrtime() - r->start_ns) / 1e6;
  r->state = REQ_DONE;
  done_push(h, r);
  h->inflight++;
  uv_timer_start(&h->timer, on_transport, 0, 0);
  if (out) *out = r;
  return RT_OK;
}

static void on_transport(uv_timer_t *t) { deliver_done(t->data); }

void rt_http_set_transport(rt_http *h, rt_http_transport fn, void *ud) {
  h->transport = fn;
  h->transport_ud = ud;
}

static int on_socket(CURL *e, curl_socket_t fd, int what, void *userp, void *socketp);
static int on_timer_set(CURLM *m, long ms, void *userp);
static int on_close_socket(void *userp, curl_socket_t fd);
static curl_socket_t on_open_socket(void *userp, curlsocktype purpose, struct curl_sockaddr *a);

/* curl for this client, made on its first network request. */
static void curl_up(rt_http *h) {
  if (h->curl_up) return;
  curl_load();
  /* Reference counted by curl itself; balanced in finish_close. */
  if (cu.global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
    fprintf(stderr, "level=fatal msg=\"curl_global_init failed\"\n");
    abort();
  }
  h->multi = cu.multi_init();
  if (!h->multi) {
    fprintf(stderr, "level=fatal msg=\"out of memory\" where=curl_multi_init\n");
    abort();
  }
  cu.multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
  cu.multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
  cu.multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, on_timer_set);
  cu.multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);
  cu.multi_setopt(h->multi, CURLMOPT_MAXCONNECTS, MAX_IDLE_CONNS);
  h->curl_up = true;
}

static void finish_close(rt_http *h);

/* ---- direct: plain HTTP/1.1 to a numeric address, without curl ----------
 *
 * curl costs some 100,000 instructions a request (its URL parser, its
 * connection cache, a printf that writes the headers a byte at a time),
 * more than the whole rest of a Telegram reply's send. A request that
 * needs none of what curl is for (TLS, names to resolve, proxies,
 * redirects, encodings, auth) goes over a connection of our own instead:
 * http:// to a numeric IPv4 address (a self-hosted Bot API server, a local
 * LLM or CRM bridge, the tests' fakes), GET or POST, the caller's headers
 * plain "Name: value". Connections are kept alive and reused one request
 * at a time, as curl's are; the answer is read as HTTP/1.1 says
 * (Content-Length, chunked, or until the server closes), and the request
 * contract is the same (http_client.h). Everything else goes through curl. */

typedef enum { PS_HEAD, PS_BODY, PS_CHUNK_SIZE, PS_CHUNK_DATA, PS_CHUNK_END, PS_TRAILER,
               PS_EOF } parse_state;

typedef struct rt_http_conn {
  uv_tcp_t tcp;
  uv_timer_t timer;         /* the request's whole time */
  rt_http *h;
  struct sockaddr_in addr;
  rt_http_req *req;         /* in flight, or NULL: idle */
  rt_buf in;                /* bytes read and not yet parsed */
  rt_buf out;               /* what uv_try_write left, for uv_write */
  uv_write_t wr;
  parse_state ps;
  size_t left;              /* body or chunk bytes still to come */
  bool keep;                /* the answer lets the connection be reused */
  bool connected, used, got, closing;
  int fail;                 /* an error to report from the loop (the timer) */
  int open;                 /* handles not yet through their close */
  struct rt_http_conn *prev, *next;
} rt_http_conn;

static void conn_closed(uv_handle_t *hd) {
  rt_http_conn *c = hd->data;
  rt_http *h = c->h;
  h->open_handles--;
  if (--c->open == 0) {
    rt_buf_free(&c->in);
    rt_buf_free(&c->out);
    free(c);
  }
  if (h->closing && h->open_handles == 0) finish_close(h);
}

static void conn_close(rt_http_conn *c) {
  if (c->closing) return;
  rt_http *h = c->h;
  c->closing = true;
  if (!c->req) h->nidle--;
  if (c->prev) c->prev->next = c->next; else h->conns = c->next;
  if (c->next) c->next->prev = c->prev;
  c->prev = c->next = NULL;
  if (c->req) c->req->conn = NULL;
  c->req = NULL;
  uv_close((uv_handle_t *)&c->tcp, conn_closed);
  uv_close((uv_handle_t *)&c->timer, conn_closed);
}

/* The request is over (resp filled by the caller, or an error here): into
 * the done queue; its connection is kept for the next request when the
 * answer allows it and nothing else came after it. */
static void direct_finish(rt_http_req *r, int err, const char *msg) {
  rt_http *h = r->h;
  rt_http_conn *c = r->conn;
  rt_http_resp *resp = &r->resp;
  active_unlink(h, r);
  if (c) {
    uv_timer_stop(&c->timer);
    c->req = NULL;
    r->conn = NULL;
    h->nidle++;
    if (err != RT_OK || !c->keep || c->in.len || h->closing || h->nidle > MAX_IDLE_CONNS)
      conn_close(c);
  }
  resp->total_ms = (double)(uv_hrtime() - r->start_ns) / 1e6;
  resp->err = err;
  if (err != RT_OK) {
    resp->status = 0;
    free(resp->content_type);
    resp->content_type = NULL;
    resp->retry_after = -1;
    snprintf(resp->errmsg, sizeof resp->errmsg, "%s", msg);
    if (!(err == RT_ELIMIT && r->keep_head)) rt_buf_free(&r->body);
  }
  if (r->body.s) {
    resp->body = rt_buf_take(&r->body, &resp->body_len);
  } else {
    resp->body = rt_xstrdup("");
    resp->body_len = 0;
  }
  r->state = REQ_DONE;
  done_push(h, r);
}

static bool hdr_is(const char *p, size_t n, const char *name) {
  size_t k = strlen(name);
  return n > k && p[k] == ':' && strncasecmp(p, name, k) == 0;
}

static const char *hdr_val(const char *p, size_t n, size_t *vn) {
  const char *v = memchr(p, ':', n) + 1, *e = p + n;
  while (v < e && (*v == ' ' || *v == '\t')) v++;
  while (e > v && (e[-1] == ' ' || e[-1] == '\t')) e--;
  *vn = (size_t)(e - v);
  return v;
}

/* The status line and headers in c->in[0..n) (without the blank line).
 * 1 for an interim 1xx answer (skipped), 0, or -1 for a malformed one. */
static int parse_head(rt_http_conn *c, rt_http_req *r, const char *p, size_t n) {
  const char *e = p + n, *eol = memchr(p, '\r', n);
  if (!eol) eol = e;
  if (eol - p < 12 || strncmp(p, "HTTP/1.", 7) != 0 || p[8] != ' ') return -1;
  bool http10 = p[7] == '0';
  int status = 0;
  for (int i = 9; i < 12; i++) {
    if (!isdigit((unsigned char)p[i])) return -1;
    status = status * 10 + (p[i] - '0');
  }
  if (status >= 100 && status < 200) return 1;
  rt_http_resp *resp = &r->resp;
  resp->status = status;
  free(resp->content_type);
  resp->content_type = NULL;
  r->retry_after = -1;
  bool chunked = false, have_len = false, close = http10, keep_alive = false;
  size_t len = 0;
  for (const char *l = eol; l < e;) {
    while (l < e && (*l == '\r' || *l == '\n')) l++;
    if (l >= e) break;
    const char *le = memchr(l, '\r', (size_t)(e - l));
    if (!le) le = e;
    size_t ln = (size_t)(le - l), vn;
    if (!memchr(l, ':', ln)) return -1;
    const char *v = hdr_val(l, ln, &vn);
    if (hdr_is(l, ln, "Content-Length")) {
      if (!vn) return -1;
      len = 0;
      for (size_t i = 0; i < vn; i++) {
        if (!isdigit((unsigned char)v[i]) || len > (SIZE_MAX - 9) / 10) return -1;
        len = len * 10 + (size_t)(v[i] - '0');
      }
      have_len = true;
    } else if (hdr_is(l, ln, "Transfer-Encoding")) {
      if (vn < 7 || strncasecmp(v + vn - 7, "chunked", 7) != 0) return -1;
      chunked = true;
    } else if (hdr_is(l, ln, "Connection")) {
      if (vn == 5 && strncasecmp(v, "close", 5) == 0) close = true;
      if (vn == 10 && strncasecmp(v, "keep-alive", 10) == 0) keep_alive = true;
    } else if (hdr_is(l, ln, "Content-Type")) {
      free(resp->content_type);
      resp->content_type = rt_xstrndup(v, vn);
    } else if (hdr_is(l, ln, "Retry-After")) {
      if (vn && !isdigit((unsigned char)v[0])) curl_load();   /* an HTTP-date: curl_getdate */
      r->retry_after = parse_retry_after(v, vn);
    } else if (hdr_is(l, ln, "Content-Encoding")) {
      size_t k;
      const char *ce = hdr_val(l, ln, &k);
      if (!(k == 8 && strncasecmp(ce, "identity", 8) == 0)) return -1;   /* none was asked for */
    }
    l = le;
  }
  c->keep = !close && (!http10 || keep_alive);
  if (status == 204 || status == 304) {
    c->ps = PS_BODY;
    c->left = 0;
  } else if (chunked) {
    c->ps = PS_CHUNK_SIZE;
  } else if (have_len) {
    c->ps = PS_BODY;
    c->left = len;
  } else {
    c->ps = PS_EOF;
    c->keep = false;
  }
  return 0;
}

static int body_add(rt_http_req *r, const char *p, size_t n) {
  if (n > r->max_body - r->body.len) {
    if (r->keep_head) rt_buf_add(&r->body, p, r->max_body - r->body.len);
    return -1;
  }
  if (n) rt_buf_add(&r->body, p, n);
  return 0;
}

/* Parses what c->in holds. Returns 1 when the answer is whole, 0 for more,
 * -1 malformed, -2 over max_body. */
static int parse(rt_http_conn *c, rt_http_req *r) {
  size_t at = 0;
  int rc = 0;
  for (;;) {
    const char *p = c->in.s + at;
    size_t n = c->in.len - at;
    if (c->ps == PS_HEAD) {
      const char *end = n >= 4 ? memmem(p, n, "\r\n\r\n", 4) : NULL;
      if (!end) {
        if (n > 65536) rc = -1;
        break;
      }
      int hr = parse_head(c, r, p, (size_t)(end - p));
      at += (size_t)(end - p) + 4;
      if (hr < 0) { rc = -1; break; }
      if (hr == 1) continue;
      if (c->ps == PS_BODY && c->left == 0) { rc = 1; break; }
    } else if (c->ps == PS_BODY || c->ps == PS_CHUNK_DATA) {
      size_t k = n < c->left ? n : c->left;
      if (body_add(r, p, k)) { rc = -2; break; }
      at += k;
      c->left -= k;
      if (c->left) break;
      if (c->ps == PS_BODY) { rc = 1; break; }
      c->ps = PS_CHUNK_END;
    } else if (c->ps == PS_EOF) {
      if (body_add(r, p, n)) { rc = -2; break; }
      at += n;
      break;
    } else {   /* a line: a chunk's size, the CRLF after its data, a trailer */
      const char *le = memmem(p, n, "\r\n", 2);
      if (!le) {
        if (n > 4096) rc = -1;
        break;
      }
      size_t ln = (size_t)(le - p);
      at += ln + 2;
      if (c->ps == PS_CHUNK_END) {
        if (ln) { rc = -1; break; }
        c->ps = PS_CHUNK_SIZE;
      } else if (c->ps == PS_CHUNK_SIZE) {
        size_t sz = 0, i = 0;
        for (; i < ln && isxdigit((unsigned char)p[i]); i++) {
          if (sz > (SIZE_MAX >> 4)) { rc = -1; break; }
          sz = sz * 16 + (size_t)(isdigit((unsigned char)p[i]) ? p[i] - '0'
                                                               : (tolower((unsigned char)p[i]) - 'a' + 10));
        }
        if (rc || i == 0) { rc = -1; break; }
        /* (keep_head: the chunk's part under the cap is kept first) */
        if (sz > r->max_body - r->body.len && !r->keep_head) { rc = -2; break; }
        if (sz == 0) c->ps = PS_TRAILER;
        else { c->ps = PS_CHUNK_DATA; c->left = sz; }
      } else {   /* PS_TRAILER: ends at an empty line */
        if (ln == 0) { rc = 1; break; }
      }
    }
  }
  rt_buf_consume(&c->in, at);
  return rc;
}

static void direct_send(rt_http_req *r);
static void conn_timeout(uv_timer_t *t);

/* Reports status on c from the loop: conn_write runs inside
 * rt_http_request too, where no callback may run. */
static void conn_fail_later(rt_http_conn *c, int status) {
  c->fail = status;
  uv_timer_start(&c->timer, conn_timeout, 0, 0);
}

/* The connection ended (EOF or an error) under a request. */
static void conn_lost(rt_http_conn *c, int status) {
  rt_http_req *r = c->req;
  rt_http *h = c->h;
  if (!r) {   /* an idle connection the server closed */
    conn_close(c);
    return;
  }
  if (c->ps == PS_EOF && status == UV_EOF) {   /* the body ends with the connection */
    c->keep = false;
    direct_finish(r, RT_OK, NULL);
    deliver_done(h);
    return;
  }
  if (c->used && !c->got && !r->retried && !h->closing) {
    /* A kept connection the server had closed before this request reached
     * it (nothing came back): once more on a new one, as curl does. */
    r->retried = true;
    c->req = NULL;
    r->conn = NULL;
    h->nidle++;
    conn_close(c);
    direct_send(r);
    return;
  }
  char msg[160];
  if (!c->connected) snprintf(msg, sizeof msg, "connect failed: %s", uv_strerror(status));
  else if (status == UV_EOF) snprintf(msg, sizeof msg, "connection closed before the whole answer came");
  else snprintf(msg, sizeof msg, "connection failed: %s", uv_strerror(status));
  direct_finish(r, RT_ENET, msg);
  deliver_done(h);
}

static void conn_alloc(uv_handle_t *hd, size_t want, uv_buf_t *buf) {
  rt_http_conn *c = hd->data;
  (void)want;
  if (!c->h->rbuf) c->h->rbuf = rt_xmalloc(RBUF_SIZE);
  buf->base = c->h->rbuf;
  buf->len = RBUF_SIZE;
}

static void conn_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf) {
  rt_http_conn *c = st->data;
  if (nread == 0 || c->closing) return;
  if (nread < 0) {
    conn_lost(c, (int)nread);
    return;
  }
  rt_http_req *r = c->req;
  if (!r) {   /* an idle connection is not spoken to: drop it */
    conn_close(c);
    return;
  }
  c->got = true;
  rt_buf_add(&c->in, buf->base, (size_t)nread);
  int rc = parse(c, r);
  if (rc == 0) {
    /* The answer came in pieces: the server may hold its next piece until
     * we acknowledge this one (Nagle), and Linux delays that ACK by up to
     * 40 ms; Python's http.server writes headers and body apart. Asked
     * now, the ACK goes at once. An answer in one piece costs nothing. */
    uv_os_fd_t fd;
    int one = 1;
    if (uv_fileno((uv_handle_t *)&c->tcp, &fd) == 0)
      setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof one);
    return;
  }
  rt_http *h = c->h;
  if (rc == 1) {
    r->resp.retry_after = r->retry_after;
    direct_finish(r, RT_OK, NULL);
  } else if (rc == -2) {
    char msg[80];
    snprintf(msg, sizeof msg, "response body over %zu bytes", r->max_body);
    direct_finish(r, RT_ELIMIT, msg);
  } else {
    direct_finish(r, RT_ENET, "malformed HTTP answer");
  }
  deliver_done(h);
}

static void conn_timeout(uv_timer_t *t) {
  rt_http_conn *c = t->data;
  rt_http_req *r = c->req;
  if (!r || c->closing) return;
  if (c->fail) {   /* a failure met inside rt_http_request, reported now */
    int f = c->fail;
    c->fail = 0;
    conn_lost(c, f);
    return;
  }
  char msg[80];
  snprintf(msg, sizeof msg, "timed out after %ld ms", r->timeout_ms);
  rt_http *h = c->h;
  direct_finish(r, RT_ETIMEOUT, msg);
  deliver_done(h);
}

static void conn_wrote(uv_write_t *w, int status) {
  rt_http_conn *c = w->data;
  rt_buf_reset(&c->out);
  if (status < 0 && !c->closing && c->req) conn_lost(c, status);
}

static void conn_write(rt_http_conn *c) {
  rt_http_req *r = c->req;
  uv_buf_t b = uv_buf_init(r->wire, (unsigned)r->wire_len);
  int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
  if (n == (int)r->wire_len) return;
  if (n < 0 && n != UV_EAGAIN) {
    conn_fail_later(c, n);
    return;
  }
  size_t done = n > 0 ? (size_t)n : 0;
  rt_buf_reset(&c->out);
  rt_buf_add(&c->out, r->wire + done, r->wire_len - done);
  uv_buf_t rest = uv_buf_init(c->out.s, (unsigned)c->out.len);
  c->wr.data = c;
  int rc = uv_write(&c->wr, (uv_stream_t *)&c->tcp, &rest, 1, conn_wrote);
  if (rc != 0) conn_fail_later(c, rc);
}

static void conn_connected(uv_connect_t *cr, int status) {
  rt_http_conn *c = cr->data;
  free(cr);
  if (c->closing) return;
  rt_http_req *r = c->req;
  if (status < 0) {
    if (!r) conn_close(c);
    else conn_lost(c, status);
    return;
  }
  c->connected = true;
  uv_tcp_nodelay(&c->tcp, 1);
  int rc = uv_read_start((uv_stream_t *)&c->tcp, conn_alloc, conn_read);
  if (rc != 0) {
    conn_lost(c, rc);
    return;
  }
  if (r) conn_write(c);
}

/* Puts r on an idle connection to its address, or a new one. */
static void direct_send(rt_http_req *r) {
  rt_http *h = r->h;
  rt_http_conn *c = h->conns;
  for (; c; c = c->next)
    if (!c->req && !c->closing && c->connected && c->addr.sin_port == r->addr.sin_port &&
        c->addr.sin_addr.s_addr == r->addr.sin_addr.s_addr)
      break;
  bool fresh = !c;
  if (fresh) {
    c = rt_xcalloc(1, sizeof *c);
    c->h = h;
    c->addr = r->addr;
    uv_tcp_init(h->loop, &c->tcp);
    uv_timer_init(h->loop, &c->timer);
    c->tcp.data = c->timer.data = c;
    c->open = 2;
    h->open_handles += 2;
    c->next = h->conns;
    if (h->conns) h->conns->prev = c;
    h->conns = c;
    h->nidle++;   /* counted idle until it takes r, just below */
  } else if (c != h->conns) {
    /* to the front: the next search finds a busy one first, but a burst
     * finds the idle ones it just left near the front as well */
    c->prev->next = c->next;
    if (c->next) c->next->prev = c->prev;
    c->prev = NULL;
    c->next = h->conns;
    h->conns->prev = c;
    h->conns = c;
  }
  h->nidle--;
  c->req = r;
  r->conn = c;
  c->ps = PS_HEAD;
  c->left = 0;
  c->keep = false;
  c->got = false;
  rt_buf_reset(&c->in);
  uv_timer_start(&c->timer, conn_timeout, (uint64_t)r->timeout_ms, 0);
  if (!fresh) {
    c->used = true;
    conn_write(c);
    return;
  }
  uv_connect_t *cr = rt_xmalloc(sizeof *cr);
  cr->data = c;
  int rc = uv_tcp_connect(cr, &c->tcp, (const struct sockaddr *)&c->addr, conn_connected);
  if (rc != 0) {
    free(cr);
    conn_fail_later(c, rc);
  }
}

/* http://a.b.c.d[:port]/path with nothing curl would read otherwise, and
 * headers that only add: then the request can go direct. */
static bool direct_ok(rt_http *h, const rt_http_opts *o, const char *method,
                      struct sockaddr_in *addr, const char **path, char *host, size_t hostn) {
  if (h->no_direct || strncmp(o->url, "http://", 7) != 0) return false;
  if (strcmp(method, "GET") != 0 && strcmp(method, "POST") != 0) return false;
  const char *a = o->url + 7, *slash = strchr(a, '/');
  size_t an = slash ? (size_t)(slash - a) : strlen(a);
  if (an == 0 || an >= hostn || an >= 22) return false;
  memcpy(host, a, an);
  host[an] = '\0';
  char ip[22];
  memcpy(ip, host, an + 1);
  int port = 80;
  char *colon = strchr(ip, ':');
  if (colon) {
    *colon = '\0';
    char *end;
    long pv = strtol(colon + 1, &end, 10);
    if (*end || end == colon + 1 || pv <= 0 || pv > 65535) return false;
    port = (int)pv;
  }
  for (const char *q = ip; *q; q++)
    if (!isdigit((unsigned char)*q) && *q != '.') return false;
  if (uv_ip4_addr(ip, port, addr) != 0) return false;
  *path = slash ? slash : "/";
  for (const char *q = *path; *q; q++) {
    unsigned char ch = (unsigned char)*q;
    if (ch <= 0x20 || ch >= 0x7f || ch == '#' || ch == '\\') return false;
  }
  if (strstr(*path, "/./") || strstr(*path, "/../")) return false;
  for (const char *const *hp = o->headers; hp && *hp; hp++) {
    const char *c = strchr(*hp, ':');
    if (!c || c == *hp || !c[1] || strchr(*hp, '\r') || strchr(*hp, '\n')) return false;
    size_t n = (size_t)(c - *hp);
    static const char *const own[] = {"Host", "Content-Length", "Transfer-Encoding", "Connection",
                                      "Expect", "User-Agent", "Accept", "Accept-Encoding"};
    for (size_t i = 0; i < sizeof own / sizeof own[0]; i++)
      if (strlen(own[i]) == n && strncasecmp(*hp, own[i], n) == 0) return false;
  }
  return true;
}

static int direct_request(rt_http *h, rt_http_req *r, const rt_http_opts *o, const char *method,
                          const struct sockaddr_in *addr, const char *path, const char *host,
                          rt_http_req **out) {
  r->addr = *addr;
  r->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : DEFAULT_TIMEOUT_MS;
  r->resp.retry_after = -1;
  rt_buf w = RT_BUF_INIT;
  rt_buf_adds(&w, method);
  rt_buf_addc(&w, ' ');
  rt_buf_adds(&w, path);
  rt_buf_adds(&w, " HTTP/1.1\r\nHost: ");
  rt_buf_adds(&w, host);
  rt_buf_adds(&w, "\r\nUser-Agent: shopbot/" RT_VERSION "\r\nAccept: */*\r\n");
  for (const char *const *hp = o->headers; hp && *hp; hp++) {
    rt_buf_adds(&w, *hp);
    rt_buf_adds(&w, "\r\n");
  }
  if (o->body || strcmp(method, "POST") == 0) {
    rt_buf_printf(&w, "Content-Length: %zu\r\n\r\n", o->body_len);
    if (o->body_len) rt_buf_add(&w, o->body, o->body_len);
  } else {
    rt_buf_adds(&w, "\r\n");
  }
  r->wire = rt_buf_take(&w, &r->wire_len);
  r->state = REQ_ACTIVE;
  r->next = h->active;
  if (h->active) h->active->prev = r;
  h->active = r;
  h->inflight++;
  direct_send(r);
  if (out) *out = r;
  return RT_OK;
}

/* Stops a direct request: its connection goes (the answer may still come). */
static void direct_cancel(rt_http_req *r) {
  rt_http_conn *c = r->conn;
  if (c) {
    c->req = NULL;
    r->conn = NULL;
    r->h->nidle++;
    conn_close(c);
  }
}

void rt_http_set_direct(rt_http *h, bool on) { h->no_direct = !on; }

int rt_http_request(rt_http *h, const rt_http_opts *o, rt_http_cb cb, void *ud,
                    rt_http_req **out) {
  if (out) *out = NULL;
  if (!h || !o || !o->url || !*o->url || !cb || h->closing) return RT_EINVAL;
  const char *method = o->method ? o->method : "GET";
  if (!method_ok(method) || (o->body_len && !o->body)) return RT_EINVAL;

  rt_http_req *r = rt_xcalloc(1, sizeof *r);
  r->h = h;
  r->cb = cb;
  r->ud = ud;
  r->retry_after = -1;
  r->max_body = o->max_body ? o->max_body : DEFAULT_MAX_BODY;
  r->keep_head = o->keep_head;
  r->start_ns = uv_hrtime();
  timer_up(h);
  if (h->transport) return transport_request(h, r, o, out);
  struct sockaddr_in addr;
  const char *path;
  char host[32];
  if (direct_ok(h, o, method, &addr, &path, host, sizeof host))
    return direct_request(h, r, o, method, &addr, path, host, out);
  curl_up(h);
  r->easy = easy_get(h);
  if (!r->easy) {
    fprintf(stderr, "level=fatal msg=\"out of memory\" where=curl_easy_init\n");
    abort();
  }
  CURL *e = r->easy;
  cu.easy_setopt(e, CURLOPT_URL, o->url);
  cu.easy_setopt(e, CURLOPT_PRIVATE, r);
  cu.easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf);
  cu.easy_setopt(e, CURLOPT_TIMEOUT_MS, o->timeout_ms > 0 ? o->timeout_ms
                                                            : DEFAULT_TIMEOUT_MS);
  /* keep_head: no early refusal by Content-Length, so on_write gets (and
   * keeps) the head before it stops the transfer */
  cu.easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)(r->keep_head ? 0 : r->max_body));
  cu.easy_setopt(e, CURLOPT_WRITEDATA, r);
  cu.easy_setopt(e, CURLOPT_HEADERDATA, r);

  /* The method, set whole every time (a pooled handle still holds the
   * previous request's). In curl's order: POSTFIELDS (even NULL) makes a
   * POST, NOBODY a HEAD (and clearing it turns HEAD into GET), HTTPGET a
   * GET. */
  bool head = strcmp(method, "HEAD") == 0;
  if (!head && (o->body || strcmp(method, "POST") == 0)) {
    cu.easy_setopt(e, CURLOPT_NOBODY, 0L);
    r->req_body = rt_xmalloc(o->body_len + 1);
    if (o->body_len) memcpy(r->req_body, o->body, o->body_len);
    r->req_body[o->body_len] = '\0';
    cu.easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)o->body_len);
    cu.easy_setopt(e, CURLOPT_POSTFIELDS, r->req_body);
  } else {
    cu.easy_setopt(e, CURLOPT_POSTFIELDS, NULL);
    cu.easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)-1);
    if (head) cu.easy_setopt(e, CURLOPT_NOBODY, 1L);
    else cu.easy_setopt(e, CURLOPT_HTTPGET, 1L);
  }
  bool plain = head || strcmp(method, "GET") == 0 || strcmp(method, "POST") == 0;
  cu.easy_setopt(e, CURLOPT_CUSTOMREQUEST, plain ? NULL : method);

  /* No "Expect: 100-continue" round trip for large bodies. */
  r->hdrs = slist_add(NULL, "Expect:");
  for (const char *const *p = o->headers; p && *p; p++)
    r->hdrs = slist_add(r->hdrs, *p);
  cu.easy_setopt(e, CURLOPT_HTTPHEADER, r->hdrs);

  /* Adding only arms our timer (curl asks for a 0 ms timeout); the
   * transfer starts, and the callback can run, only from the loop. */
  CURLMcode mc = cu.multi_add_handle(h->multi, e);
  if (mc != CURLM_OK) {
    rt_log(RT_LOG_WARN, "http.add_failed", "err=\"%s\"", cu.multi_strerror(mc));
    req_free(r);
    return RT_ENET;
  }
  r->state = REQ_ACTIVE;
  r->next = h->active;
  if (h->active) h->active->prev = r;
  h->active = r;
  h->inflight++;
  if (out) *out = r;
  return RT_OK;
}

void rt_http_cancel(rt_http_req *r) {
  if (!r) return;
  rt_http *h = r->h;
  switch (r->state) {
  case REQ_ACTIVE:
    if (r->easy) cu.multi_remove_handle(h->multi, r->easy);
    else direct_cancel(r);
    active_unlink(h, r);
    h->inflight--;
    req_free(r);
    break;
  case REQ_DONE:
    /* Queued for delivery (deliver_done is running another callback, or
     * rt_http_close is waiting for its handles): drop it from the queue. */
    done_unlink(h, r);
    h->inflight--;
    req_free(r);
    break;
  case REQ_DELIVERING:
    break; /* its own callback is running: nothing left to cancel */
  }
}

size_t rt_http_inflight(const rt_http *h) { return h ? h->inflight : 0; }

/* ---- curl <-> uv glue ---------------------------------------------------- */

static void check_multi_info(rt_http *h) {
  CURLMsg *msg;
  int left;
  if (!h->multi) return;
  while ((msg = cu.multi_info_read(h->multi, &left))) {
    if (msg->msg != CURLMSG_DONE) continue;
    rt_http_req *r = NULL;
    CURLcode code = msg->data.result;
    cu.easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&r);
    req_finish(r, code, false);
  }
  deliver_done(h);
}

static void sock_watch(rt_http_sock *s, int ev);

static void on_poll(uv_poll_t *p, int status, int events) {
  rt_http_sock *s = p->data;
  rt_http *h = s->h;
  int flags = 0, running;
  if (!h->multi) return;
  if (s->idle) {
    /* A kept connection became readable: the server closed it (or sent
     * what nobody asked for). curl finds that out when it next picks it;
     * until then it is not watched, or the loop would spin on it. */
    sock_watch(s, 0);
    return;
  }
  if (status < 0) {
    flags = CURL_CSELECT_ERR;
  } else {
    if (events & UV_READABLE) flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE) flags |= CURL_CSELECT_OUT;
  }
  cu.multi_socket_action(h->multi, s->fd, flags, &running);
  check_multi_info(h);
}

static void on_timeout(uv_timer_t *t) {
  rt_http *h = t->data;
  int running;
  if (!h->multi) return;
  h->in_timeout = true;
  cu.multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
  check_multi_info(h);
  h->in_timeout = false;
}

/* 0 means "now": a request just added (curl asks 0 for it) starts on the
 * loop's next turn, not a millisecond later, since each reply and each
 * long poll waited for that millisecond. Only from inside on_timeout it
 * is 1 ms: libuv (before 1.45) runs a timer armed for "now" inside its own
 * callback again in the same pass, so curl asking 0 there would spin. */
static int on_timer_set(CURLM *m, long ms, void *userp) {
  rt_http *h = userp;
  (void)m;
  if (h->closing) return 0;
  if (ms < 0)
    uv_timer_stop(&h->timer);
  else
    uv_timer_start(&h->timer, on_timeout, ms ? (uint64_t)ms : h->in_timeout ? 1 : 0, 0);
  return 0;
}

static void finish_close(rt_http *h);

static void on_handle_closed(uv_handle_t *hd) {
  rt_http *h;
  if (hd->type == UV_POLL) {
    rt_http_sock *s = hd->data;
    h = s->h;
    free(s);
  } else {
    h = hd->data;
  }
  h->open_handles--;
  if (h->closing && h->open_handles == 0) finish_close(h);
}

static void sock_close(rt_http *h, rt_http_sock *s) {
  if (s->prev) s->prev->next = s->next; else h->socks = s->next;
  if (s->next) s->next->prev = s->prev;
  s->prev = s->next = NULL;
  if ((size_t)s->fd < h->nbyfd && h->byfd[s->fd] == s) h->byfd[s->fd] = NULL;
  uv_close((uv_handle_t *)&s->poll, on_handle_closed);
}

/* Watches ev on s (0: stops), with a syscall only when it changes. */
static void sock_watch(rt_http_sock *s, int ev) {
  if (ev == s->events) return;
  s->events = ev;
  if (ev) uv_poll_start(&s->poll, ev, on_poll);
  else uv_poll_stop(&s->poll);
}

static rt_http_sock *sock_find(rt_http *h, curl_socket_t fd) {
  return fd >= 0 && (size_t)fd < h->nbyfd ? h->byfd[fd] : NULL;
}

static void byfd_fit(rt_http *h, curl_socket_t fd) {
  if ((size_t)fd < h->nbyfd) return;
  size_t n = h->nbyfd ? h->nbyfd : 64;
  while (n <= (size_t)fd) n *= 2;
  h->byfd = rt_xrealloc(h->byfd, n * sizeof *h->byfd);
  h->conn = rt_xrealloc(h->conn, n);
  memset(h->byfd + h->nbyfd, 0, (n - h->nbyfd) * sizeof *h->byfd);
  memset(h->conn + h->nbyfd, 0, n - h->nbyfd);
  h->nbyfd = n;
}

/* curl opens a connection's socket. */
static curl_socket_t on_open_socket(void *userp, curlsocktype purpose,
                                    struct curl_sockaddr *a) {
  rt_http *h = userp;
  (void)purpose;
  curl_socket_t fd = socket(a->family, a->socktype, a->protocol);
  if (fd < 0) return CURL_SOCKET_BAD;
  byfd_fit(h, fd);
  h->conn[fd] = 1;
  return fd;
}

/* curl closes a connection's socket: its watcher goes first (libuv must
 * not watch a closed descriptor, which the next socket() may reuse). */
static int on_close_socket(void *userp, curl_socket_t fd) {
  rt_http *h = userp;
  rt_http_sock *s = sock_find(h, fd);
  if (s) sock_close(h, s);
  if (fd >= 0 && (size_t)fd < h->nbyfd) h->conn[fd] = 0;
  return close(fd);
}

static int on_socket(CURL *e, curl_socket_t fd, int what, void *userp,
                     void *socketp) {
  rt_http *h = userp;
  rt_http_sock *s = socketp ? socketp : sock_find(h, fd);
  (void)e;
  if (what == CURL_POLL_REMOVE) {
    /* Back in curl's cache (or about to be closed, on_close_socket): kept,
     * watched for reading only. */
    if (s && !h->closing && h->conn[fd]) {
      s->idle = true;
      sock_watch(s, s->events ? UV_READABLE : 0);
      if (h->multi) cu.multi_assign(h->multi, fd, NULL);
    } else if (s) {
      sock_close(h, s);
      if (h->multi && !h->closing) cu.multi_assign(h->multi, fd, NULL);
    }
    return 0;
  }
  if (h->closing) return 0;
  if (!s) {
    s = rt_xcalloc(1, sizeof *s);
    s->h = h;
    s->fd = fd;
    int rc = uv_poll_init_socket(h->loop, &s->poll, fd);
    if (rc != 0) {
      rt_log(RT_LOG_WARN, "http.poll_failed", "fd=%d err=%s", (int)fd,
             uv_strerror(rc));
      free(s);
      return -1;
    }
    s->poll.data = s;
    s->next = h->socks;
    if (h->socks) h->socks->prev = s;
    h->socks = s;
    h->open_handles++;
    byfd_fit(h, fd);
    h->byfd[fd] = s;
  }
  if (!socketp) cu.multi_assign(h->multi, fd, s);
  s->idle = false;
  int ev = 0;
  if (what & CURL_POLL_IN) ev |= UV_READABLE;
  if (what & CURL_POLL_OUT) ev |= UV_WRITABLE;
  sock_watch(s, ev);
  return 0;
}

/* ---- lifetime ------------------------------------------------------------ */

rt_http *rt_http_new(uv_loop_t *loop) {
  rt_http *h = rt_xcalloc(1, sizeof *h);
  h->loop = loop;
  return h;
}

/* The loop handle, made by the first request: a client never used holds
 * nothing on the loop and closes at once. */
static void timer_up(rt_http *h) {
  if (h->open_handles) return;
  uv_timer_init(h->loop, &h->timer);
  h->timer.data = h;
  h->open_handles = 1;
}

void rt_http_close(rt_http *h, void (*done)(void *ud), void *ud) {
  if (!h || h->closing) return;
  h->closing = true;
  h->done = done;
  h->done_ud = ud;
  if (!h->open_handles) {   /* never used: nothing on the loop to wait for */
    finish_close(h);
    return;
  }
  uv_timer_stop(&h->timer);
  while (h->active) {
    if (h->active->easy) req_finish(h->active, CURLE_OK, true);
    else direct_finish(h->active, RT_ENET, "cancelled");
  }
  while (h->conns) conn_close(h->conns);
  /* Closes cached connections; curl may report their sockets removed. */
  if (h->multi) cu.multi_cleanup(h->multi);
  h->multi = NULL;
  while (h->socks) sock_close(h, h->socks);
  uv_close((uv_handle_t *)&h->timer, on_handle_closed);
}

static void finish_close(rt_http *h) {
  deliver_done(h); /* "cancelled" callbacks, and any finished but queued */
  void (*done)(void *) = h->done;
  void *ud = h->done_ud;
  bool curl_was_up = h->curl_up;
  while (h->npool) cu.easy_cleanup(h->pool[--h->npool]);
  free(h->byfd);
  free(h->conn);
  free(h->rbuf);
  free(h);
  if (curl_was_up) cu.global_cleanup();
  if (done) done(ud);
}
