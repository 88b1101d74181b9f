/* lapi_http.c -- http.get / http.post / http.request for flows.
 *
 * The OpenResty cosocket shape: check we are inside a step, validate
 * arguments, start the request through the host (curl multi on the loop),
 * yield; the continuation turns the host's result into (resp) or
 * (nil, err, detail). Other conversations go on while this one waits. */
#include "lapi.h"
#include "lfreeze.h"
#include <stdlib.h>
#include <string.h>

/* Continuation: [-0, +1..3] */
static int http_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status; (void)ctx;
  rt_lturn *t = rt_lvm_turn(L);
  json_t *r = t ? rt_lvm_turn_take_io(t) : NULL;
  if (!r) {
    lua_pushnil(L);
    lua_pushliteral(L, "internal");
    lua_pushliteral(L, "no result");
    return 3;
  }
  json_t *err = json_object_get(r, "error");
  if (json_is_string(err)) {
    lua_pushnil(L);
    lua_pushstring(L, json_string_value(err));
    json_t *d = json_object_get(r, "detail");
    lua_pushstring(L, json_is_string(d) ? json_string_value(d) : "");
    json_decref(r);
    return 3;
  }
  lua_createtable(L, 0, 3);
  lua_pushinteger(L, (lua_Integer)json_integer_value(json_object_get(r, "status")));
  lua_setfield(L, -2, "status");
  json_t *body = json_object_get(r, "body");
  if (json_is_string(body)) {
    lua_pushlstring(L, json_string_value(body), json_string_length(body));
    lua_setfield(L, -2, "body");
    json_t *j = json_loadb(json_string_value(body), json_string_length(body), JSON_DECODE_ANY, NULL);
    if (j) {
      rt_lvm_push_json(L, j);
      lua_setfield(L, -2, "json");
      json_decref(j);
    }
  }
  json_decref(r);
  return 1;
}

/* http.request{method=, url=, body= (string) | json= (table), headers=, timeout= (s)} */
static int l_http_request(lua_State *L) {
  rt_lturn *t = rt_lvm_turn(L);
  if (!t) return luaL_error(L, "http is only available inside a step, not at load time");
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_getfield(L, 1, "url");
  const char *url = luaL_checkstring(L, -1);
  if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0)
    return luaL_error(L, "http: url must start with http:// or https://");
  json_t *req = json_object();
  json_object_set_new(req, "url", json_string(url));
  lua_getfield(L, 1, "method");
  json_object_set_new(req, "method", json_string(luaL_optstring(L, -1, "GET")));
  lua_getfield(L, 1, "timeout");
  lua_Number tmo = luaL_optnumber(L, -1, 10);
  if (!(tmo > 0 && tmo <= 3600)) {   /* also NaN: the product below must fit */
    json_decref(req);
    return luaL_error(L, "http: timeout must be more than 0 and at most 3600 seconds");
  }
  json_object_set_new(req, "timeout_ms", json_integer((json_int_t)(tmo * 1000)));
  lua_getfield(L, 1, "body");
  if (lua_isstring(L, -1)) json_object_set_new(req, "body", json_string(lua_tostring(L, -1)));
  lua_getfield(L, 1, "json");
  if (!lua_isnil(L, -1)) {
    char err[256];
    json_t *j = rt_lvm_to_json(L, -1, "json", err, sizeof err);
    if (!j) { json_decref(req); return luaL_error(L, "http: %s", err); }
    char *s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
    json_object_set_new(req, "body", json_string(s));
    json_object_set_new(req, "content_type", json_string("application/json"));
    free(s);
    json_decref(j);
  }
  lua_getfield(L, 1, "headers");
  if (lua_istable(L, -1)) {
    if (rt_lfreeze_contents(L, -1)) lua_replace(L, -2);   /* a module-level table */
    json_t *h = json_array();
    lua_pushnil(L);
    while (lua_next(L, -2)) {
      if (lua_type(L, -2) == LUA_TSTRING && lua_isstring(L, -1))
        json_array_append_new(h, json_sprintf("%s: %s", lua_tostring(L, -2), lua_tostring(L, -1)));
      lua_pop(L, 1);
    }
    json_object_set_new(req, "headers", h);
  }
  lua_settop(L, 1);
  if (!rt_lvm_turn_http_ok(t)) {
    json_decref(req);
    lua_pushnil(L);
    lua_pushliteral(L, "limit");
    lua_pushliteral(L, "too many http calls in one step (limits.http_requests_per_step)");
    return 3;
  }
  const rt_host *h = rt_lvm_host(L);
  int rc = h && h->http ? h->http(h->ud, t, req) : RT_EINVAL;
  json_decref(req);
  if (rc != RT_OK) {
    lua_pushnil(L);
    lua_pushliteral(L, "network");
    lua_pushliteral(L, "request could not be started");
    return 3;
  }
  return lua_yieldk(L, 0, 0, http_k);
}

static int l_http_get(lua_State *L) {
  const char *url = luaL_checkstring(L, 1);
  lua_createtable(L, 0, 3);
  lua_pushstring(L, url);
  lua_setfield(L, -2, "url");
  lua_pushliteral(L, "GET");
  lua_setfield(L, -2, "method");
  if (lua_istable(L, 2)) {
    lua_getfield(L, 2, "headers");
    lua_setfield(L, -2, "headers");
    lua_getfield(L, 2, "timeout");
    lua_setfield(L, -2, "timeout");
  }
  lua_replace(L, 1);
  lua_settop(L, 1);
  return l_http_request(L);
}

/* http.post(url, table_or_string, opts) */
static int l_http_post(lua_State *L) {
  const char *url = luaL_checkstring(L, 1);
  lua_createtable(L, 0, 4);
  lua_pushstring(L, url);
  lua_setfield(L, -2, "url");
  lua_pushliteral(L, "POST");
  lua_setfield(L, -2, "method");
  lua_pushvalue(L, 2);
  lua_setfield(L, -2, lua_type(L, 2) == LUA_TSTRING ? "body" : "json");
  if (lua_istable(L, 3)) {
    lua_getfield(L, 3, "headers");
    lua_setfield(L, -2, "headers");
    lua_getfield(L, 3, "timeout");
    lua_setfield(L, -2, "timeout");
  }
  lua_replace(L, 1);
  lua_settop(L, 1);
  return l_http_request(L);
}

static const luaL_Reg http_funcs[] = {
  {"request", l_http_request},
  {"get", l_http_get},
  {"post", l_http_post},
  {NULL, NULL},
};

int rt_luaopen_http(lua_State *L) {
  luaL_newlib(L, http_funcs);
  return 1;
}
