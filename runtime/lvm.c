/* lvm.c -- Lua state, limits, flow loading and turns (see lvm.h).
 *
 * The only place that calls lua_resume/lua_pcall. Every entry into flow
 * code goes through rt_lturn_start/rt_lturn_resume or the protected loader,
 * so a panic means a host bug and aborts with a core dump. */
#include "lvm.h"
#include "lapi.h"
#include "lconv.h"
#include "integration.h"
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
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

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

#define POOL_MAX 32        /* finished coroutines kept for the next turns */

/* One kept state in the ring that orders the cache, oldest first. An entry
 * whose seq no longer matches the cache's was taken or replaced since. */
typedef struct { int64_t id; uint64_t seq; } cache_slot;

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
  /* Coroutines that finished cleanly, with their grown stacks. */
  int pool[POOL_MAX];
  int npool;
  /* Saved states as Lua tables: cache_ref is {[conv id] = {state, rev, seq}}. */
  int cache_ref;
  size_t cache_n, cache_max;
  cache_slot *ring;
  size_t ring_cap, ring_head, ring_len;
  uint64_t cache_seq;
  rt_buf jb;         /* the turns' JSON writer, reused */
};

/* The turn's strings and arrays (rt_fx), freed at once. */
typedef struct arena_blk {
  struct arena_blk *next;
  size_t used, cap;
  max_align_t data[];
} arena_blk;

/* A block under glibc's 1 KB "large request" line: a larger one makes
 * malloc consolidate its fast bins on every turn (measured: 6 % of the
 * CPU of bench_core with 2 KB blocks). Most steps need less than this. */
#define ARENA_FIRST (1000 - sizeof(arena_blk))

struct rt_lturn {
  budget bg;         /* must stay first */
  rt_bundle *b;
  void *host_turn;
  lua_State *co;
  int co_ref, trace_ref;
  int state_ref;     /* the new state table, until kept or freed */
  int64_t conv_id;
  const char *about;  /* the conversation's chat (arena) */
  int http_count;
  int status;
  bool ticked;       /* its hook comes from the tick (tick_here) */
  rt_fx fx;
  arena_blk *arena;
  json_t *error;
  json_t *module_err;   /* a module-level value the step changed (lfreeze.h) */
  /* The pending I/O's cancel hook (rt_lvm_turn_set_cancel). */
  void (*cancel)(void *ud);
  void *cancel_ud;
  rt_fx_usage usage;
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
  /* Most calls are new objects: malloc's fast path, not realloc's. */
  void *p = ptr ? realloc(ptr, nsize) : malloc(nsize);
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

/* ---- the tick: the budget's hook, set only on steps that run long ----
 *
 * Lua 5.4 calls into its hook dispatch before every instruction of every
 * function once a thread has any hook, count hooks included: a hook set on
 * each step from its start cost 6.5 % of all the instructions of an event
 * (callgrind over bench_core), for steps that nearly all end within
 * microseconds. So a step starts without it, and a timer on the loop
 * thread's CPU clock fires every TICK_MS of that thread's CPU time; its
 * handler sets the count hook on the step running then, if any. A step that
 * runs longer than TICK_MS is counted from then on, and stopped by its
 * instruction budget or its deadline as before; C work a step starts
 * (patterns, text.*) is counted by rt_lvm_charge from its first unit, tick
 * or not. An idle bot uses no CPU, so the timer does not fire.
 *
 * A signal handler can reach only process-wide data: the running step's
 * thread below, set around each lua_resume of a step on the loop thread.
 * lua_sethook may be called from a signal handler (ldebug.c says how). A
 * process whose timer cannot be made (or a step on another thread, as a
 * test may run) hooks every step from its start, as before. */
#define TICK_MS 5
#ifndef sigev_notify_thread_id   /* glibc before 2.35 names it only this way */
#define sigev_notify_thread_id _sigev_un._tid
#endif

static lua_State *volatile tick_running;
static bool tick_tried, tick_ok;
static pthread_t tick_thread;
static uint64_t tick_long_steps;   /* steps the tick caught, in this process */

static void tick_handler(int sig) {
  (void)sig;
  lua_State *co = tick_running;
  if (co) lua_sethook(co, hook, LUA_MASKCOUNT, HOOK_EVERY);
}

/* Once per process, on the first step: the loop thread runs every step. */
static void tick_start(void) {
  tick_tried = true;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sigemptyset(&sa.sa_mask);
  sa.sa_handler = tick_handler;
  sa.sa_flags = SA_RESTART;
  if (sigaction(SIGVTALRM, &sa, NULL) != 0) return;
  struct sigevent sev;
  memset(&sev, 0, sizeof sev);
  sev.sigev_notify = SIGEV_THREAD_ID;
  sev.sigev_signo = SIGVTALRM;
  sev.sigev_notify_thread_id = gettid();
  timer_t id;
  if (timer_create(CLOCK_THREAD_CPUTIME_ID, &sev, &id) != 0) return;
  struct itimerspec its = {{0, TICK_MS * 1000000L}, {0, TICK_MS * 1000000L}};
  if (timer_settime(id, 0, &its, NULL) != 0) {
    timer_delete(id);
    return;
  }
  tick_thread = pthread_self();
  tick_ok = true;
}

uint64_t rt_lvm_long_steps(void) { return tick_long_steps; }

/* Whether steps on this thread get their hook from the tick. */
static bool tick_here(void) {
  if (!tick_tried) tick_start();
  return tick_ok && pthread_equal(tick_thread, pthread_self());
}

void rt_lvm_charge(lua_State *L, int64_t units) {
  /* Only states made here keep a budget in their extra space; a plain
   * state (a unit test's) has whatever was there. Ours allocate through
   * l_alloc: one field to read, where the registry's bundle was a string
   * lookup on every charge (the pattern functions charge often). */
  void *aud;
  if (lua_getallocf(L, &aud) != l_alloc) return;
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
const rt_bundle_opts *rt_lvm_opts(lua_State *L) { return &rt_lvm_bundle(L)->o; }
size_t rt_lvm_mem_limit(lua_State *L) { return rt_lvm_bundle(L)->alloc.limit; }

rt_lturn *rt_lvm_turn(lua_State *L) {
  budget *bg = *(budget **)lua_getextraspace(L);
  return bg && bg->is_turn ? (rt_lturn *)bg : NULL;
}

bool rt_lvm_turn_http_ok(rt_lturn *t) {
  return t->http_count++ < t->b->o.max_http_per_turn;
}

static void turn_cancel_io(rt_lturn *t);

void rt_lvm_turn_set_cancel(rt_lturn *t, void (*cancel)(void *ud), void *ud) {
  turn_cancel_io(t);
  t->cancel = cancel;
  t->cancel_ud = ud;
}

void rt_lvm_turn_ready(rt_lturn *t) {
  const rt_host *h = t->b->o.host;
  if (h && h->ready) h->ready(h->ud, t);
}

void rt_lvm_turn_usage(rt_lturn *t, int64_t tokens_in, int64_t tokens_out, int64_t cost_micro) {
  t->usage.calls++;
  t->usage.tokens_in += tokens_in;
  t->usage.tokens_out += tokens_out;
  t->usage.cost_micro += cost_micro;
}

/* Runs and clears the pending I/O's cancel hook, if any. */
static void turn_cancel_io(rt_lturn *t) {
  void (*c)(void *) = t->cancel;
  t->cancel = NULL;
  if (c) c(t->cancel_ud);
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
  /* A module per lent provider: llm.chat{...} calls its op "chat". */
  for (size_t i = 0; i < b->o.nproviders; i++) {
    rt_provider *p = b->o.providers[i];
    if (lua_getfield(L, -1, p->name) != LUA_TNIL) {
      *err = rt_xasprintf("internal: provider '%s' has the name of a flows' module", p->name);
      return RT_EINVAL;
    }
    lua_pop(L, 1);
    rt_luaopen_provider(L, p);
    lua_setfield(L, -2, p->name);
  }
  /* arg 3: shop config; arg 4: options */
  if (b->shop) rt_lconv_push_tree(L, b->shop);
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
  lua_newtable(L);
  b->cache_ref = luaL_ref(L, LUA_REGISTRYINDEX);
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
  b->cache_ref = LUA_NOREF;
  b->cache_max = o->state_cache > 0 ? (size_t)o->state_cache : 0;
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
  int ntables, nvalues, nchecked;
  if (!rt_lfreeze_seal(L, &ntables, &nvalues, &nchecked))
    rt_log(RT_LOG_WARN, "flows-sealed", "detail=\"the flows' bytecode could not be read, or a "
           "coroutine is reachable from them: every module-level value is checked after each "
           "step (slower, as safe)\"");
  rt_log(RT_LOG_DEBUG, "flows-sealed", "tables=%d values=%d checked=%d", ntables, nvalues,
         nchecked);
  lua_gc(L, LUA_GCCOLLECT);
  snprintf(b->version, sizeof b->version, "%016llx", (unsigned long long)hash);
  *out = b;
  return RT_OK;
}

void rt_bundle_ref(rt_bundle *b) { b->refs++; }

void rt_bundle_unref(rt_bundle *b) {
  if (!b || --b->refs > 0) return;
  if (b->L) lua_close(b->L);
  free(b->ring);
  rt_buf_free(&b->jb);
  json_decref(b->shop);
  free(b->start_flow);
  free(b);
}

const char *rt_bundle_version(const rt_bundle *b) { return b->version; }
char *rt_bundle_note(rt_bundle *b, const char *kind, const rt_note_facts *f) {
  lua_State *L = b->L;
  int top = lua_gettop(L);
  lua_pushcfunction(L, traceback);
  lua_rawgeti(L, LUA_REGISTRYINDEX, b->api_ref);
  lua_getfield(L, -1, "note");
  lua_remove(L, -2);
  lua_pushstring(L, kind);
  lua_createtable(L, 0, 9);
  const char *keys[] = {"chat", "flow", "step", "where", "msg", "who", "owner", "what"};
  const char *vals[] = {f->chat, f->flow, f->step, f->where, f->msg, f->who, f->owner, f->what};
  for (size_t i = 0; i < RT_ARRAY_LEN(keys); i++) {
    if (!vals[i]) continue;
    lua_pushstring(L, vals[i]);
    lua_setfield(L, -2, keys[i]);
  }
  if (f->figures) {
    rt_lconv_push_tree(L, f->figures);
    lua_setfield(L, -2, "figures");
  }
  /* Flow code runs here (the persona's notes module): the load budget and
   * the memory cap hold it, as at load. */
  b->load_budget.used = 0;
  b->load_budget.over = false;
  lua_sethook(L, hook, LUA_MASKCOUNT, HOOK_EVERY);
  b->alloc.enforce = true;
  int rc = lua_pcall(L, 2, 1, top + 1);
  b->alloc.enforce = false;
  lua_sethook(L, NULL, 0, 0);
  char *text = rc == LUA_OK && lua_type(L, -1) == LUA_TSTRING ? rt_xstrdup(lua_tostring(L, -1))
                                                              : NULL;
  lua_settop(L, top);
  return text;
}

int rt_bundle_flow_count(const rt_bundle *b) { return b->nflows; }
size_t rt_bundle_mem(const rt_bundle *b) { return b->alloc.used; }

json_t *rt_bundle_describe(rt_bundle *b) {
  lua_State *L = b->L;
  lua_rawgeti(L, LUA_REGISTRYINDEX, b->api_ref);
  lua_getfield(L, -1, "describe");
  lua_call(L, 0, 1);
  char err[256];
  json_t *j = rt_lconv_tree(L, -1, "flows", b->alloc.limit, err, sizeof err);
  lua_pop(L, 2);
  return j ? j : json_array();
}

/* ---- turns ---- */

static void *ar_alloc(rt_lturn *t, size_t n) {
  n = (n + sizeof(max_align_t) - 1) / sizeof(max_align_t) * sizeof(max_align_t);
  arena_blk *a = t->arena;
  if (!a || a->cap - a->used < n) {
    size_t cap = n > ARENA_FIRST ? n : ARENA_FIRST;
    a = rt_xmalloc(sizeof *a + cap);
    a->cap = cap;
    a->used = 0;
    a->next = t->arena;
    t->arena = a;
  }
  void *p = (char *)a->data + a->used;
  a->used += n;
  return p;
}

static const char *ar_str(rt_lturn *t, const char *s, size_t n) {
  char *p = ar_alloc(t, n + 1);
  memcpy(p, s, n);
  p[n] = '\0';
  return p;
}

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

/* Gives the coroutine back: a cleanly finished one (stack empty, status
 * OK) goes to the pool with its grown stack, any other is dropped. */
static void turn_release(rt_lturn *t, bool reusable) {
  lua_State *L = t->b->L;
  rt_bundle *b = t->b;
  if (t->co_ref != LUA_NOREF) {
    if (reusable && b->npool < POOL_MAX && lua_status(t->co) == LUA_OK) {
      lua_settop(t->co, 0);
      *(budget **)lua_getextraspace(t->co) = NULL;
      lua_sethook(t->co, NULL, 0, 0);
      b->pool[b->npool++] = t->co_ref;
    } else {
      luaL_unref(L, LUA_REGISTRYINDEX, t->co_ref);
    }
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

/* ---- the runner's values -> rt_fx ---- */

typedef struct {
  rt_lturn *t;
  lua_State *L;
  rt_buf jb;           /* reused for every JSON text */
  size_t left;         /* bytes all payloads together may take */
  char err[512];
} fxb;

/* The text at t[k] copied into the arena, or NULL when it is not text. */

/* The value at idx written as JSON into the arena; NULL with f->err. */
static const char *fx_json(fxb *f, int idx, const char *root, size_t *len) {
  rt_buf_reset(&f->jb);
  rt_lconv_lim lim = {.root = root, .cap = f->left};
  if (rt_lconv_encode(f->L, idx, &f->jb, &lim, f->err, sizeof f->err) != 0) return NULL;
  f->left -= f->jb.len < f->left ? f->jb.len : f->left;
  if (len) *len = f->jb.len;
  return ar_str(f->t, rt_buf_str(&f->jb), f->jb.len);
}

/* t[k] written as JSON; NULL (and ok) when it is nil. */
static bool fx_json_field(fxb *f, int tbl, const char *k, const char *root, const char **out) {
  *out = NULL;
  bool ok = true;
  if (lua_getfield(f->L, tbl, k) != LUA_TNIL) ok = (*out = fx_json(f, -1, root, NULL)) != NULL;
  lua_pop(f->L, 1);
  return ok;
}

/* The values host.lua's run returns, by position from the first. */
enum { R_FLOW, R_STEP, R_SLOTS, R_MODE, R_CAMPAIGN, R_PHONE, R_NAME, R_OUT, R_TIMERS, R_LEADS,
       R_EVENTS, R_OPS, R_MIGRATED, R_COUNT };

/* The string at idx copied into the arena, or NULL. */
static const char *fx_str_at(fxb *f, int idx) {
  if (lua_type(f->L, idx) != LUA_TSTRING) return NULL;
  size_t n;
  const char *s = lua_tolstring(f->L, idx, &n);
  return ar_str(f->t, s, n);
}

/* The string field k of the table at tbl, the same way. */
static const char *fx_str(fxb *f, int tbl, const char *k) {
  lua_getfield(f->L, tbl, k);
  const char *v = fx_str_at(f, -1);
  lua_pop(f->L, 1);
  return v;
}

/* Pushes the list at idx (nil when it is not a table) and returns its length. */
static size_t fx_list(fxb *f, int idx) {
  if (lua_type(f->L, idx) != LUA_TTABLE) {
    lua_pushnil(f->L);
    return 0;
  }
  lua_pushvalue(f->L, idx);
  return (size_t)lua_rawlen(f->L, -1);
}

/* One message: the typed fields and the payload the outbox stores. */
static bool fx_msg(fxb *f, int m, size_t i, const char *about, rt_fx_msg *o) {
  lua_State *L = f->L;
  char root[64];
  const char *to = fx_str(f, m, "to");
  o->to = to && strcmp(to, "managers") == 0 ? RT_FX_MANAGERS
          : to && strcmp(to, "chat") == 0 ? RT_FX_CHAT : RT_FX_SELF;
  if (o->to == RT_FX_CHAT) {
    o->channel = fx_str(f, m, "channel");
    o->chat = fx_str(f, m, "chat");
  }
  o->text = fx_str(f, m, "text");
  rt_buf p = RT_BUF_INIT;
  rt_buf_addc(&p, '{');
  if (o->to != RT_FX_SELF && about) {
    rt_buf_adds(&p, "\"about\":");
    rt_lconv_add_string(&p, about, strlen(about));
  }
  bool ok = true;
  if (lua_getfield(L, m, "buttons") != LUA_TNIL) {
    snprintf(root, sizeof root, "c.out[%zu].buttons", i + 1);
    size_t n = 0;
    const char *bj = fx_json(f, -1, root, &n);
    if (!bj) ok = false;
    else {
      if (p.len > 1) rt_buf_addc(&p, ',');
      rt_buf_adds(&p, "\"buttons\":");
      rt_buf_add(&p, bj, n);
      o->size += (int64_t)n;
      if (lua_istable(L, -1)) {
        size_t nb = (size_t)lua_rawlen(L, -1);
        const char **labels = ar_alloc(f->t, (nb ? nb : 1) * sizeof *labels);
        for (size_t k = 1; k <= nb; k++) {
          lua_rawgeti(L, -1, (lua_Integer)k);
          if (lua_istable(L, -1)) lua_getfield(L, -1, "text");
          else lua_pushvalue(L, -1);
          if (lua_type(L, -1) == LUA_TSTRING) {
            size_t ln;
            const char *s = lua_tolstring(L, -1, &ln);
            labels[o->nbuttons++] = ar_str(f->t, s, ln);
          }
          lua_pop(L, 2);
        }
        o->buttons = labels;
      }
    }
  }
  lua_pop(L, 1);
  static const char *const extra[] = {"media", "template"};
  for (size_t k = 0; k < 2 && ok; k++) {
    if (lua_getfield(L, m, extra[k]) != LUA_TNIL) {
      snprintf(root, sizeof root, "c.out[%zu].%s", i + 1, extra[k]);
      size_t n = 0;
      const char *j = fx_json(f, -1, root, &n);
      if (!j) ok = false;
      else {
        if (p.len > 1) rt_buf_addc(&p, ',');
        rt_buf_printf(&p, "\"%s\":", extra[k]);
        rt_buf_add(&p, j, n);
        if (lua_istable(L, -1)) {
          int tb = lua_gettop(L);
          if (k == 0) {
            o->media_ref = fx_str(f, tb, "ref");
            o->media_kind = fx_str(f, tb, "kind");
          } else {
            o->template_name = fx_str(f, tb, "name");
          }
        }
      }
    }
    lua_pop(L, 1);
  }
  if (ok && o->text) {
    if (p.len > 1) rt_buf_addc(&p, ',');
    rt_buf_adds(&p, "\"text\":");
    size_t n = strlen(o->text);
    rt_lconv_add_string(&p, o->text, n);
    o->size += (int64_t)n;
  }
  /* A note to the managers in a forum: the name of the customer's topic
   * (host.lua, in the persona's words), for the channel that makes one. */
  const char *topic = o->to == RT_FX_MANAGERS ? fx_str(f, m, "topic") : NULL;
  if (ok && topic) {
    if (p.len > 1) rt_buf_addc(&p, ',');
    rt_buf_adds(&p, "\"topic\":");
    rt_lconv_add_string(&p, topic, strlen(topic));
  }
  rt_buf_addc(&p, '}');
  if (ok) o->payload_json = ar_str(f->t, p.s, p.len);
  rt_buf_free(&p);
  return ok;
}

/* Builds t->fx from the runner's values from res on (R_*, on t->co). false
 * with f->err when a value cannot be written. */
static bool build_effects(rt_lturn *t, int res, const char *about, fxb *f) {
  lua_State *L = t->co;
  rt_fx *fx = &t->fx;
  char root[64];
  fx->flow = fx_str_at(f, res + R_FLOW);
  fx->step = fx_str_at(f, res + R_STEP);
  fx->mode = fx_str_at(f, res + R_MODE);
  fx->phone = fx_str_at(f, res + R_PHONE);
  fx->name = fx_str_at(f, res + R_NAME);
  fx->campaign = fx_str_at(f, res + R_CAMPAIGN);
  lua_pushvalue(L, res + R_MIGRATED);
  if (lua_istable(L, -1)) {
    int m = lua_gettop(L);
    fx->migrated = true;
    fx->migrated_from = fx_str(f, m, "from");
    fx->migrated_to = fx_str(f, m, "to");
    if (!(fx->migrated_json = fx_json(f, m, "migrated", NULL))) return false;
  }
  lua_pop(L, 1);

  size_t n = fx_list(f, res + R_OUT);
  if (n) fx->out = ar_alloc(t, n * sizeof *fx->out);
  for (size_t i = 0; i < n; i++) {
    lua_rawgeti(L, -1, (lua_Integer)i + 1);
    rt_fx_msg *o = &fx->out[fx->nout++];
    memset(o, 0, sizeof *o);
    bool ok = lua_istable(L, -1) && fx_msg(f, lua_gettop(L), i, about, o);
    lua_pop(L, 1);
    if (!ok) return false;
  }
  lua_pop(L, 1);

  n = fx_list(f, res + R_TIMERS);
  if (n) fx->timers = ar_alloc(t, n * sizeof *fx->timers);
  for (size_t i = 0; i < n; i++) {
    lua_rawgeti(L, -1, (lua_Integer)i + 1);
    int v = lua_gettop(L);
    rt_fx_timer *o = &fx->timers[fx->ntimers++];
    memset(o, 0, sizeof *o);
    const char *op = fx_str(f, v, "op");
    o->cancel = !op || strcmp(op, "set") != 0;
    o->name = fx_str(f, v, "name");
    o->step = fx_str(f, v, "step");
    lua_getfield(L, v, "at");
    int isint = 0;
    o->due_s = (int64_t)lua_tointegerx(L, -1, &isint);
    o->due_ok = isint && lua_isinteger(L, -1);
    o->due_num = lua_tonumber(L, -1);
    lua_pop(L, 1);
    snprintf(root, sizeof root, "c.timers[%zu].data", i + 1);
    bool ok = fx_json_field(f, v, "data", root, &o->data_json);
    lua_pop(L, 1);
    if (!ok) return false;
  }
  lua_pop(L, 1);

  n = fx_list(f, res + R_LEADS);
  if (n) fx->leads = ar_alloc(t, n * sizeof *fx->leads);
  for (size_t i = 0; i < n; i++) {
    lua_rawgeti(L, -1, (lua_Integer)i + 1);
    int e = lua_gettop(L);
    rt_fx_lead *o = &fx->leads[fx->nleads++];
    memset(o, 0, sizeof *o);
    o->flow = fx_str(f, e, "flow");
    lua_getfield(L, e, "lead");
    int v = lua_gettop(L);
    bool ok = lua_istable(L, v);
    if (ok) {
      o->car = fx_str(f, v, "car");
      o->car_kind = fx_str(f, v, "car_kind");
      o->name = fx_str(f, v, "name");
      o->phone = fx_str(f, v, "phone");
      o->campaign = fx_str(f, v, "campaign");
      snprintf(root, sizeof root, "c.leads[%zu].lead.parts", i + 1);
      ok = fx_json_field(f, v, "parts", root, &o->parts_json);
      snprintf(root, sizeof root, "c.leads[%zu].lead", i + 1);
      if (ok) ok = (o->data_json = fx_json(f, v, root, NULL)) != NULL;
    }
    if (!o->campaign) o->campaign = fx->campaign;
    lua_pop(L, 2);
    if (!ok) return false;
  }
  lua_pop(L, 1);

  n = fx_list(f, res + R_EVENTS);
  if (n) fx->events = ar_alloc(t, n * sizeof *fx->events);
  for (size_t i = 0; i < n; i++) {
    lua_rawgeti(L, -1, (lua_Integer)i + 1);
    int v = lua_gettop(L);
    rt_fx_event *o = &fx->events[fx->nevents++];
    memset(o, 0, sizeof *o);
    o->kind = fx_str(f, v, "kind");
    o->flow = fx_str(f, v, "flow");
    snprintf(root, sizeof root, "c.events[%zu].data", i + 1);
    bool ok = fx_json_field(f, v, "data", root, &o->data_json);
    if (lua_getfield(L, v, "data") == LUA_TTABLE) {
      o->campaign = fx_str(f, lua_gettop(L), "campaign");
      o->outcome = fx_str(f, lua_gettop(L), "outcome");
    }
    if (!o->campaign) o->campaign = fx->campaign;
    lua_pop(L, 2);
    if (!ok) return false;
  }
  lua_pop(L, 1);

  n = fx_list(f, res + R_OPS);
  if (n) fx->ops = ar_alloc(t, n * sizeof *fx->ops);
  for (size_t i = 0; i < n; i++) {
    lua_rawgeti(L, -1, (lua_Integer)i + 1);
    int v = lua_gettop(L);
    const char *op = fx_str(f, v, "op");
    rt_fx_op *o = &fx->ops[fx->nops];
    memset(o, 0, sizeof *o);
    if (op && strcmp(op, "handoff") == 0) {
      o->op = RT_FX_HANDOFF;
      o->reason = fx_str(f, v, "reason");
      rt_buf_reset(&f->jb);
      rt_buf_addc(&f->jb, '{');
      if (o->reason) {
        rt_buf_adds(&f->jb, "\"reason\":");
        rt_lconv_add_string(&f->jb, o->reason, strlen(o->reason));
      }
      rt_buf_addc(&f->jb, '}');
      o->data_json = ar_str(t, f->jb.s, f->jb.len);
      fx->nops++;
    } else if (op && strcmp(op, "release") == 0) {
      o->op = RT_FX_RELEASE;
      fx->nops++;
    } else if (op && strcmp(op, "optout") == 0) {
      o->op = RT_FX_OPTOUT;
      fx->nops++;
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  fx->usage = t->usage;
  return true;
}

/* A finished step: its state and effects out of Lua, or the reason they
 * cannot be stored. run's R_COUNT values are on top of t->co. */
static void turn_finish(rt_lturn *t, const char *about) {
  rt_bundle *b = t->b;
  lua_State *co = t->co;
  luaL_checkstack(co, 24, "effects");
  int top = lua_gettop(co), res = top - R_COUNT + 1;
  fxb f = {.t = t, .L = co, .jb = b->jb, .left = b->alloc.limit};
  f.err[0] = '\0';
  bool ok = false;
  if (res < 1) lua_pushnil(co);   /* cannot be: host.lua's run returns them all */
  else lua_pushvalue(co, res + R_SLOTS);
  if (!lua_istable(co, -1)) {
    snprintf(f.err, sizeof f.err, "c.slots must stay a table");
  } else {
    size_t scap = b->o.state_max_bytes ? b->o.state_max_bytes : (size_t)1 << 20;
    rt_lconv_lim lim = {.root = "c.slots", .cap = scap, .cap_name = "limits.state_max_kb"};
    if (rt_lconv_encode(co, -1, &f.jb, &lim, f.err, sizeof f.err) == 0) {
      t->fx.state_json = ar_str(t, rt_buf_str(&f.jb), f.jb.len);
      t->fx.state_len = f.jb.len;
      lua_pushvalue(co, -1);
      t->state_ref = luaL_ref(co, LUA_REGISTRYINDEX);
      ok = build_effects(t, res, about, &f);
    }
  }
  lua_settop(co, top);
  /* The buffer stays with the bundle for the next turn, unless a big
   * state made it big. */
  if (f.jb.cap > 65536) rt_buf_free(&f.jb);
  rt_buf_reset(&f.jb);
  b->jb = f.jb;
  if (ok) {
    t->status = RT_LTURN_DONE;
    return;
  }
  if (!f.err[0]) snprintf(f.err, sizeof f.err, "the step's result cannot be stored");
  t->error = json_pack("{s:s, s:s}", "code", "state", "msg", f.err);
  if (!t->error) t->error = json_pack("{s:s, s:s}", "code", "state", "msg", "the step's result cannot be stored");
  add_trace(t, t->error);
  t->status = RT_LTURN_ERROR;
}

static void drop_result(rt_lturn *t) {
  if (t->state_ref != LUA_NOREF) {
    luaL_unref(t->b->L, LUA_REGISTRYINDEX, t->state_ref);
    t->state_ref = LUA_NOREF;
  }
  memset(&t->fx, 0, sizeof t->fx);
}

static void cache_drop_all(rt_bundle *b);

static int turn_resume(rt_lturn *t, int nargs) {
  rt_bundle *b = t->b;
  int nres = 0;
  b->alloc.enforce = true;
  if (t->ticked) tick_running = t->co;
  int st = lua_resume(t->co, NULL, nargs, &nres);
  tick_running = NULL;
  b->alloc.enforce = false;
  check_module_state(t);
  if (st == LUA_YIELD) {
    lua_pop(t->co, nres);
    return t->status = RT_LTURN_YIELD;
  }
  /* A step the tick caught: it ran TICK_MS of CPU or more (lvm.h). */
  if (t->ticked && lua_gethook(t->co)) tick_long_steps++;
  /* The last I/O's memory goes once the coroutine is done with it. */
  turn_cancel_io(t);
  if (st == LUA_OK) {
    turn_finish(t, t->about);
  } else {
    turn_error(t, st);
    t->status = RT_LTURN_ERROR;
  }
  if (t->module_err && t->status != RT_LTURN_ERROR) {
    /* its effects rest on a value shared by every chat */
    drop_result(t);
    t->error = t->module_err;
    t->module_err = NULL;
    t->status = RT_LTURN_ERROR;
  }
  if (t->status == RT_LTURN_ERROR) {
  drop_result(t);
  }
  turn_release(t, st == LUA_OK);
  if (st == LUA_ERRMEM) cache_drop_all(b);
  if (st == LUA_ERRMEM || t->status == RT_LTURN_ERROR) lua_gc(b->L, LUA_GCCOLLECT);
  return t->status;
}

/* ---- the state cache ---- */

static void cache_remove(rt_bundle *b, lua_State *L, int64_t id) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, b->cache_ref);
  if (lua_rawgeti(L, -1, (lua_Integer)id) != LUA_TNIL) {
    lua_pushnil(L);
    lua_rawseti(L, -3, (lua_Integer)id);
    b->cache_n--;
  }
  lua_pop(L, 2);
}

/* Drops the oldest kept state; false when the ring is empty. */
static bool cache_evict_one(rt_bundle *b) {
  lua_State *L = b->L;
  while (b->ring_len) {
    cache_slot s = b->ring[b->ring_head];
    b->ring_head = (b->ring_head + 1) % b->ring_cap;
    b->ring_len--;
    lua_rawgeti(L, LUA_REGISTRYINDEX, b->cache_ref);
    bool live = false;
    if (lua_rawgeti(L, -1, (lua_Integer)s.id) == LUA_TTABLE) {
      lua_rawgeti(L, -1, 3);
      live = (uint64_t)lua_tointeger(L, -1) == s.seq;
      lua_pop(L, 1);
    }
    if (live) {
      lua_pushnil(L);
      lua_rawseti(L, -3, (lua_Integer)s.id);
      b->cache_n--;
    }
    lua_pop(L, 2);
    if (live) return true;
  }
  return false;
}

static void cache_drop_all(rt_bundle *b) {
  if (b->cache_ref == LUA_NOREF) return;
  lua_newtable(b->L);
  lua_rawseti(b->L, LUA_REGISTRYINDEX, b->cache_ref);
  b->cache_n = 0;
  b->ring_len = b->ring_head = 0;
}

size_t rt_bundle_cached_states(const rt_bundle *b) { return b->cache_n; }

bool rt_bundle_keeps_states(const rt_bundle *b) { return b && b->cache_max > 0; }

void rt_bundle_collect(rt_bundle *b) {
  while (b->npool) luaL_unref(b->L, LUA_REGISTRYINDEX, b->pool[--b->npool]);
  cache_drop_all(b);
  rt_buf_free(&b->jb);
  lua_gc(b->L, LUA_GCCOLLECT);
}

void rt_bundle_forget_state(rt_bundle *b, int64_t conv_id) {
  if (b->cache_n) cache_remove(b, b->L, conv_id);
}

void rt_lturn_keep_state(rt_lturn *t, int64_t rev) {
  rt_bundle *b = t->b;
  if (t->status != RT_LTURN_DONE || t->state_ref == LUA_NOREF || !b->cache_max || !t->conv_id)
    return;
  lua_State *L = b->L;
  if (!b->ring) {
    b->ring_cap = b->cache_max * 2;
    b->ring = rt_xcalloc(b->ring_cap, sizeof *b->ring);
  }
  /* Bounded by count and by the Lua memory the cache may take: under
   * pressure each new entry pushes out two old ones. */
  int extra = b->alloc.used > b->alloc.limit / 4 ? 2 : 0;
  while ((b->cache_n >= b->cache_max || extra-- > 0) && cache_evict_one(b)) {}
  if (b->ring_len == b->ring_cap) {   /* only stale slots are left beyond cache_max */
    b->ring_head = (b->ring_head + 1) % b->ring_cap;
    b->ring_len--;
  }
  uint64_t seq = ++b->cache_seq;
  lua_rawgeti(L, LUA_REGISTRYINDEX, b->cache_ref);
  if (lua_rawgeti(L, -1, (lua_Integer)t->conv_id) == LUA_TNIL) b->cache_n++;
  lua_pop(L, 1);
  lua_createtable(L, 3, 0);
  lua_rawgeti(L, LUA_REGISTRYINDEX, t->state_ref);
  lua_rawseti(L, -2, 1);
  lua_pushinteger(L, (lua_Integer)rev);
  lua_rawseti(L, -2, 2);
  lua_pushinteger(L, (lua_Integer)seq);
  lua_rawseti(L, -2, 3);
  lua_rawseti(L, -2, (lua_Integer)t->conv_id);
  lua_pop(L, 1);
  b->ring[(b->ring_head + b->ring_len) % b->ring_cap] = (cache_slot){t->conv_id, seq};
  b->ring_len++;
  luaL_unref(L, LUA_REGISTRYINDEX, t->state_ref);
  t->state_ref = LUA_NOREF;
}

/* Pushes the conversation's state on co: the kept table when the cache
 * holds it at this revision (taken out: a step that fails must not leave
 * it half changed there), else the stored text decoded. An unreadable
 * text (a store edited by hand) becomes an empty table rather than a dead
 * conversation. [-0, +1] */
static void push_state(rt_bundle *b, lua_State *co, const rt_lturn_in *in) {
  if (b->cache_n && in->id) {
    lua_rawgeti(co, LUA_REGISTRYINDEX, b->cache_ref);
    if (lua_rawgeti(co, -1, (lua_Integer)in->id) == LUA_TTABLE) {
      lua_rawgeti(co, -1, 2);
      bool same = lua_tointeger(co, -1) == (lua_Integer)in->rev;
      lua_pop(co, 1);
      lua_pushnil(co);
      lua_rawseti(co, -3, (lua_Integer)in->id);
      b->cache_n--;
      if (same) {
        lua_rawgeti(co, -1, 1);
        lua_replace(co, -3);
        lua_pop(co, 1);
        return;
      }
    }
    lua_pop(co, 2);
  }
  const char *s = in->state ? in->state : "{}";
  size_t n = in->state ? (in->state_len ? in->state_len : strlen(in->state)) : 2;
  size_t i = 0;
  while (i < n && (s[i] == ' ' || s[i] == '\n' || s[i] == '\r' || s[i] == '\t')) i++;
  if (i < n && s[i] == '{' && rt_lconv_decode(co, s, n, NULL) == 0) return;
  lua_newtable(co);
}

static void set_field(lua_State *L, const char *k, const char *v) {
  if (!v) return;
  lua_pushstring(L, v);
  lua_setfield(L, -2, k);
}

int rt_lturn_begin(rt_bundle *b, void *host_turn, const rt_lturn_in *in, rt_lturn **out) {
  rt_lturn *t = rt_xcalloc(1, sizeof *t);
  t->bg.is_turn = true;
  t->bg.limit = b->o.step_instructions;
  if (b->o.step_timeout_ms > 0) {
    t->bg.timeout_ms = b->o.step_timeout_ms;
    t->bg.deadline_ns = mono_ns() + (uint64_t)b->o.step_timeout_ms * 1000000u;
  }
  t->b = b;
  t->host_turn = host_turn;
  t->co_ref = t->trace_ref = t->state_ref = LUA_NOREF;
  t->conv_id = in->id;
  rt_bundle_ref(b);
  *out = t;
  lua_State *L = b->L;
  if (b->npool) {
    t->co_ref = b->pool[--b->npool];
    lua_rawgeti(L, LUA_REGISTRYINDEX, t->co_ref);
    t->co = lua_tothread(L, -1);
    lua_pop(L, 1);
  } else {
    t->co = lua_newthread(L);
    t->co_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  }
  lua_State *co = t->co;
  *(budget **)lua_getextraspace(co) = &t->bg;
  t->ticked = tick_here();
  if (!t->ticked) lua_sethook(co, hook, LUA_MASKCOUNT, HOOK_EVERY);
  lua_rawgeti(co, LUA_REGISTRYINDEX, b->run_ref);
  lua_createtable(co, 0, 12);   /* the fields below, mode, slots and turn (host.lua run) */
  lua_pushinteger(co, (lua_Integer)in->id);
  lua_setfield(co, -2, "id");
  set_field(co, "channel", in->channel);
  set_field(co, "chat", in->chat);
  set_field(co, "user", in->user);
  set_field(co, "phone", in->phone);
  set_field(co, "name", in->name);
  set_field(co, "flow", in->flow);
  set_field(co, "step", in->step);
  set_field(co, "mode", in->mode);
  push_state(b, co, in);
  lua_setfield(co, -2, "slots");
  if (!in->event || rt_lconv_decode(co, in->event, in->event_len ? in->event_len : strlen(in->event),
                                    NULL) != 0 || !lua_istable(co, -1)) {
    lua_settop(co, 2);
    lua_createtable(co, 0, 1);
    lua_pushliteral(co, "text");
    lua_setfield(co, -2, "kind");
  }
  lua_newtable(co);
  lua_pushvalue(co, -1);
  t->trace_ref = luaL_ref(co, LUA_REGISTRYINDEX);
  /* A message to another chat says which conversation it is about. */
  t->about = in->chat ? ar_str(t, in->chat, strlen(in->chat)) : NULL;
  return turn_resume(t, 3);
}

int rt_lturn_start(rt_bundle *b, void *host_turn, json_t *conv, const char *slots, json_t *ev,
                   rt_lturn **out) {
#define JS(k) json_string_value(json_object_get(conv, k))
  rt_lturn_in in = {
    .id = (int64_t)json_integer_value(json_object_get(conv, "id")), .rev = -1,
    .channel = JS("channel"), .chat = JS("chat"), .user = JS("user"), .phone = JS("phone"),
    .name = JS("name"), .flow = JS("flow"), .step = JS("step"), .mode = JS("mode"),
    .state = slots,
  };
#undef JS
  char *evs = ev ? json_dumps(ev, JSON_COMPACT) : NULL;
  in.event = evs;
  int rc = rt_lturn_begin(b, host_turn, &in, out);
  free(evs);
  return rc;
}

int rt_lturn_resume(rt_lturn *t) {
  if (t->status != RT_LTURN_YIELD || !t->co) return t->status;
  return turn_resume(t, 0);
}

void *rt_lturn_host(rt_lturn *t) { return t->host_turn; }

const rt_fx *rt_lturn_effects(rt_lturn *t) {
  return t->status == RT_LTURN_DONE ? &t->fx : NULL;
}
const char *rt_lturn_slots(rt_lturn *t) {
  return t->status == RT_LTURN_DONE ? t->fx.state_json : NULL;
}
json_t *rt_lturn_error(rt_lturn *t) { return t->error; }

void rt_lturn_kill(rt_lturn *t, const char *code, const char *msg) {
  if (t->status != RT_LTURN_YIELD) return;
  turn_cancel_io(t);
  t->error = json_pack("{s:s, s:s}", "code", code, "msg", msg);
  add_trace(t, t->error);
  t->status = RT_LTURN_ERROR;
  turn_release(t, false);
}

void rt_lturn_free(rt_lturn *t) {
  if (!t) return;
  turn_cancel_io(t);
  if (t->co) turn_release(t, false);
  drop_result(t);
  while (t->arena) {
    arena_blk *n = t->arena->next;
    free(t->arena);
    t->arena = n;
  }
  json_decref(t->error);
  json_decref(t->module_err);
  rt_bundle_unref(t->b);
  free(t);
}
