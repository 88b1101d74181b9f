/* lvm.c -- Lua state, limits, flow loading and turns (see lvm.h).
 *
 * The only place that calls lua_resume/lua_pcall. Every entry into flow
 * code goes through rt_lturn_start/rt_lturn_resume or the protected loader,
 * so a panic means a host bug and aborts with a core dump. */
#include "lvm.h"
#include "lapi.h"
#include "lfreeze.h"
#include "paths.h"
#include "log.h"
#include "buf.h"
#include "utf8.h"
#include "host_lua.h"
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define HOOK_EVERY 1000
#define REG_BUNDLE "shopbot.bundle"

/* An instruction budget; the first member of a turn so the hook can find
 * either kind through the coroutine's extra space. */
typedef struct {
  int64_t used, limit;
  uint64_t deadline_ns;  /* monotonic; 0 = none. Checked by the hook and by
                          * rt_lvm_charge, so time spent in C counts too. */
  int64_t timeout_ms;    /* for the message */
  bool over, late;
  bool is_turn;
} budget;

typedef struct {
  size_t used, limit;
  bool enforce;      /* only while flow code runs: host bookkeeping never fails */
} lalloc;

struct rt_bundle {
  lua_State *L;
  lalloc alloc;
  budget load_budget;
  int refs;
  char version[17];
  int api_ref;       /* table returned by host.lua */
  int run_ref;       /* api.run */
  int nflows;
  rt_bundle_opts o;
  char *start_flow;
  json_t *shop;
};

struct rt_lturn {
  budget bg;         /* must stay first */
  rt_bundle *b;
  void *host_turn;
  lua_State *co;
  int co_ref, trace_ref;
  int http_count;
  int status;
  json_t *io;
  json_t *result;
  char *slots;       /* the new state as JSON text */
  json_t *error;
  json_t *module_err;   /* a module-level value the step changed (lfreeze.h) */
};

/* ---- allocator and hook ---- */

static void *l_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  lalloc *a = ud;
  size_t old = ptr ? osize : 0;
  if (nsize == 0) {
    a->used -= old;
    free(ptr);
    return NULL;
  }
  /* Refuse growth past the cap, always allow shrinking, as ltests.c does. */
  if (a->enforce && nsize > old && a->used + (nsize - old) > a->limit) return NULL;
  void *p = realloc(ptr, nsize);
  if (!p) return NULL;
  a->used = a->used - old + nsize;
  return p;
}

static int l_panic(lua_State *L) {
  const char *m = lua_tostring(L, -1);
  rt_log(RT_LOG_ERROR, "lua-panic", "err=\"%s\"", m ? m : "?");
  abort();
}

static uint64_t mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void hook(lua_State *L, lua_Debug *ar);

/* Adds n units to the budget of the code running on L and raises the
 * budget (or timeout) error once it is spent. Re-arms the hook at every
 * instruction so a pcall loop cannot outlive the kill. */
static void budget_add(lua_State *L, budget *bg, int64_t n) {
  bg->used += n;
  if (!bg->over && !bg->late && bg->deadline_ns && mono_ns() > bg->deadline_ns) bg->late = true;
  if (!bg->over && !bg->late && bg->used <= bg->limit) return;
  if (!bg->late) bg->over = true;
  lua_sethook(L, hook, LUA_MASKCOUNT, 1);
  /* No position prefix: the hook's "where" is not the flow's line; the
   * error record finds the flow line from the stack instead. */
  if (bg->late)
    lua_pushfstring(L, "step stopped: it ran longer than %I ms (limits.step_timeout_ms)",
                    (lua_Integer)bg->timeout_ms);
  else
    lua_pushfstring(L, "step stopped: %s of %I instructions used up (an endless loop?)",
                    RT_BUDGET_MARK, (lua_Integer)bg->limit);
  lua_error(L);
}

static void hook(lua_State *L, lua_Debug *ar) {
  (void)ar;
  budget *bg = *(budget **)lua_getextraspace(L);
  if (bg) budget_add(L, bg, HOOK_EVERY);
}

void rt_lvm_charge(lua_State *L, int64_t units) {
  /* Only states made here keep a budget in their extra space; a plain
   * state (a unit test's) has whatever was there. */
  lua_getfield(L, LUA_REGISTRYINDEX, REG_BUNDLE);
  bool ours = lua_touserdata(L, -1) != NULL;
  lua_pop(L, 1);
  if (!ours) return;
  budget *bg = *(budget **)lua_getextraspace(L);
  if (bg && units > 0) budget_add(L, bg, units);
}

/* ---- registry helpers ---- */

rt_bundle *rt_lvm_bundle(lua_State *L) {
  lua_getfield(L, LUA_REGISTRYINDEX, REG_BUNDLE);
  rt_bundle *b = lua_touserdata(L, -1);
  lua_pop(L, 1);
  return b;
}

const rt_host *rt_lvm_host(lua_State *L) { return rt_lvm_bundle(L)->o.host; }
json_t *rt_lvm_shop(lua_State *L) { return rt_lvm_bundle(L)->shop; }

rt_lturn *rt_lvm_turn(lua_State *L) {
  budget *bg = *(budget **)lua_getextraspace(L);
  return bg && bg->is_turn ? (rt_lturn *)bg : NULL;
}

bool rt_lvm_turn_http_ok(rt_lturn *t) {
  return t->http_count++ < t->b->o.max_http_per_turn;
}

json_t *rt_lvm_turn_take_io(rt_lturn *t) {
  json_t *j = t->io;
  t->io = NULL;
  return j;
}

/* ---- JSON <-> Lua ---- */

void rt_lvm_push_json(lua_State *L, json_t *j) {
  luaL_checkstack(L, 4, "json too deep");
  switch (json_typeof(j)) {
  case JSON_OBJECT: {
    lua_createtable(L, 0, (int)json_object_size(j));
    const char *k;
    json_t *v;
    json_object_foreach(j, k, v) {
      if (json_is_null(v)) continue;
      rt_lvm_push_json(L, v);
      lua_setfield(L, -2, k);
    }
    break;
  }
  case JSON_ARRAY: {
    lua_createtable(L, (int)json_array_size(j), 0);
    size_t i;
    json_t *v;
    json_array_foreach(j, i, v) {
      rt_lvm_push_json(L, v);
      lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    break;
  }
  case JSON_STRING: lua_pushlstring(L, json_string_value(j), json_string_length(j)); break;
  case JSON_INTEGER: lua_pushinteger(L, (lua_Integer)json_integer_value(j)); break;
  case JSON_REAL: lua_pushnumber(L, json_real_value(j)); break;
  case JSON_TRUE: lua_pushboolean(L, 1); break;
  case JSON_FALSE: lua_pushboolean(L, 0); break;
  default: lua_pushnil(L); break;
  }
}

/* Customer text may carry broken UTF-8; JSON cannot, so bad bytes become
 * U+FFFD instead of failing the whole turn. */
static json_t *json_str(const char *s, size_t n) {
  json_t *j = json_stringn(s, n);
  if (j) return j;
  size_t m;
  char *buf = rt_utf8_clean(s, n, &m);
  j = json_stringn(buf, m);
  free(buf);
  return j ? j : json_string("");
}

/* The path to the value being converted, kept as a stack of keys and
 * formatted only when there is an error to report. */
typedef struct {
  const char *root;
  const char *keys[20];
  lua_Integer idx[20];
  int depth;
  /* Bytes of output still allowed. One string referenced a thousand times
   * is stored a thousand times, so without this bound 4 MB of Lua could
   * become gigabytes of host memory, outside the Lua cap. */
  size_t left, cap;
  const char *cap_name;
} jpath;

static void path_text(const jpath *p, char *out, size_t n) {
  size_t o = (size_t)snprintf(out, n, "%s", p->root);
  for (int i = 0; i < p->depth && o < n; i++)
    o += p->keys[i] ? (size_t)snprintf(out + o, n - o, ".%s", p->keys[i])
                    : (size_t)snprintf(out + o, n - o, "[%lld]", (long long)p->idx[i]);
}

/* Counts n bytes of output against the bound; false with a message naming
 * the path and the limit once it is passed. */
static bool out_charge(jpath *p, size_t n, char *err, size_t errn) {
  if (n <= p->left) { p->left -= n; return true; }
  char where[256];
  path_text(p, where, sizeof where);
  snprintf(err, errn, "%s: the value is too big: over %zu KB when written out (%s)", where,
           p->cap / 1024, p->cap_name ? p->cap_name : "limits.lua_memory_mb");
  p->left = 0;
  return false;
}

/* The rules both converters (to jansson, to state text) keep. */
static void unstorable(lua_State *L, int idx, const jpath *p, char *err, size_t errn) {
  char where[256];
  path_text(p, where, sizeof where);
  snprintf(err, errn, "%s: a %s cannot be stored (only text, numbers, true/false and tables)",
           where, luaL_typename(L, idx));
}

enum { SHAPE_BAD = -1, SHAPE_OBJECT, SHAPE_ARRAY };

/* Classifies the table at idx (absolute): an array is a table whose keys
 * are exactly 1..n (*n set), an object one whose keys are all strings (an
 * empty table is an object). Anything else, or nesting past 16 levels, is
 * SHAPE_BAD with a message naming the path. */
static int table_shape(lua_State *L, int idx, const jpath *p, lua_Integer *n, char *err,
                       size_t errn) {
  char where[256];
  if (p->depth >= 16) {
    path_text(p, where, sizeof where);
    snprintf(err, errn, "%s: tables nested deeper than 16 levels (a loop?)", where);
    return SHAPE_BAD;
  }
  luaL_checkstack(L, 6, "stored value");
  lua_Integer count = 0;
  bool all_str = true;
  *n = (lua_Integer)lua_rawlen(L, idx);
  lua_pushnil(L);
  bool bad_key = false;
  while (lua_next(L, idx)) {
    count++;
    if (lua_type(L, -2) != LUA_TSTRING) {
      all_str = false;
    } else if (!bad_key) {
      /* Values with broken UTF-8 keep their readable part (U+FFFD), but two
       * keys cleaned that way could become one key and lose a value. */
      size_t kl;
      const char *k = lua_tolstring(L, -2, &kl);
      bad_key = !rt_utf8_valid(k, kl);
    }
    lua_pop(L, 1);
  }
  if (all_str && bad_key) {
    path_text(p, where, sizeof where);
    snprintf(err, errn, "%s: a key is not valid UTF-8 text (or holds a NUL byte)", where);
    return SHAPE_BAD;
  }
  if (count > 0 && count == *n && !all_str) return SHAPE_ARRAY;
  if (all_str) return SHAPE_OBJECT;
  path_text(p, where, sizeof where);
  snprintf(err, errn, "%s: a table mixes a list and named fields (or has non-text keys)", where);
  return SHAPE_BAD;
}

static json_t *to_json(lua_State *L, int idx, jpath *p, char *err, size_t errn) {
  /* Every node costs host memory: a few bytes of output plus jansson's node. */
  if (!out_charge(p, 8, err, errn)) return NULL;
  switch (lua_type(L, idx)) {
  case LUA_TNIL: return json_null();
  case LUA_TBOOLEAN: return json_boolean(lua_toboolean(L, idx));
  case LUA_TNUMBER: {
    if (lua_isinteger(L, idx)) return json_integer((json_int_t)lua_tointeger(L, idx));
    double v = lua_tonumber(L, idx);
    if (!isfinite(v)) {   /* JSON has no NaN or infinity; jansson refuses them */
      char where[256];
      path_text(p, where, sizeof where);
      snprintf(err, errn, "%s: NaN or infinity cannot be stored", where);
      return NULL;
    }
    return json_real(v);
  }
  case LUA_TSTRING: {
    size_t n;
    const char *s = lua_tolstring(L, idx, &n);
    if (!out_charge(p, n, err, errn)) return NULL;
    return json_str(s, n);
  }
  case LUA_TTABLE: break;
  default:
    unstorable(L, idx, p, err, errn);
    return NULL;
  }
  idx = lua_absindex(L, idx);
  if (rt_lfreeze_contents(L, idx)) {   /* a module-level table: what it holds */
    json_t *j = to_json(L, -1, p, err, errn);
    lua_pop(L, 1);
    return j;
  }
  lua_Integer n;
  int shape = table_shape(L, idx, p, &n, err, errn);
  if (shape == SHAPE_BAD) return NULL;
  json_t *out;
  int d = p->depth++;
  if (shape == SHAPE_ARRAY) {
    out = json_array();
    for (lua_Integer i = 1; i <= n; i++) {
      lua_rawgeti(L, idx, i);
      p->keys[d] = NULL;
      p->idx[d] = i;
      json_t *v = to_json(L, -1, p, err, errn);
      lua_pop(L, 1);
      if (!v) { json_decref(out); p->depth = d; return NULL; }
      json_array_append_new(out, v);
    }
  } else {
    out = json_object();
    lua_pushnil(L);
    while (lua_next(L, idx)) {
      size_t klen;
      const char *k = lua_tolstring(L, -2, &klen);
      p->keys[d] = k;
      json_t *v = to_json(L, -1, p, err, errn);
      if (!v) { lua_pop(L, 2); json_decref(out); p->depth = d; return NULL; }
      json_object_setn_new(out, k, klen, v);
      lua_pop(L, 1);
    }
  }
  p->depth = d;
  return out;
}

json_t *rt_lvm_to_json(lua_State *L, int idx, const char *root, char *err, size_t errn) {
  /* Bounded by the Lua memory cap: a step cannot hand the host more than it
   * was allowed to hold itself. */
  size_t cap = rt_lvm_bundle(L)->alloc.limit;
  jpath p = {.root = root, .left = cap, .cap = cap};
  snprintf(err, errn, "%s: cannot be converted", root);   /* never left unset */
  return to_json(L, idx, &p, err, errn);
}


/* ---- conversation state: JSON text <-> Lua, without a tree between ----
 *
 * The state is read and written once per message, so it skips jansson:
 * the text is decoded straight into Lua tables and encoded straight from
 * them, keys sorted so the stored text is the same for the same data. */

typedef struct {
  const char *p, *end;
  int depth;
} jdec;

static void jd_ws(jdec *d) {
  while (d->p < d->end && (*d->p == ' ' || *d->p == '\n' || *d->p == '\r' || *d->p == '\t')) d->p++;
}

static int jd_hex4(jdec *d, unsigned long *out) {
  if (d->end - d->p < 4) return -1;
  unsigned long v = 0;
  for (int i = 0; i < 4; i++) {
    char c = d->p[i];
    v <<= 4;
    if (c >= '0' && c <= '9') v |= (unsigned long)(c - '0');
    else if (c >= 'a' && c <= 'f') v |= (unsigned long)(c - 'a' + 10);
    else if (c >= 'A' && c <= 'F') v |= (unsigned long)(c - 'A' + 10);
    else return -1;
  }
  d->p += 4;
  *out = v;
  return 0;
}

/* [-0, +1] on success */
static int jd_string(lua_State *L, jdec *d) {
  d->p++;  /* opening quote */
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  while (d->p < d->end && *d->p != '"') {
    const char *run = d->p;
    while (d->p < d->end && *d->p != '"' && *d->p != '\\') d->p++;
    luaL_addlstring(&b, run, (size_t)(d->p - run));
    if (d->p >= d->end || *d->p == '"') break;
    d->p++;
    if (d->p >= d->end) return -1;
    char c = *d->p++;
    switch (c) {
    case '"': case '\\': case '/': luaL_addchar(&b, c); break;
    case 'b': luaL_addchar(&b, '\b'); break;
    case 'f': luaL_addchar(&b, '\f'); break;
    case 'n': luaL_addchar(&b, '\n'); break;
    case 'r': luaL_addchar(&b, '\r'); break;
    case 't': luaL_addchar(&b, '\t'); break;
    case 'u': {
      unsigned long cp, lo;
      if (jd_hex4(d, &cp)) return -1;
      if (cp >= 0xD800 && cp < 0xDC00 && d->end - d->p >= 6 && d->p[0] == '\\' && d->p[1] == 'u') {
        d->p += 2;
        if (jd_hex4(d, &lo) || lo < 0xDC00 || lo > 0xDFFF) return -1;
        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
      } else if (cp >= 0xD800 && cp < 0xE000) {
        cp = 0xFFFD;
      }
      char u[4];
      luaL_addlstring(&b, u, rt_utf8_encode((uint32_t)cp, u));
      break;
    }
    default: return -1;
    }
  }
  if (d->p >= d->end) return -1;
  d->p++;
  luaL_pushresult(&b);
  /* Stored text is input too: bytes the encoder would clean (broken UTF-8,
   * NUL from \u0000) are cleaned here, so a decoded state can always be
   * stored again and reads back the same. */
  size_t n;
  const char *s = lua_tolstring(L, -1, &n);
  if (!rt_utf8_valid(s, n)) {
    /* cleaned in Lua memory: an allocation error raises without a leak */
    luaL_Buffer cb;
    char *out = luaL_buffinitsize(L, &cb, n * 3);
    luaL_pushresultsize(&cb, rt_utf8_clean_buf(s, n, out));
    lua_remove(L, -2);
  }
  return 0;
}

static int jd_value(lua_State *L, jdec *d) {
  jd_ws(d);
  if (d->p >= d->end || ++d->depth > 64) return -1;
  luaL_checkstack(L, 4, "state too deep");
  int rc = 0;
  char c = *d->p;
  if (c == '{') {
    d->p++;
    lua_newtable(L);
    jd_ws(d);
    if (d->p < d->end && *d->p == '}') d->p++;
    else for (;;) {
      jd_ws(d);
      if (d->p >= d->end || *d->p != '"' || jd_string(L, d)) return -1;
      jd_ws(d);
      if (d->p >= d->end || *d->p++ != ':') return -1;
      if (jd_value(L, d)) return -1;
      lua_rawset(L, -3);
      jd_ws(d);
      if (d->p < d->end && *d->p == ',') { d->p++; continue; }
      if (d->p < d->end && *d->p == '}') { d->p++; break; }
      return -1;
    }
  } else if (c == '[') {
    d->p++;
    lua_newtable(L);
    jd_ws(d);
    lua_Integer i = 0;
    if (d->p < d->end && *d->p == ']') d->p++;
    else for (;;) {
      if (jd_value(L, d)) return -1;
      lua_rawseti(L, -2, ++i);
      jd_ws(d);
      if (d->p < d->end && *d->p == ',') { d->p++; continue; }
      if (d->p < d->end && *d->p == ']') { d->p++; break; }
      return -1;
    }
  } else if (c == '"') {
    rc = jd_string(L, d);
  } else if (d->end - d->p >= 4 && memcmp(d->p, "true", 4) == 0) {
    d->p += 4; lua_pushboolean(L, 1);
  } else if (d->end - d->p >= 5 && memcmp(d->p, "false", 5) == 0) {
    d->p += 5; lua_pushboolean(L, 0);
  } else if (d->end - d->p >= 4 && memcmp(d->p, "null", 4) == 0) {
    d->p += 4; lua_pushnil(L);
  } else {
    char num[64];
    size_t n = 0;
    bool real = false;
    while (d->p < d->end && n < sizeof num - 1 &&
           (isdigit((unsigned char)*d->p) || strchr("+-.eE", *d->p))) {
      if (strchr(".eE", *d->p)) real = true;
      num[n++] = *d->p++;
    }
    num[n] = '\0';
    if (!n) return -1;
    char *endp;
    if (!real) {
      errno = 0;
      long long v = strtoll(num, &endp, 10);
      if (*endp == '\0' && errno == 0) { lua_pushinteger(L, (lua_Integer)v); d->depth--; return 0; }
    }
    double v = strtod(num, &endp);
    if (*endp || !isfinite(v)) return -1;   /* 1e999: not storable again, so not readable */
    lua_pushnumber(L, v);
  }
  d->depth--;
  return rc;
}

int rt_lvm_push_json_text(lua_State *L, const char *s, size_t n, size_t *bad_at) {
  int top = lua_gettop(L);
  jdec d = {s, s + n, 0};
  if (jd_value(L, &d) == 0) {
    jd_ws(&d);
    if (d.p == d.end) return 0;
  }
  if (bad_at) *bad_at = (size_t)(d.p - s);
  lua_settop(L, top);
  return -1;
}

/* Pushes the Lua value of a JSON text; an unreadable text (a store edited
 * by hand) becomes an empty table rather than a dead conversation.
 * [-0, +1] */
static void push_state(lua_State *L, const char *s) {
  int top = lua_gettop(L);
  jdec d = {s ? s : "{}", (s ? s : "{}") + strlen(s ? s : "{}"), 0};
  jd_ws(&d);
  if (d.p < d.end && *d.p == '{' && jd_value(L, &d) == 0) {
    jd_ws(&d);
    if (d.p == d.end) return;
  }
  lua_settop(L, top);
  lua_newtable(L);
}

static void jb_str(rt_buf *b, const char *s, size_t n) {
  size_t m;
  char *clean = NULL;
  for (size_t i = 0; i < n; i++) {
    if ((unsigned char)s[i] >= 0x80 || s[i] == '\0') { clean = rt_utf8_clean(s, n, &m); break; }
  }
  if (clean) { s = clean; n = m; }
  rt_buf_add(b, "\"", 1);
  size_t run = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c != '"' && c != '\\' && c >= 0x20) continue;
    rt_buf_add(b, s + run, i - run);
    char esc[8];
    int k = c == '"' ? snprintf(esc, sizeof esc, "\\\"") : c == '\\' ? snprintf(esc, sizeof esc, "\\\\")
            : c == '\n' ? snprintf(esc, sizeof esc, "\\n") : c == '\t' ? snprintf(esc, sizeof esc, "\\t")
            : c == '\r' ? snprintf(esc, sizeof esc, "\\r") : snprintf(esc, sizeof esc, "\\u%04x", c);
    rt_buf_add(b, esc, (size_t)k);
    run = i + 1;
  }
  rt_buf_add(b, s + run, n - run);
  rt_buf_add(b, "\"", 1);
  free(clean);
}

typedef struct { const char *k; size_t n; } jkey;

static int cmp_jkey(const void *a, const void *b) {
  const jkey *x = a, *y = b;
  int c = memcmp(x->k, y->k, x->n < y->n ? x->n : y->n);
  return c ? c : (x->n > y->n) - (x->n < y->n);
}

static bool encode(lua_State *L, int idx, rt_buf *b, jpath *p, char *err, size_t errn) {
  char where[256];
  if (!out_charge(p, 8, err, errn)) return false;
  switch (lua_type(L, idx)) {
  case LUA_TNIL: rt_buf_add(b, "null", 4); return true;
  case LUA_TBOOLEAN: lua_toboolean(L, idx) ? rt_buf_add(b, "true", 4) : rt_buf_add(b, "false", 5); return true;
  case LUA_TNUMBER: {
    char num[40];
    int k;
    if (lua_isinteger(L, idx)) {
      k = snprintf(num, sizeof num, "%lld", (long long)lua_tointeger(L, idx));
    } else {
      double v = lua_tonumber(L, idx);
      if (!isfinite(v)) {
        path_text(p, where, sizeof where);
        snprintf(err, errn, "%s: NaN or infinity cannot be stored", where);
        return false;
      }
      k = snprintf(num, sizeof num, "%.17g", v);
      if (!strpbrk(num, ".eE")) k += snprintf(num + k, sizeof num - (size_t)k, ".0");
    }
    rt_buf_add(b, num, (size_t)k);
    return true;
  }
  case LUA_TSTRING: {
    size_t n;
    const char *s = lua_tolstring(L, idx, &n);
    if (!out_charge(p, n, err, errn)) return false;
    jb_str(b, s, n);
    return true;
  }
  case LUA_TTABLE: break;
  default:
    unstorable(L, idx, p, err, errn);
    return false;
  }
  idx = lua_absindex(L, idx);
  if (rt_lfreeze_contents(L, idx)) {   /* a module-level table: what it holds */
    bool ok = encode(L, -1, b, p, err, errn);
    lua_pop(L, 1);
    return ok;
  }
  lua_Integer n;
  int shape = table_shape(L, idx, p, &n, err, errn);
  if (shape == SHAPE_BAD) return false;
  int d = p->depth++;
  bool ok = true;
  if (shape == SHAPE_ARRAY) {
    rt_buf_add(b, "[", 1);
    for (lua_Integer i = 1; i <= n && ok; i++) {
      if (i > 1) rt_buf_add(b, ",", 1);
      lua_rawgeti(L, idx, i);
      p->keys[d] = NULL;
      p->idx[d] = i;
      ok = encode(L, -1, b, p, err, errn);
      lua_pop(L, 1);
    }
    if (ok) rt_buf_add(b, "]", 1);
  } else {
    jkey *keys = NULL;
    size_t nk = 0, cap = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
      if (nk == cap) keys = rt_xrealloc(keys, (cap = cap ? cap * 2 : 8) * sizeof *keys);
      keys[nk].k = lua_tolstring(L, -2, &keys[nk].n);   /* the table keeps the string alive */
      nk++;
      lua_pop(L, 1);
    }
    if (nk > 1) qsort(keys, nk, sizeof *keys, cmp_jkey);
    rt_buf_add(b, "{", 1);
    for (size_t i = 0; i < nk && ok; i++) {
      if (i) rt_buf_add(b, ",", 1);
      jb_str(b, keys[i].k, keys[i].n);
      rt_buf_add(b, ":", 1);
      lua_pushlstring(L, keys[i].k, keys[i].n);
      lua_rawget(L, idx);
      p->keys[d] = keys[i].k;
      ok = encode(L, -1, b, p, err, errn);
      lua_pop(L, 1);
    }
    if (ok) rt_buf_add(b, "}", 1);
    free(keys);
  }
  p->depth = d;
  return ok;
}

/* ---- loading ---- */

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted list of *.lua names in dir; NULL with errno when dir is missing. */
static char **list_lua(const char *dir, size_t *n) {
  DIR *d = opendir(dir);
  *n = 0;
  if (!d) return NULL;
  char **names = rt_xmalloc(sizeof *names);
  struct dirent *de;
  while ((de = readdir(d))) {
    size_t len = strlen(de->d_name);
    if (de->d_name[0] == '.' || len < 5 || strcmp(de->d_name + len - 4, ".lua") != 0) continue;
    names = rt_xrealloc(names, (*n + 2) * sizeof *names);
    names[(*n)++] = rt_xstrdup(de->d_name);
  }
  closedir(d);
  qsort(names, *n, sizeof *names, cmp_str);
  return names;
}

static void free_list(char **names, size_t n) {
  for (size_t i = 0; i < n; i++) free(names[i]);
  free(names);
}

static char *slurp(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  size_t cap = 4096, n = 0;
  char *buf = rt_xmalloc(cap);
  size_t got;
  while ((got = fread(buf + n, 1, cap - n, f)) > 0) {
    n += got;
    if (n == cap) buf = rt_xrealloc(buf, cap *= 2);
  }
  fclose(f);
  *len = n;
  return buf;
}

/* 64-bit FNV-1a over names and contents: the flows version shown in
 * /healthz and logs. */
static uint64_t fnv(uint64_t h, const void *p, size_t n) {
  const unsigned char *s = p;
  for (size_t i = 0; i < n; i++) h = (h ^ s[i]) * 1099511628211ULL;
  return h;
}

static int traceback(lua_State *L) {
  const char *m = lua_tostring(L, 1);
  if (!m) m = "(error object is not a string)";
  lua_pushstring(L, m);
  return 1;
}

/* Loads one file as a chunk in a fresh sandbox env; leaves the chunk on the
 * stack. */
static int load_chunk(rt_bundle *b, const char *dir, const char *rel, const char *name,
                      uint64_t *hash, char **err) {
  lua_State *L = b->L;
  char *path = rt_xasprintf("%s/%s", dir, name);
  size_t len;
  char *src = slurp(path, &len);
  if (!src) {
    *err = rt_xasprintf("%s: cannot read", path);
    free(path);
    return RT_EIO;
  }
  *hash = fnv(fnv(*hash, rel, strlen(rel)), src, len);
  char *chunk = rt_xasprintf("@%s", rel);
  int rc = luaL_loadbufferx(L, src, len, chunk, "t");
  free(chunk);
  free(src);
  if (rc != LUA_OK) {
    *err = rt_xasprintf("%s", lua_tostring(L, -1));
    lua_pop(L, 1);
    free(path);
    return RT_EINVAL;
  }
  free(path);
  /* _ENV of the chunk := api.new_env() */
  lua_rawgeti(L, LUA_REGISTRYINDEX, b->api_ref);
  lua_getfield(L, -1, "new_env");
  lua_call(L, 0, 1);
  lua_setupvalue(L, -3, 1);
  lua_pop(L, 1);
  return RT_OK;
}

/* Runs fn (on top) with the load-time budget; returns its one result on
 * the stack or an error message. */
static int run_top(rt_bundle *b, char **err) {
  lua_State *L = b->L;
  int fn = lua_gettop(L);
  lua_pushcfunction(L, traceback);
  lua_insert(L, fn);
  b->load_budget.used = 0;
  b->load_budget.over = false;
  lua_sethook(L, hook, LUA_MASKCOUNT, HOOK_EVERY);
  b->alloc.enforce = true;
  int rc = lua_pcall(L, 0, 1, fn);
  b->alloc.enforce = false;
  lua_sethook(L, NULL, 0, 0);
  lua_remove(L, fn);
  if (rc != LUA_OK) {
    *err = rt_xasprintf("%s", rc == LUA_ERRMEM ? "not enough memory (lua_memory_mb)"
                                               : lua_tostring(L, -1));
    lua_pop(L, 1);
    return RT_EINVAL;
  }
  return RT_OK;
}

/* Module loader closure: runs the chunk (upvalue 1) once. */
static int module_loader(lua_State *L) {
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_call(L, 0, 1);
  return 1;
}

static int load_modules(rt_bundle *b, const char *dir, const char *prefix, uint64_t *hash,
                        char **err) {
  size_t n;
  char **names = list_lua(dir, &n);
  if (!names) return RT_OK;   /* a lib folder is optional */
  int rc = RT_OK;
  for (size_t i = 0; i < n && rc == RT_OK; i++) {
    char *rel = rt_xasprintf("%s%s", prefix, names[i]);
    rc = load_chunk(b, dir, rel, names[i], hash, err);
    if (rc != RT_OK) { free(rel); break; }
    lua_State *L = b->L;
    lua_pushcclosure(L, module_loader, 1);
    lua_rawgeti(L, LUA_REGISTRYINDEX, b->api_ref);
    lua_getfield(L, -1, "add_module");
    names[i][strlen(names[i]) - 4] = '\0';
    rt_lfreeze_module(L, names[i], rel);
    free(rel);
    lua_pushstring(L, names[i]);
    lua_pushvalue(L, -4);
    lua_call(L, 2, 0);
    lua_pop(L, 2);
  }
  free_list(names, n);
  return rc;
}

static int open_host(rt_bundle *b, char **err) {
  lua_State *L = b->L;
  static const luaL_Reg libs[] = {
    {LUA_GNAME, luaopen_base}, {LUA_STRLIBNAME, luaopen_string},
    {LUA_TABLIBNAME, luaopen_table}, {LUA_MATHLIBNAME, luaopen_math},
    {LUA_UTF8LIBNAME, luaopen_utf8}, {NULL, NULL}};
  for (const luaL_Reg *l = libs; l->name; l++) {
    luaL_requiref(L, l->name, l->func, 1);
    lua_pop(L, 1);
  }
  rt_lfreeze_open(L);   /* next/rawlen that see through sealed module tables */
  /* Patterns charged to the step's budget, and no string.dump. */
  extern void rt_lapi_pattern_install(lua_State *L);
  rt_lapi_pattern_install(L);
  /* Replays of transcripts must pick the same "random" wording. */
  lua_getglobal(L, "math");
  lua_getfield(L, -1, "randomseed");
  lua_pushinteger(L, 42);
  lua_call(L, 1, 0);
  lua_pop(L, 1);

  if (luaL_loadbufferx(L, (const char *)rt_host_lua, sizeof rt_host_lua, "=host", "t") != LUA_OK) {
    *err = rt_xasprintf("internal: host.lua: %s", lua_tostring(L, -1));
    return RT_EINVAL;
  }
  /* arg 1: C helpers for host.lua */
  lua_newtable(L);
  lua_pushstring(L, RT_BUDGET_MARK);
  lua_setfield(L, -2, "budget_marker");
  extern int rt_lvm_open_hostfns(lua_State *L);
  rt_lvm_open_hostfns(L);
  /* arg 2: modules */
  lua_newtable(L);
  static const luaL_Reg mods[] = {
    {"json", rt_luaopen_json}, {"log", rt_luaopen_log}, {"time", rt_luaopen_time},
    {"http", rt_luaopen_http}, {"text", rt_luaopen_text}, {NULL, NULL}};
  for (const luaL_Reg *m = mods; m->name; m++) {
    m->func(L);
    lua_setfield(L, -2, m->name);
  }
  /* arg 3: shop config; arg 4: options */
  if (b->shop) rt_lvm_push_json(L, b->shop);
  else lua_newtable(L);
  lua_newtable(L);
  lua_pushstring(L, b->start_flow);
  lua_setfield(L, -2, "start_flow");
  if (lua_pcall(L, 4, 1, 0) != LUA_OK) {
    *err = rt_xasprintf("internal: host.lua: %s", lua_tostring(L, -1));
    return RT_EINVAL;
  }
  lua_getfield(L, -1, "run");
  b->run_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  b->api_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  rt_lfreeze_mark_host(L);   /* what exists now is the host's, never sealed */
  return RT_OK;
}

int rt_bundle_load(const rt_bundle_opts *o, rt_bundle **out, char **err) {
  *out = NULL;
  *err = NULL;
  size_t n;
  char **names = list_lua(o->flows_dir, &n);
  if (!names) {
    *err = rt_xasprintf("%s: flows folder not found", o->flows_dir);
    return RT_ENOENT;
  }
  rt_bundle *b = rt_xcalloc(1, sizeof *b);
  b->o = *o;
  b->refs = 1;
  b->start_flow = rt_xstrdup(o->start_flow ? o->start_flow : "lead");
  b->shop = o->shop ? json_incref(o->shop) : NULL;
  b->alloc.limit = o->mem_limit ? o->mem_limit : (size_t)64 << 20;
  b->load_budget.limit = o->load_instructions ? o->load_instructions : 50000000;
  if (!b->o.max_http_per_turn) b->o.max_http_per_turn = 10;
  if (!b->o.step_instructions) b->o.step_instructions = 10000000;
  b->L = lua_newstate(l_alloc, &b->alloc);
  lua_State *L = b->L;
  lua_atpanic(L, l_panic);
  *(budget **)lua_getextraspace(L) = &b->load_budget;
  lua_pushlightuserdata(L, b);
  lua_setfield(L, LUA_REGISTRYINDEX, REG_BUNDLE);

  uint64_t hash = 1469598103934665603ULL;
  int rc = open_host(b, err);
  if (rc == RT_OK) {
    /* scripts/lib: the persona-neutral modules every shop gets. First, so
     * that a module of the same name in the shop's lib/ (or flows.lib,
     * loaded last) replaces it: add_module keeps the last one loaded. */
    char *shared = rt_paths_scripts("lib");
    rc = load_modules(b, shared, "scripts/lib/", &hash, err);
    free(shared);
  }
  if (rc == RT_OK) {
    char *libdir = rt_xasprintf("%s/lib", o->flows_dir);
    rc = load_modules(b, libdir, "lib/", &hash, err);
    free(libdir);
  }
  if (rc == RT_OK && o->lib_dir) rc = load_modules(b, o->lib_dir, "lib/", &hash, err);
  for (size_t i = 0; i < n && rc == RT_OK; i++) {
    char *rel = rt_xasprintf("flows/%s", names[i]);
    rc = load_chunk(b, o->flows_dir, rel, names[i], &hash, err);
    if (rc == RT_OK) rc = run_top(b, err);
    if (rc == RT_OK) {
      lua_rawgeti(L, LUA_REGISTRYINDEX, b->api_ref);
      lua_getfield(L, -1, "register");
      lua_pushstring(L, rel);
      lua_pushvalue(L, -4);
      lua_call(L, 2, 1);
      if (!lua_isnil(L, -1)) {
        *err = rt_xasprintf("%s", lua_tostring(L, -1));
        rc = RT_EINVAL;
      } else {
        rt_lfreeze_root(L, -3, rel);
      }
      lua_pop(L, 3);
    }
    free(rel);
  }
  free_list(names, n);
  if (rc == RT_OK) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, b->api_ref);
    lua_getfield(L, -1, "count");
    lua_call(L, 0, 1);
    b->nflows = (int)lua_tointeger(L, -1);
    lua_pop(L, 2);
    if (b->nflows == 0) {
      *err = rt_xasprintf("%s: no flows (*.lua files) found", o->flows_dir);
      rc = RT_EINVAL;
    }
  }
  if (rc == RT_OK) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, b->api_ref);
    lua_getfield(L, -1, "describe");
    lua_call(L, 0, 1);
    bool found = false;
    lua_Integer cnt = (lua_Integer)lua_rawlen(L, -1);
    for (lua_Integer i = 1; i <= cnt && !found; i++) {
      lua_rawgeti(L, -1, i);
      lua_getfield(L, -1, "name");
      found = strcmp(lua_tostring(L, -1), b->start_flow) == 0;
      lua_pop(L, 2);
    }
    lua_pop(L, 2);
    if (!found) {
      *err = rt_xasprintf("%s: the start flow '%s' (flows.start in shop.json) is not defined",
                          o->flows_dir, b->start_flow);
      rc = RT_EINVAL;
    }
  }
  if (rc == RT_OK) {
    /* Every lib module runs its top level now, not in some chat's first
     * step, so all module-level data exists when it is sealed. */
    lua_rawgeti(L, LUA_REGISTRYINDEX, b->api_ref);
    lua_getfield(L, -1, "new_env");
    lua_call(L, 0, 1);
    lua_getfield(L, -1, "require");
    lua_pushcclosure(L, rt_lfreeze_preload, 1);
    lua_replace(L, -3);
    lua_pop(L, 1);
    rc = run_top(b, err);
    if (rc == RT_OK) lua_pop(L, 1);
  }
  if (rc != RT_OK) {
    rt_bundle_unref(b);
    return rc;
  }
  /* One state serves every chat: module-level data is read-only from now. */
  int ntables, nvalues;
  rt_lfreeze_seal(L, &ntables, &nvalues);
  rt_log(RT_LOG_DEBUG, "flows-sealed", "tables=%d values=%d", ntables, nvalues);
  lua_gc(L, LUA_GCCOLLECT);
  snprintf(b->version, sizeof b->version, "%016llx", (unsigned long long)hash);
  *out = b;
  return RT_OK;
}

void rt_bundle_ref(rt_bundle *b) { b->refs++; }

void rt_bundle_unref(rt_bundle *b) {
  if (!b || --b->refs > 0) return;
  if (b->L) lua_close(b->L);
  json_decref(b->shop);
  free(b->start_flow);
  free(b);
}

const char *rt_bundle_version(const rt_bundle *b) { return b->version; }
int rt_bundle_flow_count(const rt_bundle *b) { return b->nflows; }
size_t rt_bundle_mem(const rt_bundle *b) { return b->alloc.used; }

json_t *rt_bundle_describe(rt_bundle *b) {
  lua_State *L = b->L;
  lua_rawgeti(L, LUA_REGISTRYINDEX, b->api_ref);
  lua_getfield(L, -1, "describe");
  lua_call(L, 0, 1);
  char err[256];
  json_t *j = rt_lvm_to_json(L, -1, "flows", err, sizeof err);
  lua_pop(L, 2);
  return j ? j : json_array();
}

/* ---- turns ---- */

/* Adds the flow and step the runner was in (its trace table) to an error
 * record. */
static void add_trace(rt_lturn *t, json_t *e) {
  lua_State *L = t->b->L;
  lua_rawgeti(L, LUA_REGISTRYINDEX, t->trace_ref);
  lua_getfield(L, -1, "flow");
  if (lua_isstring(L, -1)) json_object_set_new(e, "flow", json_string(lua_tostring(L, -1)));
  lua_getfield(L, -2, "step");
  if (lua_isstring(L, -1)) json_object_set_new(e, "step", json_string(lua_tostring(L, -1)));
  lua_pop(L, 3);
}

/* Fills t->error from a failed coroutine: the message, plus the flow and
 * step from the runner's trace and the innermost flow-code line. */
static void turn_error(rt_lturn *t, int st) {
  lua_State *co = t->co;
  const char *msg = lua_tostring(co, -1);
  const char *code = st == LUA_ERRMEM ? "memory"
                     : t->bg.over ? "budget" : t->bg.late ? "timeout" : "error";
  json_t *e = json_object();
  json_object_set_new(e, "code", json_string(code));
  const char *m = st == LUA_ERRMEM
      ? "not enough memory: the flows' Lua memory is used up (limits.lua_memory_mb, one cap "
        "for the flows and the steps running now)"
      : msg ? msg : "error object is not a string";
  json_object_set_new(e, "msg", json_str(m, strlen(m)));
  lua_Debug ar;
  for (int level = 0; lua_getstack(co, level, &ar); level++) {
    if (!lua_getinfo(co, "Sl", &ar)) break;
    if (ar.currentline > 0 && ar.source[0] == '@') {
      json_object_set_new(e, "source", json_string(ar.source + 1));
      json_object_set_new(e, "line", json_integer(ar.currentline));
      break;
    }
  }
  add_trace(t, e);
  t->error = e;
}

static void turn_release(rt_lturn *t) {
  lua_State *L = t->b->L;
  if (t->co_ref != LUA_NOREF) {
    luaL_unref(L, LUA_REGISTRYINDEX, t->co_ref);
    t->co_ref = LUA_NOREF;
  }
  if (t->trace_ref != LUA_NOREF) {
    luaL_unref(L, LUA_REGISTRYINDEX, t->trace_ref);
    t->trace_ref = LUA_NOREF;
  }
  t->co = NULL;
}

/* Module-level values are read-only after load (lfreeze.h). A step that
 * changed one anyway (`count = count + 1` on a file-top local) fails, and
 * the loaded value is back before any other chat's step runs, also when
 * this one only yielded. */
static void check_module_state(rt_lturn *t) {
  char msg[512];
  if (!rt_lfreeze_check(t->b->L, msg, sizeof msg) || t->module_err) return;
  t->module_err = json_object();
  json_object_set_new(t->module_err, "code", json_string("module"));
  json_object_set_new(t->module_err, "msg", json_str(msg, strlen(msg)));
  add_trace(t, t->module_err);
}

static int turn_resume(rt_lturn *t, int nargs) {
  rt_bundle *b = t->b;
  int nres = 0;
  b->alloc.enforce = true;
  int st = lua_resume(t->co, NULL, nargs, &nres);
  b->alloc.enforce = false;
  check_module_state(t);
  if (st == LUA_YIELD) {
    lua_pop(t->co, nres);
    return t->status = RT_LTURN_YIELD;
  }
  if (st == LUA_OK) {
    char err[512];
    snprintf(err, sizeof err, "the step's result cannot be stored");   /* never left unset */
    /* The state goes to text directly; the rest of the result to JSON. */
    lua_getfield(t->co, -1, "slots");
    rt_buf jb = RT_BUF_INIT;
    size_t scap = b->o.state_max_bytes ? b->o.state_max_bytes : (size_t)1 << 20;
    jpath jp = {.root = "c.slots", .left = scap, .cap = scap, .cap_name = "limits.state_max_kb"};
    bool ok = lua_istable(t->co, -1) && encode(t->co, -1, &jb, &jp, err, sizeof err);
    if (!lua_istable(t->co, -1)) snprintf(err, sizeof err, "c.slots must stay a table");
    lua_pop(t->co, 1);
    if (ok) {
      t->slots = rt_buf_take(&jb, NULL);
      lua_pushnil(t->co);
      lua_setfield(t->co, -2, "slots");
      t->result = rt_lvm_to_json(t->co, -1, "c", err, sizeof err);
    } else {
      rt_buf_free(&jb);
    }
    if (!t->result) {
      t->error = json_pack("{s:s, s:s}", "code", "state", "msg", err);
      add_trace(t, t->error);
      t->status = RT_LTURN_ERROR;
    } else {
      t->status = RT_LTURN_DONE;
    }
  } else {
    turn_error(t, st);
    t->status = RT_LTURN_ERROR;
  }
  if (t->module_err && t->status != RT_LTURN_ERROR) {
    /* its effects rest on a value shared by every chat */
    json_decref(t->result);
    t->result = NULL;
    free(t->slots);
    t->slots = NULL;
    t->error = t->module_err;
    t->module_err = NULL;
    t->status = RT_LTURN_ERROR;
  }
  turn_release(t);
  if (st == LUA_ERRMEM || t->status == RT_LTURN_ERROR) lua_gc(b->L, LUA_GCCOLLECT);
  return t->status;
}

int rt_lturn_start(rt_bundle *b, void *host_turn, json_t *conv, const char *slots, json_t *ev,
                   rt_lturn **out) {
  rt_lturn *t = rt_xcalloc(1, sizeof *t);
  t->bg.is_turn = true;
  t->bg.limit = b->o.step_instructions;
  if (b->o.step_timeout_ms > 0) {
    t->bg.timeout_ms = b->o.step_timeout_ms;
    t->bg.deadline_ns = mono_ns() + (uint64_t)b->o.step_timeout_ms * 1000000u;
  }
  t->b = b;
  t->host_turn = host_turn;
  t->co_ref = t->trace_ref = LUA_NOREF;
  rt_bundle_ref(b);
  *out = t;
  lua_State *L = b->L;
  t->co = lua_newthread(L);
  t->co_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  *(budget **)lua_getextraspace(t->co) = &t->bg;
  lua_sethook(t->co, hook, LUA_MASKCOUNT, HOOK_EVERY);
  lua_rawgeti(t->co, LUA_REGISTRYINDEX, b->run_ref);
  rt_lvm_push_json(t->co, conv);
  push_state(t->co, slots);
  lua_setfield(t->co, -2, "slots");
  rt_lvm_push_json(t->co, ev);
  lua_newtable(t->co);
  lua_pushvalue(t->co, -1);
  t->trace_ref = luaL_ref(t->co, LUA_REGISTRYINDEX);
  return turn_resume(t, 3);
}

int rt_lturn_resume(rt_lturn *t) {
  if (t->status != RT_LTURN_YIELD || !t->co) return t->status;
  return turn_resume(t, 0);
}

void *rt_lturn_host(rt_lturn *t) { return t->host_turn; }

void rt_lturn_io_done(rt_lturn *t, json_t *result) {
  json_decref(t->io);
  t->io = result;
  const rt_host *h = t->b->o.host;
  if (h && h->ready) h->ready(h->ud, t);
}

json_t *rt_lturn_result(rt_lturn *t) { return t->result; }
const char *rt_lturn_slots(rt_lturn *t) { return t->slots; }
json_t *rt_lturn_error(rt_lturn *t) { return t->error; }

void rt_lturn_kill(rt_lturn *t, const char *code, const char *msg) {
  if (t->status != RT_LTURN_YIELD) return;
  t->error = json_pack("{s:s, s:s}", "code", code, "msg", msg);
  add_trace(t, t->error);
  t->status = RT_LTURN_ERROR;
  turn_release(t);
}

void rt_lturn_free(rt_lturn *t) {
  if (!t) return;
  if (t->co) turn_release(t);
  json_decref(t->io);
  json_decref(t->result);
  free(t->slots);
  json_decref(t->error);
  json_decref(t->module_err);
  rt_bundle_unref(t->b);
  free(t);
}
