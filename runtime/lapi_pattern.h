/* lapi_pattern.h -- Lua 5.4 patterns whose work counts against the step.
 *
 * The stock string.find/match/gmatch/gsub run in C, so the instruction
 * hook never sees them and a backtracking pattern (".-.-.-.-b", or a
 * four-field split of a long customer message) could block the loop for
 * minutes. This module implements the same functions with the semantics
 * of the Lua 5.4 manual (section 6.4.1) and charges every few hundred
 * elementary matcher steps to the running turn or load through
 * rt_lvm_charge, so the instruction budget and the step timeout stop it. */
#ifndef RT_LAPI_PATTERN_H
#define RT_LAPI_PATTERN_H
struct lua_State;

/* Replaces find, match, gmatch and gsub in the global `string` table (which
 * is also the string metatable's __index) and removes string.dump, so no
 * path reaches the stock ones. Call after luaopen_string. */
void rt_lapi_pattern_install(struct lua_State *L);

/* The four functions, for tests that install them elsewhere. */
int rt_lapi_pattern_find(struct lua_State *L);
int rt_lapi_pattern_match(struct lua_State *L);
int rt_lapi_pattern_gmatch(struct lua_State *L);
int rt_lapi_pattern_gsub(struct lua_State *L);
#endif
