/* lapi_http.c -- http.get / http.post / http.request for flows.
 *
 * The OpenResty cosocket shape: check we are inside a step, validate
 * arguments, start the request on the HTTP client the bundle was lent
 * (curl multi on the loop, http_client.h) with typed options, register the
 * turn's release hook, yield; the continuation turns the answer into
 * (resp) or (nil, err, detail). Other conversations go on while this one
 * waits. A turn that dies first cancels the request through the hook. */
#include "lapi.h"
#include "http_client.h"
#include "lconv.h"
#include "lfreeze.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_HEADERS 32

/* One request of a turn, owned by the turn's release hook. */
typedef struct {
  rt_lturn *t;
  rt_http_req *req;          /* NULL once answered */
  bool answered;
  int err, status;
  char *body;                /* owned, taken from the response */
  size_t body_len;
  char errmsg[256];
} hcall;

static void hcall_release(void *ud) {
  hcall *c = ud;
  if (c->req) rt_http_cancel(c->req);
  free(c->body);
  free(c);
}

static void hcall_done(rt_http_resp *r, void *ud) {
  hcall *c = ud;
  c->req = NULL;
  c->answered = true;
  c->err = r->err;
  c->status = r->status;
  snprintf(c->errmsg, sizeof c->errmsg, "%s", r->errmsg);
  if (r->err == RT_OK) {
    c->body = r->body;
    c->body_len = r->body_len;
    r->body = NULL;
  }
  rt_lvm_turn_ready(c->t);
}

/* Continuation: [-0, +1..3] */
static int http_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  hcall *c = (hcall *)(intptr_t)ctx;
  if (!c->answered) {
    lua_pushnil(L);
    lua_pushliteral(L, "internal");
    lua_pushliteral(L, "no result");
    return 3;
  }
  if (c->err != RT_OK) {
    lua_pushnil(L);
    lua_pushstring(L, c->err == RT_ETIMEOUT ? "timeout" : c->err == RT_ELIMIT ? "too-large"
                                                                              : "network");
    lua_pushstring(L, c->errmsg);
    return 3;
  }
  lua_createtable(L, 0, 3);
  lua_pushinteger(L, c->status);
  lua_setfield(L, -2, "status");
  lua_pushlstring(L, c->body ? c->body : "", c->body ? c->body_len : 0);
  lua_setfield(L, -2, "body");
  if (c->body && rt_lconv_decode(L, c->body, c->body_len, NULL) == 0) lua_setfield(L, -2, "json");
  return 1;
}

static void free_headers(char **h, size_t n) {
  for (size_t i = 0; i < n; i++) free(h[i]);
}

/* http.request{method=, url=, body= (string) | json= (table), headers=, timeout= (s)} */
static int l_http_request(lua_State *L) {
  rt_lturn *t = rt_lvm_turn(L);
  if (!t) return luaL_error(L, "http is only available inside a step, not at load time");
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  lua_getfield(L, 1, "url");                                   /* 2 */
  const char *url = luaL_checkstring(L, 2);
  if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0)
    return luaL_error(L, "http: url must start with http:// or https://");
  lua_getfield(L, 1, "method");                                /* 3 */
  const char *method = luaL_optstring(L, 3, "GET");
  lua_getfield(L, 1, "timeout");                               /* 4 */
  lua_Number tmo = luaL_optnumber(L, 4, 10);
  if (!(tmo > 0 && tmo <= 3600))   /* also NaN: the product below must fit */
    return luaL_error(L, "http: timeout must be more than 0 and at most 3600 seconds");
  size_t body_len = 0;
  const char *body = NULL;
  bool is_json = false;
  lua_getfield(L, 1, "body");                                  /* 5 */
  if (lua_isstring(L, 5)) body = lua_tolstring(L, 5, &body_len);
  lua_getfield(L, 1, "json");                                  /* 6 */
  if (!lua_isnil(L, 6)) {
    char err[256];
    rt_buf jb = RT_BUF_INIT;
    rt_lconv_lim lim = {.root = "json", .cap = rt_lvm_mem_limit(L)};
    if (rt_lconv_encode(L, 6, &jb, &lim, err, sizeof err) != 0) {
      rt_buf_free(&jb);
      return luaL_error(L, "http: %s", err);
    }
    lua_pushlstring(L, rt_buf_str(&jb), jb.len);               /* 7: kept alive on the stack */
    rt_buf_free(&jb);
    body = lua_tolstring(L, 7, &body_len);
    is_json = true;
  } else {
    lua_pushnil(L);                                            /* 7 */
  }
  char *hdrs[MAX_HEADERS + 2];
  size_t nh = 0;
  lua_getfield(L, 1, "headers");                               /* 8 */
  if (lua_istable(L, 8)) {
    if (rt_lfreeze_contents(L, 8)) lua_replace(L, 8);   /* a module-level table */
    lua_pushnil(L);
    while (lua_next(L, 8)) {
      if (nh < MAX_HEADERS && lua_type(L, -2) == LUA_TSTRING && lua_isstring(L, -1)) {
        lua_pushvalue(L, -1);   /* tostring on a copy: never convert the key lua_next reads */
        hdrs[nh++] = rt_xasprintf("%s: %s", lua_tostring(L, -3), lua_tostring(L, -1));
        lua_pop(L, 1);
      }
      lua_pop(L, 1);
    }
  }
  if (is_json) hdrs[nh++] = rt_xstrdup("Content-Type: application/json");
  hdrs[nh] = NULL;
  if (!rt_lvm_turn_http_ok(t)) {
    free_headers(hdrs, nh);
    lua_pushnil(L);
    lua_pushliteral(L, "limit");
    lua_pushliteral(L, "too many http calls in one step (limits.http_requests_per_step)");
    return 3;
  }
  rt_http *h = rt_lvm_opts(L)->http;
  hcall *c = rt_xcalloc(1, sizeof *c);
  c->t = t;
  rt_http_opts o = {
    .method = method, .url = url, .body = body, .body_len = body_len,
    .headers = (const char *const *)hdrs, .timeout_ms = (long)(tmo * 1000),
  };
  int rc = h ? rt_http_request(h, &o, hcall_done, c, &c->req) : RT_EINVAL;
  free_headers(hdrs, nh);
  if (rc != RT_OK) {
    free(c);
    lua_pushnil(L);
    lua_pushliteral(L, "network");
    lua_pushliteral(L, "request could not be started");
    return 3;
  }
  rt_lvm_turn_set_cancel(t, hcall_release, c);
  return lua_yieldk(L, 0, (lua_KContext)(intptr_t)c, http_k);
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
