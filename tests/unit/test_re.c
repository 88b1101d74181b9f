/* test_re.c -- rt_re_compile: a good pattern compiles with the flags asked
 * (any case across Cyrillic, a length-limited pattern), a bad one gives
 * NULL and one reason with its offset, and bytes that are not UTF-8 are
 * refused with a reason instead of reaching the matcher. */
#include "re.h"
#include "t.h"
#include <stdbool.h>
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

T(length_limited) {
  char *err = NULL;
  /* only "abc" of "abc(" is the pattern: it compiles */
  pcre2_code *re = rt_re_compile("abc(", 3, 0, &err);
  CHECK(re != NULL && err == NULL);
  if (re) CHECK(matches(re, "xabcx"));
  pcre2_code_free(re);
}

T(bad_pattern_names_reason_and_offset) {
  char *err = NULL;
  /* the offset is in bytes: the end of the 10 of "цена (" */
  CHECK(rt_re_compile("цена (", PCRE2_ZERO_TERMINATED, PCRE2_UTF, &err) == NULL);
  CHECK(err && strstr(err, "missing closing parenthesis") && strstr(err, " at offset 10"));
  free(err);
  err = NULL;
  CHECK(rt_re_compile("a{2,1}", PCRE2_ZERO_TERMINATED, 0, &err) == NULL);
  CHECK(err && strstr(err, "at offset"));
  free(err);
  /* no message wanted: still NULL, nothing allocated */
  CHECK(rt_re_compile("[", PCRE2_ZERO_TERMINATED, 0, NULL) == NULL);
}

T(not_utf8_is_refused) {
  char *err = NULL;
  CHECK(rt_re_compile("ab\xff\xfe", PCRE2_ZERO_TERMINATED, PCRE2_UTF, &err) == NULL);
  CHECK(err && strstr(err, "UTF-8") && strstr(err, "at offset 2"));
  free(err);
}

int main(void) {
  T_RUN(good_pattern_with_flags);
  T_RUN(length_limited);
  T_RUN(bad_pattern_names_reason_and_offset);
  T_RUN(not_utf8_is_refused);
  return T_DONE();
}
