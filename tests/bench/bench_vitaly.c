/* bench_vitaly.c -- what one long customer message costs the Vitaly flows:
 * the first step of a lead (lead.start) and the parts step (lead.parts) for
 * messages of 4096, 32 768 and 1 048 576 characters, timed alone (no store), with the shop's
 * own limits. A step that fails prints its error code instead of passing.
 * usage: bench_vitaly [FLOWS_DIR [SHOP_DIR [SIZE]]]   (defaults: scripts/vitaly,
 * examples/autoparts, every size; SIZE is 4k, 32k or 1m). Figures only,
 * never pass/fail on time. */
#include "config.h"
#include "engine.h"
#include "lvm.h"
#include "rt.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

static int64_t fake_now(void *ud) { (void)ud; return 1772434800000LL; } /* Mon 10:00 MSK */
static int no_customer(void *ud, const char *p, const char *ch, const char *chat,
                       const rt_record_sink *k) {
  (void)ud; (void)p; (void)ch; (void)chat; (void)k;
  return 0;
}
static rt_host host = {.now_ms = fake_now, .customer = no_customer};

/* n characters of `unit` repeated, then `tail`: "колодки колодки ..." or a
 * story with a VIN at its end. */
static char *repeat(const char *unit, size_t n, const char *tail) {
  size_t u = strlen(unit), t = strlen(tail);
  char *s = malloc(n * 4 + t + 1);
  size_t len = 0, k = 0;
  for (size_t chars = 0; chars < n; chars++) {
    do s[len++] = unit[k++ % u]; while (((unsigned char)unit[k % u] & 0xC0) == 0x80);
  }
  memcpy(s + len, tail, t + 1);
  return s;
}

static void run(rt_bundle *b, const char *label, const char *step, const char *slots,
                const char *text, int turns) {
  uint64_t t0 = 0;
  const char *code = "ok";
  char failed[64] = "";
  for (int i = -1; i < turns; i++) {   /* turn -1 warms caches and compiles patterns */
    if (i == 0) t0 = uv_hrtime();
    json_t *conv = json_pack("{s:i, s:s, s:s, s:s, s:s, s:s}", "id", 1, "channel", "console",
                             "chat", "1", "flow", "lead", "step", step, "mode", "bot");
    json_t *ev = json_pack("{s:s, s:s}", "kind", "text", "text", text);
    rt_lturn *t;
    int st = rt_lturn_start(b, NULL, conv, slots, ev, &t);
    if (st == RT_LTURN_ERROR) {
      const char *c = json_string_value(json_object_get(rt_lturn_error(t), "code"));
      snprintf(failed, sizeof failed, "FAILED code=%s", c ? c : "?");
      code = failed;
    } else if (st == RT_LTURN_DONE) {
      (void)rt_lturn_slots(t);
    }
    rt_lturn_free(t);
    json_decref(conv);
    json_decref(ev);
  }
  double ms = (uv_hrtime() - t0) / 1e6 / turns;
  printf("vitaly.%s.%s: %.2f ms per step (%s)\n", step, label, ms, code);
}

int main(int argc, char **argv) {
  const char *dir = argc > 1 ? argv[1] : RT_SOURCE_DIR "/scripts/vitaly";
  const char *shop_dir = argc > 2 ? argv[2] : RT_SOURCE_DIR "/examples/autoparts";
  rt_config *cfg;
  char *err;
  if (rt_config_load(shop_dir, RT_SOURCE_DIR "/schema/shop.schema.json", &cfg, &err)) {
    fprintf(stderr, "%s\n", err);
    return 1;
  }
  /* The limits and shop view the engine gives its flows. */
  rt_bundle_opts o;
  json_t *view;
  rt_engine_bundle_opts(cfg, &o, &view);
  o.flows_dir = dir;
  o.host = &host;
  rt_bundle *b;
  if (rt_bundle_load(&o, &b, &err)) {
    fprintf(stderr, "%s\n", err);
    return 1;
  }
  static const struct { const char *label; size_t n; } sizes[] = {
    {"4k", 4096}, {"32k", 32768}, {"1m", 1 << 20}};
  const char *car = "{\"car\":\"XW8ZZZ614BG012345\",\"car_kind\":\"vin\"}";
  for (size_t i = 0; i < RT_ARRAY_LEN(sizes); i++) {
    if (argc > 3 && strcmp(argv[3], sizes[i].label) != 0) continue;
    int turns = sizes[i].n > 100000 ? 3 : 20;
    char label[64];
    char *words = repeat("колодки ", sizes[i].n, "");
    snprintf(label, sizeof label, "%s_words", sizes[i].label);
    run(b, label, "start", NULL, words, turns);
    run(b, label, "parts", car, words, turns);
    free(words);
    char *story = repeat("еду я по трассе, и тут что-то застучало спереди справа. ", sizes[i].n,
                         " вин XW8ZZZ614BG012345");
    snprintf(label, sizeof label, "%s_story_vin_at_end", sizes[i].label);
    run(b, label, "start", NULL, story, turns);
    free(story);
    char *punct = repeat("а,", sizes[i].n, "");
    snprintf(label, sizeof label, "%s_commas", sizes[i].label);
    run(b, label, "start", NULL, punct, turns);
    free(punct);
  }
  rt_bundle_unref(b);
  json_decref(view);
  rt_config_free(cfg);
  return 0;
}
