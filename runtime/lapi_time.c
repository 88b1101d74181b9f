/* lapi_time.c -- time for flows: the runtime clock (virtual in tests),
 * local dates in the shop's or a customer's time zone, working hours.
 * All times are unix seconds. */
#include "lapi.h"
#include "config.h"
#include "tz.h"
#include <string.h>
#include <time.h>

static const char *shop_tz(lua_State *L) {
  json_t *shop = rt_lvm_shop(L);
  json_t *tz = shop ? json_object_get(shop, "timezone") : NULL;
  return json_is_string(tz) ? json_string_value(tz) : "Europe/Moscow";
}

static const char *opt_tz(lua_State *L, int idx) {
  const char *tz = luaL_optstring(L, idx, NULL);
  if (!tz || !*tz) return shop_tz(L);
  if (!rt_tz_valid(tz)) luaL_argerror(L, idx, "unknown time zone");
  return tz;
}

/* Times flows pass in are unix seconds of years 1..9999: the calendar code
 * below multiplies them, and a huge integer (math.maxinteger) must be a
 * clear error, not an overflow. */
#define TIME_MIN (-62135596800LL)   /* 0001-01-01 */
#define TIME_MAX 253402300799LL     /* 9999-12-31 23:59:59 */

static int64_t check_time(lua_State *L, int idx) {
  lua_Integer t = luaL_checkinteger(L, idx);
  if (t < TIME_MIN || t > TIME_MAX)
    luaL_argerror(L, idx, "time out of range (unix seconds of years 1-9999)");
  return (int64_t)t;
}

static int64_t opt_time(lua_State *L, int idx, int64_t dflt) {
  return lua_isnoneornil(L, idx) ? dflt : check_time(L, idx);
}

/* A calendar field of time.make: wide enough for "day + 30" style sums,
 * narrow enough that no arithmetic on it can overflow. */
static int check_field(lua_State *L, int idx, lua_Integer lo, lua_Integer hi, lua_Integer dflt) {
  lua_Integer v = lua_isnoneornil(L, idx) ? dflt : luaL_checkinteger(L, idx);
  if (v < lo || v > hi) luaL_argerror(L, idx, "out of range");
  return (int)v;
}

static int64_t now_sec(lua_State *L) {
  const rt_host *h = rt_lvm_host(L);
  return (h && h->now_ms ? h->now_ms(h->ud) : (int64_t)time(NULL) * 1000) / 1000;
}

/* time.now() -> seconds */
static int l_time_now(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)now_sec(L));
  return 1;
}

static int local_tm(lua_State *L, int64_t t, const char *tz, struct tm *tm) {
  if (rt_tz_local_tm(tz, t, tm) != RT_OK) return luaL_error(L, "time: unknown time zone '%s'", tz);
  return 0;
}

/* time.split(t, tz) -> {year, month, day, hour, min, sec, wday (1 = Monday)} */
static int l_time_local(lua_State *L) {
  int64_t t = opt_time(L, 1, now_sec(L));
  const char *tz = opt_tz(L, 2);
  struct tm tm;
  local_tm(L, t, tz, &tm);
  lua_createtable(L, 0, 7);
  lua_pushinteger(L, tm.tm_year + 1900); lua_setfield(L, -2, "year");
  lua_pushinteger(L, tm.tm_mon + 1); lua_setfield(L, -2, "month");
  lua_pushinteger(L, tm.tm_mday); lua_setfield(L, -2, "day");
  lua_pushinteger(L, tm.tm_hour); lua_setfield(L, -2, "hour");
  lua_pushinteger(L, tm.tm_min); lua_setfield(L, -2, "min");
  lua_pushinteger(L, tm.tm_sec); lua_setfield(L, -2, "sec");
  lua_pushinteger(L, tm.tm_wday == 0 ? 7 : tm.tm_wday); lua_setfield(L, -2, "wday");
  return 1;
}

/* time.make(year, month, day, hour, min, tz) -> seconds */
static int l_time_make(lua_State *L) {
  luaL_checkinteger(L, 2);
  luaL_checkinteger(L, 3);
  int y = check_field(L, 1, 1, 9999, 0), mo = check_field(L, 2, -1200, 1200, 1);
  int d = check_field(L, 3, -36600, 36600, 1), h = check_field(L, 4, -87840, 87840, 0);
  int mi = check_field(L, 5, -5270400, 5270400, 0);
  int64_t t;
  if (rt_tz_make_checked(opt_tz(L, 6), y, mo, d, h, mi, &t) != RT_OK || t < TIME_MIN || t > TIME_MAX)
    return luaL_error(L, "time.make: the date is out of range (years 1-9999)");
  lua_pushinteger(L, (lua_Integer)t);
  return 1;
}

/* time.duration("3d") -> seconds, or nil for a bad string */
static int l_time_duration(lua_State *L) {
  int64_t s;
  if (rt_parse_duration(luaL_checkstring(L, 1), &s) != RT_OK) return 0;
  lua_pushinteger(L, (lua_Integer)s);
  return 1;
}

/* Working hours from shop.json: days (1 = Monday), from and to minutes. */
typedef struct { bool days[8]; int from, to; } hours;

/* A working-hours bound, or dflt when absent or unreadable. */
static int hhmm(const char *s, int dflt) {
  int m = rt_parse_hhmm(s);
  return m < 0 ? dflt : m;
}

static void shop_hours(lua_State *L, hours *wh) {
  memset(wh, 0, sizeof *wh);
  json_t *shop = rt_lvm_shop(L), *w = shop ? json_object_get(shop, "working_hours") : NULL;
  json_t *days = w ? json_object_get(w, "days") : NULL;
  if (json_is_array(days) && json_array_size(days)) {
    size_t i;
    json_t *v;
    json_array_foreach(days, i, v) {
      json_int_t d = json_integer_value(v);
      if (d >= 1 && d <= 7) wh->days[d] = true;
    }
  } else {
    for (int d = 1; d <= 6; d++) wh->days[d] = true;
  }
  wh->from = hhmm(w ? json_string_value(json_object_get(w, "from")) : NULL, 9 * 60);
  wh->to = hhmm(w ? json_string_value(json_object_get(w, "to")) : NULL, 19 * 60);
}

static bool is_open(lua_State *L, const hours *wh, int64_t t, const char *tz) {
  struct tm tm;
  local_tm(L, t, tz, &tm);
  int wday = tm.tm_wday == 0 ? 7 : tm.tm_wday, min = tm.tm_hour * 60 + tm.tm_min;
  return wh->days[wday] && min >= wh->from && min < wh->to;
}

/* time.is_open(t, tz) -> boolean: inside the shop's working hours */
static int l_time_is_open(lua_State *L) {
  hours wh;
  shop_hours(L, &wh);
  lua_pushboolean(L, is_open(L, &wh, opt_time(L, 1, now_sec(L)), opt_tz(L, 2)));
  return 1;
}

/* time.next_open(t, tz) -> seconds: t itself when open, else the next
 * opening time. */
static int l_time_next_open(lua_State *L) {
  hours wh;
  shop_hours(L, &wh);
  /* 8 days are searched ahead: stay clear of the end of the range */
  int64_t t = opt_time(L, 1, now_sec(L));
  if (t > TIME_MAX - 9 * 86400) luaL_argerror(L, 1, "time out of range");
  const char *tz = opt_tz(L, 2);
  if (is_open(L, &wh, t, tz)) {
    lua_pushinteger(L, (lua_Integer)t);
    return 1;
  }
  struct tm tm;
  for (int i = 0; i < 8; i++) {
    local_tm(L, t + (int64_t)i * 86400, tz, &tm);
    int64_t open = rt_tz_make(tz, tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                              wh.from / 60, wh.from % 60);
    int wday = tm.tm_wday == 0 ? 7 : tm.tm_wday;
    if (wh.days[wday] && open >= t) {
      lua_pushinteger(L, (lua_Integer)open);
      return 1;
    }
  }
  lua_pushinteger(L, (lua_Integer)t);
  return 1;
}

/* time.format(t, tz) -> "2026-03-16 10:00" */
static int l_time_format(lua_State *L) {
  int64_t t = check_time(L, 1);
  struct tm tm;
  local_tm(L, t, opt_tz(L, 2), &tm);
  char buf[64];
  snprintf(buf, sizeof buf, "%04d-%02d-%02d %02d:%02d", tm.tm_year + 1900, tm.tm_mon + 1,
           tm.tm_mday, tm.tm_hour, tm.tm_min);
  lua_pushstring(L, buf);
  return 1;
}

static const luaL_Reg time_funcs[] = {
  {"now", l_time_now},
  {"split", l_time_local},
  {"local", l_time_local},   /* same as split; time["local"] since local is a keyword */
  {"make", l_time_make},
  {"duration", l_time_duration},
  {"is_open", l_time_is_open},
  {"next_open", l_time_next_open},
  {"format", l_time_format},
  {NULL, NULL},
};

int rt_luaopen_time(lua_State *L) {
  luaL_newlib(L, time_funcs);
  return 1;
}
