/* lconv.h -- the one conversion between Lua values and JSON in the host.
 *
 * Everything that crosses between flows and C as data goes through here:
 * the saved state (c.slots) read and written once per event, json.encode
 * and json.decode, http json bodies and answers, provider arguments and
 * answers, and the payloads of a step's effects that the store keeps as
 * JSON (outbox payload, timer, lead and event data). The text is written
 * straight from Lua tables and read straight into them, without a jansson
 * tree between (tests/bench/bench_lvm measures why: a tree costs about
 * three times the direct walk); jansson remains where the host itself
 * holds a tree (config, schema, a customer record), and push_tree brings
 * such a tree into Lua.
 *
 * The text written is compact, object keys sorted bytewise (the same data
 * always gives the same text), strings valid UTF-8 (broken bytes and NUL
 * become U+FFFD: customers' text can carry them, JSON cannot), escapes and
 * numbers as jansson writes them (integers as integers, reals with 17
 * digits and always a '.' or an exponent). What is refused, with a message
 * naming the path (c.slots.car.f): functions and other non-data values,
 * NaN and infinity, a table that mixes a list with named fields, keys that
 * are not valid UTF-8, nesting past 64 levels, and output past a byte cap
 * (one string referenced a thousand times is written a thousand times, so
 * without it a few MB of Lua could become gigabytes of host memory).
 *
 * The reader accepts RFC 8259 JSON nested up to 64 levels, decodes into
 * Lua memory (under the Lua cap, never a host-side tree), turns null into
 * nil and cleans strings as the writer would, so any text it accepts can be
 * written again and reads back the same (tests/fuzz/fuzz_state). */
#ifndef RT_LCONV_H
#define RT_LCONV_H
#include "buf.h"
#include <jansson.h>
#include <stdint.h>
#include <lua.h>
#include <stddef.h>

typedef struct {
  const char *root;       /* the path's first name in messages: "c.slots", "value" */
  size_t cap;             /* bytes the text may take (a little more per node) */
  const char *cap_name;   /* the setting named when cap is passed; NULL: limits.lua_memory_mb */
} rt_lconv_lim;

/* Appends the JSON text of the value at idx to out. 0, or -1 with a
 * message in err (out then holds a partial text the caller drops). Raises
 * only on a Lua memory error. */
int rt_lconv_encode(lua_State *L, int idx, rt_buf *out, const rt_lconv_lim *lim, char *err,
                    size_t errn);
/* The same into an owned NUL-terminated string (*len if not NULL), capped
 * at cap bytes; NULL with err. */
char *rt_lconv_text(lua_State *L, int idx, const char *root, size_t cap, size_t *len, char *err,
                    size_t errn);
/* Pushes the Lua value of JSON text s[0..n). 0 and one value pushed, or
 * -1, nothing pushed, and *bad_at (if not NULL) the byte offset where it
 * stopped. [-0, +(0|1)] */
int rt_lconv_decode(lua_State *L, const char *s, size_t n, size_t *bad_at);
/* Pushes a jansson tree as Lua values (null members are left out).
 * [-0, +1] */
void rt_lconv_push_tree(lua_State *L, const json_t *j);
/* The value at idx as an owned jansson tree, for an interface that takes a
 * tree (provider arguments): written as text by rt_lconv_encode and read by
 * jansson, so the rules are the same. NULL with err. */
json_t *rt_lconv_tree(lua_State *L, int idx, const char *root, size_t cap, char *err, size_t errn);
/* Appends s[0..n) as a JSON string, cleaned and escaped as above. */
void rt_lconv_add_string(rt_buf *out, const char *s, size_t n);
/* Reads one escape of a JSON string, *p just past its backslash (before
 * end): the code point it stands for in *cp, *p moved past it (a surrogate
 * pair is read whole). 0, or 1 for a lone surrogate (given as U+FFFD, as
 * the reader cleans it), or -1 for a malformed escape (also a high
 * surrogate followed by another \u that is no low one). */
int rt_lconv_escape(const char **p, const char *end, uint32_t *cp);
/* The length of the run at s[0..n) that a JSON string holds as it is:
 * printable ASCII but the quote and the backslash, and valid UTF-8 (no
 * NUL). A reader copies such a run whole; most strings are one. */
size_t rt_lconv_plain_run(const char *s, size_t n);
#endif
