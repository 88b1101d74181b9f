/* regex.c -- compiling a PCRE2 pattern (see regex.h). */
#include "regex.h"
#include "rt.h"
#include <stdlib.h>

/* Compiles len bytes of pat (PCRE2_ZERO_TERMINATED: up to its NUL) with
 * PCRE2_UTF | PCRE2_UCP and the extra flags (PCRE2_CASELESS, PCRE2_DOTALL,
 * ...). Returns the code, owned by the caller, with *err NULL; or NULL with
 * an owned "<reason> at offset N" in *err. err may be NULL when the caller
 * has nothing to say about a failure (a built-in pattern). UTF checking
 * stays on: a pattern can come from a shop's file, and pcre2 reads invalid
 * UTF-8 past its end when told not to check. */
pcre2_code *rt_regex_compile(const char *pat, size_t len, uint32_t flags, char **err) {
  int code;
  PCRE2_SIZE off;
  if (err) *err = NULL;
  pcre2_code *re = pcre2_compile((PCRE2_SPTR)pat, len, PCRE2_UTF | PCRE2_UCP | flags, &code,
                                 &off, NULL);
  if (!re && err) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(code, msg, sizeof msg);
    *err = rt_xasprintf("%s at offset %zu", (const char *)msg, (size_t)off);
  }
  return re;
}
