/* lfreeze.h -- module-level data of the flows is read-only after load.
 *
 * One lua_State serves every conversation, so a table or a variable at the
 * top of a flow file (`local cache = {}`, `local count = 0`) that a step
 * changes is shared by all chats: data leaks from one customer to the next,
 * survives nothing (a reload drops it) and holds memory under the one cap
 * of the state. Per-conversation data belongs in c.slots.
 *
 * So once a bundle has loaded, everything reachable from what the flow
 * files and lib modules returned (tables, their keys and values, the
 * upvalues of flow functions) is sealed:
 *  - every such table becomes an empty proxy over a hidden copy of its
 *    contents: reads, #, ipairs, pairs, next, table.concat/unpack work as
 *    before; a write raises "module-level table (lib/x.lua) is read-only
 *    after load ...". Metamethod fields (__index, __tostring, ...) stay in
 *    the table itself, so class-like tables keep working as metatables; a
 *    metatable the flow had set stays in effect behind the proxy.
 *  - the values of module-level upvalues (and of those metamethod fields)
 *    are snapshotted; rt_lfreeze_check, run after each turn, puts back any
 *    that changed and names the first. Only the upvalues that some flow
 *    function's code may assign (a SETUPVAL in it or in a function nested
 *    in it) are compared: no other code can change them. A coroutine
    reachable at seal could (a register write to a variable it holds
    open), so then every one is compared, as when the bytecode cannot be
    read.
 * Host tables (library proxies, environments, host.lua's own) are never
 * touched: everything reachable from the registry before flow code ran is
 * the host's. All state lives in the Lua registry. */
#ifndef RT_LFREEZE_H
#define RT_LFREEZE_H
#include "lapi.h"

/* Before host.lua runs: replaces the global next and rawlen with ones that
 * see through sealed tables (host.lua hands them to flows). */
void rt_lfreeze_open(lua_State *L);
/* After host.lua ran, before any flow file: remembers everything reachable
 * from the registry as host-owned. */
void rt_lfreeze_mark_host(lua_State *L);
/* Remembers a lib module (name, file) so that it is loaded before sealing,
 * not by some chat's first step. */
void rt_lfreeze_module(lua_State *L, const char *name, const char *file);
/* Remembers a value a flow file returned. [-0, +0] */
void rt_lfreeze_root(lua_State *L, int idx, const char *file);
/* lua_CFunction with upvalue 1 = the flows' require: requires every
 * remembered module and adds its value as a root. Run it protected, under
 * the load budget. */
int rt_lfreeze_preload(lua_State *L);
/* Seals everything reachable from the roots. Counts for the log: tables
 * sealed, module-level upvalues snapshotted, and of those the ones checked
 * after each step (those some flow code may assign: read from the
 * functions' bytecode). Returns false when that bytecode could not be read
 * or a coroutine was reachable, and every snapshotted upvalue is checked
 * instead. */
bool rt_lfreeze_seal(lua_State *L, int *ntables, int *nvalues, int *nchecked);
/* After a turn ran (or yielded): restores every module-level value a step
 * changed. Returns the number changed, with a message naming the first in
 * msg. Cheap: one comparison per watched value. */
int rt_lfreeze_check(lua_State *L, char *msg, size_t n);
/* If the table at idx is sealed, pushes its hidden contents and returns 1;
 * else pushes nothing and returns 0. For C code that walks tables raw
 * (lua_next, lua_rawlen) and must see what a flow sees. */
int rt_lfreeze_contents(lua_State *L, int idx);
#endif
