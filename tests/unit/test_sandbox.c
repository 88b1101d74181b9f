/* test_sandbox.c -- every escape attempt in tests/sandbox/escapes.txt
 * fails with its expected error, and the state stays usable after each:
 * a normal step still runs and library tables still work. */
#include "lvm.h"
#include "rt.h"
#include "t.h"
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int64_t fake_now(void *ud) { (void)ud; return 1772434800000LL; }
static rt_host host = {.now_ms = fake_now};
static char dir[64];

static void write_flow(const char *body) {
  char path[128];
  snprintf(path, sizeof path, "%s/main.lua", dir);
  FILE *f = fopen(path, "w");
  fprintf(f, "return flow 'main' {\n  start = function(c, ev)\n%s\n  end,\n"
             "  ok = function(c, ev) c:say(('fine'):upper() .. #shop.name) end,\n}\n", body);
  fclose(f);
}

static rt_bundle *load(void) {
  json_t *shop = json_pack("{s:s, s:{s:s}}", "name", "shop", "persona", "name", "V");
  rt_bundle_opts o = {.flows_dir = dir, .start_flow = "main", .shop = shop,
                      .mem_limit = 8 << 20, .step_instructions = 100000, .host = &host};
  rt_bundle *b = NULL;
  char *err = NULL;
  if (rt_bundle_load(&o, &b, &err) != RT_OK) {
    fprintf(stderr, "load: %s\n", err);
    free(err);
  }
  json_decref(shop);
  return b;
}

static int run_step(rt_bundle *b, const char *step, json_t **err_out) {
  json_t *conv = json_pack("{s:i, s:s, s:s, s:s, s:s}", "id", 1, "channel", "t", "chat", "1",
                           "flow", "main", "step", step);
  json_t *ev = json_pack("{s:s, s:s}", "kind", "text", "text", "x");
  rt_lturn *t = NULL;
  int st = rt_lturn_start(b, NULL, conv, "{}", ev, &t);
  if (err_out) *err_out = st == RT_LTURN_ERROR ? json_incref(rt_lturn_error(t)) : NULL;
  rt_lturn_free(t);
  json_decref(conv);
  json_decref(ev);
  return st;
}

T(escapes) {
  char path[512];
  snprintf(path, sizeof path, "%s/tests/sandbox/escapes.txt", getenv("RT_SOURCE_DIR") ? getenv("RT_SOURCE_DIR") : RT_SOURCE_DIR);
  FILE *f = fopen(path, "r");
  CHECK(f != NULL);
  if (!f) return;
  char line[1024];
  int n = 0;
  while (fgets(line, sizeof line, f)) {
    if (line[0] == '#' || line[0] == '\n') continue;
    char *sep = strstr(line, " ||| ");
    if (!sep) continue;
    *sep = '\0';
    char *want = sep + 5;
    want[strcspn(want, "\n")] = '\0';
    write_flow(line);
    rt_bundle *b = load();
    CHECK(b != NULL);
    if (!b) continue;
    json_t *err = NULL;
    int st = run_step(b, "start", &err);
    const char *msg = err ? json_string_value(json_object_get(err, "msg")) : NULL;
    if (st != RT_LTURN_ERROR || !msg || !strstr(msg, want)) {
      fprintf(stderr, "  escape not stopped as expected: %s\n    want: %s\n    got: %s\n", line, want,
              msg ? msg : "(no error)");
      CHECK(0);
    }
    json_decref(err);
    /* The state is still intact for the next conversation. */
    CHECK(run_step(b, "ok", NULL) == RT_LTURN_DONE);
    rt_bundle_unref(b);
    n++;
  }
  fclose(f);
  CHECK(n >= 25);
}

int main(void) {
  snprintf(dir, sizeof dir, "/tmp/test_sandbox.XXXXXX");
  if (!mkdtemp(dir)) return 1;
  T_RUN(escapes);
  char p[128];
  snprintf(p, sizeof p, "%s/main.lua", dir);
  unlink(p);
  rmdir(dir);
  return T_DONE();
}
