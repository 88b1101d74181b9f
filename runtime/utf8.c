/* utf8.c -- validation, cleaning and counting (see utf8.h). */
#include "utf8.h"
#include "rt.h"
#include <string.h>

bool rt_utf8_valid(const char *s, size_t n) {
  for (size_t i = 0; i < n;) {
    if ((unsigned char)s[i] - 1u < 0x7Fu) { i++; continue; }   /* ASCII, not NUL */
    size_t len;
    if (s[i] == '\0' || rt_utf8_decode(s + i, n - i, &len) == RT_UTF8_BAD) return false;
    i += len;
  }
  return true;
}

size_t rt_utf8_clean_buf(const char *s, size_t n, char *out) {
  size_t o = 0;
  for (size_t i = 0; i < n;) {
    if ((unsigned char)s[i] - 1u < 0x7Fu) { out[o++] = s[i++]; continue; }
    size_t len;
    if (s[i] != '\0' && rt_utf8_decode(s + i, n - i, &len) != RT_UTF8_BAD) {
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

size_t rt_utf8_count(const char *s, size_t n) {
  size_t cps = 0;
  for (size_t i = 0; i < n; i++)
    if (((unsigned char)s[i] & 0xC0) != 0x80) cps++;
  return cps;
}

size_t rt_utf8_floor(const char *s, size_t n, size_t max) {
  if (max >= n) return n;
  while (max > 0 && ((unsigned char)s[max] & 0xC0) == 0x80) max--;
  return max;
}
