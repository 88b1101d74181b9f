/* clock.c -- see clock.h. */
#include "clock.h"
#include "tz.h"
#include <stdio.h>
#include <string.h>
#include <time.h>

int64_t rt_clock_now(const rt_clock *c) {
  if (c && c->virt) return c->vnow_ms;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void rt_clock_set(rt_clock *c, int64_t ms) {
  c->virt = true;
  c->vnow_ms = ms;
}

int rt_clock_parse(const char *s, const char *tz, int64_t *ms) {
  int y, mo, d, h = 0, mi = 0, sec = 0, n = 0;
  if (sscanf(s, "%d-%d-%d%n", &y, &mo, &d, &n) != 3) return RT_EINVAL;
  const char *p = s + n;
  if (*p == 'T' || *p == ' ') {
    int m2 = 0;
    if (sscanf(p + 1, "%d:%d%n", &h, &mi, &m2) != 2) return RT_EINVAL;
    p += 1 + m2;
    if (*p == ':') {
      if (sscanf(p + 1, "%d%n", &sec, &m2) != 1) return RT_EINVAL;
      p += 1 + m2;
    }
  }
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h < 0 || h > 23 || mi < 0 || mi > 59)
    return RT_EINVAL;
  if (*p == 'Z' || *p == '+' || *p == '-') {
    int oh = 0, om = 0, sign = 1;
    if (*p != 'Z') {
      sign = *p == '-' ? -1 : 1;
      if (sscanf(p + 1, "%d:%d", &oh, &om) < 1) return RT_EINVAL;
    }
    struct tm tm = {.tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d,
                    .tm_hour = h, .tm_min = mi, .tm_sec = sec};
    int64_t t = (int64_t)timegm(&tm) - sign * (oh * 3600 + om * 60);
    *ms = t * 1000;
    return RT_OK;
  }
  if (*p) return RT_EINVAL;
  int64_t t = rt_tz_make(tz ? tz : "Europe/Moscow", y, mo, d, h, mi);
  *ms = (t + sec) * 1000;
  return RT_OK;
}

void rt_clock_format(int64_t ms, const char *tz, char *out, size_t n) {
  struct tm tm;
  if (rt_tz_local_tm(tz ? tz : "Europe/Moscow", ms / 1000, &tm) != RT_OK) {
    time_t t = (time_t)(ms / 1000);
    gmtime_r(&t, &tm);
  }
  snprintf(out, n, "%04d-%02d-%02d %02d:%02d", tm.tm_year + 1900, tm.tm_mon + 1,
           tm.tm_mday, tm.tm_hour, tm.tm_min);
}
