/* test_lapi_pattern.c -- the budget-charged pattern functions behave like
 * stock Lua 5.4 and stop runaway patterns.
 *
 * differential: a state with the stock string library is the reference; a
 * second state has lapi_pattern's functions installed. The same Lua driver
 * runs thousands of generated (pattern, subject, init) cases and a table of
 * edge cases in both and the serialized results (every return value, or the
 * error text) must be identical.
 * budget/timeout/R5: flows in a real bundle, where a backtracking pattern
 * must end with the budget or timeout error in well under a second of
 * matcher work instead of running for many seconds. */
#include "lapi_pattern.h"
#include "lvm.h"
#include "rt.h"
#include "t.h"
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- differential ---- */

/* Runs one case and returns a text describing everything it returned. */
static const char *DRIVER =
  "local function ser(...)\n"
  "  local t = {}\n"
  "  for i = 1, select('#', ...) do\n"
  "    local v = select(i, ...)\n"
  "    t[i] = math.type(v) or type(v)\n"
  "    t[i] = t[i] .. ':' .. tostring(v)\n"
  "  end\n"
  "  return '(' .. table.concat(t, ',') .. ')'\n"
  "end\n"
  "local repl_t = { a = 'A', b = false, ['1'] = 'one', x = 7, ['(x)'] = 'px', [2] = 'two' }\n"
  "local bad_t = { a = {} }\n"
  "local function repl_f(...)\n"
  "  local n = select('#', ...)\n"
  "  local a = ...\n"
  "  if a == 'b' then return false end\n"
  "  if a == 'c' then return nil end\n"
  "  if a == 'z' then return {} end\n"
  "  if a == '1' then return 10 end\n"
  "  local t = {}\n"
  "  for i = 1, n do t[i] = tostring((select(i, ...))) end\n"
  "  return '<' .. table.concat(t, '/') .. '>'\n"
  "end\n"
  "local function run(kind, s, p, a, b)\n"
  "  if kind == 'find' then return ser(string.find(s, p, a, b)) end\n"
  "  if kind == 'mfind' then return ser(s:find(p, a, b)) end\n"
  "  if kind == 'match' then return ser(string.match(s, p, a)) end\n"
  "  if kind == 'mmatch' then return ser(s:match(p, a)) end\n"
  "  if kind == 'gmatch' then\n"
  "    local out, it = {}, string.gmatch(s, p, a)\n"
  "    for i = 1, 200 do\n"
  "      local r = table.pack(it())\n"
  "      out[#out + 1] = ser(table.unpack(r, 1, r.n))\n"
  "      if r.n == 0 or r[1] == nil then break end\n"
  "    end\n"
  "    out[#out + 1] = ser(it())\n"
  "    return table.concat(out, '|')\n"
  "  end\n"
  "  if kind == 'gsub' then\n"
  "    local r = a\n"
  "    if a == '\\1T' then r = repl_t elseif a == '\\1B' then r = bad_t\n"
  "    elseif a == '\\1F' then r = repl_f elseif a == '\\1N' then r = nil\n"
  "    elseif a == '\\1I' then r = 42 end\n"
  "    if b ~= nil then return ser(string.gsub(s, p, r, b)) end\n"
  "    return ser(string.gsub(s, p, r))\n"
  "  end\n"
  "  error('unknown kind ' .. kind)\n"
  "end\n"
  "return function(kind, s, p, a, b)\n"
  "  local ok, r = pcall(run, kind, s, p, a, b)\n"
  "  return (ok and 'ok ' or 'error ') .. tostring(r)\n"
  "end\n";

typedef struct {
  lua_State *L;
  int fn;
} side;

static int side_open(side *sd, int ours) {
  sd->L = luaL_newstate();
  /* No budget: rt_lvm_charge is a no-op outside a bundle's turn or load. */
  *(void **)lua_getextraspace(sd->L) = NULL;
  luaL_openlibs(sd->L);
  if (ours) rt_lapi_pattern_install(sd->L);
  if (luaL_loadstring(sd->L, DRIVER) != LUA_OK || lua_pcall(sd->L, 0, 1, 0) != LUA_OK) {
    fprintf(stderr, "driver: %s\n", lua_tostring(sd->L, -1));
    return -1;
  }
  sd->fn = luaL_ref(sd->L, LUA_REGISTRYINDEX);
  return 0;
}

/* An argument: NULL is nil; "#5" is the integer 5; "!t"/"!f" booleans;
 * anything else a string of length len (or strlen when len < 0). */
typedef struct {
  const char *v;
  int len;
} arg;

static void push_arg(lua_State *L, arg a) {
  if (!a.v) lua_pushnil(L);
  else if (a.v[0] == '#') lua_pushinteger(L, strtoll(a.v + 1, NULL, 10));
  else if (!strcmp(a.v, "!t")) lua_pushboolean(L, 1);
  else if (!strcmp(a.v, "!f")) lua_pushboolean(L, 0);
  else lua_pushlstring(L, a.v, a.len >= 0 ? (size_t)a.len : strlen(a.v));
}

static char *side_run(side *sd, const char *kind, arg s, arg p, arg a, arg b) {
  lua_rawgeti(sd->L, LUA_REGISTRYINDEX, sd->fn);
  lua_pushstring(sd->L, kind);
  push_arg(sd->L, s);
  push_arg(sd->L, p);
  push_arg(sd->L, a);
  push_arg(sd->L, b);
  lua_call(sd->L, 5, 1);
  char *r = strdup(lua_tostring(sd->L, -1));
  lua_pop(sd->L, 1);
  return r;
}

static side ref, ours;
static int mismatches, compared;

static void compare(const char *kind, arg s, arg p, arg a, arg b) {
  char *x = side_run(&ref, kind, s, p, a, b);
  char *y = side_run(&ours, kind, s, p, a, b);
  compared++;
  if (strcmp(x, y) != 0) {
    if (mismatches++ < 15) {
      fprintf(stderr, "  %s(s=\"%.*s\", p=\"%.*s\", %s, %s)\n    stock: %s\n    ours:  %s\n", kind,
              s.v ? (s.len >= 0 ? s.len : (int)strlen(s.v)) : 3, s.v ? s.v : "nil",
              p.v ? (p.len >= 0 ? p.len : (int)strlen(p.v)) : 3, p.v ? p.v : "nil",
              a.v ? a.v : "nil", b.v ? b.v : "nil", x, y);
    }
  }
  free(x);
  free(y);
}

#define S(x) ((arg){(x), -1})
#define NIL ((arg){NULL, -1})

/* Every function with one subject and pattern, no extra arguments. */
static void compare_all(const char *s, const char *p) {
  compare("find", S(s), S(p), NIL, NIL);
  compare("match", S(s), S(p), NIL, NIL);
  compare("gmatch", S(s), S(p), NIL, NIL);
  compare("gsub", S(s), S(p), S("[%0|%1]"), NIL);
  compare("gsub", S(s), S(p), S("\1F"), NIL);
  compare("gsub", S(s), S(p), S("\1T"), NIL);
}

T(edge_cases) {
  static const char *pats[] = {
    /* classes and their complements */
    "%a+", "%A+", "%c", "%C+", "%d+", "%D+", "%g+", "%G", "%l+", "%L+", "%p+", "%P+",
    "%s+", "%S+", "%u+", "%U+", "%w+", "%W+", "%x+", "%X+", "%z", "%Z", "%.", "%%", "%]",
    /* sets */
    "[%a-]+", "[]]", "[^]]+", "[]a]+", "[^]a]", "[a-]", "[-a]+", "[a-c]+", "[^a-c]+",
    "[%d%s]+", "[%D]", "[%]]", "[%-]", "[a%-z]+", "[z-a]", "[%a-z]", "[.]", "[^%s]+",
    "[", "[a", "[]", "[^]", "[%", "[%]", "[^", "[a-",
    /* single chars and repetitions */
    ".", ".*", ".+", ".-", ".?", "a*", "a+", "a-", "a?", "a-b", "a.-b", "a.*b", "^a*",
    "^", "$", "^$", "a$", "$a", "^^", "a^", "x*$", "%s*$", "^%s*(.-)%s*$",
    /* captures */
    "(a)", "(a)(b)", "((a)(b))", "()", "()a()", "(a*(.)%w(%s*))", "(.-)%s", "(", ")", "(()",
    "(a", "a)", "())", "((", "(.)%1", "(.)(.)%2%1", "%1", "(a)%2", "(a%1)", "()%1", "%0",
    "(a)(b)(c)(d)(e)(f)(g)(h)(i)(j)", "%9",
    /* balance and frontier */
    "%b()", "%b(", "%b", "%bxy", "%b((", "%b)(", "x%b()y", "%f[%w]%w+", "%f[%W]", "%f[%a]",
    "%f[^%z]", "%f[%z]", "%f", "%fa", "%f[a", "%f[%w]", "%f[]]", "%f[^a]",
    /* malformed */
    "%", "a%", "[%a", "(%", "%b(", "*", "+a", "-", "?", "a**", "a*?",
    NULL};
  static const char *subjects[] = {
    "", "a", "abc", "aaa", "hello world", "  trim me  ", "f(a(b)c)d", "x(y)z)", "THE (quick) fox",
    "a]b]", "-a-", "12 apples, 3 pears!", "\t\n\v\f\r x", "a\1b\177c", "aabbaabb", "ab$^",
    "word1 word2", "%%a", "((()))", "abcabcabc", "\xc3\xa9t\xc3\xa9", NULL};
  for (const char **p = pats; *p; p++)
    for (const char **s = subjects; *s; s++) compare_all(*s, *p);

  /* init, plain and negative positions */
  static const char *inits[] = {"#1", "#0", "#-1", "#-3", "#-100", "#2", "#4", "#5", "#100",
                                "#-9223372036854775808", "#9223372036854775807", "1.0", NULL};
  for (const char **i = inits; *i; i++) {
    arg in = S(*i);
    compare("find", S("abcabc"), S("b"), in, NIL);
    compare("find", S("abcabc"), S("b"), in, S("!t"));
    compare("find", S("abcabc"), S("b"), in, S("!f"));
    compare("find", S("abcabc"), S(""), in, NIL);
    compare("find", S("abcabc"), S(".-"), in, NIL);
    compare("find", S("abcabc"), S("^b"), in, NIL);
    compare("find", S("abcabc"), S("c$"), in, NIL);
    compare("find", S("a.c"), S("."), in, S("!t"));
    compare("find", S("a+b"), S("+"), in, S("#1"));
    compare("mfind", S("abcabc"), S("(b)()"), in, NIL);
    compare("match", S("abcabc"), S("(b)(c)"), in, NIL);
    compare("mmatch", S("abcabc"), S("()"), in, NIL);
    compare("match", S(""), S("()"), in, NIL);
    compare("gmatch", S("abcabc"), S("b"), in, NIL);
    compare("gmatch", S("abcabc"), S(""), in, NIL);
    compare("gmatch", S("abc"), S("()"), in, NIL);
  }
  /* embedded NULs, in subject and pattern, plain and not */
  compare("find", (arg){"a\0b\0c", 5}, (arg){"\0", 1}, NIL, NIL);
  compare("find", (arg){"a\0b\0c", 5}, (arg){"\0c", 2}, NIL, S("!t"));
  compare("find", (arg){"a\0b\0c", 5}, (arg){"b\0.", 3}, NIL, NIL);
  compare("find", (arg){"a\0b\0c", 5}, (arg){"%z", 2}, NIL, NIL);
  compare("match", (arg){"a\0b\0c", 5}, (arg){"[\0b]+", 5}, NIL, NIL);
  compare("match", (arg){"a\0b\0c", 5}, (arg){"%f[\0]", 5}, NIL, NIL);
  compare("gsub", (arg){"a\0b\0c", 5}, (arg){"%Z", 2}, S("%0%0"), NIL);
  compare("find", S("a"), (arg){"a%\0", 3}, NIL, NIL);
  compare("find", S("abc"), (arg){"[a\0]", 4}, NIL, NIL);
  compare("find", S("abc"), (arg){"%b\0", 3}, NIL, NIL);
  /* anchored gmatch: '^' is a plain character for gmatch in 5.4 */
  compare("gmatch", S("^a^a"), S("^a"), NIL, NIL);
  compare("gmatch", S("aaa"), S("^a"), NIL, NIL);
  compare("gmatch", S("hello world from lua"), S("%a+"), NIL, NIL);
  compare("gmatch", S("k=v, a=b"), S("(%w+)=(%w+)"), NIL, NIL);
  compare("gmatch", S("abc"), S(".-"), NIL, NIL);
  compare("gmatch", S("abc"), S("a*"), NIL, NIL);
  compare("gmatch", S("a,b,,c"), S("([^,]*)"), NIL, NIL);
  /* gsub: templates, counts, limits, anchors */
  static const char *tpls[] = {"%1", "%0", "%%", "%", "x%", "%x", "%2", "[%1-%2]", "%9", "", NULL};
  for (const char **t = tpls; *t; t++) {
    compare("gsub", S("hello world"), S("(o)"), S(*t), NIL);
    compare("gsub", S("hello world"), S("o"), S(*t), NIL);
    compare("gsub", S("hello world"), S("()o"), S(*t), NIL);
    compare("gsub", S("hello world"), S("(o)(.)"), S(*t), NIL);
  }
  static const char *limits[] = {"#0", "#1", "#2", "#-1", "#100", "1.5", "x", NULL};
  for (const char **n = limits; *n; n++) {
    compare("gsub", S("abcabc"), S("b"), S("X"), S(*n));
    compare("gsub", S("abc"), S(""), S("-"), S(*n));
    compare("gsub", S("abc"), S("^a"), S("-"), S(*n));
    compare("gsub", S("abc"), S("^"), S("-"), S(*n));
    compare("gsub", S("aaa"), S("a*"), S("-"), S(*n));
    compare("gsub", S("abc"), S("x*"), S("\1F"), S(*n));
  }
  compare("gsub", S("hello"), S(""), S("-"), NIL);
  compare("gsub", S("abc"), S(".-"), S("-"), NIL);
  compare("gsub", S("abc def"), S("%w+"), S("\1T"), NIL);
  compare("gsub", S("a b x"), S("%w"), S("\1T"), NIL);
  compare("gsub", S("a b x"), S("(%w)"), S("\1T"), NIL);
  compare("gsub", S("(x) y"), S("%b()"), S("\1T"), NIL);
  compare("gsub", S("abc"), S("()"), S("\1T"), NIL);
  compare("gsub", S("abc"), S("%w"), S("\1B"), NIL);
  compare("gsub", S("abcz"), S("%w"), S("\1F"), NIL);
  compare("gsub", S("a1b"), S("(%w)()"), S("\1F"), NIL);
  compare("gsub", S("abc"), S("%w"), S("\1N"), NIL);
  compare("gsub", S("abc"), S("%w"), S("\1I"), NIL);
  compare("gsub", S("abc"), S("%w"), S("!t"), NIL);
  compare("gsub", S("abc"), S("(a)(b)"), S("%2%1"), NIL);
  compare("gsub", S("x = 1, y = 2"), S("(%w+)%s*=%s*(%w+)"), S("%2=%1"), NIL);
  /* too complex, too many captures, argument errors */
  char deep[1200] = "", many[200] = "";
  for (int i = 0; i < 300; i++) strcat(deep, "a?");
  for (int i = 0; i < 300; i++) strcat(deep, "a");
  for (int i = 0; i < 33; i++) strcat(many, "(a)");
  char aaa[400];
  memset(aaa, 'a', 300);
  aaa[300] = '\0';
  compare("find", S(aaa), S(deep), NIL, NIL);
  compare("match", S(aaa), S(many), NIL, NIL);
  compare("match", S(aaa), S(many + 3), NIL, NIL);
  compare("gsub", S(aaa), S(many), S("x"), NIL);
  compare("find", S(aaa), S("(a?)(a?)(a?)(a?)(a?)(a?)(a?)(a?)(a?)(a?)%10"), NIL, NIL);
  compare("find", NIL, S("a"), NIL, NIL);
  compare("find", S("a"), NIL, NIL, NIL);
  compare("find", S("a"), S("a"), S("x"), NIL);
  compare("match", S("a"), S("a"), S("1.5"), NIL);
  compare("gmatch", S("a"), NIL, NIL, NIL);
  compare("gmatch", S("a"), S("a"), S("x"), NIL);
  compare("gsub", S("a"), S("a"), NIL, NIL);
  compare("gsub", S("a"), S("a"), S("!t"), NIL);
  compare("gsub", S("#12"), S("#1"), S("#3"), NIL);   /* numbers are strings here */
  compare("find", S("#123"), S("#2"), NIL, NIL);
  fprintf(stderr, "  edge cases: %d compared, %d differ\n", compared, mismatches);
  CHECK_INT(mismatches, 0);
}

/* xorshift64*: the sequence is the same on every run. */
static uint64_t rng = 0x9E3779B97F4A7C15ULL;
static uint32_t rnd(uint32_t n) {
  rng ^= rng >> 12;
  rng ^= rng << 25;
  rng ^= rng >> 27;
  return (uint32_t)((rng * 0x2545F4914F6CDD1DULL) >> 33) % n;
}

static void gen_pattern(char *out, size_t cap) {
  static const char *items[] = {
    "a", "b", "c", " ", ".", "%a", "%d", "%s", "%w", "%p", "%A", "%S", "%u", "%l", "%x", "%c",
    "%g", "[ab]", "[^a]", "[a-c]", "[%d-]", "[]]", "[^]]", "[%a_]", "[%s,]", "%(", "%]", "%%",
    "(", ")", "()", "%1", "%2", "%b()", "%bab", "%f[%w]", "%f[%W]", "%f[a]", "^", "$", "-",
    ",", "1", "%", "[", "%f", "%b", "%0"};
  static const char *suffix[] = {"", "", "", "*", "+", "-", "?"};
  size_t n = 0;
  int k = 1 + (int)rnd(7);
  out[0] = '\0';
  if (rnd(4) == 0) out[n++] = '^';
  for (int i = 0; i < k; i++) {
    const char *it = items[rnd(sizeof items / sizeof *items)];
    const char *sf = suffix[rnd(sizeof suffix / sizeof *suffix)];
    size_t l = strlen(it), m = strlen(sf);
    if (n + l + m + 2 >= cap) break;
    memcpy(out + n, it, l);
    n += l;
    /* a suffix only after a single-character item, as flows write them */
    if (l == 1 ? strchr("abc .,1", it[0]) != NULL : (it[0] == '%' || it[0] == '[')) {
      memcpy(out + n, sf, m);
      n += m;
    }
  }
  if (rnd(5) == 0) out[n++] = '$';
  out[n] = '\0';
}

static void gen_subject(char *out, size_t cap) {
  static const char alpha[] = "aabbc  ,1()_AZ-%]";
  size_t n = rnd(cap < 24 ? (uint32_t)cap - 1 : 24);
  for (size_t i = 0; i < n; i++) out[i] = alpha[rnd(sizeof alpha - 1)];
  out[n] = '\0';
}

T(generated) {
  mismatches = compared = 0;
  char p[128], s[32], init[16];
  static const char *tpls[] = {"<%0>", "%1", "[%1|%2]", "\1F", "\1T", "%%", "x"};
  for (int i = 0; i < 6000; i++) {
    gen_pattern(p, sizeof p);
    gen_subject(s, sizeof s);
    arg in = NIL;
    if (rnd(3) == 0) {
      snprintf(init, sizeof init, "#%d", (int)rnd(30) - 15);
      in = S(init);
    }
    compare("find", S(s), S(p), in, rnd(8) == 0 ? S("!t") : NIL);
    compare("match", S(s), S(p), in, NIL);
    compare("gmatch", S(s), S(p), in, NIL);
    char lim[16];
    snprintf(lim, sizeof lim, "#%d", (int)rnd(4));
    compare("gsub", S(s), S(p), S(tpls[rnd(sizeof tpls / sizeof *tpls)]),
            rnd(3) == 0 ? S(lim) : NIL);
  }
  fprintf(stderr, "  generated: %d compared, %d differ\n", compared, mismatches);
  CHECK_INT(mismatches, 0);
}

T(dump_removed) {
  lua_State *L = ours.L;
  CHECK(luaL_dostring(L, "return string.dump == nil and (''). dump == nil") == LUA_OK);
  CHECK(lua_toboolean(L, -1));
  lua_settop(L, 0);
  CHECK(luaL_dostring(L, "return ('x'):rep(3):upper()") == LUA_OK);
  CHECK_STR(lua_tostring(L, -1), "XXX");
  lua_settop(L, 0);
}

/* ---- budget and timeout in a bundle ---- */

static int64_t fake_now(void *ud) { (void)ud; return 1772434800000LL; }
static rt_host host = {.now_ms = fake_now};
static char dir[64];

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Loads a flow whose start step is body, runs it on text and returns the
 * error message (owned, or NULL when the step did not fail); *secs is the
 * wall time of the step. */
static char *run_flow(const char *body, const char *text, int64_t instr, int64_t timeout_ms,
                      double *secs) {
  char path[128];
  snprintf(path, sizeof path, "%s/main.lua", dir);
  FILE *f = fopen(path, "w");
  fprintf(f, "return flow 'main' {\n  start = function(c, ev)\n%s\n  end,\n}\n", body);
  fclose(f);
  json_t *shop = json_pack("{s:s}", "name", "shop");
  rt_bundle_opts o = {.flows_dir = dir, .start_flow = "main", .shop = shop,
                      .mem_limit = 32 << 20, .step_instructions = instr,
                      .step_timeout_ms = timeout_ms, .host = &host};
  rt_bundle *b = NULL;
  char *err = NULL;
  if (rt_bundle_load(&o, &b, &err) != RT_OK) {
    fprintf(stderr, "load: %s\n", err);
    json_decref(shop);
    return err;
  }
  json_decref(shop);
  json_t *conv = json_pack("{s:i, s:s, s:s, s:s, s:s}", "id", 1, "channel", "t", "chat", "1",
                           "flow", "main", "step", "start");
  json_t *ev = json_pack("{s:s, s:s}", "kind", "text", "text", text);
  rt_lturn *t = NULL;
  double t0 = now_s();
  int st = rt_lturn_start(b, NULL, conv, "{}", ev, &t);
  *secs = now_s() - t0;
  char *msg = NULL;
  if (st == RT_LTURN_ERROR) {
    const char *m = json_string_value(json_object_get(rt_lturn_error(t), "msg"));
    msg = strdup(m ? m : "?");
  }
  rt_lturn_free(t);
  json_decref(conv);
  json_decref(ev);
  rt_bundle_unref(b);
  return msg;
}

/* The step must fail with want in its message, well within limit seconds
 * (unsanitized it takes about a tenth of that). */
static void expect_stop(const char *body, const char *text, int64_t instr, int64_t timeout_ms,
                        const char *want, double limit) {
  double secs = 0;
  char *msg = run_flow(body, text, instr, timeout_ms, &secs);
  if (!msg || !strstr(msg, want) || secs > limit) {
    fprintf(stderr, "  %s\n    got %s after %.2f s, want \"%s\" within %.1f s\n", body,
            msg ? msg : "(no error)", secs, want, limit);
    CHECK(0);
  }
  free(msg);
}

T(budget) {
  /* default budget (10M): stopped, also when pcall tries to swallow it */
  expect_stop("local r = string.rep('a', 200):find('.-.-.-.-b')", "x", 10000000, 0,
              "instruction budget", 5);
  expect_stop("local s = string.rep('a', 200) local ok = pcall(s.match, s, '(.-)(.-)(.-)(.-)b')"
              " c:say(tostring(ok))", "x", 10000000, 0, "instruction budget", 5);
  expect_stop("local s = string.rep('a', 300) for w in s:gmatch('.-.-.-b') do end", "x", 10000000,
              0, "instruction budget", 5);
  expect_stop("local s = string.rep('a', 300) s:gsub('a.-.-.-b', 'x')", "x", 10000000, 0,
              "instruction budget", 5);
  /* a big subject: quadratic in C, plain finds and long greedy scans */
  expect_stop("local s = string.rep('a', 1 << 20) local r = s:find('.-b')", "x", 10000000, 0,
              "instruction budget", 5);
  expect_stop("local s = string.rep('a', 1 << 20) local r = s:find('a*b')", "x", 10000000, 0,
              "instruction budget", 5);
  expect_stop("local s = string.rep('ab', 1 << 19) for i = 1, 1e9 do s:find('abc', 1, true) end",
              "x", 10000000, 0, "instruction budget", 5);
  expect_stop("local s = string.rep('a', 1 << 16) local r = s:find('(.*)%1b')", "x", 10000000, 0,
              "instruction budget", 5);
  /* a long set costs in proportion to its length at every character */
  expect_stop("local s = string.rep('b', 1 << 20) local r = s:find('[' .. string.rep('%d', 4000)"
              " .. ']c')", "x", 10000000, 0, "instruction budget", 5);
  /* a long replacement text is copied at every match */
  expect_stop("local s = string.rep('a', 1 << 10) local r = string.rep('x', 1 << 12)"
              " for i = 1, 1e9 do s:gsub('a', r) end", "x", 10000000, 0, "instruction budget", 5);
  /* the step timeout applies inside the matcher too */
  expect_stop("local r = string.rep('a', 200):find('.-.-.-.-b')", "x", INT64_MAX / 2, 300,
              "ran longer than 300 ms", 5);
  /* normal work is not affected */
  double secs;
  char *msg = run_flow("local a, b = ev.text:match('^(%S+)%s+(.-)$') assert(a == 'hello')"
                       " assert(select(2, ev.text:gsub('%w+', '')) == 3)", "hello big world",
                       10000000, 0, &secs);
  CHECK(msg == NULL);
  free(msg);
}

T(r5_reproductions) {
  /* the 4-field split of an 800-char message: 29 s with stock Lua */
  char text[801];
  for (int i = 0; i < 800; i += 2) memcpy(text + i, "a ", 2);
  text[800] = '\0';
  expect_stop("local a = ev.text:match('^(.-)%s+(.-)%s+(.-)%s+(.-)!$')"
              " c:say(a and 'parsed' or 'not parsed')", text, 10000000, 3000, "instruction budget",
              5);
  /* 20.9 s with stock Lua, logged "ok" */
  expect_stop("local r = string.rep('a', 200):find('.-.-.-.-b') c:say('done')", "hi", 10000000,
              3000, "instruction budget", 5);
  /* the same split on a short message still works */
  double secs;
  char *msg = run_flow("local a, b, c2, d = ev.text:match('^(.-)%s+(.-)%s+(.-)%s+(.-)!$')"
                       " assert(a == 'one' and d == 'four', tostring(a))", "one two three four!",
                       10000000, 3000, &secs);
  CHECK(msg == NULL);
  free(msg);
}

int main(void) {
  if (side_open(&ref, 0) || side_open(&ours, 1)) return 1;
  T_RUN(edge_cases);
  T_RUN(generated);
  T_RUN(dump_removed);
  lua_close(ref.L);
  lua_close(ours.L);
  snprintf(dir, sizeof dir, "/tmp/test_lapi_pattern.XXXXXX");
  if (!mkdtemp(dir)) return 1;
  T_RUN(budget);
  T_RUN(r5_reproductions);
  char p[128];
  snprintf(p, sizeof p, "%s/main.lua", dir);
  unlink(p);
  rmdir(dir);
  return T_DONE();
}
