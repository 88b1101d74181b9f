/* log.c -- logfmt lines to stderr (see log.h). */
#include "log.h"
#include <ctype.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static rt_log_level log_level = RT_LOG_INFO;
static bool log_json;

void rt_log_set_json(bool on) { log_json = on; }

/* Rewrites one logfmt line (key=value, values maybe quoted) as a JSON
 * object, so operators who ship logs to a collector get JSON lines. */
static void to_json(const char *in, char *out, size_t n) {
  size_t o = 0;
  const char *p = in;
  out[o++] = '{';
  bool first = true;
  while (*p && o + 8 < n) {
    while (*p == ' ') p++;
    const char *k = p;
    while (*p && *p != '=' && *p != ' ') p++;
    if (*p != '=') break;
    size_t klen = (size_t)(p - k);
    p++;
    if (!first) out[o++] = ',';
    first = false;
    o += (size_t)snprintf(out + o, n - o, "\"%.*s\":\"", (int)klen, k);
    if (*p == '"') {
      p++;
      while (*p && *p != '"' && o + 4 < n) {
        if (*p == '\\' && p[1]) { out[o++] = *p++; out[o++] = *p++; continue; }
        out[o++] = *p++;
      }
      if (*p == '"') p++;
    } else {
      while (*p && *p != ' ' && o + 4 < n) {
        if (*p == '"' || *p == '\\') out[o++] = '\\';
        out[o++] = *p++;
      }
    }
    if (o + 2 < n) out[o++] = '"';
  }
  if (o + 2 < n) out[o++] = '}';
  out[o < n ? o : n - 1] = '\0';
}

void rt_log_set_level(rt_log_level lvl) { log_level = lvl; }
rt_log_level rt_log_get_level(void) { return log_level; }

int rt_log_parse_level(const char *s) {
  static const char *names[] = {"debug", "info", "warn", "error", "off"};
  for (int i = 0; i < 5; i++)
    if (strcmp(s, names[i]) == 0) return i;
  return -1;
}

void rt_log(rt_log_level lvl, const char *msg, const char *fmt, ...) {
  static const char *names[] = {"debug", "info", "warn", "error"};
  if (lvl < log_level || lvl >= RT_LOG_OFF) return;
  char line[4096];
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm;
  gmtime_r(&ts.tv_sec, &tm);
  int n = snprintf(line, sizeof line,
                   "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s msg=%s",
                   tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                   tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000, names[lvl], msg);
  if (fmt && *fmt && n < (int)sizeof line - 2) {
    line[n++] = ' ';
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - n, fmt, ap);
    va_end(ap);
    n = m < 0 ? n : (n + m < (int)sizeof line ? n + m : (int)sizeof line - 1);
  }
  /* Masking is applied to the whole line, so a caller that forgot cannot
   * leak a customer's phone into the log. */
  char masked[4096];
  rt_log_mask_phone(line, masked, sizeof masked);
  if (log_json) {
    char js[8192];
    to_json(masked, js, sizeof js);
    fprintf(stderr, "%s\n", js);
  } else {
    fprintf(stderr, "%s\n", masked);
  }
}

char *rt_log_mask_phone(const char *s, char *out, size_t n) {
  size_t o = 0, i = 0, len = strlen(s);
  while (i < len && o + 1 < n) {
    /* A phone: optional +, then digits with separators, 10..15 digits. */
    size_t j = i, digits = 0;
    int plus = (s[j] == '+');
    if (plus) j++;
    size_t k = j;
    while (k < len && (isdigit((unsigned char)s[k]) || s[k] == ' ' || s[k] == '-' ||
                       s[k] == '(' || s[k] == ')')) {
      if (isdigit((unsigned char)s[k])) digits++;
      k++;
    }
    int prev_ok = i == 0 || !isalnum((unsigned char)s[i - 1]);
    if (prev_ok && digits >= 10 && digits <= 15 && isdigit((unsigned char)s[j])) {
      /* keep trailing separators out of the match */
      while (k > j && !isdigit((unsigned char)s[k - 1])) k--;
      if (k >= len || !isalnum((unsigned char)s[k])) {
        if (plus && o + 1 < n) out[o++] = '+';
        size_t seen = 0;
        for (size_t p = j; p < k && o + 1 < n; p++) {
          if (!isdigit((unsigned char)s[p])) continue;
          seen++;
          out[o++] = (seen > digits - 2 || seen == 1) ? s[p] : '*';
        }
        i = k;
        continue;
      }
    }
    out[o++] = s[i++];
  }
  out[o < n ? o : n - 1] = '\0';
  return out;
}

void rt_log_quote(const char *s, char *out, size_t n) {
  bool need = !*s;
  for (const char *p = s; *p; p++)
    if (*p == ' ' || *p == '"' || *p == '=' || *p == '\\' || (unsigned char)*p < 0x20) need = true;
  size_t o = 0;
  if (!need) { snprintf(out, n, "%s", s); return; }
  if (o + 1 < n) out[o++] = '"';
  for (const char *p = s; *p && o + 3 < n; p++) {
    if (*p == '"' || *p == '\\') { out[o++] = '\\'; out[o++] = *p; }
    else if (*p == '\n') { out[o++] = '\\'; out[o++] = 'n'; }
    else if ((unsigned char)*p < 0x20) out[o++] = ' ';
    else out[o++] = *p;
  }
  if (o + 1 < n) out[o++] = '"';
  out[o] = '\0';
}
