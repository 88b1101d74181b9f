/* test_text.c -- car ids, phones, dates, intents and the normal form, each
 * driven by a table of what real customers type. */
#include "t.h"
#include "tvocab.h"
#include "rt.h"
#include "text.h"
#include "tz.h"
#include <stdint.h>
#include <stdlib.h>

/* 2026-11-23 12:00 Europe/Moscow, a Monday. */
#define NOW INT64_C(1795424400)

/* Reports the input of a failing table row, then counts the failure. */
#define ROW_STR(in, got, want) do {                                          \
    if (strcmp((got), (want)) != 0)                                          \
      fprintf(stderr, "  input: \"%s\"\n", (in));                            \
    CHECK_STR((got), (want));                                                \
  } while (0)

#define ROW_INT(in, got, want) do {                                          \
    if ((got) != (want)) fprintf(stderr, "  input: \"%s\"\n", (in));         \
    CHECK_INT((got), (want));                                                \
  } while (0)

/* ---- normal form ------------------------------------------------------ */

T(norm) {
  static const struct { const char *in, *want; } rows[] = {
    {"", ""},
    {"   ", ""},
    {"Привет", "привет"},
    {"  ВСЁ  хорошо \t\n ", "все хорошо"},
    {"Ёлка ЁЖИК ёж", "елка ежик еж"},
    {"VIN:\u00a0XW8ZZZ", "vin: xw8zzz"},
    {"Да\u2003\u2003нет", "да нет"},
    {"ÀÉÎ ß", "àéî ß"},
    {"ПРИВЕТ 👍 ОК", "привет 👍 ок"},
    {"a\xff" "b", "a?b"},
    {"\xd0", "?"},
    {"\xe2\x82", "??"},
    {"\xc0\xaf", "??"},              /* overlong '/' */
    {"\xed\xa0\x80", "???"},         /* surrogate */
    {"ЎІЇЄ", "ўіїє"},
  };
  for (size_t i = 0; i < RT_ARRAY_LEN(rows); i++) {
    char *got = rt_text_norm(rows[i].in);
    ROW_STR(rows[i].in, got, rows[i].want);
    CHECK(strlen(got) <= strlen(rows[i].in));
    free(got);
  }
  char buf[16];
  CHECK_INT(rt_text_norm_buf("A\0B  C", 6, buf), 5);
  CHECK_STR(buf, "a b c");
}

/* ---- car identifiers ---------------------------------------------------- */

/* "v:VALUE" / "f:VALUE", "+ok" when the check digit verifies, "+na" for a
 * North-American VIN, "+typo" when I/O/Q were read as 1/0, space-separated
 * in order of appearance. Frames glued to their model split by a small
 * table of model codes (the persona's table is longer). */
static const char *const test_models[] = {"GX110", "NZE141", "JZX100", "GD1", "ACV40", "ACV4",
                                          "BNR32", "ZZE122"};
static void cars_str(const char *s, char *out, size_t n) {
  rt_text_car cars[8];
  int cnt = rt_text_cars_models(s, cars, 8, test_models, RT_ARRAY_LEN(test_models));
  out[0] = '\0';
  for (int i = 0; i < cnt; i++) {
    size_t l = strlen(out);
    snprintf(out + l, n - l, "%s%c:%s%s%s%s", i ? " " : "", cars[i].kind, cars[i].value,
             cars[i].check_ok ? "+ok" : "", cars[i].north_american ? "+na" : "",
             cars[i].typo ? "+typo" : "");
  }
}

T(cars_table) {
  static const struct { const char *in, *want; } rows[] = {
    /* VINs in free text */
    {"вин XW8ZZZ614BG012345, нужны колодки", "v:XW8ZZZ614BG012345+ok"},
    {"VIN: xw8zzz614bg012345", "v:XW8ZZZ614BG012345+ok"},
    {"XW8 ZZZ 614 BG 012345", "v:XW8ZZZ614BG012345+ok"},
    {"XW8-ZZZ61-4BG012345", "v:XW8ZZZ614BG012345+ok"},
    {"вот вин: XW8 - ZZZ614BG - 012345 спасибо", "v:XW8ZZZ614BG012345+ok"},
    {"ХW8ZZZ614ВG012345", "v:XW8ZZZ614BG012345+ok"},              /* Cyrillic Х, В */
    {"хw8zzz614вg012345", "v:XW8ZZZ614BG012345+ok"},
    {"Вин-код:XW8ZZZ614BG012345.", "v:XW8ZZZ614BG012345+ok"},
    {"XW8ZZZ614BG012345👍", "v:XW8ZZZ614BG012345+ok"},
    {"«XW8ZZZ614BG012345»", "v:XW8ZZZ614BG012345+ok"},
    {"1HGCM82633A004352", "v:1HGCM82633A004352+ok+na"},
    {"1HGCM82633A004353", "v:1HGCM82633A004353+na"},               /* bad check digit */
    {"1M8GDM9AXKP042788 это мой", "v:1M8GDM9AXKP042788+ok+na"},     /* check digit X */
    {"tesla 5yj3e1ea2kf317000", "v:5YJ3E1EA2KF317000+ok+na"},
    {"2T1BURHE8JC123456", "v:2T1BURHE8JC123456+ok+na"},
    {"4T1BF1FK5CU123456", "v:4T1BF1FK5CU123456+na"},
    {"лада XTA21099043123456", "v:XTA21099043123456"},
    {"солярис Z94CT41DBER123456", "v:Z94CT41DBER123456"},
    {"WVWZZZ1JZXW000001", "v:WVWZZZ1JZXW000001"},
    {"VF1LM1B0H12345678 рено", "v:VF1LM1B0H12345678"},
    {"WDB2030461A123456", "v:WDB2030461A123456"},
    /* I, O, Q are not VIN letters: read as 1 / 0, and marked so the customer
     * is asked to check (issue 11, class 13) */
    {"JTDBR32E720O12345", "v:JTDBR32E720012345+typo"},
    {"JTDBR32E72OO1234I", "v:JTDBR32E720012341+typo"},
    {"XTA21099043I23456", "v:XTA21099043123456+typo"},
    {"XW8ZZZ6I4BG012345", "v:XW8ZZZ614BG012345+ok+typo"},
    {"вин XW8ZZZ614BGQ12345", "v:XW8ZZZ614BG012345+ok+typo"},
    /* frames typed without a separator split after a known model code
     * (class 11); an unknown code or a wrong serial length is no frame */
    {"GX1106012345", "f:GX110-6012345"},
    {"кузов nze1411234567", "f:NZE141-1234567"},
    {"JZX1000123456 марк 2", "f:JZX100-0123456"},
    {"GD11234567", "f:GD1-1234567"},
    {"ACV400123456", "f:ACV40-0123456"},                           /* the longer code wins */
    {"BNR32123456", "f:BNR32-123456"},
    {"ZZE122012", ""},
    {"ABC1231234567", ""},
    {"GX11060123456789", ""},
    {"X7LLSRB1HAH123456\nX7LLSRB1HAH123456", "v:X7LLSRB1HAH123456"}, /* once */
    {"VIN XW8ZZZ614BG012345, кузов GX110-6012345", "v:XW8ZZZ614BG012345+ok f:GX110-6012345"},
    /* frame numbers */
    {"кузов GX110-6012345", "f:GX110-6012345"},
    {"JZX100-0012345 и AE110-5012345", "f:JZX100-0012345 f:AE110-5012345"},
    {"DBA-NZE141-1234567", "f:NZE141-1234567"},
    {"CBA-GX110-6012345", "f:GX110-6012345"},
    {"nze141 1234567", "f:NZE141-1234567"},
    {"gx110\u20136012345", "f:GX110-6012345"},                      /* en dash */
    {"zzt240-0123456", "f:ZZT240-0123456"},
    {"GRS182 - 0012345", "f:GRS182-0012345"},
    {"SXE10-0001234", "f:SXE10-0001234"},
    {"номер кузова ЕК3-1234567", "f:EK3-1234567"},                  /* Cyrillic Е К */
    {"CN9A-0001234 лансер", "f:CN9A-0001234"},
    {"jb23w-123456", "f:JB23W-123456"},
    {"L375S-0123456", "f:L375S-0123456"},
    {"BNR32-012345!!!", "f:BNR32-012345"},
    {"кузов GX110-1998", "f:GX110-1998"},                           /* dash: a serial */
    /* not car ids */
    {"", ""},
    {"А123ВС77", ""},
    {"а 123 вс 777", ""},
    {"A123BC 150", ""},
    {"номер машины А123ВС 1777", ""},
    {"+7 912 345-67-89", ""},
    {"89123456789", ""},
    {"№12345", ""},
    {"заказ 123456789012345678", ""},
    {"15.12.2026", ""},
    {"1500 р", ""},
    {"04465-33450", ""},
    {"90919-01253 свечи", ""},
    {"BP4K-33-28Z", ""},
    {"BMW E39 2001 года", ""},
    {"X-Trail T31 150000 км", ""},
    {"Audi A4 2008", ""},
    {"масло 5W-30 4 литра", ""},
    {"резина 205/55 R16", ""},
    {"XW8ZZZ614BG01234", ""},                                       /* 16 */
    {"XW8ZZZ614BG0123456", ""},                                     /* 18 */
    {"XW8ZZZ614BG01234A", ""},                                      /* serial not numeric */
    {"12345678901234567", ""},                                      /* no letter */
    {"здравствуйте нужны колодки на камри", ""},
    {"ВИНXW8ZZZ614BG012345", ""},                                   /* glued to a word */
    {"\xff\xfe\xd0", ""},
  };
  char got[256];
  for (size_t i = 0; i < RT_ARRAY_LEN(rows); i++) {
    cars_str(rows[i].in, got, sizeof got);
    ROW_STR(rows[i].in, got, rows[i].want);
  }
  CHECK(RT_ARRAY_LEN(rows) >= 50);
}

T(cars_helpers) {
  char v[18], f[32];
  CHECK(rt_text_vin("кузов GX110-6012345, вин xw8zzz614bg012345", v));
  CHECK_STR(v, "XW8ZZZ614BG012345");
  CHECK(rt_text_frame("кузов GX110-6012345, вин xw8zzz614bg012345", f));
  CHECK_STR(f, "GX110-6012345");
  CHECK(!rt_text_vin("кузов GX110-6012345", v));
  CHECK_STR(v, "");
  CHECK(!rt_text_frame("XW8ZZZ614BG012345", f));
  CHECK(!rt_text_vin(NULL, v));
  rt_text_car one[1];
  CHECK_INT(rt_text_cars("XW8ZZZ614BG012345 GX110-6012345", one, 1), 1);
  CHECK_INT(one[0].kind, 'v');
  CHECK_INT(rt_text_cars("XW8ZZZ614BG012345", one, 0), 0);
  CHECK_INT(rt_text_cars("XW8ZZZ614BG012345", NULL, 4), 0);
}

/* ---- phones -------------------------------------------------------------- */

T(phone_table) {
  static const struct { const char *in, *want; } rows[] = {
    {"8 912 345-67-89", "+79123456789"},
    {"+7(912)3456789", "+79123456789"},
    {"7 912 3456789", "+79123456789"},
    {"9123456789", "+79123456789"},
    {"мой номер 89123456789", "+79123456789"},
    {"тел.: +7 912 345 67 89, звоните после 18", "+79123456789"},
    {"+7 (912) 345-67-89", "+79123456789"},
    {"8(912)345-67-89 Иван", "+79123456789"},
    {"8-912-345-67-89", "+79123456789"},
    {"8 (495) 123-45-67 офис", "+74951234567"},
    {"8-800-555-35-35", "+78005553535"},
    {"звоните 8 800 555 35 35!", "+78005553535"},
    {"+7 343 123 45 67", "+73431234567"},
    {"7 (727) 123 45 67", "+77271234567"},                            /* Kazakhstan */
    {"+380 67 123 45 67", "+380671234567"},
    {"+380671234567", "+380671234567"},
    {"+998 90 123 45 67", "+998901234567"},
    {"+375 29 123-45-67", "+375291234567"},
    {"+49 30 1234567", "+49301234567"},
    {"+8 912 345 67 89", "+79123456789"},                             /* +8 typo */
    {"2 шт 8 912 345 67 89", "+79123456789"},
    {"колодки 2 89123456789", "+79123456789"},
    {"89123456789 2 комплекта", "+79123456789"},
    {"номер 8\u00a0912\u00a0345\u00a067\u00a089", "+79123456789"},
    {"8\u2013912\u2013345\u201367\u201389", "+79123456789"},
    {"(912) 345-67-89", "+79123456789"},
    {"📞 +79123456789 📞", "+79123456789"},
    {"вин XW8ZZZ614BG012345 тел 89123456789", "+79123456789"},
    {"\xff+79123456789\xfe", "+79123456789"},
    {"15.12.2026 в 89123456789", "+79123456789"},
    {"+7 912 345 67 89 и 8 999 000 11 22", "+79123456789"},
    /* international prefixes dialled from Russia and the neighbours'
     * 12-digit numbers without the plus (class 10) */
    {"375291234567", "+375291234567"},
    {"375 29 123 45 67", "+375291234567"},
    {"8 10 375 29 123 45 67", "+375291234567"},
    {"810375291234567", "+375291234567"},
    {"00375291234567", "+375291234567"},
    {"00 49 151 12345678", "+4915112345678"},
    {"8 10 49 151 12345678", "+4915112345678"},
    {"380671234567", "+380671234567"},
    {"998901234567", "+998901234567"},
    {"123456789012", ""},
    {"000123456789", ""},
    /* not phones */
    {"", ""},
    {"12345", ""},
    {"912 345", ""},
    {"+7 912 345 67", ""},
    {"+7 912 345 67 891", ""},
    {"+12345", ""},
    {"+1234567890123456", ""},
    {"8 912 345 6", ""},
    {"8 912 345 67 89 0", "+79123456789"},                            /* trailing digit dropped */
    {"8123456789", ""},
    {"80123456789", ""},
    {"11234567890", ""},
    {"XW8ZZZ614BG012345", ""},
    {"1HGCM82633A004352", ""},
    {"1M8GDM9AXKP042788", ""},
    {"№ 9123456789", ""},
    {"заказ #9123456789", ""},
    {"90919-01253", ""},
    {"04465-33450", ""},
    {"15.12.2026", ""},
    {"1500 р", ""},
    {"А123ВС77", ""},
    {"артикул A9123456789", ""},
    {"9123456789р", ""},
    {"GX110-6012345", ""},
    {"\xd0\xff\xfe", ""},
  };
  char got[20];
  for (size_t i = 0; i < RT_ARRAY_LEN(rows); i++) {
    rt_text_phone(rows[i].in, got);
    ROW_STR(rows[i].in, got, rows[i].want);
  }
  CHECK(RT_ARRAY_LEN(rows) >= 50);
}

/* Two different numbers in one answer are asked about (class 10). */
T(phones_all) {
  static const struct { const char *in; int n; const char *first, *second; } rows[] = {
    {"89123456789 или 89221112233", 2, "+79123456789", "+79221112233"},
    {"мой 8 912 345 67 89, жены 8 922 111 22 33", 2, "+79123456789", "+79221112233"},
    {"89123456789, +7 912 345-67-89", 1, "+79123456789", ""},
    {"+79123456789\n+79221112233", 2, "+79123456789", "+79221112233"},
    {"нет номера", 0, "", ""},
    {"VIN XW8ZZZ614BG012345 и 89123456789", 1, "+79123456789", ""},
  };
  for (size_t i = 0; i < RT_ARRAY_LEN(rows); i++) {
    char out[4][20];
    int n = rt_text_phones(rows[i].in, out, 4);
    ROW_INT(rows[i].in, n, rows[i].n);
    if (n >= 1) ROW_STR(rows[i].in, out[0], rows[i].first);
    if (n >= 2) ROW_STR(rows[i].in, out[1], rows[i].second);
  }
  char one[1][20];
  CHECK_INT(rt_text_phones("89123456789 89221112233", one, 1), 1);
  CHECK_INT(rt_text_phones(NULL, one, 1), 0);
}

/* A CSV phone cell with a label, a name or an extension around the number
 * (class 10): the number taken, the rest kept. */
T(phone_field_table) {
  static const struct { const char *in, *want, *rest; } rows[] = {
    {"8 (912) 345-67-89", "+79123456789", ""},
    {"тел. 8 912 345-67-89 (Ольга)", "+79123456789", "тел. (Ольга"},
    {"+7 343 200-10-20 доб. 15", "+73432001020", "доб. 15"},
    {"Иванов 89123456789", "+79123456789", "Иванов"},
    {"моб: 89123456789, звонить после 18", "+79123456789", "моб: , звонить после 18"},
    {"89123456789 или 89221112233", "", ""},
    {"нет", "", ""},
    {"", "", ""},
  };
  for (size_t i = 0; i < RT_ARRAY_LEN(rows); i++) {
    char out[20], rest[64];
    bool ok = rt_text_phone_field(rows[i].in, out, rest, sizeof rest);
    ROW_STR(rows[i].in, ok ? out : "", rows[i].want);
    ROW_STR(rows[i].in, ok ? rest : "", rows[i].rest);
  }
}

T(phone_norm_table) {
  static const struct { const char *in, *want; } rows[] = {
    {"8(912)345-67-89", "+79123456789"},
    {"79123456789", "+79123456789"},
    {"+7 912 345 67 89", "+79123456789"},
    {"9123456789", "+79123456789"},
    {" 8 912 345 67 89 ", "+79123456789"},
    {"4951234567", "+74951234567"},
    {"8001234567", "+78001234567"},
    {"+380671234567", "+380671234567"},
    {"912.345.67.89", "+79123456789"},
    {"", ""},
    {"нет", ""},
    {"891234567", ""},
    {"8121234567", "+78121234567"},                                  /* 812: St Petersburg */
    {"8 912 345 67 89 доб. 12", ""},
    {"+7 912 345 67 89+", ""},
    {"7+9123456789", ""},
    {"123", ""},
    {"1234567890", ""},
    {"+791234567890000000", ""},
  };
  char got[20];
  for (size_t i = 0; i < RT_ARRAY_LEN(rows); i++) {
    rt_text_phone_norm(rows[i].in, got);
    ROW_STR(rows[i].in, got, rows[i].want);
  }
  CHECK(!rt_text_phone_norm(NULL, got));
  CHECK(!rt_text_phone(NULL, got));
}

/* ---- dates ----------------------------------------------------------------- */

/* "YYYY-MM-DD HH:MM kind [matched]" in zone tz, or "" when nothing found. */
static void date_str(const char *s, int64_t now, const char *tz, const rt_text_date_opts *o,
                     char *out, size_t n) {
  rt_text_date_res r;
  out[0] = '\0';
  if (!rt_text_date(s, now, tz, o, &r)) return;
  struct tm tm;
  if (rt_tz_local_tm(tz, r.at, &tm) != 0) { snprintf(out, n, "bad zone"); return; }
  snprintf(out, n, "%04d-%02d-%02d %02d:%02d %s [%s]", tm.tm_year + 1900, tm.tm_mon + 1,
           tm.tm_mday, tm.tm_hour, tm.tm_min, r.kind, r.matched);
}

T(date_table) {
  /* today is Monday 2026-11-23; results are at 10:00 Moscow time */
  static const struct { const char *in, *want; } rows[] = {
    {"через две недели", "2026-12-07 10:00 relative [через две недели]"},
    {"Через 2 недели", "2026-12-07 10:00 relative [через 2 недели]"},
    {"через неделю", "2026-11-30 10:00 relative [через неделю]"},
    {"напишите через пару недель пожалуйста", "2026-12-07 10:00 relative [через пару недель]"},
    {"через месяц", "2026-12-23 10:00 relative [через месяц]"},
    {"через 3 дня", "2026-11-26 10:00 relative [через 3 дня]"},
    {"через пару дней", "2026-11-25 10:00 relative [через пару дней]"},
    {"через полгода", "2027-05-23 10:00 relative [через полгода]"},
    {"через пол года", "2027-05-23 10:00 relative [через пол года]"},
    {"черз неделю", "2026-11-30 10:00 relative [черз неделю]"},
    /* typos, abbreviations, ranges (the earliest bound), the number after
     * the unit (class 9) */
    {"чере неделю", "2026-11-30 10:00 relative [чере неделю]"},
    {"через неделб", "2026-11-30 10:00 relative [через неделб]"},
    {"чз неделю", "2026-11-30 10:00 relative [чз неделю]"},
    {"ч/з 2 недели", "2026-12-07 10:00 relative [ч/з 2 недели]"},
    {"через неделю-две", "2026-11-30 10:00 relative [через неделю-две]"},
    {"через 2-3 недели", "2026-12-07 10:00 relative [через 2-3 недели]"},
    {"через месяц-полтора", "2026-12-23 10:00 relative [через месяц-полтора]"},
    {"через дней 10", "2026-12-03 10:00 relative [через дней 10]"},
    {"через недели две", "2026-12-07 10:00 relative [через недели две]"},
    /* the New Year holidays: the first working day after them (2027: the
     * 11th); "в январе" said in November means that too */
    {"после праздников", "2027-01-11 10:00 holidays [после праздников]"},
    {"после нового года", "2027-01-11 10:00 holidays [после нового года]"},
    {"после нг", "2027-01-11 10:00 holidays [после нг]"},
    {"после новогодних праздников", "2027-01-11 10:00 holidays [после новогодних праздников]"},
    {"в январе", "2027-01-11 10:00 holidays [в январе]"},
    {"в начале января", "2027-01-11 10:00 holidays [в начале января]"},
    /* Latin letters read as Russian (class 4) */
    {"cherez nedelyu", "2026-11-30 10:00 relative [через неделю]"},
    /* a date that tells when something happened is no reminder (class 8) */
    {"весной продал машину", ""},
    {"в январе меняли ремень", ""},
    {"летом менял колодки", ""},
    {"продал её через неделю", ""},
    {"через 2-3 дня", "2026-11-25 10:00 relative [через 2-3 дня]"},
    {"через 2-х недель", "2026-12-07 10:00 relative [через 2-х недель]"},
    {"через полторы недели", "2026-12-03 10:00 relative [через полторы недели]"},
    {"через недельку", "2026-11-30 10:00 relative [через недельку]"},
    {"через 10 дней", "2026-12-03 10:00 relative [через 10 дней]"},
    {"через три месяца", "2027-02-23 10:00 relative [через три месяца]"},
    {"дня через два", "2026-11-25 10:00 relative [дня через два]"},
    {"недели через 3 наберите", "2026-12-14 10:00 relative [недели через 3]"},
    {"ЗАВТРА!", "2026-11-24 10:00 tomorrow [завтра]"},
    {"давай зафтра", "2026-11-24 10:00 tomorrow [зафтра]"},
    {"послезавтра", "2026-11-25 10:00 after_tomorrow [послезавтра]"},
    {"после завтра", "2026-11-25 10:00 after_tomorrow [после завтра]"},
    {"на следующей неделе", "2026-11-30 10:00 next_week [на следующей неделе]"},
    {"на след. неделе в среду", "2026-12-02 10:00 weekday [на след. неделе в среду]"},
    {"в пятницу", "2026-11-27 10:00 weekday [в пятницу]"},
    {"в пт", "2026-11-27 10:00 weekday [в пт]"},
    {"в понедельник", "2026-11-30 10:00 weekday [в понедельник]"},  /* strictly after */
    {"во вторник", "2026-11-24 10:00 weekday [во вторник]"},
    {"в Воскресенье", "2026-11-29 10:00 weekday [в воскресенье]"},
    {"в питницу", "2026-11-27 10:00 weekday [в питницу]"},
    {"в следующую пятницу", "2026-12-04 10:00 weekday [в следующую пятницу]"},
    {"15-го", "2026-12-15 10:00 monthday [15-го]"},
    {"15го", "2026-12-15 10:00 monthday [15го]"},
    {"15 числа", "2026-12-15 10:00 monthday [15 числа]"},
    {"к 15-му", "2026-12-15 10:00 monthday [к 15-му]"},
    {"после 25-го числа", "2026-11-25 10:00 monthday [после 25-го числа]"},
    {"23-го", "2026-12-23 10:00 monthday [23-го]"},                /* today: next month */
    {"30-го", "2026-11-30 10:00 monthday [30-го]"},
    {"31-го", "2026-11-30 10:00 monthday [31-го]"},                /* November has 30 */
    {"15.12", "2026-12-15 10:00 date [15.12]"},
    {"15.12.2026", "2026-12-15 10:00 date [15.12.2026]"},
    {"01.02.27", "2027-02-01 10:00 date [01.02.27]"},
    {"15/01", "2027-01-15 10:00 date [15/01]"},
    {"20.11", "2027-11-20 10:00 date [20.11]"},                    /* past: next year */
    {"15 декабря", "2026-12-15 10:00 date [15 декабря]"},
    {"1-го января 2027 г.", "2027-01-01 10:00 date [1-го января 2027 г.]"},
    {"20 ноября", "2027-11-20 10:00 date [20 ноября]"},
    {"к 5 дек.", "2026-12-05 10:00 date [к 5 дек.]"},
    {"в конце месяца", "2026-11-30 10:00 month_end [в конце месяца]"},
    {"к концу следующего месяца", "2026-12-31 10:00 month_end [к концу следующего месяца]"},
    {"в конце декабря", "2026-12-31 10:00 month_end [в конце декабря]"},
    {"в начале месяца", "2026-12-01 10:00 month_start [в начале месяца]"},
    {"в начале следующего месяца", "2026-12-01 10:00 month_start [в начале следующего месяца]"},
    {"в середине месяца", "2026-12-15 10:00 month_mid [в середине месяца]"},
    {"до конца недели", "2026-11-27 10:00 weekday [до конца недели]"},
    {"в начале следующей недели", "2026-11-30 10:00 next_week [в начале следующей недели]"},
    {"после зарплаты", "2026-12-05 10:00 payday [после зарплаты]"},
    {"после получки", "2026-12-05 10:00 payday [после получки]"},
    {"как зарплата придёт", "2026-12-05 10:00 payday [как зарплата придет]"},
    {"с зп возьму", "2026-12-05 10:00 payday [с зп]"},
    {"на выходных", "2026-11-28 10:00 weekend [на выходных]"},
    {"в эти выходные", "2026-11-28 10:00 weekend [в эти выходные]"},
    {"в следующем месяце", "2026-12-01 10:00 next_month [в следующем месяце]"},
    {"в декабре", "2026-12-01 10:00 month [в декабре]"},
    {"в марте", "2027-03-01 10:00 month [в марте]"},
    {"весной", "2027-03-01 10:00 season [весной]"},
    {"пока не надо, может через месяц", "2026-12-23 10:00 relative [через месяц]"},
    {"нет, давай 15го или 20го", "2026-12-15 10:00 monthday [15го]"},
    {"👍 через неделю 👍", "2026-11-30 10:00 relative [через неделю]"},
    /* no date */
    {"", ""},
    {"нужны колодки", ""},
    {"1.5 литра", ""},
    {"двигатель 2.0", ""},
    {"версия 1.15.12", ""},
    {"в ноябре", ""},                       /* the current month says nothing */
    {"31.02", ""},
    {"29.02", ""},                          /* next 29 Feb is not within a year */
    {"15.13", ""},
    {"через", ""},
    {"через дорогу", ""},
    {"1500 р", ""},
    {"+7 912 345-67-89", ""},
    {"аванс внесу", ""},
    {"XW8ZZZ614BG012345", ""},
    {"\xff\xfe", ""},
  };
  char got[160];
  for (size_t i = 0; i < RT_ARRAY_LEN(rows); i++) {
    date_str(rows[i].in, NOW, NULL, NULL, got, sizeof got);
    ROW_STR(rows[i].in, got, rows[i].want);
  }
  CHECK(RT_ARRAY_LEN(rows) >= 50);
}

T(date_edges) {
  char got[160];
  /* last two days of the month: "the end" is next month's */
  int64_t nov29 = rt_tz_make(NULL, 2026, 11, 29, 12, 0);
  date_str("в конце месяца", nov29, NULL, NULL, got, sizeof got);
  CHECK_STR(got, "2026-12-31 10:00 month_end [в конце месяца]");
  int64_t nov28 = rt_tz_make(NULL, 2026, 11, 28, 12, 0);
  date_str("в конце месяца", nov28, NULL, NULL, got, sizeof got);
  CHECK_STR(got, "2026-11-30 10:00 month_end [в конце месяца]");
  /* Saturday: "на выходных" is next Saturday */
  date_str("на выходных", nov28, NULL, NULL, got, sizeof got);
  CHECK_STR(got, "2026-12-05 10:00 weekend [на выходных]");
  /* January 31 + one month = end of February */
  int64_t jan31 = rt_tz_make(NULL, 2027, 1, 31, 12, 0);
  date_str("через месяц", jan31, NULL, NULL, got, sizeof got);
  CHECK_STR(got, "2027-02-28 10:00 relative [через месяц]");
  /* year end */
  int64_t dec30 = rt_tz_make(NULL, 2026, 12, 30, 12, 0);
  date_str("через 3 дня", dec30, NULL, NULL, got, sizeof got);
  CHECK_STR(got, "2027-01-02 10:00 relative [через 3 дня]");
  date_str("после зарплаты", dec30, NULL, NULL, got, sizeof got);
  CHECK_STR(got, "2027-01-05 10:00 payday [после зарплаты]");

  /* configured paydays and hour */
  rt_text_date_opts o = {{10, 25, 0, 0}, 9, 0};
  date_str("после зарплаты", NOW, NULL, &o, got, sizeof got);
  CHECK_STR(got, "2026-11-25 09:00 payday [после зарплаты]");
  rt_text_date_opts today_only = {{23, 0, 0, 0}, 18, 0};
  date_str("как получка будет", NOW, NULL, &today_only, got, sizeof got);
  CHECK_STR(got, "2026-12-23 18:00 payday [как получка будет]");
  rt_text_date_opts last = {{31, 0, 0, 0}, -1, 0};
  date_str("после зарплаты", NOW, NULL, &last, got, sizeof got);
  CHECK_STR(got, "2026-11-30 10:00 payday [после зарплаты]");
  rt_text_date_opts none = {{0, 0, 0, 0}, 10, 0};
  date_str("после зарплаты", NOW, NULL, &none, got, sizeof got);
  CHECK_STR(got, "2026-12-05 10:00 payday [после зарплаты]");

  /* Vladivostok: 20:00 in Moscow is already Tuesday 03:00 there */
  int64_t late = rt_tz_make(NULL, 2026, 11, 23, 20, 0);
  date_str("завтра", late, "Asia/Vladivostok", NULL, got, sizeof got);
  CHECK_STR(got, "2026-11-25 10:00 tomorrow [завтра]");
  rt_text_date_res r;
  CHECK_INT(rt_text_date("завтра", late, "Asia/Vladivostok", NULL, &r), 1);
  CHECK_INT(r.at, rt_tz_make("UTC", 2026, 11, 25, 0, 0));
  CHECK_INT(rt_text_date("завтра", NOW, "Asia/Yekaterinburg", NULL, &r), 1);
  CHECK_INT(r.at, rt_tz_make("UTC", 2026, 11, 24, 5, 0));
  /* unknown zone: Moscow */
  CHECK_INT(rt_text_date("завтра", NOW, "Mars/Olympus", NULL, &r), 1);
  CHECK_INT(r.at, rt_tz_make("UTC", 2026, 11, 24, 7, 0));

  /* matched is cut on a code point boundary */
  CHECK_INT(rt_text_date("через очень-очень", NOW, NULL, NULL, &r), 0);
  CHECK_INT(rt_text_date("к концу следующего месяца", NOW, NULL, NULL, &r), 1);
  CHECK(strlen(r.matched) < sizeof r.matched);
  CHECK_INT(rt_text_date(NULL, NOW, NULL, NULL, &r), 0);
  CHECK_INT(rt_text_date("завтра", NOW, NULL, NULL, NULL), 0);
}

/* The production calendar behind "после праздников" (class 9). */
T(holidays) {
  rt_text_date_res r;
  char day[16];
  struct tm tm;
  /* 2026-03-02, Monday: the 8th of March is a Sunday, the 9th the day off */
  int64_t march = 1772434800;
  CHECK_INT(rt_text_date("после праздников", march, NULL, NULL, &r), 1);
  rt_tz_local_tm(NULL, r.at, &tm);
  strftime(day, sizeof day, "%Y-%m-%d", &tm);
  CHECK_STR(day, "2026-03-10");
  /* "в январе" in March is January next year, a month */
  CHECK_INT(rt_text_date("в январе", march, NULL, NULL, &r), 1);
  CHECK_STR(r.kind, "holidays");
  rt_tz_local_tm(NULL, r.at, &tm);
  strftime(day, sizeof day, "%Y-%m-%d", &tm);
  CHECK_STR(day, "2027-01-01");
  /* a shop's own calendar: the holidays end on the 6th (a Wednesday in 2027) */
  rt_text_date_opts o = RT_TEXT_DATE_OPTS_DEFAULT;
  o.newyear_last = 6;
  CHECK_INT(rt_text_date("после нового года", NOW, NULL, &o, &r), 1);
  rt_tz_local_tm(NULL, r.at, &tm);
  strftime(day, sizeof day, "%Y-%m-%d", &tm);
  CHECK_STR(day, "2027-01-07");
  /* said on January 5th: the holidays of this year */
  int64_t jan5 = rt_tz_make(NULL, 2027, 1, 5, 12, 0);
  CHECK_INT(rt_text_date("после праздников", jan5, NULL, NULL, &r), 1);
  rt_tz_local_tm(NULL, r.at, &tm);
  strftime(day, sizeof day, "%Y-%m-%d", &tm);
  CHECK_STR(day, "2027-01-11");
}

/* ---- intents --------------------------------------------------------------- */

/* The persona's vocabulary (scripts/vitaly/lib/words.lua), loaded in main. */
static rt_text_vocab *V;

#define Y RT_INTENT_YES
#define N RT_INTENT_NO
#define D RT_INTENT_DONE
#define S RT_INTENT_STOP
#define L RT_INTENT_LATER
#define NE RT_INTENT_NEED
#define DE RT_INTENT_DECLINED
#define P RT_INTENT_PROBLEM
#define TH RT_INTENT_THANKS

T(intent_table) {
  /* primary (NULL = none), bits that must be set, bits that must not */
  static const struct { const char *in, *primary; unsigned must, mustnt; } rows[] = {
    {"стоп", "stop", S, 0},
    {"СТОП!!!", "stop", S, 0},
    {"Не пишите мне больше", "stop", S, NE},
    {"отпишитесь", "stop", S, 0},
    {"как отписаться?", "stop", S, 0},
    {"отпишите меня", "stop", S, 0},
    {"хватит писать", "stop", S, D},
    {"удалите мой номер", "stop", S, 0},
    {"не беспокойте", "stop", S, 0},
    {"это спам", "stop", S, 0},
    {"unsubscribe", "stop", S, 0},
    {"STOP", "stop", S, 0},
    {"не надо мне больше писать", "stop", S | DE, NE},
    {"лампочка стоп-сигнала нужна", "need", NE, S},
    {"позже", "later", L, 0},
    {"попозже", "later", L, 0},
    {"потом", "later", L, 0},
    {"не сейчас", "later", L, 0},
    {"напишите через месяц", "later", L, 0},
    {"через две недели", "later", L, 0},
    {"после зарплаты", "later", L, 0},
    {"в конце месяца", "later", L, 0},
    {"пока не надо, может через месяц", "later", L | DE, NE},
    {"да, но после зарплаты", "later", L | Y, 0},
    {"надо подумать", "later", L, NE},
    {"через час", "later", L, 0},
    {"сегодня вечером напишу", "later", L, 0},
    {"ничего не нужно", "declined", DE, NE},
    {"Ничего не надо", "declined", DE, NE},
    {"не нужно", "declined", DE, NE},
    {"не надо", "declined", DE, NE},
    {"пока ничего", "declined", DE, NE},
    {"всё есть", "declined", DE, 0},
    {"нет, спасибо", "declined", DE | N | TH, NE},
    {"не требуется", "declined", DE, NE},
    {"машину продал", "declined", DE, 0},
    {"колодки не нужны", "declined", DE, NE},
    {"спасибо, уже купил", "declined", DE | TH, 0},
    {"не работает", "problem", P, 0},
    {"сломался через день", "problem", P, L},   /* when it broke, not when to write */
    {"брак", "problem", P, 0},
    {"проблема с заказом", "problem", P, 0},
    {"хочу вернуть", "problem", P, 0},
    {"оформите возврат", "problem", P, 0},
    {"не включается", "problem", P, 0},
    {"колодки не подошли", "problem", P, NE},
    {"Не подошёл", "problem", P, 0},
    {"жалоба", "problem", P, 0},
    {"нужно", "need", NE, 0},
    {"нужны колодки", "need", NE, 0},
    {"да, нужны колодки", "need", NE | Y, D},
    {"хочу заказать", "need", NE, 0},
    {"есть ли фильтр на камри?", "need", NE, 0},
    {"подберите масло", "need", NE, 0},
    {"ищу стартер на короллу", "need", NE, 0},
    {"требуется помпа", "need", NE, 0},
    {"нет, нужны ещё свечи", "need", NE | N, D},
    {"ещё свечи и фильтр", "need", NE, 0},
    {"нужны колодки к пятнице", "need", NE, L},
    {"нужен стартер завтра", "need", NE, L},
    {"сколько стоит ремень ГРМ?", "need", NE, 0},
    {"нет", "done", D | N, 0},
    {"всё", "done", D, 0},
    {"Все!", "done", D, 0},
    {"больше ничего", "done", D, DE},
    {"больше ничего не надо", "done", D, DE},
    {"это всё", "done", D, 0},
    {"пока всё", "done", D, 0},
    {"достаточно", "done", D, 0},
    {"хватит", "done", D, S},
    {"спасибо", "done", D | TH, 0},
    {"no", "done", D | N, 0},
    {"nope", "done", D | N, 0},
    {"ничего", "done", D, 0},
    {"нет спасибо", "declined", DE | D | N | TH, 0},
    {"всё, спасибо!", "done", D | TH, 0},
    {"неа", "done", N, 0},
    {"не", "no", N, D},
    {"да", "yes", Y, 0},
    {"ага", "yes", Y, 0},
    {"угу", "yes", Y, 0},
    {"конечно", "yes", Y, 0},
    {"давайте", "yes", Y, 0},
    {"хорошо", "yes", Y, 0},
    {"ок", "yes", Y, 0},
    {"OK", "yes", Y, 0},
    {"yes", "yes", Y, 0},
    {"+", "yes", Y, 0},
    {"👍", "yes", Y, 0},
    {"👍👍👍", "yes", Y, 0},
    {"всё хорошо", "yes", Y, D},
    {"всё хорошо, спасибо", "yes", Y | TH, D},
    {"нет проблем", "yes", Y, N | P},
    {"не хорошо", NULL, 0, Y},
    {"спс", "done", TH, 0},
    {"благодарю за помощь", "thanks", TH, 0},
    {"спасибо 🙏 жду", "thanks", TH, D},
    /* issue 11: a closing phrase with extra words closes the list (1) */
    {"всё, отправляйте", "done", D, NE},
    {"да нет, хватит", "done", D, NE | S},
    {"на этом всё", "done", D, NE},
    {"пожалуй, достаточно", "done", D, NE},
    {"всё, жду звонка", "done", D, NE},
    {"нет ничего, жду счет", "done", D, NE},
    {"всё, когда можно забрать?", "done", D, NE},          /* (3) */
    {"нет, сколько выйдет?", "done", D, NE},
    /* self-interruption is not an opt-out (2) */
    {"стоп, ещё фильтр забыл", "need", NE, S | D},
    {"нет, подождите, и щётки", "need", NE, S | D},
    {"подождите, мне нужен фильтр", "need", NE, S},
    {"стоп рассылка", "stop", S, 0},
    /* Latin letters read as Russian (4) */
    {"net, spasibo", "declined", DE, NE},
    {"nuzhen akkumulyator", "need", NE, 0},
    {"ne pishite", "stop", S, 0},
    {"cтоп", "stop", S, 0},                                 /* Latin c */
    /* refusals by circumstance (5) */
    {"машина на гарантии обслуживаемся у дилера", "declined", DE, NE},
    {"запчасти покупает мой мастер", "declined", DE, NE},
    {"сам разберусь", "declined", DE, NE},
    {"дорого у вас", "declined", DE, NE},
    {"разбил машину, теперь без машины", "declined", DE, NE | P},
    {"нужны колодки подешевле", "need", NE, DE},
    /* a symptom naming a part is a need (6), about a purchase a problem */
    {"стартер не крутит, нужен новый", "need", NE, P},
    {"треснуло лобовое", "need", NE, P},
    {"аккумулятор сдох не заводится", "need", NE, P},
    {"колодки которые у вас брал скрипят", "problem", P, NE},
    {"в прошлый раз привезли не то", "problem", P, 0},
    /* threats and rude complaints about the messages are opt-outs (7) */
    {"ещё раз напишете — заблокирую", "stop", S, 0},
    {"достали рассылками", "stop", S, 0},
    {"сколько можно писать", "stop", S, 0},
    {"пожалуюсь в роскомнадзор если не перестанете", "stop", S, 0},
    /* time words that are not deferrals (8) */
    {"вечером скину список", "need", NE, L},
    {"перестаньте писать", "stop", S, 0},
    {"заказ так и не привезли", "problem", P, 0},
    {"чё надо?", NULL, 0, NE},
    {"вечером напишу", "later", L, 0},
    {"весной продал машину", "declined", DE, L | NE},
    {"", NULL, 0, RT_INTENT_ALL},
    {"здравствуйте", NULL, 0, RT_INTENT_ALL},
    {"XW8ZZZ614BG012345", NULL, 0, RT_INTENT_ALL},
    {"\xff\xfe\xd0", NULL, 0, RT_INTENT_ALL},
  };
  for (size_t i = 0; i < RT_ARRAY_LEN(rows); i++) {
    unsigned bits = rt_text_vocab_intents(V, rows[i].in);
    const char *p = rt_text_vocab_intent(V, rows[i].in);
    bool ok = (rows[i].primary ? p && !strcmp(p, rows[i].primary) : !p) &&
              (bits & rows[i].must) == rows[i].must && !(bits & rows[i].mustnt);
    if (!ok) {
      fprintf(stderr, "  input \"%s\": primary %s (want %s), bits 0x%x (must 0x%x, not 0x%x)\n",
              rows[i].in, p ? p : "NULL", rows[i].primary ? rows[i].primary : "NULL", bits,
              rows[i].must, rows[i].mustnt);
    }
    CHECK(ok);
  }
  CHECK(RT_ARRAY_LEN(rows) >= 50);
}

T(intent_names) {
  CHECK_STR(rt_text_intent_name(RT_INTENT_STOP), "stop");
  CHECK_STR(rt_text_intent_name(RT_INTENT_THANKS), "thanks");
  CHECK(rt_text_intent_name(0) == NULL);
  CHECK(rt_text_intent_name(RT_INTENT_YES | RT_INTENT_NO) == NULL);
  CHECK_INT(rt_text_intent_bit("declined"), RT_INTENT_DECLINED);
  CHECK_INT(rt_text_intent_bit("nonsense"), 0);
  CHECK_INT(rt_text_intent_bit(NULL), 0);
  CHECK_INT(rt_text_vocab_intents(V, NULL), 0);
  CHECK(rt_text_vocab_intent(V, NULL) == NULL);
}

/* ---- robustness: nothing crashes or reads out of bounds -------------------- */

static void run_all(const char *s) {
  rt_text_car cars[4];
  char buf[32];
  rt_text_date_res r;
  free(rt_text_norm(s));
  rt_text_cars(s, cars, 4);
  rt_text_vin(s, buf);
  rt_text_frame(s, buf);
  rt_text_phone(s, buf);
  rt_text_phone_norm(s, buf);
  rt_text_date(s, NOW, "Asia/Vladivostok", NULL, &r);
  rt_text_vocab_intents(V, s);
  rt_text_plate(s, false, buf);
  rt_text_plate(s, true, buf);
  size_t n = strlen(s);
  char *out = malloc(n + 1);
  rt_text_plain_buf(s, n, out);
  free(out);
  bool cut;
  CHECK(rt_text_head(s, n, 7, &cut) <= n);
  CHECK(rt_text_letters(s, n) <= n);
}

T(robust) {
  /* 10 KB of mixed text: the answers must still be found */
  size_t n = 10 * 1024;
  char *big = malloc(n + 64);
  static const char chunk[] = "ё👍 ХW8 а123вс77 \xff 8-912 ";
  size_t o = 0;
  while (o + sizeof chunk < n) { memcpy(big + o, chunk, sizeof chunk - 1); o += sizeof chunk - 1; }
  strcpy(big + o, " через неделю XW8ZZZ614BG012345 +79123456789 нет спасибо");
  run_all(big);
  char v[18], ph[20];
  CHECK(rt_text_vin(big, v));
  CHECK(rt_text_phone(big, ph));
  rt_text_date_res r;
  CHECK_INT(rt_text_date(big, NOW, NULL, NULL, &r), 1);
  CHECK(rt_text_vocab_intents(V, big) & RT_INTENT_DECLINED);
  char *nb = rt_text_norm(big);
  CHECK(strlen(nb) <= strlen(big));
  free(nb);

  /* pseudo-random bytes, biased towards the interesting ones */
  static const unsigned char alphabet[] = {
    'X', 'W', '8', '1', '9', '0', '-', ' ', '+', '(', ')', '.', '/', 0xd0, 0xd1, 0xb5, 0x81,
    0x80, 0xe2, 0x80, 0x93, 0xf0, 0x9f, 0x91, 0x8d, 0xff, 0xc3, '7', 'A', 'z'};
  uint32_t seed = 12345;
  for (int round = 0; round < 3000; round++) {
    size_t len = (size_t)(round % 97);
    for (size_t i = 0; i < len; i++) {
      seed = seed * 1103515245u + 12345u;
      big[i] = (char)alphabet[(seed >> 16) % sizeof alphabet];
    }
    big[len] = '\0';
    run_all(big);
  }
  /* every single byte and every two-byte prefix of a multi-byte sequence */
  for (int b = 1; b < 256; b++) {
    char s[4] = {(char)b, 0, 0, 0};
    run_all(s);
    s[1] = (char)0x80;
    run_all(s);
  }
  free(big);
  run_all("");
  run_all("👍👍👍👍👍👍👍👍👍👍👍👍👍👍👍👍👍👍👍👍👍👍👍👍👍👍");
}

/* ---- plates, letters, plain words, heads -------------------------------- */

T(plate_table) {
  static const struct { const char *in; bool whole; const char *want; } rows[] = {
    {"А123ВС96", true, "A123BC96"},
    {"а 123 вс 196 rus", true, "A123BC196"},
    {"а123вс-96", true, "A123BC96"},
    {"(А123ВС96).", true, "A123BC96"},
    {"A123BC96", true, "A123BC96"},
    {"ё123ех77", true, "E123EX77"},
    {"а123вс96rus", true, "A123BC96"},
    {"а123вс96 рус", true, ""},          /* only the Latin RUS, as before */
    {"а123вс9", true, ""},
    {"а123вс9612", true, ""},
    {"я123вс96", true, ""},
    {"а123вс96!rus", true, ""},
    {"а12.3вс96", true, ""},
    {"номер а123вс96", true, ""},
    {"", true, ""},
    {"мой номер а123вс96, vin потом", false, "A123BC96"},
    {"номер: а 123 вс 96", false, "A123BC96"},
    {"а 1 2 3 в с 9 6", false, ""},      /* 8 words: more than 5 */
    {"а1 2 3в с96", false, "A123BC96"},  /* 5 words */
    {"тел 89123456789", false, ""},
    {"xа123вс96", false, ""},            /* glued to a word */
    {"а123вс96x", false, ""},
    {"колодки а123вс96", false, "A123BC96"},
    {"ХW8 а123вс77", false, "A123BC77"},
    {"\xff а123вс77 \xff", false, "A123BC77"},
    {"а123вс77\xff", false, "A123BC77"}, /* an invalid byte reads as '?' */
    {"а123вс\xc2\xa0" "96", false, "A123BC96"},
    {"а123вс–96", false, "A123BC96"},
  };
  for (size_t i = 0; i < RT_ARRAY_LEN(rows); i++) {
    char out[16] = "junk";
    bool got = rt_text_plate(rows[i].in, rows[i].whole, out);
    CHECK_INT(got, rows[i].want[0] != '\0');
    ROW_STR(rows[i].in, out, rows[i].want);
  }
  char out[16];
  CHECK(!rt_text_plate(NULL, false, out));
}

T(letters_plain_head) {
  static const struct { const char *in; size_t want; } letters[] = {
    {"", 0}, {"👍👍", 0}, {"Привет!", 6}, {"Ёж ё", 3}, {"a1 B2", 4}, {"àé", 0},
    {"\xff\xd0", 0}, {"...", 0},
  };
  for (size_t i = 0; i < RT_ARRAY_LEN(letters); i++)
    CHECK_INT(rt_text_letters(letters[i].in, strlen(letters[i].in)), letters[i].want);

  static const struct { const char *in, *want; } plain[] = {
    {"", ""}, {"Нужны: колодки, фильтр!", "нужны колодки фильтр"},
    {"  ...  ", ""}, {"«Чехол»", "«чехол»"}, {"a\xff" "b", "a b"}, {"5w-30", "5w 30"},
    {"ВСЁ,спасибо", "все спасибо"},
  };
  for (size_t i = 0; i < RT_ARRAY_LEN(plain); i++) {
    size_t n = strlen(plain[i].in);
    char out[64];
    CHECK_INT(rt_text_plain_buf(plain[i].in, n, out), strlen(plain[i].want));
    ROW_STR(plain[i].in, out, plain[i].want);
  }

  static const struct { const char *in; size_t max; size_t want; bool cut; } heads[] = {
    {"", 5, 0, false},
    {"колодки", 7, 14, false},          /* 7 characters, 14 bytes */
    {"колодки", 3, 6, true},            /* one word only: cut inside it */
    {"нужны колодки", 8, 11, true},     /* "нужны " -- half a word is dropped */
    {"нужны колодки", 6, 11, true},     /* the cut after a space */
    {"нужны колодки", 5, 10, true},     /* the cut before a space */
    {"a\xff\xff\xff", 3, 3, true},       /* an invalid byte is one character */
    {"a \xff\xff\xff", 3, 2, true},      /* ... and the cut word is left out */
    {"vin XW8ZZZ614BG012345 и ещё", 12, 4, true},
  };
  for (size_t i = 0; i < RT_ARRAY_LEN(heads); i++) {
    bool cut;
    size_t got = rt_text_head(heads[i].in, strlen(heads[i].in), heads[i].max, &cut);
    if (got != heads[i].want || cut != heads[i].cut)
      fprintf(stderr, "  input: \"%s\" max %zu\n", heads[i].in, heads[i].max);
    CHECK_INT(got, heads[i].want);
    CHECK_INT(cut, heads[i].cut);
  }
  /* a word longer than any id is cut, not dropped */
  char longw[100];
  memset(longw, 'x', 99);
  longw[0] = 'a'; longw[1] = ' ';
  longw[99] = '\0';
  bool cut;
  CHECK_INT(rt_text_head(longw, 99, 50, &cut), 50);
}

/* The helpers the flows call on every message stay linear: a plate at the
 * end of 1 MB of words (or of one 1 MB word, or of 1 MB of punctuation) is
 * found in one pass. Times are not asserted; a quadratic scan would make
 * this test take minutes. */
T(long_inputs) {
  size_t n = 1 << 20;
  char *big = malloc(n + 64);
  static const char *units[] = {"а ", "колодки ", ".", "x", "а1 "};
  for (size_t u = 0; u < RT_ARRAY_LEN(units); u++) {
    size_t ul = strlen(units[u]), o = 0;
    while (o + ul < n) { memcpy(big + o, units[u], ul); o += ul; }
    strcpy(big + o, " а123вс96");
    char out[16];
    CHECK(rt_text_plate(big, false, out));
    CHECK_INT(rt_text_plate(big, true, out), u == 2);   /* only punctuation before it */
    if (u == 3) {
      strcpy(big + o, "а123вс96");                       /* glued to the 1 MB word */
      CHECK(!rt_text_plate(big, false, out));
    }
    CHECK(rt_text_letters(big, strlen(big)) > 0);
    char *pl = malloc(strlen(big) + 1);
    CHECK(rt_text_plain_buf(big, strlen(big), pl) <= strlen(big));
    free(pl);
    bool cut;
    CHECK(rt_text_head(big, strlen(big), 4096, &cut) <= 4096 * 4);
    CHECK(cut);
  }
  free(big);
}

/* text.is() computes only what one intent needs; it must agree with the
 * full set whatever order intents are asked in. */
T(is_agrees_with_intents) {
  static const char *msgs[] = {
    "нет", "нет, нужны ещё свечи", "всё, спасибо", "через две недели", "нужны колодки к пятнице",
    "не надо ничего", "стоп", "колодки", "не работает чехол", "хочу чехол", "после зарплаты",
    "да", "👍", "спасибо", "больше ничего не надо", "продал машину", "позже, в конце месяца",
    "масло 5w30", "", "не пишите мне", "вернуть товар", "ок", "в следующем месяце напишите"};
  for (size_t i = 0; i < sizeof msgs / sizeof msgs[0]; i++) {
    unsigned all = rt_text_vocab_intents(V, msgs[i]);
    for (unsigned first = 1; first & RT_INTENT_ALL; first <<= 1) {
      rt_text_vocab_is(V, "-", RT_INTENT_YES);               /* forget the message */
      for (unsigned k = 0, bit = first; k < 9; k++) {
        bool got = rt_text_vocab_is(V, msgs[i], bit), want = (all & bit) != 0;
        if (got != want) {
          fprintf(stderr, "  \"%s\": is(%s) = %d, intents says %d\n", msgs[i],
                  rt_text_intent_name(bit), got, want);
          CHECK(got == want);
        }
        bit = bit << 1 & RT_INTENT_ALL ? bit << 1 : 1;
      }
    }
  }
}

int main(void) {
  V = tvocab_vitaly();
  if (!V) return 1;
  T_RUN(norm);
  T_RUN(cars_table);
  T_RUN(cars_helpers);
  T_RUN(phone_table);
  T_RUN(phone_norm_table);
  T_RUN(phones_all);
  T_RUN(phone_field_table);
  T_RUN(date_table);
  T_RUN(date_edges);
  T_RUN(holidays);
  T_RUN(intent_table);
  T_RUN(is_agrees_with_intents);
  T_RUN(intent_names);
  T_RUN(robust);
  T_RUN(plate_table);
  T_RUN(letters_plain_head);
  T_RUN(long_inputs);

  tvocab_close();
  return T_DONE();
}
