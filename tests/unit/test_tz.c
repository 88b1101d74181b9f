/* test_tz.c -- offsets, local calendar, local->UTC and the fallback table. */
#include "t.h"
#include "rt.h"
#include "tz.h"
#include "clock.h"
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

/* 2026-11-23 09:00 UTC */
#define T0 INT64_C(1795424400)

T(offsets) {
  int off = 0;
  CHECK_INT(rt_tz_offset("Europe/Moscow", T0, &off), RT_OK);
  CHECK_INT(off, 3 * 3600);
  CHECK_INT(rt_tz_offset("Asia/Vladivostok", T0, &off), RT_OK);
  CHECK_INT(off, 10 * 3600);
  CHECK_INT(rt_tz_offset("Asia/Yekaterinburg", T0, &off), RT_OK);
  CHECK_INT(off, 5 * 3600);
  CHECK_INT(rt_tz_offset("Europe/Kaliningrad", T0, &off), RT_OK);
  CHECK_INT(off, 2 * 3600);
  CHECK_INT(rt_tz_offset("Asia/Kamchatka", T0, &off), RT_OK);
  CHECK_INT(off, 12 * 3600);
  CHECK_INT(rt_tz_offset(NULL, T0, &off), RT_OK); /* Moscow */
  CHECK_INT(off, 3 * 3600);
  off = 42;
  CHECK_INT(rt_tz_offset("Mars/Olympus", T0, &off), RT_EINVAL);
  CHECK_INT(off, 42);
  CHECK_INT(rt_tz_offset("../../etc/passwd", T0, &off), RT_EINVAL);
  CHECK_INT(rt_tz_offset("/usr/share/zoneinfo/UTC", T0, &off), RT_EINVAL);
  CHECK_INT(rt_tz_offset("", T0, &off), RT_EINVAL);
  CHECK(rt_tz_valid("Europe/Moscow"));
  CHECK(!rt_tz_valid("Europe/Nowhere"));
  CHECK(!rt_tz_valid(NULL));
  CHECK(!rt_tz_valid("Europe/Moscow; rm -rf"));
}

T(history) {
  /* Moscow was UTC+4 from 2011 to 2014: only tzdata knows */
  if (access("/usr/share/zoneinfo/Europe/Moscow", R_OK) != 0) return;
  int off = 0;
  CHECK_INT(rt_tz_offset("Europe/Moscow", rt_tz_make("UTC", 2013, 6, 1, 0, 0), &off), RT_OK);
  CHECK_INT(off, 4 * 3600);
  /* and zones outside Russia, with DST */
  CHECK_INT(rt_tz_offset("Europe/Berlin", rt_tz_make("UTC", 2026, 7, 1, 0, 0), &off), RT_OK);
  CHECK_INT(off, 2 * 3600);
  CHECK_INT(rt_tz_offset("Europe/Berlin", rt_tz_make("UTC", 2026, 1, 1, 0, 0), &off), RT_OK);
  CHECK_INT(off, 1 * 3600);
}

T(local_tm_and_make) {
  struct tm tm;
  CHECK_INT(rt_tz_local_tm("Asia/Vladivostok", T0, &tm), RT_OK);
  CHECK_INT(tm.tm_year + 1900, 2026);
  CHECK_INT(tm.tm_mon + 1, 11);
  CHECK_INT(tm.tm_mday, 23);
  CHECK_INT(tm.tm_hour, 19);
  CHECK_INT(tm.tm_wday, 1); /* Monday */
  CHECK_INT(rt_tz_local_tm("Nope/Nope", T0, &tm), RT_EINVAL);

  CHECK_INT(rt_tz_make("Europe/Moscow", 2026, 11, 23, 12, 0), T0);
  CHECK_INT(rt_tz_make(NULL, 2026, 11, 23, 12, 0), T0);
  CHECK_INT(rt_tz_make("Asia/Vladivostok", 2026, 11, 23, 19, 0), T0);
  CHECK_INT(rt_tz_make("UTC", 1970, 1, 1, 0, 0), 0);
  CHECK_INT(rt_tz_make("Unknown/Zone", 2026, 11, 23, 12, 0), T0); /* Moscow */
  /* normalisation: day 32 of December is 1 January */
  CHECK_INT(rt_tz_make("UTC", 2026, 12, 32, 0, 0), rt_tz_make("UTC", 2027, 1, 1, 0, 0));

  /* round trip local -> UTC -> local across zones and a year */
  static const char *zones[] = {"Europe/Moscow", "Asia/Vladivostok", "Asia/Yekaterinburg",
                                "Europe/Kaliningrad", "Asia/Magadan"};
  for (size_t z = 0; z < RT_ARRAY_LEN(zones); z++) {
    for (int m = 1; m <= 12; m++) {
      int64_t t = rt_tz_make(zones[z], 2026, m, 15, 10, 30);
      CHECK_INT(rt_tz_local_tm(zones[z], t, &tm), RT_OK);
      CHECK_INT(tm.tm_mon + 1, m);
      CHECK_INT(tm.tm_mday, 15);
      CHECK_INT(tm.tm_hour, 10);
      CHECK_INT(tm.tm_min, 30);
    }
  }
}

T(midnight) {
  CHECK_INT(rt_tz_local_midnight("Europe/Moscow", T0), rt_tz_make("UTC", 2026, 11, 22, 21, 0));
  /* 23:30 UTC is already the next day in Vladivostok */
  int64_t t = rt_tz_make("UTC", 2026, 11, 23, 23, 30);
  CHECK_INT(rt_tz_local_midnight("Asia/Vladivostok", t), rt_tz_make("UTC", 2026, 11, 23, 14, 0));
  CHECK_INT(rt_tz_local_midnight(NULL, T0), rt_tz_local_midnight("Europe/Moscow", T0));
}

T(tz_env_restored) {
  setenv("TZ", "UTC", 1);
  tzset();
  struct tm tm;
  rt_tz_local_tm("Asia/Vladivostok", T0, &tm);
  rt_tz_make("Asia/Vladivostok", 2026, 1, 1, 0, 0);
  CHECK_STR(getenv("TZ"), "UTC");
  time_t t = (time_t)T0;
  localtime_r(&t, &tm);
  CHECK_INT(tm.tm_hour, 9);
  unsetenv("TZ");
  rt_tz_local_tm("Asia/Vladivostok", T0, &tm);
  CHECK(getenv("TZ") == NULL);
}

T(fallback_table) {
  /* no tzdata: Russian zones from the table, the rest unknown */
  setenv("TZDIR", "/nonexistent-zoneinfo", 1);
  int off = 0;
  CHECK_INT(rt_tz_offset("Europe/Moscow", T0, &off), RT_OK);
  CHECK_INT(off, 3 * 3600);
  CHECK_INT(rt_tz_offset("Asia/Vladivostok", T0, &off), RT_OK);
  CHECK_INT(off, 10 * 3600);
  CHECK_INT(rt_tz_offset("Asia/Novosibirsk", T0, &off), RT_OK);
  CHECK_INT(off, 7 * 3600);
  CHECK_INT(rt_tz_offset("Asia/Sakhalin", T0, &off), RT_OK);
  CHECK_INT(off, 11 * 3600);
  CHECK_INT(rt_tz_offset("America/New_York", T0, &off), RT_EINVAL);
  CHECK_INT(rt_tz_make("Asia/Vladivostok", 2026, 11, 23, 19, 0), T0);
  struct tm tm;
  CHECK_INT(rt_tz_local_tm("Asia/Omsk", T0, &tm), RT_OK);
  CHECK_INT(tm.tm_hour, 15);
  CHECK_INT(tm.tm_gmtoff, 6 * 3600);
  CHECK_INT(rt_tz_local_midnight("Asia/Omsk", T0), rt_tz_make("UTC", 2026, 11, 22, 18, 0));
  unsetenv("TZDIR");
}

/* ---- huge and boundary values: refused, never wrapped (runs under UBSan) ---- */

#define I64MAX INT64_MAX
#define I64MIN INT64_MIN

/* Both with the zone files and with the built-in table (TZDIR pointing
 * nowhere), since the two take different paths through tz.c. */
static void make_table(const char *zone) {
  static const struct { int64_t y, mo, d, h, mi; int rc; int64_t want; } cases[] = {
    /* time.make(2^31, 2^31, 2^31, 2^31, 2^31) from the review */
    {INT64_C(2147483648), INT64_C(2147483648), INT64_C(2147483648), INT64_C(2147483648),
     INT64_C(2147483648), RT_ELIMIT, 0},
    {INT_MIN, INT_MIN, INT_MIN, INT_MIN, INT_MIN, RT_ELIMIT, 0},
    {INT_MAX, INT_MAX, INT_MAX, INT_MAX, INT_MAX, RT_ELIMIT, 0},
    {I64MAX, I64MAX, I64MAX, I64MAX, I64MAX, RT_ELIMIT, 0},
    {I64MIN, I64MIN, I64MIN, I64MIN, I64MIN, RT_ELIMIT, 0},
    {I64MAX, 1, 1, 0, 0, RT_ELIMIT, 0},
    {I64MIN, 1, 1, 0, 0, RT_ELIMIT, 0},
    {2026, I64MAX, 1, 0, 0, RT_ELIMIT, 0},
    {2026, I64MIN, 1, 0, 0, RT_ELIMIT, 0},
    {2026, 1, I64MAX, 0, 0, RT_ELIMIT, 0},
    {2026, 1, I64MIN, 0, 0, RT_ELIMIT, 0},
    {2026, 1, 1, I64MAX, 0, RT_ELIMIT, 0},
    {2026, 1, 1, I64MIN, 0, RT_ELIMIT, 0},
    {2026, 1, 1, 0, I64MAX, RT_ELIMIT, 0},
    {2026, 1, 1, 0, I64MIN, RT_ELIMIT, 0},
    {10000, 1, 2, 0, 0, RT_ELIMIT, 0},
    {-1, 1, 1, 0, 0, RT_ELIMIT, 0},
    {INT64_C(1000000000001), 1, 1, 0, 0, RT_ELIMIT, 0},
    /* normalisation, as mktime does it */
    {2026, 14, 1, 0, 0, RT_OK, -1},     /* = 2027-02-01 */
    {2026, 1, 0, 0, 0, RT_OK, -2},      /* = 2025-12-31 */
    {2026, 1, 1, 0, -1, RT_OK, -3},     /* = 2025-12-31 23:59 */
    {2026, -11, 1, 0, 0, RT_OK, -4},    /* = 2025-01-01 */
    {1970, 1, 20455, 0, 0, RT_OK, -5},  /* = 2026-01-01 */
    {2026, 1, 1, 24 * 365, 0, RT_OK, -6}, /* = 2027-01-01 */
  };
  static const int norm[][5] = {{2027, 2, 1, 0, 0}, {2025, 12, 31, 0, 0}, {2025, 12, 31, 23, 59},
                                {2025, 1, 1, 0, 0}, {2026, 1, 1, 0, 0}, {2027, 1, 1, 0, 0}};
  for (size_t i = 0; i < RT_ARRAY_LEN(cases); i++) {
    int64_t got = 12345;
    int rc = rt_tz_make_checked(zone, cases[i].y, cases[i].mo, cases[i].d, cases[i].h,
                                cases[i].mi, &got);
    int64_t want = cases[i].want;
    if (want < 0) {
      const int *n = norm[-want - 1];
      want = rt_tz_make(zone, n[0], n[1], n[2], n[3], n[4]);
    }
    if (rc != cases[i].rc || (rc == RT_OK && got != want) || (rc != RT_OK && got != 12345)) {
      fprintf(stderr, "  %s case %zu: rc %d, %lld (want %lld)\n", zone, i, rc, (long long)got,
              (long long)want);
      CHECK(0);
    }
  }
  /* the int wrapper says -1, as mktime would */
  CHECK_INT(rt_tz_make(zone, INT_MAX, INT_MAX, INT_MAX, INT_MAX, INT_MAX), -1);
  CHECK_INT(rt_tz_make(zone, INT_MIN, INT_MIN, INT_MIN, INT_MIN, INT_MIN), -1);
  /* and times outside years 1..9999 have no local calendar */
  struct tm tm;
  int off = 7;
  static const int64_t outside[] = {I64MAX, I64MIN, RT_TZ_MAX + 1, RT_TZ_MIN - 1,
                                    I64MAX / 1000, -(I64MAX / 1000)};
  for (size_t i = 0; i < RT_ARRAY_LEN(outside); i++) {
    CHECK_INT(rt_tz_local_tm(zone, outside[i], &tm), RT_ELIMIT);
    CHECK_INT(rt_tz_offset(zone, outside[i], &off), RT_ELIMIT);
    CHECK_INT(rt_tz_local_midnight(zone, outside[i]), -1);
  }
  CHECK_INT(off, 7);
  CHECK_INT(rt_tz_local_tm(zone, RT_TZ_MAX, &tm), RT_OK);
  CHECK_INT(rt_tz_local_tm(zone, RT_TZ_MIN, &tm), RT_OK);
}

T(make_huge_fields) {
  make_table("Europe/Moscow");
  make_table("UTC");
  make_table("Asia/Vladivostok");
  setenv("TZDIR", "/nonexistent-zoneinfo", 1);
  make_table("Europe/Moscow");
  make_table("Asia/Kamchatka");
  unsetenv("TZDIR");
}

T(utc_make_bounds) {
  int64_t t = 0;
  CHECK_INT(rt_tz_utc_make(1, 1, 1, 0, 0, 0, &t), RT_OK);
  CHECK_INT(t, RT_TZ_MIN);
  CHECK_INT(rt_tz_utc_make(9999, 12, 31, 23, 59, 59, &t), RT_OK);
  CHECK_INT(t, RT_TZ_MAX);
  CHECK_INT(rt_tz_utc_make(1970, 1, 1, 0, 0, 0, &t), RT_OK);
  CHECK_INT(t, 0);
  CHECK_INT(rt_tz_utc_make(2026, 11, 23, 9, 0, 0, &t), RT_OK);
  CHECK_INT(t, T0);
  CHECK_INT(rt_tz_utc_make(2024, 2, 29, 0, 0, 0, &t), RT_OK); /* leap day */
  CHECK_INT(t, INT64_C(1709164800));
  CHECK_INT(rt_tz_utc_make(1900, 3, 1, 0, 0, 0, &t), RT_OK);  /* 1900 is not leap */
  CHECK_INT(t, INT64_C(-2203891200));
  t = 5;
  CHECK_INT(rt_tz_utc_make(9999, 12, 31, 23, 59, 60, &t), RT_ELIMIT);
  CHECK_INT(rt_tz_utc_make(0, 12, 31, 23, 59, 59, &t), RT_ELIMIT);
  CHECK_INT(rt_tz_utc_make(2026, 1, 1, 0, 0, I64MAX, &t), RT_ELIMIT);
  CHECK_INT(rt_tz_utc_make(2026, 1, 1, 0, 0, I64MIN, &t), RT_ELIMIT);
  CHECK_INT(t, 5);
}

T(clock_parse_and_format) {
  static const struct { const char *in; int rc; int64_t ms; } cases[] = {
    {"2026-11-23 12:00", RT_OK, T0 * 1000},
    {"2026-11-23T12:00", RT_OK, T0 * 1000},
    {"2026-11-23T12:00:30", RT_OK, (T0 + 30) * 1000},
    {"2026-11-23T09:00:00Z", RT_OK, T0 * 1000},
    {"2026-11-23T12:00:00+03:00", RT_OK, T0 * 1000},
    {"2026-11-23T12:00+0300", RT_OK, T0 * 1000},
    {"2026-11-23T04:00-05", RT_OK, T0 * 1000},
    {"2026-11-23T12:00+3", RT_OK, T0 * 1000},
    {"2026-11-23", RT_OK, (T0 - 12 * 3600) * 1000},
    {"0001-01-01T00:00Z", RT_OK, RT_TZ_MIN * 1000},
    {"9999-12-31T23:59:59Z", RT_OK, RT_TZ_MAX * 1000},
    {"2147483648-01-01", RT_EINVAL, 0},
    {"9223372036854775807-01-01 00:00", RT_EINVAL, 0},
    {"2026-2147483648-01", RT_EINVAL, 0},
    {"2026-01-2147483648", RT_EINVAL, 0},
    {"2026-01-01 2147483648:00", RT_EINVAL, 0},
    {"2026-01-01 00:00:2147483648", RT_EINVAL, 0},
    {"2026-01-01T00:00+2147483647:00", RT_EINVAL, 0},
    {"2026-01-01T00:00+99:00", RT_EINVAL, 0},
    {"2026-01-01T00:00+03:00junk", RT_EINVAL, 0},
    {"2026-01-01 00:00junk", RT_EINVAL, 0},
    {"-2026-01-01", RT_EINVAL, 0},
    {" 2026-01-01", RT_EINVAL, 0},
    {"2026-13-01", RT_EINVAL, 0},
    {"2026-01-01 24:00", RT_EINVAL, 0},
    {"", RT_EINVAL, 0},
  };
  for (size_t i = 0; i < RT_ARRAY_LEN(cases); i++) {
    int64_t ms = 42;
    int rc = rt_clock_parse(cases[i].in, "Europe/Moscow", &ms);
    if (rc != cases[i].rc || (rc == RT_OK && ms != cases[i].ms) || (rc != RT_OK && ms != 42)) {
      fprintf(stderr, "  rt_clock_parse(\"%s\") = %d, %lld\n", cases[i].in, rc, (long long)ms);
      CHECK(0);
    }
  }
  char out[64];
  rt_clock_format(T0 * 1000, "Europe/Moscow", out, sizeof out);
  CHECK_STR(out, "2026-11-23 12:00");
  rt_clock_format(T0 * 1000, "No/Such_Zone", out, sizeof out);
  CHECK_STR(out, "2026-11-23 09:00"); /* unknown zone: UTC */
  rt_clock_format(-1, "UTC", out, sizeof out);
  CHECK_STR(out, "1969-12-31 23:59");
  rt_clock_format(I64MAX, "Europe/Moscow", out, sizeof out);
  CHECK_STR(out, "(out of range)");
  rt_clock_format(I64MIN, "Europe/Moscow", out, sizeof out);
  CHECK_STR(out, "(out of range)");
}

/* The calendar arithmetic every module uses (tz.h). */
T(calendar) {
  static const struct { int64_t y; int m, d; int64_t days; } c[] = {
    {1970, 1, 1, 0}, {1969, 12, 31, -1}, {2000, 2, 29, 11016}, {2000, 3, 1, 11017},
    {1900, 3, 1, -25508}, {2024, 12, 31, 20088}, {1, 1, 1, -719162}, {9999, 12, 31, 2932896},
  };
  for (size_t i = 0; i < RT_ARRAY_LEN(c); i++) {
    CHECK_INT(rt_tz_days_from_civil(c[i].y, c[i].m, c[i].d), c[i].days);
    int64_t y;
    int m, d;
    rt_tz_civil_from_days(c[i].days, &y, &m, &d);
    CHECK(y == c[i].y && m == c[i].m && d == c[i].d);
  }
  CHECK_INT(rt_tz_days_from_civil(2026, 1, 32), rt_tz_days_from_civil(2026, 2, 1));
  CHECK_INT(rt_tz_days_in_month(2024, 2), 29);
  CHECK_INT(rt_tz_days_in_month(2100, 2), 28);
  CHECK_INT(rt_tz_days_in_month(2000, 2), 29);
  CHECK_INT(rt_tz_days_in_month(2026, 4), 30);
  CHECK_INT(rt_tz_days_in_month(2026, 12), 31);
  CHECK_INT(rt_tz_floor_div(-1, 1000), -1);
  CHECK_INT(rt_tz_floor_div(-1000, 1000), -1);
  CHECK_INT(rt_tz_floor_div(999, 1000), 0);
  /* the parsers live here now; unit.config covers them whole */
  int64_t sec = 0;
  CHECK_INT(rt_parse_duration("1d12h", &sec), RT_OK);
  CHECK_INT(sec, 129600);
  CHECK_INT(rt_parse_hhmm("9:30"), 570);
}

int main(void) {
  T_RUN(offsets);
  T_RUN(history);
  T_RUN(local_tm_and_make);
  T_RUN(midnight);
  T_RUN(tz_env_restored);
  T_RUN(fallback_table);
  T_RUN(make_huge_fields);
  T_RUN(utc_make_bounds);
  T_RUN(clock_parse_and_format);
  T_RUN(calendar);
  return T_DONE();
}
