/* lapi_host.c -- the C helpers only host.lua sees (not flow code):
 * now, duration, customer. [-0, +1] each. */
#include "lapi.h"
#include "config.h"
#include "lconv.h"

/* C.now() -> unix seconds from the runtime clock. */
static int l_host_now(lua_State *L) {
  const rt_host *h = rt_lvm_host(L);
  lua_pushinteger(L, (lua_Integer)((h && h->now_ms ? h->now_ms(h->ud) : 0) / 1000));
  return 1;
}

/* C.duration("3d") -> seconds or nil. */
static int l_host_duration(lua_State *L) {
  int64_t sec;
  if (rt_parse_duration(luaL_checkstring(L, 1), &sec) != RT_OK) return 0;
  lua_pushinteger(L, (lua_Integer)sec);
  return 1;
}

/* C.customer(phone, channel, chat) -> table or nil. */
static int l_host_customer(lua_State *L) {
  const rt_host *h = rt_lvm_host(L);
  if (!h || !h->customer) return 0;
  json_t *c = h->customer(h->ud, luaL_optstring(L, 1, NULL), luaL_optstring(L, 2, NULL),
                          luaL_optstring(L, 3, NULL));
  if (!c) return 0;
  rt_lconv_push_tree(L, c);
  json_decref(c);
  return 1;
}

static const luaL_Reg host_funcs[] = {
  {"now", l_host_now},
  {"duration", l_host_duration},
  {"customer", l_host_customer},
  {NULL, NULL},
};

/* Adds the helpers to the table on top of the stack. [-0, +0] */
int rt_lvm_open_hostfns(lua_State *L) {
  luaL_setfuncs(L, host_funcs, 0);
  return 0;
}
