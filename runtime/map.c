/* map.c -- see map.h.
 *
 * Each slot keeps its key's hash beside the key: a probe compares hashes
 * and reads a key's text only when they are equal. The keys are strings
 * allocated one by one, so each one read is likely a cache miss; with a
 * table three quarters full a lookup probed a few slots, and strcmp on
 * those cold strings was among the hottest functions of the pump
 * (tests/bench/bench_core under perf). */
#include "map.h"
#include <stdlib.h>
#include <string.h>

static char tomb;  /* address marks a deleted slot */

static uint64_t hash(const char *s) {
  uint64_t h = 1469598103934665603ULL;   /* FNV-1a */
  while (*s) h = (h ^ (unsigned char)*s++) * 1099511628211ULL;
  return h;
}

void rt_map_init(rt_map *m) { memset(m, 0, sizeof *m); }

void rt_map_free(rt_map *m) {
  for (size_t i = 0; i < m->cap; i++)
    if (m->slots[i].key && m->slots[i].key != &tomb) free(m->slots[i].key);
  free(m->slots);
  memset(m, 0, sizeof *m);
}

static size_t find(const rt_map *m, const char *key, uint64_t h) {
  size_t mask = m->cap - 1, i = h & mask;
  for (const rt_map_slot *s; (s = &m->slots[i])->key; i = (i + 1) & mask)
    if (s->hash == h && s->key != &tomb && strcmp(s->key, key) == 0) return i;
  return (size_t)-1;
}

void *rt_map_get(const rt_map *m, const char *key) {
  if (!m->cap) return NULL;
  size_t i = find(m, key, hash(key));
  return i == (size_t)-1 ? NULL : m->slots[i].val;
}

static void grow(rt_map *m) {
  size_t ocap = m->cap;
  rt_map_slot *old = m->slots;
  /* Sized for the live keys only: a table full of deleted slots (chats
   * that came and went) is rebuilt at its size, or smaller, not doubled. */
  m->cap = 16;
  while (m->len * 2 >= m->cap) m->cap *= 2;
  m->slots = rt_xcalloc(m->cap, sizeof *m->slots);
  m->used = m->len;
  for (size_t i = 0; i < ocap; i++) {
    if (!old[i].key || old[i].key == &tomb) continue;
    size_t j = old[i].hash & (m->cap - 1);
    while (m->slots[j].key) j = (j + 1) & (m->cap - 1);
    m->slots[j] = old[i];
  }
  free(old);
}

void rt_map_set(rt_map *m, const char *key, void *val) {
  uint64_t h = hash(key);
  if (m->cap) {
    size_t i = find(m, key, h);
    if (i != (size_t)-1) { m->slots[i].val = val; return; }
  }
  if ((m->used + 1) * 4 >= m->cap * 3) grow(m);
  size_t i = h & (m->cap - 1);
  while (m->slots[i].key && m->slots[i].key != &tomb) i = (i + 1) & (m->cap - 1);
  if (!m->slots[i].key) m->used++;
  m->slots[i] = (rt_map_slot){.hash = h, .key = rt_xstrdup(key), .val = val};
  m->len++;
}

void *rt_map_del(rt_map *m, const char *key) {
  if (!m->cap) return NULL;
  size_t i = find(m, key, hash(key));
  if (i == (size_t)-1) return NULL;
  void *v = m->slots[i].val;
  free(m->slots[i].key);
  m->slots[i] = (rt_map_slot){.key = &tomb};
  m->len--;
  return v;
}

bool rt_map_next(const rt_map *m, size_t *it, const char **key, void **val) {
  while (*it < m->cap) {
    size_t i = (*it)++;
    if (m->slots[i].key && m->slots[i].key != &tomb) {
      *key = m->slots[i].key;
      *val = m->slots[i].val;
      return true;
    }
  }
  return false;
}
