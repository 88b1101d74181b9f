/* map.h -- string-keyed hash map of borrowed void pointers.
 *
 * Open addressing with linear probing and tombstones. Keys are copied in and
 * freed by the map; values belong to the caller. Used for the per-chat
 * event queues and the set of outbox rows in flight. */
#ifndef RT_MAP_H
#define RT_MAP_H
#include "rt.h"

typedef struct {
  uint64_t hash;           /* of key: compared before the key's text */
  char *key;               /* NULL: never used; a tombstone: deleted */
  void *val;
} rt_map_slot;

typedef struct {
  rt_map_slot *slots;
  size_t cap, len, used;   /* used counts tombstones too */
} rt_map;

void rt_map_init(rt_map *m);
void rt_map_free(rt_map *m);
void *rt_map_get(const rt_map *m, const char *key);
/* Sets key to val (val must not be NULL); replaces an existing value. */
void rt_map_set(rt_map *m, const char *key, void *val);
/* Removes key; returns the old value or NULL. */
void *rt_map_del(rt_map *m, const char *key);
/* Iterates: start with *it = 0; returns false at the end. */
bool rt_map_next(const rt_map *m, size_t *it, const char **key, void **val);
#endif
