/* log.h -- one logfmt line per call to stderr.
 *
 * rt_log(RT_LOG_INFO, "event", "conv=%lld step=%s", ...) writes
 * `ts=... level=info msg=event conv=1 step=vin`. Values that look like phone
 * numbers are masked by rt_log_mask_phone before they reach a log line (the
 * whole line is masked, so a caller cannot forget).
 *
 * No source can flood the log: more than the rate (rt_log_set_rate, default
 * RT_LOG_DEFAULT_PER_S) lines with the same msg in one second are dropped
 * and counted, and once that second is over one line says how many:
 *   level=warn msg=log.suppressed key=lws lines=41327 detail="suppressed 41327 similar lines"
 * (written with the next line of any key, or at exit). The check is made
 * before the line is formatted and allocates nothing.
 *
 * The level, format and rate are process-wide config, set once at start,
 * and the limiter's table (behind a mutex) goes with them: the one piece of
 * static state besides the loop. */
#ifndef RT_LOG_H
#define RT_LOG_H
#include <stdbool.h>
#include <stddef.h>

typedef enum { RT_LOG_DEBUG, RT_LOG_INFO, RT_LOG_WARN, RT_LOG_ERROR, RT_LOG_OFF } rt_log_level;

void rt_log_set_level(rt_log_level lvl);
rt_log_level rt_log_get_level(void);
/* JSON lines instead of logfmt (log.format = "json"). */
void rt_log_set_json(bool on);
/* Parses "debug", "info", "warn", "error", "off"; returns -1 on anything else. */
int rt_log_parse_level(const char *s);
#define RT_LOG_DEFAULT_PER_S 100
/* Lines per second per msg before the rest are suppressed; 0: no limit. */
void rt_log_set_rate(unsigned per_s);
/* Writes the summaries of suppressed lines now (also run at exit). */
void rt_log_flush(void);
void rt_log(rt_log_level lvl, const char *msg, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Copies s into out (size n, cut to fit) with every phone number masked
 * but its first and last two digits, separators dropped:
 * "+7 912 345-67-89" -> "+7********89", "8 (912) 345-67-89" -> "8********89".
 * A phone is '+' and 10..15 digits; 10..15 digits written with separators
 * in phone groups; or bare digits shaped like a Russian number (11 digits
 * 7/8 + area code 3xx/4xx/8xx/9xx, or 10 digits 9xx). Ids, timestamps in
 * ms, counts, durations and hashes stay, and so does any number that is the
 * whole value of a key named for another kind of number (keep_days=, ms=,
 * rows=, ext_id=; but not chat_id=, phone=). Returns out. */
char *rt_log_mask_phone(const char *s, char *out, size_t n);
/* Writes s as a logfmt value: quoted and escaped when needed. */
void rt_log_quote(const char *s, char *out, size_t n);
#endif
