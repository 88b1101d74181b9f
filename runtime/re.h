/* re.h -- compiling a PCRE2 pattern, with one wording for a bad one.
 *
 * The shop's patterns (vocabulary words in shop.json, llm.guard, a
 * "format": "regex" key, a transcript's ~ line) and the runtime's own are
 * all compiled here, so a bad pattern is reported the same way wherever it
 * was written: PCRE2's reason and the character it stopped at. */
#ifndef RT_RE_H
#define RT_RE_H
#ifndef PCRE2_CODE_UNIT_WIDTH
#define PCRE2_CODE_UNIT_WIDTH 8
#endif
#include <pcre2.h>
#include <stddef.h>
#include <stdint.h>

/* The pattern's first len bytes (PCRE2_ZERO_TERMINATED: up to its NUL),
 * compiled as UTF-8 with Unicode classes (PCRE2_UTF | PCRE2_UCP, always:
 * every text the bot matches is Russian, and a caller cannot forget them)
 * plus flags (PCRE2_CASELESS, PCRE2_DOTALL, ...). NULL on failure, with
 * *err (when err is not NULL) an owned "<reason> at character <n>", n
 * counted in characters from 1; a pattern that is not UTF-8 is refused. */
pcre2_code *rt_re_compile(const char *pat, size_t len, uint32_t flags, char **err);
#endif
