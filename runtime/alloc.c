/* alloc.c -- allocation helpers that abort on OOM (see rt.h). */
#include "rt.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void oom(size_t n) {
  fprintf(stderr, "level=fatal msg=\"out of memory\" bytes=%zu\n", n);
  abort();
}

void *rt_xmalloc(size_t n) {
  void *p = malloc(n ? n : 1);
  if (!p) oom(n);
  return p;
}

void *rt_xcalloc(size_t n, size_t m) {
  void *p = calloc(n ? n : 1, m ? m : 1);
  if (!p) oom(n * m);
  return p;
}

void *rt_xrealloc(void *p, size_t n) {
  void *q = realloc(p, n ? n : 1);
  if (!q) oom(n);
  return q;
}

char *rt_xstrdup(const char *s) {
  return rt_xstrndup(s, strlen(s));
}

char *rt_xstrndup(const char *s, size_t n) {
  char *p = rt_xmalloc(n + 1);
  memcpy(p, s, n);
  p[n] = '\0';
  return p;
}

char *rt_xasprintf(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *s = NULL;
  if (vasprintf(&s, fmt, ap) < 0) oom(0);
  va_end(ap);
  return s;
}

/* Length of the valid UTF-8 sequence at s[i] (NUL counts as invalid), or 0.
 * Overlong forms and surrogates are not valid UTF-8 either. */
static size_t utf8_seq(const char *s, size_t n, size_t i) {
  unsigned char c = (unsigned char)s[i];
  size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
  bool ok = len && i + len <= n && c != 0;
  for (size_t k = 1; ok && k < len; k++) ok = ((unsigned char)s[i + k] >> 6) == 2;
  if (ok && len == 2 && c < 0xC2) ok = false;
  if (ok && len == 3) {
    unsigned char d = (unsigned char)s[i + 1];
    if ((c == 0xE0 && d < 0xA0) || (c == 0xED && d >= 0xA0)) ok = false;
  }
  if (ok && len == 4) {
    unsigned char d = (unsigned char)s[i + 1];
    if ((c == 0xF0 && d < 0x90) || c > 0xF4 || (c == 0xF4 && d >= 0x90)) ok = false;
  }
  return ok ? len : 0;
}

bool rt_utf8_valid(const char *s, size_t n) {
  for (size_t i = 0; i < n;) {
    if ((unsigned char)s[i] - 1u < 0x7Fu) { i++; continue; }   /* ASCII, not NUL */
    size_t len = utf8_seq(s, n, i);
    if (!len) return false;
    i += len;
  }
  return true;
}

size_t rt_utf8_clean_buf(const char *s, size_t n, char *out) {
  size_t o = 0;
  for (size_t i = 0; i < n;) {
    size_t len = utf8_seq(s, n, i);
    if (len) {
      memcpy(out + o, s + i, len);
      o += len;
      i += len;
    } else {
      memcpy(out + o, "\xEF\xBF\xBD", 3);
      o += 3;
      i++;
    }
  }
  return o;
}

char *rt_utf8_clean(const char *s, size_t n, size_t *out_n) {
  char *buf = rt_xmalloc(n * 3 + 1);
  size_t o = rt_utf8_clean_buf(s, n, buf);
  buf[o] = '\0';
  *out_n = o;
  return buf;
}
