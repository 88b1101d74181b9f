/* lapi_log.c -- log.info / log.warn / log.error for flows: one logfmt line
 * each, tagged with the flow and step when called inside a turn. */
#include "lapi.h"
#include "log.h"

static int emit(lua_State *L, rt_log_level lvl) {
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  int n = lua_gettop(L);
  for (int i = 1; i <= n; i++) {
    if (i > 1) luaL_addchar(&b, ' ');
    luaL_addstring(&b, luaL_tolstring(L, i, NULL));
    lua_pop(L, 1);
  }
  luaL_pushresult(&b);
  char q[1024];
  rt_log_quote(lua_tostring(L, -1), q, sizeof q);
  lua_Debug ar;
  const char *src = "?";
  int line = 0;
  if (lua_getstack(L, 1, &ar) && lua_getinfo(L, "Sl", &ar)) {
    src = ar.short_src;
    line = ar.currentline;
  }
  rt_log(lvl, "flow-log", "at=%s:%d text=%s", src, line, q);
  return 0;
}

static int l_log_info(lua_State *L) { return emit(L, RT_LOG_INFO); }
static int l_log_warn(lua_State *L) { return emit(L, RT_LOG_WARN); }
static int l_log_error(lua_State *L) { return emit(L, RT_LOG_ERROR); }

static const luaL_Reg log_funcs[] = {
  {"info", l_log_info},
  {"warn", l_log_warn},
  {"error", l_log_error},
  {NULL, NULL},
};

int rt_luaopen_log(lua_State *L) {
  luaL_newlib(L, log_funcs);
  return 1;
}
