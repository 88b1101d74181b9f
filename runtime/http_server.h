/* http_server.h -- the HTTP server: libwebsockets on the runtime's uv loop.
 *
 * One rt_httpd owns an lws context with one vhost listening on one IPv4
 * address (HTTP/1.1, keep-alive, no TLS), its routing table and the uv timer
 * that drives teardown. lws runs on the caller's loop as a "foreign" loop:
 * it adds its own uv handles (listen socket, connections, an idle and a timer
 * handle) and removes them all during rt_httpd_close. Nothing blocks and
 * nothing runs on another thread; handlers are called on the loop.
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

/* Starts listening on loop (borrowed; must outlive the server). listen is
 * "IP:PORT", ":PORT" or "PORT" (all interfaces), "localhost:PORT"; IPv4
 * only; PORT 0 picks an ephemeral port (see rt_httpd_port).
 * On RT_OK *out is the new server. On error *out is NULL and *err (if err is
 * not NULL) gets a message the caller frees, like "cannot listen on
 * 127.0.0.1:8080: address in use": RT_EINVAL for a malformed listen string,
 * RT_ENET when the address cannot be bound. In the rare case lws fails after
 * it has already attached handles to the loop, they are torn down on later
 * loop turns by themselves; nothing else is left behind. */
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

/* Stops listening, drops open connections, destroys the lws context and,
 * once lws has closed every uv handle it added to the loop, frees s and
 * calls done(ud) (done may be NULL) from the loop. The loop must keep
 * running until then; afterwards the server leaves nothing on the loop.
 * s must not be used after this call. */
void rt_httpd_close(rt_httpd *s, void (*done)(void *ud), void *ud);

#endif
