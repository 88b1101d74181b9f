/* convq.c -- per-chat FIFOs and the ready list (see convq.h). */
#include "convq.h"
#include <stdlib.h>
#include <string.h>

void rt_convq_init(rt_convq *q) {
  memset(q, 0, sizeof *q);
  rt_map_init(&q->chats);
}

static void chat_free(rt_convq_chat *c) {
  for (size_t i = c->head; i < c->len; i++) free(c->evs[i].payload);
  free(c->evs);
  free(c);   /* key, channel and chat_id are in the same allocation */
}

void rt_convq_free(rt_convq *q) {
  size_t it = 0;
  const char *k;
  void *v;
  while (rt_map_next(&q->chats, &it, &k, &v)) chat_free(v);
  rt_map_free(&q->chats);
  q->ready_head = q->ready_tail = NULL;
}

/* The key is the whole channel and chat id, however long: a cut key would
 * put two chats in one queue. */
static rt_convq_chat *chat_for(rt_convq *q, const char *channel, const char *chat_id) {
  char *key = rt_xjoin(channel, '\x1f', chat_id);
  rt_convq_chat *c = rt_map_get(&q->chats, key);
  if (!c) {
    /* One allocation for the chat and its three strings: a campaign's
     * wake-ups queue thousands of chats at once. */
    size_t nk = strlen(key) + 1, nch = strlen(channel) + 1, nid = strlen(chat_id) + 1;
    c = rt_xcalloc(1, sizeof *c + nk + nch + nid);
    c->key = memcpy((char *)(c + 1), key, nk);
    c->channel = memcpy(c->key + nk, channel, nch);
    c->chat_id = memcpy(c->channel + nch, chat_id, nid);
    rt_map_set(&q->chats, key, c);
  }
  free(key);
  return c;
}

static void make_ready(rt_convq *q, rt_convq_chat *c) {
  if (c->in_ready || c->running || c->head == c->len) return;
  c->in_ready = true;
  c->next_ready = NULL;
  if (q->ready_tail) q->ready_tail->next_ready = c;
  else q->ready_head = c;
  q->ready_tail = c;
}

/* Drops a chat's queue once it has nothing left. */
static void maybe_drop(rt_convq *q, rt_convq_chat *c) {
  if (c->running || c->in_ready || c->head < c->len) return;
  rt_map_del(&q->chats, c->key);
  chat_free(c);
}

rt_convq_chat *rt_convq_push(rt_convq *q, const char *channel, const char *chat_id, int64_t id,
                             char *payload, bool wake, bool isolate) {
  rt_convq_chat *c = chat_for(q, channel, chat_id);
  if (c->len == c->cap) {
    if (c->head > 0) {
      memmove(c->evs, c->evs + c->head, (c->len - c->head) * sizeof *c->evs);
      c->len -= c->head;
      c->head = 0;
    }
    if (c->len == c->cap) {
      /* Most chats hold one event at a time. */
      c->cap = c->cap ? c->cap * 2 : 1;
      c->evs = rt_xrealloc(c->evs, c->cap * sizeof *c->evs);
    }
  }
  c->evs[c->len++] = (rt_convq_ev){.id = id, .payload = payload, .wake = wake, .isolate = isolate};
  if (wake) c->nwake++;
  make_ready(q, c);
  return c;
}

rt_convq_chat *rt_convq_get(rt_convq *q, const char *key) { return rt_map_get(&q->chats, key); }

bool rt_convq_idle(rt_convq *q, const char *channel, const char *chat_id) {
  char *key = rt_xjoin(channel, '\x1f', chat_id);
  rt_convq_chat *c = rt_map_get(&q->chats, key);
  free(key);
  return !c || (!c->running && c->head == c->len);
}

rt_convq_chat *rt_convq_push_running(rt_convq *q, const char *channel, const char *chat_id,
                                     int64_t id, char *payload, bool wake) {
  rt_convq_chat *c = chat_for(q, channel, chat_id);
  if (c->running || c->head < c->len) return NULL;
  /* Not ready-listed: it is started now. */
  c->in_ready = true;
  rt_convq_push(q, channel, chat_id, id, payload, wake, false);
  c->in_ready = false;
  c->evs[c->len - 1].fresh = true;
  return c;
}

bool rt_convq_any_ready(const rt_convq *q) { return q->ready_head != NULL; }

size_t rt_convq_chats(const rt_convq *q) { return q->chats.len; }

rt_convq_chat *rt_convq_pop_ready(rt_convq *q) {
  rt_convq_chat *c = q->ready_head;
  if (!c) return NULL;
  q->ready_head = c->next_ready;
  if (!q->ready_head) q->ready_tail = NULL;
  c->in_ready = false;
  c->next_ready = NULL;
  return c;
}

void rt_convq_skip(rt_convq *q, rt_convq_chat *c) {
  if (!c->running) maybe_drop(q, c);
}

rt_convq_ev *rt_convq_head(rt_convq_chat *c) { return c->head < c->len ? &c->evs[c->head] : NULL; }

rt_convq_ev rt_convq_start(rt_convq_chat *c) {
  rt_convq_ev ev = c->evs[c->head];
  c->evs[c->head].payload = NULL;
  c->running = true;
  return ev;
}

void rt_convq_done(rt_convq *q, rt_convq_chat *c) {
  if (c->evs[c->head].wake) c->nwake--;
  c->head++;
  c->running = false;
  make_ready(q, c);
  maybe_drop(q, c);
}

void rt_convq_retry(rt_convq *q, rt_convq_chat *c, char *payload) {
  c->evs[c->head].payload = payload;
  c->running = false;
  make_ready(q, c);
}

void rt_convq_abort(rt_convq *q, rt_convq_chat *c) {
  free(c->evs[c->head].payload);
  c->evs[c->head].payload = NULL;
  rt_convq_done(q, c);
}
