/* test_httpd_framing.c -- how the HTTP server frames requests on one
 * connection: pipelined requests (with and without bodies, answered now or
 * later) each answered once and in order, Content-Length and
 * Transfer-Encoding checked so that no request can hide another
 * (RFC 9112 6.1, 6.3), HEAD's length, Expect: 100-continue, and header
 * values as a handler sees them (OWS trimmed, NULs refused). A raw client
 * socket on 127.0.0.1 writes each request in one send and reads until the
 * server closes or a time passes, while the server's loop runs. */
#include "http_server.h"
#include "log.h"
#include "rt.h"
#include "t.h"
#include "tnet.h"
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

typedef struct {
  uv_loop_t loop;
  rt_httpd *s;
  int port;
  int calls;                   /* handler calls */
  char bodies[8][64];          /* the bodies the handler got, in turn */
  char secret[64];             /* X-Secret as the handler saw it ("-": none) */
  char ctype[64];              /* Content-Type as the handler saw it */
  rt_httpd_req *held[8];       /* deferred requests, answered by a timer */
  int nheld;
  uv_timer_t later;
} env;

/* ---- handlers --------------------------------------------------------------------- */

static void note(env *e, rt_httpd_req *req) {
  size_t n;
  const unsigned char *b = rt_httpd_req_body(req, &n);
  if (e->calls < 8) snprintf(e->bodies[e->calls], sizeof e->bodies[0], "%.*s", (int)n, b);
  e->calls++;
  const char *v = rt_httpd_req_header(req, "X-Secret");
  snprintf(e->secret, sizeof e->secret, "%s", v ? v : "-");
  v = rt_httpd_req_header(req, "Content-Type");
  snprintf(e->ctype, sizeof e->ctype, "%s", v ? v : "-");
}

/* Answers with "<method> <body>" at once. */
static void h_now(void *ud, rt_httpd_req *req) {
  env *e = ud;
  note(e, req);
  size_t n;
  const unsigned char *b = rt_httpd_req_body(req, &n);
  char *out = rt_xasprintf("%s %.*s", rt_httpd_req_method(req), (int)n, b);
  rt_httpd_respond(req, 200, "text/plain", out, strlen(out));
  free(out);
}

static void on_later(uv_timer_t *t) {
  env *e = t->data;
  for (int i = 0; i < e->nheld; i++) {
    size_t n;
    const unsigned char *b = rt_httpd_req_body(e->held[i], &n);
    char *out = rt_xasprintf("later %.*s", (int)n, b);
    rt_httpd_respond(e->held[i], 200, "text/plain", out, strlen(out));
    free(out);
  }
  e->nheld = 0;
}

/* Answers 50 ms later, as a webhook does after its commit. */
static void h_later(void *ud, rt_httpd_req *req) {
  env *e = ud;
  note(e, req);
  if (e->nheld < 8) e->held[e->nheld++] = req;
  uv_timer_start(&e->later, on_later, 50, 0);
}

static void env_init(env *e, const rt_httpd_opts *o) {
  memset(e, 0, sizeof *e);
  uv_loop_init(&e->loop);
  uv_timer_init(&e->loop, &e->later);
  e->later.data = e;
  rt_httpd_opts d = {.listen = "127.0.0.1:0"};
  char *err = NULL;
  CHECK_INT(rt_httpd_start(&e->loop, o ? o : &d, &e->s, &err), RT_OK);
  if (err) fprintf(stderr, "  %s\n", err);
  free(err);
  e->port = rt_httpd_port(e->s);
  rt_httpd_route(e->s, NULL, "/now", h_now, e);
  rt_httpd_route(e->s, NULL, "/later", h_later, e);
}

static void on_closed(void *ud) { (*(int *)ud)++; }

static void env_done(env *e) {
  int closed = 0;
  uv_close((uv_handle_t *)&e->later, NULL);
  rt_httpd_close(e->s, on_closed, &closed);
  uv_run(&e->loop, UV_RUN_DEFAULT);
  CHECK_INT(closed, 1);
  CHECK_INT(uv_loop_close(&e->loop), 0);
}

/* ---- a raw client ------------------------------------------------------------------ */

static void stop_loop(uv_timer_t *t) { uv_stop(t->loop); }

/* Runs the loop for about ms (a timer stops it). */
static void serve(env *e, int ms) {
  uv_timer_t t;
  uv_timer_init(&e->loop, &t);
  uv_timer_start(&t, stop_loop, (uint64_t)ms, 0);
  uv_run(&e->loop, UV_RUN_DEFAULT);
  uv_close((uv_handle_t *)&t, NULL);
  uv_run(&e->loop, UV_RUN_NOWAIT);
}

typedef struct {
  char buf[65536];
  size_t len;
  bool eof;                    /* the server closed */
  uint64_t first_ms;           /* when the first byte came, after the send */
} reply;

/* Reads what fd has into r, serving between reads, until the server closes
 * or ms pass, or (until != NULL) until that text has come. */
static void collect(env *e, int fd, reply *r, int ms, const char *until) {
  uint64_t t0 = now_ms(), end = t0 + (uint64_t)ms;
  while (!r->eof && now_ms() < end) {
    serve(e, 2);
    for (;;) {
      ssize_t n = recv(fd, r->buf + r->len, sizeof r->buf - 1 - r->len, 0);
      if (n > 0) {
        if (!r->len) r->first_ms = now_ms() - t0;
        r->len += (size_t)n;
        r->buf[r->len] = '\0';
        continue;
      }
      if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) r->eof = true;
      break;
    }
    if (until && strstr(r->buf, until)) break;
  }
}

/* Sends len bytes of req in one write on a new connection, then reads
 * for up to ms (or until the server closes). Returns the fd, still open. */
static int exchange(env *e, const char *req, size_t len, reply *r, int ms) {
  memset(r, 0, sizeof *r);
  int fd = client4(e->port);
  CHECK(fd >= 0);
  serve(e, 5);
  uint64_t end = now_ms() + 2000;
  while (send(fd, req, len, MSG_NOSIGNAL) != (ssize_t)len && now_ms() < end) serve(e, 5);
  collect(e, fd, r, ms, NULL);
  return fd;
}

static void exchange_close(env *e, const char *req, reply *r, int ms) {
  close(exchange(e, req, strlen(req), r, ms));
}

/* How many times needle is in hay. */
static int count(const char *hay, const char *needle) {
  int n = 0;
  for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle)) n++;
  return n;
}

/* ---- framing ---------------------------------------------------------------------- */

/* A whole POST of body (a string literal of n bytes, n written out). */
#define POST(path, n, body) "POST " path " HTTP/1.1\r\nHost: t\r\nContent-Length: " #n \
  "\r\n\r\n" body

static const struct { const char *name, *req, *status; } refused[] = {
  /* the smuggling of the report: a chunked body hiding a GET /metrics */
  {"te_and_cl", "POST /now HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n"
   "Transfer-Encoding: chunked\r\n\r\n1d\r\nGET /now HTTP/1.1\r\nHost: t\r\n\r\n\r\n0\r\n\r\n",
   "HTTP/1.1 400"},
  {"te_alone", "POST /now HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
   "0\r\n\r\nGET /now HTTP/1.1\r\nHost: t\r\n\r\n", "HTTP/1.1 501"},
  {"te_on_get", "GET /now HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
   "1d\r\nGET /now HTTP/1.1\r\nHost: t\r\n\r\n\r\n0\r\n\r\n", "HTTP/1.1 501"},
  {"cl_twice_differing", "POST /now HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n"
   "Content-Length: 40\r\n\r\nabcGET /now HTTP/1.1\r\nHost: t\r\n\r\n", "HTTP/1.1 400"},
  {"cl_twice_same", "POST /now HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n"
   "Content-Length: 3\r\n\r\nabc", "HTTP/1.1 400"},
  {"cl_junk", "POST /now HTTP/1.1\r\nHost: t\r\nContent-Length: 7abc\r\n\r\n1234567", "HTTP/1.1 400"},
  {"cl_plus", "POST /now HTTP/1.1\r\nHost: t\r\nContent-Length: +7\r\n\r\n1234567", "HTTP/1.1 400"},
  {"cl_two_numbers", "POST /now HTTP/1.1\r\nHost: t\r\nContent-Length: 7 7\r\n\r\n1234567",
   "HTTP/1.1 400"},
  {"cl_list", "POST /now HTTP/1.1\r\nHost: t\r\nContent-Length: 7, 7\r\n\r\n1234567", "HTTP/1.1 400"},
  {"cl_hex", "POST /now HTTP/1.1\r\nHost: t\r\nContent-Length: 0x7\r\n\r\n1234567", "HTTP/1.1 400"},
  {"cl_negative", "POST /now HTTP/1.1\r\nHost: t\r\nContent-Length: -1\r\n\r\n", "HTTP/1.1 400"},
  {"cl_on_get_junk", "GET /now HTTP/1.1\r\nHost: t\r\nContent-Length: 3x\r\n\r\nabc", "HTTP/1.1 400"},
  {"cl_huge", "POST /now HTTP/1.1\r\nHost: t\r\nContent-Length: 99999999999999999999999\r\n\r\n",
   "HTTP/1.1 413"},
};

/* Each refused request gets one answer, the handler is not called, and the
 * connection closes: nothing after it is taken as a request. */
T(framing_refused) {
  env e;
  env_init(&e, NULL);
  for (size_t i = 0; i < RT_ARRAY_LEN(refused); i++) {
    reply r;
    e.calls = 0;
    exchange_close(&e, refused[i].req, &r, 3000);
    bool ok = strncmp(r.buf, refused[i].status, strlen(refused[i].status)) == 0 &&
              count(r.buf, "HTTP/1.1 ") == 1 && r.eof && e.calls == 0 &&
              strcasestr(r.buf, "connection: close") != NULL;
    if (!ok) fprintf(stderr, "  case %s (calls %d, eof %d):\n%s\n", refused[i].name, e.calls,
                     r.eof, r.buf);
    CHECK(ok);
  }
  /* and a plain Content-Length still works, on GET too (lws reads the body) */
  reply r;
  exchange_close(&e, POST("/now", 3, "abc"), &r, 500);
  CHECK(strncmp(r.buf, "HTTP/1.1 200", 12) == 0 && strstr(r.buf, "POST abc"));
  exchange_close(&e, "GET /now HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc", &r, 500);
  CHECK(strncmp(r.buf, "HTTP/1.1 200", 12) == 0);
  env_done(&e);
}

/* Header values as a handler sees them: trailing spaces and tabs trimmed
 * (known and other names), a value with a NUL is not there at all. */
T(header_values) {
  env e;
  env_init(&e, NULL);
  reply r;
  exchange_close(&e, "GET /now HTTP/1.1\r\nHost: t\r\nX-Secret: s3cret \t\r\n"
                     "Content-Type: text/plain  \r\n\r\n", &r, 500);
  CHECK(strncmp(r.buf, "HTTP/1.1 200", 12) == 0);
  CHECK_STR(e.secret, "s3cret");
  CHECK_STR(e.ctype, "text/plain");
  static const char nul[] = "GET /now HTTP/1.1\r\nHost: t\r\nX-Secret: s3cret\0junk\r\n\r\n";
  close(exchange(&e, nul, sizeof nul - 1, &r, 500));
  if (e.calls == 2) CHECK_STR(e.secret, "-"); /* or lws refused the request itself */
  static const char nul2[] = "GET /now HTTP/1.1\r\nHost: t\r\nContent-Type: a\0b\r\n\r\n";
  close(exchange(&e, nul2, sizeof nul2 - 1, &r, 500));
  if (e.calls == 3) CHECK_STR(e.ctype, "-");
  env_done(&e);
}

/* HEAD gets the Content-Length the GET would get, and no body. */
T(head_has_get_length) {
  env e;
  env_init(&e, NULL);
  reply r;
  exchange_close(&e, "HEAD /now HTTP/1.1\r\nHost: t\r\n\r\nGET /now HTTP/1.1\r\nHost: t\r\n\r\n",
                 &r, 1500);
  CHECK(strncmp(r.buf, "HTTP/1.1 200", 12) == 0);
  /* the GET's answer "GET " is 4 bytes; HEAD's would be 5 ("HEAD ") */
  CHECK(strcasestr(r.buf, "content-length: 5\r\n") != NULL);
  const char *second = strstr(r.buf + 1, "HTTP/1.1 200");
  CHECK(second != NULL);
  /* nothing between the HEAD's headers and the next answer */
  const char *end = strstr(r.buf, "\r\n\r\n");
  CHECK(end && end + 4 == second);
  env_done(&e);
}

int main(void) {
  rt_log_set_level(RT_LOG_WARN);
  T_RUN(framing_refused);
  T_RUN(header_values);
  T_RUN(head_has_get_length);
  return T_DONE();
}
