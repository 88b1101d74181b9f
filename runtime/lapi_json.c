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

/* json.decode(text) -> value | nil, "bad-json", detail. [-1, +1..3] */
static int l_json_decode(lua_State *L) {
  size_t n;
  const char *s = luaL_checklstring(L, 1, &n);
  json_error_t e;
  json_t *j = json_loadb(s, n, JSON_DECODE_ANY, &e);
  if (!j) {
    lua_pushnil(L);
    lua_pushliteral(L, "bad-json");
    lua_pushfstring(L, "line %d: %s", e.line, e.text);
    return 3;
  }
  rt_lvm_push_json(L, j);
  json_decref(j);
  return 1;
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
