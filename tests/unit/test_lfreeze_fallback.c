/* test_lfreeze_fallback.c -- the module-level check when the bytecode
 * cannot be read. lfreeze.c is built here with a lua_dump that writes
 * another Lua's format (a newer version byte), as a Lua other than 5.4
 * would: the reader's self-test then fails, rt_lfreeze_seal says so, and
 * every module-level variable is checked after each step -- the one no
 * code assigns as well -- so a change is still found and put back. */
#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>
#include <string.h>

/* The head of a chunk from "Lua 5.5": the rest does not matter, the
 * reader must refuse it at the version byte. */
static int other_lua_dump(lua_State *L, lua_Writer w, void *ud, int strip) {
  static const unsigned char chunk[] = {0x1b, 'L', 'u', 'a', 0x55, 0, 0x19, 0x93, '\r', '\n',
                                        0x1a, '\n', 4, 8, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                        0, 0, 0, 0, 0, 0, 0, 0, 1, 0x80};
  (void)strip;
  return w(L, chunk, sizeof chunk, ud);
}
#define lua_dump(L, w, ud, strip) other_lua_dump(L, w, ud, strip)
#include "lfreeze.c"
#undef lua_dump

#include "t.h"
#include "tlfreeze.h"

T(every_variable_is_checked) {
  lua_State *L = tlf_state();
  const char *src =
      "local kept, deep = 1, 0\n"
      "local M = {}\n"
      "function M.read() return kept end\n"
      "function M.bump() deep = deep + 1 end\n"
      "function M.get() return deep end\n"
      "return M\n";
  int m = tlf_root(L, src, "flows/x.lua");
  CHECK(m != 0);
  int nt = 0, nv = 0, nc = 0;
  CHECK(!rt_lfreeze_seal(L, &nt, &nv, &nc));   /* the bytecode could not be read */
  CHECK(nv == 2);                              /* kept, deep */
  CHECK(nc == nv);                             /* all of them checked */
  char msg[512];
  CHECK(rt_lfreeze_check(L, msg, sizeof msg) == 0);
  lua_getfield(L, m, "bump");
  lua_call(L, 0, 0);
  CHECK(rt_lfreeze_check(L, msg, sizeof msg) == 1);
  CHECK(strstr(msg, "module-level variable 'deep' (flows/x.lua) was changed by a step") != NULL);
  lua_getfield(L, m, "get");
  lua_call(L, 0, 1);
  CHECK(lua_tointeger(L, -1) == 0);   /* put back */
  lua_settop(L, m);
  /* A variable no code assigns is compared too: changed from outside the
   * flows' code (the debug library, which flows do not have), it is found. */
  lua_getfield(L, m, "read");
  lua_pushinteger(L, 42);
  CHECK(lua_setupvalue(L, -2, 1) != NULL);
  lua_settop(L, m);
  CHECK(rt_lfreeze_check(L, msg, sizeof msg) == 1);
  CHECK(strstr(msg, "'kept'") != NULL);
  lua_close(L);
}

int main(void) {
  T_RUN(every_variable_is_checked);
  return T_DONE();
}
