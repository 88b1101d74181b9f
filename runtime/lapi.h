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
const rt_bundle_opts *rt_lvm_opts(lua_State *L);
size_t rt_lvm_mem_limit(lua_State *L);   /* the Lua memory cap: the bound of conversions */
/* Counts an HTTP call against the turn's cap; false when exhausted. */
bool rt_lvm_turn_http_ok(rt_lturn *t);

/* I/O of a yielded turn (the OpenResty cosocket shape). A function that
 * starts I/O registers a release hook on the turn before it yields; the
 * hook owns what the I/O needs: called, it stops the I/O if it is still
 * running (an HTTP cancel, a provider's cancel) and frees it. When the
 * answer comes, the I/O's callback keeps it in that memory and calls
 * rt_lvm_turn_ready (the host then resumes the turn); the continuation
 * reads it from there. The hook runs exactly once: when the next I/O of
 * the turn registers its own, when the turn ends (done, failed, killed by
 * its deadline, freed, dropped at shutdown). So a continuation that raises
 * while reading the answer leaks nothing, and an answer never arrives
 * after its turn is gone. */
void rt_lvm_turn_set_cancel(rt_lturn *t, void (*cancel)(void *ud), void *ud);
void rt_lvm_turn_ready(rt_lturn *t);
/* Adds a provider call's cost to the turn's usage (rt_fx.usage). */
void rt_lvm_turn_usage(rt_lturn *t, int64_t tokens_in, int64_t tokens_out, int64_t cost_micro);

struct rt_provider;
int rt_luaopen_json(lua_State *L);
int rt_luaopen_log(lua_State *L);
int rt_luaopen_time(lua_State *L);
int rt_luaopen_http(lua_State *L);
int rt_luaopen_text(lua_State *L);
/* The module of one lent provider (lapi_provider.c). [-0, +1] */
int rt_luaopen_provider(lua_State *L, struct rt_provider *p);
#endif
