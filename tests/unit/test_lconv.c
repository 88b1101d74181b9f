/* test_lconv.c -- the one Lua <-> JSON codec (lconv.h) on a plain Lua state.
 *
 * - its text is jansson's (compact, keys sorted, same escapes and reals)
 *   for thousands of generated values: deep tables, Cyrillic and emoji,
 *   control bytes, integers at the edges, reals of every magnitude;
 * - what it reads it writes back the same; broken UTF-8 and NUL become
 *   U+FFFD, in values and in what is read;
 * - refusals name the path: functions, NaN, mixed tables, bad keys,
 *   nesting, the byte cap;
 * - the reader refuses what is not JSON and reads what jansson reads. */
#include "buf.h"
#include "lconv.h"
#include "rt.h"
#include "t.h"
#include "utf8.h"
#include <lauxlib.h>
#include <lualib.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static lua_State *L;

static char *enc(int idx, size_t cap, char *err, size_t errn) {
  return rt_lconv_text(L, idx, "v", cap, NULL, err, errn);
}

/* Encodes the result of Lua expression src; owned text or "ERR: msg". */
static char *enc_lua(const char *src) {
  char code[4096], err[512];
  snprintf(code, sizeof code, "return %s", src);
  if (luaL_dostring(L, code) != LUA_OK) {
    char *m = rt_xasprintf("LUA: %s", lua_tostring(L, -1));
    lua_pop(L, 1);
    return m;
  }
  char *s = enc(-1, 1 << 20, err, sizeof err);
  lua_pop(L, 1);
  return s ? s : rt_xasprintf("ERR: %s", err);
}

/* ---- generated values, built twice: as Lua and as a jansson tree ---- */

static uint64_t rng = 88172645463325252ULL;
static uint64_t next(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

static void gen_string(char *out, size_t *n) {
  static const char *const pieces[] = {"a", "Z", "колодки", "ё", "😀", "\"", "\\", "/", "\n",
                                       "\t", "\r", "\b", "\f", "\x01", "\x1f", "\x7f", " ", "é",
                                       "\xe2\x80\xa8", "{", "}", "[", ":", ",", "0"};
  size_t len = 0, k = next() % 6;
  for (size_t i = 0; i < k; i++) {
    const char *p = pieces[next() % RT_ARRAY_LEN(pieces)];
    memcpy(out + len, p, strlen(p));
    len += strlen(p);
  }
  out[len] = '\0';
  *n = len;
}

static double gen_real(void) {
  static const double edge[] = {0.1, 0.5, 1.0, 3.0, -0.0, 1e20, 1e-7, 1e300, 5e-324, 2.5e15,
                                1.0 / 3, 123456789.125, -2.75, 1e16, 1e17};
  if (next() % 2) return edge[next() % RT_ARRAY_LEN(edge)];
  double v = (double)(int64_t)next() / (double)(1 + next() % 1000000);
  return ldexp(v, (int)(next() % 200) - 100);
}

/* Pushes a value on L and returns the same as a jansson tree. */
static json_t *gen(int depth) {
  int kind = (int)(next() % (depth > 4 ? 5 : 7));
  char s[256];
  size_t n;
  switch (kind) {
  case 0: lua_pushboolean(L, next() % 2); return json_boolean(lua_toboolean(L, -1));
  case 1: {
    static const int64_t ints[] = {0, 1, -1, INT64_MAX, INT64_MIN, 9007199254740993LL, 42};
    int64_t v = next() % 2 ? ints[next() % RT_ARRAY_LEN(ints)] : (int64_t)next();
    lua_pushinteger(L, (lua_Integer)v);
    return json_integer((json_int_t)v);
  }
  case 2: {
    double v = gen_real();
    lua_pushnumber(L, v);
    return json_real(v);
  }
  case 3: case 4:
    gen_string(s, &n);
    lua_pushlstring(L, s, n);
    return json_stringn(s, n);
  case 5: {
    size_t k = next() % 5;
    lua_createtable(L, (int)k, 0);
    json_t *a = json_array();
    for (size_t i = 0; i < k; i++) {
      json_array_append_new(a, gen(depth + 1));
      lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    if (k == 0) { json_decref(a); return json_object(); }   /* {} is an object */
    return a;
  }
  default: {
    size_t k = next() % 5;
    lua_createtable(L, 0, (int)k);
    json_t *o = json_object();
    for (size_t i = 0; i < k; i++) {
      gen_string(s, &n);
      if (n == 0) { s[0] = 'k'; s[1] = 0; n = 1; }
      json_object_setn_new(o, s, n, gen(depth + 1));
      lua_setfield(L, -2, s);
    }
    return o;
  }
  }
}

T(same_text_as_jansson) {
  int mismatches = 0;
  for (int i = 0; i < 5000; i++) {
    json_t *j = gen(0);
    char err[256];
    char *ours = enc(-1, 1 << 20, err, sizeof err);
    char *theirs = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
    if (!ours || !theirs || strcmp(ours, theirs) != 0) {
      if (mismatches++ < 3)
        fprintf(stderr, "  ours:    %s\n  jansson: %s\n", ours ? ours : err, theirs ? theirs : "?");
    }
    /* What it wrote, it reads back and writes again the same. */
    if (ours) {
      size_t bad = 0;
      CHECK(rt_lconv_decode(L, ours, strlen(ours), &bad) == 0);
      char *again = enc(-1, 1 << 20, err, sizeof err);
      CHECK(again && strcmp(again, ours) == 0);
      free(again);
      lua_pop(L, 1);
    }
    free(ours);
    free(theirs);
    json_decref(j);
    lua_pop(L, 1);
  }
  CHECK_INT(mismatches, 0);
}

T(reals) {
  char *s = enc_lua("{1e20, 0.1, 3.0, -0.0, 1e-7, 2^63, 12}");
  CHECK_STR(s, "[1e20,0.10000000000000001,3.0,-0.0,9.9999999999999995e-8,9.2233720368547758e18,12]");
  free(s);
}

T(broken_utf8_and_nul) {
  lua_pushlstring(L, "a\xff" "b\0c\xd0", 6);
  char err[256];
  char *s = enc(-1, 1 << 20, err, sizeof err);
  CHECK_STR(s, "\"a\xEF\xBF\xBD" "b\xEF\xBF\xBD" "c\xEF\xBF\xBD\"");
  free(s);
  lua_pop(L, 1);
  /* and in what is read: \u0000 and raw broken bytes */
  const char *in = "{\"k\":\"x\\u0000y\xff\"}";
  CHECK(rt_lconv_decode(L, in, strlen(in), NULL) == 0);
  s = enc(-1, 1 << 20, err, sizeof err);
  CHECK_STR(s, "{\"k\":\"x\xEF\xBF\xBDy\xEF\xBF\xBD\"}");
  free(s);
  lua_pop(L, 1);
}

T(refusals_name_the_path) {
  char *s = enc_lua("{a = {1, {f = print}}}");
  CHECK_STR(s, "ERR: v.a[2].f: a function cannot be stored (only text, numbers, true/false and tables)");
  free(s);
  s = enc_lua("{x = 0/0}");
  CHECK_STR(s, "ERR: v.x: NaN or infinity cannot be stored");
  free(s);
  s = enc_lua("{m = {1, 2, a = 3}}");
  CHECK(strncmp(s, "ERR: v.m: a table mixes a list and named fields", 47) == 0);
  free(s);
  s = enc_lua("{['a\\255'] = 1}");
  CHECK(strncmp(s, "ERR: v: a key is not valid UTF-8", 32) == 0);
  free(s);
  s = enc_lua("(function() local t = {} local r = t for i = 1, 70 do r.n = {} r = r.n end return t end)()");
  CHECK(strstr(s, "nested deeper than 64 levels") != NULL);
  free(s);
  /* The cap counts what is written: one string a thousand times. */
  char err[256];
  luaL_dostring(L, "local s = string.rep('x', 1000) local t = {} for i = 1, 1000 do t[i] = s end return t");
  char *big = enc(-1, 100000, err, sizeof err);
  CHECK(big == NULL);
  CHECK(strstr(err, "the value is too big: over 97 KB when written out (limits.lua_memory_mb)") != NULL);
  lua_pop(L, 1);
}

T(reader) {
  const char *bad[] = {"", "{", "[1,]", "{\"a\" 1}", "tru", "01x", "\"\\x\"", "1e999",
                       "{\"a\":1}}", "[\"\\ud800\\u0041\"]",
                       /* numbers JSON does not have (strtod would take them) */
                       ".5", "[.00]", "+1", "1.", "01", "0x10", "1e", "1e+", "-", "-.5", "Infinity", NULL};
  for (int i = 0; bad[i]; i++) {
    size_t at = 0;
    CHECK(rt_lconv_decode(L, bad[i], strlen(bad[i]), &at) == -1);
  }
  int top = lua_gettop(L);
  char deep[200];
  memset(deep, '[', 65);
  memset(deep + 65, ']', 65);
  CHECK(rt_lconv_decode(L, deep, 130, NULL) == -1);
  CHECK(rt_lconv_decode(L, deep + 1, 128, NULL) == 0);
  /* what is read can be written again: 64 levels both ways */
  char errd[256];
  char *back = enc(-1, 1 << 20, errd, sizeof errd);
  CHECK(back != NULL && strlen(back) == 128);
  free(back);
  lua_settop(L, top);
  /* a number longer than any buffer (fuzz_lconv found it) */
  char longnum[200] = "[-";
  memset(longnum + 2, '5', 150);
  strcpy(longnum + 152, ".5e-100]");
  CHECK(rt_lconv_decode(L, longnum, strlen(longnum), NULL) == 0);
  lua_settop(L, top);
  const char *ok = " {\"b\":[1,2.5,\"\\u00e9\\ud83d\\ude00\",null,true],\"a\":{}} ";
  CHECK(rt_lconv_decode(L, ok, strlen(ok), NULL) == 0);
  char err[256];
  char *s = enc(-1, 1 << 20, err, sizeof err);
  /* null in a list leaves a hole, written back as null */
  CHECK_STR(s, "{\"a\":{},\"b\":[1,2.5,\"é😀\",null,true]}");
  free(s);
  lua_pop(L, 1);
  /* holes where lua_rawlen may stop short: the tail is kept (fuzz_lconv
   * found [100,null,0,0.0,null,0] written as its first four items) */
  const char *holes = "[100,null,0,0.0,null,0]";
  CHECK(rt_lconv_decode(L, holes, strlen(holes), NULL) == 0);
  s = enc(-1, 1 << 20, err, sizeof err);
  CHECK_STR(s, holes);
  free(s);
  lua_pop(L, 1);
  /* trailing nulls are not kept: Lua has no nil at the end of a list */
  CHECK(rt_lconv_decode(L, "[1,null]", 8, NULL) == 0);
  s = enc(-1, 1 << 20, err, sizeof err);
  CHECK_STR(s, "[1]");
  free(s);
  lua_pop(L, 1);
  luaL_dostring(L, "return {[1000000] = 1}");
  s = enc(-1, 1 << 20, err, sizeof err);
  CHECK(s == NULL);
  CHECK(strstr(err, "a list with more holes (nil) than values") != NULL);
  lua_pop(L, 1);
  ok = "{\"b\":[1,2.5,\"\\u00e9\\ud83d\\ude00\",true],\"a\":{}}";
  CHECK(rt_lconv_decode(L, ok, strlen(ok), NULL) == 0);
  s = enc(-1, 1 << 20, err, sizeof err);
  CHECK_STR(s, "{\"a\":{},\"b\":[1,2.5,\"é😀\",true]}");
  free(s);
  lua_pop(L, 1);
}

/* Tables are made at the size of their text (count_items in lconv.c):
 * brackets, commas and escaped quotes inside strings are not members, and a
 * list longer than the size cap still reads whole. */
T(reader_sizes) {
  char err[256];
  const char *tricky = "{\"a\":\"x\\\"],}{\",\"b\":[1,[2,3],{\"c\":\",\"}],\"d\":{},\"e\":[]}";
  CHECK(rt_lconv_decode(L, tricky, strlen(tricky), NULL) == 0);
  char *s = enc(-1, 1 << 20, err, sizeof err);
  CHECK_STR(s, "{\"a\":\"x\\\"],}{\",\"b\":[1,[2,3],{\"c\":\",\"}],\"d\":{},\"e\":{}}");
  free(s);
  lua_pop(L, 1);
  /* a string ending in an escaped backslash ends at its quote; an escaped
   * quote after backslashes does not end it (the counting scan skips
   * strings from quote to quote) */
  const char *bs = "{\"a\":\"x\\\\\",\"b\":[1,2],\"c\":\"\\\\\\\"],\",\"d\":\"ё\"}";
  CHECK(rt_lconv_decode(L, bs, strlen(bs), NULL) == 0);
  s = enc(-1, 1 << 20, err, sizeof err);
  CHECK_STR(s, bs);
  free(s);
  lua_getfield(L, -1, "c");
  CHECK_STR(lua_tostring(L, -1), "\\\"],");
  lua_pop(L, 2);
  rt_buf b = RT_BUF_INIT;
  rt_buf_addc(&b, '[');
  for (int i = 0; i < 3000; i++) rt_buf_printf(&b, "%s%d", i ? "," : "", i);
  rt_buf_addc(&b, ']');
  CHECK(rt_lconv_decode(L, b.s, b.len, NULL) == 0);
  CHECK(lua_rawlen(L, -1) == 3000);
  lua_rawgeti(L, -1, 3000);
  CHECK(lua_tointeger(L, -1) == 2999);
  lua_pop(L, 2);
  /* cut short: refused, whatever the scan counted */
  CHECK(rt_lconv_decode(L, b.s, b.len - 1, NULL) == -1);
  CHECK(rt_lconv_decode(L, "{\"a\":\"\\", 7, NULL) == -1);
  rt_buf_free(&b);
}

T(tree) {
  luaL_dostring(L, "return {n = 1, s = 'ё', l = {true, 2.5}}");
  char err[256];
  json_t *j = rt_lconv_tree(L, -1, "args", 1 << 20, err, sizeof err);
  lua_pop(L, 1);
  CHECK(j && json_integer_value(json_object_get(j, "n")) == 1);
  CHECK(j && json_is_true(json_array_get(json_object_get(j, "l"), 0)));
  rt_lconv_push_tree(L, j);
  char *s = enc(-1, 1 << 20, err, sizeof err);
  CHECK_STR(s, "{\"l\":[true,2.5],\"n\":1,\"s\":\"ё\"}");
  free(s);
  lua_pop(L, 1);
  json_decref(j);
}

/* The run of text the writer and the reader copy as it is, found a word
 * at a time, against the plain definition a character at a time: printable
 * ASCII but the quote and the backslash, or a whole valid UTF-8 sequence.
 * Generated from the pieces that sit on the edges of the word tests:
 * Russian letters, overlong leads (C0, C1), cut sequences, quotes, control
 * bytes and DEL, at every length of every text. */
static size_t plain_bytewise(const char *s, size_t n) {
  size_t i = 0;
  while (i < n) {
    unsigned char c = (unsigned char)s[i];
    if (c < 0x80) {
      if (c < 0x20 || c == '"' || c == '\\') break;
      i++;
      continue;
    }
    size_t len;
    if (rt_utf8_decode(s + i, n - i, &len) == RT_UTF8_BAD) break;
    i += len;
  }
  return i;
}

T(plain_run_words) {
  static const char *const pieces[] = {
    "к", "о", "л", "д", "ё", "Я", "a", "Z", " ", ".", "~", "\x7f", "\"", "\\", "\n", "\x1f",
    "\x01", "é", "€", "😀", "\xc0\x80", "\xc1\xbf", "\xc2\x80", "\xdf\xbf", "\xd0",
    "\xd0\xd0", "\xd0\x7f", "\xe2\x80", "\x80", "\xbf", "\xed\xa0\x80", "\xf4\x90\x80\x80",
    "колодки передние", "XW8ZZZ614BG012345"};
  char buf[256];
  size_t bad = 0;
  for (int round = 0; round < 20000; round++) {
    size_t len = 0, k = 1 + next() % 12;
    for (size_t i = 0; i < k; i++) {
      const char *p = pieces[next() % RT_ARRAY_LEN(pieces)];
      size_t pl = strlen(p);
      if (len + pl > sizeof buf) break;
      memcpy(buf + len, p, pl);
      len += pl;
    }
    for (size_t n = 0; n <= len; n++)
      if (rt_lconv_plain_run(buf, n) != plain_bytewise(buf, n)) bad++;
  }
  CHECK(bad == 0);
  /* Word boundaries: a quote or a broken byte at each place of 24 letters. */
  for (size_t at = 0; at < 48; at++) {
    char t[48];
    for (size_t i = 0; i < 48; i += 2) memcpy(t + i, "д", 2);
    t[at] = '"';   /* after a letter, or in place of its second byte */
    CHECK(rt_lconv_plain_run(t, sizeof t) == (at & ~(size_t)1));
    t[at] = (char)0xC1;
    CHECK(rt_lconv_plain_run(t, sizeof t) == plain_bytewise(t, sizeof t));
  }
}

int main(void) {
  L = luaL_newstate();
  luaL_openlibs(L);
  T_RUN(same_text_as_jansson);
  T_RUN(reals);
  T_RUN(broken_utf8_and_nul);
  T_RUN(refusals_name_the_path);
  T_RUN(reader);
  T_RUN(reader_sizes);
  T_RUN(tree);
  T_RUN(plain_run_words);
  lua_close(L);
  return T_DONE();
}
