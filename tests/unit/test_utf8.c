/* test_utf8.c -- the UTF-8 codec (utf8.h), table-driven: every case states
 * the bytes, whether they are valid, the first code point and its length,
 * and what cleaning makes of them. */
#include "rt.h"
#include "t.h"
#include "utf8.h"
#include <stdlib.h>
#include <string.h>

typedef struct {
  const char *name;
  const char *in;
  size_t n;            /* bytes of in (it may hold NUL) */
  bool valid;          /* rt_utf8_valid */
  uint32_t cp;         /* rt_utf8_decode at in[0] */
  size_t len;          /* and its length */
  const char *clean;   /* rt_utf8_clean */
} u8case;

#define B(s) s, sizeof s - 1
#define FFFD "\xEF\xBF\xBD"

static const u8case cases[] = {
  {"empty", B(""), true, 0, 1, ""},   /* decode is not called on n = 0 */
  {"ascii", B("abc"), true, 'a', 1, "abc"},
  {"nul", B("a\0b"), false, 'a', 1, "a" FFFD "b"},
  {"nul alone", B("\0"), false, 0, 1, FFFD},
  {"2 bytes", B("\xD0\xB6"), true, 0x436, 2, "\xD0\xB6"},
  {"3 bytes", B("\xE2\x82\xAC"), true, 0x20AC, 3, "\xE2\x82\xAC"},
  {"4 bytes", B("\xF0\x9F\x98\x80"), true, 0x1F600, 4, "\xF0\x9F\x98\x80"},
  {"U+10FFFF", B("\xF4\x8F\xBF\xBF"), true, 0x10FFFF, 4, "\xF4\x8F\xBF\xBF"},
  {"U+FFFF", B("\xEF\xBF\xBF"), true, 0xFFFF, 3, "\xEF\xBF\xBF"},
  {"above U+10FFFF", B("\xF4\x90\x80\x80"), false, RT_UTF8_BAD, 1, FFFD FFFD FFFD FFFD},
  {"F5 lead", B("\xF5\x80\x80\x80"), false, RT_UTF8_BAD, 1, FFFD FFFD FFFD FFFD},
  {"overlong 2 (C0)", B("\xC0\xAF"), false, RT_UTF8_BAD, 1, FFFD FFFD},
  {"overlong 2 (C1)", B("\xC1\xBF"), false, RT_UTF8_BAD, 1, FFFD FFFD},
  {"overlong NUL", B("\xC0\x80"), false, RT_UTF8_BAD, 1, FFFD FFFD},
  {"overlong 3", B("\xE0\x9F\xBF"), false, RT_UTF8_BAD, 1, FFFD FFFD FFFD},
  {"overlong 4", B("\xF0\x8F\xBF\xBF"), false, RT_UTF8_BAD, 1, FFFD FFFD FFFD FFFD},
  {"surrogate D800", B("\xED\xA0\x80"), false, RT_UTF8_BAD, 1, FFFD FFFD FFFD},
  {"surrogate DFFF", B("\xED\xBF\xBF"), false, RT_UTF8_BAD, 1, FFFD FFFD FFFD},
  {"before surrogates", B("\xED\x9F\xBF"), true, 0xD7FF, 3, "\xED\x9F\xBF"},
  {"lone continuation", B("\x80x"), false, RT_UTF8_BAD, 1, FFFD "x"},
  {"truncated 2", B("\xD0"), false, RT_UTF8_BAD, 1, FFFD},
  {"truncated 3", B("\xE2\x82"), false, RT_UTF8_BAD, 1, FFFD FFFD},
  {"truncated 4", B("\xF0\x9F\x98"), false, RT_UTF8_BAD, 1, FFFD FFFD FFFD},
  {"cut by ascii", B("\xE2\x82x"), false, RT_UTF8_BAD, 1, FFFD FFFD "x"},
  {"FE FF", B("\xFE\xFF"), false, RT_UTF8_BAD, 1, FFFD FFFD},
  {"mixed", B("a\xD0\xB6\xFF" "b"), false, 'a', 1, "a\xD0\xB6" FFFD "b"},
};

T(table) {
  for (size_t i = 0; i < RT_ARRAY_LEN(cases); i++) {
    const u8case *c = &cases[i];
    int before = t_cur_failed;
    CHECK(rt_utf8_valid(c->in, c->n) == c->valid);
    if (c->n > 0) {
      size_t len = 99;
      CHECK_INT(rt_utf8_decode(c->in, c->n, &len), c->cp);
      CHECK_INT(len, c->len);
    }
    size_t m = 0;
    char *clean = rt_utf8_clean(c->in, c->n, &m);
    CHECK_INT(m, strlen(c->clean));
    CHECK(memcmp(clean, c->clean, m) == 0 && clean[m] == '\0');
    CHECK(rt_utf8_valid(clean, m));  /* cleaning always gives valid text */
    char buf[64];
    CHECK_INT(rt_utf8_clean_buf(c->in, c->n, buf), m);
    CHECK(memcmp(buf, clean, m) == 0);
    free(clean);
    if (t_cur_failed != before) fprintf(stderr, "  in case \"%s\"\n", c->name);
  }
}

/* Decoding never reads past n: a valid lead at the end of a short buffer is
 * bad, and the same bytes with the rest present decode. */
T(decode_bounds) {
  const char s[] = "\xF0\x9F\x98\x80";
  for (size_t n = 1; n < 4; n++) {
    size_t len;
    CHECK_INT(rt_utf8_decode(s, n, &len), RT_UTF8_BAD);
    CHECK_INT(len, 1);
  }
}

T(encode_roundtrip) {
  static const uint32_t cps[] = {0, 1, 0x7F, 0x80, 0x7FF, 0x800, 0xD7FF, 0xE000,
                                 0xFFFD, 0xFFFF, 0x10000, 0x10FFFF};
  for (size_t i = 0; i < RT_ARRAY_LEN(cps); i++) {
    char u[4];
    size_t n = rt_utf8_encode(cps[i], u), len;
    CHECK_INT(n, cps[i] < 0x80 ? 1 : cps[i] < 0x800 ? 2 : cps[i] < 0x10000 ? 3 : 4);
    CHECK_INT(rt_utf8_decode(u, n, &len), cps[i]);
    CHECK_INT(len, n);
  }
  /* what cannot be encoded is written as U+FFFD */
  static const uint32_t bad[] = {0xD800, 0xDFFF, 0x110000, 0xFFFFFFFFu};
  for (size_t i = 0; i < RT_ARRAY_LEN(bad); i++) {
    char u[4];
    CHECK_INT(rt_utf8_encode(bad[i], u), 3);
    CHECK(memcmp(u, FFFD, 3) == 0);
  }
}

T(count_and_floor) {
  const char *s = "a\xD0\xB6\xE2\x82\xAC\xF0\x9F\x98\x80"; /* a, ж, €, 😀 */
  size_t n = strlen(s);
  CHECK_INT(rt_utf8_count(s, n), 4);
  CHECK_INT(rt_utf8_count("", 0), 0);
  static const struct { size_t max, want; } fl[] = {
    {0, 0}, {1, 1}, {2, 1}, {3, 3}, {4, 3}, {5, 3}, {6, 6},
    {7, 6}, {8, 6}, {9, 6}, {10, 10}, {11, 10}, {100, 10},
  };
  for (size_t i = 0; i < RT_ARRAY_LEN(fl); i++) {
    size_t k = rt_utf8_floor(s, n, fl[i].max);
    if (k != fl[i].want) fprintf(stderr, "  floor(max=%zu)\n", fl[i].max);
    CHECK_INT(k, fl[i].want);
  }
}

int main(void) {
  T_RUN(table);
  T_RUN(decode_bounds);
  T_RUN(encode_roundtrip);
  T_RUN(count_and_floor);
  return T_DONE();
}
