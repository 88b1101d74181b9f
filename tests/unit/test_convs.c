/* test_convs.c -- the conversation cache: a row comes back as it was put
 * (every field, NULL and empty kept apart), hits and misses, the LRU bound,
 * forget and clear, and keys that share a prefix. */
#include "convs.h"
#include "t.h"
#include "tstore.h"
#include <stdlib.h>
#include <unistd.h>

static char path[256];
static rt_store *fresh(void) { return tstore_fresh(path, sizeof path, "test_convs"); }

static char *dup_or_null(const char *s) { return s ? rt_xstrdup(s) : NULL; }

/* A row as a step leaves it; the strings owned, as rt_convs_put wants. */
static rt_conv_row row(int64_t id, const char *channel, const char *chat, const char *state,
                       const char *owner) {
  return (rt_conv_row){
    .id = id, .channel = dup_or_null(channel), .chat_id = dup_or_null(chat),
    .user_id = NULL, .phone = rt_xstrdup("+79120000001"), .flow = rt_xstrdup("lead"),
    .step = rt_xstrdup(""), .state = dup_or_null(state), .mode = rt_xstrdup("manager"),
    .last_error = NULL, .owner = dup_or_null(owner), .owner_name = rt_xstrdup("Анна"),
    .rev = id * 10, .created_at = 1700000000000 + id, .updated_at = 1700000000500 + id,
    .last_in_at = id % 2 ? 0 : 1700000000900 + id,
  };
}

T(a_row_comes_back_whole) {
  rt_store *s = fresh();
  rt_convs *cs = rt_convs_new(s, 10);
  rt_conv_row r = row(7, "telegram", "555", "{\"car\":\"Лада\"}", NULL);
  rt_convs_put(cs, &r);
  CHECK(r.channel == NULL);   /* moved in */
  CHECK_INT(rt_convs_count(cs), 1);
  rt_store_begin(s);
  rt_conv_row g;
  CHECK(rt_convs_get(cs, "telegram", "555", 0, &g) == RT_OK);
  CHECK_INT(g.id, 7);
  CHECK_INT(g.rev, 70);
  CHECK_INT(g.created_at, 1700000000007);
  CHECK_INT(g.updated_at, 1700000000507);
  CHECK_INT(g.last_in_at, 0);
  CHECK_STR(g.channel, "telegram");
  CHECK_STR(g.chat_id, "555");
  CHECK(g.user_id == NULL);
  CHECK_STR(g.phone, "+79120000001");
  CHECK_STR(g.flow, "lead");
  CHECK_STR(g.step, "");            /* empty, not NULL */
  CHECK_STR(g.state, "{\"car\":\"Лада\"}");
  CHECK_STR(g.mode, "manager");
  CHECK(g.last_error == NULL);
  CHECK(g.owner == NULL);
  CHECK_STR(g.owner_name, "Анна");
  /* Taken out: the next read is a miss, which reads (here creates) the
   * store's row. */
  CHECK_INT(rt_convs_count(cs), 0);
  CHECK_INT(rt_convs_get_stats(cs)->hits, 1);
  rt_conv_row m;
  CHECK(rt_convs_get(cs, "telegram", "555", 0, &m) == RT_OK);
  CHECK_INT(rt_convs_get_stats(cs)->misses, 1);
  CHECK_STR(m.chat_id, "555");
  CHECK(m.id != 7);
  rt_store_rollback(s);
  rt_conv_row_clear(&g);
  rt_conv_row_clear(&m);
  rt_convs_free(cs);
  rt_store_close(s);
}

T(the_least_recent_go_first) {
  rt_store *s = fresh();
  rt_convs *cs = rt_convs_new(s, 3);
  char chat[16];
  for (int i = 1; i <= 5; i++) {
    snprintf(chat, sizeof chat, "c%d", i);
    rt_conv_row r = row(i, "console", chat, "{}", "7");
    rt_convs_put(cs, &r);
  }
  CHECK_INT(rt_convs_count(cs), 3);
  CHECK_INT(rt_convs_take_dropped(cs), 2);
  CHECK_INT(rt_convs_take_dropped(cs), 0);
  /* c3 put again (a newer revision): it replaces the old row and becomes
   * the most recent, so c4 goes next. */
  rt_conv_row r = row(30, "console", "c3", "{\"n\":2}", NULL);
  rt_convs_put(cs, &r);
  CHECK_INT(rt_convs_count(cs), 3);
  r = row(6, "console", "c6", "{}", NULL);
  rt_convs_put(cs, &r);
  CHECK_INT(rt_convs_count(cs), 3);
  rt_store_begin(s);
  rt_conv_row g;
  CHECK(rt_convs_get(cs, "console", "c3", 0, &g) == RT_OK);
  CHECK_INT(g.id, 30);
  CHECK_STR(g.state, "{\"n\":2}");
  CHECK(g.owner == NULL);
  rt_conv_row_clear(&g);
  CHECK(rt_convs_get(cs, "console", "c5", 0, &g) == RT_OK);
  CHECK_INT(g.id, 5);
  CHECK_STR(g.owner, "7");
  rt_conv_row_clear(&g);
  uint64_t hits = rt_convs_get_stats(cs)->hits;
  CHECK(rt_convs_get(cs, "console", "c4", 0, &g) == RT_OK);   /* dropped: read from the store */
  CHECK_INT(rt_convs_get_stats(cs)->hits, hits);
  rt_conv_row_clear(&g);
  rt_store_rollback(s);
  rt_convs_free(cs);
  rt_store_close(s);
}

T(forget_clear_and_keys_with_one_prefix) {
  rt_store *s = fresh();
  rt_convs *cs = rt_convs_new(s, 1000);
  /* The key is the whole channel and chat: "a" + "bc" is not "ab" + "c". */
  rt_conv_row r = row(1, "a", "bc", "{}", NULL);
  rt_convs_put(cs, &r);
  r = row(2, "ab", "c", "{}", NULL);
  rt_convs_put(cs, &r);
  CHECK_INT(rt_convs_count(cs), 2);
  rt_store_begin(s);
  rt_conv_row g;
  CHECK(rt_convs_get(cs, "ab", "c", 0, &g) == RT_OK);
  CHECK_INT(g.id, 2);
  rt_conv_row_clear(&g);
  rt_convs_forget(cs, "a", "bc");
  CHECK_INT(rt_convs_count(cs), 0);
  /* Enough rows to grow the table several times, all found again. */
  char chat[16];
  for (int i = 0; i < 700; i++) {
    snprintf(chat, sizeof chat, "%d", i);
    r = row(100 + i, "telegram", chat, "{}", NULL);
    rt_convs_put(cs, &r);
  }
  CHECK_INT(rt_convs_count(cs), 700);
  int found = 0;
  for (int i = 0; i < 700; i += 7) {
    snprintf(chat, sizeof chat, "%d", i);
    if (rt_convs_get(cs, "telegram", chat, 0, &g) == RT_OK && g.id == 100 + i) found++;
    rt_conv_row_clear(&g);
  }
  CHECK_INT(found, 100);
  rt_convs_clear(cs);
  CHECK_INT(rt_convs_count(cs), 0);
  /* Usable after a clear. */
  r = row(5, "console", "x", "{}", NULL);
  rt_convs_put(cs, &r);
  CHECK(rt_convs_get(cs, "console", "x", 0, &g) == RT_OK);
  CHECK_INT(g.id, 5);
  rt_conv_row_clear(&g);
  rt_store_rollback(s);
  /* A cache of size 0 keeps nothing. */
  rt_convs *none = rt_convs_new(s, 0);
  r = row(9, "console", "y", "{}", NULL);
  rt_convs_put(none, &r);
  CHECK_INT(rt_convs_count(none), 0);
  rt_convs_free(none);
  rt_convs_free(cs);
  rt_store_close(s);
}

int main(void) {
  T_RUN(a_row_comes_back_whole);
  T_RUN(the_least_recent_go_first);
  T_RUN(forget_clear_and_keys_with_one_prefix);
  tstore_unlink(path);
  return T_DONE();
}
