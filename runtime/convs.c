/* convs.c -- the conversation cache (see convs.h). */
#include "convs.h"
#include "map.h"
#include <stdlib.h>
#include <string.h>

typedef struct entry {
  char *key;
  rt_conv_row row;
  struct entry *prev, *next;   /* LRU: head is the most recent */
} entry;

struct rt_convs {
  rt_store *store;
  size_t max, dropped;
  rt_map map;                  /* key -> entry */
  entry *head, *tail;
  size_t n;
  rt_convs_stats st;
};

rt_convs *rt_convs_new(rt_store *s, size_t max) {
  rt_convs *cs = rt_xcalloc(1, sizeof *cs);
  cs->store = s;
  cs->max = max;
  rt_map_init(&cs->map);
  return cs;
}

static char *key_of(const char *channel, const char *chat_id) {
  return rt_xjoin(channel, '\x1f', chat_id);
}

static void unlink_entry(rt_convs *cs, entry *en) {
  if (en->prev) en->prev->next = en->next;
  else cs->head = en->next;
  if (en->next) en->next->prev = en->prev;
  else cs->tail = en->prev;
  en->prev = en->next = NULL;
}

static void link_head(rt_convs *cs, entry *en) {
  en->prev = NULL;
  en->next = cs->head;
  if (cs->head) cs->head->prev = en;
  cs->head = en;
  if (!cs->tail) cs->tail = en;
}

static void drop(rt_convs *cs, entry *en) {
  unlink_entry(cs, en);
  rt_map_del(&cs->map, en->key);
  rt_conv_row_clear(&en->row);
  free(en->key);
  free(en);
  cs->n--;
  cs->dropped++;
}

void rt_convs_clear(rt_convs *cs) {
  while (cs->head) drop(cs, cs->head);
}

void rt_convs_free(rt_convs *cs) {
  if (!cs) return;
  rt_convs_clear(cs);
  rt_map_free(&cs->map);
  free(cs);
}

int rt_convs_get(rt_convs *cs, const char *channel, const char *chat_id, int64_t now,
                 rt_conv_row *out) {
  char *key = key_of(channel, chat_id);
  entry *en = rt_map_get(&cs->map, key);
  free(key);
  if (en) {
    /* Taken out, not copied: a chat runs one step at a time, and its row
     * comes back with that step's commit (or is read again after a
     * rollback). */
    cs->st.hits++;
    *out = en->row;
    memset(&en->row, 0, sizeof en->row);
    unlink_entry(cs, en);
    rt_map_del(&cs->map, en->key);
    free(en->key);
    free(en);
    cs->n--;
    return RT_OK;
  }
  cs->st.misses++;
  return rt_store_conv_get(cs->store, channel, chat_id, true, now, out);
}

void rt_convs_put(rt_convs *cs, rt_conv_row *r) {
  if (!cs->max || !r->channel || !r->chat_id) {
    rt_conv_row_clear(r);
    return;
  }
  char *key = key_of(r->channel, r->chat_id);
  entry *en = rt_map_get(&cs->map, key);
  if (en) {
    free(key);
    rt_conv_row_clear(&en->row);
    unlink_entry(cs, en);
  } else {
    en = rt_xcalloc(1, sizeof *en);
    en->key = key;
    rt_map_set(&cs->map, key, en);
    cs->n++;
  }
  en->row = *r;
  memset(r, 0, sizeof *r);
  link_head(cs, en);
  while (cs->n > cs->max) drop(cs, cs->tail);
}

void rt_convs_forget(rt_convs *cs, const char *channel, const char *chat_id) {
  char *key = key_of(channel, chat_id);
  entry *en = rt_map_get(&cs->map, key);
  free(key);
  if (en) drop(cs, en);
}

size_t rt_convs_count(const rt_convs *cs) { return cs->n; }

size_t rt_convs_take_dropped(rt_convs *cs) {
  size_t n = cs->dropped;
  cs->dropped = 0;
  return n;
}

const rt_convs_stats *rt_convs_get_stats(const rt_convs *cs) { return &cs->st; }
