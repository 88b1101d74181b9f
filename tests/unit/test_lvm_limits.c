/* test_lvm_limits.c -- limits of the Lua host that the escape list cannot
 * express: finalizers at load time, log lines of any length, the step
 * timeout for CPU work, host-side conversions bounded by size, and values
 * the host hands flows staying private to one turn. */
#include "lvm.h"
#include "rt.h"
#include "t.h"
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int64_t fake_now(void *ud) { (void)ud; return 1772434800000LL; }
static rt_host host = {.now_ms = fake_now};
static char dir[64];

static void write_file(const char *src) {
  char path[128];
  snprintf(path, sizeof path, "%s/main.lua", dir);
  FILE *f = fopen(path, "w");
  fputs(src, f);
  fclose(f);
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static rt_bundle *load_opts(int64_t instr, int64_t timeout_ms, char **err) {
  rt_bundle_opts o = {.flows_dir = dir, .start_flow = "main", .mem_limit = 16 << 20,
                      .step_instructions = instr, .step_timeout_ms = timeout_ms,
                      .load_instructions = 1000000, .host = &host};
  rt_bundle *b = NULL;
  *err = NULL;
  rt_bundle_load(&o, &b, err);
  return b;
}

/* Runs step `step` with text; returns the status, the error message and
 * code (owned copies) if it failed. */
static int run(rt_bundle *b, const char *step, const char *text, char **msg, char **code) {
  json_t *conv = json_pack("{s:i, s:s, s:s, s:s, s:s}", "id", 1, "channel", "t", "chat", "1",
                           "flow", "main", "step", step);
  json_t *ev = json_pack("{s:s, s:s}", "kind", "text", "text", text);
  rt_lturn *t = NULL;
  int st = rt_lturn_start(b, NULL, conv, "{}", ev, &t);
  if (msg) *msg = NULL;
  if (code) *code = NULL;
  if (st == RT_LTURN_ERROR) {
    json_t *e = rt_lturn_error(t);
    if (msg) *msg = strdup(json_string_value(json_object_get(e, "msg")));
    if (code) *code = strdup(json_string_value(json_object_get(e, "code")));
  }
  rt_lturn_free(t);
  json_decref(conv);
  json_decref(ev);
  return st;
}

/* A finalizer at a file's top level is refused at load: `check`, start
 * and hot reload report it instead of hanging in the collector. */
T(gc_at_load) {
  write_file("setmetatable({}, {__gc = function() while true do end end})\n"
             "return flow 'main' { start = function(c, ev) c:say('ok') end }\n");
  char *err;
  double t0 = now_s();
  rt_bundle *b = load_opts(100000, 0, &err);
  CHECK(b == NULL);
  CHECK(err && strstr(err, "__gc is not allowed"));
  CHECK(err && strstr(err, "main.lua:1"));
  CHECK(now_s() - t0 < 5);
  free(err);
  rt_bundle_unref(b);
}

/* The same inside a step that allocates enough to start a collection. */
T(gc_in_step) {
  write_file("return flow 'main' { start = function(c, ev)\n"
             "  setmetatable({}, {__gc = function() while true do end end})\n"
             "  local t = {} for i = 1, 200000 do t[i] = {i} end c:say('survived') end,\n"
             "  ok = function(c, ev) c:say('fine') end }\n");
  char *err, *msg;
  rt_bundle *b = load_opts(10000000, 0, &err);
  CHECK(b != NULL);
  if (!b) { free(err); return; }
  CHECK(run(b, "start", "x", &msg, NULL) == RT_LTURN_ERROR);
  CHECK(msg && strstr(msg, "__gc is not allowed"));
  free(msg);
  CHECK(run(b, "ok", "x", NULL, NULL) == RT_LTURN_DONE);
  rt_bundle_unref(b);
}

/* log.info / print with texts far past the Lua buffer's first block, and
 * many arguments: no heap errors (ASan), the step goes on. */
T(log_long_text) {
  write_file("return flow 'main' { start = function(c, ev)\n"
             "  log.info('customer wrote:', ev.text, ev.text, 42, true, nil, {})\n"
             "  print(ev.text, string.rep('z', 5000))\n"
             "  for i = 1, 50 do log.warn(string.rep('я', i * 40)) end\n"
             "  c:say('ok') end }\n");
  char *err;
  rt_bundle *b = load_opts(10000000, 0, &err);
  CHECK(b != NULL);
  if (!b) { free(err); return; }
  char text[4000];
  for (size_t i = 0; i + 2 < sizeof text; i += 2) memcpy(text + i, "я", 2);
  text[sizeof text - 2] = '\0';
  CHECK(run(b, "start", text, NULL, NULL) == RT_LTURN_DONE);
  rt_bundle_unref(b);
}

/* With an instruction budget too large to matter, the step timeout still
 * stops a busy step: it is checked while Lua runs, not only while a step
 * waits on I/O. */
T(timeout_while_running) {
  write_file("return flow 'main' { start = function(c, ev) while true do end end,\n"
             "  ok = function(c, ev) c:say('fine') end }\n");
  char *err, *msg, *code;
  rt_bundle *b = load_opts((int64_t)1 << 50, 300, &err);
  CHECK(b != NULL);
  if (!b) { free(err); return; }
  double t0 = now_s();
  CHECK(run(b, "start", "x", &msg, &code) == RT_LTURN_ERROR);
  double took = now_s() - t0;
  CHECK(took < 5);
  CHECK(code && strcmp(code, "timeout") == 0);
  CHECK(msg && strstr(msg, "limits.step_timeout_ms"));
  free(msg);
  free(code);
  CHECK(run(b, "ok", "x", NULL, NULL) == RT_LTURN_DONE);
  rt_bundle_unref(b);
}

/* Steps start without the budget's count hook; the CPU tick sets it on a
 * step that runs 5 ms or more (lvm.c, "the tick"). A long bounded step is
 * caught and counted as long; a busy loop past the budget is still stopped
 * on the budget, and a pcall around it does not save it; the next step of
 * the same state runs. */
T(tick_counts_long_steps) {
  write_file("return flow 'main' { start = function(c, ev) end,\n"
             "  long = function(c, ev) local n = 0\n"
             "    for i = 1, 20000000 do n = n + i % 7 end c:say('done ' .. n) end,\n"
             "  spin = function(c, ev) while true do pcall(function() while true do end end) end end,\n"
             "  ok = function(c, ev) c:say('fine') end }\n");
  char *err, *msg, *code;
  rt_bundle *b = load_opts(200000000, 0, &err);
  CHECK(b != NULL);
  if (!b) { free(err); return; }
  uint64_t n0 = rt_lvm_long_steps();
  CHECK(run(b, "long", "x", &msg, NULL) == RT_LTURN_DONE);
  CHECK(rt_lvm_long_steps() == n0 + 1);
  rt_bundle_unref(b);
  b = load_opts(1000000, 0, &err);
  CHECK(b != NULL);
  if (!b) { free(err); return; }
  double t0 = now_s();
  CHECK(run(b, "spin", "x", &msg, &code) == RT_LTURN_ERROR);
  CHECK(now_s() - t0 < 5);
  CHECK(code && strcmp(code, "budget") == 0);
  CHECK(msg && strstr(msg, "instructions used up"));
  free(msg);
  free(code);
  CHECK(rt_lvm_long_steps() == n0 + 2);
  CHECK(run(b, "ok", "x", NULL, NULL) == RT_LTURN_DONE);
  rt_bundle_unref(b);
}

/* One string referenced many times: the host refuses before the copy
 * passes the bound, fast, instead of growing its own memory past the Lua
 * cap. */
T(conversion_bounded) {
  write_file("local function many() local s = string.rep('x', 1 << 20) local t = {}\n"
             "  for i = 1, 4000 do t[i] = s end return t end\n"
             "return flow 'main' {\n"
             "  start = function(c, ev) c.slots.t = many() end,\n"
             "  enc = function(c, ev) json.encode(many()) end,\n"
             "  lead = function(c, ev) c:lead({parts = many()}) end,\n"
             "  ok = function(c, ev) c.slots.t = {string.rep('y', 1000)} c:say('fine') end }\n");
  char *err;
  rt_bundle *b = load_opts(100000000, 0, &err);
  CHECK(b != NULL);
  if (!b) { free(err); return; }
  const char *steps[] = {"start", "enc", "lead"};
  for (int i = 0; i < 3; i++) {
    char *msg;
    double t0 = now_s();
    CHECK(run(b, steps[i], "x", &msg, NULL) == RT_LTURN_ERROR);
    CHECK(msg && strstr(msg, "too big"));
    CHECK(now_s() - t0 < 5);
    free(msg);
  }
  CHECK(run(b, "ok", "x", NULL, NULL) == RT_LTURN_DONE);
  rt_bundle_unref(b);
}

/* json.decode goes straight into Lua memory: hostile texts come back as
 * nil, "bad-json"; a big one is refused by the Lua cap, not host memory. */
T(json_decode_bounded) {
  write_file("return flow 'main' { start = function(c, ev)\n"
             "  local v, e = json.decode(string.rep('[', 100000))\n"
             "  assert(v == nil and e == 'bad-json')\n"
             "  local t = json.decode('{\"a\":[1,2.5,\"\\\\u0416\",true,null],\"b\":{}}')\n"
             "  assert(t.a[1] == 1 and t.a[2] == 2.5 and t.a[3] == 'Ж' and t.a[4] == true)\n"
             "  assert(json.decode('12') == 12 and json.decode('\"x\"') == 'x')\n"
             "  assert(json.decode('{\"a\":1} x') == nil)\n"
             "  c:say('ok') end,\n"
             "  big = function(c, ev) json.decode('[' .. string.rep('0,', 3000000) .. '0]') end }\n");
  char *err, *msg, *code;
  rt_bundle *b = load_opts(100000000, 0, &err);
  CHECK(b != NULL);
  if (!b) { free(err); return; }
  CHECK(run(b, "start", "x", &msg, NULL) == RT_LTURN_DONE);
  if (msg) fprintf(stderr, "  %s\n", msg);
  free(msg);
  CHECK(run(b, "big", "x", &msg, &code) == RT_LTURN_ERROR);
  CHECK(code && strcmp(code, "memory") == 0);
  free(msg);
  free(code);
  rt_bundle_unref(b);
}

/* c:go returns a fresh table with no host metatable: one conversation
 * cannot break jumps for the others. */
T(jump_private) {
  write_file("return flow 'main' {\n"
             "  start = function(c, ev) if ev.text == 'poison' then\n"
             "    local j = c:go('menu') assert(getmetatable(j) == nil) j.step = 'menu'\n"
             "    setmetatable(j, {__metatable = 'gone'}) return 'menu' end\n"
             "    return c:go('menu') end,\n"
             "  menu = function(c, ev) c:say('menu') end }\n");
  char *err;
  rt_bundle *b = load_opts(1000000, 0, &err);
  CHECK(b != NULL);
  if (!b) { free(err); return; }
  CHECK(run(b, "start", "poison", NULL, NULL) == RT_LTURN_DONE);
  CHECK(run(b, "start", "hi", NULL, NULL) == RT_LTURN_DONE);
  rt_bundle_unref(b);
}

int main(void) {
  snprintf(dir, sizeof dir, "/tmp/test_lvm_limits.XXXXXX");
  if (!mkdtemp(dir)) return 1;
  T_RUN(gc_at_load);
  T_RUN(gc_in_step);
  T_RUN(log_long_text);
  T_RUN(timeout_while_running);
  T_RUN(tick_counts_long_steps);
  T_RUN(conversion_bounded);
  T_RUN(json_decode_bounded);
  T_RUN(jump_private);
  char p[128];
  snprintf(p, sizeof p, "%s/main.lua", dir);
  unlink(p);
  rmdir(dir);
  return T_DONE();
}
