/* lapi_text.c -- the text helpers as a Lua table (see text.h).
 *
 * rt_luaopen_text pushes a fresh table; the host decides under which name a
 * flow sees it. Only argument misuse raises (luaL_argerror); every text in
 * gets an answer, possibly nil; an unknown zone name is Moscow, as in C (it
 * often comes from customer data, not from the flow's author). C strings end at the first NUL, so a Lua
 * string with embedded zeros is read up to it (norm reads all of it).
 *
 * Every call charges the step's instruction budget for the bytes it reads
 * (rt_lvm_charge, before the work): about one unit per byte for the linear
 * scanners, four for intents and dates, whose patterns and rules look at a
 * byte several times. So a flow that calls these on a long text in a loop
 * runs out of budget, and the step timeout is checked on every call, instead
 * of the loop stalling with the instruction count barely moving. */
#include "text.h"
#include "lvm.h"
#include "rt.h"
#include <lauxlib.h>
#include <lua.h>
#include <stdlib.h>
#include <string.h>

#define CARS_MAX 16
#define COST_SCAN 1     /* budget units per byte read */
#define COST_RULES 4

/* The string argument at idx, its budget paid. */
static const char *paid(lua_State *L, int idx, size_t *n, int64_t per_byte) {
  size_t len;
  const char *s = luaL_checklstring(L, idx, &len);
  rt_lvm_charge(L, (int64_t)len * per_byte + 1);
  if (n) *n = len;
  return s;
}

static int l_norm(lua_State *L) {
  size_t n;
  const char *s = paid(L, 1, &n, COST_SCAN);
  /* the normal form never grows, so it is built straight in a Lua buffer and
   * nothing leaks if Lua runs out of memory */
  luaL_Buffer b;
  char *out = luaL_buffinitsize(L, &b, n + 1);
  size_t len = rt_text_norm_buf(s, n, out);
  luaL_pushresultsize(&b, len);
  return 1;
}

static int l_plain(lua_State *L) {
  size_t n;
  const char *s = paid(L, 1, &n, COST_SCAN);
  luaL_Buffer b;
  char *out = luaL_buffinitsize(L, &b, n + 1);  /* never grows, as norm */
  size_t len = rt_text_plain_buf(s, n, out);
  luaL_pushresultsize(&b, len);
  return 1;
}

static int l_head(lua_State *L) {
  size_t n;
  const char *s = paid(L, 1, &n, COST_SCAN);
  lua_Integer max = luaL_checkinteger(L, 2);
  luaL_argcheck(L, max >= 0, 2, "must be 0 or more characters");
  bool cut;
  size_t len = rt_text_head(s, n, (size_t)max, &cut);
  if (cut) lua_pushlstring(L, s, len);
  else lua_pushvalue(L, 1);
  lua_pushboolean(L, cut);
  return 2;
}

static int l_letters(lua_State *L) {
  size_t n;
  const char *s = paid(L, 1, &n, COST_SCAN);
  lua_pushinteger(L, (lua_Integer)rt_text_letters(s, n));
  return 1;
}

static int l_plate(lua_State *L) {
  const char *s = paid(L, 1, NULL, COST_SCAN);
  char out[16];
  if (rt_text_plate(s, lua_toboolean(L, 2), out)) lua_pushstring(L, out);
  else lua_pushnil(L);
  return 1;
}

static void push_car(lua_State *L, const rt_text_car *c) {
  lua_createtable(L, 0, 4);
  lua_pushstring(L, c->kind == 'v' ? "vin" : "frame");
  lua_setfield(L, -2, "kind");
  lua_pushstring(L, c->value);
  lua_setfield(L, -2, "value");
  lua_pushboolean(L, c->check_ok);
  lua_setfield(L, -2, "check_ok");
  lua_pushboolean(L, c->north_american);
  lua_setfield(L, -2, "north_american");
  lua_pushboolean(L, c->typo);
  lua_setfield(L, -2, "typo");
}

/* The vocabulary's frame model codes (none without a vocabulary). */
static int cars_of(lua_State *L, const char *s, rt_text_car *out, int max) {
  size_t nm;
  const char *const *models = rt_text_vocab_models(rt_lapi_text_vocab(L), &nm);
  return rt_text_cars_models(s, out, max, models, nm);
}

static int l_cars(lua_State *L) {
  const char *s = paid(L, 1, NULL, COST_SCAN);
  rt_text_car cars[CARS_MAX];
  int n = cars_of(L, s, cars, CARS_MAX);
  lua_createtable(L, n, 0);
  for (int i = 0; i < n; i++) {
    push_car(L, &cars[i]);
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}

static int l_car(lua_State *L) {
  const char *s = paid(L, 1, NULL, COST_SCAN);
  rt_text_car car;
  if (cars_of(L, s, &car, 1) == 1) push_car(L, &car);
  else lua_pushnil(L);
  return 1;
}

static int l_vin(lua_State *L) {
  char out[18];
  if (rt_text_vin(paid(L, 1, NULL, COST_SCAN), out)) lua_pushstring(L, out);
  else lua_pushnil(L);
  return 1;
}

static int l_frame(lua_State *L) {
  const char *s = paid(L, 1, NULL, COST_SCAN);
  rt_text_car cars[CARS_MAX];
  int n = cars_of(L, s, cars, CARS_MAX);
  for (int i = 0; i < n; i++) {
    if (cars[i].kind == 'f') {
      lua_pushstring(L, cars[i].value);
      return 1;
    }
  }
  lua_pushnil(L);
  return 1;
}

static int l_phone(lua_State *L) {
  char out[20];
  if (rt_text_phone(paid(L, 1, NULL, COST_SCAN), out)) lua_pushstring(L, out);
  else lua_pushnil(L);
  return 1;
}

static int l_phones(lua_State *L) {
  char out[8][20];
  int n = rt_text_phones(paid(L, 1, NULL, COST_SCAN), out, 8);
  lua_createtable(L, n, 0);
  for (int i = 0; i < n; i++) {
    lua_pushstring(L, out[i]);
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}

/* opts = {payday = {5, 20}, hour = 10, new_year_until = 8}; every field
 * optional. */
static void read_opts(lua_State *L, int idx, rt_text_date_opts *o) {
  if (lua_isnoneornil(L, idx)) return;
  luaL_checktype(L, idx, LUA_TTABLE);
  int t = lua_getfield(L, idx, "hour");
  if (t != LUA_TNIL) {
    int ok;
    lua_Integer h = lua_tointegerx(L, -1, &ok);
    if (!ok || h < 0 || h > 23) luaL_argerror(L, idx, "opts.hour must be an integer 0-23");
    o->default_hour = (int)h;
  }
  lua_pop(L, 1);
  t = lua_getfield(L, idx, "new_year_until");
  if (t != LUA_TNIL) {
    int ok;
    lua_Integer d = lua_tointegerx(L, -1, &ok);
    if (!ok || d < 1 || d > 31) luaL_argerror(L, idx, "opts.new_year_until must be 1-31");
    o->newyear_last = (int)d;
  }
  lua_pop(L, 1);
  t = lua_getfield(L, idx, "payday");
  if (t != LUA_TNIL) {
    if (t != LUA_TTABLE) luaL_argerror(L, idx, "opts.payday must be a list of days");
    lua_Integer n = luaL_len(L, -1);
    if (n < 1 || n > 4) luaL_argerror(L, idx, "opts.payday must list 1 to 4 days");
    memset(o->payday, 0, sizeof o->payday);
    for (lua_Integer i = 1; i <= n; i++) {
      int ok;
      lua_geti(L, -1, i);
      lua_Integer d = lua_tointegerx(L, -1, &ok);
      if (!ok || d < 1 || d > 31) luaL_argerror(L, idx, "opts.payday days must be 1-31");
      o->payday[i - 1] = (int)d;
      lua_pop(L, 1);
    }
  }
  lua_pop(L, 1);
}

static int l_date(lua_State *L) {
  const char *s = paid(L, 1, NULL, COST_RULES);
  lua_Integer now = luaL_checkinteger(L, 2);
  const char *tz = luaL_optstring(L, 3, NULL);
  rt_text_date_opts o = RT_TEXT_DATE_OPTS_DEFAULT;
  read_opts(L, 4, &o);
  rt_text_date_res r;
  if (!rt_text_date(s, (int64_t)now, tz, &o, &r)) {
    lua_pushnil(L);
    return 1;
  }
  lua_pushinteger(L, (lua_Integer)r.at);
  lua_pushstring(L, r.kind);
  lua_pushstring(L, r.matched);
  return 3;
}

/* ---- the vocabulary --------------------------------------------------- */

#define VOCAB_KEY "rt.text.vocab"
#define VOCAB_MT "rt.text.vocab.mt"

static int vocab_gc(lua_State *L) {
  rt_text_vocab **box = luaL_checkudata(L, 1, VOCAB_MT);
  rt_text_vocab_free(*box);
  *box = NULL;
  return 0;
}

/* The bundle's vocabulary; NULL when the flows never built one (then no
 * intent is read: a shop without words understands none). */
rt_text_vocab *rt_lapi_text_vocab(lua_State *L) {
  lua_getfield(L, LUA_REGISTRYINDEX, VOCAB_KEY);
  rt_text_vocab **box = lua_touserdata(L, -1);
  lua_pop(L, 1);
  return box ? *box : NULL;
}

/* One class: spec[name] is a list of pattern strings. */
static void vocab_class(lua_State *L, rt_text_vocab *v, const char *name, int list) {
  if (!lua_istable(L, list))
    luaL_error(L, "text.vocab: %s must be a list of patterns", name);
  lua_Integer n = luaL_len(L, list);
  for (lua_Integer i = 1; i <= n; i++) {
    lua_geti(L, list, i);
    if (lua_type(L, -1) != LUA_TSTRING)
      luaL_error(L, "text.vocab: %s[%d] is not a string", name, (int)i);
    const char *pat = lua_tostring(L, -1);
    char *err;
    if (rt_text_vocab_add(v, name, pat, &err) != RT_OK) {
      luaL_where(L, 1);
      lua_pushfstring(L, "text.vocab: %s[%d] «%s»: %s", name, (int)i, pat, err);
      lua_concat(L, 2);
      free(err);
      lua_error(L);
    }
    lua_pop(L, 1);
  }
}

/* text.vocab{class = {pattern, ...}, ..., models = {"GX110", ...}}: builds
 * the vocabulary and makes it the one text.is/intent/cars read. Called at a
 * lib module's top level, so a broken pattern fails the load (or the
 * reload, and the old flows keep serving) with its file and line. */
static int l_vocab(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  rt_lvm_charge(L, 100000);   /* compiling is a one-off, but not free */
  rt_text_vocab **box = lua_newuserdatauv(L, sizeof *box, 0);
  *box = NULL;
  if (luaL_newmetatable(L, VOCAB_MT)) {
    lua_pushcfunction(L, vocab_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_setmetatable(L, -2);
  int ud = lua_gettop(L);
  *box = rt_text_vocab_new();
  lua_pushnil(L);
  while (lua_next(L, 1)) {
    if (lua_type(L, -2) != LUA_TSTRING) luaL_error(L, "text.vocab: keys must be class names");
    const char *name = lua_tostring(L, -2);
    if (!strcmp(name, "models")) {
      if (!lua_istable(L, -1)) luaL_error(L, "text.vocab: models must be a list of codes");
      lua_Integer n = luaL_len(L, -1);
      for (lua_Integer i = 1; i <= n; i++) {
        lua_geti(L, -1, i);
        const char *code = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
        if (!code || rt_text_vocab_model(*box, code) != RT_OK)
          luaL_error(L, "text.vocab: models[%d] «%s»: a model code is 2-8 letters and digits",
                     (int)i, code ? code : "?");
        lua_pop(L, 1);
      }
    } else {
      vocab_class(L, *box, name, lua_gettop(L));
    }
    lua_pop(L, 1);
  }
  char *err;
  if (rt_text_vocab_build(*box, &err) != RT_OK) {
    luaL_where(L, 1);
    lua_pushfstring(L, "text.vocab: %s", err);
    lua_concat(L, 2);
    free(err);
    lua_error(L);
  }
  lua_pushvalue(L, ud);
  lua_setfield(L, LUA_REGISTRYINDEX, VOCAB_KEY);
  return 0;
}

static int l_ru(lua_State *L) {
  size_t n;
  const char *s = paid(L, 1, &n, COST_SCAN);
  luaL_Buffer b;
  char *norm = luaL_buffinitsize(L, &b, 3 * n + 2);
  size_t len = rt_text_norm_buf(s, n, norm);
  size_t out = rt_text_ru_buf(norm, len, norm + len + 1);
  memmove(norm, norm + len + 1, out);
  luaL_pushresultsize(&b, out);
  return 1;
}

static const char *const intent_order[] = {"stop", "later", "declined", "problem", "need",
                                           "done", "no", "yes", "thanks"};

static int l_intent(lua_State *L) {
  const char *s = paid(L, 1, NULL, COST_RULES);
  unsigned bits = rt_text_vocab_intents(rt_lapi_text_vocab(L), s);
  const char *primary = NULL;
  lua_pushnil(L); /* replaced below */
  lua_createtable(L, 0, 4);
  for (size_t i = 0; i < RT_ARRAY_LEN(intent_order); i++) {
    if (!(bits & rt_text_intent_bit(intent_order[i]))) continue;
    if (!primary) primary = intent_order[i];
    lua_pushboolean(L, 1);
    lua_setfield(L, -2, intent_order[i]);
  }
  if (primary) {
    lua_pushstring(L, primary);
    lua_replace(L, -3);
  }
  return 2;
}

/* text.is(s, name): an intent, or any class of the vocabulary by name. */
static int l_is(lua_State *L) {
  const char *s = paid(L, 1, NULL, COST_RULES);
  const char *name = luaL_checkstring(L, 2);
  rt_text_vocab *v = rt_lapi_text_vocab(L);
  unsigned bit = rt_text_intent_bit(name);
  if (bit) lua_pushboolean(L, rt_text_vocab_is(v, s, bit));
  else if (rt_text_vocab_has(v, name)) lua_pushboolean(L, rt_text_vocab_match(v, s, name));
  else return luaL_argerror(L, 2, lua_pushfstring(L, "unknown intent or word class '%s'", name));
  return 1;
}

static const luaL_Reg text_funcs[] = {
  {"norm", l_norm},       {"plain", l_plain}, {"head", l_head},     {"letters", l_letters},
  {"plate", l_plate},     {"cars", l_cars},   {"car", l_car},       {"vin", l_vin},
  {"frame", l_frame},     {"phone", l_phone}, {"date", l_date},     {"intent", l_intent},
  {"is", l_is},           {"vocab", l_vocab}, {"ru", l_ru},  {"phones", l_phones},
  {NULL, NULL},
};

int rt_luaopen_text(lua_State *L) {
  luaL_newlib(L, text_funcs);
  return 1;
}
