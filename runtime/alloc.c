/* alloc.c -- allocation helpers that abort on OOM (see rt.h). */
#include "rt.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef RT_MIMALLOC
#include <mimalloc.h>
#else
#include <malloc.h>
#endif

static void oom(size_t n) {
  fprintf(stderr, "level=fatal msg=\"out of memory\" bytes=%zu\n", n);
  abort();
}

void *rt_xmalloc(size_t n) {
  void *p = malloc(n ? n : 1);
  if (!p) oom(n);
  return p;
}

void *rt_xcalloc(size_t n, size_t m) {
  void *p = calloc(n ? n : 1, m ? m : 1);
  if (!p) oom(n * m);
  return p;
}

void *rt_xrealloc(void *p, size_t n) {
  void *q = realloc(p, n ? n : 1);
  if (!q) oom(n);
  return q;
}

char *rt_xstrdup(const char *s) {
  return rt_xstrndup(s, strlen(s));
}

char *rt_xstrndup(const char *s, size_t n) {
  char *p = rt_xmalloc(n + 1);
  memcpy(p, s, n);
  p[n] = '\0';
  return p;
}

char *rt_xjoin(const char *a, char sep, const char *b) {
  size_t na = strlen(a), nb = strlen(b);
  char *p = rt_xmalloc(na + nb + 2);
  memcpy(p, a, na);
  p[na] = sep;
  memcpy(p + na + 1, b, nb + 1);
  return p;
}

char *rt_xasprintf(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *s = NULL;
  if (vasprintf(&s, fmt, ap) < 0) oom(0);
  va_end(ap);
  return s;
}

#ifdef RT_MIMALLOC
/* mimalloc is the whole process's malloc (CMakeLists.txt), so its settings
 * are the process's, set once before main. Its defaults keep freed pages
 * for a while and commit a new segment whole, which suits a short burst but
 * not a bot that idles most of the day: a bot after 10,000 conversations
 * stayed at 18.8 MB and gave nothing back on the idle trim. Freed pages go
 * back at once and segments are committed as they fill (14.4 MB after the
 * same burst, 10.4 MB once idle; docs/architecture.md, "Memory"). A
 * MIMALLOC_* variable in the environment still wins, for measuring. */
static void set_default(mi_option_t o, const char *env, long v) {
  if (!getenv(env)) mi_option_set(o, v);
}

__attribute__((constructor)) static void alloc_setup(void) {
  set_default(mi_option_decommit_delay, "MIMALLOC_DECOMMIT_DELAY", 0);
  set_default(mi_option_segment_decommit_delay, "MIMALLOC_SEGMENT_DECOMMIT_DELAY", 0);
  set_default(mi_option_eager_commit, "MIMALLOC_EAGER_COMMIT", 0);
}

void rt_alloc_trim(void) {
  mi_collect(true);
}
#else
void rt_alloc_trim(void) {
  malloc_trim(0);
}
#endif
