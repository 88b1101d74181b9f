/* bench_lvm.c -- the Lua side of one event alone: a turn of the bench
 * flow (text helpers included) from saved state to typed effects, no
 * store, as the engine runs it (payload text in, rt_fx out). Figures are
 * CPU microseconds per turn.
 *
 *   lvm.turn: the turns this bench has always run (one chat, a small
 *     state), comparable across versions;
 *   lvm.turn_text: 10 chats, each through the dialog, the state read from
 *     its stored text every event (a chat's first event, or one whose kept
 *     state was evicted);
 *   lvm.turn_kept: the same, the state kept as a Lua table between events
 *     (rt_lturn_keep_state);
 *   lvm.codec_*: the state text alone, read into Lua and written back,
 *     by lconv (what the host uses) and through a jansson tree (what it
 *     would cost instead).
 *
 * usage: bench_lvm [FLOWS_DIR] [TURNS] */
#include "lconv.h"
#include "lvm.h"
#include "rt.h"
#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>

/* CPU time, not wall time: this machine is shared, and a loaded core
 * stretches wall time without the work changing. */
static uint64_t cpu_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int64_t fake_now(void *ud) { (void)ud; return 1772434800000LL; }
static rt_host host = {.now_ms = fake_now};

static const char *state =
  "{\"car\":\"XW8ZZZ614BG012345\",\"car_kind\":\"vin\",\"greeted\":true,\"n\":7,"
  "\"name\":\"Андрей\",\"parts\":[\"колодки передние\",\"фильтр масляный\"],"
  "\"phone\":\"+79990001122\",\"when\":1772434800}";

/* The same turns as this bench always ran (one chat, steps in turn, the
 * same small state every time), so its figure compares across versions. */
static double turns_fixed(rt_bundle *b, int n) {
  const char *texts[] = {"/start", "XW8ZZZ614BG012345", "колодки передние", "фильтр", "нет"};
  const char *steps[] = {"start", "vin", "parts", "parts", "parts"};
  char ev[160];
  uint64_t t0 = cpu_ns();
  for (int i = 0; i < n; i++) {
    snprintf(ev, sizeof ev, "{\"kind\":\"text\",\"text\":\"%s\"}", texts[i % 5]);
    rt_lturn_in in = {.id = 1, .channel = "t", .chat = "1", .flow = "lead", .step = steps[i % 5],
                      .state = "{\"car\":\"XW8ZZZ614BG012345\",\"parts\":[\"x\"]}", .event = ev};
    rt_lturn *t;
    if (rt_lturn_begin(b, NULL, &in, &t) != RT_LTURN_DONE) exit(1);
    (void)rt_lturn_slots(t);
    rt_lturn_free(t);
  }
  return (cpu_ns() - t0) / 1e3 / n;
}

static double turns(rt_bundle *b, int n, bool keep) {
  const char *texts[] = {"/start", "XW8ZZZ614BG012345", "колодки передние", "фильтр", "нет"};
  const char *steps[] = {"start", "vin", "parts", "parts", "parts"};
  char ev[160];
  int64_t rev[10] = {0};
  char *saved[10];
  for (int k = 0; k < 10; k++) saved[k] = rt_xstrdup(state);
  uint64_t t0 = cpu_ns();
  for (int i = 0; i < n; i++) {
    int chat = (i / 5) % 10;   /* each chat goes through the five steps in turn */
    snprintf(ev, sizeof ev, "{\"at\":1772434800,\"kind\":\"text\",\"text\":\"%s\",\"user\":\"u%d\"}",
             texts[i % 5], chat);
    rt_lturn_in in = {.id = chat + 1, .rev = rev[chat], .channel = "console", .chat = "1",
                      .user = "u", .flow = "lead", .step = steps[i % 5], .mode = "bot",
                      .state = saved[chat], .event = ev};
    rt_lturn *t;
    int st = rt_lturn_begin(b, NULL, &in, &t);
    if (st != RT_LTURN_DONE) {
      char *e = json_dumps(rt_lturn_error(t), 0);
      puts(e);
      exit(1);
    }
    const rt_fx *fx = rt_lturn_effects(t);
    /* The engine stores the new text either way; kept, the next turn
     * does not read it. */
    free(saved[chat]);
    saved[chat] = rt_xstrdup(fx->state_json);
    if (keep) rt_lturn_keep_state(t, ++rev[chat]);
    rt_lturn_free(t);
  }
  double us = (cpu_ns() - t0) / 1e3 / n;
  for (int k = 0; k < 10; k++) free(saved[k]);
  return us;
}

static void codec(int n) {
  lua_State *L = luaL_newstate();
  char err[256];
  size_t len = strlen(state);
  uint64_t t0 = cpu_ns();
  for (int i = 0; i < n; i++) {
    rt_lconv_decode(L, state, len, NULL);
    char *s = rt_lconv_text(L, -1, "c.slots", 1 << 20, NULL, err, sizeof err);
    free(s);
    lua_settop(L, 0);
  }
  double ours = (cpu_ns() - t0) / 1e3 / n;
  t0 = cpu_ns();
  for (int i = 0; i < n; i++) {
    json_t *j = json_loadb(state, len, 0, NULL);
    rt_lconv_push_tree(L, j);
    json_decref(j);
    j = rt_lconv_tree(L, -1, "c.slots", 1 << 20, err, sizeof err);
    char *s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    free(s);
    json_decref(j);
    lua_settop(L, 0);
  }
  double tree = (cpu_ns() - t0) / 1e3 / n;
  lua_close(L);
  printf("lvm.codec_state: %.2f us (a %zu-byte state read into Lua and written back, lconv)\n",
         ours, len);
  printf("lvm.codec_state_via_jansson: %.2f us (the same through jansson trees)\n", tree);
}

int main(int argc, char **argv) {
  const char *dir = argc > 1 ? argv[1] : RT_SOURCE_DIR "/tests/bench/shop/flows";
  json_t *shop = json_pack("{s:s}", "name", "b");
  rt_bundle_opts o = {.flows_dir = dir, .start_flow = "lead", .shop = shop, .mem_limit = 64 << 20,
                      .step_instructions = 10000000, .host = &host};
  rt_bundle *b;
  char *err;
  if (rt_bundle_load(&o, &b, &err)) { puts(err); return 1; }
  int n = argc > 2 ? atoi(argv[2]) : 100000;
  if (argc > 3 && strcmp(argv[3], "--fixed") == 0) {   /* the comparable line only */
    printf("lvm.turn: %.2f us (Lua step with text helpers, JSON in and out)\n", turns_fixed(b, n));
    rt_bundle_unref(b);
    json_decref(shop);
    return 0;
  }
  turns(b, n / 10, false);   /* warm up */
  printf("lvm.turn: %.2f us (Lua step with text helpers, JSON in and out)\n", turns_fixed(b, n));
  printf("lvm.turn_text: %.2f us (10 chats, a 200-byte state read from its text each event)\n",
         turns(b, n, false));
  printf("lvm.turn_kept: %.2f us (the same with the state kept as a Lua table between events)\n",
         turns(b, n, true));
  codec(n);
  rt_bundle_unref(b);
  json_decref(shop);
  return 0;
}
