/* test_lapi_text.c -- the text table as flows see it. */
#include "t.h"
#include "text.h"
#include "tvocab.h"
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

static lua_State *new_state(void) {
  lua_State *L = luaL_newstate();
  /* No budget: rt_lvm_charge is a no-op outside a bundle's turn or load. */
  *(void **)lua_getextraspace(L) = NULL;
  luaL_openlibs(L);
  CHECK_INT(rt_luaopen_text(L), 1);
  lua_setglobal(L, "text");
  return L;
}

/* Runs a chunk; a failing assert fails the test with Lua's message. */
static void run(lua_State *L, const char *code) {
  if (luaL_dostring(L, code) != LUA_OK) {
    fprintf(stderr, "  lua: %s\n", lua_tostring(L, -1));
    CHECK(!"lua chunk failed");
  }
  lua_settop(L, 0);
}

T(table_shape) {
  lua_State *L = luaL_newstate();
  *(void **)lua_getextraspace(L) = NULL;
  rt_luaopen_text(L);
  CHECK(lua_istable(L, -1));
  lua_getglobal(L, "text");
  CHECK(lua_isnil(L, -1)); /* no globals set */
  lua_close(L);
  L = new_state();
  run(L, "for _, f in ipairs{'norm','plain','head','letters','plate','cars','car','vin','frame',\n"
         "                   'phone','date','intent','is','vocab','ru','phones'} do\n"
         "  assert(type(text[f]) == 'function', f) end");
  lua_close(L);
}

T(norm_and_cars) {
  lua_State *L = new_state();
  run(L, "assert(text.norm('  ВСЁ  Хорошо ') == 'все хорошо')\n"
         "assert(text.norm('a\\0B') == 'a b')\n"
         "assert(text.norm('') == '')");
  run(L, "local cs = text.cars('вин XW8ZZZ614BG012345, кузов GX110-6012345')\n"
         "assert(#cs == 2)\n"
         "assert(cs[1].kind == 'vin' and cs[1].value == 'XW8ZZZ614BG012345')\n"
         "assert(cs[1].check_ok == true and cs[1].north_american == false)\n"
         "assert(cs[2].kind == 'frame' and cs[2].value == 'GX110-6012345')\n"
         "assert(cs[2].check_ok == false)\n"
         "assert(next(text.cars('А123ВС77')) == nil)\n"
         "local c = text.car('1HGCM82633A004352')\n"
         "assert(c.kind == 'vin' and c.north_american and c.check_ok)\n"
         "assert(text.car('привет') == nil)\n"
         "assert(text.vin('xw8-zzz61-4bg012345') == 'XW8ZZZ614BG012345')\n"
         "assert(text.vin('GX110-6012345') == nil)\n"
         "assert(text.frame('DBA-NZE141-1234567') == 'NZE141-1234567')\n"
         "assert(text.frame('04465-33450') == nil)");
  lua_close(L);
}

T(plates_and_views) {
  lua_State *L = new_state();
  run(L, "assert(text.plate('мой номер а 123 вс 96, vin потом') == 'A123BC96')\n"
         "assert(text.plate('а123вс96') == 'A123BC96')\n"
         "assert(text.plate('номер а123вс96', true) == nil)\n"
         "assert(text.plate('(а123вс196 rus)', true) == 'A123BC196')\n"
         "assert(text.plate('89123456789') == nil)\n"
         "assert(text.letters('Ёж, 42 👍') == 4)\n"
         "assert(text.plain('Нужны: колодки, фильтр!') == 'нужны колодки фильтр')\n"
         "local h, cut = text.head('нужны колодки', 8)\n"
         "assert(h == 'нужны ' and cut == true, h)\n"
         "local s = 'короткое'\n"
         "h, cut = text.head(s, 100)\n"
         "assert(h == s and cut == false)\n"
         "h, cut = text.head(string.rep('я ', 600000) .. 'XW8ZZZ614BG012345', 4096)\n"
         "assert(utf8.len(h) <= 4096 and cut and text.vin(h) == nil)\n"
         "assert(text.head('', 0) == '')");
  lua_close(L);
}

T(phone_and_date) {
  lua_State *L = new_state();
  run(L, "assert(text.phone('звоните 8 912 345-67-89') == '+79123456789')\n"
         "assert(text.phone('+380 67 123 45 67') == '+380671234567')\n"
         "assert(text.phone('заказ 12345') == nil)");
  /* 2026-11-23 12:00 Moscow, a Monday */
  run(L, "local now = 1795424400\n"
         "local at, kind, m = text.date('напишите через две недели', now)\n"
         "assert(kind == 'relative' and m == 'через две недели', kind)\n"
         "assert(at == 1796626800, at)\n" /* 2026-12-07 10:00 MSK */
         "at, kind = text.date('после зарплаты', now, 'Europe/Moscow', {payday = {10, 25}, hour = 9})\n"
         "assert(kind == 'payday' and at == 1795586400, at)\n" /* 2026-11-25 09:00 MSK */
         "at = text.date('завтра', now, 'Asia/Vladivostok')\n"
         "assert(at == 1795478400, at)\n" /* 2026-11-24 10:00 VLAT */
         "at = text.date('завтра', now, nil, {})\n"
         "assert(at == 1795503600, at)\n"
         "assert(text.date('нужны колодки', now) == nil)\n"
         "assert(select('#', text.date('нужны колодки', now)) == 1)");
  lua_close(L);
}

T(intents) {
  CHECK(tvocab_vitaly() != NULL);
  lua_State *L = tvocab_L;
  run(L, "local p, set = text.intent('пока не надо, может через месяц')\n"
         "assert(p == 'later', p)\n"
         "assert(set.later and set.declined and not set.need)\n"
         "p, set = text.intent('здравствуйте')\n"
         "assert(p == nil and next(set) == nil)\n"
         "assert(text.intent('Не пишите мне больше') == 'stop')\n"
         "assert(text.intent('нет, нужны ещё свечи') == 'need')\n"
         "assert(text.is('нет спасибо', 'done'))\n"
         "assert(text.is('нет спасибо', 'thanks'))\n"
         "assert(not text.is('не нужно', 'need'))\n"
         "assert(text.is('👍', 'yes'))\n"
         "assert(text.is('net, spasibo', 'declined'))");
  /* the persona's other classes (issue 11: 14, 15, 16) */
  run(L, "assert(text.is('👍', 'ack') and text.is('ок', 'ack') and text.is('понятно', 'ack'))\n"
         "assert(not text.is('ок, нужны колодки', 'ack'))\n"
         "assert(text.is('кто это?', 'who') and text.is('откуда у вас мой номер', 'who'))\n"
         "assert(text.is('вы бот?', 'who') and not text.is('кто-то разбил фару', 'who'))\n"
         "assert(text.is('/start', 'restart') and text.is('/start@VitalyBot', 'restart'))\n"
         "assert(not text.is('старт', 'restart'))\n"
         /* «всё хорошо» to the retention check-in: nothing needed */
         "assert(text.is('всё хорошо, машина бегает', 'fine') and text.is('пока ездим', 'fine'))\n"
         "assert(not text.is('всё', 'fine'))\n"
         "assert(text.is('спасибо, пока всё хорошо', 'fine'))\n"
         "assert(text.is('чё надо?', 'who') and text.is('ок спс', 'ack'))\n"
         /* cannot now: later */
         "assert(text.is('я сейчас на вахте', 'later') and text.is('денег пока нет', 'later'))\n"
         /* frame model codes from goods.lua (class 11) */
         "assert(text.frame('кузов GX1106012345') == 'GX110-6012345')\n"
         "assert(text.car('XW8ZZZ6I4BG012345').typo == true)");
  tvocab_close();
  /* without a vocabulary nothing is understood, and nothing fails */
  L = new_state();
  run(L, "local p, set = text.intent('стоп')\n"
         "assert(p == nil and next(set) == nil)\n"
         "assert(text.is('стоп', 'stop') == false)");
  lua_close(L);
}

T(vocab) {
  lua_State *L = new_state();
  run(L, "text.vocab{stop = {[[\\bстоп\\b]]}, closing = {[[^все\\b]], [[хватит]]},\n"
         "           models = {'gx110', 'NZE141'}}\n"
         "assert(text.intent('СТОП') == 'stop')\n"
         "assert(text.is('всё, отправляйте', 'closing'))\n"
         "assert(not text.is('и всё', 'closing'))\n"
         "local ok, err = pcall(text.is, 'x', 'nope')\n"
         "assert(not ok and err:find('unknown intent or word class', 1, true), err)");
  /* a broken pattern is an error with the caller's line, the class and the
   * pattern; the vocabulary before it stays */
  run(L, "local ok, err = pcall(load('\\n\\ntext.vocab{stop = {[[a]], [[(стоп]]}}', '=lib/words.lua'))\n"
         "assert(not ok, 'no error')\n"
         "assert(err:find('lib/words.lua:3: text.vocab: stop[2] «(стоп»: missing closing parenthesis', 1, true), err)\n"
         "assert(text.intent('стоп') == 'stop')");
  static const char *const bad[] = {
    "text.vocab(5)", "text.vocab{stop = 5}", "text.vocab{stop = {5}}", "text.vocab{[1] = {}}",
    "text.vocab{['Bad Name'] = {'x'}}", "text.vocab{stop = {''}}", "text.vocab{models = {'x'}}",
    "text.vocab{models = {'GX-110'}}",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    char code[256];
    snprintf(code, sizeof code, "local ok, err = pcall(function() return %s end)\n"
                                "assert(not ok and tostring(err):find('text.vocab', 1, true) or"
                                " tostring(err):find('bad argument', 1, true), tostring(err))",
             bad[i]);
    if (luaL_dostring(L, code) != LUA_OK) {
      fprintf(stderr, "  %s: %s\n", bad[i], lua_tostring(L, -1));
      CHECK(!"vocabulary misuse not reported");
    }
    lua_settop(L, 0);
  }
  run(L, "assert(text.ru('Net, SPASIBO') == 'нет, спасибо')\n"
         "assert(text.ru('nuzhen akkumulyator') == 'нужен аккумулятор')\n"
         "assert(text.ru('cтоп') == 'стоп')\n"
         "assert(text.ru('масло 5w30 XW8ZZZ614BG012345') == 'масло 5w30 xw8zzz614bg012345')");
  lua_close(L);
}

T(misuse) {
  lua_State *L = new_state();
  static const char *const bad[] = {
    "text.norm()", "text.norm({})", "text.cars(nil)", "text.vin()", "text.phone(true)",
    "text.date('завтра')", "text.date('завтра', 1.5)", "text.date('завтра', 0, {})",
    "text.date('завтра', 0, nil, 5)", "text.date('завтра', 0, nil, {hour = 25})",
    "text.date('завтра', 0, nil, {hour = 'x'})", "text.date('завтра', 0, nil, {payday = 5})",
    "text.date('завтра', 0, nil, {payday = {1,2,3,4,5}})",
    "text.date('завтра', 0, nil, {payday = {0}})", "text.date('завтра', 0, nil, {payday = {}})",
    "text.intent()", "text.is('да')", "text.is('да', 'maybe')",
    "text.plain()", "text.letters({})", "text.plate()", "text.head('x')", "text.head('x', -1)",
    "text.head(nil, 5)",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    char code[256];
    snprintf(code, sizeof code,
             "local ok, err = pcall(function() return %s end)\n"
             "assert(not ok and tostring(err):find('bad argument', 1, true), tostring(err))",
             bad[i]);
    if (luaL_dostring(L, code) != LUA_OK) {
      fprintf(stderr, "  %s: %s\n", bad[i], lua_tostring(L, -1));
      CHECK(!"misuse not reported as an argument error");
    }
    lua_settop(L, 0);
  }
  /* numbers are strings to Lua, and an unknown zone is Moscow */
  run(L, "assert(text.norm(42) == '42')\n"
         "assert(text.date('завтра', 1795424400, 'Mars/Olympus') == 1795503600)");
  lua_close(L);
}

/* The parts list as Vitaly reads it (lib/parts.lua over the persona's
 * vocabulary): issue 11, classes 1, 2, 4 and 12. Each row: the message, the
 * list (joined by "|"), the car known (non-strict). */
T(parts_table) {
  CHECK(tvocab_vitaly() != NULL);
  lua_State *L = tvocab_L;
  static const struct { const char *in, *want; } rows[] = {
    {"колодки на гранту", "колодки"},
    {"колодки на XW8ZZZ61ZEG061733", "колодки"},
    {"фильтр для JTDBR32E720123456 масляный", "фильтр масляный"},
    {"фильтр масляный на весту 1.6", "фильтр масляный"},
    {"ремень грм на солярис 1.6 2014", "ремень грм"},
    {"колодки на приору передние", "колодки передние"},
    {"масло в коробку", "масло в коробку"},
    {"лобовуха", "лобовое стекло"},
    {"тормозуха 1 литр", "тормозная жидкость 1 литр"},
    {"шаровые", "шаровые опоры"},
    {"шаровые опоры", "шаровые опоры"},
    {"диски и колодки задние", "диски задние|колодки задние"},
    {"колодки и диски передние", "колодки передние|диски передние"},
    {"фильтр салонный и воздушный", "фильтр салонный|фильтр воздушный"},
    {"фильтры: воздушный, салонный", "фильтр воздушный|фильтр салонный"},
    {"масло + фильтр", "масло|фильтр"},
    {"колодки+диски", "колодки|диски"},
    {"1) колодки 2) диски 3) масло", "колодки|диски|масло"},
    {"масло 5w-30 4 литра", "масло 5w-30 4 литра"},
    {"стойки передние левая и правая", "стойки передние левая и правая"},
    {"всё, отправляйте", ""},
    {"всё, жду звонка", ""},
    {"нет ничего, жду счет", ""},
    {"стоп, ещё фильтр забыл", "фильтр"},
    {"ой стоп, забыл, ещё ремень генератора", "ремень генератора"},
    {"kolodki perednie", "колодки передние"},
    {"здрасте мне бы колодочки передние", "колодки передние"},
    {"короче нужны колодки передние ну и фильтр салонный заодно",
     "колодки передние|фильтр салонный"},
  };
  lua_getglobal(L, "require");
  lua_pushstring(L, "parts");
  if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
    fprintf(stderr, "  parts: %s\n", lua_tostring(L, -1));
    CHECK(!"lib/parts.lua loads");
    tvocab_close();
    return;
  }
  lua_setglobal(L, "parts");
  for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
    lua_getglobal(L, "parts");
    lua_getfield(L, -1, "extract");
    lua_pushstring(L, rows[i].in);
    lua_pushboolean(L, 0);
    if (lua_pcall(L, 2, 1, 0) != LUA_OK) {
      fprintf(stderr, "  %s: %s\n", rows[i].in, lua_tostring(L, -1));
      CHECK(!"parts.extract ran");
      lua_settop(L, 0);
      continue;
    }
    char got[512] = "";
    size_t o = 0;
    lua_Integer n = luaL_len(L, -1);
    for (lua_Integer k = 1; k <= n; k++) {
      lua_geti(L, -1, k);
      o += (size_t)snprintf(got + o, sizeof got - o, "%s%s", k > 1 ? "|" : "", lua_tostring(L, -1));
      lua_pop(L, 1);
      if (o >= sizeof got) break;
    }
    if (strcmp(got, rows[i].want) != 0) fprintf(stderr, "  input: \"%s\"\n", rows[i].in);
    CHECK_STR(got, rows[i].want);
    lua_settop(L, 0);
  }
  tvocab_close();
}

int main(void) {
  T_RUN(table_shape);
  T_RUN(norm_and_cars);
  T_RUN(plates_and_views);
  T_RUN(phone_and_date);
  T_RUN(intents);
  T_RUN(vocab);
  T_RUN(parts_table);
  T_RUN(misuse);

  return T_DONE();
}
