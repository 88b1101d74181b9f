/* http_client.h -- outgoing HTTP requests, libcurl multi driven by the uv loop
 * (and, for plain http:// to a numeric address, connections of its own:
 * rt_http_set_direct below).
 *
 * One rt_http per loop owns a curl multi handle, one uv_timer_t for curl's
 * timeout and one uv_poll_t per socket curl asks us to watch. Requests run
 * concurrently on the loop; nothing blocks and nothing runs on another
 * thread. Each request owns its curl easy handle, its copy of the request
 * body and headers, and the response buffer until its callback returns.
 *
 * Loop assumptions: every function here is called on the loop's thread.
 * A request's callback is always called from the loop (a socket or timer
 * event), never from inside rt_http_request, rt_http_cancel or rt_http_close,
 * and exactly once unless the request is cancelled with rt_http_cancel.
 *
 * Defaults: HTTP/1.1, redirects not followed, proxies from the environment
 * ignored, no signals, http and https only, gzip/deflate accepted through
 * curl and no encoding asked for by a direct request (either way the body
 * handed to the callback is decoded). An HTTP error status (4xx, 5xx) is not
 * a transport error: err is RT_OK and status carries it. */
#ifndef RT_HTTP_CLIENT_H
#define RT_HTTP_CLIENT_H
#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

typedef struct rt_http rt_http;          /* one per loop: the multi handle */
typedef struct rt_http_req rt_http_req;  /* one in-flight request */

typedef struct {
  int status;         /* HTTP status; 0 whenever err != RT_OK */
  char *body;         /* NUL-terminated (body[body_len] == 0), never NULL;
                       * empty when err != RT_OK. Owned by the client; the
                       * callback may take it by setting resp->body = NULL
                       * and then frees it with free(). */
  size_t body_len;
  char *content_type; /* Content-Type value or NULL; same ownership as body */
  int err;            /* RT_OK, RT_ETIMEOUT, RT_ENET, RT_ELIMIT */
  char errmsg[256];   /* "" on RT_OK; "cancelled" when rt_http_close
                       * cancelled the request */
  double total_ms;    /* wall time from rt_http_request to completion */
  long retry_after;   /* Retry-After in seconds (an HTTP-date is converted
                       * to seconds from now), -1 if absent */
} rt_http_resp;

/* resp is borrowed for the duration of the callback. */
typedef void (*rt_http_cb)(rt_http_resp *resp, void *ud);

typedef struct {
  const char *method;   /* "GET" (default when NULL), "POST", "PUT",
                         * "PATCH", "DELETE", "HEAD" */
  const char *url;      /* http:// or https:// */
  const char *body;     /* borrowed, copied by rt_http_request; may be NULL */
  size_t body_len;
  const char *const *headers; /* NULL-terminated "Name: value", copied */
  long timeout_ms;      /* whole request; 0 -> 30000 */
  size_t max_body;      /* response cap; 0 -> 8 MiB; over it -> RT_ELIMIT */
  bool keep_head;       /* over max_body, body is the answer's first max_body
                         * bytes instead of "" (err still RT_ELIMIT, status
                         * 0): for a caller that can read a part (telegram.c
                         * takes the first update's id of an answer too big) */
} rt_http_opts;

/* Returns a new client on loop (borrowed; must outlive the client).
 * Never NULL: allocation failure aborts, as everywhere in the host. Cheap:
 * libcurl is loaded and set up by the first request to the network. */
rt_http *rt_http_new(uv_loop_t *loop);

/* Cancels every in-flight request, closes the uv handles and frees h once
 * they are closed (at once for a client that never made a request), then
 * calls done(ud) (done may be NULL). Requests that were
 * in flight get their callback, from the loop, with err RT_ENET and errmsg
 * "cancelled" before done is called. After rt_http_close, h must not be used;
 * rt_http_request on a closing client is a programming error (RT_EINVAL). */
void rt_http_close(rt_http *h, void (*done)(void *ud), void *ud);

/* Starts a request. On RT_OK the callback will be called later from the
 * loop, and *out (if out is not NULL) receives a borrowed handle valid until
 * the callback returns or rt_http_cancel is called. On error nothing is
 * started and cb is never called: RT_EINVAL for bad options (no url, a
 * malformed method) or a closing client, RT_ENET if curl refuses the
 * transfer. */
int rt_http_request(rt_http *h, const rt_http_opts *o, rt_http_cb cb, void *ud,
                    rt_http_req **out);

/* Stops a request and frees it. Its callback is NOT called, not even when
 * the transfer had already finished and the callback was only queued.
 * Safe from inside any rt_http callback (including for another request);
 * r must be a live request (NULL is ignored). */
void rt_http_cancel(rt_http_req *r);

/* A transport answers the client's requests instead of the network: the
 * transcript runner's scripted replies, unit tests. fn fills resp for the
 * request o (all borrowed for the call): status, or err (RT_ETIMEOUT,
 * RT_ENET...) with errmsg; body malloc'd (the client owns it then) or NULL
 * for none. The callback then runs later from the loop, exactly as for a
 * network answer (same contract, cancel included). fn NULL: the network
 * again. Set it before the first request. */
typedef void (*rt_http_transport)(void *ud, const rt_http_opts *o, rt_http_resp *resp);
void rt_http_set_transport(rt_http *h, rt_http_transport fn, void *ud);

/* Plain http:// requests to a numeric IPv4 address (GET and POST, headers
 * that only add) go over the client's own keep-alive connections instead
 * of curl, which costs ten times as much per request (http_client.c,
 * "direct"); everything else, and every request after
 * rt_http_set_direct(h, false), goes through curl. For the tests that run
 * the same cases both ways. */
void rt_http_set_direct(rt_http *h, bool on);

/* Requests started and not yet completed or cancelled. */
size_t rt_http_inflight(const rt_http *h);

#endif
