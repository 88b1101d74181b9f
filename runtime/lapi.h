/* lapi.h -- internal header shared by lvm.c and the lapi_*.c Lua modules.
 *
 * Each lapi_<m>.c registers one module table through a luaL_Reg list and
 * one rt_luaopen_<m>. Modules that need the bundle (host callbacks, config)
 * get it as an upvalue set by lvm.c. */
#ifndef RT_LAPI_H
#define RT_LAPI_H
#include "lvm.h"
#include <lauxlib.h>
#include <lua.h>

/* Marker text of the instruction-budget error; host.lua re-raises it
 * through script pcalls. */
#define RT_BUDGET_MARK "instruction budget"

/* The turn running on L, or NULL outside a step (load time). */
rt_lturn *rt_lvm_turn(lua_State *L);
/* The bundle owning L (stored in the registry). */
rt_bundle *rt_lvm_bundle(lua_State *L);
const rt_host *rt_lvm_host(lua_State *L);
json_t *rt_lvm_shop(lua_State *L);   /* borrowed config */
/* Counts an HTTP call against the turn's cap; false when exhausted. */
bool rt_lvm_turn_http_ok(rt_lturn *t);
/* Takes the I/O result handed to the turn (new reference) or NULL. */
json_t *rt_lvm_turn_take_io(rt_lturn *t);

/* JSON <-> Lua. push: [-0, +1]. to_json: returns a new reference or NULL
 * with a message in err naming the path ("slots.car.f: functions cannot be
 * stored"). */
void rt_lvm_push_json(lua_State *L, json_t *j);
/* Lua value -> owned jansson tree; NULL with a message naming the path.
 * Bounded: the written-out size may not pass the Lua memory cap. */
json_t *rt_lvm_to_json(lua_State *L, int idx, const char *root, char *err, size_t errn);
/* JSON text -> Lua value, straight into Lua memory (so under the Lua cap).
 * 0 and one value pushed, or -1, nothing pushed and *bad_at = byte offset. */
int rt_lvm_push_json_text(lua_State *L, const char *s, size_t n, size_t *bad_at);

int rt_luaopen_json(lua_State *L);
int rt_luaopen_log(lua_State *L);
int rt_luaopen_time(lua_State *L);
int rt_luaopen_http(lua_State *L);
int rt_luaopen_text(lua_State *L);
#endif
