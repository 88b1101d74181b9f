/* tvocab.h -- a persona's vocabulary for the unit tests: runs the persona's
 * lib/words.lua (and whatever it requires from the same lib folders) in a
 * plain Lua state with the text table, the way the flows' loader does, and
 * hands back the vocabulary text.vocab built. tvocab_close frees both. */
#ifndef TVOCAB_H
#define TVOCAB_H
#include "rt.h"
#include "text.h"
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>

static lua_State *tvocab_L;

/* require(name): lib/<name>.lua from the folders in upvalue 1 (a list),
 * once. */
static int tvocab_require(lua_State *L) {
  const char *name = luaL_checkstring(L, 1);
  lua_getfield(L, LUA_REGISTRYINDEX, "tvocab.loaded");
  if (lua_getfield(L, -1, name) != LUA_TNIL) return 1;
  lua_pop(L, 1);
  lua_Integer n = luaL_len(L, lua_upvalueindex(1));
  for (lua_Integer i = 1; i <= n; i++) {
    lua_geti(L, lua_upvalueindex(1), i);
    const char *dir = lua_tostring(L, -1);
    char *path = rt_xasprintf("%s/%s.lua", dir, name);
    lua_pop(L, 1);
    FILE *f = fopen(path, "r");
    if (!f) { free(path); continue; }
    fclose(f);
    int rc = luaL_loadfile(L, path);
    free(path);
    if (rc != LUA_OK) return lua_error(L);
    lua_call(L, 0, 1);
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, name);
    return 1;
  }
  return luaL_error(L, "module '%s' not found", name);
}

/* The vocabulary of words.lua found first in dirs (NULL-terminated, e.g.
 * {"examples/electronics/lib", "scripts/vitaly/lib", NULL} relative to
 * the source tree). NULL and a message on stderr if it does not load. */
static rt_text_vocab *tvocab_open(const char *const *dirs, const char *module) {
  const char *src = getenv("RT_SOURCE_DIR");
  if (!src) src = RT_SOURCE_DIR;
  lua_State *L = luaL_newstate();
  *(void **)lua_getextraspace(L) = NULL;   /* no budget outside a bundle */
  luaL_openlibs(L);
  rt_luaopen_text(L);
  lua_setglobal(L, "text");
  lua_newtable(L);
  lua_setfield(L, LUA_REGISTRYINDEX, "tvocab.loaded");
  lua_newtable(L);
  for (int i = 0; dirs[i]; i++) {
    char *d = rt_xasprintf("%s/%s", src, dirs[i]);
    lua_pushstring(L, d);
    free(d);
    lua_rawseti(L, -2, i + 1);
  }
  lua_pushcclosure(L, tvocab_require, 1);
  lua_pushvalue(L, -1);
  lua_setglobal(L, "require");
  lua_pushstring(L, module ? module : "words");
  if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
    fprintf(stderr, "  vocabulary: %s\n", lua_tostring(L, -1));
    lua_close(L);
    return NULL;
  }
  lua_settop(L, 0);
  tvocab_L = L;
  return rt_lapi_text_vocab(L);
}

/* The auto-parts persona's vocabulary. */
static rt_text_vocab *tvocab_vitaly(void) {
  static const char *const dirs[] = {"scripts/vitaly/lib", "scripts/lib", NULL};
  return tvocab_open(dirs, "words");
}

static void tvocab_close(void) {
  if (tvocab_L) lua_close(tvocab_L);
  tvocab_L = NULL;
}

#endif
