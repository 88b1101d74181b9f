/* bench_ocr.c -- OCR time per photo and hit rate on the generated set
 * (tests/ocr/make_images.py), through the ocr provider as a flow calls it.
 *   bench_ocr [--count 20]
 * One photo at a time (time per photo), then max_in_flight 2 (throughput
 * on this machine). Prints figures, never fails on them. */
#include "ocr/ocr.h"
#include "rt.h"
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

static void set_health(void *h, const char *n, const char *p) {
  if (p) fprintf(stderr, "ocr: %s\n", p);
}
static int started;
static void on_started(void *ud, int st, const char *e) { started = 1; }
static void closed(void *ud) {}

typedef struct {
  int done;
  json_t *v;
} ans;
static void on_done(void *ud, const rt_call_result *r) {
  ans *a = ud;
  a->done = 1;
  a->v = r->value ? json_deep_copy(r->value) : NULL;
}

static int cmp(const void *a, const void *b) {
  long x = *(const long *)a, y = *(const long *)b;
  return x < y ? -1 : x > y;
}

static void pass(const char *dir, json_t *manifest, int at_once) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  json_t *conf = json_pack("{s:i}", "max_in_flight", at_once);
  rt_plugin_env env = {.loop = &loop, .name = "ocr", .conf = conf, .set_health = set_health};
  rt_provider *p;
  char *err = NULL;
  rt_ocr_new(conf, &p, &err);
  started = 0;
  p->start(p, &env, on_started, NULL);
  while (!started) uv_run(&loop, UV_RUN_ONCE);
  size_t n = json_array_size(manifest);
  ans *a = calloc(n, sizeof *a);
  uint64_t t0 = uv_hrtime();
  for (size_t i = 0; i < n; i++) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir,
             json_string_value(json_object_get(json_array_get(manifest, i), "file")));
    json_t *args = json_pack("{s:s}", "path", path);
    rt_call *c;
    p->call(p, "read", args, on_done, &a[i], &c, &err);
    json_decref(args);
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  double wall = (double)(uv_hrtime() - t0) / 1e9;
  int docs = 0, hits = 0, found_any = 0, parts = 0, false_vin = 0, frames = 0, frame_hits = 0;
  long *ms = calloc(n, sizeof *ms);
  for (size_t i = 0; i < n; i++) {
    json_t *m = json_array_get(manifest, i);
    ms[i] = (long)json_integer_value(json_object_get(a[i].v, "ms"));
    json_t *car = json_array_get(json_object_get(a[i].v, "cars"), 0);
    const char *got = json_string_value(json_object_get(car, "value"));
    const char *kind = json_string_value(json_object_get(m, "kind"));
    if (strcmp(kind, "frame") == 0) {
      frames++;
      if (got && strcmp(got, json_string_value(json_object_get(m, "frame"))) == 0) frame_hits++;
    } else if (strcmp(kind, "document") == 0) {
      docs++;
      if (got) found_any++;
      if (got && strcmp(got, json_string_value(json_object_get(m, "vin"))) == 0) hits++;
    } else {
      parts++;
      if (got) false_vin++;
    }
    json_decref(a[i].v);
  }
  qsort(ms, n, sizeof *ms, cmp);
  if (at_once == 1)
    printf("ocr.per_photo_ms: p50 %ld, max %ld (one at a time; part photos read twice: eng, then rus+eng)\n",
           ms[n / 2], ms[n - 1]);
  printf("ocr.hit_rate: %d/%d СТС cards with the VIN exact (%d with some VIN), %d/%d Japanese "
         "cards with the frame number exact, %d/%d part photos without a false VIN; %zu photos "
         "in %.1f s with %d at once\n",
         hits, docs, found_any, frame_hits, frames, parts - false_vin, parts, n, wall, at_once);
  free(ms);
  free(a);
  p->close(p, closed, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  json_decref(conf);
}

int main(int argc, char **argv) {
  int count = 20;
  for (int i = 1; i + 1 < argc; i++)
    if (strcmp(argv[i], "--count") == 0) count = atoi(argv[++i]);
  char dir[] = "/tmp/bench_ocr.XXXXXX";
  if (!mkdtemp(dir)) return 2;
  const char *src = getenv("RT_SOURCE_DIR") ? getenv("RT_SOURCE_DIR") : RT_SOURCE_DIR;
  char cmd[1024];
  snprintf(cmd, sizeof cmd, "python3 %s/tests/ocr/make_images.py %s --count %d --seed 11", src, dir, count);
  if (system(cmd) != 0) return 2;
  snprintf(cmd, sizeof cmd, "%s/manifest.json", dir);
  json_t *manifest = json_load_file(cmd, 0, NULL);
  if (!manifest) return 2;
  pass(dir, manifest, 1);
  pass(dir, manifest, 2);
  json_decref(manifest);
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  return system(cmd) == 0 ? 0 : 2;
}
