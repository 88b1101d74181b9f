/* test_re.c -- rt_re_compile: a good pattern compiles as UTF-8 with
 * Unicode classes whatever the caller asks, with the flags asked on top
 * (any case across Cyrillic, a length-limited pattern), a bad one gives
 * NULL and one reason with the character it stopped at, and bytes that are not UTF-8 are
 * refused with a reason instead of reaching the matcher. */
#include "re.h"
#include "t.h"
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool matches(pcre2_code *re, const char *s) {
  pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
  int rc = pcre2_match(re, (PCRE2_SPTR)s, strlen(s), 0, 0, md, NULL);
  pcre2_match_data_free(md);
  return rc >= 0;
}

T(good_pattern_with_flags) {
  char *err = NULL;
  pcre2_code *re = rt_re_compile("колодк[аи]", PCRE2_ZERO_TERMINATED,
                                 PCRE2_UTF | PCRE2_UCP | PCRE2_CASELESS, &err);
  CHECK(re != NULL && err == NULL);
  if (!re) return;
  CHECK(matches(re, "Нужны КОЛОДКИ передние"));
  CHECK(!matches(re, "диски"));
  pcre2_code_free(re);
  /* without CASELESS the case counts */
  re = rt_re_compile("колодк[аи]", PCRE2_ZERO_TERMINATED, PCRE2_UTF, &err);
  CHECK(re != NULL && !matches(re, "КОЛОДКИ") && matches(re, "колодки"));
  pcre2_code_free(re);
}

/* No caller can leave out UTF or Unicode classes. With no flags at all a
 * dot is one Cyrillic letter, not one byte of it, \w and \b know Cyrillic,
 * and bytes that are not UTF-8 are still refused. */
T(utf_and_unicode_classes_always) {
  char *err = NULL;
  pcre2_code *re = rt_re_compile("^\\w{3}.$", PCRE2_ZERO_TERMINATED, 0, &err);
  CHECK(re != NULL && err == NULL);
  if (re) CHECK(matches(re, "абвг") && !matches(re, "абвгд") && !matches(re, "аб"));
  pcre2_code_free(re);
  re = rt_re_compile("\\bмасло\\b", PCRE2_ZERO_TERMINATED, 0, &err);
  CHECK(re != NULL);
  if (re) CHECK(matches(re, "нужно масло 5w30") && !matches(re, "маслосъёмные колпачки"));
  pcre2_code_free(re);
  CHECK(rt_re_compile("ab\xff", PCRE2_ZERO_TERMINATED, 0, &err) == NULL);
  CHECK(err && strstr(err, "UTF-8"));
  free(err);
}

T(length_limited) {
  char *err = NULL;
  /* only "abc" of "abc(" is the pattern: it compiles */
  pcre2_code *re = rt_re_compile("abc(", 3, 0, &err);
  CHECK(re != NULL && err == NULL);
  if (re) CHECK(matches(re, "xabcx"));
  pcre2_code_free(re);
}

T(bad_pattern_names_reason_and_character) {
  char *err = NULL;
  /* in characters, not bytes: PCRE2 stops after the 6 of "цена (" (10 bytes) */
  CHECK(rt_re_compile("цена (", PCRE2_ZERO_TERMINATED, PCRE2_UTF, &err) == NULL);
  CHECK(err && strstr(err, "missing closing parenthesis") && strstr(err, " at character 7"));
  free(err);
  err = NULL;
  CHECK(rt_re_compile("a{2,1}", PCRE2_ZERO_TERMINATED, 0, &err) == NULL);
  CHECK(err && strstr(err, "at character"));
  free(err);
  /* no message wanted: still NULL, nothing allocated */
  CHECK(rt_re_compile("[", PCRE2_ZERO_TERMINATED, 0, NULL) == NULL);
}

T(not_utf8_is_refused) {
  char *err = NULL;
  CHECK(rt_re_compile("ab\xff\xfe", PCRE2_ZERO_TERMINATED, PCRE2_UTF, &err) == NULL);
  CHECK(err && strstr(err, "UTF-8") && strstr(err, "at character 3"));
  free(err);
}

/* A length-given pattern is read no further than its length, so a bad
 * sequence or group cut by the length is refused where it was cut. Each
 * pattern is a heap copy of exactly len bytes: under ASan a read past it
 * fails the test. */
static pcre2_code *compile_exact(const char *pat, size_t len, char **err) {
  char *p = malloc(len);
  memcpy(p, pat, len);
  pcre2_code *re = rt_re_compile(p, len, PCRE2_UTF | PCRE2_UCP | PCRE2_CASELESS, err);
  free(p);
  return re;
}

static bool ends_with(const char *s, const char *tail) {
  size_t n = s ? strlen(s) : 0, m = strlen(tail);
  return n >= m && !strcmp(s + n - m, tail);
}

T(length_given_refusals) {
  static const struct { const char *pat; size_t len; const char *reason; size_t at; } cases[] = {
    {"да\xd0", 5, "UTF-8", 3},          /* a letter cut in half at the end */
    {"\xd0\xb4\xd0(x)", 6, "UTF-8", 2}, /* cut in half in the middle */
    {"x\xc0\x80", 3, "UTF-8", 2},        /* overlong NUL */
    {"\xed\xa0\x80", 3, "UTF-8", 1},     /* a surrogate */
    {"(да)", 3, "missing closing parenthesis", 3}, /* the length ends in the group */
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char *err = NULL, want[32];
    CHECK(compile_exact(cases[i].pat, cases[i].len, &err) == NULL);
    snprintf(want, sizeof want, " at character %zu", cases[i].at);
    if (!err || !strstr(err, cases[i].reason) || !ends_with(err, want))
      fprintf(stderr, "  case %zu: %s\n", i, err ? err : "(null)");
    CHECK(err && strstr(err, cases[i].reason) && ends_with(err, want));
    free(err);
  }
  /* what lies past the length is not read: the bad tail does not count */
  char *err = NULL;
  pcre2_code *re = compile_exact("ab|c)", 4, &err);
  CHECK(re != NULL && err == NULL);
  if (re) CHECK(matches(re, "xCx") && matches(re, "AB"));
  pcre2_code_free(re);
}

int main(void) {
  T_RUN(good_pattern_with_flags);
  T_RUN(utf_and_unicode_classes_always);
  T_RUN(length_limited);
  T_RUN(bad_pattern_names_reason_and_character);
  T_RUN(not_utf8_is_refused);
  T_RUN(length_given_refusals);
  return T_DONE();
}
