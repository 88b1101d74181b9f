/* test_alloc.c -- the process allocator (alloc.c, CMakeLists.txt).
 *
 * In release builds mimalloc must be the malloc of every library, not only
 * of our own calls: SQLite, jansson and Lua allocate through plain malloc,
 * and if any of them kept glibc's the two heaps would fragment side by side
 * and the idle trim would miss half. Its settings must be the bot's (freed
 * pages handed back), and a burst must be given back by rt_alloc_trim.
 * Sanitizer builds keep the sanitizer's allocator; there only the trim's
 * contract (callable at any time, allocation works after it) is checked. */
#include "t.h"
#include "rt.h"
#include <jansson.h>
#include <lauxlib.h>
#include <lua.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <unistd.h>
#ifdef RT_MIMALLOC
#include <mimalloc.h>
#endif

#ifdef RT_MIMALLOC
static long rss_kb(void) {
  FILE *f = fopen("/proc/self/statm", "r");
  long size = 0, res = 0;
  if (f) {
    if (fscanf(f, "%ld %ld", &size, &res) != 2) res = 0;
    fclose(f);
  }
  return res * (sysconf(_SC_PAGESIZE) / 1024);
}

T(every_library_allocates_from_mimalloc) {
  void *a = malloc(100), *b = rt_xmalloc(100), *c = sqlite3_malloc(100);
  CHECK(mi_is_in_heap_region(a));
  CHECK(mi_is_in_heap_region(b));
  CHECK(mi_is_in_heap_region(c));
  json_t *j = json_object();
  CHECK(mi_is_in_heap_region(j));
  lua_State *L = luaL_newstate(); /* Lua's own allocator calls realloc */
  CHECK(L != NULL && mi_is_in_heap_region(L));
  void *u = lua_newuserdatauv(L, 64, 0);
  CHECK(mi_is_in_heap_region(u));
  lua_close(L);
  json_decref(j);
  sqlite3_free(c);
  free(b);
  free(a);
}

T(settings_hand_pages_back) {
  if (!getenv("MIMALLOC_DECOMMIT_DELAY")) CHECK_INT(mi_option_get(mi_option_decommit_delay), 0);
  if (!getenv("MIMALLOC_SEGMENT_DECOMMIT_DELAY"))
    CHECK_INT(mi_option_get(mi_option_segment_decommit_delay), 0);
  if (!getenv("MIMALLOC_EAGER_COMMIT")) CHECK(!mi_option_is_enabled(mi_option_eager_commit));
}

/* 32 MB in small blocks, as a burst of conversations leaves it: after the
 * frees and the trim at most a quarter of it may still be resident. */
T(burst_given_back_after_trim) {
  enum { N = 32 * 1024, SZ = 1024 };
  rt_alloc_trim();
  long before = rss_kb();
  char **p = rt_xmalloc(N * sizeof *p);
  for (int i = 0; i < N; i++) {
    p[i] = rt_xmalloc(SZ);
    memset(p[i], i, SZ);
  }
  long full = rss_kb();
  CHECK(full - before >= 30 * 1024);
  for (int i = 0; i < N; i++) free(p[i]);
  free(p);
  rt_alloc_trim();
  long after = rss_kb();
  fprintf(stderr, "  rss: %ld kB before, %ld full, %ld after the trim\n", before, full, after);
  CHECK(after - before <= 8 * 1024);
}
#endif

T(trim_any_time) {
  rt_alloc_trim();
  char *s = rt_xstrdup("после");
  rt_alloc_trim();
  CHECK_STR(s, "после");
  free(s);
  rt_alloc_trim();
}

int main(void) {
#ifdef RT_MIMALLOC
  T_RUN(every_library_allocates_from_mimalloc);
  T_RUN(settings_hand_pages_back);
  T_RUN(burst_given_back_after_trim);
#endif
  T_RUN(trim_any_time);
  return T_DONE();
}
