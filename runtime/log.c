/* log.c -- logfmt lines to stderr (see log.h). */
#include "log.h"
#include <ctype.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static rt_log_level log_level = RT_LOG_INFO;
static bool log_json;

/* ---- repeat limiter ----------------------------------------------------
 * One slot per msg key, in a small fixed table indexed by a hash of the
 * key: no allocation per line, and a suppressed line costs a hash, a
 * compare and a clock read (vDSO), before any formatting. Two keys that
 * share a slot take turns owning it (each takeover flushes the previous
 * owner's count), which can only let more lines through, never fewer. */
#define RL_SLOTS 64
#define RL_KEY 48

typedef struct {
  char key[RL_KEY];   /* msg, cut to RL_KEY - 1 bytes; "" = free */
  int64_t second;     /* monotonic second of the current window */
  unsigned count;     /* lines with this key in that second */
  unsigned long dropped;
  rt_log_level lvl;   /* highest level among the dropped lines */
} rl_slot;

static struct {
  pthread_mutex_t mu;
  unsigned per_s;     /* 0: no limit */
  unsigned pending;   /* slots with dropped > 0 */
  int64_t swept;      /* second of the last sweep */
  bool at_exit;       /* rt_log_flush registered with atexit */
  rl_slot slot[RL_SLOTS];
} rl = {.mu = PTHREAD_MUTEX_INITIALIZER, .per_s = RT_LOG_DEFAULT_PER_S};

static void emit_line(rt_log_level lvl, const char *msg, const char *fmt, va_list ap);

void rt_log_set_rate(unsigned per_s) {
  pthread_mutex_lock(&rl.mu);
  rl.per_s = per_s;
  pthread_mutex_unlock(&rl.mu);
}

static int64_t mono_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return (int64_t)ts.tv_sec;
}

static void emit_summary_v(rt_log_level lvl, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  emit_line(lvl, "log.suppressed", fmt, ap);
  va_end(ap);
}

/* Writes the summary of a slot's dropped lines and clears them. Called
 * with rl.mu held (so that the summary is not interleaved). */
static void slot_flush(rl_slot *sl) {
  if (!sl->dropped) return;
  char q[RL_KEY + 8];
  rt_log_quote(sl->key, q, sizeof q);
  rt_log_level lvl = sl->lvl < RT_LOG_WARN ? RT_LOG_WARN : sl->lvl;
  emit_summary_v(lvl, "key=%s lines=%lu detail=\"suppressed %lu similar lines\"", q,
                 sl->dropped, sl->dropped);
  sl->dropped = 0;
  rl.pending--;
}

void rt_log_flush(void) {
  pthread_mutex_lock(&rl.mu);
  for (int i = 0; i < RL_SLOTS && rl.pending; i++) slot_flush(&rl.slot[i]);
  pthread_mutex_unlock(&rl.mu);
}

static void flush_at_exit(void) { rt_log_flush(); }

/* True if this line may be written. Also writes the summaries of windows
 * that have ended: the key's own, at once, and the others' once a second,
 * so a flood that stops is still reported on the next line of any key. */
static bool rl_admit(rt_log_level lvl, const char *msg) {
  pthread_mutex_lock(&rl.mu);
  if (!rl.per_s) {
    pthread_mutex_unlock(&rl.mu);
    return true;
  }
  int64_t now = mono_s();
  if (rl.pending && rl.swept != now) {
    rl.swept = now;
    for (int i = 0; i < RL_SLOTS && rl.pending; i++)
      if (rl.slot[i].second != now) slot_flush(&rl.slot[i]);
  }
  uint32_t h = 2166136261u;
  size_t n = 0;
  for (; msg[n] && n < RL_KEY - 1; n++) h = (h ^ (unsigned char)msg[n]) * 16777619u;
  rl_slot *sl = &rl.slot[h % RL_SLOTS];
  if (strncmp(sl->key, msg, RL_KEY - 1) != 0) {
    slot_flush(sl);
    memcpy(sl->key, msg, n);
    sl->key[n] = '\0';
    sl->count = 0;
    sl->second = now;
  } else if (sl->second != now) {
    slot_flush(sl);
    sl->count = 0;
    sl->second = now;
  }
  bool ok = ++sl->count <= rl.per_s;
  if (!ok) {
    if (!sl->dropped++) rl.pending++;
    if (lvl > sl->lvl || sl->dropped == 1) sl->lvl = lvl;
    if (!rl.at_exit) {
      rl.at_exit = true;
      atexit(flush_at_exit);
    }
  }
  pthread_mutex_unlock(&rl.mu);
  return ok;
}

void rt_log_set_json(bool on) { log_json = on; }

/* Rewrites one logfmt line (key=value, values maybe quoted) as a JSON
 * object, so operators who ship logs to a collector get JSON lines. */
static void to_json(const char *in, char *out, size_t n) {
  size_t o = 0;
  const char *p = in;
  out[o++] = '{';
  bool first = true;
  while (*p && o + 8 < n) {
    while (*p == ' ') p++;
    const char *k = p;
    while (*p && *p != '=' && *p != ' ') p++;
    if (*p != '=') break;
    size_t klen = (size_t)(p - k);
    p++;
    if (!first) out[o++] = ',';
    first = false;
    o += (size_t)snprintf(out + o, n - o, "\"%.*s\":\"", (int)klen, k);
    if (*p == '"') {
      p++;
      while (*p && *p != '"' && o + 4 < n) {
        if (*p == '\\' && p[1]) { out[o++] = *p++; out[o++] = *p++; continue; }
        out[o++] = *p++;
      }
      if (*p == '"') p++;
    } else {
      while (*p && *p != ' ' && o + 4 < n) {
        if (*p == '"' || *p == '\\') out[o++] = '\\';
        out[o++] = *p++;
      }
    }
    if (o + 2 < n) out[o++] = '"';
  }
  if (o + 2 < n) out[o++] = '}';
  out[o < n ? o : n - 1] = '\0';
}

void rt_log_set_level(rt_log_level lvl) { log_level = lvl; }
rt_log_level rt_log_get_level(void) { return log_level; }

int rt_log_parse_level(const char *s) {
  static const char *names[] = {"debug", "info", "warn", "error", "off"};
  for (int i = 0; i < 5; i++)
    if (strcmp(s, names[i]) == 0) return i;
  return -1;
}

void rt_log(rt_log_level lvl, const char *msg, const char *fmt, ...) {
  if (lvl < log_level || lvl >= RT_LOG_OFF) return;
  if (!rl_admit(lvl, msg ? msg : "")) return;
  va_list ap;
  va_start(ap, fmt);
  emit_line(lvl, msg ? msg : "", fmt, ap);
  va_end(ap);
}

static void emit_line(rt_log_level lvl, const char *msg, const char *fmt, va_list ap) {
  static const char *names[] = {"debug", "info", "warn", "error"};
  char line[4096];
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm;
  gmtime_r(&ts.tv_sec, &tm);
  int n = snprintf(line, sizeof line,
                   "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s msg=%s",
                   tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                   tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000, names[lvl], msg);
  if (fmt && *fmt && n < (int)sizeof line - 2) {
    line[n++] = ' ';
    int m = vsnprintf(line + n, sizeof line - n, fmt, ap);
    n = m < 0 ? n : (n + m < (int)sizeof line ? n + m : (int)sizeof line - 1);
  }
  /* Masking is applied to the whole line, so a caller that forgot cannot
   * leak a customer's phone into the log. */
  char masked[4096];
  rt_log_mask_phone(line, masked, sizeof masked);
  if (log_json) {
    char js[8192];
    to_json(masked, js, sizeof js);
    fprintf(stderr, "%s\n", js);
  } else {
    fprintf(stderr, "%s\n", masked);
  }
}

/* ---- phone masking -------------------------------------------------------
 * What is a phone here (digits counted without separators):
 *   +DDD...       '+' and 10..15 digits, separators allowed (E.164);
 *   8 912 345-67-89, (495) 123-45-67
 *                 10..15 digits written with separators (space, '-', '(' ')')
 *                 in groups of at most 4 digits, or with a parenthesised
 *                 area code;
 *   89123456789, 79123456789, 9123456789
 *                 bare digits shaped like a Russian number: 11 digits, 7 or
 *                 8 then an area code starting with 3, 4, 8 or 9; or 10
 *                 digits starting with 9 (a mobile without the trunk prefix).
 * Other bare numbers -- ids, timestamps in ms, counts, durations, sizes --
 * are left alone, and so is any number that is the whole value of a key
 * whose name says what it is (keep_days=, ms=, rows=, ext_id=...), unless
 * the name also says it could be a contact (phone, chat, user, from...).
 * A number glued to letters or to a decimal point is not one (hashes, 1.5). */

static bool key_is(const char *k, size_t kl, const char *word) {
  size_t wl = strlen(word);
  if (kl < wl || strncasecmp(k + kl - wl, word, wl) != 0) return false;
  return kl == wl || k[kl - wl - 1] == '_' || k[kl - wl - 1] == '.' || k[kl - wl - 1] == '-';
}

/* The value of key k[0..kl) is a number of some other kind. */
static bool key_not_phone(const char *k, size_t kl) {
  /* a component of the name (split at '_', '.', '-') that names a contact */
  static const char *contact[] = {"phone", "tel", "msisdn", "mobile", "contact", "chat",
                                  "user", "from", "to", "text", "customer", "client", "wa"};
  for (size_t b = 0; b < kl;) {
    size_t e = b;
    while (e < kl && k[e] != '_' && k[e] != '.' && k[e] != '-') e++;
    for (size_t i = 0; i < sizeof contact / sizeof *contact; i++)
      if (strlen(contact[i]) == e - b && strncasecmp(k + b, contact[i], e - b) == 0) return false;
    b = e + 1;
  }
  static const char *other[] = {
    "id", "ts", "time", "at", "ms", "us", "ns", "s", "sec", "seconds", "days", "hours",
    "count", "rows", "n", "len", "size", "bytes", "kb", "mb", "version", "seq", "hash",
    "sha", "etag", "pid", "port", "fd", "errno", "code", "line", "offset", "limit", "max",
    "min", "total", "due", "elapsed", "duration", "timeout", "conv", "lead", "timer",
    "outbox", "inbox", "event", "step", "budget", "instructions", "memory", "rss"};
  for (size_t i = 0; i < sizeof other / sizeof *other; i++)
    if (key_is(k, kl, other[i])) return true;
  return false;
}

static bool is_sep(char c) { return c == ' ' || c == '-' || c == '(' || c == ')'; }

/* Bare digits shaped like a Russian number (see above). */
static bool russian(const char *d, size_t n) {
  return (n == 11 && (d[0] == '7' || d[0] == '8') &&
          (d[1] == '3' || d[1] == '4' || d[1] == '8' || d[1] == '9')) ||
         (n == 10 && d[0] == '9');
}

#define MAX_GROUPS 8

/* Length of the phone starting at s[i] (a boundary), or 0. The run of
 * digits and separators is split into digit groups; the longest prefix of
 * whole groups that reads as a phone wins, so "call 89123456789 2 times"
 * masks the number and not the 2. */
static size_t phone_at(const char *s, size_t i, size_t len, size_t *ndig) {
  size_t j = i;
  bool plus = s[j] == '+';
  if (plus) j++;
  if (j >= len || (!isdigit((unsigned char)s[j]) && s[j] != '(')) return 0;
  size_t gend[MAX_GROUPS], glen[MAX_GROUPS], ng = 0, group = 0, run = 0;
  bool paren_at[MAX_GROUPS], paren = false;
  char digits[16];
  size_t nd = 0;
  for (size_t k = j; k < len; k++) {
    char c = s[k];
    if (isdigit((unsigned char)c)) {
      if (nd == sizeof digits) break;
      digits[nd++] = c;
      if (!group && ng == MAX_GROUPS) break;
      if (!group) ng++;
      group++;
      gend[ng - 1] = k + 1;
      glen[ng - 1] = group;
      paren_at[ng - 1] = paren;
      run = 0;
    } else if (is_sep(c)) {
      /* "8 (912) 345-67-89": at most two separators in a row, never two
       * spaces (that is two numbers in a list) */
      if (++run > 2 || (c == ' ' && s[k - 1] == ' ')) break;
      if (c == '(' || c == ')') paren = true;
      group = 0;
    } else {
      break;
    }
  }
  for (size_t g = ng; g > 0; g--) {
    size_t end = gend[g - 1], n = 0;
    for (size_t x = 0; x < g; x++) n += glen[x];
    if (n < 10 || n > 15) continue;
    /* what follows must not glue the number to a word or a fraction */
    if (end < len && (isalnum((unsigned char)s[end]) || s[end] == '_' ||
                      (s[end] == '.' && end + 1 < len && isdigit((unsigned char)s[end + 1]))))
      continue;
    bool phone = plus || russian(digits, n);
    if (!phone && g >= 2 && g <= 6) {
      /* groups after the first (country or trunk code) of 2..4 digits, or
       * up to 7 when the area code is in parentheses: (912)3456789 */
      size_t hi = paren_at[g - 1] ? 7 : 4;
      phone = true;
      for (size_t x = 1; x < g && phone; x++) phone = glen[x] >= 2 && glen[x] <= hi;
      if (glen[0] > 4) phone = false;
    }
    if (!phone) continue;
    /* key=NUMBER or key="NUMBER": the key may say it is something else */
    size_t v = i;
    bool quoted = v > 0 && s[v - 1] == '"';
    if (quoted) v--;
    if (v > 0 && s[v - 1] == '=') {
      bool whole = quoted ? (end < len && s[end] == '"') : (end == len || s[end] == ' ');
      size_t ke = v - 1, kb = ke;
      while (kb > 0 && (isalnum((unsigned char)s[kb - 1]) || s[kb - 1] == '_' ||
                        s[kb - 1] == '.' || s[kb - 1] == '-'))
        kb--;
      if (whole && ke > kb && key_not_phone(s + kb, ke - kb)) return 0;
    }
    *ndig = n;
    return end - i;
  }
  return 0;
}

char *rt_log_mask_phone(const char *s, char *out, size_t n) {
  size_t o = 0, i = 0, len = strlen(s);
  if (!n) return out;
  while (i < len && o + 1 < n) {
    char c = s[i];
    size_t ndig = 0, plen = 0;
    if (c == '+' || c == '(' || isdigit((unsigned char)c)) {
      /* a number starts at a boundary: not inside a word, a hash or a
       * fraction ("v2", "ab12...", "0.123...") */
      bool boundary = i == 0 || (!isalnum((unsigned char)s[i - 1]) && s[i - 1] != '_' &&
                                 !(s[i - 1] == '.' && i > 1 && isdigit((unsigned char)s[i - 2])));
      if (boundary) plen = phone_at(s, i, len, &ndig);
    }
    if (!plen) {
      out[o++] = s[i++];
      continue;
    }
    /* the first digit and the last two stay, the rest become '*'; the
     * separators go, so the mask does not keep the number's shape */
    size_t seen = 0;
    for (size_t p = i; p < i + plen && o + 1 < n; p++) {
      if (s[p] == '+') {
        out[o++] = '+';
        continue;
      }
      if (!isdigit((unsigned char)s[p])) continue;
      seen++;
      out[o++] = (seen == 1 || seen > ndig - 2) ? s[p] : '*';
    }
    i += plen;
  }
  out[o] = '\0';
  return out;
}

void rt_log_quote(const char *s, char *out, size_t n) {
  bool need = !*s;
  for (const char *p = s; *p; p++)
    if (*p == ' ' || *p == '"' || *p == '=' || *p == '\\' || (unsigned char)*p < 0x20) need = true;
  size_t o = 0;
  if (!need) { snprintf(out, n, "%s", s); return; }
  if (o + 1 < n) out[o++] = '"';
  for (const char *p = s; *p && o + 3 < n; p++) {
    if (*p == '"' || *p == '\\') { out[o++] = '\\'; out[o++] = *p; }
    else if (*p == '\n') { out[o++] = '\\'; out[o++] = 'n'; }
    else if ((unsigned char)*p < 0x20) out[o++] = ' ';
    else out[o++] = *p;
  }
  if (o + 1 < n) out[o++] = '"';
  out[o] = '\0';
}
