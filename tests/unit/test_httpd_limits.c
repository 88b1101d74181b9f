/* test_httpd_limits.c -- the HTTP server's listen-address parser (the one
 * `check` and `run` share), IPv6 listening, the connection cap with idle
 * connections closed for room, bodies trickled to hold the cap (cut off at
 * the cap, closed at their deadline), the websockets' share of the cap,
 * and the accept back-off when the process is out of descriptors. Raw
 * client sockets, 127.0.0.1 and ::1 only. */
#include "http_server.h"
#include "log.h"
#include "rt.h"
#include "t.h"
#include "tnet.h"
#include <errno.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Runs the loop (blocking in it, as the bot does) for ms, or until done(ud)
 * is true; done is looked at every 2 ms from a timer. */
typedef struct {
  bool (*done)(void *);
  void *ud;
  uint64_t end;
  bool met;
} spin_ctx;

static void spin_tick(uv_timer_t *t) {
  spin_ctx *c = t->data;
  if (c->done && c->done(c->ud)) c->met = true;
  if (c->met || now_ms() >= c->end) uv_stop(t->loop);
}

static bool spin(uv_loop_t *loop, int ms, bool (*done)(void *), void *ud) {
  spin_ctx c = {done, ud, now_ms() + (uint64_t)ms, false};
  uv_timer_t t;
  uv_timer_init(loop, &t);
  t.data = &c;
  uv_timer_start(&t, spin_tick, 2, 2);
  uv_run(loop, UV_RUN_DEFAULT);
  uv_close((uv_handle_t *)&t, NULL);
  uv_run(loop, UV_RUN_NOWAIT);
  return done ? c.met || done(ud) : true;
}

static void on_ok(void *ud, rt_httpd_req *req) {
  rt_httpd_respond(req, 200, "text/plain", "ok", 2);
}

static void on_closed(void *ud) { (*(int *)ud)++; }

static void close_server(uv_loop_t *loop, rt_httpd *s) {
  int closed = 0;
  rt_httpd_close(s, on_closed, &closed);
  uv_run(loop, UV_RUN_DEFAULT);
  CHECK_INT(closed, 1);
}

typedef struct {
  int fd;
  char buf[512];
  size_t len;
} reader;

static bool got_status(void *ud) {
  reader *r = ud;
  ssize_t n = recv(r->fd, r->buf + r->len, sizeof r->buf - 1 - r->len, 0);
  if (n > 0) r->len += (size_t)n;
  r->buf[r->len] = '\0';
  /* the whole reply: headers and the 2-byte body of on_ok (or an error) */
  return strstr(r->buf, "\r\n\r\nok") != NULL || strstr(r->buf, "\r\n\r\n{") != NULL;
}

static const char GET[] = "GET /x HTTP/1.1\r\nHost: t\r\n\r\n";

/* Sends a whole GET on fd once it is connected; true if "200" came back. */
static bool request_ok(uv_loop_t *loop, int fd) {
  uint64_t end = now_ms() + 2000;
  while (send(fd, GET, sizeof GET - 1, MSG_NOSIGNAL) < 0 && now_ms() < end) {
    if (errno != EAGAIN && errno != ENOTCONN) return false;
    spin(loop, 5, NULL, NULL);
  }
  reader r = {.fd = fd};
  spin(loop, 3000, got_status, &r);
  return strncmp(r.buf, "HTTP/1.1 200", 12) == 0;
}

/* ---- the listen parser ---------------------------------------------------------- */

static const struct { const char *in; const char *why; } listen_cases[] = {
  {"127.0.0.1:8080", NULL},
  {":8080", NULL},
  {"8080", NULL},
  {"*:80", NULL},
  {"0.0.0.0:0", NULL},
  {"localhost:1", NULL},
  {"[::1]:8080", NULL},
  {"[::]:80", NULL},
  {"[2001:db8::1]:443", NULL},
  {"[::ffff:127.0.0.1]:80", NULL},
  {"127.0.0.1:65535", NULL},
  {"", "expected IPv4:PORT, [IPv6]:PORT, :PORT or PORT"},
  {":", "expected IPv4:PORT, [IPv6]:PORT, :PORT or PORT"},
  {"127.0.0.1:", "expected IPv4:PORT, [IPv6]:PORT, :PORT or PORT"},
  {"127.0.0.1:65536", "port must be 0..65535"},
  {"127.0.0.1:123456", "expected IPv4:PORT, [IPv6]:PORT, :PORT or PORT"},
  {"127.0.0.1:http", "expected IPv4:PORT, [IPv6]:PORT, :PORT or PORT"},
  {"::1:8080", "an IPv6 address goes in brackets, like [::1]:8080"},
  {"[::1]", "expected IPv4:PORT, [IPv6]:PORT, :PORT or PORT"},
  {"[::1:8080", "expected IPv4:PORT, [IPv6]:PORT, :PORT or PORT"},
  {"[]:80", "expected IPv4:PORT, [IPv6]:PORT, :PORT or PORT"},
  {"[1.2.3.4]:80", "not an IPv6 address in the brackets"},
  {"[fe80::1%lo]:80", "not an IPv6 address in the brackets"},
  {"999.1.1.1:80", "expected IPv4:PORT, [IPv6]:PORT, :PORT or PORT"},
  {"example.com:80", "expected IPv4:PORT, [IPv6]:PORT, :PORT or PORT"},
};

/* check_listen and start give the same verdict and the same message. */
T(listen_parser) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  for (size_t i = 0; i < RT_ARRAY_LEN(listen_cases); i++) {
    const char *in = listen_cases[i].in, *why = listen_cases[i].why;
    char *err = NULL;
    int rc = rt_httpd_check_listen(in, &err);
    if ((rc == RT_OK) != (why == NULL)) fprintf(stderr, "  case \"%s\"\n", in);
    CHECK_INT(rc, why ? RT_EINVAL : RT_OK);
    if (why) {
      char want[256];
      snprintf(want, sizeof want, "cannot listen on %s: %s", in, why);
      CHECK_STR(err, want);
      rt_httpd *s = (rt_httpd *)1;
      char *err2 = NULL;
      CHECK_INT(rt_httpd_new(&loop, in, &s, &err2), RT_EINVAL);
      CHECK(s == NULL);
      CHECK_STR(err2, want);
      free(err2);
    } else {
      CHECK(err == NULL);
    }
    free(err);
  }
  char *err = NULL;
  CHECK_INT(rt_httpd_check_listen(NULL, &err), RT_EINVAL);
  CHECK(err && strstr(err, "cannot listen on (null)"));
  free(err);
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK_INT(uv_loop_close(&loop), 0);
}

/* ---- IPv6 ------------------------------------------------------------------------- */

T(listen_ipv6) {
  int probe = socket(AF_INET6, SOCK_STREAM, 0);
  struct sockaddr_in6 sa = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
  bool have = probe >= 0 && bind(probe, (struct sockaddr *)&sa, sizeof sa) == 0;
  if (probe >= 0) close(probe);
  if (!have) {
    fprintf(stderr, "  skip: no IPv6 loopback (::1)\n");
    return;
  }
  uv_loop_t loop;
  uv_loop_init(&loop);
  rt_httpd *s = NULL;
  char *err = NULL;
  CHECK_INT(rt_httpd_new(&loop, "[::1]:0", &s, &err), RT_OK);
  if (err) fprintf(stderr, "  %s\n", err);
  free(err);
  if (!s) return;
  rt_httpd_route(s, NULL, "/*", on_ok, NULL);
  int port = rt_httpd_port(s);
  CHECK(port > 0);
  int fd = socket(AF_INET6, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  sa.sin6_port = htons((uint16_t)port);
  CHECK(connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0 || errno == EINPROGRESS);
  CHECK(request_ok(&loop, fd));
  close(fd);
  /* and it is IPv6 only: nothing answers on 127.0.0.1 at that port */
  int fd4 = client4(port);
  spin(&loop, 100, NULL, NULL);
  char c;
  CHECK(fd4 < 0 || recv(fd4, &c, 1, 0) <= 0);
  if (fd4 >= 0) close(fd4);
  close_server(&loop, s);
  CHECK_INT(uv_loop_close(&loop), 0);
}

/* ---- the cap ------------------------------------------------------------------------ */

static bool at_most(void *ud) {
  void **a = ud;
  return rt_httpd_connections(a[0]) <= *(int *)a[1];
}

T(cap_closes_idle_for_room) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  rt_httpd *s = NULL;
  char *err = NULL;
  rt_httpd_opts o = {.listen = "127.0.0.1:0", .max_connections = 4};
  CHECK_INT(rt_httpd_start(&loop, &o, &s, &err), RT_OK);
  free(err);
  if (!s) return;
  rt_httpd_route(s, NULL, "/*", on_ok, NULL);
  CHECK_INT(rt_httpd_max_connections(s), 4);
  int port = rt_httpd_port(s);
  int idle[12];
  for (size_t i = 0; i < RT_ARRAY_LEN(idle); i++) {
    idle[i] = client4(port);
    CHECK(idle[i] >= 0);
  }
  spin(&loop, 200, NULL, NULL);
  for (size_t i = 0; i < RT_ARRAY_LEN(idle); i++)
    if (idle[i] >= 0) send(idle[i], "GET / HTTP/1.1\r\n", 16, MSG_NOSIGNAL);
  int four = 4;
  void *a[2] = {s, &four};
  spin(&loop, 300, NULL, NULL);
  CHECK(spin(&loop, 1000, at_most, a));
  CHECK(rt_httpd_connections(s) <= 4);
  /* the idle ones do not lock out a real request */
  int fd = client4(port);
  CHECK(request_ok(&loop, fd));
  /* keep-alive: the same connection serves another */
  CHECK(request_ok(&loop, fd));
  close(fd);
  CHECK(rt_httpd_connections(s) <= 4);
  for (size_t i = 0; i < RT_ARRAY_LEN(idle); i++)
    if (idle[i] >= 0) close(idle[i]);
  int zero = 0;
  void *b[2] = {s, &zero};
  CHECK(spin(&loop, 2000, at_most, b));
  close_server(&loop, s);
  CHECK_INT(uv_loop_close(&loop), 0);
}

/* The cap is lowered to fit the open-files limit, with room to spare. */
T(cap_fits_the_fd_limit) {
  struct rlimit old;
  getrlimit(RLIMIT_NOFILE, &old);
  struct rlimit low = {128, old.rlim_max};
  CHECK_INT(setrlimit(RLIMIT_NOFILE, &low), 0);
  uv_loop_t loop;
  uv_loop_init(&loop);
  rt_httpd *s = NULL;
  char *err = NULL;
  rt_httpd_opts o = {.listen = "127.0.0.1:0", .max_connections = 1000};
  CHECK_INT(rt_httpd_start(&loop, &o, &s, &err), RT_OK);
  free(err);
  struct rlimit now;
  getrlimit(RLIMIT_NOFILE, &now);
  if (s) {
    /* raised toward the hard limit when it allows, else lowered cap */
    int cap = rt_httpd_max_connections(s);
    CHECK(cap >= 1);
    CHECK(now.rlim_cur == RLIM_INFINITY || (rlim_t)cap + 64 <= now.rlim_cur);
    if (old.rlim_max == RLIM_INFINITY || old.rlim_max >= 1000 + 80) CHECK_INT(cap, 1000);
    close_server(&loop, s);
  }
  CHECK_INT(uv_loop_close(&loop), 0);
  setrlimit(RLIMIT_NOFILE, &old);
}

/* ---- bodies trickled, websockets held ----------------------------------------------- */

/* Reads what fd has now into buf (NUL-terminated, at most cap - 1 bytes in
 * all); true once the peer has closed or reset the connection. */
static bool drained_closed(int fd, char *buf, size_t cap, size_t *len) {
  for (;;) {
    ssize_t n = recv(fd, buf + *len, cap - 1 - *len, MSG_DONTWAIT);
    if (n > 0) {
      *len += (size_t)n;
      buf[*len] = '\0';
      if (*len + 1 < cap) continue;
      return false;
    }
    return n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK);
  }
}

#define NTRICKLE 8

typedef struct {
  int fd[NTRICKLE];
  bool closed[NTRICKLE];
  char got[NTRICKLE][256];
  size_t got_len[NTRICKLE];
  uint64_t next_byte;
} tricklers;

/* One more body byte to every open trickler every 300 ms (well inside
 * lws's 5 s stall timer), and notes which ones the server closed. */
static void trickle_step(tricklers *t) {
  bool send_now = now_ms() >= t->next_byte;
  if (send_now) t->next_byte = now_ms() + 300;
  for (int i = 0; i < NTRICKLE; i++) {
    if (t->closed[i]) continue;
    if (drained_closed(t->fd[i], t->got[i], sizeof t->got[i], &t->got_len[i])) {
      t->closed[i] = true;
      continue;
    }
    if (send_now) (void)send(t->fd[i], "x", 1, MSG_NOSIGNAL | MSG_DONTWAIT);
  }
}

static int trickle_closed(const tricklers *t) {
  int n = 0;
  for (int i = 0; i < NTRICKLE; i++) n += t->closed[i];
  return n;
}

static bool trickle_all_closed(void *ud) {
  tricklers *t = ud;
  trickle_step(t);
  return trickle_closed(t) == NTRICKLE;
}

static bool trickle_full(void *ud) {
  void **a = ud;
  trickle_step(a[1]);
  return rt_httpd_connections(a[0]) >= NTRICKLE;
}

typedef struct {
  reader r;
  tricklers *t;
} reader_trickle;

static bool got_status_trickling(void *ud) {
  reader_trickle *rt = ud;
  trickle_step(rt->t);
  return got_status(&rt->r);
}

/* The cap filled with POSTs whose 1000-byte bodies come one byte at a
 * time (to a path with no route, so only the server's framing reads
 * them): a new request still gets in at once (the body read longest is
 * cut off, 503), and the rest are closed when body_timeout_s is up (408),
 * though every byte came well inside lws's stall timer. */
T(trickled_bodies_do_not_lock_out) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  rt_httpd *s = NULL;
  char *err = NULL;
  rt_httpd_opts o = {.listen = "127.0.0.1:0", .max_connections = NTRICKLE,
                     .body_timeout_s = 2};
  CHECK_INT(rt_httpd_start(&loop, &o, &s, &err), RT_OK);
  free(err);
  if (!s) return;
  rt_httpd_route(s, "GET", "/x", on_ok, NULL);
  int port = rt_httpd_port(s);
  static tricklers t;
  memset(&t, 0, sizeof t);
  for (int i = 0; i < NTRICKLE; i++) {
    t.fd[i] = client4(port);
    CHECK(t.fd[i] >= 0);
  }
  spin(&loop, 100, NULL, NULL);
  static const char post[] = "POST /nope HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\nx";
  for (int i = 0; i < NTRICKLE; i++)
    CHECK(send(t.fd[i], post, sizeof post - 1, MSG_NOSIGNAL) == (ssize_t)(sizeof post - 1));
  void *a[2] = {s, &t};
  CHECK(spin(&loop, 1000, trickle_full, a));
  spin(&loop, 200, NULL, NULL);
  CHECK_INT(rt_httpd_connections(s), NTRICKLE);
  CHECK_INT(trickle_closed(&t), 0);
  uint64_t tmo = 0, ev = 0;

  /* a GET gets in within a second */
  uint64_t t0 = now_ms();
  int fd = client4(port);
  reader_trickle rt = {.r = {.fd = fd}, .t = &t};
  uint64_t end = now_ms() + 1000;
  while (send(fd, GET, sizeof GET - 1, MSG_NOSIGNAL) < 0 && now_ms() < end) {
    CHECK(errno == EAGAIN || errno == ENOTCONN);
    spin(&loop, 5, NULL, NULL);
  }
  CHECK(spin(&loop, 1000, got_status_trickling, &rt));
  fprintf(stderr, "  GET answered in %llu ms at the cap\n", (unsigned long long)(now_ms() - t0));
  CHECK(strncmp(rt.r.buf, "HTTP/1.1 200", 12) == 0);
  close(fd);
  rt_httpd_body_stats(s, &tmo, &ev);
  CHECK(ev >= 1);
  CHECK_INT((int)tmo, 0);
  CHECK(trickle_closed(&t) >= 1);
  bool saw503 = false;
  for (int i = 0; i < NTRICKLE; i++)
    if (t.closed[i] && strncmp(t.got[i], "HTTP/1.1 503", 12) == 0) saw503 = true;
  CHECK(saw503);

  /* the others: 408 and closed at the deadline (2 s after their headers) */
  t0 = now_ms();
  CHECK(spin(&loop, 3000, trickle_all_closed, &t));
  fprintf(stderr, "  tricklers all closed %llu ms later\n", (unsigned long long)(now_ms() - t0));
  rt_httpd_body_stats(s, &tmo, &ev);
  CHECK(tmo >= 1);
  CHECK_INT((int)(tmo + ev), NTRICKLE);
  int n408 = 0;
  for (int i = 0; i < NTRICKLE; i++) n408 += strncmp(t.got[i], "HTTP/1.1 408", 12) == 0;
  CHECK(n408 >= 1);
  for (int i = 0; i < NTRICKLE; i++) close(t.fd[i]);
  int zero = 0;
  void *b[2] = {s, &zero};
  CHECK(spin(&loop, 2000, at_most, b));
  close_server(&loop, s);
  CHECK_INT(uv_loop_close(&loop), 0);
}

static const char WS_UPGRADE[] =
  "GET /ws HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

static bool got_head(void *ud) {
  reader *r = ud;
  ssize_t n = recv(r->fd, r->buf + r->len, sizeof r->buf - 1 - r->len, 0);
  if (n > 0) r->len += (size_t)n;
  r->buf[r->len] = '\0';
  return strstr(r->buf, "\r\n\r\n") != NULL;
}

/* The status line of the answer to an upgrade sent on a new connection. */
static void ws_try(uv_loop_t *loop, int port, int *fd, char *status, size_t cap) {
  *fd = client4(port);
  uint64_t end = now_ms() + 2000;
  while (send(*fd, WS_UPGRADE, sizeof WS_UPGRADE - 1, MSG_NOSIGNAL) < 0 && now_ms() < end) {
    if (errno != EAGAIN && errno != ENOTCONN) break;
    spin(loop, 5, NULL, NULL);
  }
  reader r = {.fd = *fd};
  spin(loop, 2000, got_head, &r);
  snprintf(status, cap, "%.12s", r.buf);
}

/* Websockets stay open (the web chat's do, answering pings): they may
 * take half the cap by default; the next upgrade gets 503 and plain
 * requests still get in; one closing makes room for another. */
T(websockets_leave_room_for_http) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  rt_httpd *s = NULL;
  char *err = NULL;
  rt_httpd_opts o = {.listen = "127.0.0.1:0", .max_connections = 8};
  CHECK_INT(rt_httpd_start(&loop, &o, &s, &err), RT_OK);
  free(err);
  if (!s) return;
  rt_httpd_route(s, "GET", "/x", on_ok, NULL);
  rt_httpd_ws_callbacks cb = {0};
  rt_httpd_ws_route(s, "/ws", &cb, NULL);
  CHECK_INT(rt_httpd_ws_max_connections(s), 4);
  int port = rt_httpd_port(s);
  int ws[4];
  char st[16];
  for (int i = 0; i < 4; i++) {
    ws_try(&loop, port, &ws[i], st, sizeof st);
    CHECK_STR(st, "HTTP/1.1 101");
  }
  CHECK_INT(rt_httpd_ws_connections(s), 4);
  int extra;
  ws_try(&loop, port, &extra, st, sizeof st);
  CHECK_STR(st + 9, "503"); /* lws answers a refused upgrade as HTTP/1.0 */
  close(extra);
  CHECK_INT(rt_httpd_ws_connections(s), 4);
  /* plain HTTP: several at once, each answered */
  int h[3];
  for (int i = 0; i < 3; i++) h[i] = client4(port);
  for (int i = 0; i < 3; i++) CHECK(request_ok(&loop, h[i]));
  for (int i = 0; i < 3; i++) close(h[i]);
  /* one websocket leaves: another may come */
  close(ws[0]);
  uint64_t end = now_ms() + 2000;
  while (rt_httpd_ws_connections(s) > 3 && now_ms() < end) spin(&loop, 10, NULL, NULL);
  CHECK_INT(rt_httpd_ws_connections(s), 3);
  ws_try(&loop, port, &ws[0], st, sizeof st);
  CHECK_STR(st, "HTTP/1.1 101");
  for (int i = 0; i < 4; i++) close(ws[i]);
  int zero = 0;
  void *b[2] = {s, &zero};
  CHECK(spin(&loop, 2000, at_most, b));
  CHECK_INT(rt_httpd_ws_connections(s), 0);
  close_server(&loop, s);
  CHECK_INT(uv_loop_close(&loop), 0);
}

/* An explicit share is kept, but never the whole cap. */
T(ws_share_bounds) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  struct { int max, ws, want; } c[] = {{8, 0, 4}, {8, 2, 2}, {8, 8, 7}, {8, 100, 7}, {1, 0, 1},
                                       {3, 0, 1}};
  for (size_t i = 0; i < RT_ARRAY_LEN(c); i++) {
    rt_httpd *s = NULL;
    rt_httpd_opts o = {.listen = "127.0.0.1:0", .max_connections = c[i].max,
                       .ws_max_connections = c[i].ws};
    CHECK_INT(rt_httpd_start(&loop, &o, &s, NULL), RT_OK);
    if (!s) continue;
    CHECK_INT(rt_httpd_ws_max_connections(s), c[i].want);
    close_server(&loop, s);
  }
  CHECK_INT(uv_loop_close(&loop), 0);
}

/* ---- out of descriptors ------------------------------------------------------------ */

static double cpu_s(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static bool all_in(void *ud) {
  void **a = ud;
  return rt_httpd_connections(a[0]) >= *(int *)a[1];
}

T(emfile_backs_off) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  rt_httpd *s = NULL;
  char *err = NULL;
  rt_httpd_opts o = {.listen = "127.0.0.1:0", .max_connections = 8};
  CHECK_INT(rt_httpd_start(&loop, &o, &s, &err), RT_OK);
  free(err);
  if (!s) return;
  rt_httpd_route(s, NULL, "/*", on_ok, NULL);
  int port = rt_httpd_port(s);
  /* the clients' sockets first, then fill every free descriptor */
  int cl[4];
  for (size_t i = 0; i < RT_ARRAY_LEN(cl); i++)
    cl[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  struct rlimit old;
  getrlimit(RLIMIT_NOFILE, &old);
  struct rlimit low = {256, old.rlim_max};
  CHECK_INT(setrlimit(RLIMIT_NOFILE, &low), 0);
  static int fill[256];
  int nfill = 0;
  while (nfill < (int)RT_ARRAY_LEN(fill)) {
    int fd = dup(0);
    if (fd < 0) break;
    fill[nfill++] = fd;
  }
  CHECK(errno == EMFILE);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  for (size_t i = 0; i < RT_ARRAY_LEN(cl); i++)
    CHECK(connect(cl[i], (struct sockaddr *)&sa, sizeof sa) == 0 || errno == EINPROGRESS);
  /* accept fails with EMFILE: the server must wait, not spin */
  double c0 = cpu_s();
  uint64_t t0 = now_ms();
  spin(&loop, 1000, NULL, NULL);
  double used = cpu_s() - c0, wall = (double)(now_ms() - t0) / 1000;
  fprintf(stderr, "  cpu while out of descriptors: %.0f%% of %.2f s\n", used / wall * 100, wall);
  CHECK(used < 0.15 * wall);
  CHECK_INT(rt_httpd_connections(s), 0);
  for (int i = 0; i < nfill; i++) close(fill[i]);
  setrlimit(RLIMIT_NOFILE, &old);
  /* descriptors are back: the waiting connections are taken in */
  int four = 4;
  void *a[2] = {s, &four};
  CHECK(spin(&loop, 3000, all_in, a));
  CHECK(request_ok(&loop, cl[0]));
  for (size_t i = 0; i < RT_ARRAY_LEN(cl); i++) close(cl[i]);
  close_server(&loop, s);
  CHECK_INT(uv_loop_close(&loop), 0);
}

int main(void) {
  rt_log_set_level(RT_LOG_WARN);
  T_RUN(listen_parser);
  T_RUN(listen_ipv6);
  T_RUN(cap_closes_idle_for_room);
  T_RUN(cap_fits_the_fd_limit);
  T_RUN(trickled_bodies_do_not_lock_out);
  T_RUN(websockets_leave_room_for_http);
  T_RUN(ws_share_bounds);
  T_RUN(emfile_backs_off);
  return T_DONE();
}
