/* tz.c -- local time in IANA zones via libc, with a fixed-offset fallback
 * for Russian zones (see tz.h). */
#include "tz.h"
#include "rt.h"
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

static int64_t zone_make(const zone *z, int y, int mon, int day, int h, int min) {
  struct tm tm;
  memset(&tm, 0, sizeof tm);
  tm.tm_year = y - 1900;
  tm.tm_mon = mon - 1;
  tm.tm_mday = day;
  tm.tm_hour = h;
  tm.tm_min = min;
  tm.tm_isdst = -1;
  if (!z->file) return (int64_t)timegm(&tm) - z->off;
  tz_saved s = tz_push(z->spec);
  time_t r = mktime(&tm);
  tz_pop(s);
  return (int64_t)r;
}

bool rt_tz_valid(const char *tz) {
  zone z;
  return tz && resolve(tz, &z);
}

int rt_tz_offset(const char *tz, int64_t t, int *off_sec) {
  zone z;
  if (!resolve(tz, &z)) return RT_EINVAL;
  struct tm tm;
  zone_tm(&z, t, &tm);
  *off_sec = (int)tm.tm_gmtoff;
  return RT_OK;
}

int rt_tz_local_tm(const char *tz, int64_t t, struct tm *out) {
  zone z;
  if (!resolve(tz, &z)) return RT_EINVAL;
  zone_tm(&z, t, out);
  return RT_OK;
}

int64_t rt_tz_local_midnight(const char *tz, int64_t t) {
  zone z;
  resolve_or_default(tz, &z);
  struct tm tm;
  zone_tm(&z, t, &tm);
  return zone_make(&z, tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, 0, 0);
}

int64_t rt_tz_make(const char *tz, int y, int mon, int day, int h, int min) {
  zone z;
  resolve_or_default(tz, &z);
  return zone_make(&z, y, mon, day, h, min);
}
