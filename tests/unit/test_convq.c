/* test_convq.c -- per-chat FIFOs and the ready list. */
#include "convq.h"
#include "t.h"
#include <stdlib.h>

static char *dup(const char *s) { return rt_xstrdup(s); }

T(per_chat_fifo_and_ready_order) {
  rt_convq q;
  rt_convq_init(&q);
  rt_convq_push(&q, "console", "a", 1, dup("a1"), false, false);
  rt_convq_push(&q, "console", "b", 2, dup("b1"), false, false);
  rt_convq_push(&q, "console", "a", 3, dup("a2"), true, false);
  /* Chats are ready in the order they first had work; a chat is in the
   * list once however many events it has. */
  rt_convq_chat *c = rt_convq_pop_ready(&q);
  CHECK_STR(c->chat_id, "a");
  CHECK_INT(c->nwake, 1);
  rt_convq_ev ev = rt_convq_start(c);
  CHECK_INT(ev.id, 1);
  CHECK_STR(ev.payload, "a1");
  free(ev.payload);
  rt_convq_chat *d = rt_convq_pop_ready(&q);
  CHECK_STR(d->chat_id, "b");
  CHECK(rt_convq_pop_ready(&q) == NULL);
  /* While a runs, a new event of a does not make it ready again. */
  rt_convq_push(&q, "console", "a", 4, dup("a3"), false, false);
  CHECK(!rt_convq_any_ready(&q));
  /* a's step is committed: its next event is ready, behind nothing. */
  rt_convq_done(&q, c);
  CHECK(rt_convq_pop_ready(&q) == c);
  ev = rt_convq_start(c);
  CHECK_INT(ev.id, 3);
  CHECK(ev.wake);
  free(ev.payload);
  rt_convq_done(&q, c);
  CHECK_INT(c->nwake, 0);
  CHECK(rt_convq_pop_ready(&q) == c);
  ev = rt_convq_start(c);
  CHECK_INT(ev.id, 4);
  free(ev.payload);
  rt_convq_free(&q);
}

T(retry_keeps_the_head_and_its_payload) {
  rt_convq q;
  rt_convq_init(&q);
  rt_convq_chat *c = rt_convq_push(&q, "tg", "1", 10, dup("x"), false, false);
  rt_convq_push(&q, "tg", "1", 11, dup("y"), false, false);
  CHECK(rt_convq_pop_ready(&q) == c);
  rt_convq_ev ev = rt_convq_start(c);
  CHECK(rt_convq_head(c)->payload == NULL);
  /* The commit failed: the same event runs again, before the next one. */
  rt_convq_retry(&q, c, ev.payload);
  CHECK(rt_convq_pop_ready(&q) == c);
  ev = rt_convq_start(c);
  CHECK_INT(ev.id, 10);
  CHECK_STR(ev.payload, "x");
  free(ev.payload);
  rt_convq_free(&q);
}

T(idle_chats_are_dropped) {
  rt_convq q;
  rt_convq_init(&q);
  rt_convq_chat *c = rt_convq_push(&q, "tg", "1", 1, NULL, false, false);
  CHECK(rt_convq_get(&q, "tg\x1f" "1") == c);
  CHECK(rt_convq_pop_ready(&q) == c);
  rt_convq_ev ev = rt_convq_start(c);
  free(ev.payload);
  rt_convq_done(&q, c);
  CHECK(rt_convq_get(&q, "tg\x1f" "1") == NULL);
  CHECK_INT(q.chats.len, 0);
  rt_convq_free(&q);
}

T(long_ids_with_one_prefix_are_two_chats) {
  rt_convq q;
  rt_convq_init(&q);
  char a[600], b[600];
  memset(a, 'x', sizeof a - 1);
  a[sizeof a - 1] = 0;
  memcpy(b, a, sizeof b);
  b[sizeof b - 2] = 'y';
  rt_convq_chat *ca = rt_convq_push(&q, "tg", a, 1, NULL, false, false);
  rt_convq_chat *cb = rt_convq_push(&q, "tg", b, 2, NULL, false, false);
  CHECK(ca != cb);
  /* A channel id that contains the separator cannot collide with another
   * channel's: the channel names never contain it. */
  rt_convq_chat *cc = rt_convq_push(&q, "t", "g\x1fzz", 3, NULL, false, false);
  CHECK(cc != ca && cc != cb);
  rt_convq_free(&q);
}

T(many_events_grow_and_compact) {
  rt_convq q;
  rt_convq_init(&q);
  rt_convq_chat *c = NULL;
  int64_t next = 0;
  for (int64_t i = 0; i < 1000; i++) {
    c = rt_convq_push(&q, "tg", "1", i, NULL, i % 3 == 0, false);
    if (i % 2 == 1) {   /* run one for every two pushed: head moves on */
      rt_convq_pop_ready(&q);
      rt_convq_ev ev = rt_convq_start(c);
      CHECK_INT(ev.id, next);
      next++;
      rt_convq_done(&q, c);
    }
  }
  size_t wakes = 0;
  for (size_t i = c->head; i < c->len; i++) wakes += c->evs[i].wake;
  CHECK_INT(c->nwake, wakes);
  while ((c = rt_convq_pop_ready(&q))) {
    rt_convq_ev ev = rt_convq_start(c);
    CHECK_INT(ev.id, next);
    next++;
    rt_convq_done(&q, c);
  }
  CHECK_INT(next, 1000);
  rt_convq_free(&q);
}

int main(void) {
  T_RUN(per_chat_fifo_and_ready_order);
  T_RUN(retry_keeps_the_head_and_its_payload);
  T_RUN(idle_chats_are_dropped);
  T_RUN(long_ids_with_one_prefix_are_two_chats);
  T_RUN(many_events_grow_and_compact);
  return T_DONE();
}
