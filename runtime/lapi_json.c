/* lapi_json.c -- json.encode / json.decode for flows (lconv.h's codec). */
#include "lapi.h"
#include "lconv.h"

/* json.encode(value) -> string, keys sorted. Misuse (functions inside)
 * raises. The walk is C work the instruction hook does not see, so it is
 * charged to the step by its size. [-1, +1, e] */
static int l_json_encode(lua_State *L) {
  luaL_checkany(L, 1);
  char err[256];
  rt_buf b = RT_BUF_INIT;
  rt_lconv_lim lim = {.root = "value", .cap = rt_lvm_mem_limit(L)};
  if (rt_lconv_encode(L, 1, &b, &lim, err, sizeof err) != 0) {
    rt_buf_free(&b);
    return luaL_error(L, "json.encode: %s", err);
  }
  lua_pushlstring(L, rt_buf_str(&b), b.len);
  size_t n = b.len;
  rt_buf_free(&b);
  rt_lvm_charge(L, (int64_t)n / 8 + 1);
  return 1;
}

/* json.decode(text) -> value | nil, "bad-json", detail. Decoded straight
 * into Lua memory, so a big text cannot grow a host-side tree outside the
 * Lua cap. [-1, +1..3] */
static int l_json_decode(lua_State *L) {
  size_t n, at = 0;
  const char *s = luaL_checklstring(L, 1, &n);
  rt_lvm_charge(L, (int64_t)n / 8 + 1);
  if (rt_lconv_decode(L, s, n, &at) == 0) return 1;
  lua_pushnil(L);
  lua_pushliteral(L, "bad-json");
  lua_pushfstring(L, "not valid JSON at byte %I (or nested deeper than 64)", (lua_Integer)at + 1);
  return 3;
}

static const luaL_Reg json_funcs[] = {
  {"encode", l_json_encode},
  {"decode", l_json_decode},
  {NULL, NULL},
};

int rt_luaopen_json(lua_State *L) {
  luaL_newlib(L, json_funcs);
  return 1;
}
