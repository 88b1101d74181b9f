/* test_log.c -- rt_log_mask_phone (what is a phone, what is not) and the
 * repeat limiter of rt_log (a flood of one msg key becomes a summary line). */
#include "log.h"
#include "t.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- masking ------------------------------------------------------------- */

static const struct { const char *in, *want; } mask_cases[] = {
  /* phones: masked, first and last two digits kept */
  {"text=\"+7 912 345-67-89\"", "text=\"+7********89\""},
  {"+79123456789", "+7********89"},
  {"call 8 (912) 345-67-89 now", "call 8********89 now"},
  {"8-800-555-35-35", "8********35"},
  {"89123456789", "8********89"},
  {"79123456789@c.us", "7********89@c.us"},
  {"from=79123456789", "from=7********89"},
  {"chat_id=79123456789", "chat_id=7********89"},
  {"phone=9123456789", "phone=9*******89"},
  {"my number is 9123456789.", "my number is 9*******89."},
  {"(495) 123-45-67", "4*******67"},
  {"+44 20 7946 0958", "+4*********58"},
  {"+1 (212) 555-0100", "+1********00"},
  {"tel:+380501234567", "tel:+3*********67"},
  {"call 89123456789 2 times", "call 8********89 2 times"},
  {"got 2 89123456789", "got 2 8********89"},
  {"(912)3456789", "9*******89"},
  {"8 9123456789", "8********89"},
  {"user=79123456789 kind=text", "user=7********89 kind=text"},
  /* not phones: left alone */
  {"msg=pruned rows=104 keep_days=200000000000", "msg=pruned rows=104 keep_days=200000000000"},
  {"keep_days=89000000000", "keep_days=89000000000"},
  {"due_ms=1764620000123", "due_ms=1764620000123"},
  {"at 1764620000123 ms", "at 1764620000123 ms"},
  {"ts=1764620000", "ts=1764620000"},
  {"unix 1764620000", "unix 1764620000"},
  {"ext_id=79123456789", "ext_id=79123456789"},
  {"ms=9123456789", "ms=9123456789"},
  {"rows=12345678901234", "rows=12345678901234"},
  {"count 12345678901", "count 12345678901"},
  {"version=91234567890abcdef", "version=91234567890abcdef"},
  {"sha=a89123456789", "sha=a89123456789"},
  {"ratio=0.89123456789", "ratio=0.89123456789"},
  {"id 123456789012", "id 123456789012"},
  {"1234567", "1234567"},
  {"ts=2026-12-01T20:10:21.123Z", "ts=2026-12-01T20:10:21.123Z"},
  {"list 12  3456789012", "list 12  3456789012"},
  {"bytes=1 000 000 000", "bytes=1 000 000 000"},
  {"", ""},
};

T(mask_table) {
  for (size_t i = 0; i < sizeof mask_cases / sizeof *mask_cases; i++) {
    char out[256];
    rt_log_mask_phone(mask_cases[i].in, out, sizeof out);
    if (strcmp(out, mask_cases[i].want) != 0)
      fprintf(stderr, "  case %zu: \"%s\"\n", i, mask_cases[i].in);
    CHECK_STR(out, mask_cases[i].want);
  }
}

T(mask_small_buffer) {
  char out[6];
  rt_log_mask_phone("+79123456789 and more", out, sizeof out);
  CHECK_STR(out, "+7***");
  char one[1];
  rt_log_mask_phone("abc", one, sizeof one);
  CHECK_STR(one, "");
}

/* A long run of digits and separators is scanned in linear time and is
 * not one phone. */
T(mask_long_runs) {
  static char in[4000], out[4000];
  for (size_t i = 0; i + 1 < sizeof in; i++) in[i] = (i % 2) ? ' ' : '7';
  in[sizeof in - 1] = '\0';
  rt_log_mask_phone(in, out, sizeof out);
  CHECK(strchr(out, '*') == NULL);
}

/* ---- repeat limiter ------------------------------------------------------ */

/* Runs fn with stderr going to a temporary file; returns its contents. */
static char *capture(void (*fn)(void)) {
  char path[] = "/tmp/test_log.XXXXXX";
  int fd = mkstemp(path);
  if (fd < 0) return NULL;
  fflush(stderr);
  int saved = dup(2);
  dup2(fd, 2);
  fn();
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  off_t n = lseek(fd, 0, SEEK_END);
  char *buf = calloc(1, (size_t)n + 1);
  if (pread(fd, buf, (size_t)n, 0) != n) buf[0] = '\0';
  close(fd);
  unlink(path);
  return buf;
}

static int count_of(const char *hay, const char *needle) {
  int n = 0;
  for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle)) n++;
  return n;
}

static void flood(void) {
  for (int i = 0; i < 100000; i++) rt_log(RT_LOG_WARN, "flood.key", "line=\"accept: errno 24\"");
  rt_log(RT_LOG_WARN, "other.key", "i=1");
  rt_log_flush();
}

T(flood_is_summarised) {
  rt_log_set_level(RT_LOG_INFO);
  rt_log_set_rate(RT_LOG_DEFAULT_PER_S);
  char *out = capture(flood);
  CHECK(out != NULL);
  if (!out) return;
  int kept = count_of(out, "msg=flood.key");
  /* the loop may straddle a second boundary: two windows at most */
  CHECK(kept >= RT_LOG_DEFAULT_PER_S && kept <= 2 * RT_LOG_DEFAULT_PER_S);
  CHECK(count_of(out, "msg=other.key") == 1);
  CHECK(count_of(out, "msg=log.suppressed key=flood.key") >= 1);
  /* every line is accounted for: kept + suppressed = sent */
  long dropped = 0;
  for (const char *p = out; (p = strstr(p, "key=flood.key lines=")); p++)
    dropped += strtol(p + strlen("key=flood.key lines="), NULL, 10);
  CHECK_INT(kept + dropped, 100000);
  CHECK(strstr(out, "similar lines") != NULL);
  CHECK(strlen(out) < 64 * 1024);
  free(out);
}

static void few(void) {
  for (int i = 0; i < 50; i++) rt_log(RT_LOG_INFO, "few.key", "i=%d", i);
  rt_log_flush();
}

T(under_the_rate_nothing_is_dropped) {
  rt_log_set_rate(RT_LOG_DEFAULT_PER_S);
  char *out = capture(few);
  CHECK(out != NULL);
  if (!out) return;
  CHECK_INT(count_of(out, "msg=few.key"), 50);
  CHECK(strstr(out, "log.suppressed") == NULL);
  free(out);
}

static void unlimited(void) {
  for (int i = 0; i < 1000; i++) rt_log(RT_LOG_INFO, "many.key", "i=%d", i);
}

T(rate_zero_is_unlimited) {
  rt_log_set_rate(0);
  char *out = capture(unlimited);
  rt_log_set_rate(RT_LOG_DEFAULT_PER_S);
  CHECK(out != NULL);
  if (!out) return;
  CHECK_INT(count_of(out, "msg=many.key"), 1000);
  free(out);
}

int main(void) {
  T_RUN(mask_table);
  T_RUN(mask_small_buffer);
  T_RUN(mask_long_runs);
  T_RUN(flood_is_summarised);
  T_RUN(under_the_rate_nothing_is_dropped);
  T_RUN(rate_zero_is_unlimited);
  return T_DONE();
}
