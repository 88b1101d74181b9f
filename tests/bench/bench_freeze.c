/* bench_freeze.c -- what sealing module-level data (lfreeze.h) costs:
 *  - a lookup through a sealed module table against the same lookup in a
 *    plain table made in the step (field, index, #, ipairs, pairs);
 *  - the check after every turn, per watched module-level value (a noop
 *    step in a bundle with 2000 watched values against one with none);
 *  - a short-message Vitaly step (lead.start), the whole turn.
 * usage: bench_freeze [TURNS [vitaly]] (vitaly: that part alone, e.g. under
 * valgrind --tool=callgrind to count instructions on a busy machine).
 * Figures only, never pass/fail on time. */
#include "config.h"
#include "log.h"
#include "lvm.h"
#include "rt.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

static int64_t fake_now(void *ud) { (void)ud; return 1772434800000LL; }
static int no_customer(void *ud, const char *p, const char *ch, const char *chat,
                       const rt_record_sink *k) {
  (void)ud; (void)p; (void)ch; (void)chat; (void)k;
  return 0;
}
static rt_host host = {.now_ms = fake_now, .customer = no_customer};

static rt_bundle *load(const char *dir, const char *start, json_t *shop) {
  rt_bundle_opts o = {.flows_dir = dir, .start_flow = start, .shop = shop, .mem_limit = 64 << 20,
                      .step_instructions = 1000000000, .load_instructions = 50000000,
                      .host = &host};
  rt_bundle *b;
  char *err;
  if (rt_bundle_load(&o, &b, &err)) {
    fprintf(stderr, "%s\n", err);
    exit(1);
  }
  return b;
}

/* Mean microseconds of one turn of flow.step with text. */
static double turn_us(rt_bundle *b, const char *flow, const char *step, const char *text, int n) {
  uint64_t t0 = uv_hrtime();
  for (int i = 0; i < n; i++) {
    json_t *conv = json_pack("{s:i, s:s, s:s, s:s, s:s, s:s}", "id", 1, "channel", "console",
                             "chat", "1", "flow", flow, "step", step, "mode", "bot");
    json_t *ev = json_pack("{s:s, s:s}", "kind", "text", "text", text);
    rt_lturn *t;
    if (rt_lturn_start(b, NULL, conv, NULL, ev, &t) == RT_LTURN_ERROR) {
      fprintf(stderr, "%s.%s: %s\n", flow, step,
              json_string_value(json_object_get(rt_lturn_error(t), "msg")));
      exit(1);
    }
    rt_lturn_free(t);
    json_decref(conv);
    json_decref(ev);
  }
  return (uv_hrtime() - t0) / 1e3 / n;
}

static void put(const char *dir, const char *name, const char *src) {
  char p[256];
  snprintf(p, sizeof p, "%s/%s", dir, name);
  FILE *f = fopen(p, "w");
  fputs(src, f);
  fclose(f);
}

#define LOOKUPS 1000000
/* Each step does LOOKUPS operations on t: the module table `M` (sealed)
 * or a plain copy made in the step. */
static const char *lookup_flow =
  "local M = {list = {}, set = {}}\n"
  "for i = 1, 100 do M.list[i] = 'w' .. i M.set['w' .. i] = true end\n"
  "local function copy() local c = {list = {}, set = {}}\n"
  "  for i, v in ipairs(M.list) do c.list[i] = v c.set[v] = true end return c end\n"
  "local function field(t) local n = 0 for i = 1, 1000000 do if t.set.w50 then n = n + 1 end end end\n"
  "local function index(t) local l, n = t.list, 0 for i = 1, 1000000 do if l[50] then n = n + 1 end end end\n"
  "local function len(t) local l, n = t.list, 0 for i = 1, 1000000 do n = n + #l end end\n"
  "local function ip(t) local l, n = t.list, 0 for k = 1, 10000 do for i, v in ipairs(l) do n = n + 1 end end end\n"
  "local function pa(t) local s, n = t.set, 0 for k = 1, 10000 do for w in pairs(s) do n = n + 1 end end end\n"
  "local ops = {field = field, index = index, len = len, ipairs = ip, pairs = pa}\n"
  "return flow 'm' {\n"
  "  start = function(c, ev) end,\n"
  "  sealed = function(c, ev) ops[ev.text](M) end,\n"
  "  plain = function(c, ev) ops[ev.text](copy()) end,\n"
  "}\n";

int main(int argc, char **argv) {
  int turns = argc > 1 ? atoi(argv[1]) : 2000;
  char dir[64];
  snprintf(dir, sizeof dir, "/tmp/bench_freeze.XXXXXX");
  if (!mkdtemp(dir)) return 1;
  json_t *shop = json_pack("{s:s}", "name", "b");
  if (argc > 2 && strcmp(argv[2], "vitaly") == 0) goto vitaly;

  put(dir, "m.lua", lookup_flow);
  rt_bundle *b = load(dir, "m", shop);
  static const char *ops[] = {"field", "index", "len", "ipairs", "pairs"};
  for (size_t i = 0; i < RT_ARRAY_LEN(ops); i++) {
    double s = turn_us(b, "m", "sealed", ops[i], 5), p = turn_us(b, "m", "plain", ops[i], 5);
    printf("freeze.lookup.%s: sealed %.1f ns, plain %.1f ns per operation (x%.2f)\n", ops[i],
           s * 1e3 / LOOKUPS, p * 1e3 / LOOKUPS, s / p);
  }
  rt_bundle_unref(b);

  /* 2000 module-level locals, each captured by its own function. */
  size_t cap = 1 << 20, n = 0;
  char *src = malloc(cap);
  n += (size_t)snprintf(src + n, cap - n, "local F = {}\n");
  for (int i = 0; i < 2000; i++)
    n += (size_t)snprintf(src + n, cap - n, "do local v%d = %d F[%d] = function() return v%d end end\n",
                          i, i, i + 1, i);
  snprintf(src + n, cap - n, "return flow 'm' { start = function(c, ev) F[1]() end }\n");
  put(dir, "m.lua", src);
  free(src);
  b = load(dir, "m", shop);
  double many = turn_us(b, "m", "start", "x", turns);
  rt_bundle_unref(b);
  put(dir, "m.lua", "return flow 'm' { start = function(c, ev) end }\n");
  b = load(dir, "m", shop);
  double none = turn_us(b, "m", "start", "x", turns);
  rt_bundle_unref(b);
  printf("freeze.check: %.2f us per turn with 2000 watched values, %.2f us with none "
         "(%.1f ns per value)\n", many, none, (many - none) * 1e3 / 2000);

vitaly:;
  rt_config *cfg;
  char *err;
  if (rt_config_load(RT_SOURCE_DIR "/examples/autoparts", RT_SOURCE_DIR "/schema/shop.schema.json",
                     &cfg, &err) == RT_OK) {
    rt_log_set_level(RT_LOG_DEBUG);   /* the load's count of sealed tables and watched values */
    b = load(RT_SOURCE_DIR "/scripts/vitaly", "lead", rt_config_json(cfg));
    rt_log_set_level(RT_LOG_WARN);
    printf("freeze.vitaly.lead.start: %.1f us per turn (short message)\n",
           turn_us(b, "lead", "start", "Здравствуйте, нужны колодки передние на Гранту", turns));
    rt_bundle_unref(b);
    rt_config_free(cfg);
  } else {
    fprintf(stderr, "%s\n", err);
    free(err);
  }
  json_decref(shop);
  char p[128];
  snprintf(p, sizeof p, "%s/m.lua", dir);
  unlink(p);
  rmdir(dir);
  return 0;
}
