/* test_regex.c -- compiling a pattern (regex.h): UTF-8 with Unicode classes
 * always, the extra flags when asked, a refusal as "<reason> at offset N"
 * with N in bytes, a length-given pattern read no further than its length,
 * and invalid UTF-8 refused like any other bad pattern. */
#include "regex.h"
#include "rt.h"
#include "t.h"
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

static bool matches(const pcre2_code *re, const char *s) {
  pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
  int rc = pcre2_match(re, (PCRE2_SPTR)s, strlen(s), 0, 0, md, NULL);
  pcre2_match_data_free(md);
  return rc >= 0;
}

static bool ends_with(const char *s, const char *tail) {
  size_t n = s ? strlen(s) : 0, m = strlen(tail);
  return n >= m && !strcmp(s + n - m, tail);
}

T(cyrillic_caseless) {
  char *err = "stale";   /* cleared on success */
  pcre2_code *re = rt_regex_compile("привет\\s+мир", PCRE2_ZERO_TERMINATED, PCRE2_CASELESS, &err);
  CHECK(re != NULL);
  CHECK(err == NULL);
  CHECK(matches(re, "ну ПРИВЕТ  Мир!"));
  CHECK(!matches(re, "привет, мир"));
  pcre2_code_free(re);
  /* without the flag case counts */
  re = rt_regex_compile("привет", PCRE2_ZERO_TERMINATED, 0, &err);
  CHECK(re != NULL);
  CHECK(matches(re, "привет"));
  CHECK(!matches(re, "ПРИВЕТ"));
  pcre2_code_free(re);
  /* Unicode classes are on without asking: \w is a Cyrillic letter too */
  re = rt_regex_compile("^\\w+$", PCRE2_ZERO_TERMINATED, 0, &err);
  CHECK(re != NULL);
  CHECK(matches(re, "ёлка"));
  CHECK(!matches(re, "ёлка!"));
  pcre2_code_free(re);
  /* an extra flag beside the defaults: . across lines */
  re = rt_regex_compile("да.нет", PCRE2_ZERO_TERMINATED, PCRE2_DOTALL, &err);
  CHECK(re != NULL);
  CHECK(matches(re, "да\nнет"));
  pcre2_code_free(re);
}

T(bad_pattern_names_the_offset) {
  char *err = NULL;
  CHECK(rt_regex_compile("ab(c", PCRE2_ZERO_TERMINATED, 0, &err) == NULL);
  CHECK(err != NULL && strncmp(err, "missing closing parenthesis", 27) == 0);
  CHECK(ends_with(err, " at offset 4"));
  free(err);
  /* the offset counts bytes: four Cyrillic letters are eight */
  err = NULL;
  CHECK(rt_regex_compile("цена)", PCRE2_ZERO_TERMINATED, PCRE2_CASELESS, &err) == NULL);
  CHECK(ends_with(err, " at offset 8"));
  free(err);
  /* nothing to say: NULL and no message */
  CHECK(rt_regex_compile("[", PCRE2_ZERO_TERMINATED, 0, NULL) == NULL);
}

T(length_limited) {
  char *err = NULL;
  /* the broken tail lies past the length, so it is not read */
  pcre2_code *re = rt_regex_compile("ab|c)", 4, 0, &err);
  CHECK(re != NULL);
  CHECK(err == NULL);
  CHECK(matches(re, "xcx"));
  CHECK(matches(re, "ab"));
  pcre2_code_free(re);
  /* the whole of it is refused at the tail */
  CHECK(rt_regex_compile("ab|c)", PCRE2_ZERO_TERMINATED, 0, &err) == NULL);
  CHECK(ends_with(err, " at offset 4"));
  free(err);
  /* a cut that keeps only the first word */
  re = rt_regex_compile("^да|нет", strlen("^да"), 0, &err);
  CHECK(re != NULL);
  CHECK(matches(re, "да"));
  CHECK(!matches(re, "нет"));
  pcre2_code_free(re);
  /* a length that ends inside a pattern's group is a bad pattern */
  err = NULL;
  CHECK(rt_regex_compile("(да)", 3, 0, &err) == NULL);
  CHECK(ends_with(err, " at offset 3"));
  free(err);
}

T(invalid_utf8_is_an_error) {
  static const struct { const char *pat; size_t len; size_t off; } cases[] = {
    {"ab\xff", 3, 2},             /* a byte no UTF-8 has */
    {"да\xd0", 5, 4},             /* a letter cut in half at the end */
    {"\xd0\xb4\xd0(x)", 6, 2},    /* a letter cut in half in the middle */
    {"x\xc0\x80", 3, 1},          /* overlong NUL */
    {"\xed\xa0\x80", 3, 0},       /* a surrogate */
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char *err = NULL;
    /* a copy of exactly len bytes, so reading past it is caught under ASan */
    char *p = malloc(cases[i].len);
    memcpy(p, cases[i].pat, cases[i].len);
    pcre2_code *re = rt_regex_compile(p, cases[i].len, PCRE2_CASELESS, &err);
    CHECK(re == NULL);
    CHECK(err != NULL && strstr(err, "UTF-8 error") != NULL);
    char want[32];
    snprintf(want, sizeof want, " at offset %zu", cases[i].off);
    if (!ends_with(err, want)) fprintf(stderr, "  case %zu: %s\n", i, err ? err : "(null)");
    CHECK(ends_with(err, want));
    pcre2_code_free(re);
    free(err);
    free(p);
  }
}

int main(void) {
  T_RUN(cyrillic_caseless);
  T_RUN(bad_pattern_names_the_offset);
  T_RUN(length_limited);
  T_RUN(invalid_utf8_is_an_error);
  return T_DONE();
}
