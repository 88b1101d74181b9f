/* test_inbox.c -- receive commit, dedup, acks after commit, crash
 * recovery and the isolation of an unclean stop. */
#include "inbox.h"
#include "t.h"
#include "tstore.h"
#include "utf8.h"
#include <jansson.h>
#include <stdlib.h>
#include <unistd.h>

typedef struct { int calls, last; } acked;
static void on_ack(void *ud, int status) {
  acked *a = ud;
  a->calls++;
  a->last = status;
}

static int kicks;
static void on_kick(void *ud) { (void)ud; kicks++; }

static rt_event_in text_ev(const char *chat, const char *ext, const char *text) {
  return (rt_event_in){.channel = "console", .chat_id = chat, .ext_id = ext, .text = text};
}

static char path[256];
static rt_store *fresh(void) { return tstore_fresh(path, sizeof path, "test_inbox"); }

static rt_inbox *open_inbox(rt_store *s, rt_clock *ck, rt_convq *q, bool test_mode) {
  rt_inbox_opts o = {.store = s, .clock = ck, .queues = q, .test_mode = test_mode,
                     .kick = on_kick};
  return rt_inbox_new(&o);
}

T(ack_after_commit_and_dedup) {
  rt_store *s = fresh();
  rt_clock ck;
  rt_clock_set(&ck, 1700000000000);
  rt_convq q;
  rt_convq_init(&q);
  rt_inbox *in = open_inbox(s, &ck, &q, true);
  acked a1 = {0}, a2 = {0}, a3 = {0};
  kicks = 0;
  rt_event_in e1 = text_ev("u1", "m1", "привет"), e2 = text_ev("u1", "m1", "привет");
  rt_event_in e3 = text_ev("u2", "m2", "x");
  CHECK(rt_inbox_receive(in, &e1, on_ack, &a1) == RT_OK);
  CHECK(rt_inbox_receive(in, &e2, on_ack, &a2) == RT_OK);   /* redelivery, same batch */
  CHECK(rt_inbox_receive(in, &e3, on_ack, &a3) == RT_OK);
  CHECK_INT(kicks, 3);
  /* Nothing is acknowledged before the commit. */
  CHECK_INT(a1.calls + a2.calls + a3.calls, 0);
  CHECK_INT(rt_inbox_waiting(in), 3);
  CHECK_INT(q_int(s, "SELECT count(*) FROM inbox"), 0);
  CHECK(rt_inbox_flush(in) == RT_OK);
  CHECK_INT(q_int(s, "SELECT count(*) FROM inbox"), 2);
  CHECK_INT(a1.calls, 1);
  CHECK_INT(a1.last, RT_OK);
  CHECK_INT(a2.calls, 1);
  CHECK_INT(a2.last, 1);       /* the duplicate */
  CHECK_INT(a3.last, RT_OK);
  CHECK_INT(rt_inbox_waiting(in), 0);
  /* The duplicate is not queued: u1 has one event. */
  rt_convq_chat *c = rt_convq_get(&q, "console\x1fu1");
  CHECK(c && c->len - c->head == 1);
  CHECK(c && c->evs[c->head].payload && strstr(c->evs[c->head].payload, "привет"));
  /* A redelivery in a later batch is a duplicate too. */
  acked a4 = {0};
  CHECK(rt_inbox_receive(in, &e1, on_ack, &a4) == RT_OK);
  CHECK(rt_inbox_flush(in) == RT_OK);
  CHECK_INT(a4.last, 1);
  CHECK(c->len - c->head == 1);
  /* Events without a channel id get one each: never duplicates. */
  rt_event_in g = text_ev("u3", NULL, "a");
  acked a5 = {0}, a6 = {0};
  rt_inbox_receive(in, &g, on_ack, &a5);
  rt_inbox_receive(in, &g, on_ack, &a6);
  CHECK(rt_inbox_flush(in) == RT_OK);
  CHECK_INT(a5.last, RT_OK);
  CHECK_INT(a6.last, RT_OK);
  /* No chat: refused at once. */
  rt_event_in bad = text_ev("", "z", "a");
  CHECK(rt_inbox_receive(in, &bad, on_ack, &a5) == RT_EINVAL);
  rt_inbox_free(in, true);
  rt_convq_free(&q);
  rt_store_close(s);
}

T(failed_commit_acks_nothing_and_keeps_the_batch) {
  rt_store *s = fresh();
  rt_clock ck;
  rt_clock_set(&ck, 1700000000000);
  rt_convq q;
  rt_convq_init(&q);
  rt_inbox *in = open_inbox(s, &ck, &q, true);
  acked a = {0};
  rt_event_in e = text_ev("u1", "m1", "x");
  rt_inbox_receive(in, &e, on_ack, &a);
  rt_store_exec(s, "PRAGMA query_only = 1");
  CHECK(rt_inbox_flush(in) != RT_OK);
  CHECK_INT(a.calls, 0);
  CHECK_INT(rt_inbox_waiting(in), 1);
  CHECK(!rt_convq_any_ready(&q));
  rt_store_exec(s, "PRAGMA query_only = 0");
  CHECK(rt_inbox_flush(in) == RT_OK);
  CHECK_INT(a.calls, 1);
  CHECK_INT(a.last, RT_OK);
  CHECK(rt_convq_any_ready(&q));
  rt_inbox_free(in, true);
  rt_convq_free(&q);
  rt_store_close(s);
}

/* Receives events, commits them, and "crashes": nothing applied. */
static void store_events(rt_store *s, rt_clock *ck, int n) {
  rt_convq q;
  rt_convq_init(&q);
  rt_inbox *in = open_inbox(s, ck, &q, true);
  for (int i = 0; i < n; i++) {
    char chat[16], ext[16];
    snprintf(chat, sizeof chat, "u%d", i % 2);
    snprintf(ext, sizeof ext, "m%d", i);
    rt_event_in e = text_ev(chat, ext, "x");
    rt_inbox_receive(in, &e, NULL, NULL);
  }
  rt_inbox_flush(in);
  rt_inbox_free(in, false);
  rt_convq_free(&q);
}

T(recovery_requeues_in_order) {
  rt_store *s = fresh();
  rt_clock ck;
  rt_clock_set(&ck, 1700000000000);
  store_events(s, &ck, 5);
  rt_convq q;
  rt_convq_init(&q);
  rt_inbox *in = open_inbox(s, &ck, &q, true);
  rt_inbox_recover(in);
  CHECK(!rt_inbox_isolating(in));   /* test mode keeps no running mark */
  rt_convq_chat *c0 = rt_convq_get(&q, "console\x1fu0"), *c1 = rt_convq_get(&q, "console\x1fu1");
  CHECK(c0 && c0->len - c0->head == 3);
  CHECK(c1 && c1->len - c1->head == 2);
  if (c0 && c1) {
    CHECK(c0->evs[0].id < c0->evs[1].id && c0->evs[1].id < c0->evs[2].id);
    CHECK(c1->evs[0].id < c1->evs[1].id);
    /* Read back from the inbox when run, not kept in memory. */
    CHECK(c0->evs[0].payload == NULL);
  }
  rt_inbox_free(in, true);
  rt_convq_free(&q);
  rt_store_close(s);
}

T(unclean_stop_isolates_and_counts_attempts) {
  rt_store *s = fresh();
  rt_clock ck;
  rt_clock_set(&ck, 1700000000000);
  store_events(s, &ck, 3);
  /* A first run that dies (no clean free): the mark stays set. */
  rt_convq q;
  rt_convq_init(&q);
  rt_inbox *in = open_inbox(s, &ck, &q, false);
  rt_inbox_recover(in);
  CHECK(!rt_inbox_isolating(in));   /* the first start found no mark */
  CHECK_STR(q_text(s, "SELECT value FROM meta WHERE key = 'engine.running'"), "1");
  rt_inbox_free(in, false);
  rt_convq_free(&q);

  /* The next start knows the last run died: the events run one at a time,
   * each attempt committed before it runs. */
  for (int start = 0; start < 3; start++) {
    rt_convq_init(&q);
    in = open_inbox(s, &ck, &q, false);
    rt_inbox_recover(in);
    CHECK(rt_inbox_isolating(in));
    rt_convq_chat *c;
    bool quarantine;
    CHECK(rt_inbox_isolated_next(in, &c, &quarantine) == RT_OK);
    CHECK(c != NULL);
    if (!c) break;
    CHECK_STR(c->chat_id, "u0");
    CHECK_INT(q_int(s, "SELECT attempts FROM inbox ORDER BY id LIMIT 1"), start + 1);
    /* Running alone at two crashes already: set aside, not run. */
    CHECK(quarantine == (start >= RT_INBOX_CRASHES_TO_QUARANTINE));
    /* Asked again before it ran: the same event, not counted twice. */
    rt_convq_chat *again;
    CHECK(rt_inbox_isolated_next(in, &again, &quarantine) == RT_OK);
    CHECK(again == c);
    CHECK_INT(q_int(s, "SELECT attempts FROM inbox ORDER BY id LIMIT 1"), start + 1);
    rt_inbox_free(in, false);   /* and it crashes again */
    rt_convq_free(&q);
  }

  /* A run where every recovered event gets done: isolation ends, and a
   * clean stop clears the mark. */
  rt_convq_init(&q);
  in = open_inbox(s, &ck, &q, false);
  rt_inbox_recover(in);
  int ran = 0;
  for (;;) {
    rt_convq_chat *c;
    bool quarantine;
    CHECK(rt_inbox_isolated_next(in, &c, &quarantine) == RT_OK);
    if (!c) break;
    rt_convq_pop_ready(&q);
    rt_convq_ev ev = rt_convq_start(c);
    free(ev.payload);
    rt_store_begin(s);
    rt_store_inbox_finish(s, ev.id, "done", 0);
    rt_store_commit(s);
    rt_convq_done(&q, c);
    ran++;
  }
  CHECK_INT(ran, 3);
  CHECK(!rt_inbox_isolating(in));
  rt_inbox_free(in, true);
  rt_convq_free(&q);
  CHECK_STR(q_text(s, "SELECT value FROM meta WHERE key = 'engine.running'"), "0");
  rt_store_close(s);
  tstore_unlink(path);
}

/* The payload is written without jansson's tree (inbox.c): byte for byte
 * what json_dumps writes of the same event, whatever its text holds. */
T(payload_as_jansson_writes_it) {
  rt_store *s = fresh();
  rt_clock ck;
  rt_clock_set(&ck, 1700000000123);
  rt_convq q;
  rt_convq_init(&q);
  rt_inbox *in = open_inbox(s, &ck, &q, true);
  static const char *const texts[] = {
    "привет", "a\"b\\c/d", "tab\there\nnl\r\x01\x1f\x7f", "😀 €", "bad \xff\xfe utf8 \xd0",
    "", "</script>&'",
  };
  size_t nt = sizeof texts / sizeof *texts;
  for (size_t i = 0; i < nt; i++) {
    char chat[16], ext[16];
    snprintf(chat, sizeof chat, "p%zu", i);
    snprintf(ext, sizeof ext, "pm%zu", i);
    rt_event_in e = {.channel = "console", .chat_id = chat, .ext_id = ext, .text = texts[i],
                     .user_id = i % 2 ? chat : NULL, .name = i % 3 ? "Иван \"И\"" : NULL,
                     .kind = i == 5 ? "photo" : NULL};
    CHECK(rt_inbox_receive(in, &e, NULL, NULL) == RT_OK);
  }
  CHECK(rt_inbox_flush(in) == RT_OK);
  for (size_t i = 0; i < nt; i++) {
    char key[32], chat[16];
    snprintf(chat, sizeof chat, "p%zu", i);
    snprintf(key, sizeof key, "console\x1f%s", chat);
    rt_convq_chat *c = rt_convq_get(&q, key);
    CHECK(c && c->evs[c->head].payload);
    if (!c || !c->evs[c->head].payload) continue;
    size_t n;
    char *clean = rt_utf8_clean(texts[i], strlen(texts[i]), &n);
    json_t *p = json_pack("{s:s, s:s%, s:I}", "kind", i == 5 ? "photo" : "text", "text", clean, n,
                          "at", (json_int_t)1700000000);
    if (i % 2) json_object_set_new(p, "user", json_string(chat));
    if (i % 3) json_object_set_new(p, "name", json_string("Иван \"И\""));
    char *want = json_dumps(p, JSON_COMPACT | JSON_SORT_KEYS);
    if (strcmp(want, c->evs[c->head].payload) != 0)
      fprintf(stderr, "  want %s\n  got  %s\n", want, c->evs[c->head].payload);
    CHECK(strcmp(want, c->evs[c->head].payload) == 0);
    free(want);
    free(clean);
    json_decref(p);
  }
  rt_inbox_free(in, true);
  rt_convq_free(&q);
  rt_store_close(s);
}

int main(void) {
  T_RUN(ack_after_commit_and_dedup);
  T_RUN(failed_commit_acks_nothing_and_keeps_the_batch);
  T_RUN(recovery_requeues_in_order);
  T_RUN(unclean_stop_isolates_and_counts_attempts);
  T_RUN(payload_as_jansson_writes_it);
  return T_DONE();
}
