/* lapi_json.c -- json.encode / json.decode for flows. */
#include "lapi.h"
#include <stdlib.h>

/* json.encode(value) -> string. Misuse (functions inside) raises. [-1, +1, e] */
static int l_json_encode(lua_State *L) {
  luaL_checkany(L, 1);
  char err[256];
  json_t *j = rt_lvm_to_json(L, 1, "value", err, sizeof err);
  if (!j) return luaL_error(L, "json.encode: %s", err);
  char *s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
  json_decref(j);
  lua_pushstring(L, s ? s : "null");
  free(s);
  return 1;
}

/* json.decode(text) -> value | nil, "bad-json", detail. Decoded straight
 * into Lua memory, so a big text cannot grow a host-side tree outside the
 * Lua cap. [-1, +1..3] */
static int l_json_decode(lua_State *L) {
  size_t n, at = 0;
  const char *s = luaL_checklstring(L, 1, &n);
  if (rt_lvm_push_json_text(L, s, n, &at) == 0) return 1;
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
