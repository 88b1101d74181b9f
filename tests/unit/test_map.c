/* test_map.c -- the string-keyed hash map (map.h): lookups through
 * growth, deletes and the slots they leave, keys that share prefixes,
 * iteration. */
#include "map.h"
#include "rt.h"
#include "t.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int vals[5000];

T(set_get_grow) {
  rt_map m;
  rt_map_init(&m);
  CHECK(rt_map_get(&m, "x") == NULL);
  CHECK(rt_map_del(&m, "x") == NULL);
  char k[32];
  for (int i = 0; i < 5000; i++) {
    snprintf(k, sizeof k, "console\037%d", i);
    rt_map_set(&m, k, &vals[i]);
  }
  CHECK_INT(m.len, 5000);
  for (int i = 0; i < 5000; i++) {
    snprintf(k, sizeof k, "console\037%d", i);
    CHECK(rt_map_get(&m, k) == &vals[i]);
  }
  /* a prefix or an extension of a key is another key */
  CHECK(rt_map_get(&m, "console\0371") == &vals[1]);
  CHECK(rt_map_get(&m, "console\037") == NULL);
  CHECK(rt_map_get(&m, "console\0371x") == NULL);
  rt_map_set(&m, "console\0377", &vals[0]);   /* replaces */
  CHECK_INT(m.len, 5000);
  CHECK(rt_map_get(&m, "console\0377") == &vals[0]);
  rt_map_free(&m);
}

T(delete_and_reuse) {
  rt_map m;
  rt_map_init(&m);
  char k[32];
  /* chats come and go: the table must neither lose keys past a deleted
   * slot nor fill up with deleted ones */
  for (int round = 0; round < 50; round++) {
    for (int i = 0; i < 100; i++) {
      snprintf(k, sizeof k, "r%d:%d", round, i);
      rt_map_set(&m, k, &vals[i]);
    }
    for (int i = 0; i < 100; i += 2) {
      snprintf(k, sizeof k, "r%d:%d", round, i);
      CHECK(rt_map_del(&m, k) == &vals[i]);
      CHECK(rt_map_get(&m, k) == NULL);
    }
    for (int i = 1; i < 100; i += 2) {
      snprintf(k, sizeof k, "r%d:%d", round, i);
      CHECK(rt_map_get(&m, k) == &vals[i]);
      CHECK(rt_map_del(&m, k) == &vals[i]);
    }
  }
  CHECK_INT(m.len, 0);
  CHECK(m.cap <= 1024);
  rt_map_set(&m, "back", &vals[3]);
  CHECK(rt_map_get(&m, "back") == &vals[3]);
  rt_map_free(&m);
}

T(iterate) {
  rt_map m;
  rt_map_init(&m);
  char k[32];
  for (int i = 0; i < 300; i++) {
    snprintf(k, sizeof k, "k%d", i);
    rt_map_set(&m, k, &vals[i]);
  }
  for (int i = 0; i < 300; i += 3) {
    snprintf(k, sizeof k, "k%d", i);
    rt_map_del(&m, k);
  }
  size_t it = 0, n = 0;
  const char *key;
  void *val;
  bool right = true;
  while (rt_map_next(&m, &it, &key, &val)) {
    int i = atoi(key + 1);
    right = right && i % 3 != 0 && val == &vals[i];
    n++;
  }
  CHECK(right);
  CHECK_INT(n, 200);
  rt_map_free(&m);
}

int main(void) {
  T_RUN(set_get_grow);
  T_RUN(delete_and_reuse);
  T_RUN(iterate);
  return T_DONE();
}
