/* fuzz_state.c -- libFuzzer target: the conversation-state decoder
 * (lvm.c's push_state: the stored c.slots JSON text straight into Lua
 * tables), driven as the engine drives it: a turn starts on the stored text
 * and a step that leaves the state alone ends it. The store is input too: a
 * file edited by hand, restored from elsewhere or damaged. Beyond no
 * crash, leak or UB, it checks that whatever is stored comes back storable:
 * the turn ends without error, and a second turn on the text it wrote
 * writes the same text. Build and run: tests/fuzz/run. */
#include "lvm.h"
#include "rt.h"
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int64_t fake_now(void *ud) { (void)ud; return 1772434800000LL; }
static rt_host host = {.now_ms = fake_now};
static rt_bundle *b;
static json_t *shop;

/* The state after a turn of step "same" on state, owned; aborts on an error. */
static char *turn(const char *state) {
  json_t *conv = json_pack("{s:i, s:s, s:s, s:s, s:s}", "id", 1, "channel", "t", "chat", "1",
                           "flow", "main", "step", "same");
  json_t *ev = json_pack("{s:s, s:s}", "kind", "text", "text", "x");
  rt_lturn *t = NULL;
  int st = rt_lturn_start(b, NULL, conv, state, ev, &t);
  if (st != RT_LTURN_DONE) {
    fprintf(stderr, "stored state not storable again: %s\n",
            json_string_value(json_object_get(rt_lturn_error(t), "msg")));
    abort();
  }
  char *out = rt_xstrdup(rt_lturn_slots(t));
  rt_lturn_free(t);
  json_decref(conv);
  json_decref(ev);
  return out;
}

static void setup(void) {
  static char dir[64], path[128];
  snprintf(dir, sizeof dir, "/tmp/fuzz_state.%d", (int)getpid());
  mkdir(dir, 0700);
  snprintf(path, sizeof path, "%s/main.lua", dir);
  FILE *f = fopen(path, "w");
  if (!f) abort();
  /* "same" also walks the decoded tables, as a step reading them would. */
  fputs("local function walk(v, d)\n"
        "  if type(v) == 'table' and d < 80 then for _, x in pairs(v) do walk(x, d + 1) end end\n"
        "end\n"
        "return flow 'main' {\n"
        "  start = function(c) end,\n"
        "  same = function(c) walk(c.slots, 0) end,\n"
        "}\n", f);
  fclose(f);
  shop = json_object();
  rt_bundle_opts o = {.flows_dir = dir, .start_flow = "main", .shop = shop, .host = &host};
  char *err = NULL;
  if (rt_bundle_load(&o, &b, &err) != RT_OK) { fprintf(stderr, "%s\n", err); abort(); }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!b) setup();
  /* Stored text ends at its first NUL, as sqlite3_column_text gives it. */
  char *state = rt_xstrndup((const char *)data, size);
  char *a = turn(state);
  char *again = turn(a);
  /* Decoding cleans what the encoder would (broken UTF-8, NUL), so any
   * stored text reads back the same after one turn. */
  if (strcmp(a, again) != 0) {
    fprintf(stderr, "state not stable: %s -> %s\n", a, again);
    abort();
  }
  free(again);
  free(a);
  free(state);
  /* What the bundle keeps between turns is given back, so an input's
   * allocations and frees balance and libFuzzer's per-input leak check
   * (a full scan) does not run after every input. */
  rt_bundle_collect(b);
  return 0;
}
