/* fuzz_lconv.c -- libFuzzer target: the one Lua <-> JSON codec (lconv.c),
 * which reads stored states, json.decode arguments, HTTP answers and
 * provider values. Beyond no crash, leak or UB:
 * - what it reads and can write again, it reads back and writes the same
 *   text (the codec is stable: a stored state never drifts);
 * - every text jansson accepts (nested at most 64 deep, no NUL byte) it
 *   accepts too.
 * Build and run: tests/fuzz/run. */
#include "lconv.h"
#include "rt.h"
#include <jansson.h>
#include <lauxlib.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static lua_State *L;

static int depth(const json_t *j) {
  int d = 0;
  if (json_is_object(j)) {
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)j, k, v) { int x = depth(v); if (x > d) d = x; }
    return d + 1;
  }
  if (json_is_array(j)) {
    size_t i;
    json_t *v;
    json_array_foreach(j, i, v) { int x = depth(v); if (x > d) d = x; }
    return d + 1;
  }
  return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!L) L = luaL_newstate();
  const char *s = (const char *)data;
  char err[512];
  int ok = rt_lconv_decode(L, s, size, NULL) == 0;
  /* jansson stops at a NUL byte outside a string as if the text ended
   * there; JSON has no such byte, so those texts are not compared. */
  json_t *j = memchr(s, 0, size) ? NULL
                                 : json_loadb(s, size, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
  if (j && depth(j) <= 64 && !ok) {
    fprintf(stderr, "jansson reads it, lconv does not\n");
    abort();
  }
  json_decref(j);
  if (ok) {
    size_t n1;
    char *a = rt_lconv_text(L, -1, "v", 1 << 22, &n1, err, sizeof err);
    lua_pop(L, 1);
    if (a) {
      if (rt_lconv_decode(L, a, n1, NULL) != 0) {
        fprintf(stderr, "written text not readable: %s\n", a);
        abort();
      }
      size_t n2;
      char *b = rt_lconv_text(L, -1, "v", 1 << 22, &n2, err, sizeof err);
      lua_pop(L, 1);
      if (!b || n1 != n2 || memcmp(a, b, n1) != 0) {
        fprintf(stderr, "not stable: %s -> %s\n", a, b ? b : err);
        abort();
      }
      free(b);
      free(a);
    }
  }
  lua_settop(L, 0);
  lua_gc(L, LUA_GCCOLLECT);
  return 0;
}
