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

/* Reads min..max decimal digits at *p into *v and advances *p. No sscanf:
 * "%d" is undefined behaviour on a number that does not fit an int. */
static bool num(const char **p, int min, int max, int *v) {
  int n = 0, i = 0;
  for (; i < max && (*p)[i] >= '0' && (*p)[i] <= '9'; i++) n = n * 10 + ((*p)[i] - '0');
  if (i < min) return false;
  *p += i;
  *v = n;
  return true;
}

int rt_clock_parse(const char *s, const char *tz, int64_t *ms) {
  int y, mo, d, h = 0, mi = 0, sec = 0;
  const char *p = s;
  if (!num(&p, 4, 4, &y) || *p++ != '-' || !num(&p, 1, 2, &mo) || *p++ != '-' ||
      !num(&p, 1, 2, &d))
    return RT_EINVAL;
  if (*p == 'T' || *p == ' ') {
    p++;
    if (!num(&p, 1, 2, &h) || *p++ != ':' || !num(&p, 1, 2, &mi)) return RT_EINVAL;
    if (*p == ':' && (p++, !num(&p, 1, 2, &sec))) return RT_EINVAL;
  }
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
    return RT_EINVAL;
  int64_t t;
  if (*p == 'Z' || *p == '+' || *p == '-') {
    /* Z, +H, +HH, +HH:MM or +HHMM */
    int oh = 0, om = 0, sign = *p == '-' ? -1 : 1;
    if (*p++ != 'Z') {
      if (!num(&p, 1, 2, &oh)) return RT_EINVAL;
      if (*p == ':') p++;
      if (*p && !num(&p, 2, 2, &om)) return RT_EINVAL;
      if (oh > 23 || om > 59) return RT_EINVAL;
    }
    if (*p || rt_tz_utc_make(y, mo, d, h, mi, sec, &t) != RT_OK) return RT_EINVAL;
    t -= sign * (oh * 3600 + om * 60);
  } else {
    if (*p || rt_tz_make_checked(tz ? tz : RT_TZ_DEFAULT, y, mo, d, h, mi, &t) != RT_OK)
      return RT_EINVAL;
    t += sec;
  }
  *ms = t * 1000;
  return RT_OK;
}

void rt_clock_format(int64_t ms, const char *tz, char *out, size_t n) {
  struct tm tm;
  int64_t sec = ms / 1000 - (ms % 1000 < 0); /* floor: -1 ms is 23:59:59 */
  /* An unknown zone falls back to UTC, which is always known; only a time
   * outside years 1..9999 has no date to show. */
  if (rt_tz_local_tm(tz ? tz : RT_TZ_DEFAULT, sec, &tm) != RT_OK &&
      rt_tz_local_tm("UTC", sec, &tm) != RT_OK) {
    snprintf(out, n, "(out of range)");
    return;
  }
  snprintf(out, n, "%04d-%02d-%02d %02d:%02d", tm.tm_year + 1900, tm.tm_mon + 1,
           tm.tm_mday, tm.tm_hour, tm.tm_min);
}
