/* http_client.c -- libcurl multi on the uv loop (see http_client.h).
 *
 * curl tells us which sockets to watch (on_socket) and when to wake it up
 * (on_timer_set); we answer with uv_poll_t and uv_timer_t events that call
 * curl_multi_socket_action, and after each of those we collect finished
 * transfers. Finished requests go to a done queue first and their callbacks
 * run after the queue is filled, outside any curl call, so a callback may
 * start, cancel or close anything. */
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
  void (*easy_reset)(CURL *);
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
    SYM(easy_getinfo), SYM(easy_cleanup), SYM(easy_reset), SYM(easy_strerror), SYM(getdate),
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
 * a dozen allocations, curl_easy_reset none. */
#define EASY_POOL 64
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
  bool too_big;
  long retry_after;
  uint64_t start_ns;
  req_state state;
  rt_http_resp resp;        /* filled when the transfer finishes */
  char errbuf[CURL_ERROR_SIZE];
  rt_http_req *prev, *next; /* in h->active, or in the done queue */
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
};

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
  if (h->npool < EASY_POOL && !h->closing) h->pool[h->npool++] = e;
  else cu.easy_cleanup(e);
}

static CURL *easy_get(rt_http *h) {
  if (h->npool) {
    CURL *e = h->pool[--h->npool];
    cu.easy_reset(e);
    return e;
  }
  return cu.easy_init();
}

static void req_free(rt_http_req *r) {
  easy_put(r->h, r->easy);
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
  if (resp->err == RT_OK && r->body.s) {
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
    free(resp->body);
    resp->body = rt_xstrdup("");
    resp->body_len = 0;
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
  r->start_ns = uv_hrtime();
  timer_up(h);
  if (h->transport) return transport_request(h, r, o, out);
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
  cu.easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  cu.easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
  cu.easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
  cu.easy_setopt(e, CURLOPT_PROXY, "");
  cu.easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  cu.easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
  cu.easy_setopt(e, CURLOPT_USERAGENT, "shopbot/" RT_VERSION);
  cu.easy_setopt(e, CURLOPT_TIMEOUT_MS, o->timeout_ms > 0 ? o->timeout_ms
                                                            : DEFAULT_TIMEOUT_MS);
  cu.easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)r->max_body);
  /* curl's receive buffer is per transfer, 16 KB by default: a channel
   * with 128 sends in flight held 2 MB of them, and the pooled handles
   * keep theirs. Bot API answers are a few hundred bytes; a big body (a
   * photo) only takes more reads. */
  cu.easy_setopt(e, CURLOPT_BUFFERSIZE, RECV_BUFFER);
  cu.easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
  cu.easy_setopt(e, CURLOPT_WRITEDATA, r);
  cu.easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
  cu.easy_setopt(e, CURLOPT_HEADERDATA, r);
  /* Kept by curl on the connection this transfer opens, so it is called
   * whoever closes the connection later (the cache, rt_http_close). */
  cu.easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, on_open_socket);
  cu.easy_setopt(e, CURLOPT_OPENSOCKETDATA, h);
  cu.easy_setopt(e, CURLOPT_CLOSESOCKETFUNCTION, on_close_socket);
  cu.easy_setopt(e, CURLOPT_CLOSESOCKETDATA, h);

  if (strcmp(method, "HEAD") == 0) {
    cu.easy_setopt(e, CURLOPT_NOBODY, 1L);
  } else if (o->body || strcmp(method, "POST") == 0) {
    r->req_body = rt_xmalloc(o->body_len + 1);
    if (o->body_len) memcpy(r->req_body, o->body, o->body_len);
    r->req_body[o->body_len] = '\0';
    cu.easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)o->body_len);
    cu.easy_setopt(e, CURLOPT_POSTFIELDS, r->req_body);
    if (strcmp(method, "POST") != 0)
      cu.easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
  } else if (strcmp(method, "GET") != 0) {
    cu.easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
  }

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
    cu.multi_remove_handle(h->multi, r->easy);
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
  while (h->active) req_finish(h->active, CURLE_OK, true);
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
  free(h);
  if (curl_was_up) cu.global_cleanup();
  if (done) done(ud);
}
