/* test_customer_lookup.c -- the lookup behind c:customer(): by phone, by
 * the chat's Telegram or WhatsApp id or the console's E.164 chat, the
 * lowest phone when several customers match, and never a scan of the
 * customers table (006_customer_lookup.sql). */
#include "t.h"
#include "tstore.h"
#include "store.h"
#include <jansson.h>
#include <stdlib.h>
#include <unistd.h>

static char tmpdir[] = "/tmp/test_customer_lookup.XXXXXX";

static rt_store *open_store(void) {
  char path[512];
  snprintf(path, sizeof path, "%s/shop.db", tmpdir);
  return tstore_open(path);
}

/* The phone of the customer found, "(none)" when none is. */
static const char *found(rt_store *s, const char *phone, const char *channel, const char *chat) {
  static char buf[64];
  json_t *j = rt_store_customer_json(s, phone, channel, chat);
  snprintf(buf, sizeof buf, "%s", j ? json_string_value(json_object_get(j, "phone")) : "(none)");
  json_decref(j);
  return buf;
}

static rt_store *s;

T(by_each_address) {
  CHECK_STR(found(s, "+79000000002", "telegram", "999"), "+79000000002");
  CHECK_STR(found(s, NULL, "telegram", "tg3"), "+79000000003");
  CHECK_STR(found(s, NULL, "whatsapp", "79000000004"), "+79000000004");
  CHECK_STR(found(s, NULL, "console", "+79000000002"), "+79000000002");
  /* An id is only looked up on its own channel. */
  CHECK_STR(found(s, NULL, "whatsapp", "tg3"), "(none)");
  CHECK_STR(found(s, NULL, "telegram", "79000000004"), "(none)");
  CHECK_STR(found(s, NULL, "telegram", "+79000000002"), "(none)");
  CHECK_STR(found(s, NULL, "telegram", "no-such"), "(none)");
  CHECK_STR(found(s, NULL, NULL, NULL), "(none)");
}

T(lowest_phone_wins) {
  /* The conversation's phone is one customer's, its Telegram id another's:
   * the lowest phone, as the scan in phone order gave. */
  CHECK_STR(found(s, "+79000000004", "telegram", "tg3"), "+79000000003");
  CHECK_STR(found(s, "+79000000002", "telegram", "tg3"), "+79000000002");
  CHECK_STR(found(s, "+79000000009", "whatsapp", "79000000004"), "+79000000004");
}

T(fields) {
  json_t *j = rt_store_customer_json(s, NULL, "telegram", "tg3");
  CHECK(j != NULL);
  CHECK_STR(json_string_value(json_object_get(j, "name")), "Анна");
  CHECK_INT(json_integer_value(json_object_get(j, "last_purchase")), 1700000000);
  CHECK(json_is_true(json_object_get(j, "opted_out")));
  CHECK(json_is_false(json_object_get(j, "blocked")));
  CHECK(json_object_get(j, "whatsapp") == NULL);
  json_decref(j);
}

T(no_scan) {
  /* Each OR term reaches an index; "SCAN customers" would read them all. */
  sqlite3_stmt *st;
  CHECK(sqlite3_prepare_v2(rt_store_db(s),
    "EXPLAIN QUERY PLAN SELECT phone FROM customers WHERE phone = ?1 "
    "OR (?2 = 'telegram' AND telegram_id = ?3) OR (?2 = 'whatsapp' AND whatsapp = ?3) "
    "OR (?2 = 'console' AND phone = ?3) ORDER BY phone LIMIT 1", -1, &st, NULL) == SQLITE_OK);
  int scans = 0, searches = 0;
  while (sqlite3_step(st) == SQLITE_ROW) {
    const char *d = (const char *)sqlite3_column_text(st, 3);
    if (strstr(d, "SCAN customers")) scans++;
    if (strstr(d, "SEARCH customers")) searches++;
  }
  sqlite3_finalize(st);
  CHECK_INT(scans, 0);
  CHECK_INT(searches, 4);
  /* The opt-out finds its customer the same way. */
  CHECK_INT(rt_store_customer_optout(s, NULL, "whatsapp", "79000000004", 5000), RT_OK);
  CHECK_INT(q_int(s, "SELECT opted_out FROM customers WHERE phone = '+79000000004'"), 1);
}

int main(void) {
  if (!mkdtemp(tmpdir)) return 1;
  s = open_store();
  CHECK_INT(rt_store_exec(s,
    "INSERT INTO customers (phone, name, last_purchase, telegram_id, whatsapp, opted_out, updated_at) "
    "VALUES ('+79000000002', 'Иван', NULL, NULL, NULL, 0, 1), "
    "('+79000000003', 'Анна', 1700000000000, 'tg3', NULL, 1, 1), "
    "('+79000000004', 'Пётр', NULL, 'tg4', '79000000004', 0, 1)"), RT_OK);
  T_RUN(by_each_address);
  T_RUN(lowest_phone_wins);
  T_RUN(fields);
  T_RUN(no_scan);
  rt_store_close(s);
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
  if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", tmpdir);
  return T_DONE();
}
