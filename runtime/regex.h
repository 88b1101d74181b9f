/* regex.h -- compiling a PCRE2 pattern the one way the runtime does.
 *
 * Every pattern the host compiles (JSON Schema "pattern" and "format":
 * "regex", the persona's vocabulary, the LLM guard, the transcripts' ~
 * lines) is UTF-8 with Unicode classes, so an invalid UTF-8 pattern is
 * refused like any other bad one, and a refusal reads the same everywhere:
 * "<pcre2's reason> at offset N", N the byte offset in the pattern where
 * pcre2 stopped. Callers put their own context in front of it
 * ("llm.guard.price: not a valid regular expression: ..."). The module
 * owns nothing and keeps no state: the compiled code is the caller's
 * (pcre2_code_free), matching is plain pcre2_match. Includes <pcre2.h> for
 * 8-bit code units, so a caller need not. */
#ifndef RT_REGEX_H
#define RT_REGEX_H
#ifndef PCRE2_CODE_UNIT_WIDTH
#define PCRE2_CODE_UNIT_WIDTH 8
#endif
#if PCRE2_CODE_UNIT_WIDTH != 8
#error "the runtime's patterns are 8-bit PCRE2"
#endif
#include <pcre2.h>
#include <stddef.h>
#include <stdint.h>

/* The pattern compiled with PCRE2_UTF | PCRE2_UCP | flags, or NULL and an
 * owned "<reason> at offset N" in *err (see regex.c). */
pcre2_code *rt_regex_compile(const char *pat, size_t len, uint32_t flags, char **err);

#endif
