/* tlfreeze.h -- for the tests that seal flow code by hand (test_lfreeze,
 * test_lfreeze_fallback): a bare Lua state prepared as lvm.c prepares a
 * bundle's, and a chunk run as a flow file whose value becomes a root. */
#ifndef RT_TLFREEZE_H
#define RT_TLFREEZE_H
#include "lfreeze.h"
#include <lauxlib.h>
#include <lualib.h>
#include <stdio.h>
#include <string.h>

/* A state with the full library (the tests use coroutines, which flows do
 * not have), lfreeze's next and rawlen, and everything in it so far
 * marked as the host's. */
static inline lua_State *tlf_state(void) {
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  rt_lfreeze_open(L);
  rt_lfreeze_mark_host(L);
  return L;
}

/* Runs src as the flow file named file and remembers its value as a root;
 * the value stays on the stack. Returns its index, 0 if src did not load. */
static inline int tlf_root(lua_State *L, const char *src, const char *file) {
  char name[256];
  snprintf(name, sizeof name, "@%s", file);
  if (luaL_loadbuffer(L, src, strlen(src), name) != LUA_OK) return 0;
  lua_call(L, 0, 1);
  int m = lua_gettop(L);
  rt_lfreeze_root(L, m, file);
  return m;
}
#endif
