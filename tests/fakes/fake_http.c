/* fake_http.c -- a scriptable HTTP/1.1 server for integration tests
 * (fake Telegram, OpenAI, CRMs...). libuv TCP and a small parser of its own.
 *
 *   fake_http --port N --script FILE.json --log FILE.jsonl
 *             [--port-file F] [--max-seconds N]
 *
 * Listens on 127.0.0.1:N (0 = ephemeral), prints "listening on
 * 127.0.0.1:PORT" on stdout and writes PORT to F (atomically, via rename).
 * The script is a JSON array of rules, tried in order against each request:
 *
 *   {"method": "GET",          optional; absent or "*" matches any method
 *    "path": "/v1/users",     exact; a trailing star makes it a prefix
 *    "status": 200,            default 200
 *    "headers": {"Content-Type": "application/json"},
 *    "body": "text" | "json": {...} | "body_size": N (N bytes of 'x')
 *               | "echo": true (the request body and Content-Type back),
 *    "delay_ms": 2000,         answer later; other connections go on
 *    "times": N,               use the rule N times, then skip it
 *    "close": true}            drop the connection without a reply
 *
 * No match: 404 {"error":"not found"}. Every request is appended to the log
 * as one JSON line {"method","path","query","headers":{...},"body"} (a body
 * that is not UTF-8 goes into "body_hex" instead), flushed before the reply
 * is sent. Keep-alive, pipelining, Content-Length and chunked request bodies,
 * Expect: 100-continue. Exits 0 on SIGTERM/SIGINT or after --max-seconds
 * (default 300), 2 on bad arguments or script. */
#include <jansson.h>
#include <uv.h>
#include <ctype.h>
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_HEAD (64 * 1024)
#define MAX_BODY ((size_t)64 << 20)

typedef struct {
  const char *method; /* NULL: any */
  const char *path;
  size_t path_len;
  bool prefix;
  long delay_ms;
  int status;
  json_t *headers;    /* borrowed from the script */
  char *body;         /* owned */
  size_t body_len;
  bool echo, drop;
  long times, used;   /* times < 0: unlimited */
} rule;

typedef struct conn conn;

typedef struct {
  uv_loop_t *loop;
  uv_tcp_t listener;
  uv_signal_t sigterm, sigint;
  uv_timer_t deadline;
  rule *rules;
  size_t nrules;
  json_t *script;
  FILE *log;
  conn *conns;
  bool stopping;
} server;

struct conn {
  uv_tcp_t tcp;
  uv_timer_t delay;
  server *srv;
  char *in;
  size_t in_len, in_cap;
  bool busy;          /* a delayed reply is pending: stop parsing */
  bool closing;
  bool sent_continue;
  int open_handles;
  char *pending;      /* reply waiting for the delay timer */
  size_t pending_len;
  bool pending_drop, pending_keep;
  conn *prev, *next;
};

typedef struct {
  char method[32];
  char *target;       /* owned */
  int minor;          /* HTTP/1.minor */
  json_t *headers;    /* owned */
  char *body;         /* owned */
  size_t body_len;
  bool keep_alive;
} request;

static void *xmalloc(size_t n) {
  void *p = malloc(n ? n : 1);
  if (!p) { fprintf(stderr, "fake_http: out of memory\n"); exit(3); }
  return p;
}
static void *xrealloc(void *p, size_t n) {
  p = realloc(p, n ? n : 1);
  if (!p) { fprintf(stderr, "fake_http: out of memory\n"); exit(3); }
  return p;
}

/* ---- connections ----------------------------------------------------------- */

static void conn_try(conn *c);

static void on_conn_closed(uv_handle_t *h) {
  conn *c = h->data;
  if (--c->open_handles > 0) return;
  free(c->in);
  free(c->pending);
  free(c);
}

static void conn_close(conn *c) {
  if (c->closing) return;
  c->closing = true;
  server *s = c->srv;
  if (c->prev) c->prev->next = c->next; else s->conns = c->next;
  if (c->next) c->next->prev = c->prev;
  uv_close((uv_handle_t *)&c->delay, on_conn_closed);
  uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
}

typedef struct {
  uv_write_t req;
  conn *c;
  bool close_after;
  char data[];
} wreq;

static void on_written(uv_write_t *w, int status) {
  wreq *wr = (wreq *)w;
  conn *c = wr->c;
  if ((status < 0 || wr->close_after) && !c->closing) conn_close(c);
  free(wr);
}

static void conn_write(conn *c, const char *p, size_t n, bool close_after) {
  if (c->closing) return;
  wreq *wr = xmalloc(sizeof *wr + n);
  wr->c = c;
  wr->close_after = close_after;
  memcpy(wr->data, p, n);
  uv_buf_t b = uv_buf_init(wr->data, (unsigned)n);
  if (uv_write(&wr->req, (uv_stream_t *)&c->tcp, &b, 1, on_written) != 0) {
    free(wr);
    conn_close(c);
  }
}

/* ---- HTTP parsing ------------------------------------------------------------ */

static void request_free(request *r) {
  free(r->target);
  json_decref(r->headers);
  free(r->body);
  memset(r, 0, sizeof *r);
}

static const char *hdr(const request *r, const char *name) {
  const char *k;
  json_t *v;
  json_object_foreach(r->headers, k, v)
    if (strcasecmp(k, name) == 0) return json_string_value(v);
  return NULL;
}

/* Finds the end of the header block: returns the offset just past the empty
 * line, 0 if it is not there yet. Bare LF line ends are accepted. */
static size_t head_end(const char *p, size_t n) {
  for (size_t i = 0; i + 1 < n; i++) {
    if (p[i] != '\n') continue;
    if (p[i + 1] == '\n') return i + 2;
    if (p[i + 1] == '\r' && i + 2 < n && p[i + 2] == '\n') return i + 3;
  }
  return 0;
}

/* Next line in [*pos, end): returns its start, sets *len (without CR LF). */
static const char *next_line(const char *p, size_t end, size_t *pos, size_t *len) {
  size_t i = *pos;
  while (i < end && p[i] != '\n') i++;
  if (i >= end) return NULL;
  const char *line = p + *pos;
  size_t l = i - *pos;
  if (l && line[l - 1] == '\r') l--;
  *len = l;
  *pos = i + 1;
  return line;
}

/* Parses the request line and headers of p[0..he). false: malformed. */
static bool parse_head(const char *p, size_t he, request *r) {
  size_t pos = 0, len;
  const char *line;
  /* tolerate empty lines before the request line (RFC 9112 2.2) */
  while ((line = next_line(p, he, &pos, &len)) && len == 0) {}
  if (!line) return false;
  const char *sp1 = memchr(line, ' ', len);
  if (!sp1 || sp1 == line || (size_t)(sp1 - line) >= sizeof r->method) return false;
  const char *rest = sp1 + 1;
  size_t rlen = len - (size_t)(rest - line);
  const char *sp2 = memchr(rest, ' ', rlen);
  if (!sp2 || sp2 == rest) return false;
  size_t vlen = rlen - (size_t)(sp2 + 1 - rest);
  const char *ver = sp2 + 1;
  if (vlen != 8 || memcmp(ver, "HTTP/1.", 7) != 0 || !isdigit((unsigned char)ver[7]))
    return false;
  memcpy(r->method, line, (size_t)(sp1 - line));
  r->method[sp1 - line] = '\0';
  for (char *m = r->method; *m; m++)
    if (!isupper((unsigned char)*m)) return false;
  r->target = strndup(rest, (size_t)(sp2 - rest));
  if (!r->target) return false;
  r->minor = ver[7] - '0';
  r->headers = json_object();
  while ((line = next_line(p, he, &pos, &len)) && len > 0) {
    const char *colon = memchr(line, ':', len);
    if (!colon || colon == line) return false;
    char name[256];
    size_t nl = (size_t)(colon - line);
    if (nl >= sizeof name) return false;
    memcpy(name, line, nl);
    name[nl] = '\0';
    const char *v = colon + 1, *ve = line + len;
    while (v < ve && (*v == ' ' || *v == '\t')) v++;
    while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t')) ve--;
    json_t *val = json_stringn(v, (size_t)(ve - v));
    if (!val) val = json_string("(not utf-8)");
    json_t *old = json_object_get(r->headers, name);
    if (old) { /* repeated header: join with ", " */
      char *j = NULL;
      if (asprintf(&j, "%s, %s", json_string_value(old), json_string_value(val)) < 0)
        return false;
      json_decref(val);
      val = json_string(j);
      free(j);
      if (!val) return false;
    }
    json_object_set_new(r->headers, name, val);
  }
  const char *conn_h = hdr(r, "Connection");
  if (r->minor >= 1)
    r->keep_alive = !(conn_h && strcasestr(conn_h, "close"));
  else
    r->keep_alive = conn_h && strcasestr(conn_h, "keep-alive");
  return true;
}

/* Decodes a chunked body starting at p[0..n). Returns bytes consumed (body
 * and trailers), 0 if incomplete, -1 if malformed or too big. */
static long parse_chunked(const char *p, size_t n, request *r) {
  size_t pos = 0, len, cap = 0;
  const char *line;
  r->body_len = 0;
  for (;;) {
    if (!(line = next_line(p, n, &pos, &len))) return 0;
    char *end;
    char sz[32];
    size_t l = len < sizeof sz - 1 ? len : sizeof sz - 1;
    memcpy(sz, line, l);
    sz[l] = '\0';
    unsigned long long size = strtoull(sz, &end, 16);
    if (end == sz) return -1;
    if (size == 0) break;
    if (size > MAX_BODY || r->body_len + size > MAX_BODY) return -1;
    if (n - pos < size + 1) return 0;
    if (r->body_len + size + 1 > cap) {
      cap = (r->body_len + size + 1) * 2;
      r->body = xrealloc(r->body, cap);
    }
    memcpy(r->body + r->body_len, p + pos, size);
    r->body_len += size;
    pos += size;
    if (!(line = next_line(p, n, &pos, &len))) return 0;
    if (len) return -1;
  }
  while ((line = next_line(p, n, &pos, &len)))
    if (len == 0) return (long)pos; /* end of trailers */
  return 0;
}

/* ---- replies ------------------------------------------------------------------ */

static const char *reason(int status) {
  switch (status) {
  case 100: return "Continue";
  case 200: return "OK";
  case 201: return "Created";
  case 202: return "Accepted";
  case 204: return "No Content";
  case 301: return "Moved Permanently";
  case 302: return "Found";
  case 304: return "Not Modified";
  case 400: return "Bad Request";
  case 401: return "Unauthorized";
  case 403: return "Forbidden";
  case 404: return "Not Found";
  case 405: return "Method Not Allowed";
  case 409: return "Conflict";
  case 413: return "Content Too Large";
  case 422: return "Unprocessable Content";
  case 429: return "Too Many Requests";
  case 431: return "Request Header Fields Too Large";
  case 500: return "Internal Server Error";
  case 502: return "Bad Gateway";
  case 503: return "Service Unavailable";
  case 504: return "Gateway Timeout";
  default: return "Status";
  }
}

typedef struct { char *p; size_t len, cap; } sbuf;

static void sb_add(sbuf *b, const char *s, size_t n) {
  if (b->len + n + 1 > b->cap) {
    b->cap = (b->len + n + 1) * 2;
    b->p = xrealloc(b->p, b->cap);
  }
  memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = '\0';
}
static void sb_str(sbuf *b, const char *s) { sb_add(b, s, strlen(s)); }

/* Builds a full response into b. */
static void build_reply(sbuf *b, int status, json_t *headers,
                        const char *ctype_default, const char *body,
                        size_t body_len, bool keep_alive, int minor, bool head) {
  char line[128];
  snprintf(line, sizeof line, "HTTP/1.1 %d %s\r\n", status, reason(status));
  sb_str(b, line);
  bool have_cl = false, have_ct = false, have_conn = false;
  const char *k;
  json_t *v;
  json_object_foreach(headers, k, v) {
    char num[64];
    const char *val = json_string_value(v);
    if (!val) {
      if (json_is_integer(v)) {
        snprintf(num, sizeof num, "%lld", (long long)json_integer_value(v));
        val = num;
      } else {
        continue;
      }
    }
    if (strcasecmp(k, "Content-Length") == 0) have_cl = true;
    if (strcasecmp(k, "Content-Type") == 0) have_ct = true;
    if (strcasecmp(k, "Connection") == 0) have_conn = true;
    sb_str(b, k);
    sb_str(b, ": ");
    sb_str(b, val);
    sb_str(b, "\r\n");
  }
  if (!have_ct && ctype_default) {
    sb_str(b, "Content-Type: ");
    sb_str(b, ctype_default);
    sb_str(b, "\r\n");
  }
  if (!have_cl) {
    snprintf(line, sizeof line, "Content-Length: %zu\r\n", body_len);
    sb_str(b, line);
  }
  if (!have_conn) {
    if (!keep_alive) sb_str(b, "Connection: close\r\n");
    else if (minor == 0) sb_str(b, "Connection: keep-alive\r\n");
  }
  sb_str(b, "\r\n");
  if (!head && body_len) sb_add(b, body, body_len);
}

/* ---- rules and the request log ------------------------------------------------- */

static rule *match(server *s, const request *r, const char *path, size_t plen) {
  for (size_t i = 0; i < s->nrules; i++) {
    rule *u = &s->rules[i];
    if (u->times >= 0 && u->used >= u->times) continue;
    if (u->method && strcmp(u->method, r->method) != 0) continue;
    if (u->prefix ? (plen < u->path_len || memcmp(path, u->path, u->path_len) != 0)
                  : (plen != u->path_len || memcmp(path, u->path, plen) != 0))
      continue;
    u->used++;
    return u;
  }
  return NULL;
}

static void log_request(server *s, const request *r, const char *path, size_t plen,
                        const char *query) {
  if (!s->log) return;
  json_t *o = json_object();
  json_object_set_new(o, "method", json_string(r->method));
  json_t *p = json_stringn(path, plen);
  json_object_set_new(o, "path", p ? p : json_string("(not utf-8)"));
  json_t *q = json_string(query);
  json_object_set_new(o, "query", q ? q : json_string("(not utf-8)"));
  json_object_set(o, "headers", r->headers);
  json_t *b = json_stringn(r->body ? r->body : "", r->body_len);
  if (b) {
    json_object_set_new(o, "body", b);
  } else {
    char *hex = xmalloc(r->body_len * 2 + 1);
    for (size_t i = 0; i < r->body_len; i++)
      sprintf(hex + 2 * i, "%02x", (unsigned char)r->body[i]);
    json_object_set_new(o, "body", json_string(""));
    json_object_set_new(o, "body_hex", json_string(hex));
    free(hex);
  }
  char *line = json_dumps(o, JSON_COMPACT);
  if (line) {
    fprintf(s->log, "%s\n", line);
    fflush(s->log);
    free(line);
  }
  json_decref(o);
}

static void on_delay(uv_timer_t *t) {
  conn *c = t->data;
  char *p = c->pending;
  size_t n = c->pending_len;
  bool drop = c->pending_drop, keep = c->pending_keep;
  c->pending = NULL;
  c->busy = !keep; /* after "Connection: close" nothing more is parsed */
  if (drop) {
    free(p);
    conn_close(c);
    return;
  }
  conn_write(c, p, n, !keep);
  free(p);
  if (keep) conn_try(c);
}

/* Answers one complete request. */
static void handle(conn *c, request *r) {
  server *s = c->srv;
  const char *qm = strchr(r->target, '?');
  size_t plen = qm ? (size_t)(qm - r->target) : strlen(r->target);
  const char *query = qm ? qm + 1 : "";
  log_request(s, r, r->target, plen, query);
  rule *u = match(s, r, r->target, plen);
  bool head = strcmp(r->method, "HEAD") == 0;
  sbuf b = {0};
  bool drop = false;
  if (!u) {
    static const char nf[] = "{\"error\":\"not found\"}";
    build_reply(&b, 404, NULL, "application/json", nf, sizeof nf - 1,
                r->keep_alive, r->minor, head);
  } else if (u->drop) {
    drop = true;
  } else if (u->echo) {
    const char *ct = hdr(r, "Content-Type");
    build_reply(&b, u->status, u->headers, ct ? ct : "application/octet-stream",
                r->body, r->body_len, r->keep_alive, r->minor, head);
  } else {
    build_reply(&b, u->status, u->headers, NULL, u->body, u->body_len,
                r->keep_alive, r->minor, head);
  }
  if (u && u->delay_ms > 0) {
    c->busy = true;
    c->pending = b.p;
    c->pending_len = b.len;
    c->pending_drop = drop;
    c->pending_keep = r->keep_alive;
    uv_timer_start(&c->delay, on_delay, (uint64_t)u->delay_ms, 0);
    return;
  }
  if (drop) conn_close(c);
  else conn_write(c, b.p, b.len, !r->keep_alive);
  if (!r->keep_alive) c->busy = true; /* the write closes the connection */
  free(b.p);
}

static void fail(conn *c, int status) {
  sbuf b = {0};
  char body[64];
  int n = snprintf(body, sizeof body, "{\"error\":\"%s\"}", reason(status));
  build_reply(&b, status, NULL, "application/json", body, (size_t)n, false, 1, false);
  conn_write(c, b.p, b.len, true);
  free(b.p);
  c->busy = true; /* parse nothing more; the write closes the connection */
}

/* Parses and answers as many buffered requests as possible. */
static void conn_try(conn *c) {
  while (!c->busy && !c->closing && c->in_len) {
    size_t he = head_end(c->in, c->in_len);
    if (!he) {
      if (c->in_len > MAX_HEAD) fail(c, 431);
      return;
    }
    request r = {0};
    if (!parse_head(c->in, he, &r)) {
      request_free(&r);
      fail(c, 400);
      return;
    }
    size_t total;
    const char *te = hdr(&r, "Transfer-Encoding");
    const char *cl = hdr(&r, "Content-Length");
    const char *expect = hdr(&r, "Expect");
    if (te && strcasestr(te, "chunked")) {
      long used = parse_chunked(c->in + he, c->in_len - he, &r);
      if (used < 0) { request_free(&r); fail(c, 413); return; }
      if (used == 0) goto incomplete;
      total = he + (size_t)used;
    } else if (cl) {
      char *end;
      unsigned long long n = strtoull(cl, &end, 10);
      if (end == cl || *end) { request_free(&r); fail(c, 400); return; }
      if (n > MAX_BODY) { request_free(&r); fail(c, 413); return; }
      if (c->in_len - he < n) goto incomplete;
      r.body = xmalloc(n + 1);
      memcpy(r.body, c->in + he, n);
      r.body[n] = '\0';
      r.body_len = n;
      total = he + n;
    } else {
      total = he;
    }
    handle(c, &r);
    request_free(&r);
    if (c->closing) return;
    memmove(c->in, c->in + total, c->in_len - total);
    c->in_len -= total;
    c->sent_continue = false;
    continue;
  incomplete:
    if (expect && strcasecmp(expect, "100-continue") == 0 && !c->sent_continue) {
      static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
      c->sent_continue = true;
      conn_write(c, cont, sizeof cont - 1, false);
    }
    request_free(&r);
    return;
  }
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  conn *c = h->data;
  if (c->in_cap - c->in_len < 65536) {
    c->in_cap = c->in_cap ? c->in_cap * 2 : 65536;
    while (c->in_cap - c->in_len < 65536) c->in_cap *= 2;
    c->in = xrealloc(c->in, c->in_cap);
  }
  *buf = uv_buf_init(c->in + c->in_len, (unsigned)(c->in_cap - c->in_len));
}

static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf) {
  conn *c = st->data;
  if (n < 0) { conn_close(c); return; }
  c->in_len += (size_t)n;
  if (c->in_len > MAX_HEAD + MAX_BODY + 65536) { conn_close(c); return; }
  conn_try(c);
}

static void on_connection(uv_stream_t *l, int status) {
  server *s = l->data;
  if (status < 0 || s->stopping) return;
  conn *c = calloc(1, sizeof *c);
  if (!c) exit(3);
  c->srv = s;
  uv_tcp_init(s->loop, &c->tcp);
  uv_timer_init(s->loop, &c->delay);
  c->tcp.data = c->delay.data = c;
  c->open_handles = 2;
  c->next = s->conns;
  if (s->conns) s->conns->prev = c;
  s->conns = c;
  if (uv_accept(l, (uv_stream_t *)&c->tcp) != 0 ||
      uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0) {
    conn_close(c);
    return;
  }
  uv_tcp_nodelay(&c->tcp, 1);
}

/* ---- start and stop ------------------------------------------------------------ */

static void stop(server *s) {
  if (s->stopping) return;
  s->stopping = true;
  uv_close((uv_handle_t *)&s->listener, NULL);
  uv_close((uv_handle_t *)&s->sigterm, NULL);
  uv_close((uv_handle_t *)&s->sigint, NULL);
  uv_close((uv_handle_t *)&s->deadline, NULL);
  while (s->conns) conn_close(s->conns);
}

static void on_signal(uv_signal_t *h, int sig) { stop(h->data); }
static void on_deadline(uv_timer_t *t) {
  fprintf(stderr, "fake_http: --max-seconds reached, exiting\n");
  stop(t->data);
}

static int load_script(server *s, const char *file) {
  json_error_t je;
  s->script = json_load_file(file, 0, &je);
  if (!s->script) {
    fprintf(stderr, "fake_http: %s:%d: %s\n", file, je.line, je.text);
    return -1;
  }
  if (!json_is_array(s->script)) {
    fprintf(stderr, "fake_http: %s: want a JSON array of rules\n", file);
    return -1;
  }
  s->nrules = json_array_size(s->script);
  s->rules = calloc(s->nrules ? s->nrules : 1, sizeof *s->rules);
  for (size_t i = 0; i < s->nrules; i++) {
    json_t *o = json_array_get(s->script, i);
    rule *u = &s->rules[i];
    const char *path = json_string_value(json_object_get(o, "path"));
    if (!json_is_object(o) || !path) {
      fprintf(stderr, "fake_http: %s: rule %zu: want an object with \"path\"\n",
              file, i);
      return -1;
    }
    const char *m = json_string_value(json_object_get(o, "method"));
    u->method = m && strcmp(m, "*") != 0 ? m : NULL;
    u->path_len = strlen(path);
    u->prefix = u->path_len && path[u->path_len - 1] == '*';
    if (u->prefix) u->path_len--;
    u->path = path;
    json_t *st = json_object_get(o, "status");
    u->status = json_is_integer(st) ? (int)json_integer_value(st) : 200;
    u->delay_ms = (long)json_integer_value(json_object_get(o, "delay_ms"));
    json_t *t = json_object_get(o, "times");
    u->times = json_is_integer(t) ? (long)json_integer_value(t) : -1;
    u->drop = json_is_true(json_object_get(o, "close"));
    u->echo = json_is_true(json_object_get(o, "echo"));
    json_t *h = json_object_get(o, "headers");
    u->headers = json_is_object(h) ? h : NULL;
    json_t *b = json_object_get(o, "body"), *j = json_object_get(o, "json");
    json_t *bs = json_object_get(o, "body_size");
    if (json_is_string(b)) {
      u->body_len = json_string_length(b);
      u->body = xmalloc(u->body_len + 1);
      memcpy(u->body, json_string_value(b), u->body_len + 1);
    } else if (j) {
      u->body = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
      u->body_len = u->body ? strlen(u->body) : 0;
      bool has_ct = false;
      const char *hk;
      json_t *hv;
      if (u->headers)
        json_object_foreach(u->headers, hk, hv)
          if (strcasecmp(hk, "Content-Type") == 0) has_ct = true;
      if (!has_ct) {
        /* a "json" rule is served as JSON unless told otherwise */
        json_t *hh = u->headers ? json_deep_copy(u->headers) : json_object();
        json_object_set_new(hh, "Content-Type", json_string("application/json"));
        json_object_set_new(o, "headers", hh); /* keeps it alive in the script */
        u->headers = hh;
      }
    } else if (json_is_integer(bs) && json_integer_value(bs) > 0) {
      u->body_len = (size_t)json_integer_value(bs);
      u->body = xmalloc(u->body_len + 1);
      memset(u->body, 'x', u->body_len);
      u->body[u->body_len] = '\0';
    }
  }
  return 0;
}

static void usage(void) {
  fprintf(stderr, "usage: fake_http --port N --script FILE.json --log FILE.jsonl "
                  "[--port-file F] [--max-seconds N]\n");
}

int main(int argc, char **argv) {
  long port = 0, max_seconds = 300;
  const char *script = NULL, *logf = NULL, *port_file = NULL;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!v) { usage(); return 2; }
    if (strcmp(a, "--port") == 0) port = strtol(v, NULL, 10);
    else if (strcmp(a, "--script") == 0) script = v;
    else if (strcmp(a, "--log") == 0) logf = v;
    else if (strcmp(a, "--port-file") == 0) port_file = v;
    else if (strcmp(a, "--max-seconds") == 0) max_seconds = strtol(v, NULL, 10);
    else { usage(); return 2; }
    i++;
  }
  if (port < 0 || port > 65535 || max_seconds <= 0) { usage(); return 2; }
  signal(SIGPIPE, SIG_IGN);

  server s = {0};
  s.loop = uv_default_loop();
  if (script && load_script(&s, script) != 0) return 2;
  if (logf && !(s.log = fopen(logf, "a"))) {
    fprintf(stderr, "fake_http: %s: %s\n", logf, strerror(errno));
    return 2;
  }

  struct sockaddr_in sa;
  uv_ip4_addr("127.0.0.1", (int)port, &sa);
  uv_tcp_init(s.loop, &s.listener);
  s.listener.data = &s;
  int rc = uv_tcp_bind(&s.listener, (const struct sockaddr *)&sa, 0);
  if (rc == 0) rc = uv_listen((uv_stream_t *)&s.listener, 511, on_connection);
  if (rc != 0) {
    fprintf(stderr, "fake_http: cannot listen on 127.0.0.1:%ld: %s\n", port,
            uv_strerror(rc));
    return 2;
  }
  struct sockaddr_storage bound;
  int blen = sizeof bound;
  uv_tcp_getsockname(&s.listener, (struct sockaddr *)&bound, &blen);
  int actual = ntohs(((struct sockaddr_in *)&bound)->sin_port);

  uv_signal_init(s.loop, &s.sigterm);
  uv_signal_init(s.loop, &s.sigint);
  s.sigterm.data = s.sigint.data = &s;
  uv_signal_start(&s.sigterm, on_signal, SIGTERM);
  uv_signal_start(&s.sigint, on_signal, SIGINT);
  uv_timer_init(s.loop, &s.deadline);
  s.deadline.data = &s;
  uv_timer_start(&s.deadline, on_deadline, (uint64_t)max_seconds * 1000, 0);

  if (port_file) {
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", port_file);
    FILE *f = fopen(tmp, "w");
    if (!f || fprintf(f, "%d\n", actual) < 0 || fclose(f) != 0 ||
        rename(tmp, port_file) != 0) {
      fprintf(stderr, "fake_http: %s: %s\n", port_file, strerror(errno));
      return 2;
    }
  }
  printf("listening on 127.0.0.1:%d\n", actual);
  fflush(stdout);

  uv_run(s.loop, UV_RUN_DEFAULT);

  uv_loop_close(s.loop);
  for (size_t i = 0; i < s.nrules; i++) free(s.rules[i].body);
  free(s.rules);
  json_decref(s.script);
  if (s.log) fclose(s.log);
  return 0;
}
