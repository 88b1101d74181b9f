/* buf.c -- the growable byte buffer (see buf.h). */
#include "buf.h"
#include "rt.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *rt_buf_grow(rt_buf *b, size_t more) {
  size_t need = b->len + more + 1;
  if (need <= b->len) {   /* size_t overflow: no request can be this big */
    fprintf(stderr, "level=fatal msg=\"buffer size overflow\"\n");
    abort();
  }
  if (need > b->cap) {
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need) cap = cap * 2 > cap ? cap * 2 : need;
    b->s = rt_xrealloc(b->s, cap);
    b->cap = cap;
    b->s[b->len] = '\0';
  }
  return b->s + b->len;
}

void rt_buf_vprintf(rt_buf *b, const char *fmt, va_list ap) {
  va_list ap2;
  va_copy(ap2, ap);
  /* try in the room there is; grow once if it was not enough */
  size_t room = b->s ? b->cap - b->len : 0;
  int n = vsnprintf(b->s ? b->s + b->len : NULL, room, fmt, ap);
  if (n < 0) {   /* only for a bad format or a wide-char conversion error */
    va_end(ap2);
    if (b->s) b->s[b->len] = '\0';
    return;
  }
  if (n == 0) {   /* nothing to add: an empty buffer stays unallocated */
    va_end(ap2);
    return;
  }
  if ((size_t)n >= room) {
    rt_buf_grow(b, (size_t)n);
    vsnprintf(b->s + b->len, (size_t)n + 1, fmt, ap2);
  }
  va_end(ap2);
  b->len += (size_t)n;
}

void rt_buf_printf(rt_buf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  rt_buf_vprintf(b, fmt, ap);
  va_end(ap);
}

void rt_buf_consume(rt_buf *b, size_t n) {
  if (n == 0) return;
  if (n > b->len) n = b->len;
  memmove(b->s, b->s + n, b->len - n);
  b->len -= n;
  b->s[b->len] = '\0';
}

char *rt_buf_take(rt_buf *b, size_t *len) {
  char *s = b->s ? b->s : rt_xstrdup("");
  if (len) *len = b->len;
  b->s = NULL;
  b->len = b->cap = 0;
  return s;
}

void rt_buf_free(rt_buf *b) {
  free(b->s);
  b->s = NULL;
  b->len = b->cap = 0;
}

void rt_buf_fill(rt_buf *b, const char *tmpl, const char *const *names,
                 const char *const *values, size_t n) {
  const char *p = tmpl;
  for (;;) {
    const char *open = strchr(p, '{');
    if (!open) break;
    const char *close = strchr(open + 1, '}');
    if (!close) break;
    size_t len = (size_t)(close - open - 1);
    size_t i = 0;
    while (i < n && !(strlen(names[i]) == len && memcmp(names[i], open + 1, len) == 0)) i++;
    if (i == n) {
      /* not a placeholder: the brace is text, look again after it */
      rt_buf_add(b, p, (size_t)(open + 1 - p));
      p = open + 1;
      continue;
    }
    rt_buf_add(b, p, (size_t)(open - p));
    if (values[i]) rt_buf_adds(b, values[i]);
    p = close + 1;
  }
  rt_buf_adds(b, p);
}
