/* test_lvm_state.c -- the conversation state codec: JSON text into Lua
 * tables and back, as every message does. Unicode escapes and surrogate
 * pairs, big integers, floats, nesting, escaping, sorted keys, unreadable
 * text, and values that cannot be stored. */
#include "lvm.h"
#include "rt.h"
#include "t.h"
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int64_t fake_now(void *ud) { (void)ud; return 1772434800000LL; }
static rt_host host = {.now_ms = fake_now};
static char dir[64];
static rt_bundle *b;

/* Runs the step `name` on the state text; returns the new state text
 * (owned) or the error message prefixed with "ERR: ". */
static char *run(const char *name, const char *state) {
  json_t *conv = json_pack("{s:i, s:s, s:s, s:s, s:s}", "id", 1, "channel", "t", "chat", "1",
                           "flow", "main", "step", name);
  json_t *ev = json_pack("{s:s, s:s}", "kind", "text", "text", "x");
  rt_lturn *t = NULL;
  int st = rt_lturn_start(b, NULL, conv, state, ev, &t);
  char *out = st == RT_LTURN_DONE
                  ? rt_xstrdup(rt_lturn_slots(t))
                  : rt_xasprintf("ERR: %s", json_string_value(json_object_get(rt_lturn_error(t), "msg")));
  rt_lturn_free(t);
  json_decref(conv);
  json_decref(ev);
  return out;
}

T(roundtrip) {
  char *s = run("same", "{\"z\":1,\"a\":\"\\u00e9\\ud83d\\ude00\",\"n\":-12,\"f\":1.5,\"t\":true,"
                        "\"list\":[1,2,{\"x\":null,\"y\":false}],\"big\":9007199254740993}");
  CHECK_STR(s, "{\"a\":\"é😀\",\"big\":9007199254740993,\"f\":1.5,\"list\":[1,2,{\"y\":false}],"
               "\"n\":-12,\"t\":true,\"z\":1}");
  free(s);
}

T(escapes) {
  char *s = run("quote", "{}");
  CHECK_STR(s, "{\"q\":\"он сказал \\\"да\\\"\\nи ушёл\\t\\\\ \\u0001\"}");
  char *again = run("same", s);
  CHECK_STR(again, s);
  free(s);
  free(again);
}

T(lua_reads_values) {
  char *s = run("check", "{\"parts\":[\"колодки\",\"фильтр\"],\"n\":3,\"f\":0.25,\"car\":{\"vin\":\"X\"}}");
  CHECK_STR(s, "{\"car\":{\"vin\":\"X\"},\"f\":0.25,\"n\":3,\"ok\":true,\"parts\":[\"колодки\",\"фильтр\"]}");
  free(s);
}

T(unreadable_state_starts_empty) {
  const char *bad[] = {"{\"a\":", "[1,2]", "nonsense", "{\"a\":\"\\ud800\"", "", "{\"a\":1}x", NULL};
  for (int i = 0; bad[i]; i++) {
    char *s = run("mark", bad[i]);
    CHECK_STR(s, "{\"seen\":true}");
    free(s);
  }
  char *s = run("mark", NULL);
  CHECK_STR(s, "{\"seen\":true}");
  free(s);
}

T(lone_surrogate_becomes_replacement) {
  char *s = run("same", "{\"a\":\"x\\ud800y\"}");
  CHECK_STR(s, "{\"a\":\"x\xEF\xBF\xBDy\"}");
  free(s);
}

T(unstorable_values) {
  char *s = run("nan", "{}");
  CHECK(strstr(s, "ERR: c.slots.x: NaN or infinity cannot be stored") != NULL);
  free(s);
  s = run("func", "{}");
  CHECK(strstr(s, "ERR: c.slots.list[2].f: a function cannot be stored") != NULL);
  free(s);
  s = run("mixed", "{}");
  CHECK(strstr(s, "ERR: c.slots.m: a table mixes a list and named fields") != NULL);
  free(s);
  s = run("notable", "{}");
  CHECK(strstr(s, "ERR: c.slots must stay a table") != NULL);
  free(s);
}

int main(void) {
  snprintf(dir, sizeof dir, "/tmp/test_lvm_state.XXXXXX");
  if (!mkdtemp(dir)) return 1;
  char path[128];
  snprintf(path, sizeof path, "%s/main.lua", dir);
  FILE *f = fopen(path, "w");
  fputs("return flow 'main' {\n"
        "  start = function(c) end,\n"
        "  same = function(c) end,\n"
        "  mark = function(c) c.slots.seen = true end,\n"
        "  quote = function(c) c.slots.q = 'он сказал \"да\"\\nи ушёл\\t\\\\ \\1' end,\n"
        "  check = function(c)\n"
        "    c.slots.ok = #c.slots.parts == 2 and c.slots.parts[1] == 'колодки' and\n"
        "      math.type(c.slots.n) == 'integer' and c.slots.f == 0.25 and c.slots.car.vin == 'X'\n"
        "  end,\n"
        "  nan = function(c) c.slots.x = 0/0 end,\n"
        "  func = function(c) c.slots.list = {1, {f = print}} end,\n"
        "  mixed = function(c) c.slots.m = {1, 2, a = 3} end,\n"
        "  notable = function(c) c.slots = 'x' end,\n"
        "}\n", f);
  fclose(f);
  json_t *shop = json_object();
  rt_bundle_opts o = {.flows_dir = dir, .start_flow = "main", .shop = shop, .host = &host};
  char *err = NULL;
  if (rt_bundle_load(&o, &b, &err) != RT_OK) { fprintf(stderr, "%s\n", err); return 1; }
  T_RUN(roundtrip);
  T_RUN(escapes);
  T_RUN(lua_reads_values);
  T_RUN(unreadable_state_starts_empty);
  T_RUN(lone_surrogate_becomes_replacement);
  T_RUN(unstorable_values);
  rt_bundle_unref(b);
  json_decref(shop);
  unlink(path);
  rmdir(dir);
  return T_DONE();
}
