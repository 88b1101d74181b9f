/* bench_lvm.c -- the Lua side of one event alone: a turn of the bench
 * flow (text helpers included) from saved state to effects, no store.
 * usage: bench_lvm [FLOWS_DIR] [TURNS] */
#include "lvm.h"
#include "rt.h"
#include <stdio.h>
#include <stdlib.h>
#include <uv.h>
static int64_t fake_now(void *ud) { (void)ud; return 1772434800000LL; }
static rt_host host = {.now_ms = fake_now};
int main(int argc, char **argv) {
  const char *dir = argc > 1 ? argv[1] : RT_SOURCE_DIR "/tests/bench/shop/flows";
  json_t *shop = json_pack("{s:s}", "name", "b");
  rt_bundle_opts o = {.flows_dir = dir, .start_flow = "lead", .shop = shop, .mem_limit = 64 << 20,
                      .step_instructions = 10000000, .host = &host};
  rt_bundle *b; char *err;
  if (rt_bundle_load(&o, &b, &err)) { puts(err); return 1; }
  const char *texts[] = {"/start", "XW8ZZZ614BG012345", "колодки передние", "фильтр", "нет"};
  const char *steps[] = {"start", "vin", "parts", "parts", "parts"};
  int n = argc > 2 ? atoi(argv[2]) : 100000;
  uint64_t t0 = uv_hrtime();
  for (int i = 0; i < n; i++) {
    json_t *conv = json_pack("{s:i, s:s, s:s, s:s, s:s}", "id", 1, "channel", "t", "chat", "1",
                             "flow", "lead", "step", steps[i % 5]);
    json_t *ev = json_pack("{s:s, s:s}", "kind", "text", "text", texts[i % 5]);
    rt_lturn *t;
    int st = rt_lturn_start(b, NULL, conv, "{\"car\":\"XW8ZZZ614BG012345\",\"parts\":[\"x\"]}", ev, &t);
    if (st != 0) { puts(json_dumps(rt_lturn_error(t), 0)); return 1; }
    (void)rt_lturn_slots(t);
    rt_lturn_free(t); json_decref(conv); json_decref(ev);
  }
  printf("lvm.turn: %.2f us (Lua step with text helpers, JSON in and out)\n", (uv_hrtime() - t0) / 1e3 / n);
  return 0;
}
