/* log.h -- one logfmt line per call to stderr.
 *
 * rt_log(RT_LOG_INFO, "event", "conv=%lld step=%s", ...) writes
 * `ts=... level=info msg=event conv=1 step=vin`. Values that look like phone
 * numbers are masked by rt_log_mask_phone before they reach a log line; call
 * it on anything that came from a customer. The level is process-wide config,
 * set once at start; it is the one piece of static state besides the loop. */
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
void rt_log(rt_log_level lvl, const char *msg, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Copies s into out (size n) with every run of 7+ digits (optionally with
 * +, spaces, dashes, parens) masked except the last 2 digits:
 * "+7 912 345-67-89" -> "+7*******89". Returns out. */
char *rt_log_mask_phone(const char *s, char *out, size_t n);
/* Writes s as a logfmt value: quoted and escaped when needed. */
void rt_log_quote(const char *s, char *out, size_t n);
#endif
