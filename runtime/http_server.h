/* http_server.h -- the HTTP server: libwebsockets on the runtime's uv loop.
 *
 * One rt_httpd owns a listening socket on one IPv4 or IPv6 address, an lws
 * context with one vhost that serves the connections accepted on it
 * (HTTP/1.1, keep-alive, no TLS), its routing table and the uv handles that
 * drive accepting and teardown. lws runs on the caller's loop as a "foreign"
 * loop: it adds its own uv handles (connections, an idle and a timer handle)
 * and removes them all during rt_httpd_close. Nothing blocks and nothing runs
 * on another thread; handlers are called on the loop.
 *
 * Limits. At most max_connections connections are open at once; at the cap
 * a new connection closes the one idle longest, else the one reading a
 * request body longest (503 and close); when none is either (websockets,
 * requests waiting for their answer) the server stops accepting and new
 * connects wait in the kernel's backlog until one closes. Websockets take
 * at most ws_max_connections of the cap (default half; further upgrades
 * get 503), so plain HTTP always has room. The cap is lowered, with a warning, to fit under the
 * open-files limit (RLIMIT_NOFILE, whose soft limit is raised toward the hard
 * one if that is needed) minus a reserve for the rest of the process, so the
 * server never runs the process out of descriptors. If accept still fails
 * for want of a resource (EMFILE, ENFILE...), it pauses accepting with a
 * back-off of 50 ms doubling to 1 s instead of retrying at once.
 * Idle and slow connections are closed: request headers not complete
 * header_timeout_s (RT_HTTPD_HEADER_TIMEOUT_S) after connecting (silent or
 * slowloris connections), a request body that stalls for
 * RT_HTTPD_BODY_TIMEOUT_S or is not complete body_timeout_s
 * (RT_HTTPD_BODY_DEADLINE_S) after its headers (408), and idle_timeout_s (RT_HTTPD_KEEPALIVE_S) of
 * quiet between keep-alive requests. The shop sets these and the other
 * limits in shop.json's http section (app.c, docs/http.md).
 *
 * Routes. Plugins register HTTP routes (method + exact path or prefix) and
 * websocket endpoints (exact path) at any time, also after start. A path
 * with no route gets 404 {"error":"not found"}, a path whose routes take
 * other methods 405 with Allow, a plain request to a websocket-only path
 * 426. Upgrades are refused (403) except "websocket" on a websocket route;
 * h2c is never accepted.
 *
 * Requests. A handler gets an rt_httpd_req: method, path, query, request
 * headers, the raw body bytes and the remote address. It answers with
 * rt_httpd_respond, during the call or LATER (after an asynchronous step,
 * e.g. a webhook answered after the receive commit); the connection waits,
 * bounded by the route's reply timeout (then 504). Request bodies (POST,
 * PUT, PATCH) must carry Content-Length (else 411; chunked bodies are not
 * taken) and fit the route's body limit (else 413).
 *
 * Limits, with defaults: request headers 8 KiB in all (lws closes the
 * connection when over), body 1 MiB per route, reply timeout 10 s,
 * websocket message 64 KiB (over: close 1009), bytes queued to a websocket
 * client 1 MiB (over: the slow consumer is disconnected), websocket
 * connections pinged after 30 s of silence and dropped 10 s later.
 *
 * lws's own log goes to rt_log at warn level (lws notices and info are
 * dropped); the lws log setting is process-wide. */
#ifndef RT_HTTP_SERVER_H
#define RT_HTTP_SERVER_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define RT_HTTPD_MAX_BODY ((size_t)1 << 20)
#define RT_HTTPD_MAX_HEADER 8192
#define RT_HTTPD_REPLY_TIMEOUT_MS 10000u
#define RT_HTTPD_WS_MAX_MESSAGE ((size_t)64 << 10)
#define RT_HTTPD_WS_MAX_QUEUED ((size_t)1 << 20)
#define RT_HTTPD_DEFAULT_MAX_CONN 256
#define RT_HTTPD_BODY_TIMEOUT_S 5
#define RT_HTTPD_BODY_DEADLINE_S 30
#define RT_HTTPD_HEADER_TIMEOUT_S 10
#define RT_HTTPD_KEEPALIVE_S 30
#define RT_HTTPD_WS_PING_S 30

typedef struct rt_httpd rt_httpd;

/* One HTTP request. It is valid from the handler call until the handler
 * answers it with rt_httpd_respond -- exactly once, also when the client
 * has gone, the reply timed out or the server closed meanwhile (then the
 * answer is dropped and the call only frees the request). Everything it
 * returns is owned by the request and valid as long as it is. */
typedef struct rt_httpd_req rt_httpd_req;

/* Called on the loop when a request matches the route. May answer now or
 * keep req and answer later from any loop callback. */
typedef void (*rt_httpd_handler)(void *ud, rt_httpd_req *req);

/* "GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS" or "HEAD". */
const char *rt_httpd_req_method(const rt_httpd_req *req);
/* URL-decoded and normalised by lws ("/a/../b" -> "/b"). */
const char *rt_httpd_req_path(const rt_httpd_req *req);
/* Without the '?', "" when absent, re-encoded as key=value pairs joined by
 * '&'. */
const char *rt_httpd_req_query(const rt_httpd_req *req);
/* The raw body bytes as received (no decoding, may hold NULs), *len their
 * number; a NUL follows them for convenience. "" and 0 without a body. */
const unsigned char *rt_httpd_req_body(const rt_httpd_req *req, size_t *len);
/* The client's numeric address, like "127.0.0.1" or "::1". */
const char *rt_httpd_req_remote(const rt_httpd_req *req);
/* A request header by name, case-insensitive, or NULL. Repeated headers
 * come joined by ',' (Cookie by ';'). Headers lws knows (Content-Type,
 * Origin, Authorization... about 80) are kept for the request's life; other
 * names (X-Hub-Signature-256, X-Telegram-Bot-Api-Secret-Token) are found
 * during the handler call (or on_open), and once found are kept too:
 * lws 4.1 can look them up but not list them. */
const char *rt_httpd_req_header(rt_httpd_req *req, const char *name);
/* Iteration: i from 0 while it returns true; name is lower case. Lists the
 * known headers and the other ones looked up so far. */
bool rt_httpd_req_header_at(const rt_httpd_req *req, size_t i, const char **name,
                            const char **value);
/* True once an answer can no longer reach the client (it disconnected,
 * the reply timed out, the server closed). */
bool rt_httpd_req_gone(const rt_httpd_req *req);

/* Adds a reply header (copied) for the coming rt_httpd_respond. Names are
 * checked (token characters) and values must not hold CR or LF; RT_EINVAL
 * otherwise. Content-Length, Connection and Transfer-Encoding are the
 * server's. */
int rt_httpd_reply_header(rt_httpd_req *req, const char *name, const char *value);
/* Answers req and frees it: status (outside 100..599 becomes 500),
 * content_type (NULL: none), len bytes of body (copied; body NULL is an
 * empty body). req must not be used afterwards. */
void rt_httpd_respond(rt_httpd_req *req, int status, const char *content_type,
                      const void *body, size_t len);

typedef struct {
  size_t max_body;     /* 0: the server's (opts.max_body) */
  unsigned timeout_ms; /* bound on a deferred answer; 0: the server's */
} rt_httpd_route_opts;

/* A websocket connection, valid from on_open until on_close returns. */
typedef struct rt_httpd_ws rt_httpd_ws;

typedef struct {
  /* Before the upgrade, with the request's headers (check Origin here; req
   * is valid for the call only, do not answer it). Returns 0 to accept, or
   * the HTTP status (like 403) that refuses the upgrade. NULL: accept. */
  int (*on_open)(void *ud, rt_httpd_ws *ws, rt_httpd_req *req);
  /* One whole message (fragments joined), binary or UTF-8 text (checked by
   * lws). data is borrowed for the call. */
  void (*on_message)(void *ud, rt_httpd_ws *ws, const void *data, size_t len,
                     bool binary);
  /* Once, for every accepted connection, however it ends; ws is freed when
   * it returns. NULL: nothing to do. */
  void (*on_close)(void *ud, rt_httpd_ws *ws);
  size_t max_message;  /* 0: opts.ws_max_message */
  size_t max_queued;   /* 0: opts.ws_max_queued */
} rt_httpd_ws_callbacks;

typedef struct {
  const char *listen;      /* see rt_httpd_check_listen */
  int max_connections;     /* 0: RT_HTTPD_DEFAULT_MAX_CONN */
  size_t max_body;         /* 0: RT_HTTPD_MAX_BODY (routes may override) */
  int max_header;          /* 0: RT_HTTPD_MAX_HEADER, all headers together */
  unsigned reply_timeout_ms; /* 0: RT_HTTPD_REPLY_TIMEOUT_MS */
  size_t ws_max_message;   /* 0: RT_HTTPD_WS_MAX_MESSAGE */
  size_t ws_max_queued;    /* 0: RT_HTTPD_WS_MAX_QUEUED */
  int header_timeout_s;    /* 0: RT_HTTPD_HEADER_TIMEOUT_S, headers complete after connect */
  int idle_timeout_s;      /* 0: RT_HTTPD_KEEPALIVE_S, quiet between keep-alive requests */
  int body_timeout_s;      /* 0: RT_HTTPD_BODY_DEADLINE_S, headers to a body's last byte */
  int ws_max_connections;  /* 0: half the cap; at most the cap minus one */
} rt_httpd_opts;
/* Checks a listen address the way rt_httpd_start reads it: "IPv4:PORT",
 * "[IPv6]:PORT", "localhost:PORT" (127.0.0.1), ":PORT", "*:PORT" or "PORT"
 * (every IPv4 interface); "[::]:PORT" is every IPv6 interface (IPv6 only).
 * Host names are refused. PORT is 0..65535; 0 picks an ephemeral port.
 * Returns RT_OK, or RT_EINVAL with *err (if err is not NULL; the caller
 * frees it) set to the very message rt_httpd_start gives, like
 * "cannot listen on ::1:80: an IPv6 address goes in brackets, like [::1]:8080".
 * `shopbot check` uses it so that it refuses exactly what `run` refuses. */
int rt_httpd_check_listen(const char *listen, char **err);

/* Starts listening on loop (borrowed; must outlive the server) on o->listen.
 * On RT_OK *out is the new server. On error *out is NULL and *err (if err is
 * not NULL) gets a message the caller frees, like "cannot listen on
 * 127.0.0.1:8080: address in use": RT_EINVAL for a malformed listen string
 * (the message of rt_httpd_check_listen), RT_ENET when the address cannot be
 * bound. In the rare case lws fails after it has already attached handles to
 * the loop, they are torn down on later loop turns by themselves; nothing
 * else is left behind. May raise the process's soft RLIMIT_NOFILE (see
 * Limits above). */
int rt_httpd_start(uv_loop_t *loop, const rt_httpd_opts *o, rt_httpd **out,
                   char **err);

/* rt_httpd_start with default options. */
int rt_httpd_new(uv_loop_t *loop, const char *listen, rt_httpd **out,
                 char **err);

/* Routes requests for method (NULL or "*": any; "GET" also takes HEAD) and
 * path to fn(ud). path is exact ("/healthz" matches "/healthz" only) or,
 * ending in a slash and a star, a prefix: "/tg/" + "*" matches "/tg" and
 * every path under "/tg/"; "/" + "*" matches all. An exact route beats a prefix, the longest
 * prefix beats shorter ones. Registering the same method and path again
 * replaces the handler. Strings are copied. Returns RT_EINVAL if path does
 * not start with '/' or fn is NULL. */
int rt_httpd_route(rt_httpd *s, const char *method, const char *path,
                   rt_httpd_handler fn, void *ud);
/* rt_httpd_route with per-route limits (o may be NULL). */
int rt_httpd_route_ex(rt_httpd *s, const char *method, const char *path,
                      const rt_httpd_route_opts *o, rt_httpd_handler fn, void *ud);

/* A websocket endpoint at the exact path; cb is copied. Same path again
 * replaces it (open connections keep the callbacks they opened with). */
int rt_httpd_ws_route(rt_httpd *s, const char *path, const rt_httpd_ws_callbacks *cb,
                      void *ud);
/* Queues one message (copied) for the client; messages leave in the order
 * queued. Returns RT_OK; RT_ELIMIT when the bytes queued would pass the
 * cap: the slow consumer is then disconnected (on_close follows from the
 * loop); RT_ENET when the connection is closing. Never blocks. */
int rt_httpd_ws_send(rt_httpd_ws *ws, const void *data, size_t len, bool binary);
/* Sends a close frame (code like 1000 or 1008, reason may be NULL) after
 * the messages already queued, then closes. on_close follows. */
void rt_httpd_ws_close(rt_httpd_ws *ws, int code, const char *reason);
/* The plugin's pointer for this connection (NULL until set). */
void rt_httpd_ws_set_user(rt_httpd_ws *ws, void *user);
void *rt_httpd_ws_user(const rt_httpd_ws *ws);
/* Bytes queued and not yet handed to the socket. */
size_t rt_httpd_ws_queued(const rt_httpd_ws *ws);

/* The port actually bound (the ephemeral one when PORT was 0). */
int rt_httpd_port(const rt_httpd *s);
/* Accepted connections open now, and the cap in force (after fitting it
 * under the open-files limit). */
int rt_httpd_connections(const rt_httpd *s);
int rt_httpd_max_connections(const rt_httpd *s);
/* Websockets open now, and their cap (upgrades past it get 503). */
int rt_httpd_ws_connections(const rt_httpd *s);
int rt_httpd_ws_max_connections(const rt_httpd *s);
/* Connections closed while reading a request body: past body_timeout_s
 * (408), and cut off at the cap to make room with none idle (503). */
void rt_httpd_body_stats(const rt_httpd *s, uint64_t *timeouts, uint64_t *evictions);

/* Stops listening, drops open connections, destroys the lws context and,
 * once lws has closed every uv handle it added to the loop, frees s and
 * calls done(ud) (done may be NULL) from the loop. The loop must keep
 * running until then; afterwards the server leaves nothing on the loop.
 * s must not be used after this call. */
void rt_httpd_close(rt_httpd *s, void (*done)(void *ud), void *ud);

#endif
