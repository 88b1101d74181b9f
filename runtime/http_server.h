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
 * the server stops accepting and new connects wait in the kernel's backlog
 * until one closes. The cap is lowered, with a warning, to fit under the
 * open-files limit (RLIMIT_NOFILE, whose soft limit is raised toward the hard
 * one if that is needed) minus a reserve for the rest of the process, so the
 * server never runs the process out of descriptors. If accept still fails
 * for want of a resource (EMFILE, ENFILE...), it pauses accepting with a
 * back-off of 50 ms doubling to 1 s instead of retrying at once.
 * Idle and slow connections are closed: request headers not complete
 * RT_HTTPD_HEADER_TIMEOUT_S after connecting (silent or slowloris
 * connections), a request body that stalls for RT_HTTPD_BODY_TIMEOUT_S,
 * and RT_HTTPD_KEEPALIVE_S of quiet between keep-alive requests.
 *
 * Requests are routed by path prefix (see rt_httpd_route); a path with no
 * route gets 404 {"error":"not found"}. Request bodies (POST, PUT, PATCH)
 * must carry Content-Length (else 411) and are capped at 1 MiB (else 413).
 *
 * lws's own log goes to rt_log at warn level (lws notices and info are
 * dropped); the lws log setting is process-wide. */
#ifndef RT_HTTP_SERVER_H
#define RT_HTTP_SERVER_H
#include <stddef.h>
#include <uv.h>

#define RT_HTTPD_MAX_BODY ((size_t)1 << 20)
#define RT_HTTPD_DEFAULT_MAX_CONN 256
#define RT_HTTPD_BODY_TIMEOUT_S 5
#define RT_HTTPD_HEADER_TIMEOUT_S 10
#define RT_HTTPD_KEEPALIVE_S 30

typedef struct rt_httpd rt_httpd;

/* A handler's answer. The server pre-fills status 200, content_type
 * "application/json", body NULL, len 0. body is owned by the server once the
 * handler returns and is freed with free() (allocate it with rt_xmalloc,
 * rt_xstrdup, rt_xasprintf, jansson's json_dumps...); a non-NULL body with
 * len 0 is taken as a C string (len = strlen(body)). content_type is borrowed
 * and copied when the handler returns. A status outside 100..599 becomes 500. */
typedef struct {
  int status;
  const char *content_type;
  char *body;
  size_t len;
} rt_httpd_reply;

/* Called on the loop, synchronously, with everything borrowed for the call:
 * method "GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS" or "HEAD"; path
 * URL-decoded and normalised by lws ("/a/../b" -> "/b"); query without the
 * '?', "" when absent, re-encoded as key=value pairs joined by '&'; body
 * NUL-terminated ("" when there is none, at most RT_HTTPD_MAX_BODY bytes).
 * The handler must fill reply before returning and must not call
 * rt_httpd_close's done path synchronously (rt_httpd_close itself is fine:
 * it only takes effect on the next loop turn). */
typedef void (*rt_httpd_handler)(void *ud, const char *method, const char *path,
                                 const char *query, const char *body,
                                 size_t body_len, rt_httpd_reply *reply);

typedef struct {
  const char *listen;  /* see rt_httpd_check_listen */
  int max_connections; /* 0: RT_HTTPD_DEFAULT_MAX_CONN */
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

/* Routes requests whose path is path_prefix, or lies under it, to fn(ud).
 * "/api" matches "/api" and "/api/x" but not "/apix"; a prefix ending in '/'
 * ("/", "/hooks/") matches every path starting with it. The longest matching
 * prefix wins; registering the same prefix again replaces the handler.
 * path_prefix is copied. Returns RT_EINVAL if it does not start with '/'. */
int rt_httpd_route(rt_httpd *s, const char *path_prefix, rt_httpd_handler fn,
                   void *ud);

/* The port actually bound (the ephemeral one when PORT was 0). */
int rt_httpd_port(const rt_httpd *s);
/* Accepted connections open now, and the cap in force (after fitting it
 * under the open-files limit). */
int rt_httpd_connections(const rt_httpd *s);
int rt_httpd_max_connections(const rt_httpd *s);

/* Stops listening, drops open connections, destroys the lws context and,
 * once lws has closed every uv handle it added to the loop, frees s and
 * calls done(ud) (done may be NULL) from the loop. The loop must keep
 * running until then; afterwards the server leaves nothing on the loop.
 * s must not be used after this call. */
void rt_httpd_close(rt_httpd *s, void (*done)(void *ud), void *ud);

#endif
