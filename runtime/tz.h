/* tz.h -- the runtime's time and calendar: local time in a shop's or
 * customer's IANA time zone, civil-day arithmetic, and the duration ("30m")
 * and HH:MM parsers every config, flow and tool uses.
 *
 * Reminders are scheduled "at 10:00 the customer's time", so the runtime needs
 * to turn a unix time into a local calendar date and a local wall-clock time
 * back into a unix time for zones other than the process's own. We lean on
 * the C library: each call points TZ at the zone's TZif file, asks
 * localtime_r/mktime, and puts the previous TZ back. That is correct for every
 * historical rule libc knows, and safe because the runtime is single-threaded
 * (do not call these from another thread). When the zone file is missing
 * (no tzdata installed, or a stripped container) the Russian zones still work
 * from a built-in table of their current fixed offsets; other zones are then
 * unknown.
 *
 * A NULL zone means "Europe/Moscow", the shop's home zone. Functions that
 * cannot report an error treat an unknown zone as Moscow too; validate zone
 * names once at configuration time with rt_tz_valid. */
#ifndef RT_TZ_H
#define RT_TZ_H
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#define RT_TZ_DEFAULT "Europe/Moscow"

/* True when tz names a zone we can compute (TZif file or built-in table);
 * NULL is not a name and gives false. */
bool rt_tz_valid(const char *tz);
/* The times these functions compute: 0001-01-01 00:00:00 UTC to
 * 9999-12-31 23:59:59 UTC. Anything a shop schedules is far inside, and
 * keeping to it means t * 1000 (unix ms) can never overflow an int64_t. */
#define RT_TZ_MIN INT64_C(-62135596800)
#define RT_TZ_MAX INT64_C(253402300799)

/* UTC offset of tz at unix time t, in seconds east of UTC (Moscow: 10800).
 * Returns 0, RT_EINVAL for an unknown zone or RT_ELIMIT for t outside
 * RT_TZ_MIN..RT_TZ_MAX (*off_sec untouched on error). */
int rt_tz_offset(const char *tz, int64_t t, int *off_sec);
/* Local broken-down time of t (tm_year since 1900, tm_mon 0-11, tm_wday
 * 0=Sunday, tm_gmtoff set). Returns 0, RT_EINVAL for an unknown zone or
 * RT_ELIMIT for t outside RT_TZ_MIN..RT_TZ_MAX. */
int rt_tz_local_tm(const char *tz, int64_t t, struct tm *out);
/* Unix time of the local midnight starting the local day that contains t;
 * -1 when t is outside RT_TZ_MIN..RT_TZ_MAX. */
int64_t rt_tz_local_midnight(const char *tz, int64_t t);

/* Unix time of local wall-clock y-mon-day h:min (mon 1-12) in *out.
 * Out-of-range fields are normalised as mktime does (day 32 = 1st of next
 * month, min -1 = the minute before), in 64-bit checked arithmetic, so any
 * values may come in: returns 0, or RT_ELIMIT when the result is outside
 * RT_TZ_MIN..RT_TZ_MAX (*out untouched). An unknown zone is Moscow. */
int rt_tz_make_checked(const char *tz, int64_t y, int64_t mon, int64_t day, int64_t h,
                       int64_t min, int64_t *out);
/* rt_tz_make_checked for callers whose fields are known to be sane; -1 (as
 * mktime) when the result would be out of range. */
int64_t rt_tz_make(const char *tz, int y, int mon, int day, int h, int min);
/* Unix time of UTC y-mon-day h:min:sec, normalised and checked like
 * rt_tz_make_checked: pure calendar arithmetic, no zone files. */
int rt_tz_utc_make(int64_t y, int64_t mon, int64_t day, int64_t h, int64_t min,
                   int64_t sec, int64_t *out);


/* ---- calendar arithmetic (proleptic Gregorian, no zone) ---- */

/* Days since 1970-01-01 of y-m-d (m 1-12, d may run past the month: day 32
 * is the 1st of the next); |y| <= 10^12 keeps the arithmetic exact. */
int64_t rt_tz_days_from_civil(int64_t y, int m, int64_t d);
/* The date of day z since 1970-01-01 (z within the days of years
 * -10^12..10^12). */
void rt_tz_civil_from_days(int64_t z, int64_t *y, int *m, int *d);
/* Days in month m (1-12) of year y. */
int rt_tz_days_in_month(int64_t y, int m);
/* Floor division (b > 0): the unix-ms to seconds or minutes step that
 * rounds towards the past for times before 1970 too. */
static inline int64_t rt_tz_floor_div(int64_t a, int64_t b) {
  return a / b - (a % b != 0 && (a < 0) != (b < 0));
}

/* ---- durations and times of day ---- */

/* Durations are capped at 100 years: enough for any schedule, and small
 * enough that seconds * 1000 plus any unix-ms "now" fits an int64_t. */
#define RT_DURATION_MAX_SEC (INT64_C(36500) * 86400)

/* "90d", "24h", "30m", "45s", "1h30m", "1d12h": one or more <digits><unit>,
 * units d/h/m/s each at most once and in that order. Stores seconds in *sec
 * and returns 0; returns RT_EINVAL for bad syntax (empty, unknown unit, bare
 * number) and RT_ELIMIT when the total is above RT_DURATION_MAX_SEC. *sec is
 * untouched on error. */
int rt_parse_duration(const char *s, int64_t *sec);
/* "09:00" -> 540, "9:00" -> 540, "24:00" -> 1440: one or two digits of
 * hours, a colon, two digits of minutes, nothing else (no sign, no spaces).
 * -1 for anything else, NULL too. */
int rt_parse_hhmm(const char *s);

#endif
