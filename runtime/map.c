/* map.c -- see map.h. */
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
    if (m->keys[i] && m->keys[i] != &tomb) free(m->keys[i]);
  free(m->keys);
  free(m->vals);
  memset(m, 0, sizeof *m);
}

static size_t find(const rt_map *m, const char *key) {
  size_t mask = m->cap - 1, i = hash(key) & mask;
  while (m->keys[i]) {
    if (m->keys[i] != &tomb && strcmp(m->keys[i], key) == 0) return i;
    i = (i + 1) & mask;
  }
  return (size_t)-1;
}

void *rt_map_get(const rt_map *m, const char *key) {
  if (!m->cap) return NULL;
  size_t i = find(m, key);
  return i == (size_t)-1 ? NULL : m->vals[i];
}

static void grow(rt_map *m) {
  size_t ocap = m->cap;
  char **okeys = m->keys;
  void **ovals = m->vals;
  m->cap = ocap ? ocap * 2 : 16;
  while (m->len * 2 >= m->cap) m->cap *= 2;
  m->keys = rt_xcalloc(m->cap, sizeof *m->keys);
  m->vals = rt_xcalloc(m->cap, sizeof *m->vals);
  m->used = m->len;
  for (size_t i = 0; i < ocap; i++) {
    if (!okeys[i] || okeys[i] == &tomb) continue;
    size_t j = hash(okeys[i]) & (m->cap - 1);
    while (m->keys[j]) j = (j + 1) & (m->cap - 1);
    m->keys[j] = okeys[i];
    m->vals[j] = ovals[i];
  }
  free(okeys);
  free(ovals);
}

void rt_map_set(rt_map *m, const char *key, void *val) {
  if (m->cap) {
    size_t i = find(m, key);
    if (i != (size_t)-1) { m->vals[i] = val; return; }
  }
  if ((m->used + 1) * 4 >= m->cap * 3) grow(m);
  size_t i = hash(key) & (m->cap - 1);
  while (m->keys[i] && m->keys[i] != &tomb) i = (i + 1) & (m->cap - 1);
  if (!m->keys[i]) m->used++;
  m->keys[i] = rt_xstrdup(key);
  m->vals[i] = val;
  m->len++;
}

void *rt_map_del(rt_map *m, const char *key) {
  if (!m->cap) return NULL;
  size_t i = find(m, key);
  if (i == (size_t)-1) return NULL;
  void *v = m->vals[i];
  free(m->keys[i]);
  m->keys[i] = &tomb;
  m->vals[i] = NULL;
  m->len--;
  return v;
}

bool rt_map_next(const rt_map *m, size_t *it, const char **key, void **val) {
  while (*it < m->cap) {
    size_t i = (*it)++;
    if (m->keys[i] && m->keys[i] != &tomb) {
      *key = m->keys[i];
      *val = m->vals[i];
      return true;
    }
  }
  return false;
}
