/* utf8.h -- the one UTF-8 codec of the runtime: decode and encode one code
 * point, validate, clean, count and cut on code point boundaries.
 *
 * Valid means RFC 3629: no overlong forms, no surrogates (U+D800-U+DFFF),
 * nothing above U+10FFFF, no truncated sequences. rt_utf8_decode takes NUL as
 * the code point 0; rt_utf8_valid and the cleaners refuse NUL as well, because
 * what they guard ends up in JSON and C strings. Decode and encode are inline:
 * the text scanners call them once per code point. */
#ifndef RT_UTF8_H
#define RT_UTF8_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RT_UTF8_BAD 0xFFFFFFFFu

/* Decodes the code point at s[0..n), n >= 1. An invalid or truncated
 * sequence gives RT_UTF8_BAD with *len = 1, so a scanner always advances by
 * at least one byte and never reads past n. */
static inline uint32_t rt_utf8_decode(const char *str, size_t n, size_t *len) {
  const unsigned char *s = (const unsigned char *)str;
  unsigned c = s[0];
  *len = 1;
  if (c < 0x80) return c;
  /* Two bytes first and on their own: every Cyrillic letter is one. */
  if (c >= 0xC2 && c <= 0xDF) {
    if (n < 2 || (s[1] & 0xC0) != 0x80) return RT_UTF8_BAD;
    *len = 2;
    return ((uint32_t)(c & 0x1F) << 6) | (s[1] & 0x3F);
  }
  size_t need;
  uint32_t cp;
  unsigned lo = 0x80, hi = 0xBF;   /* range of the first continuation byte */
  if (c >= 0xE0 && c <= 0xEF) {
    need = 2; cp = c & 0x0F;
    if (c == 0xE0) lo = 0xA0;      /* overlong below U+0800 */
    if (c == 0xED) hi = 0x9F;      /* surrogates */
  } else if (c >= 0xF0 && c <= 0xF4) {
    need = 3; cp = c & 0x07;
    if (c == 0xF0) lo = 0x90;      /* overlong below U+10000 */
    if (c == 0xF4) hi = 0x8F;      /* above U+10FFFF */
  } else {
    return RT_UTF8_BAD;
  }
  if (n <= need) return RT_UTF8_BAD;
  for (size_t i = 1; i <= need; i++) {
    unsigned b = s[i];
    unsigned l = i == 1 ? lo : 0x80, h = i == 1 ? hi : 0xBF;
    if (b < l || b > h) return RT_UTF8_BAD;
    cp = (cp << 6) | (b & 0x3F);
  }
  *len = need + 1;
  return cp;
}

/* Writes cp as UTF-8 into out (room for 4 bytes) and returns the length.
 * A surrogate or a value above U+10FFFF is written as U+FFFD. */
static inline size_t rt_utf8_encode(uint32_t cp, char *out) {
  if (cp < 0x80) { out[0] = (char)cp; return 1; }
  if (cp < 0x800) {
    out[0] = (char)(0xC0 | (cp >> 6));
    out[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
  }
  if ((cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF) cp = 0xFFFD;
  if (cp < 0x10000) {
    out[0] = (char)(0xE0 | (cp >> 12));
    out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[2] = (char)(0x80 | (cp & 0x3F));
    return 3;
  }
  out[0] = (char)(0xF0 | (cp >> 18));
  out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
  out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
  out[3] = (char)(0x80 | (cp & 0x3F));
  return 4;
}

/* True when s[0..n) is valid UTF-8 with no NUL byte. */
bool rt_utf8_valid(const char *s, size_t n);
/* Copy of s (n bytes) where every byte that is not part of valid UTF-8
 * (and every NUL) becomes U+FFFD; *out_n gets the new length. Customers'
 * text can carry broken bytes, and JSON cannot. */
char *rt_utf8_clean(const char *s, size_t n, size_t *out_n);
/* The same into out, which has room for 3 * n bytes; returns the length. */
size_t rt_utf8_clean_buf(const char *s, size_t n, char *out);
/* Number of code points in s[0..n), which is valid UTF-8 (for other bytes:
 * the number of bytes that are not continuation bytes). */
size_t rt_utf8_count(const char *s, size_t n);
/* The largest k <= max (and <= n) where s[0..k) does not end inside a
 * sequence of s[0..n): for cutting text to a byte budget. */
size_t rt_utf8_floor(const char *s, size_t n, size_t max);

#endif
