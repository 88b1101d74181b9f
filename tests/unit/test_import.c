/* test_import.c -- CSV import: encodings, delimiters, quoting, Russian
 * headers, bad rows with line numbers, upserts, orders. */
#include "t.h"
#include "tstore.h"
#include "import.h"
#include "store.h"
#include "tz.h"
#include <iconv.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static char tmpdir[256];
static int nfile;


static char last_store[512];   /* the path open_store used last */

static rt_store *open_store(void) {
  static int n;
  snprintf(last_store, sizeof last_store, "%s/store%d.db", tmpdir, n++);
  return tstore_open(last_store);
}

static const char *write_bytes(const char *data, size_t n) {
  static char path[512];
  snprintf(path, sizeof path, "%s/in%d.csv", tmpdir, nfile++);
  FILE *f = fopen(path, "wb");
  fwrite(data, 1, n, f);
  fclose(f);
  return path;
}

static const char *write_text(const char *s) { return write_bytes(s, strlen(s)); }

static int import(rt_store *s, const char *path, rt_import_report *rep) {
  char *err = NULL;
  int rc = rt_import_csv(s, path, 1000, "Europe/Moscow", rep, &err);
  if (err) fprintf(stderr, "  import: %s\n", err);
  free(err);
  return rc;
}

/* The message reported for line, or NULL. */
static const char *problem_at(const rt_import_report *r, int line) {
  for (int i = 0; i < r->nproblems; i++)
    if (r->problems[i].line == line) return r->problems[i].msg;
  return NULL;
}

static int64_t midnight_ms(const char *tz, int y, int m, int d) {
  return rt_tz_make(tz, y, m, d, 0, 0) * 1000;
}

T(utf8_semicolon_russian_headers) {
  rt_store *s = open_store();
  rt_import_report rep;
  const char *p = write_text(
    "Телефон;ФИО;Дата последней покупки;Бонусы;Telegram;Часовой пояс;Автомобиль;Склад\n"
    "+7 (912) 345-67-89;Иванов Иван Иванович;15.03.2025;1 250,50;123456789;Asia/Vladivostok;Toyota Camry;Основной\n"
    "8 916 111-22-33;Петрова Анна;01.02.24 12:30;300;;;;\n");
  CHECK_INT(import(s, p, &rep), RT_OK);
  CHECK_INT(rep.rows, 2);
  CHECK_INT(rep.customers_inserted, 2);
  CHECK_INT(rep.skipped, 0);
  CHECK_STR(rep.encoding, "utf-8");
  CHECK_INT(rep.delimiter, ';');
  CHECK(problem_at(&rep, 1) && strstr(problem_at(&rep, 1), "Склад"));
  CHECK_STR(q_text(s, "SELECT name FROM customers WHERE phone = '+79123456789'"),
            "Иванов Иван Иванович");
  CHECK_INT(q_int(s, "SELECT last_purchase FROM customers WHERE phone = '+79123456789'"),
            midnight_ms("Asia/Vladivostok", 2025, 3, 15));
  CHECK_INT(q_int(s, "SELECT bonus_balance * 100 FROM customers WHERE phone = '+79123456789'"),
            125050);
  CHECK_STR(q_text(s, "SELECT address FROM customer_addresses WHERE channel = 'telegram' "
            "AND phone = '+79123456789'"), "123456789");
  CHECK_STR(q_text(s, "SELECT timezone FROM customers WHERE phone = '+79123456789'"),
            "Asia/Vladivostok");
  CHECK_STR(q_text(s, "SELECT car FROM customers WHERE phone = '+79123456789'"), "Toyota Camry");
  CHECK_INT(q_int(s, "SELECT last_purchase FROM customers WHERE phone = '+79161112233'"),
            midnight_ms("Europe/Moscow", 2024, 2, 1));
  CHECK_STR(q_text(s, "SELECT address FROM customer_addresses WHERE channel = 'telegram' "
            "AND phone = '+79161112233'"), "(none)");
  CHECK_INT(q_int(s, "SELECT updated_at FROM customers WHERE phone = '+79161112233'"), 1000);
  rt_store_close(s);
}

T(bom_crlf_comma_english) {
  rt_store *s = open_store();
  rt_import_report rep;
  const char *p = write_text(
    "\xEF\xBB\xBF\"phone\",\"name\",\"last_purchase\",\"whatsapp\"\r\n"
    "\"+79001112233\",\"Smith, John\",\"2025-01-31\",\"8 900 111-22-33\"\r\n"
    "79004445566,\"Квасов \"\"Кот\"\" Олег\",2025-02-01,да\r\n");
  CHECK_INT(import(s, p, &rep), RT_OK);
  CHECK_INT(rep.delimiter, ',');
  CHECK_INT(rep.customers_inserted, 2);
  CHECK_INT(rep.problems_total, 0);
  CHECK_STR(q_text(s, "SELECT name FROM customers WHERE phone = '+79001112233'"), "Smith, John");
  CHECK_STR(q_text(s, "SELECT address FROM customer_addresses WHERE channel = 'whatsapp' "
            "AND phone = '+79001112233'"), "79001112233");
  CHECK_STR(q_text(s, "SELECT name FROM customers WHERE phone = '+79004445566'"),
            "Квасов \"Кот\" Олег");
  CHECK_STR(q_text(s, "SELECT address FROM customer_addresses WHERE channel = 'whatsapp' "
            "AND phone = '+79004445566'"), "79004445566");
  rt_store_close(s);
}

T(cp1251) {
  rt_store *s = open_store();
  rt_import_report rep;
  /* "Телефон;ФИО;Последняя покупка\r\n89161234567;Петров Пётр;05.01.2025\r\n" */
  const char bytes[] =
    "\xD2\xE5\xEB\xE5\xF4\xEE\xED;\xD4\xC8\xCE;"
    "\xCF\xEE\xF1\xEB\xE5\xE4\xED\xFF\xFF \xEF\xEE\xEA\xF3\xEF\xEA\xE0\r\n"
    "89161234567;\xCF\xE5\xF2\xF0\xEE\xE2 \xCF\xB8\xF2\xF0;05.01.2025\r\n";
  const char *p = write_bytes(bytes, sizeof bytes - 1);
  CHECK_INT(import(s, p, &rep), RT_OK);
  CHECK_STR(rep.encoding, "cp1251");
  CHECK_INT(rep.customers_inserted, 1);
  CHECK_INT(rep.problems_total, 0);
  CHECK_STR(q_text(s, "SELECT name FROM customers WHERE phone = '+79161234567'"), "Петров Пётр");
  CHECK_INT(q_int(s, "SELECT last_purchase FROM customers WHERE phone = '+79161234567'"),
            midnight_ms("Europe/Moscow", 2025, 1, 5));
  rt_store_close(s);
}

T(cp1251_table_matches_iconv) {
  iconv_t cd = iconv_open("UTF-8", "CP1251");
  CHECK(cd != (iconv_t)-1);
  if (cd == (iconv_t)-1) return;
  int bad = 0;
  for (int c = 0x80; c <= 0xFF; c++) {
    if (c == 0x98) continue;   /* unassigned in CP1251 */
    char in[1] = {(char)c}, want[8] = {0}, got[8];
    char *ip = in, *op = want;
    size_t il = 1, ol = sizeof want - 1;
    if (iconv(cd, &ip, &il, &op, &ol) == (size_t)-1) continue;
    rt_import_cp1251_to_utf8(in, 1, got);
    if (strcmp(want, got) != 0) {
      fprintf(stderr, "  0x%02X: want %s got %s\n", c, want, got);
      bad++;
    }
  }
  iconv_close(cd);
  CHECK_INT(bad, 0);
}

T(tab_and_quoted_newlines_line_numbers) {
  rt_store *s = open_store();
  rt_import_report rep;
  const char *p = write_text(
    "Телефон\tИмя\tАвто\n"                              /* 1 */
    "+79010000001\t\"Многострочное\nимя\"\tVW\n"         /* 2-3 */
    "12345\tПлохой\tVW\n"                                /* 4 */
    "+79010000002\t\"Ещё\r\nодно\r\nимя\"\tKia\n"        /* 5-7 */
    "\n"                                                 /* 8 blank */
    "abc\tПлохой\tKia\n"                                 /* 9 */
    "+79010000003\tНорм\t\"Lada\"\n");                   /* 10 */
  CHECK_INT(import(s, p, &rep), RT_OK);
  CHECK_INT(rep.delimiter, '\t');
  CHECK_INT(rep.rows, 5);
  CHECK_INT(rep.customers_inserted, 3);
  CHECK_INT(rep.skipped, 2);
  CHECK_STR(problem_at(&rep, 4), "bad phone \"12345\"");
  CHECK_STR(problem_at(&rep, 9), "bad phone \"abc\"");
  CHECK_STR(q_text(s, "SELECT name FROM customers WHERE phone = '+79010000001'"),
            "Многострочное\nимя");
  CHECK_STR(q_text(s, "SELECT name FROM customers WHERE phone = '+79010000002'"),
            "Ещё\r\nодно\r\nимя");
  CHECK_STR(q_text(s, "SELECT car FROM customers WHERE phone = '+79010000003'"), "Lada");
  rt_store_close(s);
}

T(bad_rows_reported_good_rows_kept) {
  rt_store *s = open_store();
  rt_import_report rep;
  const char *p = write_text(
    "Телефон;Клиент;Последняя покупка;Баллы\n"     /* 1 */
    "+79020000001;Один;10.01.2025;10\n"            /* 2 */
    "+7902;Два;10.01.2025;10\n"                    /* 3 bad phone */
    "+79020000003;Три;10.01.2025;10\n"             /* 4 */
    "+79020000004;Четыре;31.02.2025;10\n"          /* 5 bad date */
    "+79020000005;Пять;10.01.2025\n"               /* 6 too few fields */
    "+79020000006;Шесть;2025-13-01;10\n"           /* 7 bad date */
    "+79020000007;Семь;;много\n"                   /* 8 bad number: kept */
    ";Без телефона;10.01.2025;1\n"                 /* 9 no phone */
    "+79020000010;Десять;10.01.2025;5;\n"          /* 10 trailing empty field: fine */
    ";;;\n");                                      /* 11 blank row */
  CHECK_INT(import(s, p, &rep), RT_OK);
  CHECK_INT(rep.rows, 9);
  CHECK_INT(rep.customers_inserted, 4);
  CHECK_INT(rep.skipped, 5);
  CHECK_STR(problem_at(&rep, 3), "bad phone \"+7902\"");
  CHECK_STR(problem_at(&rep, 5), "bad date \"31.02.2025\"");
  CHECK_STR(problem_at(&rep, 6), "wrong number of fields (3, header has 4)");
  CHECK_STR(problem_at(&rep, 7), "bad date \"2025-13-01\"");
  CHECK(problem_at(&rep, 8) && strstr(problem_at(&rep, 8), "bad number \"много\""));
  CHECK_STR(problem_at(&rep, 9), "no phone");
  CHECK(!problem_at(&rep, 10));
  CHECK_INT(q_int(s, "SELECT COUNT(*) FROM customers"), 4);
  CHECK_INT(q_int(s, "SELECT COUNT(*) FROM customers WHERE phone = '+79020000007' "
                     "AND bonus_balance IS NULL"), 1);
  rt_store_close(s);
}

T(reimport_updates_without_duplicates) {
  rt_store *s = open_store();
  rt_import_report rep;
  CHECK_INT(import(s, write_text(
    "phone;name;last_purchase;telegram_id;bonus_balance\n"
    "+79030000001;Old Name;10.03.2025;tg1;100\n"
    "+79030000002;Second;01.01.2025;;\n"), &rep), RT_OK);
  CHECK_INT(rep.customers_inserted, 2);
  rt_store_exec(s, "UPDATE customers SET opted_out = 1 WHERE phone = '+79030000002'");
  CHECK_INT(import(s, write_text(
    "phone;name;last_purchase;telegram_id;bonus_balance\n"
    "8 903 000-00-01;New Name;01.02.2025;;\n"      /* older date, empty cells */
    "+79030000002;;05.02.2025;tg2;7,5\n"
    "+79030000003;Third;;;\n"), &rep), RT_OK);
  CHECK_INT(rep.customers_inserted, 1);
  CHECK_INT(rep.customers_updated, 2);
  CHECK_INT(q_int(s, "SELECT COUNT(*) FROM customers"), 3);
  CHECK_STR(q_text(s, "SELECT name FROM customers WHERE phone = '+79030000001'"), "New Name");
  CHECK_STR(q_text(s, "SELECT address FROM customer_addresses WHERE channel = 'telegram' "
            "AND phone = '+79030000001'"), "tg1");
  CHECK_INT(q_int(s, "SELECT bonus_balance FROM customers WHERE phone = '+79030000001'"), 100);
  CHECK_INT(q_int(s, "SELECT last_purchase FROM customers WHERE phone = '+79030000001'"),
            midnight_ms("Europe/Moscow", 2025, 3, 10));
  CHECK_STR(q_text(s, "SELECT name FROM customers WHERE phone = '+79030000002'"), "Second");
  CHECK_INT(q_int(s, "SELECT last_purchase FROM customers WHERE phone = '+79030000002'"),
            midnight_ms("Europe/Moscow", 2025, 2, 5));
  CHECK_INT(q_int(s, "SELECT opted_out FROM customers WHERE phone = '+79030000002'"), 1);
  CHECK_INT(q_int(s, "SELECT last_purchase IS NULL FROM customers WHERE phone = '+79030000003'"), 1);
  rt_store_close(s);
}

T(orders_with_gifts) {
  rt_store *s = open_store();
  rt_import_report rep;
  const char *csv =
    "Номер заказа;Дата;Телефон;Покупатель;Номенклатура;Группа;Подарок;Получатель;Телефон получателя\n"
    "ЗК-001;01.03.2025 14:20:00;+79040000001;Анна;Наушники Sony;Аудио;да;Мама;+7 904 000-00-09\n"
    "ЗК-002;05.03.2025;+79040000001;Анна;Чехол;Аксессуары;нет;;\n"
    "ЗК-003;02.03.2025;+79040000002;Борис;Смартфон;Телефоны;+;;\n"
    "ЗК-004;02.03.2025;+79040000003;Вера;Планшет;Планшеты;может;;12\n";
  CHECK_INT(import(s, write_text(csv), &rep), RT_OK);
  CHECK_INT(rep.rows, 4);
  CHECK_INT(rep.orders_inserted, 4);
  CHECK_INT(rep.customers_inserted, 3);
  CHECK_INT(rep.customers_updated, 1);
  CHECK(problem_at(&rep, 5) != NULL);   /* bad gift value, bad recipient phone */
  CHECK_INT(q_int(s, "SELECT gift FROM orders WHERE order_id = 'ЗК-001'"), 1);
  CHECK_INT(q_int(s, "SELECT gift FROM orders WHERE order_id = 'ЗК-002'"), 0);
  CHECK_INT(q_int(s, "SELECT gift FROM orders WHERE order_id = 'ЗК-003'"), 1);
  CHECK_INT(q_int(s, "SELECT gift FROM orders WHERE order_id = 'ЗК-004'"), 0);
  CHECK_STR(q_text(s, "SELECT recipient_phone FROM orders WHERE order_id = 'ЗК-001'"), "+79040000009");
  CHECK_STR(q_text(s, "SELECT recipient_name FROM orders WHERE order_id = 'ЗК-001'"), "Мама");
  CHECK_STR(q_text(s, "SELECT product || '/' || category FROM orders WHERE order_id = 'ЗК-001'"),
            "Наушники Sony/Аудио");
  CHECK_INT(q_int(s, "SELECT date FROM orders WHERE order_id = 'ЗК-001'"),
            midnight_ms("Europe/Moscow", 2025, 3, 1));
  /* The customer's last purchase is the latest order. */
  CHECK_INT(q_int(s, "SELECT last_purchase FROM customers WHERE phone = '+79040000001'"),
            midnight_ms("Europe/Moscow", 2025, 3, 5));
  /* Re-import: updates, keeps followup_at, no duplicates. */
  rt_store_exec(s, "UPDATE orders SET followup_at = 42 WHERE order_id = 'ЗК-001'");
  CHECK_INT(import(s, write_text(csv), &rep), RT_OK);
  CHECK_INT(rep.orders_inserted, 0);
  CHECK_INT(rep.orders_updated, 4);
  CHECK_INT(q_int(s, "SELECT COUNT(*) FROM orders"), 4);
  CHECK_INT(q_int(s, "SELECT followup_at FROM orders WHERE order_id = 'ЗК-001'"), 42);
  rt_store_close(s);
}

T(many_rows_and_big_field) {
  rt_store *s = open_store();
  rt_import_report rep;
  /* 25,000 rows cross batch and buffer boundaries; one 3 MB quoted field
   * forces the buffer to grow. */
  size_t cap = 8u << 20, n = 0;
  char *buf = malloc(cap);
  n += (size_t)sprintf(buf + n, "phone;name;car\n");
  for (int i = 0; i < 25000; i++) {
    n += (size_t)sprintf(buf + n, "+7905%07d;Имя %d;", i, i);
    if (i == 12345) {
      buf[n++] = '"';
      memset(buf + n, 'x', 3u << 20);
      n += 3u << 20;
      buf[n++] = '"';
    } else {
      n += (size_t)sprintf(buf + n, "car");
    }
    buf[n++] = '\n';
  }
  CHECK_INT(import(s, write_bytes(buf, n), &rep), RT_OK);
  free(buf);
  CHECK_INT(rep.rows, 25000);
  CHECK_INT(rep.customers_inserted, 25000);
  CHECK_INT(q_int(s, "SELECT length(car) FROM customers WHERE phone = '+79050012345'"), 3 << 20);
  CHECK_STR(q_text(s, "SELECT name FROM customers WHERE phone = '+79050024999'"), "Имя 24999");
  rt_store_close(s);
}

T(errors) {
  rt_store *s = open_store();
  rt_import_report rep;
  char *err = NULL;
  CHECK_INT(rt_import_csv(s, "/nonexistent/x.csv", 0, NULL, &rep, &err), RT_ENOENT);
  CHECK(err != NULL);
  free(err);
  err = NULL;
  CHECK_INT(rt_import_csv(s, write_text("name;car\nA;B\n"), 0, NULL, &rep, &err), RT_EINVAL);
  CHECK(err && strstr(err, "phone"));
  free(err);
  err = NULL;
  CHECK_INT(rt_import_csv(s, write_text(""), 0, NULL, &rep, &err), RT_EINVAL);
  free(err);
  err = NULL;
  CHECK_INT(rt_import_csv(s, write_bytes("\xFF\xFEp\0h\0", 6), 0, NULL, &rep, &err), RT_EINVAL);
  free(err);
  rt_store_close(s);
}

T(cells) {
  int y, m, d;
  CHECK(rt_import_parse_date("15.03.2025", &y, &m, &d) && y == 2025 && m == 3 && d == 15);
  CHECK(rt_import_parse_date("5.3.25", &y, &m, &d) && y == 2025 && m == 3 && d == 5);
  CHECK(rt_import_parse_date("01.02.99", &y, &m, &d) && y == 1999);
  CHECK(rt_import_parse_date("2024-02-29", &y, &m, &d) && d == 29);
  CHECK(rt_import_parse_date("15.03.2025 0:00:00", &y, &m, &d));
  CHECK(rt_import_parse_date("2025-03-15T10:20", &y, &m, &d));
  CHECK(!rt_import_parse_date("2025-02-29", &y, &m, &d));
  CHECK(!rt_import_parse_date("31.04.2025", &y, &m, &d));
  CHECK(!rt_import_parse_date("15/03", &y, &m, &d));
  CHECK(!rt_import_parse_date("вчера", &y, &m, &d));
  CHECK(!rt_import_parse_date("15.03.2025 25:00", &y, &m, &d));
  double v;
  CHECK(rt_import_parse_number("1 250,50", &v) && v == 1250.5);
  CHECK(rt_import_parse_number("1\xC2\xA0" "000", &v) && v == 1000);
  CHECK(rt_import_parse_number("-3.5", &v) && v == -3.5);
  CHECK(!rt_import_parse_number("12 руб", &v));
  CHECK(!rt_import_parse_number("", &v));
}

/* Encodings decided per file, and quotes that are never closed: each case is
 * a file, what the import must count, the problems it must report by line
 * (a substring of the message), and one customer's name as stored. */
#define HDR "Контрагент;Телефон;Дата последней продажи;Бонусные баллы\n"
#define IVAN_1251 "\xC8\xE2\xE0\xED"   /* "Иван" in Windows-1251 */
#define PETR_1251 "\xCF\xB8\xF2\xF0"   /* "Пётр" */
typedef struct { int line; const char *msg; } want_problem;
static const struct {
  const char *what, *csv, *enc;
  int rows, inserted, skipped, nproblems;
  want_problem p[2];
  const char *phone, *name;
} file_cases[] = {
  {"one cp1251 row in a UTF-8 file is read as cp1251, with a note",
   HDR IVAN_1251 ";+7 912 604-11-23;14.03.2026;10\n"
       "Пётр;+7 912 604-11-24;14.03.2026;10\n",
   "utf-8", 2, 2, 0, 1, {{2, "not valid UTF-8"}}, "+79126041123", "Иван"},
  {"the UTF-8 rows of that file are UTF-8",
   HDR IVAN_1251 ";+7 912 604-11-23;14.03.2026;10\n"
       "Пётр;+7 912 604-11-24;14.03.2026;10\n",
   "utf-8", 2, 2, 0, 1, {{2, "not valid UTF-8"}}, "+79126041124", "Пётр"},
  {"a cp1251 row before the first non-ASCII UTF-8 line does not flip the file",
   "phone;name\n+79126041120;John\n+79126041123;" IVAN_1251 "\n+79126041124;Пётр\n"
       "+79126041125;Семён\n",
   "utf-8", 4, 4, 0, 1, {{3, "not valid UTF-8"}}, "+79126041125", "Семён"},
  {"a cp1251 file with a UTF-8-looking row stays cp1251",
   "phone;name\n+79126041123;" IVAN_1251 "\n+79126041124;" PETR_1251 "\n+79126041125;Ян\n",
   "cp1251", 3, 3, 0, 0, {{0, NULL}}, "+79126041124", "Пётр"},
  {"ASCII only is UTF-8",
   "phone;name\n+79126041123;Ivan\n", "utf-8", 1, 1, 0, 0, {{0, NULL}}, "+79126041123", "Ivan"},
  {"an unterminated quote is reported where it opens; the rows after it are read",
   HDR "\"Иван;+7 912 604-11-23;14.03.2026;10\nПётр;+7 912 604-11-24;14.03.2026;10\n"
       "Семён;+7 912 604-11-25;14.03.2026;10\n",
   "utf-8", 3, 2, 1, 1, {{2, "the quote opened here is never closed"}}, "+79126041124", "Пётр"},
  {"an unterminated quote in the last row",
   HDR "Пётр;+7 912 604-11-24;14.03.2026;10\nИван;+7 912 604-11-23;\"14.03.2026;10\n",
   "utf-8", 2, 1, 1, 1, {{3, "the quote opened here is never closed"}}, "+79126041124", "Пётр"},
  {"a quote closed by the quote of a later row's cell",
   HDR "\"Иван;+7 912 604-11-23;14.03.2026;10\n"
       "ООО \"Ромашка\";+7 912 604-11-24;14.03.2026;10\n"
       "\"Семён\";+7 912 604-11-25;14.03.2026;10\n",
   "utf-8", 3, 2, 1, 1, {{2, "never closed (the quote on line 3"}}, "+79126041125", "Семён"},
  {"a quoted cell over line ends, then too many fields: the message points at the quote",
   "phone;name;car\n+79126041123;\"Иван\nИванов\";VW;x\n+79126041124;Пётр;Kia\n",
   "utf-8", 2, 1, 1, 1, {{2, "quoted cell from line 2 runs over line ends"}},
   "+79126041124", "Пётр"},
  {"a legal quoted cell over line ends is fine",
   "phone;name;car\n+79126041123;\"Иван\nИванов\";VW\n", "utf-8", 1, 1, 0, 0, {{0, NULL}},
   "+79126041123", "Иван\nИванов"},
};

T(encoding_and_quotes_table) {
  for (size_t i = 0; i < RT_ARRAY_LEN(file_cases); i++) {
    __typeof__(file_cases[0]) *c = &file_cases[i];
    rt_store *s = open_store();
    rt_import_report rep;
    int fails = t_cur_failed;
    CHECK_INT(import(s, write_text(c->csv), &rep), RT_OK);
    CHECK_STR(rep.encoding, c->enc);
    CHECK_INT(rep.rows, c->rows);
    CHECK_INT(rep.customers_inserted, c->inserted);
    CHECK_INT(rep.skipped, c->skipped);
    CHECK_INT(rep.problems_total, c->nproblems);
    for (int k = 0; k < 2 && c->p[k].msg; k++) {
      const char *m = problem_at(&rep, c->p[k].line);
      CHECK(m && strstr(m, c->p[k].msg));
    }
    char q[128];
    snprintf(q, sizeof q, "SELECT name FROM customers WHERE phone = '%s'", c->phone);
    CHECK_STR(q_text(s, q), c->name);
    if (t_cur_failed != fails) {
      fprintf(stderr, "  in case %zu: %s\n", i, c->what);
      for (int k = 0; k < rep.nproblems; k++)
        fprintf(stderr, "    line %d: %s\n", rep.problems[k].line, rep.problems[k].msg);
    }
    rt_store_close(s);
  }
}

/* A UTF-8 file whose one cp1251 row comes after the first buffer (1 MiB),
 * and a non-regular file. */
T(encoding_far_and_not_regular) {
  rt_store *s = open_store();
  rt_import_report rep;
  size_t cap = 4u << 20, n = 0;
  char *buf = malloc(cap);
  n += (size_t)sprintf(buf + n, "phone;name\n");
  for (int i = 0; i < 60000; i++) {
    if (i == 50000) n += (size_t)sprintf(buf + n, "+7906%07d;" IVAN_1251 "\n", i);
    else n += (size_t)sprintf(buf + n, "+7906%07d;Имя %d\n", i, i);
  }
  CHECK_INT(import(s, write_bytes(buf, n), &rep), RT_OK);
  free(buf);
  CHECK_STR(rep.encoding, "utf-8");
  CHECK_INT(rep.customers_inserted, 60000);
  CHECK_INT(rep.problems_total, 1);
  CHECK(problem_at(&rep, 50002) && strstr(problem_at(&rep, 50002), "not valid UTF-8"));
  CHECK_STR(q_text(s, "SELECT name FROM customers WHERE phone = '+79060050000'"), "Иван");
  CHECK_STR(q_text(s, "SELECT name FROM customers WHERE phone = '+79060000001'"), "Имя 1");
  char *err = NULL;
  CHECK_INT(rt_import_csv(s, "/dev/zero", 0, NULL, &rep, &err), RT_EINVAL);
  CHECK(err && strstr(err, "not a regular file"));
  free(err);
  rt_store_close(s);
}

/* A first import drops the secondary indexes of the tables it fills and
 * builds them at the end; one killed half way has them built by the next
 * open of the store. Addresses of any "<channel> id" column. */
T(bulk_indexes_and_channel_columns) {
  rt_store *s = open_store();
  rt_import_report rep;
  CHECK_INT(import(s, write_text(
    "phone;name;telegram;webchat id;VK ID;order_id;date\n"
    "+79050000002;B;tg-b;w-b;;o2;01.03.2025\n"
    "+79050000001;A;tg-a;;vk-a;o1;01.03.2025\n"
    "+79050000003;C;tg-a;;;o3;01.03.2025\n"), &rep), RT_OK);
  CHECK_INT(rep.problems_total, 0);
  CHECK_INT(q_int(s, "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND name IN "
                     "('customer_addresses_by_phone', 'orders_phone', 'orders_gift_due')"), 3);
  CHECK_STR(q_text(s, "SELECT value FROM meta WHERE key = 'import.dropped_indexes'"), "(none)");
  CHECK_STR(q_text(s, "SELECT phone FROM customer_addresses WHERE channel = 'webchat'"), "+79050000002");
  CHECK_STR(q_text(s, "SELECT address FROM customer_addresses WHERE channel = 'vk'"), "vk-a");
  /* one address, two rows: the later row in the file has it */
  CHECK_STR(q_text(s, "SELECT phone FROM customer_addresses WHERE address = 'tg-a'"), "+79050000003");
  /* as an import killed after dropping them */
  CHECK_INT(rt_store_exec(s, "DROP INDEX customer_addresses_by_phone; INSERT INTO meta VALUES "
    "('import.dropped_indexes', 'CREATE INDEX IF NOT EXISTS customer_addresses_by_phone ON "
    "customer_addresses (phone, channel, updated_at DESC, address, status);')"), RT_OK);
  rt_store_close(s);
  s = tstore_open(last_store);
  CHECK_INT(q_int(s, "SELECT COUNT(*) FROM sqlite_master WHERE name = 'customer_addresses_by_phone'"), 1);
  CHECK_STR(q_text(s, "SELECT value FROM meta WHERE key = 'import.dropped_indexes'"), "(none)");
  rt_store_close(s);
}

int main(void) {
  snprintf(tmpdir, sizeof tmpdir, "/tmp/test_import.XXXXXX");
  if (!mkdtemp(tmpdir)) return 1;
  T_RUN(utf8_semicolon_russian_headers);
  T_RUN(bom_crlf_comma_english);
  T_RUN(cp1251);
  T_RUN(cp1251_table_matches_iconv);
  T_RUN(tab_and_quoted_newlines_line_numbers);
  T_RUN(bad_rows_reported_good_rows_kept);
  T_RUN(reimport_updates_without_duplicates);
  T_RUN(orders_with_gifts);
  T_RUN(many_rows_and_big_field);
  T_RUN(errors);
  T_RUN(cells);
  T_RUN(encoding_and_quotes_table);
  T_RUN(encoding_far_and_not_regular);
  T_RUN(bulk_indexes_and_channel_columns);
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
  if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", tmpdir);
  return T_DONE();
}
