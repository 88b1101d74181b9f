/* lfreeze.c -- module-level data of the flows is read-only after load (see
 * lfreeze.h). */
#include "lfreeze.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Registry and metatable keys: the addresses matter, not the values. */
static const char k_host = 'h';    /* set of host-owned tables */
static const char k_roots = 'r';   /* {value, file, value, file, ...} */
static const char k_mods = 'm';    /* {name, file, ...} */
static const char k_snap = 's';    /* {fn, upvalue index, value, ...} */
static const char k_fields = 'f';  /* {table, key, value, ...}: metamethod fields */
static const char k_hidden = 'H';  /* in a seal metatable: the contents */
static const char k_file = 'F';    /* in a seal metatable: the file, for messages */

/* The names Lua (and lauxlib) look up raw in a metatable; they stay in a
 * sealed table so it keeps working as a metatable itself. */
static bool meta_key(lua_State *L, int idx) {
  static const char *const names[] = {
    "__index", "__newindex", "__gc", "__mode", "__len", "__eq", "__add", "__sub", "__mul",
    "__mod", "__pow", "__div", "__idiv", "__band", "__bor", "__bxor", "__shl", "__shr",
    "__unm", "__bnot", "__lt", "__le", "__concat", "__call", "__close", "__tostring",
    "__name", "__pairs", "__metatable", NULL};
  if (lua_type(L, idx) != LUA_TSTRING) return false;
  const char *s = lua_tostring(L, idx);
  if (s[0] != '_' || s[1] != '_') return false;
  for (int i = 0; names[i]; i++)
    if (strcmp(s, names[i]) == 0) return true;
  return false;
}

int rt_lfreeze_contents(lua_State *L, int idx) {
  if (!lua_getmetatable(L, idx)) return 0;
  if (lua_rawgetp(L, -1, &k_hidden) == LUA_TTABLE) {
    lua_remove(L, -2);
    return 1;
  }
  lua_pop(L, 2);
  return 0;
}

/* ---- what flows call on sealed tables ---- */

static int l_next(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 2);
  if (rt_lfreeze_contents(L, 1)) lua_replace(L, 1);
  if (lua_next(L, 1)) return 2;
  lua_pushnil(L);
  return 1;
}

static int l_rawlen(lua_State *L) {
  int t = lua_type(L, 1);
  luaL_argexpected(L, t == LUA_TTABLE || t == LUA_TSTRING, 1, "table or string");
  if (t == LUA_TTABLE && rt_lfreeze_contents(L, 1)) lua_replace(L, 1);
  lua_pushinteger(L, (lua_Integer)lua_rawlen(L, 1));
  return 1;
}

/* __len and the pairs iterator hold the contents as an upvalue: # and a
 * pairs step then cost one C call, no metatable lookup. */
static int ro_len(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)lua_rawlen(L, lua_upvalueindex(1)));
  return 1;
}

static int ro_iter(lua_State *L) {
  lua_settop(L, 2);
  if (lua_next(L, lua_upvalueindex(1))) return 2;
  lua_pushnil(L);
  return 1;
}

/* The iterator is a closure, so the contents are never the loop's state
 * value a flow could get hold of (`local f, s = pairs(t)`). */
static int ro_pairs(lua_State *L) {
  if (!rt_lfreeze_contents(L, 1)) return luaL_error(L, "not a module-level table");
  lua_pushcclosure(L, ro_iter, 1);
  lua_pushvalue(L, 1);
  lua_pushnil(L);
  return 3;
}

static int ro_newindex(lua_State *L) {
  const char *file = "?";
  if (lua_getmetatable(L, 1) && lua_rawgetp(L, -1, &k_file) == LUA_TSTRING) file = lua_tostring(L, -1);
  char key[64];
  if (lua_type(L, 2) == LUA_TSTRING) snprintf(key, sizeof key, "'%s'", lua_tostring(L, 2));
  else if (lua_type(L, 2) == LUA_TNUMBER) snprintf(key, sizeof key, "[%s]", lua_tostring(L, 2));
  else snprintf(key, sizeof key, "a %s key", luaL_typename(L, 2));
  return luaL_error(L, "module-level table (%s) is read-only after load (setting %s): keep "
                       "per-conversation data in c.slots", file, key);
}

/* __index of a sealed table whose own metatable had an __index function:
 * the contents first, then that function with the table the flow used. */
static int ro_index_fn(lua_State *L) {
  lua_pushvalue(L, 2);
  if (lua_rawget(L, lua_upvalueindex(1)) != LUA_TNIL) return 1;
  lua_pop(L, 1);
  lua_pushvalue(L, lua_upvalueindex(2));
  lua_pushvalue(L, 1);
  lua_pushvalue(L, 2);
  lua_call(L, 2, 1);
  return 1;
}

void rt_lfreeze_open(lua_State *L) {
  lua_pushcfunction(L, l_next);
  lua_setglobal(L, "next");
  lua_pushcfunction(L, l_rawlen);
  lua_setglobal(L, "rawlen");
}

/* ---- registry lists ---- */

/* Pushes the registry list at key, made on first use. */
static void reg_list(lua_State *L, const void *key) {
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, key) == LUA_TTABLE) return;
  lua_pop(L, 1);
  lua_newtable(L);
  lua_pushvalue(L, -1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, key);
}

/* Appends the two values on top to the list below them. [-2, +0] */
static void append2(lua_State *L, int list) {
  lua_Integer n = (lua_Integer)lua_rawlen(L, list);
  lua_rawseti(L, list, n + 2);
  lua_rawseti(L, list, n + 1);
}

void rt_lfreeze_module(lua_State *L, const char *name, const char *file) {
  reg_list(L, &k_mods);
  lua_pushstring(L, name);
  lua_pushstring(L, file);
  append2(L, lua_gettop(L) - 2);
  lua_pop(L, 1);
}

void rt_lfreeze_root(lua_State *L, int idx, const char *file) {
  idx = lua_absindex(L, idx);
  reg_list(L, &k_roots);
  lua_pushvalue(L, idx);
  lua_pushstring(L, file);
  append2(L, lua_gettop(L) - 2);
  lua_pop(L, 1);
}

int rt_lfreeze_preload(lua_State *L) {
  reg_list(L, &k_mods);
  int mods = lua_gettop(L);
  lua_Integer n = (lua_Integer)lua_rawlen(L, mods);
  for (lua_Integer i = 1; i + 1 <= n; i += 2) {
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_rawgeti(L, mods, i);
    lua_call(L, 1, 1);
    lua_rawgeti(L, mods, i + 1);
    rt_lfreeze_root(L, -2, lua_tostring(L, -1));
    lua_pop(L, 2);
  }
  return 0;
}

/* ---- walking ---- */

/* A work list of {value, file} pairs in a Lua table, so deep data cannot
 * overflow the C stack. */
typedef struct {
  int list;
  lua_Integer n;
} work;

static void work_push(lua_State *L, work *w, int v, int file) {
  int t = lua_type(L, v);
  if (t != LUA_TTABLE && t != LUA_TFUNCTION && t != LUA_TUSERDATA && t != LUA_TTHREAD) return;
  lua_pushvalue(L, v);
  lua_rawseti(L, w->list, ++w->n);
  lua_pushvalue(L, file);
  lua_rawseti(L, w->list, ++w->n);
}

/* Pops the next pair onto the stack (value, file); false when empty. */
static bool work_pop(lua_State *L, work *w) {
  if (w->n == 0) return false;
  lua_rawgeti(L, w->list, w->n - 1);
  lua_rawgeti(L, w->list, w->n);
  lua_pushnil(L);
  lua_rawseti(L, w->list, w->n--);
  lua_pushnil(L);
  lua_rawseti(L, w->list, w->n--);
  return true;
}

/* true if v was in the set; adds it. */
static bool seen(lua_State *L, int set, int v) {
  lua_pushvalue(L, v);
  if (lua_rawget(L, set) != LUA_TNIL) {
    lua_pop(L, 1);
    return true;
  }
  lua_pop(L, 1);
  lua_pushvalue(L, v);
  lua_pushboolean(L, 1);
  lua_rawset(L, set);
  return false;
}

void rt_lfreeze_mark_host(lua_State *L) {
  luaL_checkstack(L, 12, "lfreeze");
  int top = lua_gettop(L);
  reg_list(L, &k_host);
  int host = top + 1;
  lua_newtable(L);
  work w = {lua_gettop(L), 0};
  lua_pushnil(L);   /* no file while marking */
  int nofile = lua_gettop(L);
  lua_pushvalue(L, LUA_REGISTRYINDEX);
  work_push(L, &w, -1, nofile);
  lua_pop(L, 1);
  lua_pushliteral(L, "");
  if (lua_getmetatable(L, -1)) work_push(L, &w, -1, nofile);
  lua_settop(L, nofile);
  while (work_pop(L, &w)) {
    int v = lua_gettop(L) - 1;
    if (!seen(L, host, v)) {
      if (lua_getmetatable(L, v)) {
        work_push(L, &w, -1, nofile);
        lua_pop(L, 1);
      }
      if (lua_type(L, v) == LUA_TTABLE) {
        lua_pushnil(L);
        while (lua_next(L, v)) {
          work_push(L, &w, -2, nofile);
          work_push(L, &w, -1, nofile);
          lua_pop(L, 1);
        }
      } else if (lua_type(L, v) == LUA_TFUNCTION) {
        for (int i = 1; lua_getupvalue(L, v, i); i++) {
          work_push(L, &w, -1, nofile);
          lua_pop(L, 1);
        }
      }
    }
    lua_settop(L, nofile);
  }
  lua_settop(L, top);
}

typedef struct {
  int host, seen, snap, fields, ids;
  int written;          /* set of upvalue ids some flow code may assign */
  bool all;             /* a function could not be read, or a coroutine is
                         * reachable: check every upvalue */
  work w;
  int ntables, nvalues;
} sealer;

static void list_add3(lua_State *L, int list, int a, int b, int c) {
  lua_Integer n = (lua_Integer)lua_rawlen(L, list);
  lua_pushvalue(L, a);
  lua_rawseti(L, list, n + 1);
  lua_pushvalue(L, b);
  lua_rawseti(L, list, n + 2);
  lua_pushvalue(L, c);
  lua_rawseti(L, list, n + 3);
}

/* Seals table t (absolute index) in place; file at index file. */
static void seal_table(lua_State *L, sealer *s, int t, int file) {
  int top = lua_gettop(L);
  lua_createtable(L, (int)lua_rawlen(L, t), 0);
  int h = lua_gettop(L);
  lua_pushnil(L);
  while (lua_next(L, t)) {
    if (meta_key(L, -2)) {
      /* kept raw, and watched: a step must not change it either */
      list_add3(L, s->fields, t, -2, -1);
      s->nvalues++;
      lua_pop(L, 1);
      continue;
    }
    lua_pushvalue(L, -2);
    lua_insert(L, -2);
    lua_rawset(L, h);
    lua_pushvalue(L, -1);
    lua_pushnil(L);
    lua_rawset(L, t);   /* clearing a field while traversing is allowed */
  }
  int m0 = 0;
  if (lua_getmetatable(L, t)) m0 = lua_gettop(L);
  lua_createtable(L, 0, 8);
  int mt = lua_gettop(L);
  if (m0) {
    /* The flow's own metamethods stay in effect (__call, __tostring, ...). */
    lua_pushnil(L);
    while (lua_next(L, m0)) {
      if (meta_key(L, -2) && strcmp(lua_tostring(L, -2), "__gc") != 0) {
        lua_pushvalue(L, -2);
        lua_insert(L, -2);
        lua_rawset(L, mt);
      } else {
        lua_pop(L, 1);
      }
    }
  }
  /* The flow's __index (a parent class, a default) still answers what the
   * contents do not have; the contents' own metatable keeps __mode too. */
  int ti = LUA_TNIL, mode = LUA_TNIL;
  if (m0) {
    lua_pushliteral(L, "__index");
    ti = lua_rawget(L, m0);
    lua_pushliteral(L, "__mode");
    mode = lua_rawget(L, m0);
  } else {
    lua_pushnil(L);
    lua_pushnil(L);
  }
  /* stack: ... h [m0] mt index mode */
  if (ti == LUA_TTABLE || mode != LUA_TNIL) {
    lua_createtable(L, 0, 2);   /* the contents' own metatable */
    if (ti == LUA_TTABLE) {
      lua_pushvalue(L, -3);
      lua_setfield(L, -2, "__index");
    }
    if (mode != LUA_TNIL) {
      lua_pushvalue(L, -2);
      lua_setfield(L, -2, "__mode");
    }
    lua_setmetatable(L, h);
  }
  lua_pop(L, 1);   /* mode */
  if (ti != LUA_TNIL && ti != LUA_TTABLE) {
    lua_pushvalue(L, h);
    lua_insert(L, -2);
    lua_pushcclosure(L, ro_index_fn, 2);
  } else {
    lua_pop(L, 1);
    lua_pushvalue(L, h);
  }
  lua_setfield(L, mt, "__index");
  lua_pushcfunction(L, ro_newindex);
  lua_setfield(L, mt, "__newindex");
  if (lua_getfield(L, mt, "__len") == LUA_TNIL) {
    lua_pushvalue(L, h);
    lua_pushcclosure(L, ro_len, 1);
    lua_setfield(L, mt, "__len");
  }
  if (lua_getfield(L, mt, "__pairs") == LUA_TNIL) {
    lua_pushcfunction(L, ro_pairs);
    lua_setfield(L, mt, "__pairs");
  }
  lua_pop(L, 2);
  /* getmetatable keeps answering what it did; nobody can swap the proxy's */
  if (m0) {
    lua_pushliteral(L, "__metatable");
    if (lua_rawget(L, m0) == LUA_TNIL) {
      lua_pop(L, 1);
      lua_pushvalue(L, m0);
    }
  } else {
    lua_pushboolean(L, 0);
  }
  lua_setfield(L, mt, "__metatable");
  lua_pushvalue(L, h);
  lua_rawsetp(L, mt, &k_hidden);
  lua_pushvalue(L, file);
  lua_rawsetp(L, mt, &k_file);
  lua_setmetatable(L, t);
  lua_settop(L, top);
  s->ntables++;
}

/* Lua functions from flow files ("@flows/x.lua", "@lib/y.lua"); host.lua
 * is "=host". Pushes the file name and returns true for those. */
static bool flow_function(lua_State *L, int f) {
  if (lua_iscfunction(L, f)) return false;
  lua_Debug ar;
  lua_pushvalue(L, f);
  if (!lua_getinfo(L, ">S", &ar) || ar.source[0] != '@') return false;
  lua_pushstring(L, ar.source + 1);
  return true;
}

/* ---- which upvalues flow code can assign ----
 *
 * After load, a module-level local changes only through a SETUPVAL that
 * some flow function executes: flows have no debug library, no load and no
 * string.dump (host.lua), and a function made during a step is a nested
 * prototype of a function reachable now. So the functions reachable at
 * seal are read once, as lua_dump writes them (Lua 5.4's binary chunk,
 * ldump.c), and only the upvalues that their code or the code nested in
 * them may assign are checked after each step; the others cannot change.
 * Each reader is checked against chunks of known shape first
 * (writer_selftest); if Lua writes another format, any function cannot be
 * read to its end, or a coroutine is reachable (seal_one), every upvalue is
 * checked as before. */

#define OP_SETUPVAL 10        /* lopcodes.h of Lua 5.4: UpValue[B] := R[A] */
#define MAX_PROTO_DEPTH 200   /* the parser's own limit on nesting */

typedef struct {
  const unsigned char *p, *end;
  bool bad;
} chunk;

typedef struct {
  unsigned char *s;
  size_t n, cap;
} dumpbuf;

static int dump_writer(lua_State *L, const void *p, size_t sz, void *ud) {
  (void)L;
  dumpbuf *d = ud;
  if (d->n + sz > d->cap) {
    size_t cap = d->cap ? d->cap : 1024;
    while (cap < d->n + sz) cap *= 2;
    unsigned char *ns = realloc(d->s, cap);
    if (!ns) return 1;
    d->s = ns;
    d->cap = cap;
  }
  memcpy(d->s + d->n, p, sz);
  d->n += sz;
  return 0;
}

static unsigned byte_of(chunk *c) {
  if (c->p >= c->end) { c->bad = true; return 0; }
  return *c->p++;
}

/* lundump.c's loadUnsigned: 7 bits a byte, most significant first, the
 * last byte with its high bit set. */
static size_t size_of(chunk *c) {
  size_t x = 0;
  for (int i = 0; i < 10; i++) {
    unsigned b = byte_of(c);
    if (c->bad) return 0;
    x = (x << 7) | (b & 0x7f);
    if (b & 0x80) return x;
  }
  c->bad = true;
  return 0;
}

static void skip(chunk *c, size_t n) {
  if ((size_t)(c->end - c->p) < n) { c->bad = true; c->p = c->end; return; }
  c->p += n;
}

static void skip_string(chunk *c) {
  size_t n = size_of(c);
  if (n) skip(c, n - 1);
}

/* One function of the chunk: sets w[u] for each of its upvalues u (from
 * 0) that it or a function nested in it may assign, and gives its upvalue
 * descriptors (instack, idx), which tell its parent what they are. */
typedef struct { unsigned char instack, idx; } updesc;

static void read_proto(chunk *c, unsigned char *w, updesc *ups, size_t *nups, int depth) {
  *nups = 0;
  if (depth > MAX_PROTO_DEPTH) { c->bad = true; return; }
  skip_string(c);            /* source */
  size_of(c);                /* linedefined */
  size_of(c);                /* lastlinedefined */
  skip(c, 3);                /* numparams, is_vararg, maxstacksize */
  size_t ncode = size_of(c);
  if (c->bad || ncode > (size_t)(c->end - c->p) / 4) { c->bad = true; return; }
  for (size_t i = 0; i < ncode; i++) {
    uint32_t ins;
    memcpy(&ins, c->p + 4 * i, 4);
    if ((ins & 0x7f) == OP_SETUPVAL) w[(ins >> 16) & 0xff] = 1;
  }
  skip(c, 4 * ncode);
  size_t nk = size_of(c);
  for (size_t i = 0; i < nk && !c->bad; i++) {
    switch (byte_of(c)) {
    case 0: case 1: case 17: break;          /* nil, false, true */
    case 3: case 19: skip(c, 8); break;      /* integer, float */
    case 4: case 20: skip_string(c); break;  /* short and long strings */
    default: c->bad = true;
    }
  }
  size_t nup = size_of(c);
  if (nup > 256) { c->bad = true; return; }
  for (size_t u = 0; u < nup && !c->bad; u++) {
    ups[u].instack = (unsigned char)byte_of(c);
    ups[u].idx = (unsigned char)byte_of(c);
    byte_of(c);              /* kind */
  }
  *nups = nup;
  size_t np = size_of(c);
  for (size_t i = 0; i < np && !c->bad; i++) {
    /* What a nested function assigns of its upvalues is ours when the
     * upvalue is ours (instack 0: our upvalue idx); instack 1 is a local
     * of ours, made per call: not module state. */
    unsigned char sub[256] = {0};
    updesc subups[256];
    size_t nsub = 0;
    read_proto(c, sub, subups, &nsub, depth + 1);
    for (size_t u = 0; u < nsub && !c->bad; u++)
      if (sub[u] && !subups[u].instack) w[subups[u].idx] = 1;
  }
  size_t n = size_of(c);     /* lineinfo */
  skip(c, n);
  n = size_of(c);            /* abslineinfo: pc, line */
  for (size_t i = 0; i < n && !c->bad; i++) { size_of(c); size_of(c); }
  n = size_of(c);            /* locvars: name, startpc, endpc */
  for (size_t i = 0; i < n && !c->bad; i++) { skip_string(c); size_of(c); size_of(c); }
  n = size_of(c);            /* upvalue names */
  for (size_t i = 0; i < n && !c->bad; i++) skip_string(c);
}

/* The upvalues of the Lua function at idx that its code (or code nested in
 * it) may assign, as bits w[0..255] for upvalues 1..256. False when its
 * chunk cannot be read to its end. */
static bool function_writes(lua_State *L, int idx, unsigned char *w) {
  static const unsigned char head[] = {0x1b, 'L', 'u', 'a', 0x54, 0,
                                       0x19, 0x93, '\r', '\n', 0x1a, '\n', 4,
                                       sizeof(lua_Integer), sizeof(lua_Number)};
  memset(w, 0, 256);
  dumpbuf d = {0};
  lua_pushvalue(L, idx);
  int rc = lua_dump(L, dump_writer, &d, 1);
  lua_pop(L, 1);
  bool ok = rc == 0 && d.n > sizeof head + 16 + 1 && memcmp(d.s, head, sizeof head) == 0;
  if (ok) {
    /* after the header: LUAC_INT and LUAC_NUM, then the upvalue count */
    chunk c = {d.s + sizeof head + sizeof(lua_Integer) + sizeof(lua_Number), d.s + d.n, false};
    byte_of(&c);
    updesc ups[256];
    size_t nups = 0;
    read_proto(&c, w, ups, &nups, 0);
    ok = !c.bad && c.p == c.end;
  }
  free(d.s);
  return ok;
}

/* The reader against chunks whose answer is known; false if this Lua
 * writes something else, and then no upvalue is left unchecked. The
 * chunks are compiled, never run: each is a main function whose one
 * upvalue is _ENV, assigned or not by its own code or by code nested in
 * it, through upvalues two deep or through locals (not its upvalue). */
static bool writer_selftest(lua_State *L) {
  static const struct { const char *src; bool assigned; } cases[] = {
    {"_ENV = nil", true},
    {"return _ENV", false},
    {"return function() return function() _ENV = nil end end", true},
    {"local a = 1 return function() a = 2 end", false},
    {"local t = {} return function() local y return function() y = t end end", false},
  };
  int top = lua_gettop(L);
  bool ok = true;
  for (size_t i = 0; i < sizeof cases / sizeof cases[0] && ok; i++) {
    unsigned char w[256];
    ok = luaL_loadstring(L, cases[i].src) == LUA_OK && function_writes(L, -1, w) &&
         (w[0] != 0) == cases[i].assigned;
    lua_settop(L, top);
  }
  return ok;
}

static void seal_one(lua_State *L, sealer *s, int v, int file) {
  if (seen(L, s->seen, v)) return;
  if (lua_type(L, v) == LUA_TTABLE) {
    lua_pushvalue(L, v);
    bool host = lua_rawget(L, s->host) != LUA_TNIL;
    lua_pop(L, 1);
    if (host) return;
    if (lua_getmetatable(L, v)) {
      lua_pushvalue(L, -1);
      host = lua_rawget(L, s->host) != LUA_TNIL;   /* an environment, a library view */
      lua_pop(L, 1);
      if (!host) work_push(L, &s->w, -1, file);
      lua_pop(L, 1);
      if (host) return;
    }
    lua_pushnil(L);
    while (lua_next(L, v)) {
      work_push(L, &s->w, -2, file);
      work_push(L, &s->w, -1, file);
      lua_pop(L, 1);
    }
    seal_table(L, s, v, file);
  } else if (lua_type(L, v) == LUA_TTHREAD) {
    /* A coroutine suspended at seal may hold a file-top variable as an
     * open upvalue and change it by a plain register write, with no
     * SETUPVAL to read: then every variable is checked. Flows have no
     * coroutine library today, so this is for a host that one day lends
     * one. */
    s->all = true;
  } else if (lua_type(L, v) == LUA_TFUNCTION && flow_function(L, v)) {
    int src = lua_gettop(L);
    unsigned char w[256];
    if (!s->all && !function_writes(L, v, w)) s->all = true;
    for (int i = 1; lua_getupvalue(L, v, i); i++) {
      /* A cell this function's code may assign (a Lua function has at most
       * 255 upvalues, so w covers them all). */
      if (!s->all && i <= 256 && w[i - 1]) {
        lua_pushlightuserdata(L, lua_upvalueid(L, v, i));
        lua_pushboolean(L, 1);
        lua_rawset(L, s->written);
      }
      lua_pushlightuserdata(L, lua_upvalueid(L, v, i));
      if (lua_rawget(L, s->ids) == LUA_TNIL) {   /* shared upvalues once */
        lua_pushlightuserdata(L, lua_upvalueid(L, v, i));
        lua_pushboolean(L, 1);
        lua_rawset(L, s->ids);
        lua_pushinteger(L, i);
        list_add3(L, s->snap, v, -1, -3);
        lua_pop(L, 1);
        s->nvalues++;
      }
      lua_pop(L, 1);
      work_push(L, &s->w, -1, src);
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
  }
}

bool rt_lfreeze_seal(lua_State *L, int *ntables, int *nvalues, int *nchecked) {
  luaL_checkstack(L, 24, "lfreeze");
  int top = lua_gettop(L);
  sealer s = {0};
  s.all = !writer_selftest(L);
  lua_newtable(L);
  s.written = lua_gettop(L);
  reg_list(L, &k_host);
  s.host = lua_gettop(L);
  lua_newtable(L);
  s.seen = lua_gettop(L);
  lua_newtable(L);
  s.ids = lua_gettop(L);
  reg_list(L, &k_snap);
  s.snap = lua_gettop(L);
  reg_list(L, &k_fields);
  s.fields = lua_gettop(L);
  lua_newtable(L);
  s.w.list = lua_gettop(L);
  reg_list(L, &k_roots);
  int roots = lua_gettop(L);
  lua_Integer n = (lua_Integer)lua_rawlen(L, roots);
  for (lua_Integer i = 1; i + 1 <= n; i += 2) {
    lua_rawgeti(L, roots, i);
    lua_rawgeti(L, roots, i + 1);
    work_push(L, &s.w, -2, -1);
    lua_pop(L, 2);
  }
  int base = lua_gettop(L);
  while (work_pop(L, &s.w)) {
    seal_one(L, &s, base + 1, base + 2);
    lua_settop(L, base);
  }
  /* Of the snapshotted upvalues, only those some flow code may assign are
   * checked after each step. */
  lua_Integer len = (lua_Integer)lua_rawlen(L, s.snap);
  int checked = (int)(len / 3);
  if (!s.all) {
    lua_newtable(L);
    int keep = lua_gettop(L);
    lua_Integer k = 0;
    for (lua_Integer i = 1; i + 2 <= len; i += 3) {
      lua_rawgeti(L, s.snap, i);
      int uv = (int)(lua_rawgeti(L, s.snap, i + 1), lua_tointeger(L, -1));
      lua_pushlightuserdata(L, lua_upvalueid(L, -2, uv));
      bool w = lua_rawget(L, s.written) != LUA_TNIL;
      lua_pop(L, 1);
      if (w) {
        lua_rawgeti(L, s.snap, i + 2);
        lua_rawseti(L, keep, k + 3);
        lua_rawseti(L, keep, k + 2);
        lua_rawseti(L, keep, k + 1);
        k += 3;
      } else {
        lua_pop(L, 2);
      }
    }
    lua_rawsetp(L, LUA_REGISTRYINDEX, &k_snap);
    checked = (int)(k / 3);
  }
  lua_settop(L, top);
  /* Only the snapshots are needed from now on. */
  static const char *const done[] = {&k_host, &k_roots, &k_mods};
  for (size_t i = 0; i < sizeof done / sizeof *done; i++) {
    lua_pushnil(L);
    lua_rawsetp(L, LUA_REGISTRYINDEX, done[i]);
  }
  if (ntables) *ntables = s.ntables;
  if (nvalues) *nvalues = s.nvalues;
  if (nchecked) *nchecked = checked;
  return !s.all;
}

/* ---- after each turn ---- */

static const char *advice = "module-level values are read-only after load; keep "
                            "per-conversation data in c.slots";

int rt_lfreeze_check(lua_State *L, char *msg, size_t n) {
  int changed = 0;
  luaL_checkstack(L, 8, "lfreeze");
  int top = lua_gettop(L);
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &k_snap) == LUA_TTABLE) {
    int snap = top + 1;
    lua_Integer len = (lua_Integer)lua_rawlen(L, snap);
    for (lua_Integer i = 1; i + 2 <= len; i += 3) {
      lua_rawgeti(L, snap, i);
      int uv = (int)(lua_rawgeti(L, snap, i + 1), lua_tointeger(L, -1));
      const char *name = lua_getupvalue(L, snap + 1, uv);
      lua_rawgeti(L, snap, i + 2);
      if (!lua_rawequal(L, -1, -2)) {
        if (!changed++ && msg) {
          lua_Debug ar;
          lua_pushvalue(L, snap + 1);
          const char *file = lua_getinfo(L, ">S", &ar) ? ar.source + 1 : "?";
          snprintf(msg, n, "module-level variable '%s' (%s) was changed by a step: %s",
                   name ? name : "?", file, advice);
        }
        lua_setupvalue(L, snap + 1, uv);   /* pops the saved value */
      }
      lua_settop(L, snap);
    }
  }
  lua_settop(L, top);
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &k_fields) == LUA_TTABLE) {
    int fields = top + 1;
    lua_Integer len = (lua_Integer)lua_rawlen(L, fields);
    for (lua_Integer i = 1; i + 2 <= len; i += 3) {
      lua_rawgeti(L, fields, i);
      lua_rawgeti(L, fields, i + 1);
      lua_pushvalue(L, -1);
      lua_rawget(L, fields + 1);
      lua_rawgeti(L, fields, i + 2);
      if (!lua_rawequal(L, -1, -2)) {
        if (!changed++ && msg) {
          const char *file = "?";
          if (lua_getmetatable(L, fields + 1) && lua_rawgetp(L, -1, &k_file) == LUA_TSTRING)
            file = lua_tostring(L, -1);
          snprintf(msg, n, "module-level table field '%s' (%s) was changed by a step: %s",
                   lua_tostring(L, fields + 2), file, advice);
        }
        lua_pushvalue(L, fields + 2);
        lua_pushvalue(L, fields + 4);
        lua_rawset(L, fields + 1);
      }
      lua_settop(L, fields);
    }
  }
  lua_settop(L, top);
  return changed;
}
