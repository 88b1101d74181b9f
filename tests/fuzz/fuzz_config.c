/* fuzz_config.c -- libFuzzer target: shop.json (rt_config_load on any
 * bytes, then every read a running bot makes of it: redaction, durations,
 * strings, ints) and the small parsers of operator text: rt_parse_duration,
 * rt_parse_hhmm, rt_clock_parse / rt_clock_format. A shop.json is written
 * by hand, so it is outside input. Build and run: tests/fuzz/run. */
#include "clock.h"
#include "config.h"
#include "paths.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[64];
static char *schema;

static void parsers(const char *s) {
  int64_t sec = -1, ms = -1;
  rt_parse_duration(s, &sec);
  (void)rt_parse_hhmm(s);
  char out[64];
  if (rt_clock_parse(s, "Europe/Moscow", &ms) == RT_OK) rt_clock_format(ms, "Europe/Moscow", out, sizeof out);
  if (rt_clock_parse(s, "Asia/Kathmandu", &ms) == RT_OK) rt_clock_format(ms, "UTC", out, sizeof out);
  /* Any int64, not only what parses: the formatter takes stored values. */
  int64_t raw = 0;
  memcpy(&raw, s, strlen(s) < sizeof raw ? strlen(s) : sizeof raw);
  rt_clock_format(raw, "Europe/Moscow", out, sizeof out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!schema) {
    snprintf(dir, sizeof dir, "/tmp/fuzz_config.%d", (int)getpid());
    if (mkdir(dir, 0700) != 0 && access(dir, W_OK) != 0) abort();
    schema = rt_paths_schema("shop.schema.json");
  }
  /* The operator-text parsers on the first line, NUL-terminated. */
  size_t n = 0;
  while (n < size && n < 256 && data[n] != '\n') n++;
  char line[257];
  memcpy(line, data, n);
  line[n] = '\0';
  parsers(line);

  char path[96];
  snprintf(path, sizeof path, "%s/shop.json", dir);
  FILE *f = fopen(path, "wb");
  if (!f) abort();
  fwrite(data, 1, size, f);
  fclose(f);
  rt_config *c = NULL;
  char *err = NULL;
  if (rt_config_load(dir, schema, &c, &err) == RT_OK) {
    free(rt_config_redacted(c));
    static const char *durations[] = {"handoff.release_after", "llm.cache_ttl",
                                      "http.timeout"};
    for (size_t i = 0; i < sizeof durations / sizeof *durations; i++)
      (void)rt_config_duration(c, durations[i], 60);
    (void)rt_config_str(c, "http.listen", NULL);
    (void)rt_config_int(c, "store.keep_days", 30);
    (void)rt_config_int(c, "limits.lua_memory_mb", 64);
    (void)rt_config_bool(c, "http.enabled", 0);
    free(rt_config_path(c, rt_config_str(c, "store.path", "data/shop.db")));
    const char *from = rt_config_str(c, "working_hours.from", "09:00");
    (void)rt_parse_hhmm(from);
    rt_config_free(c);
  }
  free(err);
  return 0;
}
