/* subproc.h -- running a helper program off the loop (OCR, image scaling).
 *
 * One rt_subproc is one child process started with uv_spawn, its stdout and
 * stderr read into buffers on the loop, and a wall-clock limit: when it runs
 * out the whole process group gets SIGKILL (a pipeline under sh dies with
 * it). A memory limit is set by running the program under
 * `sh -c 'ulimit -v KB; exec "$0" "$@"'` (uv_spawn has no pre-exec hook and
 * no threads are allowed here). The callback runs exactly once, from the
 * loop, unless rt_subproc_cancel came first. */
#ifndef RT_SUBPROC_H
#define RT_SUBPROC_H
#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

typedef struct rt_subproc rt_subproc;

typedef struct {
  int err;            /* RT_OK (the program ran and exited), RT_ETIMEOUT,
                       * RT_ELIMIT (output over max_out), RT_EIO (could not
                       * start: errmsg says why) */
  int exit_status;    /* when err == RT_OK */
  int term_signal;    /* when killed by a signal (e.g. the memory limit) */
  char *out;          /* stdout, NUL-terminated, never NULL; owned by the
                       * spawn: take it by setting r->out = NULL, then free() */
  size_t out_len;
  const char *errout; /* the last 4 KiB of stderr, NUL-terminated */
  char errmsg[160];
  double ms;          /* wall time from start to exit */
} rt_subproc_result;

typedef void (*rt_subproc_cb)(rt_subproc_result *r, void *ud);

typedef struct {
  const char *const *argv;  /* argv[0] is looked up in PATH; NULL-terminated */
  const char *const *env;   /* extra "NAME=value" entries added to the
                             * process's environment; may be NULL */
  long timeout_ms;          /* 0 -> 10000 */
  long mem_kb;              /* address-space limit; 0 = none */
  size_t max_out;           /* stdout cap; 0 -> 4 MiB */
} rt_subproc_opts;

/* Starts the child. On RT_OK cb will be called later from the loop and *out
 * (may be NULL) is valid until then or until rt_subproc_cancel. On error
 * nothing is started, cb is never called and errmsg (160 bytes, may be
 * NULL) says why. */
int rt_subproc_start(uv_loop_t *loop, const rt_subproc_opts *o, rt_subproc_cb cb, void *ud,
                   rt_subproc **out, char *errmsg);

/* Whether path is a file name and nothing more to the helpers we run
 * (ImageMagick reads "text:/etc/passwd" as an instruction, "a[1]" as a frame,
 * "*.jpg" as a pattern, "@list" as a list of files): no control characters,
 * none of []*?{}, no ".." component, and it is absolute or, when relative,
 * the caller passes it as "./path". Spaces and UTF-8 are fine. */
bool rt_subproc_plain_file(const char *path);

/* Kills the child (its process group) and frees the spawn once its handles
 * are closed; cb is not called. Safe from inside any loop callback. */
void rt_subproc_cancel(rt_subproc *s);
#endif
