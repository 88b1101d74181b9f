/* test_campaign.c -- retention and gift campaigns: who is selected, when
 * the check-ins are due, and that nobody is contacted twice. */
#include "t.h"
#include "tstore.h"
#include "campaign.h"
#include "campaign_cfg.h"
#include "paths.h"
#include "store.h"
#include "tz.h"
#include <jansson.h>
#include <stdarg.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define DAY 86400000LL
static char tmpdir[256];


static rt_store *open_path(const char *path) {
  return tstore_open(path);
}

static const char *new_path(void) {
  static int n;
  static char path[512];
  snprintf(path, sizeof path, "%s/store%d.db", tmpdir, n++);
  return path;
}

static rt_store *open_store(void) { return open_path(new_path()); }

static void exec(rt_store *s, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *sql = sqlite3_vmprintf(fmt, ap);
  va_end(ap);
  char *msg = NULL;
  if (sqlite3_exec(rt_store_db(s), sql, NULL, NULL, &msg) != SQLITE_OK)
    fprintf(stderr, "  exec: %s: %s\n", sql, msg);
  sqlite3_free(msg);
  sqlite3_free(sql);
}

/* A customer; lp is days before now (-1: never bought). */
static void cust(rt_store *s, int64_t now, const char *phone, int lp_days, const char *tg,
                 const char *wa, const char *tz, int opted, int blocked) {
  char lp[32] = "NULL";
  if (lp_days >= 0) snprintf(lp, sizeof lp, "%lld", (long long)(now - lp_days * DAY));
  exec(s, "INSERT INTO customers (phone, last_purchase, timezone, opted_out, blocked, "
          "updated_at) VALUES (%Q, %s, %Q, %d, %d, 0)", phone, lp, tz, opted, blocked);
  if (tg) CHECK_INT(rt_store_address_set(s, phone, "telegram", tg, 0), RT_OK);
  if (wa) CHECK_INT(rt_store_address_set(s, phone, "whatsapp", wa, 0), RT_OK);
}

/* The customer wrote to the bot from Telegram chat tg long ago: the bot
 * has seen the chat, so a campaign may write there first. */
static void seen(rt_store *s, int64_t now, const char *tg) {
  exec(s, "INSERT INTO conversations (channel, chat_id, created_at, updated_at, last_in_at) "
          "VALUES ('telegram', %Q, 0, %lld, %lld) ON CONFLICT (channel, chat_id) DO UPDATE "
          "SET last_in_at = excluded.last_in_at", tg, (long long)(now - 400 * DAY),
       (long long)(now - 400 * DAY));
}

static int64_t at(const char *tz, int y, int m, int d, int h, int mi) {
  return rt_tz_make(tz, y, m, d, h, mi) * 1000;
}

static int run(rt_store *s, rt_campaign_opts *o, rt_campaign_report *r) {
  char *err = NULL;
  int rc = rt_campaign_run(s, o, r, &err);
  if (err) fprintf(stderr, "  campaign: %s\n", err);
  free(err);
  return rc;
}

/* Monday 2025-03-10 10:00 in Moscow. */
static int64_t monday10(void) { return at("Europe/Moscow", 2025, 3, 10, 10, 0); }

static void selection_fixture(rt_store *s, int64_t now) {
  cust(s, now, "+79000000001", 100, NULL, NULL, NULL, 0, 0);       /* A: selected */
  cust(s, now, "+79000000002", 10, NULL, NULL, NULL, 0, 0);        /* B: not idle */
  cust(s, now, "+79000000003", 100, NULL, NULL, NULL, 1, 0);       /* C: opted out */
  cust(s, now, "+79000000004", 100, NULL, NULL, NULL, 0, 1);       /* D: blocked */
  cust(s, now, "+79000000005", 100, NULL, NULL, NULL, 0, 0);       /* E: cooldown */
  exec(s, "INSERT INTO campaign_contacts (campaign, phone, at) VALUES ('retention', "
          "'+79000000005', %lld)", (long long)(now - 10 * DAY));
  cust(s, now, "+79000000006", 100, NULL, NULL, NULL, 0, 0);       /* F: with a manager */
  exec(s, "INSERT INTO conversations (channel, chat_id, phone, mode, created_at, updated_at) "
          "VALUES ('console', 'x6', '+79000000006', 'human', 0, 0)");
  cust(s, now, "+79000000007", 100, "tg7", NULL, NULL, 0, 0);      /* G: mid-flow in Telegram */
  exec(s, "INSERT INTO conversations (channel, chat_id, step, created_at, updated_at) "
          "VALUES ('telegram', 'tg7', 'ask_vin', 0, %lld)", (long long)(now - DAY));
  cust(s, now, "+79000000008", 200, "tg8", NULL, NULL, 0, 0);      /* H: old contact, selected */
  seen(s, now, "tg8");
  exec(s, "INSERT INTO campaign_contacts (campaign, phone, at) VALUES ('retention', "
          "'+79000000008', %lld)", (long long)(now - 40 * DAY));
  cust(s, now, "+79000000009", 100, NULL, "79000000009", NULL, 0, 0); /* I: blocked the bot */
  exec(s, "INSERT INTO conversations (channel, chat_id, mode, created_at, updated_at) "
          "VALUES ('whatsapp', '79000000009', 'blocked', 0, 0)");
  cust(s, now, "+79000000010", 95, NULL, NULL, NULL, 0, 0);        /* J: finished flow, selected */
  exec(s, "INSERT INTO conversations (channel, chat_id, phone, step, created_at, updated_at) "
          "VALUES ('console', '+79000000010', '+79000000010', 'done', 0, %lld)",
       (long long)(now - DAY));
  cust(s, now, "+79000000011", 100, NULL, NULL, NULL, 0, 0);       /* K: pending reminder */
  exec(s, "INSERT INTO conversations (channel, chat_id, phone, created_at, updated_at) "
          "VALUES ('console', 'k11', '+79000000011', 0, 0)");
  exec(s, "INSERT INTO timers (conv_id, name, due_at, step, created_at) VALUES "
          "((SELECT id FROM conversations WHERE chat_id = 'k11'), 'remind', %lld, 'x', 0)",
       (long long)(now + DAY));
  cust(s, now, "+79000000012", 100, NULL, NULL, NULL, 0, 0);       /* L: stale step, selected */
  exec(s, "INSERT INTO conversations (channel, chat_id, phone, step, created_at, updated_at) "
          "VALUES ('console', 'l12', '+79000000012', 'ask', 0, %lld)", (long long)(now - 10 * DAY));
  cust(s, now, "+79000000013", -1, NULL, NULL, NULL, 0, 0);        /* M: never bought */
}

T(retention_selection) {
  rt_store *s = open_store();
  int64_t now = monday10();
  selection_fixture(s, now);
  rt_campaign_opts o;
  rt_campaign_opts_default(&o, "retention", now);
  rt_campaign_report r;
  CHECK_INT(run(s, &o, &r), RT_OK);
  CHECK_INT(r.candidates, 11);
  CHECK_INT(r.selected, 4);
  CHECK_INT(r.scheduled, 4);
  CHECK_INT(r.skipped.opted_out, 1);
  CHECK_INT(r.skipped.blocked, 2);
  CHECK_INT(r.skipped.cooldown, 1);
  CHECK_INT(r.skipped.open_conversation, 3);
  CHECK_INT(r.skipped.no_channel, 0);
  CHECK_INT(q_int(s, "SELECT COUNT(*) FROM timers WHERE name = 'campaign:retention' "
                     "AND step = 'retention.checkin' AND data = '{\"campaign\":\"retention\"}'"), 4);
  /* Telegram when the customer has it, the console by phone otherwise. */
  CHECK_STR(q_text(s, "SELECT channel || '/' || chat_id || '/' || phone FROM conversations "
                      "WHERE id = (SELECT conv_id FROM campaign_contacts WHERE phone = '+79000000008' "
                      "AND at > 0 AND conv_id IS NOT NULL)"), "telegram/tg8/+79000000008");
  CHECK_STR(q_text(s, "SELECT channel || '/' || chat_id FROM conversations WHERE phone = '+79000000001'"),
            "console/+79000000001");
  CHECK_INT(q_int(s, "SELECT COUNT(*) FROM conversations WHERE phone = '+79000000010'"), 1);
  /* campaign_contacts.at is the due time of the timer. */
  CHECK_INT(q_int(s, "SELECT COUNT(*) FROM campaign_contacts k JOIN timers t ON t.conv_id = k.conv_id "
                     "WHERE k.campaign = 'retention' AND t.name = 'campaign:retention' AND t.due_at = k.at"), 4);
  CHECK_INT(q_int(s, "SELECT MIN(at) >= " "(SELECT MAX(created_at) FROM timers) FROM campaign_contacts "
                     "WHERE conv_id IS NOT NULL"), 1);
  CHECK(r.first_at >= now && r.last_at < now + 60000);

  /* Second run: everybody picked is now in cooldown. */
  rt_campaign_report r2;
  CHECK_INT(run(s, &o, &r2), RT_OK);
  CHECK_INT(r2.selected, 0);
  CHECK_INT(r2.scheduled, 0);
  CHECK_INT(r2.skipped.cooldown, 5);
  CHECK_INT(q_int(s, "SELECT COUNT(*) FROM campaign_contacts"), 6);

  char *j = rt_campaign_report_json(&r);
  json_t *doc = json_loads(j, 0, NULL);
  CHECK(doc != NULL);
  CHECK_STR(json_string_value(json_object_get(doc, "campaign")), "retention");
  CHECK_INT(json_integer_value(json_object_get(doc, "selected")), 4);
  CHECK_INT(json_integer_value(json_object_get(json_object_get(doc, "skipped"), "open_conversation")), 3);
  CHECK(json_is_false(json_object_get(doc, "dry_run")));
  CHECK(strstr(json_string_value(json_object_get(doc, "first_at")), "2025-03-10T10:00:00+03:00") != NULL);
  json_decref(doc);
  free(j);
  rt_store_close(s);
}

T(dry_run_writes_nothing) {
  rt_store *s = open_store();
  int64_t now = monday10();
  selection_fixture(s, now);
  long long conv = q_int(s, "SELECT COUNT(*) FROM conversations");
  rt_campaign_opts o;
  rt_campaign_opts_default(&o, "retention", now);
  o.dry_run = true;
  rt_campaign_report r;
  CHECK_INT(run(s, &o, &r), RT_OK);
  CHECK_INT(r.selected, 4);
  CHECK_INT(r.scheduled, 0);
  CHECK(r.dry_run);
  CHECK(r.first_at >= now);
  CHECK_INT(q_int(s, "SELECT COUNT(*) FROM conversations"), conv);
  CHECK_INT(q_int(s, "SELECT COUNT(*) FROM timers"), 1);
  CHECK_INT(q_int(s, "SELECT COUNT(*) FROM campaign_contacts"), 2);
  /* And the real run after it still selects the same people. */
  o.dry_run = false;
  CHECK_INT(run(s, &o, &r), RT_OK);
  CHECK_INT(r.scheduled, 4);
  rt_store_close(s);
}

static bool in_hours(const char *tz, int64_t ms, unsigned mask, int from, int to) {
  struct tm tm;
  if (rt_tz_local_tm(tz, ms / 1000, &tm) != 0) return false;
  int wd = tm.tm_wday == 0 ? 7 : tm.tm_wday;
  int min = tm.tm_hour * 60 + tm.tm_min;
  return (mask & (1u << wd)) && min >= from && min < to;
}

T(working_hours_in_customer_zone) {
  rt_store *s = open_store();
  /* 15:00 in Moscow is 22:00 in Vladivostok: closed there until tomorrow. */
  int64_t now = at("Europe/Moscow", 2025, 3, 10, 15, 0);
  cust(s, now, "+79140000001", 100, NULL, NULL, "Asia/Vladivostok", 0, 0);
  cust(s, now, "+79160000002", 101, NULL, NULL, NULL, 0, 0);
  cust(s, now, "+74010000003", 102, NULL, NULL, "Europe/Kaliningrad", 0, 0);
  cust(s, now, "+79160000004", 103, NULL, NULL, "Mars/Olympus", 0, 0);
  rt_campaign_opts o;
  rt_campaign_opts_default(&o, "retention", now);
  rt_campaign_report r;
  CHECK_INT(run(s, &o, &r), RT_OK);
  CHECK_INT(r.scheduled, 4);
  int64_t vl = q_int(s, "SELECT at FROM campaign_contacts WHERE phone = '+79140000001'");
  CHECK_INT(vl, at("Asia/Vladivostok", 2025, 3, 11, 9, 0));
  CHECK(in_hours("Asia/Vladivostok", vl, o.days_mask, 540, 1140));
  int64_t mo = q_int(s, "SELECT at FROM campaign_contacts WHERE phone = '+79160000002'");
  CHECK(mo >= now && mo < now + 60000);
  int64_t kg = q_int(s, "SELECT at FROM campaign_contacts WHERE phone = '+74010000003'");
  CHECK(kg >= now && kg < now + 60000);
  CHECK(in_hours("Europe/Kaliningrad", kg, o.days_mask, 540, 1140));
  int64_t bad = q_int(s, "SELECT at FROM campaign_contacts WHERE phone = '+79160000004'");
  CHECK(in_hours("Europe/Moscow", bad, o.days_mask, 540, 1140));
  rt_store_close(s);

  /* Saturday evening, Monday to Friday only: Monday 09:00. */
  s = open_store();
  now = at("Europe/Moscow", 2025, 3, 15, 20, 0);
  cust(s, now, "+79160000005", 100, NULL, NULL, NULL, 0, 0);
  rt_campaign_opts_default(&o, "retention", now);
  o.days_mask = 0x3E;
  CHECK_INT(run(s, &o, &r), RT_OK);
  CHECK_INT(r.first_at, at("Europe/Moscow", 2025, 3, 17, 9, 0));
  rt_store_close(s);
}

static int cmp_ll(const void *a, const void *b) {
  long long x = *(const long long *)a, y = *(const long long *)b;
  return x < y ? -1 : x > y;
}

T(rate_spreading) {
  rt_store *s = open_store();
  int64_t now = at("Europe/Moscow", 2025, 3, 10, 8, 0);
  /* Two zones with the same offset share the grid: the rate is global. */
  for (int i = 0; i < 50; i++) {
    char phone[20];
    snprintf(phone, sizeof phone, "+7916%07d", i);
    cust(s, now, phone, 100 + i, NULL, NULL, i % 2 ? "Europe/Volgograd" : NULL, 0, 0);
  }
  rt_campaign_opts o;
  rt_campaign_opts_default(&o, "retention", now);
  o.from_min = 9 * 60;
  o.to_min = 9 * 60 + 2;   /* two minutes a day: 40 check-ins */
  rt_campaign_report r;
  CHECK_INT(run(s, &o, &r), RT_OK);
  CHECK_INT(r.scheduled, 50);
  long long due[50];
  sqlite3_stmt *st;
  sqlite3_prepare_v2(rt_store_db(s), "SELECT at FROM campaign_contacts ORDER BY at", -1, &st, NULL);
  int n = 0;
  while (n < 50 && sqlite3_step(st) == SQLITE_ROW) due[n++] = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  CHECK_INT(n, 50);
  qsort(due, (size_t)n, sizeof due[0], cmp_ll);
  int64_t d1 = at("Europe/Moscow", 2025, 3, 10, 9, 0), d2 = at("Europe/Moscow", 2025, 3, 11, 9, 0);
  CHECK_INT(due[0], d1);
  CHECK_INT(due[1], d1 + 3000);          /* 60 s / 20 */
  CHECK_INT(due[20], d1 + 60000);
  CHECK_INT(due[39], d1 + 60000 + 19 * 3000);
  CHECK_INT(due[40], d2);                /* the day's window is full: next day */
  CHECK_INT(due[49], d2 + 9 * 3000);
  int worst = 0;
  for (int i = 0; i < n; i++) {
    int k = 0;
    for (int j = i; j < n && due[j] < due[i] + 60000; j++) k++;
    if (k > worst) worst = k;
    if (due[i] == due[i > 0 ? i - 1 : i] && i > 0) worst = 999;   /* no two at once */
  }
  CHECK(worst <= 20);
  rt_store_close(s);

  /* A second campaign right after respects the slots the first one took. */
  s = open_store();
  now = at("Europe/Moscow", 2025, 3, 10, 10, 0);
  for (int i = 0; i < 30; i++) {
    char phone[20];
    snprintf(phone, sizeof phone, "+7917%07d", i);
    cust(s, now, phone, 100, NULL, NULL, NULL, 0, 0);
  }
  exec(s, "INSERT INTO orders (order_id, phone, date, gift) VALUES ('G1', '+79179999999', %lld, 1)",
       (long long)(now - 5 * DAY));
  rt_campaign_opts_default(&o, "retention", now);
  CHECK_INT(run(s, &o, &r), RT_OK);
  CHECK_INT(r.scheduled, 30);
  /* G2's buyer was just given a retention check-in: its pending timer makes
   * the conversation open, so the gift waits for a later run. */
  exec(s, "INSERT INTO orders (order_id, phone, date, gift) VALUES ('G2', '+79170000000', %lld, 1)",
       (long long)(now - 5 * DAY));
  rt_campaign_opts_default(&o, "gifts", now);
  CHECK_INT(run(s, &o, &r), RT_OK);
  CHECK_INT(r.scheduled, 1);
  CHECK_INT(r.skipped.open_conversation, 1);
  /* 30 retention check-ins fill 10:00 and half of 10:01; the gift gets the
   * 11th slot of 10:01. */
  CHECK_INT(r.first_at, now + 60000 + 10 * 3000);
  rt_store_close(s);
}

T(gifts_recipient_or_buyer) {
  rt_store *s = open_store();
  int64_t now = monday10();
  cust(s, now, "+79100000001", 5, NULL, NULL, NULL, 0, 0);
  cust(s, now, "+79100000002", 5, "tg2", NULL, NULL, 0, 0);
  cust(s, now, "+79100000003", 5, NULL, NULL, NULL, 0, 0);
  cust(s, now, "+79100000004", 50, NULL, NULL, NULL, 1, 0);       /* opted-out recipient */
  cust(s, now, "+79100000005", 5, NULL, NULL, NULL, 1, 0);        /* opted-out buyer */
  cust(s, now, "+79100000006", 5, NULL, NULL, NULL, 0, 0);
  cust(s, now, "+79100000007", 50, "tg7", NULL, "Asia/Vladivostok", 0, 0);
  seen(s, now, "tg2");
  seen(s, now, "tg7");
#define ORDER(id, phone, days, gift, rname, rphone)                                        \
  exec(s, "INSERT INTO orders (order_id, phone, date, product, category, gift, "          \
          "recipient_name, recipient_phone) VALUES (%Q, %Q, %lld, 'Наушники', 'Аудио', %d, %Q, %Q)", \
       id, phone, (long long)(now - (days) * DAY), gift, rname, rphone)
  ORDER("O1", "+79100000001", 5, 1, "Мама", "+79100000009");      /* to the recipient, by phone */
  ORDER("O2", "+79100000002", 5, 1, NULL, NULL);                   /* to the buyer, Telegram */
  ORDER("O3", "+79100000001", 1, 1, NULL, NULL);                   /* too early */
  ORDER("O4", "+79100000001", 100, 1, NULL, NULL);                 /* too old */
  ORDER("O5", "+79100000001", 5, 0, NULL, NULL);                   /* not a gift */
  ORDER("O6", "+79100000003", 5, 1, "Друг", "+79100000004");       /* recipient opted out */
  ORDER("O7", "+79100000005", 5, 1, NULL, NULL);                   /* buyer opted out */
  ORDER("O8", "+79100000006", 4, 1, "Сын", "+79100000007");        /* recipient in Telegram */
  rt_campaign_opts o;
  rt_campaign_opts_default(&o, "gifts", now);
  rt_campaign_report r;
  CHECK_INT(run(s, &o, &r), RT_OK);
  CHECK_INT(r.candidates, 5);
  CHECK_INT(r.selected, 4);
  CHECK_INT(r.scheduled, 4);
  CHECK_INT(r.skipped.opted_out, 1);
#define CHAT_OF(id) "SELECT c.channel || '/' || c.chat_id FROM timers t JOIN conversations c " \
  "ON c.id = t.conv_id WHERE t.name = 'campaign:gifts:" id "'"
  CHECK_STR(q_text(s, CHAT_OF("O1")), "console/+79100000009");
  CHECK_STR(q_text(s, CHAT_OF("O2")), "telegram/tg2");
  CHECK_STR(q_text(s, CHAT_OF("O6")), "console/+79100000003");
  CHECK_STR(q_text(s, CHAT_OF("O8")), "telegram/tg7");
  CHECK_STR(q_text(s, "SELECT data FROM timers WHERE name = 'campaign:gifts:O1'"),
            "{\"campaign\":\"gifts\",\"order_id\":\"O1\",\"product\":\"Наушники\","
            "\"category\":\"Аудио\",\"recipient\":true,\"recipient_name\":\"Мама\"}");
  CHECK_STR(q_text(s, "SELECT json_extract(data, '$.recipient') || step FROM timers "
                      "WHERE name = 'campaign:gifts:O6'"), "0gifts.checkin");
  CHECK_INT(q_int(s, "SELECT COUNT(*) FROM orders WHERE followup_at IS NOT NULL"), 4);
  CHECK_INT(q_int(s, "SELECT followup_at IS NULL FROM orders WHERE order_id = 'O7'"), 1);
  CHECK_INT(q_int(s, "SELECT COUNT(*) FROM campaign_contacts WHERE campaign = 'gifts' AND "
                     "phone = '+79100000009' AND ref = 'O1'"), 1);
  CHECK_INT(q_int(s, "SELECT phone FROM conversations WHERE chat_id = '+79100000009'") != -1, 1);
  /* O8's recipient lives in Vladivostok: 17:00 there now, inside hours. */
  int64_t o8 = q_int(s, "SELECT followup_at FROM orders WHERE order_id = 'O8'");
  CHECK(in_hours("Asia/Vladivostok", o8, o.days_mask, 540, 1140));

  rt_campaign_report r2;
  CHECK_INT(run(s, &o, &r2), RT_OK);
  CHECK_INT(r2.candidates, 1);
  CHECK_INT(r2.selected, 0);
  rt_store_close(s);
}

T(concurrent_runs_do_not_double_contact) {
  char path[512];
  snprintf(path, sizeof path, "%s", new_path());
  rt_store *s = open_path(path);
  int64_t now = monday10();
  /* Enough customers for several chunks each, so the two runs interleave
   * chunk by chunk. */
  enum { N = 9000 };
  exec(s, "BEGIN");
  for (int i = 0; i < N; i++) {
    char phone[20];
    snprintf(phone, sizeof phone, "+7918%07d", i);
    cust(s, now, phone, 100, NULL, NULL, NULL, 0, 0);
  }
  exec(s, "COMMIT");
  rt_campaign_opts o;
  rt_campaign_opts_default(&o, "retention", now);
  /* An SQLite connection must not cross fork(): the child would believe it
   * holds the parent's file locks. Both sides open their own after it. */
  rt_store_close(s);
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) {
    rt_store *c = open_path(path);
    rt_campaign_report r;
    char *err = NULL;
    int rc = rt_campaign_run(c, &o, &r, &err);
    free(err);
    rt_store_close(c);
    _exit(rc == RT_OK ? (r.scheduled > 0 ? 1 : 0) : 255);
  }
  s = open_path(path);
  rt_campaign_report r;
  CHECK_INT(run(s, &o, &r), RT_OK);
  int status = 0;
  waitpid(pid, &status, 0);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) != 255);
  /* One run took them all (the other found them in cooldown), or they
   * shared them; either way each customer exactly once. */
  CHECK_INT(q_int(s, "SELECT COUNT(*) FROM campaign_contacts"), N);
  CHECK_INT(q_int(s, "SELECT COUNT(DISTINCT phone) FROM campaign_contacts"), N);
  CHECK_INT(q_int(s, "SELECT COUNT(*) FROM timers"), N);
  /* The rate holds across the two runs too: each chunk counts the slots
   * the other run committed before it plans its own. */
  static long long due[N];
  sqlite3_stmt *st;
  sqlite3_prepare_v2(rt_store_db(s), "SELECT at FROM campaign_contacts ORDER BY at", -1, &st, NULL);
  int n = 0;
  while (n < N && sqlite3_step(st) == SQLITE_ROW) due[n++] = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  int worst = 0, same = 0;
  for (int i = 0, j = 0; i < n; i++) {
    while (due[j] <= due[i] - 60000) j++;
    if (i - j + 1 > worst) worst = i - j + 1;
    if (i > 0 && due[i] == due[i - 1]) same++;
  }
  CHECK(worst <= o.rate_per_minute);
  CHECK_INT(same, 0);
  rt_store_close(s);
}

T(bad_options) {
  rt_store *s = open_store();
  rt_campaign_opts o;
  rt_campaign_report r;
  char *err = NULL;
  rt_campaign_opts_default(&o, "spam", monday10());
  CHECK_INT(rt_campaign_run(s, &o, &r, &err), RT_EINVAL);
  free(err);
  err = NULL;
  rt_campaign_opts_default(&o, "retention", monday10());
  o.days_mask = 0;
  CHECK_INT(rt_campaign_run(s, &o, &r, &err), RT_EINVAL);
  free(err);
  err = NULL;
  rt_campaign_opts_default(&o, "retention", monday10());
  o.from_min = 600;
  o.to_min = 500;
  CHECK_INT(rt_campaign_run(s, &o, &r, &err), RT_EINVAL);
  free(err);
  rt_store_close(s);
}

/* Addresses: the campaign's channels in order, the newest address of a
 * channel, blocked ones skipped, the phone on phone_channel as the last
 * resort, and customers with nothing reachable reported with the reason. */
T(addresses_and_unreachable) {
  rt_store *s = open_store();
  int64_t now = monday10();
  cust(s, now, "+79100000001", 100, "tg1", "79100000001", NULL, 0, 0);  /* telegram */
  cust(s, now, "+79100000002", 100, "tg2", "79100000002", NULL, 0, 0);  /* tg blocked: whatsapp */
  CHECK_INT(rt_store_address_mark(s, "telegram", "tg2", "blocked", "blocked", now - DAY), RT_OK);
  cust(s, now, "+79100000003", 100, NULL, NULL, NULL, 0, 0);             /* webchat, newest */
  CHECK_INT(rt_store_address_set(s, "+79100000003", "webchat", "w-old", 1), RT_OK);
  CHECK_INT(rt_store_address_set(s, "+79100000003", "webchat", "w-new", 2), RT_OK);
  cust(s, now, "+79100000004", 100, NULL, "79100000004", NULL, 0, 0);   /* all blocked */
  CHECK_INT(rt_store_address_mark(s, "whatsapp", "79100000004", "blocked", "chat_not_found",
                                  now - DAY), RT_OK);
  cust(s, now, "+79100000005", 100, "tg5", NULL, NULL, 0, 0);            /* tg not configured */
  rt_campaign_opts o;
  rt_campaign_opts_default(&o, "retention", now);
  static const char *const chans[] = {"webchat", "whatsapp", NULL};
  o.channels = chans;
  o.phone_channel = "whatsapp";
  rt_campaign_report r;
  CHECK_INT(run(s, &o, &r), RT_OK);
  CHECK_INT(r.candidates, 5);
  CHECK_INT(r.scheduled, 4);
  CHECK_INT(r.skipped.unreachable, 1);
  CHECK_INT(r.nreasons, 1);
  CHECK_STR(r.reasons[0].reason, "chat_not_found");
  CHECK_STR(r.unreachable[0].phone, "+79100000004");
  const char *q = "SELECT channel || '/' || address FROM campaign_contacts WHERE phone = '%s'";
  char buf[200];
  snprintf(buf, sizeof buf, q, "+79100000001");
  CHECK_STR(q_text(s, buf), "whatsapp/79100000001");
  snprintf(buf, sizeof buf, q, "+79100000002");
  CHECK_STR(q_text(s, buf), "whatsapp/79100000002");
  snprintf(buf, sizeof buf, q, "+79100000003");
  CHECK_STR(q_text(s, buf), "webchat/w-new");
  snprintf(buf, sizeof buf, q, "+79100000005");
  CHECK_STR(q_text(s, buf), "whatsapp/79100000005");   /* the phone, on WhatsApp */
  CHECK_INT(q_int(s, "SELECT COUNT(*) FROM conversations WHERE channel = 'webchat' "
                     "AND chat_id = 'w-new' AND phone = '+79100000003'"), 1);
  char *j = rt_campaign_report_json(&r);
  json_t *doc = json_loads(j, 0, NULL);
  CHECK_INT(json_integer_value(json_object_get(json_object_get(doc, "skipped"), "unreachable")), 1);
  json_t *u = json_object_get(doc, "unreachable");
  CHECK_INT(json_integer_value(json_object_get(json_object_get(u, "reasons"), "chat_not_found")), 1);
  CHECK_STR(json_string_value(json_object_get(json_array_get(json_object_get(u, "customers"), 0),
                                              "phone")), "+79100000004");
  json_decref(doc);
  free(j);
  /* The default channels: Telegram first. */
  rt_store *s2 = open_store();
  cust(s2, now, "+79100000001", 100, "tg1", "79100000001", NULL, 0, 0);
  seen(s2, now, "tg1");
  /* An imported telegram_id the bot has never seen: a bot cannot write
   * first, so not there (the phone on the console instead). */
  cust(s2, now, "+79100000006", 100, "tg6", NULL, NULL, 0, 0);
  rt_campaign_opts_default(&o, "retention", now);
  CHECK_INT(run(s2, &o, &r), RT_OK);
  CHECK_STR(q_text(s2, "SELECT channel || '/' || address FROM campaign_contacts "
                       "WHERE phone = '+79100000001'"), "telegram/tg1");
  CHECK_STR(q_text(s2, "SELECT channel || '/' || address FROM campaign_contacts "
                       "WHERE phone = '+79100000006'"), "console/+79100000006");
  rt_store_close(s2);
  /* ... and with no channel by phone it is unreachable: not_seen. */
  rt_store *s3 = open_store();
  cust(s3, now, "+79100000006", 100, "tg6", NULL, NULL, 0, 0);
  rt_campaign_opts_default(&o, "retention", now);
  o.phone_channel = NULL;
  CHECK_INT(run(s3, &o, &r), RT_OK);
  CHECK_INT(r.scheduled, 0);
  CHECK_INT(r.skipped.unreachable, 1);
  CHECK_STR(r.nunreachable ? r.unreachable[0].reason : "", "not_seen");
  rt_store_close(s3);
  rt_store_close(s);
}

/* The channels of shop.json, Telegram and WhatsApp first, switched-off and
 * console left out. */
T(channels_from_config) {
  char dir[600];
  snprintf(dir, sizeof dir, "%s/cfgshop", tmpdir);
  mkdir(dir, 0700);
  char path[700];
  snprintf(path, sizeof path, "%s/shop.json", dir);
  FILE *f = fopen(path, "w");
  fputs("{\"name\": \"t\", \"persona\": {\"name\": \"В\"}, \"flows\": {\"dir\": \".\"}, \"channels\": {\"webchat\": {}, "
        "\"console\": {}, \"whatsapp\": {\"enabled\": false}, \"telegram\": {\"token\": \"x\"}}}", f);
  fclose(f);
  rt_config *cfg = NULL;
  char *err = NULL;
  char *schema = rt_paths_schema("shop.schema.json");
  CHECK_INT(rt_config_load(dir, schema, &cfg, &err), RT_OK);
  if (err) fprintf(stderr, "  config: %s\n", err);
  free(err);
  free(schema);
  if (!cfg) return;
  rt_campaign_opts o;
  CHECK_INT(rt_campaign_opts_config(&o, cfg, "retention", monday10(), NULL), RT_OK);
  CHECK_STR(o.channels[0], "telegram");
  CHECK_STR(o.channels[1], "webchat");
  CHECK(o.channels[2] == NULL);
  CHECK_STR(o.phone_channel, "console");
  rt_config_free(cfg);
}

int main(void) {
  snprintf(tmpdir, sizeof tmpdir, "/tmp/test_campaign.XXXXXX");
  if (!mkdtemp(tmpdir)) return 1;
  T_RUN(retention_selection);
  T_RUN(dry_run_writes_nothing);
  T_RUN(working_hours_in_customer_zone);
  T_RUN(rate_spreading);
  T_RUN(gifts_recipient_or_buyer);
  T_RUN(concurrent_runs_do_not_double_contact);
  T_RUN(bad_options);
  T_RUN(addresses_and_unreachable);
  T_RUN(channels_from_config);
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
  if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", tmpdir);
  return T_DONE();
}
