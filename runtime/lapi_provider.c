/* lapi_provider.c -- the Lua module of a lent provider (integration.h).
 *
 * A provider named "llm" becomes the module llm: llm.chat{...} starts the
 * provider's op "chat" with the table as its arguments (a jansson tree, as
 * the contract has it), yields the step, and resumes it with the answer
 * as Lua values, or (nil, error, detail). Any name is an op: the provider
 * itself says which it knows (an unknown one answers nil, "bad_request",
 * its message). The call's release hook cancels a call still in flight
 * when the turn dies first, so done never comes after its turn; what the
 * call cost is added to the turn's usage (rt_fx.usage). */
#include "lapi.h"
#include "integration.h"
#include "lconv.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  rt_lturn *t;
  rt_provider *p;
  rt_call *call;             /* the provider's handle while in flight */
  bool answered;
  int status;
  json_t *value;             /* owned copy of the answer */
  char *error, *detail;
} pcall;

static void pcall_release(void *ud) {
  pcall *c = ud;
  if (!c->answered && c->call && c->p->cancel) c->p->cancel(c->p, c->call);
  json_decref(c->value);
  free(c->error);
  free(c->detail);
  free(c);
}

static void pcall_done(void *ud, const rt_call_result *r) {
  pcall *c = ud;
  if (c->answered) return;   /* a provider that answers twice: the first counts */
  c->answered = true;
  c->call = NULL;
  c->status = r->status;
  if (r->status == RT_OK) {
    c->value = r->value ? json_deep_copy(r->value) : NULL;
  } else {
    c->error = rt_xstrdup(r->error ? r->error : "unavailable");
    c->detail = rt_xstrdup(r->detail ? r->detail : "");
  }
  rt_lvm_turn_usage(c->t, r->usage.tokens_in, r->usage.tokens_out, r->usage.cost_micro);
  rt_lvm_turn_ready(c->t);
}

/* Continuation: [-0, +1..3] */
static int provider_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  pcall *c = (pcall *)(intptr_t)ctx;
  if (c->answered && c->status == RT_OK) {
    if (c->value) rt_lconv_push_tree(L, c->value);
    else lua_pushnil(L);
    return 1;
  }
  lua_pushnil(L);
  lua_pushstring(L, c->answered ? c->error : "internal");
  lua_pushstring(L, c->answered ? c->detail : "no result");
  return 3;
}

/* <name>.<op>(args): upvalue 1 the provider, 2 the op. */
static int l_provider_call(lua_State *L) {
  rt_provider *p = lua_touserdata(L, lua_upvalueindex(1));
  const char *op = lua_tostring(L, lua_upvalueindex(2));
  rt_lturn *t = rt_lvm_turn(L);
  if (!t) return luaL_error(L, "%s.%s is only available inside a step, not at load time", p->name, op);
  if (!lua_isnoneornil(L, 1)) luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  char root[128], err[512];
  snprintf(root, sizeof root, "%s.%s", p->name, op);
  json_t *args;
  if (lua_isnil(L, 1)) args = json_object();
  else if (!(args = rt_lconv_tree(L, 1, root, rt_lvm_mem_limit(L), err, sizeof err)))
    return luaL_error(L, "%s", err);
  pcall *c = rt_xcalloc(1, sizeof *c);
  c->t = t;
  c->p = p;
  char *perr = NULL;
  rt_call *call = NULL;
  int rc = p->call(p, op, args, pcall_done, c, &call, &perr);
  json_decref(args);
  if (rc != RT_OK) {
    free(c);
    lua_pushnil(L);
    lua_pushliteral(L, "bad_request");
    lua_pushstring(L, perr ? perr : "the call could not be started");
    free(perr);
    return 3;
  }
  free(perr);
  if (!c->answered) c->call = call;
  rt_lvm_turn_set_cancel(t, pcall_release, c);
  return lua_yieldk(L, 0, (lua_KContext)(intptr_t)c, provider_k);
}

/* __index of the module: any name is an op of the provider. */
static int l_provider_index(lua_State *L) {
  if (lua_type(L, 2) != LUA_TSTRING) return 0;
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_pushvalue(L, 2);
  lua_pushcclosure(L, l_provider_call, 2);
  return 1;
}

/* The module's metatable; each function gets the provider as upvalue. */
static const luaL_Reg provider_meta[] = {
  {"__index", l_provider_index},
  {NULL, NULL},
};

int rt_luaopen_provider(lua_State *L, rt_provider *p) {
  lua_newtable(L);
  lua_createtable(L, 0, 1);
  lua_pushlightuserdata(L, p);
  luaL_setfuncs(L, provider_meta, 1);
  lua_setmetatable(L, -2);
  return 1;
}
