/* clock.h -- the one clock of the runtime.
 *
 * Real time by default; transcript tests and benchmarks switch it to a
 * virtual clock they set and advance, so "+14d" takes no time at all.
 * Everything that needs "now" (timers, outbox retries, stats) asks this. */
#ifndef RT_CLOCK_H
#define RT_CLOCK_H
#include "rt.h"

typedef struct {
  bool virt;
  int64_t vnow_ms;
} rt_clock;

int64_t rt_clock_now(const rt_clock *c);   /* unix milliseconds */
void rt_clock_set(rt_clock *c, int64_t ms);  /* makes the clock virtual */
/* Parses "2026-03-02 10:00", "2026-03-02T10:00:00+03:00", "2026-03-02" (local
 * time in tz when no offset is given; Z, +H, +HH, +HH:MM and +HHMM offsets)
 * into unix ms. Four-digit years; fields out of range (month 13, hour 24,
 * offset 24:00) and trailing text are RT_EINVAL, *ms untouched. */
int rt_clock_parse(const char *s, const char *tz, int64_t *ms);
/* Formats unix ms as "2026-03-02 10:00" local time in tz (UTC when tz is
 * unknown), or "(out of range)" outside years 1..9999. */
void rt_clock_format(int64_t ms, const char *tz, char *out, size_t n);
#endif
