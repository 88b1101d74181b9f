/* alloc.c -- allocation helpers that abort on OOM (see rt.h). */
#include "rt.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
