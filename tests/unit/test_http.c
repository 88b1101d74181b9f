/* test_http.c -- rt_http (client) against rt_httpd (server) on one loop, and
 * against fake_http (spawned; path from $FAKE_HTTP, else next to this
 * binary) for slow, dropped, oversized and rate-limited replies. Only
 * 127.0.0.1. Every test ends with both closed and uv_loop_close() == 0. */
#include "http_client.h"
#include "http_server.h"
#include "log.h"
#include "rt.h"
#include "t.h"
#include <errno.h>
#include <libgen.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

extern char **environ;

/* ---- fake_http process --------------------------------------------------------- */

static pid_t fake_pid;
static int fake_port;
static char fake_dir[64];
static char fake_log[128];

static void fake_path(char *out, size_t n) {
  const char *env = getenv("FAKE_HTTP");
  if (env && *env) {
    snprintf(out, n, "%s", env);
    return;
  }
  char self[4096];
  ssize_t k = readlink("/proc/self/exe", self, sizeof self - 1);
  self[k > 0 ? k : 0] = '\0';
  snprintf(out, n, "%s/fake_http", dirname(self));
}

static int fake_start(void) {
  snprintf(fake_dir, sizeof fake_dir, "/tmp/test_http.XXXXXX");
  if (!mkdtemp(fake_dir)) return -1;
  char script[128];
  snprintf(script, sizeof script, "%s/script.json", fake_dir);
  snprintf(fake_log, sizeof fake_log, "%s/log.jsonl", fake_dir);
  char date[64];
  time_t later = time(NULL) + 120;
  struct tm tm;
  gmtime_r(&later, &tm);
  strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
  FILE *f = fopen(script, "w");
  if (!f) return -1;
  fprintf(f,
    "[{\"method\":\"GET\",\"path\":\"/slow\",\"delay_ms\":1500,\"json\":{\"slow\":true}},\n"
    " {\"method\":\"GET\",\"path\":\"/fast\",\"json\":{\"fast\":true}},\n"
    " {\"method\":\"GET\",\"path\":\"/slow2\",\"delay_ms\":2000,\"body\":\"late\"},\n"
    " {\"method\":\"GET\",\"path\":\"/hang\",\"delay_ms\":3000,\"body\":\"late\"},\n"
    " {\"method\":\"GET\",\"path\":\"/big\",\"body_size\":100000},\n"
    " {\"method\":\"GET\",\"path\":\"/limited\",\"status\":429,"
    "\"headers\":{\"Retry-After\":\"7\"},\"json\":{\"error\":\"rate\"}},\n"
    " {\"method\":\"GET\",\"path\":\"/limited-date\",\"status\":503,"
    "\"headers\":{\"Retry-After\":\"%s\"},\"body\":\"\"},\n"
    " {\"method\":\"GET\",\"path\":\"/drop\",\"close\":true},\n"
    " {\"method\":\"GET\",\"path\":\"/once\",\"times\":1,\"body\":\"first\"},\n"
    " {\"method\":\"GET\",\"path\":\"/once\",\"status\":410,\"body\":\"gone\"},\n"
    " {\"method\":\"POST\",\"path\":\"/echo/*\",\"echo\":true}]\n", date);
  fclose(f);

  char bin[4096], portfile[128];
  fake_path(bin, sizeof bin);
  snprintf(portfile, sizeof portfile, "%s/port", fake_dir);
  int pfd[2];
  if (pipe(pfd) != 0) return -1;
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, pfd[1], 1);
  posix_spawn_file_actions_addclose(&fa, pfd[0]);
  char *argv[] = {bin, "--port", "0", "--script", script, "--log", fake_log,
                  "--port-file", portfile, "--max-seconds", "120", NULL};
  int rc = posix_spawn(&fake_pid, bin, &fa, NULL, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  close(pfd[1]);
  if (rc != 0) {
    fprintf(stderr, "cannot start %s: %s\n", bin, strerror(rc));
    close(pfd[0]);
    return -1;
  }
  char line[128];
  size_t n = 0;
  struct pollfd p = {pfd[0], POLLIN, 0};
  while (n < sizeof line - 1 && poll(&p, 1, 10000) == 1) {
    ssize_t k = read(pfd[0], line + n, 1);
    if (k <= 0 || line[n] == '\n') break;
    n++;
  }
  line[n] = '\0';
  close(pfd[0]);
  if (sscanf(line, "listening on 127.0.0.1:%d", &fake_port) != 1) {
    fprintf(stderr, "fake_http said \"%s\"\n", line);
    return -1;
  }
  FILE *pf = fopen(portfile, "r");
  int port2 = -1;
  if (!pf || fscanf(pf, "%d", &port2) != 1 || port2 != fake_port) {
    fprintf(stderr, "port file disagrees: %d\n", port2);
    if (pf) fclose(pf);
    return -1;
  }
  fclose(pf);
  return 0;
}

static int fake_stop(void) {
  int st = -1;
  if (fake_pid <= 0) return -1;
  kill(fake_pid, SIGTERM);
  waitpid(fake_pid, &st, 0);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", fake_dir);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", fake_dir);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* ---- loop helpers ---------------------------------------------------------------- */

typedef struct {
  uv_loop_t loop;
  rt_http *http;
  rt_httpd *httpd;
  int port;              /* rt_httpd's */
  int http_closed, httpd_closed;
} env;

static void noop_timer(uv_timer_t *t) {}

/* Runs the loop until *count >= want or ms pass. Returns true if reached. */
static bool run_until(env *e, const int *count, int want, int ms) {
  uv_timer_t tick;
  uv_timer_init(&e->loop, &tick);
  uv_timer_start(&tick, noop_timer, 5, 5);
  uint64_t end = uv_now(&e->loop) + (uint64_t)ms;
  while (*count < want && uv_now(&e->loop) < end) uv_run(&e->loop, UV_RUN_ONCE);
  uv_close((uv_handle_t *)&tick, NULL);
  uv_run(&e->loop, UV_RUN_NOWAIT);
  return *count >= want;
}

static void sleep_loop(env *e, int ms) {
  int never = 0;
  run_until(e, &never, 1, ms);
}

static void on_closed(void *ud) { (*(int *)ud)++; }

/* The client tests run twice: on the client's own connections (every URL
 * here is http:// to 127.0.0.1) and through curl. */
static bool use_curl;

static void env_init(env *e, bool server) {
  memset(e, 0, sizeof *e);
  uv_loop_init(&e->loop);
  e->http = rt_http_new(&e->loop);
  rt_http_set_direct(e->http, !use_curl);
  if (server) {
    char *err = NULL;
    int rc = rt_httpd_new(&e->loop, "127.0.0.1:0", &e->httpd, &err);
    CHECK_INT(rc, RT_OK);
    if (err) fprintf(stderr, "  %s\n", err);
    free(err);
    e->port = rt_httpd_port(e->httpd);
    CHECK(e->port > 0);
  }
}

/* Closes everything, then the loop must run dry by itself. */
static void env_done(env *e) {
  rt_http_close(e->http, on_closed, &e->http_closed);
  if (e->httpd) rt_httpd_close(e->httpd, on_closed, &e->httpd_closed);
  uv_run(&e->loop, UV_RUN_DEFAULT);
  CHECK_INT(e->http_closed, 1);
  if (e->httpd) CHECK_INT(e->httpd_closed, 1);
  int rc = uv_loop_close(&e->loop);
  CHECK_INT(rc, 0);
  if (rc != 0) uv_print_all_handles(&e->loop, stderr);
}

/* ---- recording client callbacks ----------------------------------------------- */

typedef struct {
  int *count;            /* shared completion counter */
  int order;             /* 1-based completion position */
  bool called;
  int status, err;
  char *body;
  size_t len;
  char *ct;
  long retry_after;
  double ms;
  char errmsg[256];
} slot;

static void on_resp(rt_http_resp *r, void *ud) {
  slot *s = ud;
  s->called = true;
  s->order = ++*s->count;
  s->status = r->status;
  s->err = r->err;
  s->body = r->body; /* taken: we free it */
  r->body = NULL;
  s->len = r->body_len;
  s->ct = r->content_type ? rt_xstrdup(r->content_type) : NULL;
  s->retry_after = r->retry_after;
  s->ms = r->total_ms;
  snprintf(s->errmsg, sizeof s->errmsg, "%s", r->errmsg);
}

static void slot_free(slot *s) {
  free(s->body);
  free(s->ct);
  s->body = s->ct = NULL;
}

static int get(env *e, int port, const char *path, long timeout_ms, size_t max_body,
               slot *s, int *count, rt_http_req **out) {
  char url[256];
  snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
  rt_http_opts o = {.method = "GET", .url = url, .timeout_ms = timeout_ms,
                    .max_body = max_body};
  memset(s, 0, sizeof *s);
  s->count = count;
  return rt_http_request(e->http, &o, on_resp, s, out);
}

/* ---- rt_httpd handlers --------------------------------------------------------------- */

typedef struct {
  int calls;
  char method[16], path[128], query[256];
  size_t body_len;
} seen;

static void h_health(void *ud, rt_httpd_req *req) {
  seen *s = ud;
  s->calls++;
  snprintf(s->path, sizeof s->path, "%s", rt_httpd_req_path(req));
  rt_httpd_respond(req, 200, "application/json", "{\"ok\":true}", 11);
}

static void h_echo(void *ud, rt_httpd_req *req) {
  seen *s = ud;
  s->calls++;
  snprintf(s->method, sizeof s->method, "%s", rt_httpd_req_method(req));
  snprintf(s->path, sizeof s->path, "%s", rt_httpd_req_path(req));
  snprintf(s->query, sizeof s->query, "%s", rt_httpd_req_query(req));
  size_t body_len;
  const unsigned char *body = rt_httpd_req_body(req, &body_len);
  s->body_len = body_len;
  rt_httpd_respond(req, 201, "text/plain", body, body_len);
}

/* ---- tests: rt_httpd through rt_http -------------------------------------------------- */

T(server_json_route) {
  env e;
  env_init(&e, true);
  seen sn = {0};
  CHECK_INT(rt_httpd_route(e.httpd, NULL, "/healthz/*", h_health, &sn), RT_OK);
  CHECK_INT(rt_httpd_route(e.httpd, NULL, "healthz", h_health, &sn), RT_EINVAL);
  int count = 0;
  slot a, b, c;
  CHECK_INT(get(&e, e.port, "/healthz", 0, 0, &a, &count, NULL), RT_OK);
  CHECK_INT(get(&e, e.port, "/healthz/deep", 0, 0, &b, &count, NULL), RT_OK);
  CHECK_INT(get(&e, e.port, "/healthzx", 0, 0, &c, &count, NULL), RT_OK);
  CHECK(!a.called); /* never from inside rt_http_request */
  CHECK(run_until(&e, &count, 3, 5000));
  CHECK_INT(a.err, RT_OK);
  CHECK_INT(a.status, 200);
  CHECK_STR(a.body, "{\"ok\":true}");
  CHECK_STR(a.ct, "application/json");
  CHECK_INT(a.retry_after, -1);
  CHECK_INT(b.status, 200);
  CHECK_INT(c.status, 404);
  CHECK_STR(c.body, "{\"error\":\"not found\"}");
  CHECK_INT(sn.calls, 2);
  CHECK_INT(rt_http_inflight(e.http), 0);
  slot_free(&a), slot_free(&b), slot_free(&c);
  env_done(&e);
}

T(server_post_echo) {
  env e;
  env_init(&e, true);
  seen sn = {0};
  rt_httpd_route(e.httpd, NULL, "/echo/*", h_echo, &sn);
  char url[128];
  snprintf(url, sizeof url, "http://127.0.0.1:%d/echo/x?a=1&b=x%%20y&c", e.port);
  const char *hdrs[] = {"Content-Type: application/json", NULL};
  const char *json = "{\"order\":42,\"items\":[1,2,3]}";
  rt_http_opts o = {.method = "POST", .url = url, .body = json,
                    .body_len = strlen(json), .headers = hdrs};
  int count = 0;
  slot s = {.count = &count};
  CHECK_INT(rt_http_request(e.http, &o, on_resp, &s, NULL), RT_OK);
  CHECK(run_until(&e, &count, 1, 5000));
  CHECK_INT(s.err, RT_OK);
  CHECK_INT(s.status, 201);
  CHECK_STR(s.body, json);
  CHECK_STR(s.ct, "text/plain");
  CHECK_STR(sn.method, "POST");
  CHECK_STR(sn.path, "/echo/x");
  CHECK_STR(sn.query, "a=1&b=x%20y&c");
  slot_free(&s);

  /* an empty POST and a PUT reach the handler too */
  rt_http_opts o2 = {.method = "POST", .url = url};
  slot s2 = {.count = &count};
  rt_http_opts o3 = {.method = "PUT", .url = url, .body = "x", .body_len = 1};
  slot s3 = {.count = &count};
  CHECK_INT(rt_http_request(e.http, &o2, on_resp, &s2, NULL), RT_OK);
  CHECK_INT(rt_http_request(e.http, &o3, on_resp, &s3, NULL), RT_OK);
  CHECK(run_until(&e, &count, 3, 5000));
  CHECK_INT(s2.status, 201);
  CHECK_INT(s2.len, 0);
  CHECK_INT(s3.status, 201);
  CHECK_STR(s3.body, "x");
  CHECK_STR(sn.method, "PUT");
  slot_free(&s2), slot_free(&s3);
  env_done(&e);
}

/* Handles are pooled with their options: one after the other on the same
 * handle, each request goes with its own method and body, none of the
 * previous one's (a POST's body after it, a HEAD's no-body). */
T(server_methods_in_turn) {
  env e;
  env_init(&e, true);
  seen sn = {0};
  rt_httpd_route(e.httpd, NULL, "/echo/*", h_echo, &sn);
  char url[128];
  snprintf(url, sizeof url, "http://127.0.0.1:%d/echo/m", e.port);
  static const struct { const char *method, *body, *want_method, *want_body; } seq[] = {
      {"POST", "abc", "POST", "abc"}, {"GET", NULL, "GET", ""},   {"HEAD", NULL, "HEAD", ""},
      {"GET", NULL, "GET", ""},       {"PUT", "p", "PUT", "p"},   {"DELETE", NULL, "DELETE", ""},
      {NULL, NULL, "GET", ""},        {"HEAD", NULL, "HEAD", ""}, {"POST", NULL, "POST", ""},
      {"PATCH", "q", "PATCH", "q"},   {"GET", NULL, "GET", ""},
  };
  int count = 0;
  for (size_t i = 0; i < sizeof seq / sizeof seq[0]; i++) {
    rt_http_opts o = {.method = seq[i].method, .url = url, .body = seq[i].body,
                      .body_len = seq[i].body ? strlen(seq[i].body) : 0};
    slot s = {.count = &count};
    CHECK_INT(rt_http_request(e.http, &o, on_resp, &s, NULL), RT_OK);
    CHECK(run_until(&e, &count, (int)i + 1, 5000));
    CHECK_INT(s.err, RT_OK);
    CHECK_STR(sn.method, seq[i].want_method);
    bool head = strcmp(seq[i].want_method, "HEAD") == 0;
    CHECK_INT(s.status, 201);
    /* the echo answers with the body it got; a HEAD's answer has none */
    if (!head) CHECK_STR(s.body, seq[i].want_body);
    else CHECK_INT(s.len, 0);
    slot_free(&s);
  }
  env_done(&e);
}

T(server_body_limit) {
  env e;
  env_init(&e, true);
  seen sn = {0};
  rt_httpd_route(e.httpd, NULL, "/*", h_echo, &sn);
  size_t n = RT_HTTPD_MAX_BODY;
  char *big = rt_xmalloc(n + 1);
  memset(big, 'a', n + 1);
  char url[128];
  snprintf(url, sizeof url, "http://127.0.0.1:%d/up", e.port);
  rt_http_opts ok = {.method = "POST", .url = url, .body = big, .body_len = n};
  rt_http_opts over = {.method = "POST", .url = url, .body = big, .body_len = n + 1};
  int count = 0;
  slot a = {.count = &count}, b = {.count = &count};
  CHECK_INT(rt_http_request(e.http, &ok, on_resp, &a, NULL), RT_OK);
  CHECK_INT(rt_http_request(e.http, &over, on_resp, &b, NULL), RT_OK);
  CHECK(run_until(&e, &count, 2, 10000));
  CHECK_INT(a.status, 201);
  CHECK_INT(a.len, n);
  CHECK_INT(b.err, RT_OK);
  CHECK_INT(b.status, 413);
  CHECK_INT(sn.calls, 1);
  free(big);
  slot_free(&a), slot_free(&b);
  env_done(&e);
}

T(server_many_connections) {
  env e;
  env_init(&e, true);
  seen sn = {0};
  rt_httpd_route(e.httpd, NULL, "/healthz", h_health, &sn);
  enum { N = 40 };
  static slot s[N];
  int count = 0;
  for (int i = 0; i < N; i++)
    CHECK_INT(get(&e, e.port, "/healthz", 0, 0, &s[i], &count, NULL), RT_OK);
  CHECK_INT(rt_http_inflight(e.http), N);
  CHECK(run_until(&e, &count, N, 10000));
  int ok = 0;
  for (int i = 0; i < N; i++) {
    ok += s[i].status == 200;
    slot_free(&s[i]);
  }
  CHECK_INT(ok, N);
  /* a second round reuses kept-alive connections */
  for (int i = 0; i < N; i++) get(&e, e.port, "/healthz", 0, 0, &s[i], &count, NULL);
  count = 0;
  CHECK(run_until(&e, &count, N, 10000));
  for (int i = 0; i < N; i++) slot_free(&s[i]);
  CHECK_INT(sn.calls, 2 * N);
  env_done(&e);
}

T(server_port_in_use) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  uv_tcp_t busy;
  uv_tcp_init(&loop, &busy);
  struct sockaddr_in sa;
  uv_ip4_addr("127.0.0.1", 0, &sa);
  CHECK_INT(uv_tcp_bind(&busy, (const struct sockaddr *)&sa, 0), 0);
  CHECK_INT(uv_listen((uv_stream_t *)&busy, 8, NULL), 0);
  struct sockaddr_in bound;
  int blen = sizeof bound;
  uv_tcp_getsockname(&busy, (struct sockaddr *)&bound, &blen);
  char listen[64];
  snprintf(listen, sizeof listen, "127.0.0.1:%d", ntohs(bound.sin_port));

  rt_httpd *s = (rt_httpd *)1;
  char *err = NULL;
  CHECK_INT(rt_httpd_new(&loop, listen, &s, &err), RT_ENET);
  CHECK(s == NULL);
  char want[128];
  snprintf(want, sizeof want, "cannot listen on %s: address in use", listen);
  CHECK_STR(err, want);
  free(err);
  err = NULL;
  CHECK_INT(rt_httpd_new(&loop, "127.0.0.1:http", &s, &err), RT_EINVAL);
  CHECK(err && strstr(err, "cannot listen on 127.0.0.1:http"));
  free(err);
  err = NULL;
  CHECK_INT(rt_httpd_new(&loop, "no.such.host:80", &s, &err), RT_EINVAL);
  free(err);

  uv_close((uv_handle_t *)&busy, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK_INT(uv_loop_close(&loop), 0);
}

/* A raw HTTP exchange over a uv_tcp_t on the same loop: writes req, reads
 * until the server closes the connection. */
typedef struct {
  uv_tcp_t tcp;
  uv_connect_t conn;
  uv_write_t w;
  const char *req;
  char buf[65536];
  size_t len;
  int done;
} raw_conn;

static void raw_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b) {
  raw_conn *r = h->data;
  *b = uv_buf_init(r->buf + r->len, (unsigned)(sizeof r->buf - 1 - r->len));
}
static void raw_closed(uv_handle_t *h) { ((raw_conn *)h->data)->done = 1; }
static void raw_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b) {
  raw_conn *r = st->data;
  if (n > 0) r->len += (size_t)n, r->buf[r->len] = '\0';
  if (n < 0 || r->len == sizeof r->buf - 1) uv_close((uv_handle_t *)st, raw_closed);
}
static void raw_written(uv_write_t *w, int status) {}
static void raw_connected(uv_connect_t *c, int status) {
  raw_conn *r = c->data;
  if (status < 0) { uv_close((uv_handle_t *)&r->tcp, raw_closed); return; }
  uv_buf_t b = uv_buf_init((char *)r->req, (unsigned)strlen(r->req));
  uv_write(&r->w, (uv_stream_t *)&r->tcp, &b, 1, raw_written);
  uv_read_start((uv_stream_t *)&r->tcp, raw_alloc, raw_read);
}

static const char *raw_http(env *e, raw_conn *r, const char *req) {
  memset(r, 0, sizeof *r);
  r->req = req;
  uv_tcp_init(&e->loop, &r->tcp);
  r->tcp.data = r->conn.data = r;
  struct sockaddr_in sa;
  uv_ip4_addr("127.0.0.1", e->port, &sa);
  uv_tcp_connect(&r->conn, &r->tcp, (const struct sockaddr *)&sa, raw_connected);
  if (!run_until(e, &r->done, 1, 5000)) {
    uv_close((uv_handle_t *)&r->tcp, raw_closed);
    run_until(e, &r->done, 1, 1000);
  }
  return r->buf;
}

T(server_raw_requests) {
  env e;
  env_init(&e, true);
  seen sn = {0}, en = {0};
  rt_httpd_route(e.httpd, NULL, "/healthz", h_health, &sn);
  rt_httpd_route(e.httpd, NULL, "/echo/*", h_echo, &en);
  static raw_conn r;
  const char *out;
  out = raw_http(&e, &r, "POST /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  CHECK(strncmp(out, "HTTP/1.1 411", 12) == 0);
  out = raw_http(&e, &r, "GET /healthz HTTP/1.0\r\n\r\n");
  CHECK(strncmp(out, "HTTP/1.0 200", 12) == 0 || strncmp(out, "HTTP/1.1 200", 12) == 0);
  CHECK(strstr(out, "\r\n\r\n{\"ok\":true}") != NULL);
  out = raw_http(&e, &r, "HEAD /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  CHECK(strncmp(out, "HTTP/1.1 200", 12) == 0);
  CHECK(strstr(out, "{\"ok\"") == NULL);
  /* pipelined: lws 4.1 may drop the connection after the first reply when
   * a request with a body is pipelined, but must never hang the loop */
  out = raw_http(&e, &r, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
                         "POST /echo?k=v HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
                         "GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  CHECK(strncmp(out, "HTTP/1.1 200", 12) == 0);
  CHECK(r.done);
  out = raw_http(&e, &r, "POST /echo?k=v HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
                         "GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  CHECK(strncmp(out, "HTTP/1.1 201", 12) == 0);
  CHECK(strstr(out, "\r\n\r\nabc") != NULL);
  CHECK(r.done);
  CHECK_STR(en.query, "k=v");
  out = raw_http(&e, &r, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
                         "GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  const char *second = strstr(out, "HTTP/1.1 404");
  CHECK(strncmp(out, "HTTP/1.1 200", 12) == 0);
  CHECK(second && strstr(second, "{\"error\":\"not found\"}"));
  out = raw_http(&e, &r, "GET /a/../healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  CHECK(strncmp(out, "HTTP/1.1 200", 12) == 0);
  CHECK_STR(sn.path, "/healthz");
  env_done(&e);
}

static void h_large(void *ud, rt_httpd_req *req) {
  size_t n = 3u << 20;
  char *body = rt_xmalloc(n);
  for (size_t i = 0; i < n; i++) body[i] = (char)('a' + i % 26);
  rt_httpd_respond(req, 200, "application/octet-stream", body, n);
  free(body);
}

T(server_large_reply) {
  env e;
  env_init(&e, true);
  rt_httpd_route(e.httpd, "GET", "/large", h_large, NULL);
  int count = 0;
  slot s;
  CHECK_INT(get(&e, e.port, "/large", 0, 0, &s, &count, NULL), RT_OK);
  CHECK(run_until(&e, &count, 1, 10000));
  CHECK_INT(s.status, 200);
  CHECK_INT(s.len, 3u << 20);
  bool same = s.body != NULL;
  for (size_t i = 0; same && i < s.len; i++) same = s.body[i] == (char)('a' + i % 26);
  CHECK(same);
  slot_free(&s);
  env_done(&e);
}

typedef struct { env *e; int calls; } closer;

static void h_close_me(void *ud, rt_httpd_req *req) {
  closer *c = ud;
  if (c->calls++ == 0) rt_httpd_close(c->e->httpd, on_closed, &c->e->httpd_closed);
  rt_httpd_respond(req, 200, "application/json", "{}", 2);
}

T(server_close_while_busy) {
  /* the server goes away first, with requests in flight and a close called
   * from inside a handler */
  env e;
  env_init(&e, true);
  closer cl = {&e, 0};
  rt_httpd_route(e.httpd, NULL, "/*", h_close_me, &cl);
  enum { N = 8 };
  slot s[N];
  int count = 0;
  for (int i = 0; i < N; i++) get(&e, e.port, "/x", 3000, 0, &s[i], &count, NULL);
  CHECK(run_until(&e, &count, N, 8000));
  CHECK(run_until(&e, &e.httpd_closed, 1, 5000));
  int answered = 0, failed = 0;
  for (int i = 0; i < N; i++) {
    answered += s[i].err == RT_OK && s[i].status == 200;
    failed += s[i].err == RT_ENET;
    slot_free(&s[i]);
  }
  CHECK(cl.calls >= 1);
  CHECK_INT(answered + failed, N); /* replies not yet written are dropped */
  e.httpd = NULL; /* already closed */
  env_done(&e);
}

T(server_two_on_one_loop) {
  env e;
  env_init(&e, true);
  rt_httpd *s2 = NULL;
  char *err = NULL;
  CHECK_INT(rt_httpd_new(&e.loop, ":0", &s2, &err), RT_OK);
  free(err);
  seen a = {0}, b = {0};
  rt_httpd_route(e.httpd, NULL, "/*", h_health, &a);
  rt_httpd_route(s2, NULL, "/*", h_health, &b);
  int count = 0;
  slot r1, r2;
  get(&e, e.port, "/one", 0, 0, &r1, &count, NULL);
  get(&e, rt_httpd_port(s2), "/two", 0, 0, &r2, &count, NULL);
  CHECK(run_until(&e, &count, 2, 5000));
  CHECK_INT(r1.status, 200);
  CHECK_INT(r2.status, 200);
  CHECK_STR(a.path, "/one");
  CHECK_STR(b.path, "/two");
  int closed2 = 0;
  rt_httpd_close(s2, on_closed, &closed2);
  CHECK(run_until(&e, &closed2, 1, 5000));
  /* the first one still serves */
  slot_free(&r2);
  get(&e, e.port, "/again", 0, 0, &r2, &count, NULL);
  CHECK(run_until(&e, &count, 3, 5000));
  CHECK_INT(r2.status, 200);
  slot_free(&r1), slot_free(&r2);
  env_done(&e);
}

/* ---- tests: rt_http against fake_http --------------------------------------------- */

/* ---- the direct client on the wire ------------------------------------------- */

/* A server that answers each request with the next canned reply and, when
 * the reply says so, closes the connection after it. */
typedef struct {
  const char *reply;
  bool close;
} canned;

typedef struct {
  uv_tcp_t srv;
  const canned *replies;
  size_t next, n;
  int accepted, requests;
} canned_srv;

typedef struct {
  uv_tcp_t tcp;
  canned_srv *cs;
  char buf[8192];
  size_t len;
  uv_write_t w;
} canned_conn;

static void cc_closed(uv_handle_t *h) { free(h->data); }

static void cc_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b) {
  canned_conn *c = h->data;
  (void)hint;
  *b = uv_buf_init(c->buf + c->len, (unsigned)(sizeof c->buf - c->len));
}

static void cc_wrote(uv_write_t *w, int status) {
  (void)status;
  canned_conn *c = w->data;
  if (w->handle->data && c->cs->replies[c->cs->next - 1].close && !uv_is_closing((uv_handle_t *)&c->tcp))
    uv_close((uv_handle_t *)&c->tcp, cc_closed);
}

static void cc_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b) {
  canned_conn *c = st->data;
  (void)b;
  if (n < 0) {
    if (!uv_is_closing((uv_handle_t *)st)) uv_close((uv_handle_t *)st, cc_closed);
    return;
  }
  c->len += (size_t)n;
  char *end = memmem(c->buf, c->len, "\r\n\r\n", 4);
  if (!end) return;
  /* the request's body, if any, comes with its head on loopback */
  c->len = 0;
  canned_srv *cs = c->cs;
  cs->requests++;
  if (cs->next >= cs->n) return;
  const canned *r = &cs->replies[cs->next++];
  uv_buf_t out = uv_buf_init((char *)r->reply, (unsigned)strlen(r->reply));
  c->w.data = c;
  uv_write(&c->w, st, &out, 1, cc_wrote);
}

static void cs_conn(uv_stream_t *srv, int status) {
  canned_srv *cs = srv->data;
  if (status < 0) return;
  canned_conn *c = calloc(1, sizeof *c);
  c->cs = cs;
  uv_tcp_init(srv->loop, &c->tcp);
  c->tcp.data = c;
  uv_accept(srv, (uv_stream_t *)&c->tcp);
  cs->accepted++;
  uv_read_start((uv_stream_t *)&c->tcp, cc_alloc, cc_read);
}

static int cs_start(env *e, canned_srv *cs, const canned *replies, size_t n) {
  memset(cs, 0, sizeof *cs);
  cs->replies = replies;
  cs->n = n;
  uv_tcp_init(&e->loop, &cs->srv);
  cs->srv.data = cs;
  struct sockaddr_in sa;
  uv_ip4_addr("127.0.0.1", 0, &sa);
  uv_tcp_bind(&cs->srv, (const struct sockaddr *)&sa, 0);
  uv_listen((uv_stream_t *)&cs->srv, 16, cs_conn);
  struct sockaddr_in b;
  int bl = sizeof b;
  uv_tcp_getsockname(&cs->srv, (struct sockaddr *)&b, &bl);
  return ntohs(b.sin_port);
}

typedef struct {
  env *e;
  const char *url;
  slot *next;
} chain;

/* Starts the next request from inside the first one's callback, while its
 * connection is still open on our side (the server has closed it). */
static void on_resp_chain(rt_http_resp *r, void *ud) {
  chain *ch = ud;
  slot *first = ch->next - 1;
  on_resp(r, first);
  rt_http_opts o = {.url = ch->url};
  CHECK_INT(rt_http_request(ch->e->http, &o, on_resp, ch->next, NULL), RT_OK);
}

T(direct_wire) {
  if (use_curl) return;   /* the answers' shapes, on the client's own connections */
  env e;
  env_init(&e, false);
  static const canned replies[] = {
      /* chunked, with an extension and a trailer */
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: text/plain\r\n\r\n"
       "5\r\nhello\r\n6;x=y\r\n world\r\n0\r\nX-T: 1\r\n\r\n", false},
      /* an interim 100, then the answer, kept alive: the same connection */
      {"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n"
       "Retry-After: 7\r\n\r\nok", false},
      /* kept alive by its headers, closed by the server right after */
      {"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na", true},
      /* the next request found that connection dead: sent again on a new
       * one; this answer's body ends with the connection */
      {"HTTP/1.0 200 OK\r\n\r\nuntil the end", true},
      {"HTTP/1.1 204 No Content\r\n\r\n", false},
      {"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort", true},
      {"nonsense\r\n\r\n", false},
  };
  canned_srv cs;
  int port = cs_start(&e, &cs, replies, sizeof replies / sizeof replies[0]);
  char url[96];
  snprintf(url, sizeof url, "http://127.0.0.1:%d/x", port);
  int count = 0;
  slot s[8];
  memset(s, 0, sizeof s);
  for (int i = 0; i < 8; i++) s[i].count = &count;
  rt_http_opts o = {.url = url};
  CHECK_INT(rt_http_request(e.http, &o, on_resp, &s[0], NULL), RT_OK);
  CHECK(run_until(&e, &count, 1, 5000));
  CHECK_INT(s[0].status, 200);
  CHECK_STR(s[0].body, "hello world");
  CHECK_STR(s[0].ct, "text/plain");
  CHECK_INT(rt_http_request(e.http, &o, on_resp, &s[1], NULL), RT_OK);
  CHECK(run_until(&e, &count, 2, 5000));
  CHECK_INT(s[1].status, 201);
  CHECK_STR(s[1].body, "ok");
  CHECK_INT(s[1].retry_after, 7);
  CHECK_INT(cs.accepted, 1);
  chain ch = {.e = &e, .url = url, .next = &s[3]};
  CHECK_INT(rt_http_request(e.http, &o, on_resp_chain, &ch, NULL), RT_OK);
  CHECK(run_until(&e, &count, 4, 5000));
  CHECK_STR(s[2].body, "a");
  CHECK_INT(s[3].err, RT_OK);
  CHECK_INT(s[3].status, 200);
  CHECK_STR(s[3].body, "until the end");
  CHECK_INT(cs.accepted, 2);
  CHECK_INT(rt_http_request(e.http, &o, on_resp, &s[4], NULL), RT_OK);
  CHECK(run_until(&e, &count, 5, 5000));
  CHECK_INT(s[4].status, 204);
  CHECK_INT(s[4].len, 0);
  CHECK_INT(rt_http_request(e.http, &o, on_resp, &s[5], NULL), RT_OK);
  CHECK(run_until(&e, &count, 6, 5000));
  CHECK_INT(s[5].err, RT_ENET);   /* closed before the whole body */
  CHECK_INT(s[5].status, 0);
  CHECK_INT(s[5].len, 0);
  CHECK_INT(rt_http_request(e.http, &o, on_resp, &s[6], NULL), RT_OK);
  CHECK(run_until(&e, &count, 7, 5000));
  CHECK_INT(s[6].err, RT_ENET);   /* not HTTP */
  CHECK(s[6].errmsg[0] != '\0');
  CHECK_INT(cs.requests, 7);
  for (int i = 0; i < 8; i++) slot_free(&s[i]);
  uv_close((uv_handle_t *)&cs.srv, NULL);
  env_done(&e);
}

T(client_concurrent_order) {
  env e;
  env_init(&e, false);
  int count = 0;
  slot slow, f1, f2;
  CHECK_INT(get(&e, fake_port, "/slow", 0, 0, &slow, &count, NULL), RT_OK);
  CHECK_INT(get(&e, fake_port, "/fast", 0, 0, &f1, &count, NULL), RT_OK);
  CHECK_INT(get(&e, fake_port, "/fast", 0, 0, &f2, &count, NULL), RT_OK);
  CHECK_INT(rt_http_inflight(e.http), 3);
  CHECK(run_until(&e, &count, 3, 8000));
  CHECK_INT(slow.order, 3);
  CHECK(f1.order <= 2 && f2.order <= 2);
  CHECK_INT(slow.status, 200);
  CHECK_STR(slow.body, "{\"slow\":true}");
  CHECK_STR(f1.body, "{\"fast\":true}");
  CHECK_STR(f1.ct, "application/json");
  CHECK(slow.ms >= 1400);
  CHECK(f1.ms < 1000 && f2.ms < 1000);
  slot_free(&slow), slot_free(&f1), slot_free(&f2);
  env_done(&e);
}

T(client_timeout) {
  env e;
  env_init(&e, false);
  int count = 0;
  slot s;
  uint64_t t0 = uv_hrtime();
  CHECK_INT(get(&e, fake_port, "/slow2", 300, 0, &s, &count, NULL), RT_OK);
  CHECK(run_until(&e, &count, 1, 5000));
  double ms = (double)(uv_hrtime() - t0) / 1e6;
  CHECK_INT(s.err, RT_ETIMEOUT);
  CHECK_INT(s.status, 0);
  CHECK(s.body && s.len == 0);
  CHECK(ms >= 250 && ms < 1000);
  CHECK(s.ms >= 250 && s.ms < 1000);
  CHECK(s.errmsg[0] != '\0');
  slot_free(&s);
  env_done(&e);
}

T(client_refused) {
  /* a port that was free a moment ago */
  uv_loop_t l;
  uv_loop_init(&l);
  uv_tcp_t t;
  uv_tcp_init(&l, &t);
  struct sockaddr_in sa, bound;
  uv_ip4_addr("127.0.0.1", 0, &sa);
  uv_tcp_bind(&t, (const struct sockaddr *)&sa, 0);
  int blen = sizeof bound;
  uv_tcp_getsockname(&t, (struct sockaddr *)&bound, &blen);
  uv_close((uv_handle_t *)&t, NULL);
  uv_run(&l, UV_RUN_DEFAULT);
  uv_loop_close(&l);

  env e;
  env_init(&e, false);
  int count = 0;
  slot s;
  CHECK_INT(get(&e, ntohs(bound.sin_port), "/", 2000, 0, &s, &count, NULL), RT_OK);
  CHECK(run_until(&e, &count, 1, 5000));
  CHECK_INT(s.err, RT_ENET);
  CHECK_INT(s.status, 0);
  CHECK(s.errmsg[0] != '\0');
  slot_free(&s);
  env_done(&e);
}

T(client_dropped_connection) {
  env e;
  env_init(&e, false);
  int count = 0;
  slot s;
  CHECK_INT(get(&e, fake_port, "/drop", 2000, 0, &s, &count, NULL), RT_OK);
  CHECK(run_until(&e, &count, 1, 5000));
  CHECK_INT(s.err, RT_ENET);
  slot_free(&s);
  env_done(&e);
}

T(client_max_body) {
  env e;
  env_init(&e, false);
  int count = 0;
  slot small, fits;
  CHECK_INT(get(&e, fake_port, "/big", 0, 1000, &small, &count, NULL), RT_OK);
  CHECK_INT(get(&e, fake_port, "/big", 0, 100000, &fits, &count, NULL), RT_OK);
  CHECK(run_until(&e, &count, 2, 5000));
  CHECK_INT(small.err, RT_ELIMIT);
  CHECK_INT(small.status, 0);
  CHECK_INT(fits.err, RT_OK);
  CHECK_INT(fits.len, 100000);
  CHECK(fits.body && fits.body[99999] == 'x' && fits.body[100000] == '\0');
  slot_free(&small), slot_free(&fits);
  env_done(&e);
}

/* keep_head: an answer over max_body still gives its first max_body bytes
 * (telegram.c reads the first update's id of a getUpdates answer too big). */
T(client_max_body_head) {
  env e;
  env_init(&e, false);
  int count = 0;
  slot s;
  char url[256];
  snprintf(url, sizeof url, "http://127.0.0.1:%d/big", fake_port);
  rt_http_opts o = {.url = url, .max_body = 1000, .keep_head = true};
  memset(&s, 0, sizeof s);
  s.count = &count;
  CHECK_INT(rt_http_request(e.http, &o, on_resp, &s, NULL), RT_OK);
  CHECK(run_until(&e, &count, 1, 5000));
  CHECK_INT(s.err, RT_ELIMIT);
  CHECK_INT(s.status, 0);
  CHECK_INT(s.len, 1000);
  CHECK(s.body && s.body[999] == 'x' && s.body[1000] == '\0');
  slot_free(&s);
  env_done(&e);
}

T(client_retry_after) {
  env e;
  env_init(&e, false);
  int count = 0;
  slot a, b, c, d;
  get(&e, fake_port, "/limited", 0, 0, &a, &count, NULL);
  get(&e, fake_port, "/limited-date", 0, 0, &b, &count, NULL);
  get(&e, fake_port, "/once", 0, 0, &c, &count, NULL);
  CHECK(run_until(&e, &count, 3, 5000));
  get(&e, fake_port, "/once", 0, 0, &d, &count, NULL);
  CHECK(run_until(&e, &count, 4, 5000));
  CHECK_INT(a.err, RT_OK);
  CHECK_INT(a.status, 429);
  CHECK_INT(a.retry_after, 7);
  CHECK_STR(a.body, "{\"error\":\"rate\"}");
  CHECK_INT(b.status, 503);
  CHECK(b.retry_after >= 100 && b.retry_after <= 121);
  CHECK_INT(c.status, 200);
  CHECK_INT(c.retry_after, -1);
  CHECK_INT(d.status, 410); /* "times": 1 used up */
  slot_free(&a), slot_free(&b), slot_free(&c), slot_free(&d);
  env_done(&e);
}

typedef struct { rt_http_req *victim; int *count; slot s; } canceller;

static void on_resp_cancel_other(rt_http_resp *r, void *ud) {
  canceller *c = ud;
  on_resp(r, &c->s);
  rt_http_cancel(c->victim);
}

T(client_cancel) {
  env e;
  env_init(&e, false);
  int count = 0;
  slot hang, hang2;
  rt_http_req *r = NULL, *r2 = NULL;
  CHECK_INT(get(&e, fake_port, "/hang", 0, 0, &hang, &count, &r), RT_OK);
  CHECK(r != NULL);
  sleep_loop(&e, 100);
  rt_http_cancel(r);
  CHECK_INT(rt_http_inflight(e.http), 0);
  /* cancelled from another request's callback */
  CHECK_INT(get(&e, fake_port, "/hang", 0, 0, &hang2, &count, &r2), RT_OK);
  canceller c = {.victim = r2};
  c.s.count = &count;
  char url[128];
  snprintf(url, sizeof url, "http://127.0.0.1:%d/fast", fake_port);
  rt_http_opts o = {.url = url};
  CHECK_INT(rt_http_request(e.http, &o, on_resp_cancel_other, &c, NULL), RT_OK);
  CHECK(run_until(&e, &count, 1, 5000));
  CHECK(c.s.called);
  CHECK_INT(rt_http_inflight(e.http), 0);
  sleep_loop(&e, 300);
  CHECK(!hang.called);
  CHECK(!hang2.called);
  slot_free(&c.s);
  env_done(&e);
  CHECK(!hang.called && !hang2.called);
}

typedef struct { slot *s; int *http_closed; int seen_closed; } close_probe;

static void on_resp_probe(rt_http_resp *r, void *ud) {
  close_probe *p = ud;
  p->seen_closed = *p->http_closed;
  on_resp(r, p->s);
}

T(client_close_cancels) {
  env e;
  env_init(&e, false);
  int count = 0;
  slot s = {.count = &count};
  close_probe p = {&s, &e.http_closed, -1};
  char url[128];
  snprintf(url, sizeof url, "http://127.0.0.1:%d/hang", fake_port);
  rt_http_opts o = {.url = url};
  CHECK_INT(rt_http_request(e.http, &o, on_resp_probe, &p, NULL), RT_OK);
  sleep_loop(&e, 100);
  rt_http_close(e.http, on_closed, &e.http_closed);
  CHECK(!s.called); /* not from inside rt_http_close */
  uv_run(&e.loop, UV_RUN_DEFAULT);
  CHECK(s.called);
  CHECK_INT(s.err, RT_ENET);
  CHECK_STR(s.errmsg, "cancelled");
  CHECK_INT(p.seen_closed, 0); /* before done */
  CHECK_INT(e.http_closed, 1);
  CHECK_INT(uv_loop_close(&e.loop), 0);
  slot_free(&s);
}

T(client_bad_input) {
  env e;
  env_init(&e, false);
  int count = 0;
  slot s = {.count = &count};
  rt_http_opts none = {.url = NULL};
  rt_http_opts badm = {.method = "get it", .url = "http://127.0.0.1:1/"};
  rt_http_req *r = (rt_http_req *)1;
  CHECK_INT(rt_http_request(e.http, &none, on_resp, &s, &r), RT_EINVAL);
  CHECK(r == NULL);
  CHECK_INT(rt_http_request(e.http, &badm, on_resp, &s, NULL), RT_EINVAL);
  /* a URL curl rejects fails later, from the loop */
  rt_http_opts ftp = {.url = "ftp://127.0.0.1/x"};
  CHECK_INT(rt_http_request(e.http, &ftp, on_resp, &s, NULL), RT_OK);
  CHECK(!s.called);
  CHECK(run_until(&e, &count, 1, 5000));
  CHECK_INT(s.err, RT_ENET);
  CHECK_INT(count, 1);
  slot_free(&s);
  env_done(&e);
}

T(fake_logs_requests) {
  env e;
  env_init(&e, false);
  char url[128];
  snprintf(url, sizeof url, "http://127.0.0.1:%d/echo/hook?x=1", fake_port);
  const char *hdrs[] = {"Content-Type: application/json", "X-Test: yes", NULL};
  rt_http_opts o = {.method = "POST", .url = url, .body = "{\"a\":1}",
                    .body_len = 7, .headers = hdrs};
  int count = 0;
  slot s = {.count = &count};
  CHECK_INT(rt_http_request(e.http, &o, on_resp, &s, NULL), RT_OK);
  CHECK(run_until(&e, &count, 1, 5000));
  CHECK_INT(s.status, 200);
  CHECK_STR(s.body, "{\"a\":1}");
  CHECK_STR(s.ct, "application/json");
  slot_free(&s);
  env_done(&e);

  FILE *f = fopen(fake_log, "r");
  CHECK(f != NULL);
  char line[8192];
  bool found = false;
  while (f && fgets(line, sizeof line, f))
    if (strstr(line, "\"path\":\"/echo/hook\"") && strstr(line, "\"query\":\"x=1\"") &&
        strstr(line, "\"X-Test\":\"yes\"") && strstr(line, "\"body\":\"{\\\"a\\\":1}\"") &&
        strstr(line, "\"method\":\"POST\""))
      found = true;
  if (f) fclose(f);
  CHECK(found);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  alarm(180); /* a hung loop fails the test instead of blocking CI */
  rt_log_set_level(RT_LOG_WARN);
  T_RUN(server_json_route);
  T_RUN(server_post_echo);
  T_RUN(server_methods_in_turn);
  T_RUN(server_body_limit);
  T_RUN(server_many_connections);
  T_RUN(server_port_in_use);
  T_RUN(server_raw_requests);
  T_RUN(server_large_reply);
  T_RUN(server_close_while_busy);
  T_RUN(server_two_on_one_loop);
  if (fake_start() != 0) {
    fprintf(stderr, "FAIL cannot start fake_http (set FAKE_HTTP)\n");
    t_tests_failed++;
  } else {
   for (int pass = 0; pass < 2; pass++) {
    use_curl = pass == 1;
    fprintf(stderr, "-- the client %s\n", use_curl ? "through curl" : "direct");
    /* a fresh fake: its rules with "times" are spent by the first pass */
    if (pass == 1 && (fake_stop() != 0 || fake_start() != 0)) {
      fprintf(stderr, "FAIL cannot restart fake_http\n");
      t_tests_failed++;
      break;
    }
    T_RUN(direct_wire);
    T_RUN(client_concurrent_order);
    T_RUN(client_timeout);
    T_RUN(client_refused);
    T_RUN(client_dropped_connection);
    T_RUN(client_max_body);
    T_RUN(client_max_body_head);
    T_RUN(client_retry_after);
    T_RUN(client_cancel);
    T_RUN(client_close_cancels);
    T_RUN(client_bad_input);
    T_RUN(fake_logs_requests);
   }
    CHECK_INT(fake_stop(), 0);
  }
  return T_DONE();
}
