/* bench_pattern.c -- cost of the budget-charged pattern functions
 * (lapi_pattern.c) against the stock string library on patterns the shop's
 * flows use, on a typical customer message. Figures only.
 * usage: bench_pattern [ITERATIONS] */
#include "lapi_pattern.h"
#include <lauxlib.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <uv.h>

static const char *cases[][2] = {
  {"gsub %p+$", "return s:gsub('%p+$', '')"},
  {"gsub trim", "return s:gsub('^[%s,%.:;!%?%-]+', ''):gsub('[%s,%.:;!%?%-]+$', '')"},
  {"gmatch %S+", "local n = 0 for w in s:gmatch('%S+') do n = n + 1 end return n"},
  {"match ^%D*(%d)", "return s:match('^%D*(%d)')"},
  {"find year", "return s:find('[^%d]20[0-4]%d[^%d]')"},
  {"find plain", "return s:find('колодки', 1, true)"},
  {"find literal", "return s:find('перв')"},
  {"gsub %b()", "return s:gsub('%b()', '')"},
  {"gsub {(%w+)}", "return ('Привет, {name}! Ваш {car} готов'):gsub('{(%w+)}', t)"},
  {"match VIN", "return s:match('%f[%w](%w%w%w%w%w%w%w%w%w%w%w%w%w%w%w%w%w)%f[%W]')"},
  {"split 4 fields", "return s:match('^(.-)%s+(.-)%s+(.-)%s+(.-)$')"},
};

static double run(lua_State *L, const char *code, int n) {
  char src[512];
  snprintf(src, sizeof src, "local s, t = ... return function() %s end", code);
  if (luaL_loadstring(L, src) != LUA_OK) { fprintf(stderr, "%s\n", lua_tostring(L, -1)); exit(1); }
  lua_pushstring(L, "Здравствуйте! Нужны колодки передние (оригинал) на Шкоду Октавию 2015 года, "
                    "VIN XW8ZZZ61ZBG012345, первый раз пишу, подскажите цену и сроки?");
  lua_newtable(L);
  lua_pushstring(L, "Тест");
  lua_setfield(L, -2, "name");
  lua_pushstring(L, "Октавия");
  lua_setfield(L, -2, "car");
  lua_call(L, 2, 1);
  uint64_t t0 = uv_hrtime();
  for (int i = 0; i < n; i++) {
    lua_pushvalue(L, -1);
    lua_call(L, 0, 0);
  }
  double ns = (double)(uv_hrtime() - t0) / n;
  lua_pop(L, 1);
  return ns;
}

int main(int argc, char **argv) {
  int n = argc > 1 ? atoi(argv[1]) : 200000;
  lua_State *stock = luaL_newstate(), *ours = luaL_newstate();
  /* plain states: rt_lvm_charge finds no budget and returns */
  *(void **)lua_getextraspace(stock) = NULL;
  *(void **)lua_getextraspace(ours) = NULL;
  luaL_openlibs(stock);
  luaL_openlibs(ours);
  rt_lapi_pattern_install(ours);
  double ts = 0, to = 0;
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    double a = run(stock, cases[i][1], n), b = run(ours, cases[i][1], n);
    ts += a;
    to += b;
    printf("pattern.%-16s stock %7.0f ns  ours %7.0f ns  x%.2f\n", cases[i][0], a, b, b / a);
  }
  printf("pattern.all              stock %7.0f ns  ours %7.0f ns  x%.2f\n", ts, to, to / ts);
  lua_close(stock);
  lua_close(ours);
  return 0;
}
