/* lapi_host.c -- the C helpers only host.lua sees (not flow code):
 * now, duration, customer. [-0, +1] each. */
#include "lapi.h"
#include "config.h"
#include "buf.h"
#include "lconv.h"
#include <stdlib.h>
#include <string.h>

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

/* The customer record as the store hands it over (record.h), copied once
 * into one buffer and then set on a Lua table. Not pushed straight from
 * the sink: a Lua memory error there would leave the store's statement
 * half-read. */
typedef enum { CI_FIELD, CI_MAP, CI_ENTRY } ci_kind;
typedef struct {
  ci_kind kind;
  rt_rv v;                   /* v.s unused: the text is at val in the buffer */
  size_t key, val;           /* offsets into the buffer */
} cust_item;

typedef struct {
  cust_item first[16], *it;  /* it == first until more are needed */
  int n, cap;
  rt_buf b;
} cust_copy;

static size_t cust_str(cust_copy *c, const char *s, size_t n) {
  size_t off = c->b.len;
  rt_buf_add(&c->b, s, n);
  rt_buf_addc(&c->b, '\0');
  return off;
}

static cust_item *cust_add(cust_copy *c, ci_kind kind, const char *key) {
  if (c->n == c->cap) {
    c->cap *= 2;
    if (c->it == c->first) {
      c->it = rt_xmalloc((size_t)c->cap * sizeof *c->it);
      memcpy(c->it, c->first, sizeof c->first);
    } else {
      c->it = rt_xrealloc(c->it, (size_t)c->cap * sizeof *c->it);
    }
  }
  cust_item *i = &c->it[c->n++];
  *i = (cust_item){.kind = kind};
  i->key = cust_str(c, key, strlen(key));
  return i;
}

static void cust_field(void *ud, const char *name, const rt_rv *v) {
  cust_item *i = cust_add(ud, CI_FIELD, name);
  i->v = *v;
  if (v->type == RT_RV_TEXT) i->val = cust_str(ud, v->s, v->len);
}

static void cust_map(void *ud, const char *name) { cust_add(ud, CI_MAP, name); }

static void cust_entry(void *ud, const char *key, const char *value) {
  cust_item *i = cust_add(ud, CI_ENTRY, key);
  i->v.type = RT_RV_TEXT;
  i->v.len = strlen(value);
  i->val = cust_str(ud, value, i->v.len);
}

/* Sets the items on a new table: fields on it, entries on the map named
 * last. [-0, +1] */
static void cust_push(lua_State *L, const cust_copy *c) {
  lua_createtable(L, 0, c->n);
  int root = lua_gettop(L), map = 0;
  for (int k = 0; k < c->n; k++) {
    const cust_item *i = &c->it[k];
    const char *key = c->b.s + i->key;
    if (i->kind == CI_MAP) {
      lua_newtable(L);
      lua_pushvalue(L, -1);
      lua_setfield(L, root, key);
      if (map) lua_remove(L, map);
      map = lua_gettop(L);
      continue;
    }
    switch (i->v.type) {
    case RT_RV_INT: lua_pushinteger(L, (lua_Integer)i->v.i); break;
    case RT_RV_BOOL: lua_pushboolean(L, i->v.i != 0); break;
    case RT_RV_REAL: lua_pushnumber(L, (lua_Number)i->v.d); break;
    case RT_RV_TEXT: lua_pushlstring(L, c->b.s + i->val, i->v.len); break;
    }
    lua_setfield(L, i->kind == CI_ENTRY && map ? map : root, key);
  }
  if (map) lua_remove(L, map);
}

static void cust_free(cust_copy *c) {
  free(c->b.s);
  if (c->it != c->first) free(c->it);
}

/* customer.addresses, read from the store the first time a flow looks
 * (the metatable's __index; upvalue 1: the customer's phone): most steps
 * only greet the customer by name, and the addresses are a b-tree probe
 * of their own (bench_retention). Kept on the table once read; a store
 * error gives an empty map this time, and the next look tries again. */
static int l_cust_index(lua_State *L) {
  if (lua_type(L, 2) != LUA_TSTRING || strcmp(lua_tostring(L, 2), "addresses") != 0) return 0;
  const rt_host *h = rt_lvm_host(L);
  cust_copy c = {.n = 0, .cap = (int)RT_ARRAY_LEN(c.first), .b = RT_BUF_INIT};
  c.it = c.first;
  rt_record_sink k = {cust_field, cust_map, cust_entry, &c};
  int rc = h && h->customer_addresses
               ? h->customer_addresses(h->ud, lua_tostring(L, lua_upvalueindex(1)), &k)
               : RT_OK;
  cust_push(L, &c);   /* {addresses = {...}} */
  cust_free(&c);
  if (lua_getfield(L, -1, "addresses") != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_newtable(L);
  }
  if (rc == RT_OK) {
    lua_pushvalue(L, -1);
    lua_setfield(L, 1, "addresses");   /* a plain table: no __newindex */
  }
  return 1;
}

/* C.customer(phone, channel, chat) -> table or nil. */
static int l_host_customer(lua_State *L) {
  const rt_host *h = rt_lvm_host(L);
  if (!h || !h->customer) return 0;
  const char *phone = luaL_optstring(L, 1, NULL), *channel = luaL_optstring(L, 2, NULL),
             *chat = luaL_optstring(L, 3, NULL);
  cust_copy c = {.n = 0, .cap = (int)RT_ARRAY_LEN(c.first), .b = RT_BUF_INIT};
  c.it = c.first;
  /* No map_begin: the addresses wait for l_cust_index. */
  rt_record_sink k = {cust_field, NULL, NULL, &c};
  int found = h->customer(h->ud, phone, channel, chat, &k) == 1;
  /* A Lua memory error inside cust_push leaks the copy (a few hundred
   * bytes, once per step that ran out of memory), as the jansson tree did
   * before. */
  if (found) {
    cust_push(L, &c);
    for (int i = 0; i < c.n; i++) {
      if (c.it[i].kind != CI_FIELD || c.it[i].v.type != RT_RV_TEXT ||
          strcmp(c.b.s + c.it[i].key, "phone") != 0)
        continue;
      lua_createtable(L, 0, 2);
      lua_pushlstring(L, c.b.s + c.it[i].val, c.it[i].v.len);
      lua_pushcclosure(L, l_cust_index, 1);
      lua_setfield(L, -2, "__index");
      lua_pushboolean(L, 0);   /* getmetatable sees false, not the reader */
      lua_setfield(L, -2, "__metatable");
      lua_setmetatable(L, -2);
      break;
    }
  }
  cust_free(&c);
  return found;
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
