/* re.c -- compiling a PCRE2 pattern (see re.h). */
#include "re.h"
#include "rt.h"
#include "utf8.h"
#include <stdio.h>

pcre2_code *rt_re_compile(const char *pat, size_t len, uint32_t flags, char **err) {
  int code;
  PCRE2_SIZE off;
  pcre2_code *re = pcre2_compile((PCRE2_SPTR)pat, len, flags | PCRE2_UTF | PCRE2_UCP, &code,
                                 &off, NULL);
  if (!re && err) {
    PCRE2_UCHAR msg[256];
    if (pcre2_get_error_message(code, msg, sizeof msg) < 0)
      snprintf((char *)msg, sizeof msg, "error %d", code);
    /* Where, as the marketer's editor counts: characters from 1, not the
     * bytes PCRE2 counts (a Cyrillic letter is two). */
    *err = rt_xasprintf("%s at character %zu", (const char *)msg, rt_utf8_count(pat, off) + 1);
  }
  return re;
}
