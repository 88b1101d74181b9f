/* reload.c -- load, check in a child, swap (see reload.h). */
#include "reload.h"
#include "log.h"
#include "lvm.h"
#include "transcript.h"
#include <dirent.h>
#include <stdlib.h>
#include <string.h>

struct rt_reload {
  uv_loop_t *loop;
  rt_config *cfg;
  rt_engine *e;
  rt_transcript_check *check;   /* the child checking `pending` */
  rt_bundle *pending;
  uint64_t pending_t0;
  bool closing;
  void (*on_result)(void *, int, const char *);
  void *on_result_ud;
};

void rt_reload_on_result(rt_reload *r, void (*fn)(void *, int, const char *), void *ud) {
  r->on_result = fn;
  r->on_result_ud = ud;
}

rt_reload *rt_reload_new(uv_loop_t *loop, rt_config *cfg, rt_engine *e) {
  rt_reload *r = rt_xcalloc(1, sizeof *r);
  r->loop = loop;
  r->cfg = cfg;
  r->e = e;
  return r;
}

static bool has_transcripts(const char *dir) {
  DIR *d = opendir(dir);
  struct dirent *de;
  bool any = false;
  while (d && !any && (de = readdir(d))) {
    size_t n = strlen(de->d_name);
    any = n > 5 && strcmp(de->d_name + n - 5, ".chat") == 0;
  }
  if (d) closedir(d);
  return any;
}

static void checked(void *ud, int rc, const char *err) {
  rt_reload *r = ud;
  rt_bundle *b = r->pending;
  r->pending = NULL;
  r->check = NULL;
  if (rc == RT_OK) {
    rt_engine_swap(r->e, b, r->pending_t0);
  } else {
    rt_bundle_unref(b);
    rt_engine_reload_failed(r->e, err);
  }
  if (r->on_result) r->on_result(r->on_result_ud, rc, err);
}

/* Stops a check still running; closed(ud) once its child is reaped. */
static void cancel(rt_reload *r, void (*closed)(void *), void *ud) {
  if (!r->check) return;
  rt_log(RT_LOG_INFO, "reload-check-cancelled", "version=%s reason=%s",
         rt_bundle_version(r->pending), r->closing ? "shutdown" : "newer-reload");
  rt_transcript_check_cancel(r->check, closed, ud);
  r->check = NULL;
  rt_bundle_unref(r->pending);
  r->pending = NULL;
}

/* Starts the check of b when the shop asks for one: then RT_OK with
 * *started, and b is kept in r->pending. RT_OK without *started: nothing
 * to check. Else RT_EIO and a message (the child could not start). */
static int start_check(rt_reload *r, rt_bundle *b, uint64_t t0, bool *started, char **err) {
  *started = false;
  if (!rt_config_bool(r->cfg, "tests.on_reload", 0)) return RT_OK;
  char *dir = rt_config_path(r->cfg, rt_config_str(r->cfg, "tests.dir", "tests"));
  if (!has_transcripts(dir)) {
    free(dir);
    return RT_OK;
  }
  int64_t limit_s = rt_config_int(r->cfg, "tests.reload_timeout_s", 60);
  if (limit_s < 1 || limit_s > 3600) limit_s = 60;   /* the schema keeps it in 1..3600 */
  int rc = rt_transcript_check_start(r->loop, rt_config_dir(r->cfg), dir, limit_s * 1000,
                                     checked, r, &r->check, err);
  free(dir);
  if (rc != RT_OK) return rc;
  r->pending = b;
  r->pending_t0 = t0;
  *started = true;
  rt_log(RT_LOG_INFO, "reload-check", "version=%s timeout_s=%lld", rt_bundle_version(b),
         (long long)limit_s);
  return RT_OK;
}

int rt_reload_run(rt_reload *r, char **err) {
  uint64_t t0 = uv_hrtime();
  cancel(r, NULL, NULL);
  rt_bundle *b = NULL;
  bool started = false;
  int rc = rt_engine_load(r->e, &b, err);
  if (rc == RT_OK && (rc = start_check(r, b, t0, &started, err)) != RT_OK) rt_bundle_unref(b);
  if (started) return RT_OK;   /* the result comes with the check: checked */
  if (rc == RT_OK) rt_engine_swap(r->e, b, t0);
  else rt_engine_reload_failed(r->e, *err);
  if (r->on_result) r->on_result(r->on_result_ud, rc, rc == RT_OK ? NULL : *err);
  return rc;
}

void rt_reload_close(rt_reload *r, void (*done)(void *), void *ud) {
  r->closing = true;
  if (r->check) {
    /* Its child is killed, and done comes once it has been reaped (no
     * zombie, no orphan). */
    cancel(r, done, ud);
    free(r);
    return;
  }
  free(r);
  if (done) done(ud);
}
