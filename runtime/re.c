/* re.c -- compiling a PCRE2 pattern (see re.h). */
#include "re.h"
#include "rt.h"
#include <stdio.h>

pcre2_code *rt_re_compile(const char *pat, size_t len, uint32_t flags, char **err) {
  int code;
  PCRE2_SIZE off;
  pcre2_code *re = pcre2_compile((PCRE2_SPTR)pat, len, flags, &code, &off, NULL);
  if (!re && err) {
    PCRE2_UCHAR msg[256];
    if (pcre2_get_error_message(code, msg, sizeof msg) < 0)
      snprintf((char *)msg, sizeof msg, "error %d", code);
    *err = rt_xasprintf("%s at offset %zu", (const char *)msg, (size_t)off);
  }
  return re;
}
