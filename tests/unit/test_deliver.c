/* test_deliver.c -- the delivery queue against a fake asynchronous channel.
 *
 * The channel answers from uv timers after 1-12 ms, so answers come back
 * out of order across chats; it fails some sends transiently, asks once to
 * pause the whole channel, and refuses some rows for good. Checked from
 * its own log of sends: order in every chat and never two rows of a chat
 * at once, the declared rates never exceeded (token bucket with one second
 * of burst), no send while paused, every row delivered or failed exactly
 * once, high priority first. */
#include "deliver.h"
#include "paths.h"
#include "t.h"
#include "tstore.h"
#include <stdlib.h>
#include <unistd.h>

static rt_store *s;
static uv_loop_t loop;
static rt_clock clk;

typedef struct { int64_t id, at; char chat[16]; } sendrec;
typedef struct fake {
  rt_channel ch;
  sendrec log[1024];
  int nlog;
  int64_t delivered[1024];     /* by row id: times delivered */
  int in_chat[16];             /* sends in flight per chat index */
  int overlap;                 /* a chat had two sends at once */
  int64_t pause_from, pause_to;
  bool paused_once, sync;
  uint64_t rng;
} fake;

typedef struct pend {
  uv_timer_t t;
  fake *f;
  int64_t id;
  int chat, attempt;
  rt_send_done done;
  void *ud;
} pend;

static uint64_t frnd(fake *f) {
  f->rng ^= f->rng << 13;
  f->rng ^= f->rng >> 7;
  f->rng ^= f->rng << 17;
  return f->rng;
}

static void pend_closed(uv_handle_t *h) { free(h->data); }

static void answer(uv_timer_t *t) {
  pend *p = t->data;
  fake *f = p->f;
  f->in_chat[p->chat]--;
  rt_send_result r = {.verdict = RT_SEND_DELIVERED};
  if (p->id % 13 == 0) {
    r = (rt_send_result){.verdict = RT_SEND_FAILED, .reason = RT_FAIL_BLOCKED, .text = "blocked"};
  } else if (p->id == 20 && !f->paused_once) {
    f->paused_once = true;
    f->pause_from = rt_clock_now(&clk);
    f->pause_to = f->pause_from + 150;
    r = (rt_send_result){.verdict = RT_SEND_PAUSE_CHANNEL, .until_ms = f->pause_to,
                         .text = "Too Many Requests"};
  } else if (p->attempt < 2 && frnd(f) % 6 == 0) {
    r = (rt_send_result){.verdict = RT_SEND_RETRY_LATER, .after_ms = 5, .text = "502"};
  }
  if (r.verdict == RT_SEND_DELIVERED && p->id < 1024) f->delivered[p->id]++;
  p->done(p->ud, &r);
  uv_close((uv_handle_t *)&p->t, pend_closed);
}

static void fake_send(rt_channel *ch, const rt_out_msg *m, rt_send_done done, void *ud) {
  fake *f = ch->impl;
  int chat = atoi(m->chat_id + 1);
  if (f->in_chat[chat]++) f->overlap++;
  if (f->nlog < 1024) {
    sendrec *r = &f->log[f->nlog++];
    r->id = m->id;
    r->at = rt_clock_now(&clk);
    snprintf(r->chat, sizeof r->chat, "%s", m->chat_id);
  }
  pend *p = rt_xcalloc(1, sizeof *p);
  *p = (pend){.f = f, .id = m->id, .chat = chat, .attempt = m->attempt, .done = done, .ud = ud};
  uv_timer_init(&loop, &p->t);
  p->t.data = p;
  uv_timer_start(&p->t, answer, f->sync ? 0 : 1 + frnd(f) % 12, 0);
}

static int64_t q(const char *sql) { return q_int(s, sql); }

static void run_until_done(rt_deliver *d) {
  int64_t t0 = rt_clock_now(&clk);
  while (rt_clock_now(&clk) - t0 < 20000) {
    uv_run(&loop, UV_RUN_ONCE);
    if (q("SELECT count(*) FROM outbox WHERE status = 'pending'") == 0 && rt_deliver_idle(d)) break;
  }
}

/* A delivery queue over the test's store and clock with the one channel,
 * started. */
static rt_deliver *deliver_start(rt_channel *ch, uint64_t seed) {
  rt_deliver_opts o = {.loop = &loop, .store = s, .clock = &clk, .seed = seed};
  rt_deliver *d = rt_deliver_new(&o);
  rt_deliver_add_channel(d, ch);
  rt_deliver_start(d);
  return d;
}

static void closed(void *ud) { *(bool *)ud = true; }

static void finish(rt_deliver *d) {
  bool done = false;
  rt_deliver_close(d, closed, &done);
  while (!done) uv_run(&loop, UV_RUN_ONCE);
  uv_run(&loop, UV_RUN_NOWAIT);
}

/* In every window of sends, count <= burst + rate * span. The send times
 * are whole milliseconds, so a span can read up to 1 ms short of the real
 * one: the window gets that 1 ms of refill. */
static bool rate_burst_ok(const int64_t *at, int n, double rate, double burst) {
  for (int i = 0; i < n; i++)
    for (int j = i; j < n; j++)
      if ((double)(j - i + 1) > burst + rate * (double)(at[j] - at[i] + 1) / 1000.0 + 1e-6) {
        fprintf(stderr, "  rate %.0f/s exceeded: %d sends in %lld ms\n", rate, j - i + 1,
                (long long)(at[j] - at[i]));
        return false;
      }
  return true;
}

static bool rate_ok(const int64_t *at, int n, double rate) {
  return rate_burst_ok(at, n, rate, rate > 1 ? (double)(int64_t)rate : 1);
}

#define CHATS 6
#define PER_CHAT 10

T(order_rates_pause) {
  fake *f = rt_xcalloc(1, sizeof *f);
  f->rng = 88172645463325252ULL;
  f->ch = (rt_channel){.name = "fake", .impl = f, .send = fake_send,
                       .limits = {.per_sec = 30, .per_chat = 10, .in_flight = 4}};
  for (int k = 0; k < PER_CHAT; k++)
    for (int c = 0; c < CHATS; c++) {
      char chat[16], idem[32];
      snprintf(chat, sizeof chat, "c%d", c);
      snprintf(idem, sizeof idem, "t1:%d:%d", c, k);
      CHECK_INT(rt_store_outbox_add(s, 0, "fake", chat, idem, "text", "{\"text\":\"hi\"}", 0, NULL),
                RT_OK);
    }
  rt_deliver *d = deliver_start(&f->ch, 7);
  run_until_done(d);
  CHECK_INT(q("SELECT count(*) FROM outbox WHERE status = 'pending'"), 0);
  int64_t total = CHATS * PER_CHAT;
  int64_t nfailed = q("SELECT count(*) FROM outbox WHERE status = 'failed' AND fail_reason = 'blocked'");
  CHECK_INT(nfailed, q("SELECT count(*) FROM outbox WHERE id % 13 = 0"));
  CHECK_INT(q("SELECT count(*) FROM outbox WHERE status = 'sent'"), total - nfailed);
  /* nothing delivered twice, everything sent delivered once */
  for (int64_t id = 1; id <= total; id++) CHECK(f->delivered[id] == (id % 13 == 0 ? 0 : 1));
  CHECK_INT(f->overlap, 0);
  CHECK(f->paused_once);
  int64_t all[1024];
  int nall = 0;
  for (int c = 0; c < CHATS; c++) {
    char chat[16];
    snprintf(chat, sizeof chat, "c%d", c);
    int64_t at[1024], last = 0;
    int n = 0;
    for (int i = 0; i < f->nlog; i++) {
      if (strcmp(f->log[i].chat, chat) != 0) continue;
      CHECK(f->log[i].id >= last);    /* a retry repeats the row, never jumps back */
      last = f->log[i].id;
      at[n++] = f->log[i].at;
    }
    CHECK(rate_ok(at, n, 10));
  }
  for (int i = 0; i < f->nlog; i++) {
    all[nall++] = f->log[i].at;
    /* no send started while the channel was paused */
    CHECK(!(f->log[i].at >= f->pause_from + 1 && f->log[i].at < f->pause_to));
  }
  CHECK(rate_ok(all, nall, 30));
  CHECK(f->nlog > total);   /* the transient failures were retried */
  finish(d);
  free(f);
}

/* chat_burst: a private chat's first three rows go at once, then 1/s;
 * never a fourth at once (the bucket's model: count <= 3 + 1/s * span). */
T(chat_burst) {
  CHECK_INT(rt_store_exec(s, "DELETE FROM outbox"), RT_OK);
  fake *f = rt_xcalloc(1, sizeof *f);
  f->rng = 5;
  f->sync = true;
  f->ch = (rt_channel){.name = "burst", .impl = f, .send = fake_send,
                       .limits = {.per_sec = 30, .per_chat = 1, .chat_burst = 3}};
  for (int k = 0; k < 5; k++) {
    char idem[32];
    snprintf(idem, sizeof idem, "b:%d", k);
    CHECK_INT(rt_store_outbox_add(s, 0, "burst", "c1", idem, "text", "{\"text\":\"hi\"}", 0, NULL),
              RT_OK);
  }
  rt_deliver *d = deliver_start(&f->ch, 9);
  run_until_done(d);
  CHECK_INT(f->nlog, 5);
  int64_t at[8];
  for (int i = 0; i < f->nlog && i < 8; i++) at[i] = f->log[i].at;
  /* the first three without waiting for the chat's rate */
  CHECK(f->nlog == 5 && at[2] - at[0] < 500);
  /* then the sustained rate: the fourth a second after the first */
  CHECK(f->nlog == 5 && at[3] - at[0] >= 900);
  CHECK(rate_burst_ok(at, f->nlog, 1, 3));
  /* and the check itself fails a fourth at once */
  int64_t four[4] = {0, 1, 2, 3};
  CHECK(!rate_burst_ok(four, 4, 1, 3));
  finish(d);
  free(f);
}

T(priority_first) {
  CHECK_INT(rt_store_exec(s, "DELETE FROM outbox"), RT_OK);
  fake *f = rt_xcalloc(1, sizeof *f);
  f->rng = 1;
  f->sync = true;
  f->ch = (rt_channel){.name = "prio", .impl = f, .send = fake_send, .limits = {.in_flight = 1}};
  for (int c = 0; c < 4; c++) {
    char chat[16], idem[32];
    snprintf(chat, sizeof chat, "c%d", c);
    snprintf(idem, sizeof idem, "low:%d", c);
    rt_store_outbox_add_prio(s, 0, "prio", chat, idem, "text", "{\"text\":\"campaign\"}", 1, 0, NULL);
  }
  for (int c = 4; c < 8; c++) {
    char chat[16], idem[32];
    snprintf(chat, sizeof chat, "c%d", c);
    snprintf(idem, sizeof idem, "high:%d", c);
    rt_store_outbox_add_prio(s, 0, "prio", chat, idem, "text", "{\"text\":\"reply\"}", 0, 0, NULL);
  }
  /* a chat's own order beats priority: its low row goes before its high one */
  rt_store_outbox_add_prio(s, 0, "prio", "c0", "high:c0", "text", "{\"text\":\"r\"}", 0, 0, NULL);
  rt_deliver *d = deliver_start(&f->ch, 3);
  run_until_done(d);
  CHECK_INT(f->nlog, 9);
  for (int i = 0; i < 4 && i < f->nlog; i++) CHECK(atoi(f->log[i].chat + 1) >= 4);
  int seen_low_c0 = 0;
  for (int i = 0; i < f->nlog; i++) {
    if (strcmp(f->log[i].chat, "c0") != 0) continue;
    if (!seen_low_c0) CHECK(f->log[i].id < q("SELECT id FROM outbox WHERE idem_key = 'high:c0'"));
    seen_low_c0 = 1;
  }
  finish(d);
  free(f);
}

static void unsup_send(rt_channel *ch, const rt_out_msg *m, rt_send_done done, void *ud) {
  (void)ch; (void)m;
  done(ud, &(rt_send_result){.verdict = RT_SEND_DELIVERED});
}

T(typed_and_unsupported) {
  CHECK_INT(rt_store_exec(s, "DELETE FROM outbox"), RT_OK);
  rt_channel ch = {.name = "plain", .send = unsup_send};
  rt_store_outbox_add(s, 0, "plain", "a", "u1", "text", "{\"text\":\"x\",\"buttons\":[\"Да\"]}", 0, NULL);
  rt_store_outbox_add(s, 0, "plain", "b", "u2", "text", "not json", 0, NULL);
  rt_store_outbox_add(s, 0, "plain", "c", "u3", "text", "{\"text\":\"ok\"}", 0, NULL);
  rt_deliver *d = deliver_start(&ch, 0);
  run_until_done(d);
  CHECK_INT(q("SELECT count(*) FROM outbox WHERE idem_key = 'u1' AND fail_reason = 'unsupported'"), 1);
  CHECK_INT(q("SELECT count(*) FROM outbox WHERE idem_key = 'u2' AND fail_reason = 'other'"), 1);
  CHECK_INT(q("SELECT count(*) FROM outbox WHERE idem_key = 'u3' AND status = 'sent'"), 1);
  finish(d);
}

/* The text of a text-only row is read without jansson (deliver.c
 * text_only): each payload must give the text jansson reads, and one it
 * cannot read must fail as the tree says. */
static char got_text[4][64];
static int ngot;

static void text_send(rt_channel *ch, const rt_out_msg *m, rt_send_done done, void *ud) {
  (void)ch;
  if (ngot < 4) snprintf(got_text[ngot++], sizeof got_text[0], "%s", m->text);
  done(ud, &(rt_send_result){.verdict = RT_SEND_DELIVERED});
}

T(text_escapes) {
  CHECK_INT(rt_store_exec(s, "DELETE FROM outbox"), RT_OK);
  static const char *const pay[] = {
    "{\"text\":\"a\\\"b\\\\c\\/d\\n\\t\\u00e9\\u0416\\ud83d\\ude00 \xd0\x96\"}",
    "{\"text\":\"\"}",
    "{\"text\":\"x\\ud83d\"}",          /* a lone surrogate: the tree decides */
    "{\"text\":\"one\",\"about\":\"9\"}",
    "{\"text\":\"\xd0\x96\xff\"}",    /* a byte that is no UTF-8: the tree refuses it */
  };
  rt_channel ch = {.name = "esc", .send = text_send};
  for (int i = 0; i < 5; i++) {
    char chat[8], idem[16];
    snprintf(chat, sizeof chat, "e%d", i);
    snprintf(idem, sizeof idem, "esc%d", i);
    CHECK_INT(rt_store_outbox_add(s, 0, "esc", chat, idem, "text", pay[i], 0, NULL), RT_OK);
  }
  ngot = 0;
  rt_deliver *d = deliver_start(&ch, 0);
  run_until_done(d);
  /* jansson refuses the lone surrogate: that row fails as before */
  CHECK_INT(q("SELECT count(*) FROM outbox WHERE idem_key = 'esc2' AND status = 'failed'"), 1);
  CHECK_INT(q("SELECT count(*) FROM outbox WHERE idem_key = 'esc4' AND status = 'failed'"), 1);
  CHECK_INT(ngot, 3);
  int seen = 0;
  for (int i = 0; i < ngot; i++) {
    if (strcmp(got_text[i], "a\"b\\c/d\n\t\xc3\xa9\xd0\x96\xf0\x9f\x98\x80 \xd0\x96") == 0) seen |= 1;
    if (strcmp(got_text[i], "") == 0) seen |= 2;
    if (strcmp(got_text[i], "one") == 0) seen |= 4;
  }
  CHECK_INT(seen, 7);
  finish(d);
}

/* Rows committed while the deliveries run are handed over in memory, not
 * read back: still in order per chat, retried, paused, each once; a
 * rolled-back row is never sent. */
T(handed_over) {
  CHECK_INT(rt_store_exec(s, "DELETE FROM outbox"), RT_OK);
  fake *f = rt_xcalloc(1, sizeof *f);
  f->rng = 4242;
  f->ch = (rt_channel){.name = "mem", .impl = f, .send = fake_send,
                       .limits = {.per_sec = 200, .per_chat = 50, .in_flight = 4}};
  rt_deliver *d = deliver_start(&f->ch, 5);
  CHECK_INT(rt_store_begin(s), RT_OK);
  rt_store_outbox_add(s, 0, "mem", "c15", "rolled-back", "text", "{\"text\":\"no\"}", 0, NULL);
  rt_store_rollback(s);
  rt_deliver_committed(d);
  for (int k = 0; k < PER_CHAT; k++) {
    CHECK_INT(rt_store_begin(s), RT_OK);
    for (int c = 0; c < CHATS; c++) {
      char chat[16], idem[32];
      snprintf(chat, sizeof chat, "c%d", c);
      snprintf(idem, sizeof idem, "m:%d:%d", c, k);
      rt_store_outbox_add(s, 0, "mem", chat, idem, "text", "{\"text\":\"hi\"}", 0, NULL);
    }
    CHECK_INT(rt_store_commit(s), RT_OK);
    rt_deliver_committed(d);
    for (int i = 0; i < 3; i++) uv_run(&loop, UV_RUN_NOWAIT);
  }
  run_until_done(d);
  CHECK_INT(q("SELECT count(*) FROM outbox WHERE status = 'pending'"), 0);
  CHECK_INT(q("SELECT count(*) FROM outbox WHERE chat_id = 'c15'"), 0);
  CHECK_INT(f->overlap, 0);
  CHECK(rt_deliver_get_stats(d)->from_memory >= CHATS * PER_CHAT);
  CHECK(f->nlog > CHATS * PER_CHAT);   /* some were retried, from memory too */
  /* Written open under the channel's mark: most were settled by the mark
   * alone (no sent_at); a retried one was set pending and then marked
   * sent on its own; the mark is past every row, and none is counted as
   * still to send. */
  CHECK_INT(q("SELECT count(*) FROM outbox_mark WHERE channel = 'mem'"), 1);
  CHECK(q("SELECT count(*) FROM outbox WHERE status = 'sent' AND sent_at IS NULL") > CHATS);
  CHECK_INT(q("SELECT count(*) FROM outbox WHERE attempts > 0 AND status = 'sent' "
              "AND sent_at IS NULL"), 0);
  CHECK(q("SELECT count(*) FROM outbox WHERE attempts > 0 AND status = 'sent'") > 0);
  CHECK_INT(q("SELECT next FROM outbox_mark WHERE channel = 'mem'"),
            q("SELECT max(id) FROM outbox") + 1);
  rt_store_counts cn;
  CHECK_INT(rt_store_counts_get(s, &cn), RT_OK);
  CHECK_INT(cn.outbox_pending, 0);
  int64_t first = q("SELECT min(id) FROM outbox"), last = q("SELECT max(id) FROM outbox");
  for (int64_t id = first; id <= last && id < 1024; id++)
    CHECK(f->delivered[id] == (id % 13 == 0 ? 0 : 1));
  for (int c = 0; c < 16; c++) {
    char chat[16];
    snprintf(chat, sizeof chat, "c%d", c);
    int64_t prev = 0;
    for (int i = 0; i < f->nlog; i++) {
      if (strcmp(f->log[i].chat, chat) != 0) continue;
      CHECK(c < CHATS);
      CHECK(f->log[i].id >= prev);
      prev = f->log[i].id;
    }
  }
  finish(d);
  free(f);
}

static int64_t many_last[3000], many_sent, many_disorder;
static void many_send(rt_channel *ch, const rt_out_msg *m, rt_send_done done, void *ud) {
  (void)ch;
  int c = atoi(m->chat_id + 1);
  if (m->id <= many_last[c]) many_disorder++;
  many_last[c] = m->id;
  many_sent++;
  done(ud, &(rt_send_result){.verdict = RT_SEND_DELIVERED});
}

/* n rows to 3,000 chats of channel (ids "channel:i"), in one commit. */
static void queue_many(const char *channel, int n) {
  CHECK_INT(rt_store_begin(s), RT_OK);
  for (int i = 0; i < n; i++) {
    char chat[16], idem[32];
    snprintf(chat, sizeof chat, "c%d", i % 3000);
    snprintf(idem, sizeof idem, "%s:%d", channel, i);
    rt_store_outbox_add(s, 0, channel, chat, idem, "text", "{\"text\":\"x\"}", 0, NULL);
  }
  CHECK_INT(rt_store_commit(s), RT_OK);
}

/* More rows at once than memory keeps: read back from the outbox instead,
 * all of them in order; once the outbox is drained, handed over again. */
T(too_many_for_memory) {
  CHECK_INT(rt_store_exec(s, "DELETE FROM outbox"), RT_OK);
  rt_channel ch = {.name = "many", .send = many_send, .limits = {.in_flight = 64}};
  rt_deliver *d = deliver_start(&ch, 0);
  int n = 9000;
  queue_many("many", n);
  rt_deliver_committed(d);
  run_until_done(d);
  CHECK_INT(many_sent, n);
  CHECK_INT(many_disorder, 0);
  CHECK(rt_deliver_get_stats(d)->from_memory < (uint64_t)n);
  uint64_t mem = rt_deliver_get_stats(d)->from_memory;
  CHECK_INT(rt_store_begin(s), RT_OK);
  rt_store_outbox_add(s, 0, "many", "c1", "many:after", "text", "{\"text\":\"y\"}", 0, NULL);
  CHECK_INT(rt_store_commit(s), RT_OK);
  rt_deliver_committed(d);
  run_until_done(d);
  CHECK_INT(many_sent, n + 1);
  CHECK_INT(many_disorder, 0);
  CHECK_INT(rt_deliver_get_stats(d)->from_memory, mem + 1);
  /* The 9,000 were written open, then set pending when memory gave up on
   * them: each was marked sent on its own. The one after went under the
   * new mark. */
  CHECK_INT(q("SELECT count(*) FROM outbox WHERE idem_key != 'many:after' AND sent_at IS NULL"), 0);
  CHECK_INT(q("SELECT count(*) FROM outbox WHERE idem_key = 'many:after' AND status = 'sent' "
              "AND sent_at IS NULL"), 1);
  finish(d);
  /* a clean stop leaves no mark */
  CHECK_INT(q("SELECT count(*) FROM outbox_mark"), 0);
}

/* The store refuses the stop of a channel's mark (query_only: every
 * write fails) just when memory gives up on 9,000 open rows: no row is
 * sent while they are still open and in no index; once the store takes
 * writes again, the stop goes through and every row is sent, in order,
 * once. */
T(mark_stop_fails) {
  CHECK_INT(rt_store_exec(s, "DELETE FROM outbox"), RT_OK);
  memset(many_last, 0, sizeof many_last);
  many_sent = many_disorder = 0;
  rt_channel ch = {.name = "stuck", .send = many_send, .limits = {.in_flight = 64}};
  rt_deliver *d = deliver_start(&ch, 0);
  CHECK_INT(q("SELECT count(*) FROM outbox_mark WHERE channel = 'stuck'"), 1);
  int n = 9000;
  queue_many("stuck", n);
  CHECK_INT(rt_store_exec(s, "PRAGMA query_only = 1"), RT_OK);
  rt_deliver_committed(d);
  for (int i = 0; i < 20; i++) uv_run(&loop, UV_RUN_NOWAIT);
  CHECK_INT(many_sent, 0);
  CHECK_INT(rt_store_exec(s, "PRAGMA query_only = 0"), RT_OK);
  CHECK_INT(q("SELECT count(*) FROM outbox WHERE status = 'sent' AND sent_at IS NULL"), n);
  run_until_done(d);
  CHECK_INT(many_sent, n);
  CHECK_INT(many_disorder, 0);
  CHECK_INT(q("SELECT count(*) FROM outbox WHERE sent_at IS NULL"), 0);
  CHECK_INT(q("SELECT count(*) FROM outbox_mark WHERE channel = 'stuck'"), 1);   /* synced again */
  finish(d);
}

/* A channel that answers when the test says. */
static rt_send_done held_done[8];
static void *held_ud[8];
static int64_t held_id[8];
static int nheld;

static void hold_send(rt_channel *ch, const rt_out_msg *m, rt_send_done done, void *ud) {
  (void)ch;
  if (nheld < 8) {
    held_id[nheld] = m->id;
    held_done[nheld] = done;
    held_ud[nheld++] = ud;
  }
}

static void held_answer(int i) {
  held_done[i](held_ud[i], &(rt_send_result){.verdict = RT_SEND_DELIVERED});
  for (int k = 0; k < 5; k++) uv_run(&loop, UV_RUN_NOWAIT);   /* the results' commit */
}

static int64_t rec_id[16];
static int nrec;

static void rec_send(rt_channel *ch, const rt_out_msg *m, rt_send_done done, void *ud) {
  (void)ch;
  if (nrec < 16) rec_id[nrec++] = m->id;
  done(ud, &(rt_send_result){.verdict = RT_SEND_DELIVERED});
}

/* Open rows (written 'sent' under the channel's mark) in flight when the
 * process is killed: the mark stops at the oldest row not answered; a row
 * answered before an older one gets its own sent_at; the figures and the
 * prune take the open rows for what they are; the next start sends again
 * exactly the rows that were not answered, and a clean stop sets them
 * pending. */
T(open_rows_killed) {
  CHECK_INT(rt_store_exec(s, "DELETE FROM outbox"), RT_OK);
  rt_channel ch = {.name = "held", .send = hold_send};
  nheld = 0;
  rt_deliver *d = deliver_start(&ch, 0);
  CHECK_INT(q("SELECT count(*) FROM outbox_mark WHERE channel = 'held'"), 1);
  CHECK_INT(rt_store_begin(s), RT_OK);
  for (int i = 0; i < 5; i++) {
    char chat[8], idem[16];
    snprintf(chat, sizeof chat, "h%d", i);
    snprintf(idem, sizeof idem, "held%d", i);
    CHECK_INT(rt_store_outbox_add(s, 0, "held", chat, idem, "text", "{\"text\":\"x\"}", 0, NULL),
              RT_OK);
  }
  CHECK_INT(rt_store_commit(s), RT_OK);
  rt_deliver_committed(d);
  for (int k = 0; k < 3; k++) uv_run(&loop, UV_RUN_NOWAIT);
  CHECK_INT(nheld, 5);
  if (nheld != 5) return;
  CHECK_INT(q("SELECT count(*) FROM outbox WHERE status = 'sent' AND sent_at IS NULL"), 5);
  rt_store_counts cn;
  CHECK_INT(rt_store_counts_get(s, &cn), RT_OK);
  CHECK_INT(cn.outbox_pending, 5);
  rt_store_prune(s, INT64_MAX, 100);
  CHECK_INT(q("SELECT count(*) FROM outbox"), 5);
  /* the third answered first: the mark cannot pass the first two */
  held_answer(2);
  CHECK_INT(q("SELECT next FROM outbox_mark WHERE channel = 'held'"), held_id[0]);
  char sql[400];
  snprintf(sql, sizeof sql, "SELECT count(*) FROM outbox WHERE id = %lld AND sent_at IS NOT NULL",
           (long long)held_id[2]);
  CHECK_INT(q(sql), 1);
  /* the first answered: the mark moves to the second */
  held_answer(0);
  CHECK_INT(q("SELECT next FROM outbox_mark WHERE channel = 'held'"), held_id[1]);
  snprintf(sql, sizeof sql, "SELECT count(*) FROM outbox WHERE id = %lld AND sent_at IS NULL",
           (long long)held_id[0]);
  CHECK_INT(q(sql), 1);
  CHECK_INT(rt_store_counts_get(s, &cn), RT_OK);
  CHECK_INT(cn.outbox_pending, 3);
  /* kill -9 here: the store as committed, copied */
  char copy[300];
  snprintf(copy, sizeof copy, "/tmp/test_deliver_killed_%d.db", (int)getpid());
  tstore_unlink(copy);
  snprintf(sql, sizeof sql, "VACUUM INTO '%s'", copy);
  CHECK_INT(rt_store_exec(s, sql), RT_OK);
  rt_store *live = s;
  s = tstore_open(copy);
  rt_channel again = {.name = "held", .send = rec_send};
  nrec = 0;
  rt_deliver *d2 = deliver_start(&again, 0);
  run_until_done(d2);
  CHECK_INT(nrec, 3);
  if (nrec == 3) {
    CHECK_INT(rec_id[0], held_id[1]);
    CHECK_INT(rec_id[1], held_id[3]);
    CHECK_INT(rec_id[2], held_id[4]);
  }
  CHECK_INT(q("SELECT count(*) FROM outbox WHERE status != 'sent'"), 0);
  CHECK_INT(rt_store_counts_get(s, &cn), RT_OK);
  CHECK_INT(cn.outbox_pending, 0);
  finish(d2);
  rt_store_close(s);
  tstore_unlink(copy);
  s = live;
  /* A clean stop with three in flight: they are pending, for the next
   * start to send. */
  finish(d);
  CHECK_INT(q("SELECT count(*) FROM outbox_mark"), 0);
  CHECK_INT(q("SELECT count(*) FROM outbox WHERE status = 'pending'"), 3);
  for (int i = 0; i < 5; i++)
    if (i != 0 && i != 2) held_done[i](held_ud[i], &(rt_send_result){.verdict = RT_SEND_DELIVERED});
  uv_run(&loop, UV_RUN_NOWAIT);
}

/* A channel that keeps a history gets no mark: its reader takes 'sent'
 * for sent, so a row is 'pending' until it is. */
T(history_no_mark) {
  CHECK_INT(rt_store_exec(s, "DELETE FROM outbox"), RT_OK);
  rt_store_keep_history(s, "hist");
  rt_channel ch = {.name = "hist", .send = hold_send, .caps = RT_CH_HISTORY};
  nheld = 0;
  rt_deliver *d = deliver_start(&ch, 0);
  CHECK_INT(q("SELECT count(*) FROM outbox_mark"), 0);
  CHECK_INT(rt_store_begin(s), RT_OK);
  CHECK_INT(rt_store_outbox_add(s, 0, "hist", "w1", "hist1", "text", "{\"text\":\"x\"}", 0, NULL),
            RT_OK);
  CHECK_INT(rt_store_commit(s), RT_OK);
  rt_deliver_committed(d);
  for (int k = 0; k < 3; k++) uv_run(&loop, UV_RUN_NOWAIT);
  CHECK_INT(nheld, 1);
  CHECK_INT(q("SELECT count(*) FROM outbox WHERE status = 'pending'"), 1);
  if (nheld == 1) held_answer(0);
  CHECK_INT(q("SELECT count(*) FROM outbox WHERE status = 'sent' AND sent_at IS NOT NULL"), 1);
  finish(d);
}

int main(void) {
  char path[256];
  s = tstore_fresh(path, sizeof path, "test_deliver");
  uv_loop_init(&loop);
  T_RUN(order_rates_pause);
  T_RUN(chat_burst);
  T_RUN(priority_first);
  T_RUN(typed_and_unsupported);
  T_RUN(text_escapes);
  T_RUN(handed_over);
  T_RUN(too_many_for_memory);
  T_RUN(mark_stop_fails);
  T_RUN(open_rows_killed);
  T_RUN(history_no_mark);
  rt_store_close(s);
  uv_loop_close(&loop);
  tstore_unlink(path);
  return T_DONE();
}
