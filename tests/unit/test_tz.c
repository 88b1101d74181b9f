/* test_tz.c -- offsets, local calendar, local->UTC and the fallback table. */
#include "t.h"
#include "rt.h"
#include "tz.h"
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

int main(void) {
  T_RUN(offsets);
  T_RUN(history);
  T_RUN(local_tm_and_make);
  T_RUN(midnight);
  T_RUN(tz_env_restored);
  T_RUN(fallback_table);
  return T_DONE();
}
