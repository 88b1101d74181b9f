/* buf.h -- the growable byte buffer of the runtime.
 *
 * An rt_buf starts as RT_BUF_INIT (or zeroed) and allocates nothing until
 * the first byte is added. Once it holds memory, s[len] is always '\0', so
 * the bytes can be used as a C string; rt_buf_str gives "" for an empty
 * buffer. Growth doubles, so appending n bytes costs amortised O(n);
 * rt_buf_add is inline because the JSON writers call it per token. Memory
 * is rt_x*: it does not fail. */
#ifndef RT_BUF_H
#define RT_BUF_H
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct rt_buf {
  char *s;      /* NULL until something is added */
  size_t len;   /* bytes held, not counting the '\0' */
  size_t cap;   /* bytes allocated */
} rt_buf;

#define RT_BUF_INIT {NULL, 0, 0}

/* Makes room for `more` bytes past len (and the '\0'); returns b->s + len. */
char *rt_buf_grow(rt_buf *b, size_t more);

static inline char *rt_buf_reserve(rt_buf *b, size_t more) {
  return b->len + more < b->cap ? b->s + b->len : rt_buf_grow(b, more);
}

/* Appends n bytes of p. */
static inline void rt_buf_add(rt_buf *b, const void *p, size_t n) {
  if (n == 0) return;
  char *o = rt_buf_reserve(b, n);
  memcpy(o, p, n);
  b->len += n;
  b->s[b->len] = '\0';
}

static inline void rt_buf_addc(rt_buf *b, char c) { rt_buf_add(b, &c, 1); }
static inline void rt_buf_adds(rt_buf *b, const char *s) { rt_buf_add(b, s, strlen(s)); }

/* Records n bytes written at rt_buf_reserve's pointer (n <= the reserve). */
static inline void rt_buf_commit(rt_buf *b, size_t n) {
  if (!b->s) return;
  b->len += n;
  b->s[b->len] = '\0';
}

/* Writes v in decimal at out (room for 21 bytes, no '\0') and returns the
 * length: snprintf's "%lld" without the format parsing, which cost more
 * than the rest of building an idempotency key or a payload's head. */
static inline size_t rt_i64_to(char *out, int64_t v) {
  char tmp[20];
  size_t n = 0, k = 0;
  uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
  do {
    tmp[n++] = (char)('0' + u % 10);
    u /= 10;
  } while (u);
  if (v < 0) out[k++] = '-';
  while (n) out[k++] = tmp[--n];
  return k;
}

/* Appends v in decimal. */
static inline void rt_buf_add_i64(rt_buf *b, int64_t v) {
  char num[21];
  rt_buf_add(b, num, rt_i64_to(num, v));
}

/* Appends printf output. */
void rt_buf_printf(rt_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void rt_buf_vprintf(rt_buf *b, const char *fmt, va_list ap);

/* Appends tmpl with each {name} in it replaced by the value of that name
 * (names[i] -> values[i], n of them; a NULL value counts as ""). A {word}
 * that is not one of the names, and a lone brace, stay as they are: the
 * template is a shop's text, never a format string. */
void rt_buf_fill(rt_buf *b, const char *tmpl, const char *const *names,
                 const char *const *values, size_t n);

/* The bytes as a C string: "" while nothing was added. */
static inline const char *rt_buf_str(const rt_buf *b) { return b->s ? b->s : ""; }

/* Drops the first n bytes (n <= len), keeping the memory. */
void rt_buf_consume(rt_buf *b, size_t n);

/* Empties the buffer and keeps its memory for reuse. */
static inline void rt_buf_reset(rt_buf *b) {
  b->len = 0;
  if (b->s) b->s[0] = '\0';
}

/* Hands the bytes to the caller (who frees them; never NULL: an empty buffer
 * gives a fresh "") and leaves b empty, holding no memory. *len, when not
 * NULL, gets the length. */
char *rt_buf_take(rt_buf *b, size_t *len);

/* Frees the memory; b is empty and usable again. */
void rt_buf_free(rt_buf *b);

#endif
