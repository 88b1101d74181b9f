/* test_stats.c -- campaign funnels, shares, median time to lead, LLM cost. */
#include "t.h"
#include "stats.h"
#include "jschema.h"
#include "store.h"
#include "tstore.h"
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <unistd.h>

static char tmpdir[256];

static rt_store *open_store(void) {
  char path[512];
  snprintf(path, sizeof path, "%s/stats.db", tmpdir);
  tstore_unlink(path);
  return tstore_open(path);
}

/* stats.texts as a shop without its own gets them: the defaults of
 * shop.schema.json. Owned. */
static json_t *default_texts(void) {
  char path[512];
  const char *src = getenv("RT_SOURCE_DIR");
  snprintf(path, sizeof path, "%s/schema/shop.schema.json", src && *src ? src : RT_SOURCE_DIR);
  json_t *schema = json_load_file(path, 0, NULL), *shop = json_object();
  if (!schema) {
    fprintf(stderr, "cannot read %s\n", path);
    exit(1);
  }
  rt_jschema_apply_defaults(schema, shop);
  json_t *t = json_incref(json_object_get(json_object_get(shop, "stats"), "texts"));
  json_decref(shop);
  json_decref(schema);
  return t;
}

static char *table_of(json_t *st) {
  json_t *t = default_texts();
  char *s = rt_stats_table(st, t);
  json_decref(t);
  return s;
}

static void ev(rt_store *s, int64_t at, int64_t conv, const char *flow, const char *camp,
               const char *kind, const char *data) {
  CHECK_INT(rt_store_event_add(s, at, conv, flow, camp, kind, data), RT_OK);
}

static void lead(rt_store *s, int64_t at, int64_t conv, const char *flow, const char *camp) {
  rt_lead_in l = {.conv_id = conv, .at = at, .flow = flow, .campaign = camp};
  CHECK_INT(rt_store_lead_add(s, &l, NULL), RT_OK);
}

static int64_t conv(rt_store *s, const char *chat, int64_t created) {
  rt_conv_row r;
  rt_store_conv_get(s, "console", chat, true, created, &r);
  int64_t id = r.id;
  rt_conv_row_clear(&r);
  return id;
}

static void msg(rt_store *s, const char *chat, int64_t at) {
  static int n;
  char ext[32];
  snprintf(ext, sizeof ext, "m%d", n++);
  rt_store_inbox_add(s, "console", ext, chat, "text", "{}", at, NULL);
}

#define GET(o, ...) json_path(o, __VA_ARGS__, NULL)
static json_t *json_path(json_t *o, ...) {
  va_list ap;
  va_start(ap, o);
  const char *k;
  while (o && (k = va_arg(ap, const char *))) o = json_object_get(o, k);
  va_end(ap);
  return o;
}

static double num(json_t *o) { return o ? json_number_value(o) : -1; }

T(funnels_and_median) {
  rt_store *s = open_store();
  const int64_t T0 = 1741600000000LL, S = 1000;
  int64_t c1 = conv(s, "c1", T0), c2 = conv(s, "c2", T0), c3 = conv(s, "c3", T0);
  /* retention: 4 contacted, outcomes 1 silent, 2 need, 1 later */
  for (int i = 0; i < 4; i++) ev(s, T0, c1, "retention", "retention", "contacted", NULL);
  ev(s, T0, c1, "retention", "retention", "outcome", "{\"outcome\":\"silent\"}");
  ev(s, T0, c1, "retention", "retention", "outcome", "{\"outcome\":\"need\"}");
  ev(s, T0, c2, "retention", "retention", "outcome", "{\"outcome\":\"need\"}");
  ev(s, T0, c3, "retention", "retention", "outcome", "{\"outcome\":\"later\"}");
  ev(s, T0, c3, "retention", "retention", "later_kept", NULL);
  ev(s, T0, c1, "retention", "retention", "offer", NULL);
  ev(s, T0, c2, "retention", "retention", "offer", NULL);
  ev(s, T0, c2, "retention", "retention", "offer_accepted", NULL);
  ev(s, T0, c2, "retention", "retention", "outcome", "not json");   /* ignored safely */
  /* gifts: 2 contacted, 1 ok */
  ev(s, T0, c1, "gifts", "gifts", "contacted", NULL);
  ev(s, T0, c2, "gifts", "gifts", "contacted", NULL);
  ev(s, T0, c2, "gifts", "gifts", "outcome", "{\"outcome\":\"ok\"}");
  /* before since: not counted */
  ev(s, T0 - 100 * S, c1, "retention", "retention", "contacted", NULL);
  ev(s, T0, c1, "lead", NULL, "handoff", NULL);
  ev(s, T0, c1, "lead", NULL, "step_error", "{}");

  /* Times to lead: c1 60 s (first message at +10, lead at +70); c2 200 s
   * (no messages: from creation); c3 30 s and then 40 s (second episode
   * starts at the first message after the first lead). A wake-up is not
   * the customer's message: c1's check-in at +1 does not start its time
   * (and a wake-up that ran in its fire has no inbox row to count). */
  rt_store_inbox_add(s, "console", "wake:1", "c1", "wake", "{}", T0 + 1 * S, NULL);
  msg(s, "c1", T0 + 10 * S);
  msg(s, "c1", T0 + 20 * S);
  lead(s, T0 + 70 * S, c1, "lead", "retention");
  lead(s, T0 + 200 * S, c2, "lead", NULL);
  msg(s, "c3", T0 + 5 * S);
  lead(s, T0 + 35 * S, c3, "lead", "retention");
  msg(s, "c3", T0 + 100 * S);
  lead(s, T0 + 140 * S, c3, "lead", "gifts");
  ev(s, T0, c1, "lead", NULL, "lead", "{\"lead_id\":1}");

  /* LLM: 3 calls in 2 dialogs */
  ev(s, T0, c1, "lead", NULL, "llm", "{\"prompt_tokens\":100,\"completion_tokens\":20,\"cost\":0.5}");
  ev(s, T0, c1, "lead", NULL, "llm", "{\"prompt_tokens\":50,\"completion_tokens\":30,\"cost\":0.25}");
  ev(s, T0, c2, "lead", NULL, "llm", "{\"prompt_tokens\":200,\"completion_tokens\":0,\"cost\":1.25}");
  /* and what the flows' provider calls cost, as the engine records it per turn */
  ev(s, T0, c3, "lead", NULL, "usage",
     "{\"calls\":2,\"cost_micro\":1500000,\"tokens_in\":300,\"tokens_out\":100}");

  json_t *st = NULL;
  char *err = NULL;
  CHECK_INT(rt_stats_collect(s, T0, &st, &err), RT_OK);
  CHECK(st != NULL);
  free(err);
  if (!st) return;
  json_t *r = GET(st, "campaigns", "retention");
  CHECK_INT(json_integer_value(GET(r, "contacted")), 4);
  CHECK_INT(json_integer_value(GET(r, "outcomes", "silent", "count")), 1);
  CHECK(fabs(num(GET(r, "outcomes", "silent", "share")) - 0.25) < 1e-9);
  CHECK_INT(json_integer_value(GET(r, "outcomes", "need", "count")), 2);
  CHECK(fabs(num(GET(r, "outcomes", "need", "share")) - 0.5) < 1e-9);
  CHECK_INT(json_integer_value(GET(r, "outcomes", "later", "count")), 1);
  CHECK_INT(json_integer_value(GET(r, "outcomes", "declined", "count")), 0);
  CHECK(fabs(num(GET(r, "outcomes", "optout", "share"))) < 1e-9);
  CHECK_INT(json_integer_value(GET(r, "later_kept")), 1);
  CHECK_INT(json_integer_value(GET(r, "offers")), 2);
  CHECK_INT(json_integer_value(GET(r, "offers_accepted")), 1);
  CHECK_INT(json_integer_value(GET(r, "leads")), 2);
  json_t *g = GET(st, "campaigns", "gifts");
  CHECK_INT(json_integer_value(GET(g, "contacted")), 2);
  CHECK(fabs(num(GET(g, "outcomes", "ok", "share")) - 0.5) < 1e-9);
  CHECK_INT(json_integer_value(GET(g, "leads")), 1);
  json_t *f = GET(st, "flows", "lead");
  CHECK_INT(json_integer_value(GET(f, "leads")), 4);
  CHECK(fabs(num(GET(f, "median_time_to_lead_s")) - 50.0) < 1e-9);   /* 30 40 60 200 */
  CHECK_INT(json_integer_value(GET(f, "conversations")), 3);
  CHECK_INT(json_integer_value(GET(st, "events", "handoff")), 1);
  json_t *l = GET(st, "llm");
  CHECK_INT(json_integer_value(GET(l, "calls")), 5);
  CHECK_INT(json_integer_value(GET(l, "tokens")), 800);
  CHECK(fabs(num(GET(l, "cost")) - 3.5) < 1e-9);
  CHECK_INT(json_integer_value(GET(l, "dialogs")), 3);
  CHECK(fabs(num(GET(l, "per_dialog", "tokens")) - 266.6667) < 1e-3);
  CHECK(fabs(num(GET(l, "per_dialog", "cost")) - 1.1667) < 1e-3);
  CHECK(fabs(num(GET(l, "per_lead", "tokens")) - 200) < 1e-9);
  CHECK(fabs(num(GET(l, "per_lead", "cost")) - 0.875) < 1e-9);
  json_int_t all = json_integer_value(GET(l, "all_dialogs"));
  CHECK(all >= 3);
  CHECK(fabs(num(GET(l, "share")) - (all ? 3.0 / (double)all : 0)) < 1e-3);

  char *table = table_of(st);
  CHECK(table && strstr(table, "retention") && strstr(table, "2 (50%)") && strstr(table, "50 с"));
  if (getenv("T_VERBOSE")) fputs(table, stderr);
  free(table);
  json_decref(st);

  /* All time: the early contact is counted too. */
  CHECK_INT(rt_stats_collect(s, 0, &st, &err), RT_OK);
  CHECK_INT(json_integer_value(GET(st, "campaigns", "retention", "contacted")), 5);
  json_decref(st);
  rt_store_close(s);
}

/* What OCR and the rules saved (llm_saved events), and what a campaign's
 * dialogs cost by the outcome they ended with. */
T(llm_saved_and_outcomes) {
  const int64_t T0 = 1741600000000LL;
  rt_store *s = open_store();
  int64_t c1 = conv(s, "c1", T0), c2 = conv(s, "c2", T0);
  ev(s, T0, c1, "lead", NULL, "llm_saved", "{\"by\":\"ocr\",\"schema\":\"photo_triage\",\"tokens\":470}");
  ev(s, T0, c1, "lead", NULL, "llm_saved", "{\"by\":\"rules\",\"schema\":\"parts_list\",\"tokens\":250}");
  ev(s, T0, c2, "lead", NULL, "llm_saved", "{\"by\":\"rules\",\"schema\":\"parts_list\",\"tokens\":250}");
  ev(s, T0, c2, "lead", NULL, "llm_saved", "not json");
  int64_t r1 = conv(s, "r1", T0), r2 = conv(s, "r2", T0), r3 = conv(s, "r3", T0);
  ev(s, T0, r1, "retention", "retention", "usage", "{\"calls\":1,\"cost_micro\":4000,\"tokens_in\":300,\"tokens_out\":20}");
  ev(s, T0, r1, "retention", "retention", "outcome", "{\"outcome\":\"question\"}");
  ev(s, T0 + 1, r1, "retention", "retention", "outcome", "{\"outcome\":\"later\"}");   /* the last counts */
  ev(s, T0, r2, "retention", "retention", "usage", "{\"calls\":1,\"cost_micro\":2000,\"tokens_in\":100,\"tokens_out\":0}");
  ev(s, T0, r2, "retention", "retention", "outcome", "{\"outcome\":\"later\"}");
  ev(s, T0, r3, "retention", "retention", "outcome", "{\"outcome\":\"declined\"}");
  json_t *st = NULL;
  char *err = NULL;
  CHECK_INT(rt_stats_collect(s, T0, &st, &err), RT_OK);
  free(err);
  if (!st) { rt_store_close(s); return; }
  CHECK_INT(json_integer_value(GET(st, "llm", "saved", "ocr", "calls")), 1);
  CHECK_INT(json_integer_value(GET(st, "llm", "saved", "ocr", "tokens")), 470);
  CHECK_INT(json_integer_value(GET(st, "llm", "saved", "rules", "calls")), 2);
  CHECK_INT(json_integer_value(GET(st, "llm", "saved", "rules", "tokens")), 500);
  json_t *later = GET(st, "llm", "per_outcome", "retention", "later");
  CHECK_INT(json_integer_value(GET(later, "dialogs")), 2);
  CHECK_INT(json_integer_value(GET(later, "tokens")), 420);
  CHECK(fabs(num(GET(later, "cost")) - 0.006) < 1e-9);
  CHECK(fabs(num(GET(later, "cost_per_dialog")) - 0.003) < 1e-9);
  CHECK(GET(st, "llm", "per_outcome", "retention", "question") == NULL);
  CHECK_INT(json_integer_value(GET(st, "llm", "per_outcome", "retention", "declined", "dialogs")), 1);
  CHECK(fabs(num(GET(st, "llm", "per_outcome", "retention", "declined", "cost"))) < 1e-9);
  char *table = table_of(st);
  CHECK(table && strstr(table, "сэкономлено распознаванием фото: 470 токенов (1 вызовов)"));
  CHECK(table && strstr(table, "retention, итог later: 0.0030 на диалог, 210 токенов (2 диалогов)"));
  if (getenv("T_VERBOSE") && table) fputs(table, stderr);
  free(table);
  json_decref(st);
  rt_store_close(s);
}

T(empty_store) {
  rt_store *s = open_store();
  json_t *st = NULL;
  char *err = NULL;
  CHECK_INT(rt_stats_collect(s, 0, &st, &err), RT_OK);
  CHECK_INT(json_integer_value(GET(st, "campaigns", "retention", "contacted")), 0);
  CHECK(fabs(num(GET(st, "campaigns", "gifts", "outcomes", "silent", "share"))) < 1e-9);
  CHECK_INT(json_object_size(GET(st, "flows")), 0);
  CHECK(fabs(num(GET(st, "llm", "per_lead", "cost"))) < 1e-9);
  char *table = table_of(st);
  CHECK(table != NULL);
  free(table);
  json_decref(st);
  rt_store_close(s);
}

static int vm_ticks;
static int count_vm(void *ud) { (void)ud; vm_ticks++; return 0; }

/* The stats' work grows with the events, not with their square: each
 * dialog's last outcome is found on its conversation's own events
 * (022_events_conv.sql). Counted in SQLite's VM steps, which do not depend
 * on the machine: 4,000 dialogs take some 700 ticks of a thousand steps;
 * the search through every outcome for each of them took 48,700. */
T(outcomes_linear) {
  rt_store *s = open_store();
  CHECK_INT(rt_store_begin(s), RT_OK);
  for (int i = 0; i < 4000; i++) {
    ev(s, 1000 + i, 100 + i, "retention", "retention", "contacted", "{}");
    ev(s, 2000 + i, 100 + i, "retention", "retention", "outcome",
       i % 3 ? "{\"outcome\":\"declined\"}" : "{\"outcome\":\"later\"}");
  }
  ev(s, 9000, 100, "retention", "retention", "outcome", "{\"outcome\":\"need\"}");
  CHECK_INT(rt_store_commit(s), RT_OK);
  vm_ticks = 0;
  sqlite3_progress_handler(rt_store_db(s), 1000, count_vm, NULL);
  json_t *st = NULL;
  char *err = NULL;
  CHECK_INT(rt_stats_collect(s, 0, &st, &err), RT_OK);
  sqlite3_progress_handler(rt_store_db(s), 0, NULL, NULL);
  CHECK(vm_ticks > 0 && vm_ticks < 3000);
  CHECK_INT(json_integer_value(GET(st, "campaigns", "retention", "contacted")), 4000);
  json_decref(st);
  rt_store_close(s);
}

/* The table speaks the shop's words: stats.texts replaces a default, a
 * key the shop emptied prints nothing, and a value is never read as a
 * format ({word} that is no placeholder, a lone %). */
T(table_in_the_shops_words) {
  rt_store *s = open_store();
  json_t *st = NULL;
  char *err = NULL;
  CHECK_INT(rt_stats_collect(s, 0, &st, &err), RT_OK);
  free(err);
  if (!st) { rt_store_close(s); return; }
  json_t *t = default_texts();
  CHECK(t && json_object_size(t) > 30);
  char *ru = rt_stats_table(st, t);
  CHECK(ru && strstr(ru, "Статистика за всё время") && strstr(ru, "  молчат") &&
        strstr(ru, "(нет данных)") && strstr(ru, "Передано менеджеру: 0, ошибок в шагах: 0"));
  json_object_set_new(t, "all_time", json_string("All time %s %n {since}"));
  json_object_set_new(t, "outcome_silent", json_string("silent"));
  json_object_set_new(t, "handoffs", json_string("handed over {handoffs}, {errors} errors"));
  json_object_set_new(t, "no_data", json_string(""));
  char *en = rt_stats_table(st, t);
  CHECK(en && strstr(en, "All time %s %n {since}\n") && strstr(en, "  silent ") &&
        strstr(en, "handed over 0, 0 errors") && !strstr(en, "молчат") && !strstr(en, "нет данных"));
  if (getenv("T_VERBOSE") && en) fputs(en, stderr);
  free(ru);
  free(en);
  json_decref(t);
  json_decref(st);
  rt_store_close(s);
}

int main(void) {
  snprintf(tmpdir, sizeof tmpdir, "/tmp/test_stats.XXXXXX");
  if (!mkdtemp(tmpdir)) return 1;
  T_RUN(funnels_and_median);
  T_RUN(llm_saved_and_outcomes);
  T_RUN(empty_store);
  T_RUN(outcomes_linear);
  T_RUN(table_in_the_shops_words);
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
  if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", tmpdir);
  return T_DONE();
}
