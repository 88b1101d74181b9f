/* tz.c -- local time in IANA zones via libc, with a fixed-offset fallback
 * for Russian zones (see tz.h). */
#include "tz.h"
#include "rt.h"
#include <ctype.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Current offsets of the zones our customers live in. Russia has had no DST
 * since 2014, so a fixed offset is exact for any date after that; this table
 * only serves machines without tzdata. */
static const struct { const char *name; int hours; } fixed_zones[] = {
  {"Europe/Kaliningrad", 2},
  {"Europe/Moscow", 3},     {"Europe/Simferopol", 3}, {"Europe/Volgograd", 3},
  {"Europe/Kirov", 3},
  {"Europe/Samara", 4},     {"Europe/Ulyanovsk", 4},  {"Europe/Astrakhan", 4},
  {"Europe/Saratov", 4},
  {"Asia/Yekaterinburg", 5},
  {"Asia/Omsk", 6},
  {"Asia/Krasnoyarsk", 7},  {"Asia/Novosibirsk", 7},  {"Asia/Barnaul", 7},
  {"Asia/Tomsk", 7},        {"Asia/Novokuznetsk", 7},
  {"Asia/Irkutsk", 8},
  {"Asia/Yakutsk", 9},      {"Asia/Chita", 9},        {"Asia/Khandyga", 9},
  {"Asia/Vladivostok", 10}, {"Asia/Ust-Nera", 10},
  {"Asia/Magadan", 11},     {"Asia/Sakhalin", 11},    {"Asia/Srednekolymsk", 11},
  {"Asia/Kamchatka", 12},   {"Asia/Anadyr", 12},
  {"UTC", 0},               {"Etc/UTC", 0},
};

typedef struct {
  bool file;      /* true: libc reads path; false: fixed offset */
  int off;        /* seconds east of UTC, fixed zones only */
  char spec[512]; /* ":/usr/share/zoneinfo/Europe/Moscow" for TZ= */
} zone;

/* Zone names come from config files and flows; keep them to what IANA uses so
 * a name can never walk out of the zoneinfo directory. */
static bool name_ok(const char *tz) {
  size_t n = strlen(tz);
  if (n == 0 || n > 64 || tz[0] == '/' || strstr(tz, "..")) return false;
  for (const char *p = tz; *p; p++) {
    char c = *p;
    if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
          (c >= '0' && c <= '9') || c == '/' || c == '_' || c == '-' || c == '+'))
      return false;
  }
  return true;
}

static bool is_tzif(const char *path) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  char magic[4];
  ssize_t r = read(fd, magic, sizeof magic);
  close(fd);
  return r == 4 && memcmp(magic, "TZif", 4) == 0;
}

static bool resolve(const char *tz, zone *z) {
  if (!tz) tz = RT_TZ_DEFAULT;
  if (!name_ok(tz)) return false;
  /* libc honours TZDIR too; we read it ourselves so that validation and use
   * look at the same file. */
  const char *dir = getenv("TZDIR");
  if (!dir || !*dir) dir = "/usr/share/zoneinfo";
  int n = snprintf(z->spec, sizeof z->spec, ":%s/%s", dir, tz);
  if (n > 0 && (size_t)n < sizeof z->spec && is_tzif(z->spec + 1)) {
    z->file = true;
    return true;
  }
  for (size_t i = 0; i < RT_ARRAY_LEN(fixed_zones); i++) {
    if (strcmp(fixed_zones[i].name, tz) == 0) {
      z->file = false;
      z->off = fixed_zones[i].hours * 3600;
      return true;
    }
  }
  return false;
}

static void resolve_or_default(const char *tz, zone *z) {
  if (resolve(tz, z)) return;
  if (resolve(RT_TZ_DEFAULT, z)) return;
  z->file = false; /* cannot happen: Moscow is in the table */
  z->off = 3 * 3600;
}

/* TZ swapping: the previous value is copied before setenv invalidates it. */
typedef struct { char *old; bool had; } tz_saved;

static tz_saved tz_push(const char *spec) {
  tz_saved s = {NULL, false};
  const char *cur = getenv("TZ");
  if (cur) { s.old = rt_xstrdup(cur); s.had = true; }
  setenv("TZ", spec, 1);
  tzset();
  return s;
}

static void tz_pop(tz_saved s) {
  if (s.had) setenv("TZ", s.old, 1);
  else unsetenv("TZ");
  tzset();
  free(s.old);
}

/* ---- calendar arithmetic ---------------------------------------------
 * Proleptic Gregorian days since 1970-01-01 and back (H. Hinnant's
 * days_from_civil / civil_from_days). Inputs are bounded before they get
 * here, so the plain arithmetic inside cannot overflow. */

/* |y| <= YEAR_LIMIT, 1 <= m <= 12: every product below stays under 2^50. */
#define YEAR_LIMIT INT64_C(1000000000000)

int64_t rt_tz_days_from_civil(int64_t y, int m, int64_t d) {
  y -= m <= 2;
  int64_t era = rt_tz_floor_div(y, 400);
  int64_t yoe = y - era * 400;
  int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

void rt_tz_civil_from_days(int64_t z, int64_t *y, int *m, int *d) {
  z += 719468;
  int64_t era = rt_tz_floor_div(z, 146097);
  int64_t doe = z - era * 146097;
  int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  int64_t mp = (5 * doy + 2) / 153;
  *d = (int)(doy - (153 * mp + 2) / 5 + 1);
  *m = (int)(mp < 10 ? mp + 3 : mp - 9);
  *y = yoe + era * 400 + (*m <= 2);
}

int rt_tz_days_in_month(int64_t y, int m) {
  static const int dm[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  return m == 2 && leap ? 29 : dm[m - 1];
}

/* Wall-clock fields -> seconds since 1970-01-01 00:00 on that wall clock,
 * every step checked. */
static int civil_seconds(int64_t y, int64_t mon, int64_t day, int64_t h, int64_t min,
                         int64_t sec, int64_t *out) {
  int64_t m0, days, s;
  if (__builtin_sub_overflow(mon, 1, &m0) ||
      __builtin_add_overflow(y, rt_tz_floor_div(m0, 12), &y))
    return RT_ELIMIT;
  if (y > YEAR_LIMIT || y < -YEAR_LIMIT) return RT_ELIMIT;
  days = rt_tz_days_from_civil(y, (int)(m0 - rt_tz_floor_div(m0, 12) * 12) + 1, 1);
  if (day == INT64_MIN || __builtin_add_overflow(days, day - 1, &days) ||
      __builtin_mul_overflow(days, 86400, &s) ||
      __builtin_mul_overflow(h, 3600, &h) || __builtin_add_overflow(s, h, &s) ||
      __builtin_mul_overflow(min, 60, &min) || __builtin_add_overflow(s, min, &s) ||
      __builtin_add_overflow(s, sec, &s))
    return RT_ELIMIT;
  *out = s;
  return RT_OK;
}

static bool in_range(int64_t t) { return t >= RT_TZ_MIN && t <= RT_TZ_MAX; }

/* ---- zones ----------------------------------------------------------- */

/* t must be in range (callers check): then time_t and tm_year hold it. */
static void zone_tm(const zone *z, int64_t t, struct tm *out) {
  memset(out, 0, sizeof *out);
  if (z->file) {
    time_t tt = (time_t)t;
    tz_saved s = tz_push(z->spec);
    localtime_r(&tt, out);
    tz_pop(s);
  } else {
    time_t tt = (time_t)(t + z->off);
    gmtime_r(&tt, out);
    out->tm_gmtoff = z->off;
    out->tm_zone = "";
  }
}

static int zone_make(const zone *z, int64_t y, int64_t mon, int64_t day, int64_t h,
                     int64_t min, int64_t *out) {
  int64_t wall, r;
  /* A wall time more than a day outside the range cannot land inside it
   * whatever the zone's offset. */
  if (civil_seconds(y, mon, day, h, min, 0, &wall) != RT_OK ||
      wall < RT_TZ_MIN - 86400 || wall > RT_TZ_MAX + 86400)
    return RT_ELIMIT;
  if (!z->file) {
    r = wall - z->off;
  } else {
    /* mktime does the zone's rules (DST gaps and overlaps); it gets the
     * fields already normalised, so each fits an int. */
    int64_t days = rt_tz_floor_div(wall, 86400), rem = wall - days * 86400, ly;
    int lm, ld;
    rt_tz_civil_from_days(days, &ly, &lm, &ld);
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    tm.tm_year = (int)(ly - 1900);
    tm.tm_mon = lm - 1;
    tm.tm_mday = ld;
    tm.tm_hour = (int)(rem / 3600);
    tm.tm_min = (int)(rem % 3600 / 60);
    tm.tm_isdst = -1;
    tz_saved s = tz_push(z->spec);
    time_t tt = mktime(&tm);
    tz_pop(s);
    r = (int64_t)tt;
  }
  if (!in_range(r)) return RT_ELIMIT;
  *out = r;
  return RT_OK;
}

bool rt_tz_valid(const char *tz) {
  zone z;
  return tz && resolve(tz, &z);
}

int rt_tz_offset(const char *tz, int64_t t, int *off_sec) {
  zone z;
  if (!resolve(tz, &z)) return RT_EINVAL;
  if (!in_range(t)) return RT_ELIMIT;
  struct tm tm;
  zone_tm(&z, t, &tm);
  *off_sec = (int)tm.tm_gmtoff;
  return RT_OK;
}

int rt_tz_local_tm(const char *tz, int64_t t, struct tm *out) {
  zone z;
  if (!resolve(tz, &z)) return RT_EINVAL;
  if (!in_range(t)) return RT_ELIMIT;
  zone_tm(&z, t, out);
  return RT_OK;
}

int64_t rt_tz_local_midnight(const char *tz, int64_t t) {
  zone z;
  resolve_or_default(tz, &z);
  if (!in_range(t)) return -1;
  struct tm tm;
  zone_tm(&z, t, &tm);
  int64_t r;
  if (zone_make(&z, (int64_t)tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, 0, 0, &r) != RT_OK)
    return -1;
  return r;
}

int rt_tz_make_checked(const char *tz, int64_t y, int64_t mon, int64_t day, int64_t h,
                       int64_t min, int64_t *out) {
  zone z;
  resolve_or_default(tz, &z);
  return zone_make(&z, y, mon, day, h, min, out);
}

int64_t rt_tz_make(const char *tz, int y, int mon, int day, int h, int min) {
  int64_t r;
  return rt_tz_make_checked(tz, y, mon, day, h, min, &r) == RT_OK ? r : -1;
}

int rt_tz_utc_make(int64_t y, int64_t mon, int64_t day, int64_t h, int64_t min,
                   int64_t sec, int64_t *out) {
  int64_t r;
  if (civil_seconds(y, mon, day, h, min, sec, &r) != RT_OK || !in_range(r)) return RT_ELIMIT;
  *out = r;
  return RT_OK;
}

/* ---- durations --------------------------------------------------------- */

/* Every number is capped while it is read, so no intermediate value can get
 * anywhere near INT64_MAX: a digit run stops growing once it is past the
 * cap, and the cap times the largest unit is far below it. The syntax is
 * checked to the end first, so "99999999999999999999x" is a syntax error,
 * not a size error. */
int rt_parse_duration(const char *s, int64_t *sec) {
  static const char units[] = "dhms";
  static const int64_t mult[] = {86400, 3600, 60, 1};
  if (!s || !*s) return RT_EINVAL;
  int64_t total = 0;
  bool big = false;
  int next = 0; /* units come largest first, each at most once */
  while (*s) {
    if (!isdigit((unsigned char)*s)) return RT_EINVAL;
    int64_t n = 0;
    while (isdigit((unsigned char)*s)) {
      if (n <= RT_DURATION_MAX_SEC) n = n * 10 + (*s - '0');
      s++;
    }
    int u = next;
    while (u < 4 && units[u] != *s) u++;
    if (u == 4 || !*s) return RT_EINVAL;
    if (n > RT_DURATION_MAX_SEC / mult[u]) big = true;
    else total += n * mult[u];
    if (total > RT_DURATION_MAX_SEC) big = true;
    next = u + 1;
    s++;
  }
  if (big) return RT_ELIMIT;
  *sec = total;
  return RT_OK;
}

/* Digits are read one by one (no sscanf: "%d" on "0777777777" is undefined
 * behaviour once it does not fit an int, and h * 60 overflowed after it). */
int rt_parse_hhmm(const char *s) {
  if (!s) return -1;
  int h = 0, m = 0, i = 0;
  for (; i < 2 && isdigit((unsigned char)s[i]); i++) h = h * 10 + (s[i] - '0');
  if (i == 0 || s[i] != ':') return -1;
  s += i + 1;
  if (!isdigit((unsigned char)s[0]) || !isdigit((unsigned char)s[1]) || s[2]) return -1;
  m = (s[0] - '0') * 10 + (s[1] - '0');
  if (m > 59 || h * 60 + m > 1440) return -1;
  return h * 60 + m;
}
