/* test_customer_lookup.c -- the lookup behind c:customer(): by phone, by
 * the chat's address on its channel (customer_addresses, 007) or the
 * console's E.164 chat, the lowest phone when several customers match,
 * never a scan of the customers table; addresses set, moved and blocked. */
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
  CHECK_STR(json_string_value(json_object_get(json_object_get(j, "addresses"), "telegram")), "tg3");
  CHECK(json_object_get(json_object_get(j, "addresses"), "whatsapp") == NULL);
  json_decref(j);
  j = rt_store_customer_by_phone(s, "+79000000004");
  CHECK_STR(json_string_value(json_object_get(json_object_get(j, "addresses"), "whatsapp")),
            "79000000004");
  json_decref(j);
  CHECK(rt_store_customer_by_phone(s, "+79999999999") == NULL);
}

/* The plan of sql: how many SCAN and SEARCH steps, and whether it sorts
 * in a temporary b-tree. */
static void plan(const char *sql, int *scans, int *searches, int *sorts) {
  char *q = rt_xasprintf("EXPLAIN QUERY PLAN %s", sql);
  sqlite3_stmt *st;
  CHECK(sqlite3_prepare_v2(rt_store_db(s), q, -1, &st, NULL) == SQLITE_OK);
  free(q);
  *scans = *searches = *sorts = 0;
  while (sqlite3_step(st) == SQLITE_ROW) {
    const char *d = (const char *)sqlite3_column_text(st, 3);
    if (strstr(d, "SCAN")) (*scans)++;
    if (strstr(d, "SEARCH")) (*searches)++;
    if (strstr(d, "TEMP B-TREE")) (*sorts)++;
  }
  sqlite3_finalize(st);
}

T(no_scan) {
  /* The statements behind rt_store_customer_read (store.c): each a point
   * lookup; "SCAN customers" would read them all, and the addresses come
   * in the index's order (017), without a sort per call. */
  static const char *sql[] = {
    "SELECT phone FROM customer_addresses WHERE channel = ?1 AND address = ?2",
    "SELECT phone, name, last_purchase, bonus_balance, timezone, car, opted_out, blocked "
    "FROM customers WHERE phone = ?1",
    "SELECT channel, address, status FROM customer_addresses "
    "WHERE phone = ?1 ORDER BY channel, updated_at DESC, address",
  };
  for (size_t i = 0; i < RT_ARRAY_LEN(sql); i++) {
    int scans, searches, sorts;
    plan(sql[i], &scans, &searches, &sorts);
    CHECK_INT(scans, 0);
    CHECK_INT(searches, 1);
    CHECK_INT(sorts, 0);
  }
  /* The opt-out finds its customer the same way. */
  CHECK_INT(rt_store_customer_optout(s, NULL, "whatsapp", "79000000004", 5000), RT_OK);
  CHECK_INT(q_int(s, "SELECT opted_out FROM customers WHERE phone = '+79000000004'"), 1);
}

T(addresses) {
  char *phone = NULL;
  CHECK_INT(rt_store_customer_by_address(s, "telegram", "tg4", &phone), RT_OK);
  CHECK_STR(phone, "+79000000004");
  free(phone);
  CHECK_INT(rt_store_customer_by_address(s, "console", "+79000000002", &phone), RT_OK);
  CHECK_STR(phone, "+79000000002");
  free(phone);
  CHECK_INT(rt_store_customer_by_address(s, "telegram", "nobody", &phone), RT_ENOENT);
  CHECK(phone == NULL);
  /* A new channel needs nothing but its name. */
  CHECK_INT(rt_store_address_set(s, "+79000000002", "webchat", "w-2", 10), RT_OK);
  CHECK_STR(found(s, NULL, "webchat", "w-2"), "+79000000002");
  CHECK_INT(rt_store_address_set(s, "+79000000002", "", "w-2", 10), RT_EINVAL);
  /* An address moves to whoever has it now. */
  CHECK_INT(rt_store_address_set(s, "+79000000003", "webchat", "w-2", 11), RT_OK);
  CHECK_STR(found(s, NULL, "webchat", "w-2"), "+79000000003");
  CHECK_INT(q_int(s, "SELECT COUNT(*) FROM customer_addresses WHERE address = 'w-2'"), 1);
  /* Blocked: kept with reason and time, and no longer offered to flows. */
  CHECK_INT(rt_store_address_mark(s, "telegram", "tg4", "blocked", "blocked", 20), RT_OK);
  CHECK_STR(q_text(s, "SELECT status || ' ' || reason || ' ' || status_at FROM customer_addresses "
                      "WHERE channel = 'telegram' AND address = 'tg4'"), "blocked blocked 20");
  json_t *j = rt_store_customer_by_phone(s, "+79000000004");
  CHECK(json_object_get(json_object_get(j, "addresses"), "telegram") == NULL);
  json_decref(j);
  /* Setting it again (an export read again) keeps what the channel said. */
  CHECK_INT(rt_store_address_set(s, "+79000000004", "telegram", "tg4", 30), RT_OK);
  CHECK_STR(q_text(s, "SELECT status FROM customer_addresses WHERE address = 'tg4'"), "blocked");
  /* An address not known yet is added for the customer of the chat's
   * conversation; a chat nobody is known in changes nothing. */
  CHECK_INT(rt_store_exec(s, "INSERT INTO conversations (channel, chat_id, phone, created_at, "
                             "updated_at) VALUES ('whatsapp', '79000000002', '+79000000002', 0, 0)"),
            RT_OK);
  CHECK_INT(rt_store_address_mark(s, "whatsapp", "79000000002", "blocked", "chat_not_found", 40),
            RT_OK);
  CHECK_STR(q_text(s, "SELECT phone || ' ' || reason FROM customer_addresses "
                      "WHERE channel = 'whatsapp' AND address = '79000000002'"),
            "+79000000002 chat_not_found");
  CHECK_INT(rt_store_address_mark(s, "whatsapp", "70000000000", "blocked", "blocked", 40), RT_OK);
  CHECK_INT(q_int(s, "SELECT COUNT(*) FROM customer_addresses WHERE address = '70000000000'"), 0);
}

T(delivery_failed_blocks) {
  int64_t id = 0;
  CHECK_INT(rt_store_outbox_add(s, 0, "telegram", "tg3", "k1", "text", "{}", 1, &id), RT_OK);
  CHECK_INT(rt_store_address_failed(s, id, "too_long", 50), RT_OK);
  CHECK_STR(q_text(s, "SELECT status FROM customer_addresses WHERE address = 'tg3'"), "reachable");
  CHECK_INT(rt_store_address_failed(s, id, "blocked", 60), RT_OK);
  CHECK_STR(q_text(s, "SELECT status || ' ' || reason FROM customer_addresses WHERE address = 'tg3'"),
            "blocked blocked");
}

/* 007 moves telegram_id and whatsapp into customer_addresses; when two
 * customers had the same id, the lowest phone keeps it. */
T(migration_007) {
  /* A store as schema 006 left it, made with SQLite alone (this build's
   * store prepares statements that need 007). */
  char path[600];
  snprintf(path, sizeof path, "%s/old.db", tmpdir);
  sqlite3 *db = tstore_old(path, 6);
  CHECK(db != NULL);
  if (!db) return;
  CHECK(sqlite3_exec(db,
    "INSERT INTO customers (phone, telegram_id, whatsapp, updated_at) VALUES "
    "('+79000000002', 'same', NULL, 1), ('+79000000001', 'same', '79000000001', 2), "
    "('+79000000003', '', '79000000003', 3), ('+79000000004', NULL, NULL, 4)",
    NULL, NULL, NULL) == SQLITE_OK);
  sqlite3_close(db);
  rt_store *m = tstore_open(path);
  CHECK_INT(q_int(m, "SELECT COUNT(*) FROM customer_addresses"), 3);
  CHECK_STR(q_text(m, "SELECT phone FROM customer_addresses WHERE channel = 'telegram' "
                      "AND address = 'same'"), "+79000000001");
  CHECK_STR(q_text(m, "SELECT phone || ' ' || status FROM customer_addresses "
                      "WHERE channel = 'whatsapp' AND address = '79000000003'"),
            "+79000000003 reachable");
  CHECK_STR(found(m, NULL, "whatsapp", "79000000001"), "+79000000001");
  CHECK_INT(q_int(m, "SELECT COUNT(*) FROM pragma_table_info('customers') WHERE name IN "
                     "('telegram_id', 'whatsapp')"), 0);
  CHECK_INT(q_int(m, "SELECT COUNT(*) FROM customers"), 4);
  rt_store_close(m);
}

int main(void) {
  if (!mkdtemp(tmpdir)) return 1;
  s = open_store();
  CHECK_INT(rt_store_exec(s,
    "INSERT INTO customers (phone, name, last_purchase, opted_out, updated_at) "
    "VALUES ('+79000000002', 'Иван', NULL, 0, 1), "
    "('+79000000003', 'Анна', 1700000000000, 1, 1), "
    "('+79000000004', 'Пётр', NULL, 0, 1)"), RT_OK);
  CHECK_INT(rt_store_address_set(s, "+79000000003", "telegram", "tg3", 1), RT_OK);
  CHECK_INT(rt_store_address_set(s, "+79000000004", "telegram", "tg4", 1), RT_OK);
  CHECK_INT(rt_store_address_set(s, "+79000000004", "whatsapp", "79000000004", 1), RT_OK);
  T_RUN(by_each_address);
  T_RUN(lowest_phone_wins);
  T_RUN(fields);
  T_RUN(no_scan);
  T_RUN(addresses);
  T_RUN(delivery_failed_blocks);
  T_RUN(migration_007);
  rt_store_close(s);
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
  if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", tmpdir);
  return T_DONE();
}
