/* lapi_log.c -- log.info / log.warn / log.error for flows: one logfmt line
 * each, tagged with the flow and step when called inside a turn. */
#include "lapi.h"
#include "log.h"
#include "utf8.h"
#include <stdbool.h>
#include <string.h>

/* The text of one log line is cut at this many bytes: a log line is for
 * reading, and a flow logging a customer's 1 MB message must not write it. */
#define LOG_TEXT_MAX 1000

/* Joins the arguments with spaces into a fixed buffer. No luaL_Buffer: its
 * box lives on the Lua stack, and values pushed while it is open (as
 * luaL_tolstring does) corrupt it once it outgrows its first block. */
static int emit(lua_State *L, rt_log_level lvl) {
  char text[LOG_TEXT_MAX + 4];
  size_t len = 0;
  bool cut = false;
  int n = lua_gettop(L);
  for (int i = 1; i <= n && !cut; i++) {
    size_t sl;
    const char *s = luaL_tolstring(L, i, &sl);
    if (i > 1 && len < LOG_TEXT_MAX) text[len++] = ' ';
    size_t take = rt_utf8_floor(s, sl, LOG_TEXT_MAX - len); /* whole code points */
    memcpy(text + len, s, take);
    len += take;
    if (take < sl) cut = true;
    lua_pop(L, 1);
  }
  if (cut) {
    memcpy(text + len, "...", 3);
    len += 3;
  }
  text[len] = '\0';
  char q[2 * LOG_TEXT_MAX + 64];
  rt_log_quote(text, q, sizeof q);
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
