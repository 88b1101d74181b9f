/* test_lfreeze.c -- module-level data is read-only after load: one chat
 * cannot keep data (or memory) in a file-top table or variable that the
 * next chat sees. Reads of such tables keep working (#, ipairs, pairs,
 * next, table.concat/unpack, json, c.slots), class-like tables with their
 * own metatables keep working, and writes fail with a clear message. */
#include "lfreeze.h"
#include "lvm.h"
#include <lauxlib.h>
#include <lualib.h>
#include "http_client.h"
#include "rt.h"
#include "t.h"
#include "tlfreeze.h"
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int64_t fake_now(void *ud) { (void)ud; return 1772434800000LL; }
/* HTTP answered by a transport, from the loop: the test runs the loop
 * until the turn is ready. */
static void fake_answer(void *ud, const rt_http_opts *o, rt_http_resp *r) {
  (void)ud; (void)o;
  r->status = 200;
}
static int ready;
static void fake_ready(void *ud, rt_lturn *t) { (void)ud; (void)t; ready++; }
static rt_host host = {.now_ms = fake_now, .ready = fake_ready};
static uv_loop_t loop;
static rt_http *http;
static char dir[64];
static rt_bundle *b;

static void put(const char *rel, const char *src) {
  char path[256];
  snprintf(path, sizeof path, "%s/%s", dir, rel);
  FILE *f = fopen(path, "w");
  fputs(src, f);
  fclose(f);
}

static void load(size_t mem_mb) {
  rt_bundle_unref(b);
  b = NULL;
  json_t *shop = json_pack("{s:s, s:{s:s}}", "name", "shop", "persona", "name", "V");
  rt_bundle_opts o = {.flows_dir = dir, .start_flow = "main", .shop = shop,
                      .mem_limit = mem_mb << 20, .step_instructions = 10000000, .host = &host,
                      .http = http};
  char *err = NULL;
  if (rt_bundle_load(&o, &b, &err) != RT_OK) {
    fprintf(stderr, "load: %s\n", err);
    free(err);
  }
  json_decref(shop);
}

/* Runs a step of flow main for chat `user` with text; the new state text
 * (owned) or "ERR: " and the message. */
static char *run(const char *step, const char *user, const char *text) {
  json_t *conv = json_pack("{s:i, s:s, s:s, s:s, s:s, s:s}", "id", 1, "channel", "t", "chat", user,
                           "user", user, "flow", "main", "step", step);
  json_t *ev = json_pack("{s:s, s:s}", "kind", "text", "text", text);
  rt_lturn *t = NULL;
  int st = rt_lturn_start(b, NULL, conv, "{}", ev, &t);
  char *out = st == RT_LTURN_DONE
                  ? rt_xstrdup(rt_lturn_slots(t))
                  : rt_xasprintf("ERR: %s", json_string_value(json_object_get(rt_lturn_error(t), "msg")));
  rt_lturn_free(t);
  json_decref(conv);
  json_decref(ev);
  return out;
}

#define CHECK_HAS(s, want) do { char *s_ = (s); \
    if (!strstr(s_, want)) { fprintf(stderr, "  got: %s\n  want: %s\n", s_, want); CHECK(0); } \
    free(s_); } while (0)

/* The review's R8: chat a keeps 8 MB strings in a file-top table; before,
 * chat b's normal 10 MB step then failed "not enough memory". */
T(hog_cannot_crowd_out_other_chats) {
  put("main.lua",
      "local cache = {}\n"
      "return flow 'main' { start = function(c, ev)\n"
      "  if ev.text == 'hog' then cache[#cache + 1] = string.rep('x', 8*1024*1024)\n"
      "    c.slots.held = #cache * 8 return end\n"
      "  local work = string.rep('y', 10*1024*1024) c.slots.ok = c.user .. #work end }\n");
  load(24);
  CHECK(b != NULL);
  if (!b) return;
  CHECK_HAS(run("start", "b", "hi"), "\"ok\":\"b10485760\"");
  for (int i = 0; i < 6; i++)
    CHECK_HAS(run("start", "a", "hog"),
              "ERR: flows/main.lua:3: module-level table (flows/main.lua) is read-only after load "
              "(setting [1]): keep per-conversation data in c.slots");
  CHECK_HAS(run("start", "b", "hi again"), "\"ok\":\"b10485760\"");
}

/* A file-top local changed by a step: the step fails, the value is put
 * back, the next chat sees the loaded value. */
T(module_scalar_is_put_back) {
  put("main.lua",
      "local count, last = 0, 'none'\n"
      "local counter = require('counter')\n"
      "local function bump() count = count + 1 end\n"
      "return flow 'main' {\n"
      "  start = function(c, ev) last = c.user bump() c.slots.n = count end,\n"
      "  peek = function(c, ev) c.slots.n = count c.slots.last = last end,\n"
      "  lib = function(c, ev) c.slots.n = counter.inc() end,\n"
      "  local_ok = function(c, ev) local n = 0 for i = 1, 3 do n = n + i end c.slots.n = n end,\n"
      "}\n");
  put("lib/counter.lua",
      "local n = 0\nlocal M = {}\nfunction M.inc() n = n + 1 return n end\nreturn M\n");
  load(8);
  CHECK(b != NULL);
  if (!b) return;
  CHECK_HAS(run("start", "a", "x"), "ERR: module-level variable ");
  CHECK_HAS(run("start", "a", "x"), "(flows/main.lua) was changed by a step: module-level values "
                                    "are read-only after load; keep per-conversation data in c.slots");
  CHECK_HAS(run("peek", "b", "x"), "{\"last\":\"none\",\"n\":0}");
  CHECK_HAS(run("lib", "a", "x"), "ERR: module-level variable 'n' (lib/counter.lua) was changed");
  CHECK_HAS(run("lib", "b", "x"), "ERR: module-level variable 'n' (lib/counter.lua)");
  CHECK_HAS(run("local_ok", "b", "x"), "{\"n\":6}");
}

/* A step that changes a file-top local and then waits for HTTP: while it
 * waits, other chats see the loaded value; when it ends, it fails. */
T(module_scalar_during_http_wait) {
  put("main.lua",
      "local owner = 'nobody'\n"
      "return flow 'main' {\n"
      "  start = function(c, ev) owner = c.user http.get('http://127.0.0.1:9/') c.slots.o = owner end,\n"
      "  peek = function(c, ev) c.slots.o = owner end,\n"
      "}\n");
  load(8);
  CHECK(b != NULL);
  if (!b) return;
  json_t *conv = json_pack("{s:i, s:s, s:s, s:s, s:s}", "id", 1, "channel", "t", "chat", "a",
                           "flow", "main", "step", "start");
  json_t *ev = json_pack("{s:s, s:s}", "kind", "text", "text", "x");
  rt_lturn *t = NULL;
  CHECK(rt_lturn_start(b, NULL, conv, "{}", ev, &t) == RT_LTURN_YIELD);
  CHECK_HAS(run("peek", "b", "x"), "{\"o\":\"nobody\"}");
  ready = 0;
  while (!ready) uv_run(&loop, UV_RUN_ONCE);
  CHECK(rt_lturn_resume(t) == RT_LTURN_ERROR);
  const char *msg = json_string_value(json_object_get(rt_lturn_error(t), "msg"));
  CHECK(msg && strstr(msg, "module-level variable 'owner' (flows/main.lua) was changed by a step"));
  rt_lturn_free(t);
  json_decref(conv);
  json_decref(ev);
  CHECK_HAS(run("peek", "b", "x"), "{\"o\":\"nobody\"}");
}

/* Reads of sealed tables behave as before, also through C (json, c.slots);
 * every kind of write fails; a write inside pcall leaves nothing behind. */
T(reads_work_writes_fail) {
  put("main.lua",
      "local w = require('words')\n"
      "local function rd(c)\n"
      "  local s = ''\n"
      "  for i, v in ipairs(w.list) do s = s .. i .. v end\n"
      "  local keys = 0 for k in pairs(w.set) do keys = keys + 1 end\n"
      "  c.slots.r = table.concat({#w.list, s, table.concat(w.list, ','), select('#', table.unpack(w.list)),\n"
      "    keys, tostring(next(w.set) ~= nil), rawlen(w.list), json.encode(w.list), w.nested.deep[2],\n"
      "    w.n, tostring(w.set.b), tostring(w.missing)}, ' ')\n"
      "  c.slots.copy = w.list\n"
      "  local mine = w.make() mine.x = 1 c.slots.mine = mine\n"
      "end\n"
      "local W = {\n"
      "  insert = function() table.insert(w.list, 'd') end,\n"
      "  set = function() w.list[1] = 'z' end,\n"
      "  replace = function() w.list = {} end,\n"
      "  sort = function() table.sort(w.list, function(a, b) return a > b end) end,\n"
      "  remove = function() table.remove(w.list) end,\n"
      "  deep = function() w.nested.deep[3] = 'x' end,\n"
      "  late = function() require('late').seen = true end,\n"
      "  meta = function() setmetatable(w.list, nil) end,\n"
      "}\n"
      "return flow 'main' {\n"
      "  start = rd,\n"
      "  write = function(c, ev) W[ev.text]() end,\n"
      "  quiet = function(c, ev) c.slots.ok = pcall(function() w.list[4] = 'd' end) c.slots.n = #w.list end,\n"
      "}\n");
  put("lib/words.lua",
      "local M = { list = {'a', 'b', 'c'}, set = {a = true, b = true}, n = 3, nested = {deep = {1, 2}} }\n"
      "function M.make() return {} end\nreturn M\n");
  put("lib/late.lua", "return {}\n");
  load(8);
  CHECK(b != NULL);
  if (!b) return;
  CHECK_HAS(run("start", "a", "x"),
            "{\"copy\":[\"a\",\"b\",\"c\"],\"mine\":{\"x\":1},"
            "\"r\":\"3 1a2b3c a,b,c 3 2 true 3 [\\\"a\\\",\\\"b\\\",\\\"c\\\"] 2 3 true nil\"}");
  const char *writes[] = {"insert", "set", "replace", "sort", "remove", "deep", NULL};
  for (int i = 0; writes[i]; i++)
    CHECK_HAS(run("write", "a", writes[i]), "module-level table (lib/words.lua) is read-only after load");
  CHECK_HAS(run("write", "a", "late"), "module-level table (lib/late.lua) is read-only after load (setting 'seen')");
  CHECK_HAS(run("write", "a", "meta"), "cannot change a protected metatable");
  CHECK_HAS(run("quiet", "a", "x"), "{\"n\":3,\"ok\":false}");
  CHECK_HAS(run("start", "b", "x"), "\"copy\":[\"a\",\"b\",\"c\"]");
}

/* Tables the flow gave a metatable: a class used as the metatable of
 * objects made in steps, inheritance, a default-value __index function,
 * __call. Their metamethod fields stay watched. */
T(class_like_tables) {
  put("main.lua",
      "local cls = require('cls')\n"
      "return flow 'main' {\n"
      "  start = function(c, ev)\n"
      "    local cart = cls.Cart.new({'x', 'y'})\n"
      "    cart.items[3] = 'z'\n"
      "    c.slots.r = table.concat({cart:count(), tostring(cart), cls.Derived.kind, cls.Derived.hello(),\n"
      "      cls.Defaults.a, cls.Defaults.zz, cls.Callable(21), tostring(getmetatable(cls.Derived).__index == cls.Base),\n"
      "      cls.default_cart:count(), tostring(getmetatable(cart) == cls.Cart), tostring(cls.Derived == cls.Derived)}, ' ')\n"
      "  end,\n"
      "  add = function(c, ev) cls.Cart.extra = 1 end,\n"
      "  swap = function(c, ev) cls.Cart.__index = nil end,\n"
      "  base = function(c, ev) cls.Base.kind = 'x' end,\n"
      "}\n");
  put("lib/cls.lua",
      "local Cart = {}\nCart.__index = Cart\n"
      "function Cart.new(items) return setmetatable({items = items or {}}, Cart) end\n"
      "function Cart:count() return #self.items end\n"
      "Cart.__tostring = function(self) return 'cart of ' .. #self.items end\n"
      "local Base = {kind = 'base', hello = function() return 'hi' end}\n"
      "local Derived = setmetatable({kind = 'derived'}, {__index = Base})\n"
      "local Defaults = setmetatable({a = 1}, {__index = function(t, k) return 'default-' .. k end})\n"
      "local Callable = setmetatable({}, {__call = function(self, x) return x * 2 end})\n"
      "return {Cart = Cart, Base = Base, Derived = Derived, Defaults = Defaults, Callable = Callable,\n"
      "        default_cart = Cart.new({'a'})}\n");
  load(8);
  CHECK(b != NULL);
  if (!b) return;
  const char *want = "{\"r\":\"3 cart of 3 derived hi 1 default-zz 42 true 1 true true\"}";
  CHECK_HAS(run("start", "a", "x"), want);
  CHECK_HAS(run("add", "a", "x"), "module-level table (lib/cls.lua) is read-only after load (setting 'extra')");
  CHECK_HAS(run("swap", "a", "x"), "ERR: module-level table field '__index' (lib/cls.lua) was changed by a step");
  CHECK_HAS(run("base", "a", "x"), "module-level table (lib/cls.lua) is read-only after load (setting 'kind')");
  CHECK_HAS(run("start", "b", "x"), want);   /* __index is back */
}

/* The host's own tables are not sealed: library views, shop, the
 * environment's errors, per-turn tables, c.slots. */
T(host_untouched) {
  put("main.lua",
      "local up = string.upper\n"
      "return flow 'main' { start = function(c, ev)\n"
      "  local t = {} t.x = up('a') t.y = shop.name\n"
      "  c.slots.t = t c.slots.p = select(2, pcall(function() string.upper = nil end))\n"
      "  c.slots.g = select(2, pcall(function() x = 1 end))\n"
      "end }\n");
  load(8);
  CHECK(b != NULL);
  if (!b) return;
  char *s = run("start", "a", "x");
  if (!strstr(s, "\"t\":") || !strstr(s, "string.upper cannot be changed") ||
      !strstr(s, "global 'x' is not allowed")) {
    fprintf(stderr, "  got: %s\n", s);
    CHECK(0);
  }
  free(s);
  s = run("start", "b", "x");
  CHECK(strstr(s, "string.upper cannot be changed") != NULL);
  free(s);
}

/* A lib module no flow requires at load still loads (and fails) at load,
 * not in some chat's step. */
T(unused_module_fails_at_load) {
  put("main.lua", "return flow 'main' { start = function(c, ev) end }\n");
  put("lib/broken.lua", "local x = nil\nreturn x.y\n");
  rt_bundle_unref(b);
  b = NULL;
  rt_bundle_opts o = {.flows_dir = dir, .start_flow = "main", .host = &host};
  char *err = NULL;
  CHECK(rt_bundle_load(&o, &b, &err) != RT_OK);
  CHECK(err && strstr(err, "lib/broken.lua:2") != NULL);
  free(err);
}

/* Only the file-top locals some function may assign are compared after a
 * step (read from the functions' bytecode at seal): here 2 of 12. An
 * assignment two functions deep, or in a coroutine, is still caught and
 * put back; the same as before for everything else. */
T(only_assigned_upvalues_are_checked) {
  lua_State *L = tlf_state();
  const char *src =
      "local a1, a2, a3, a4, a5, a6, a7, a8 = 1, 2, 3, 4, 5, 6, 7, 8\n"
      "local deep, viaco, kept = 0, 0, 0\n"
      "local M = {}\n"
      "function M.read() return a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + kept end\n"
      "function M.nested() return function() return function() deep = deep + 1 end end end\n"
      "function M.co() return coroutine.wrap(function() viaco = 1 end) end\n"
      "function M.get() return deep, viaco end\n"
      "return M\n";
  int m = tlf_root(L, src, "flows/x.lua");
  CHECK(m != 0);
  int nt = 0, nv = 0, nc = 0;
  CHECK(rt_lfreeze_seal(L, &nt, &nv, &nc));
  CHECK(nv == 12);   /* a1..a8, kept, deep, viaco and _ENV */
  CHECK(nc == 2);    /* deep, viaco */
  char msg[512];
  CHECK(rt_lfreeze_check(L, msg, sizeof msg) == 0);
  /* M.nested()()() */
  lua_settop(L, m);
  lua_getfield(L, m, "nested");
  lua_call(L, 0, 1);
  lua_call(L, 0, 1);
  lua_call(L, 0, 0);
  CHECK(rt_lfreeze_check(L, msg, sizeof msg) == 1);
  CHECK(strstr(msg, "module-level variable 'deep' (flows/x.lua) was changed by a step") != NULL);
  lua_getfield(L, m, "co");
  lua_call(L, 0, 1);
  lua_call(L, 0, 0);
  CHECK(rt_lfreeze_check(L, msg, sizeof msg) == 1);
  CHECK(strstr(msg, "'viaco'") != NULL);
  lua_getfield(L, m, "get");
  lua_call(L, 0, 2);
  CHECK(lua_tointeger(L, -2) == 0 && lua_tointeger(L, -1) == 0);   /* both put back */
  lua_settop(L, m);
  CHECK(rt_lfreeze_check(L, msg, sizeof msg) == 0);
  lua_close(L);
}

/* A coroutine reachable at seal (flows have no coroutine library; a host
 * that lent one would make this possible) can change a file-top variable
 * without SETUPVAL, by a register write while it holds it open: seal then
 * checks every variable, and such a change is found and put back. */
T(suspended_coroutine_means_check_all) {
  lua_State *L = tlf_state();
  const char *src =
      "local M = {}\n"
      "local co = coroutine.create(function()\n"
      "  local n = 0\n"
      "  M.get = function() return n end\n"
      "  coroutine.yield()\n"
      "  n = 7\n"
      "end)\n"
      "coroutine.resume(co)\n"
      "M.co = co\n"
      "return M\n";
  int m = tlf_root(L, src, "flows/co.lua");
  CHECK(m != 0);
  int nt = 0, nv = 0, nc = 0;
  CHECK(!rt_lfreeze_seal(L, &nt, &nv, &nc));
  CHECK(nc == nv && nv >= 1);
  char msg[512];
  CHECK(rt_lfreeze_check(L, msg, sizeof msg) == 0);
  /* n = 7 is a register write in the coroutine (n is its local, open). */
  lua_getfield(L, m, "co");
  lua_State *co = lua_tothread(L, -1);
  int nres = 0;
  CHECK(lua_resume(co, L, 0, &nres) == LUA_OK);
  lua_settop(L, m);
  CHECK(rt_lfreeze_check(L, msg, sizeof msg) == 1);
  CHECK(strstr(msg, "'n'") != NULL);
  lua_getfield(L, m, "get");
  lua_call(L, 0, 1);
  CHECK(lua_tointeger(L, -1) == 0);
  lua_close(L);
}

int main(void) {
  uv_loop_init(&loop);
  http = rt_http_new(&loop);
  rt_http_set_transport(http, fake_answer, NULL);
  snprintf(dir, sizeof dir, "/tmp/test_lfreeze.XXXXXX");
  if (!mkdtemp(dir)) return 1;
  char lib[128];
  snprintf(lib, sizeof lib, "%s/lib", dir);
  mkdir(lib, 0700);
  T_RUN(hog_cannot_crowd_out_other_chats);
  T_RUN(module_scalar_is_put_back);
  T_RUN(module_scalar_during_http_wait);
  T_RUN(reads_work_writes_fail);
  T_RUN(class_like_tables);
  T_RUN(host_untouched);
  T_RUN(unused_module_fails_at_load);
  T_RUN(only_assigned_upvalues_are_checked);
  T_RUN(suspended_coroutine_means_check_all);
  rt_bundle_unref(b);
  const char *files[] = {"main.lua", "lib/counter.lua", "lib/words.lua", "lib/late.lua",
                         "lib/cls.lua", "lib/broken.lua", NULL};
  for (int i = 0; files[i]; i++) {
    char p[256];
    snprintf(p, sizeof p, "%s/%s", dir, files[i]);
    unlink(p);
  }
  rmdir(lib);
  rmdir(dir);
  rt_http_close(http, NULL, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  return T_DONE();
}
