/* subproc.c -- see subproc.h. */
#include "subproc.h"
#include "buf.h"
#include "rt.h"
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ERR_KEEP 4096

extern char **environ;

struct rt_subproc {
  uv_loop_t *loop;
  uv_process_t proc;
  uv_pipe_t outp, errp;
  uv_timer_t timer;
  int open;                 /* handles not yet closed */
  bool exited, out_eof, err_eof, cancelled, timed_out, over, reported;
  int64_t status;
  int term_signal;
  size_t max_out;
  rt_buf out, err;
  uint64_t t0;
  rt_subproc_cb cb;
  void *ud;
  char rbuf[65536];
};

static void on_closed(uv_handle_t *h) {
  rt_subproc *s = h->data;
  if (--s->open > 0) return;
  rt_buf_free(&s->out);
  rt_buf_free(&s->err);
  free(s);
}

static void close_all(rt_subproc *s) {
  uv_close((uv_handle_t *)&s->proc, on_closed);
  uv_close((uv_handle_t *)&s->timer, on_closed);
  if (!uv_is_closing((uv_handle_t *)&s->outp)) uv_close((uv_handle_t *)&s->outp, on_closed);
  if (!uv_is_closing((uv_handle_t *)&s->errp)) uv_close((uv_handle_t *)&s->errp, on_closed);
}

static void kill_group(rt_subproc *s) {
  if (s->reported) return;
  /* UV_PROCESS_DETACHED made the child a group leader: the whole pipeline,
   * also what is left of it after the leader exited. */
  if (kill(-s->proc.pid, SIGKILL) != 0 && !s->exited) uv_process_kill(&s->proc, SIGKILL);
}

/* Done once the child is reaped and both pipes hit EOF (so no output is
 * lost and no zombie is left behind, even after a cancel). */
static void maybe_finish(rt_subproc *s) {
  if (!s->exited || !s->out_eof || !s->err_eof || s->reported) return;
  s->reported = true;
  uv_timer_stop(&s->timer);
  if (!s->cancelled) {
    rt_subproc_result r;
    memset(&r, 0, sizeof r);
    r.ms = (double)(uv_hrtime() - s->t0) / 1e6;
    r.exit_status = (int)s->status;
    r.term_signal = s->term_signal;
    if (s->timed_out) {
      r.err = RT_ETIMEOUT;
      snprintf(r.errmsg, sizeof r.errmsg, "killed after %.0f ms", r.ms);
    } else if (s->over) {
      r.err = RT_ELIMIT;
      snprintf(r.errmsg, sizeof r.errmsg, "output over %zu bytes", s->max_out);
    }
    rt_buf_addc(&s->out, 0);
    s->out.len--;
    r.out = s->out.s;
    r.out_len = s->out.len;
    rt_buf_addc(&s->err, 0);
    r.errout = s->err.s;
    s->cb(&r, s->ud);
    if (r.out == NULL) s->out = (rt_buf)RT_BUF_INIT; /* the callback took it */
  }
  close_all(s);
}

static void on_exit_cb(uv_process_t *p, int64_t status, int sig) {
  rt_subproc *s = p->data;
  s->exited = true;
  s->status = status;
  s->term_signal = sig;
  maybe_finish(s);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b) {
  rt_subproc *s = h->data;
  b->base = s->rbuf;
  b->len = sizeof s->rbuf;
}

static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b) {
  rt_subproc *s = st->data;
  bool is_out = st == (uv_stream_t *)&s->outp;
  if (n < 0) {
    uv_read_stop(st);
    if (is_out) s->out_eof = true;
    else s->err_eof = true;
    maybe_finish(s);
    return;
  }
  if (n == 0) return;
  if (is_out) {
    if (s->out.len + (size_t)n > s->max_out) {
      s->over = true;
      kill_group(s);
      return;
    }
    rt_buf_add(&s->out, b->base, (size_t)n);
  } else {
    rt_buf_add(&s->err, b->base, (size_t)n);
    if (s->err.len > 2 * ERR_KEEP) rt_buf_consume(&s->err, s->err.len - ERR_KEEP);
  }
}

static void on_timeout(uv_timer_t *t) {
  rt_subproc *s = t->data;
  s->timed_out = true;
  kill_group(s);
}

int rt_subproc_start(uv_loop_t *loop, const rt_subproc_opts *o, rt_subproc_cb cb, void *ud,
                   rt_subproc **out, char *errmsg) {
  if (errmsg) errmsg[0] = '\0';
  if (!o || !o->argv || !o->argv[0] || !cb) {
    if (errmsg) snprintf(errmsg, 160, "no program");
    return RT_EINVAL;
  }
  size_t argc = 0;
  while (o->argv[argc]) argc++;
  /* sh -c 'ulimit -v KB; exec "$0" "$@"' prog args...: the limit applies to
   * the program only, and no argument is ever parsed by the shell. */
  char script[96];
  const char **argv = rt_xcalloc(argc + 4, sizeof *argv);
  size_t a = 0;
  if (o->mem_kb > 0) {
    snprintf(script, sizeof script, "ulimit -v %ld || exit 126; exec \"$0\" \"$@\"", o->mem_kb);
    argv[a++] = "/bin/sh";
    argv[a++] = "-c";
    argv[a++] = script;
  }
  for (size_t i = 0; i < argc; i++) argv[a++] = o->argv[i];
  argv[a] = NULL;

  char **env = NULL;
  if (o->env && o->env[0]) {
    size_t n = 0, m = 0;
    while (environ[n]) n++;
    while (o->env[m]) m++;
    env = rt_xcalloc(n + m + 1, sizeof *env);
    size_t k = 0;
    for (size_t i = 0; i < m; i++) env[k++] = (char *)o->env[i];
    for (size_t i = 0; i < n; i++) env[k++] = environ[i];
    env[k] = NULL;
  }

  rt_subproc *s = rt_xcalloc(1, sizeof *s);
  s->loop = loop;
  s->cb = cb;
  s->ud = ud;
  s->max_out = o->max_out ? o->max_out : ((size_t)4 << 20);
  s->out = (rt_buf)RT_BUF_INIT;
  s->err = (rt_buf)RT_BUF_INIT;
  uv_pipe_init(loop, &s->outp, 0);
  uv_pipe_init(loop, &s->errp, 0);
  uv_timer_init(loop, &s->timer);
  s->outp.data = s->errp.data = s->timer.data = s->proc.data = s;

  uv_stdio_container_t stdio[3];
  stdio[0].flags = UV_IGNORE;
  stdio[1].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
  stdio[1].data.stream = (uv_stream_t *)&s->outp;
  stdio[2].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
  stdio[2].data.stream = (uv_stream_t *)&s->errp;
  uv_process_options_t po;
  memset(&po, 0, sizeof po);
  po.file = argv[0];
  po.args = (char **)argv;
  po.env = env;
  po.exit_cb = on_exit_cb;
  po.flags = UV_PROCESS_DETACHED;
  po.stdio_count = 3;
  po.stdio = stdio;
  s->t0 = uv_hrtime();
  int rc = uv_spawn(loop, &s->proc, &po);
  free(argv);
  free(env);
  if (rc != 0) {
    if (errmsg) snprintf(errmsg, 160, "cannot run %s: %s", o->argv[0], uv_strerror(rc));
    /* uv_spawn leaves the process handle initialised on failure. */
    s->reported = true;
    s->open = 4;
    close_all(s);
    return RT_EIO;
  }
  s->open = 4;
  uv_read_start((uv_stream_t *)&s->outp, on_alloc, on_read);
  uv_read_start((uv_stream_t *)&s->errp, on_alloc, on_read);
  uv_timer_start(&s->timer, on_timeout, (uint64_t)(o->timeout_ms > 0 ? o->timeout_ms : 10000), 0);
  if (out) *out = s;
  return RT_OK;
}

void rt_subproc_cancel(rt_subproc *s) {
  if (!s || s->cancelled) return;
  s->cancelled = true;
  kill_group(s);
}

bool rt_subproc_plain_file(const char *p) {
  if (!p || !p[0] || p[0] == '-' || p[0] == '@') return false;
  for (const unsigned char *s = (const unsigned char *)p; *s; s++)
    if (*s < 0x20 || *s == 0x7f || strchr("[]*?{}", *s)) return false;
  for (const char *s = p; (s = strstr(s, "..")) != NULL; s += 2)
    if ((s == p || s[-1] == '/') && (s[2] == '/' || s[2] == '\0')) return false;
  /* a coder prefix ("text:") only counts before the first slash */
  const char *colon = strchr(p, ':'), *slash = strchr(p, '/');
  if (colon && (!slash || colon < slash)) return false;
  return true;
}
