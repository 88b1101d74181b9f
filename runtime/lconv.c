/* lconv.c -- Lua values <-> JSON text (see lconv.h). */
#include "lconv.h"
#include "lfreeze.h"
#include "rt.h"
#include "utf8.h"
#include <errno.h>
#include <lauxlib.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One nesting limit both ways: what is read (a stored state, an HTTP
 * answer) can always be written back (a state stored again). With 16 out
 * and 64 in, a state 17 levels deep was read and then could not be stored,
 * so the conversation failed every step (fuzz_state found it). */
#define MAX_DEPTH 64
#define MAX_DEPTH_OUT MAX_DEPTH
#define MAX_DEPTH_IN MAX_DEPTH

/* ---- writer ---- */

/* The path to the value being written, kept as a stack of keys and
 * formatted only when there is an error to report. */
typedef struct {
  const rt_lconv_lim *lim;
  const char *keys[MAX_DEPTH_OUT + 1];
  size_t klen[MAX_DEPTH_OUT + 1];
  lua_Integer idx[MAX_DEPTH_OUT + 1];
  int depth;
  size_t left;               /* bytes of output still allowed */
  char *err;
  size_t errn;
} wctx;

static void path_text(const wctx *w, char *out, size_t n) {
  size_t o = (size_t)snprintf(out, n, "%s", w->lim->root ? w->lim->root : "value");
  for (int i = 0; i < w->depth && o < n; i++)
    o += w->keys[i] ? (size_t)snprintf(out + o, n - o, ".%.*s", (int)w->klen[i], w->keys[i])
                    : (size_t)snprintf(out + o, n - o, "[%lld]", (long long)w->idx[i]);
}

static int fail(wctx *w, const char *fmt, const char *what) {
  char where[256];
  path_text(w, where, sizeof where);
  snprintf(w->err, w->errn, fmt, where, what);
  return -1;
}

/* Counts n bytes of output against the cap. */
static int charge(wctx *w, size_t n) {
  if (n <= w->left) { w->left -= n; return 0; }
  char where[256], msg[512];
  path_text(w, where, sizeof where);
  snprintf(msg, sizeof msg, "%s: the value is too big: over %zu KB when written out (%s)", where,
           w->lim->cap / 1024, w->lim->cap_name ? w->lim->cap_name : "limits.lua_memory_mb");
  snprintf(w->err, w->errn, "%s", msg);
  w->left = 0;
  return -1;
}

/* Eight bytes at a time, then one character at a time from the first word
 * that is not all plain. The word tests say only whether some byte of the
 * word matches (a borrow can carry only past a byte that does), which is
 * all the scan needs. Texts are mostly Russian: two-byte letters with ASCII
 * spaces and signs between them. */
#define ONES UINT64_C(0x0101010101010101)
#define HIGHS UINT64_C(0x8080808080808080)

/* Some byte of x is below c (c <= 0x80). */
static inline uint64_t word_has_below(uint64_t x, unsigned c) { return (x - ONES * c) & ~x & HIGHS; }

/* Some byte of x is c. */
static inline uint64_t word_has(uint64_t x, unsigned c) { return word_has_below(x ^ (ONES * c), 1); }

/* How many of the eight bytes of x (read little-endian: byte k is bits
 * 8k..8k+7) are plain and whole: 8, 7 when the last byte leads a two-byte
 * letter the next word ends, 0 when the word needs the slow path (a
 * control byte, the quote, the backslash, a longer sequence, a broken
 * one). The word starts at a character's first byte. */
static inline unsigned word_plain(uint64_t x) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  if (word_has_below(x, 0x20) | word_has(x, '"') | word_has(x, '\\')) return 0;
  uint64_t high = x & HIGHS;   /* bit 7 of each byte >= 0x80 */
  if (!high) return 8;
  /* Bits 6 and 5 of each byte, moved to its bit 7. */
  uint64_t b6 = (x << 1) & HIGHS, b5 = (x << 2) & HIGHS;
  if (high & b6 & b5) return 0;                 /* 111xxxxx: three or four bytes */
  uint64_t lead = high & b6, cont = high & ~b6;   /* 110xxxxx, 10xxxxxx */
  /* C0 and C1 (overlong forms) have none of bits 1-4: adding 0x7F to
   * those bits sets bit 7 only when one of them is set. */
  if (lead & ~((x & (ONES * 0x1E)) + ONES * 0x7F)) return 0;
  /* Each continuation right after a lead, each lead but the last byte
   * right before one. */
  if ((lead << 8) != cont) return 0;
  return lead >> 63 ? 7 : 8;
#else
  (void)x;
  return 0;
#endif
}

size_t rt_lconv_plain_run(const char *str, size_t n) {
  /* 0: printable ASCII; 1: a control byte, the quote or the backslash;
   * 2: the lead of a two-byte sequence; 3: any other byte >= 0x80. */
  static const unsigned char cls[256] = {
    [0 ... 0x1F] = 1, ['"'] = 1, ['\\'] = 1, [0x80 ... 0xC1] = 3, [0xC2 ... 0xDF] = 2,
    [0xE0 ... 0xFF] = 3};
  const unsigned char *s = (const unsigned char *)str;
  size_t i = 0;
  while (i < n) {
    while (n - i >= 8) {
      uint64_t x;
      memcpy(&x, s + i, 8);
      unsigned k = word_plain(x);
      if (!k) break;
      i += k;
    }
    /* A character at a time to the end of the word that was not plain
     * (or of the text), then words again. */
    size_t stop = n - i > 8 ? i + 8 : n;
    while (i < stop) {
      unsigned k = cls[s[i]];
      if (k == 0) {
        i++;
      } else if (k == 2 && i + 1 < n && (s[i + 1] & 0xC0) == 0x80) {
        i += 2;
      } else if (k == 3) {
        size_t len;
        if (rt_utf8_decode(str + i, n - i, &len) == RT_UTF8_BAD) return i;
        i += len;
      } else {
        return i;
      }
    }
  }
  return i;
}

void rt_lconv_add_string(rt_buf *b, const char *s, size_t n) {
  /* Room for the text as it is plus the quotes; an escape (up to 6 bytes
   * for 1) or a U+FFFD (3 for 1) makes more as it comes. Reserving the
   * worst case (6 per byte) up front made a few hundred bytes of text a
   * multi-kilobyte request, which malloc serves from its large bins. */
  size_t need = n + 8;
  char *o = rt_buf_reserve(b, need), *start = o, *end = o + need;
  *o++ = '"';
  for (size_t i = 0; i < n;) {
    /* Plain text and valid UTF-8 are copied as they are, a run at a time:
     * no more room than they take. */
    size_t run = rt_lconv_plain_run(s + i, n - i);
    if (run) {
      memcpy(o, s + i, run);
      o += run;
      i += run;
      if (i == n) break;
    }
    unsigned char c = (unsigned char)s[i];
    /* An escape or a U+FFFD: keep room for it, the rest as it is and the
     * closing quote. */
    if ((size_t)(end - o) < (n - i) + 8) {
      /* What is written so far is kept (growing writes a '\0' at len). */
      size_t more = (size_t)(end - start) + (n - i) + 8;
      rt_buf_commit(b, (size_t)(o - start));
      start = o = rt_buf_reserve(b, more);
      end = o + more;
    }
    if (c >= 0x80) {
      memcpy(o, "\xEF\xBF\xBD", 3);
      o += 3;
      i++;
      continue;
    }
    i++;
    *o++ = '\\';
    switch (c) {
    case '"': *o++ = '"'; break;
    case '\\': *o++ = '\\'; break;
    case '\b': *o++ = 'b'; break;
    case '\f': *o++ = 'f'; break;
    case '\n': *o++ = 'n'; break;
    case '\r': *o++ = 'r'; break;
    case '\t': *o++ = 't'; break;
    case 0:   /* NUL is not text: U+FFFD, as the reader cleans it */
      o--;
      memcpy(o, "\xEF\xBF\xBD", 3);
      o += 3;
      break;
    default: o += sprintf(o, "u%04X", c); break;
    }
  }
  *o++ = '"';
  rt_buf_commit(b, (size_t)(o - start));
}

/* A real as jansson writes it: 17 significant digits, a ".0" when it
 * would read as an integer, no '+' or leading zeros in the exponent. */
static void add_real(rt_buf *b, double v) {
  char num[48];
  int k = snprintf(num, sizeof num, "%.17g", v);
  if (!strpbrk(num, ".eE")) k += snprintf(num + k, sizeof num - (size_t)k, ".0");
  char *e = strchr(num, 'e');
  if (e) {
    char *d = e + 1, *s = e + 1;
    if (*s == '+') s++;
    else if (*s == '-') { d++; s++; }
    while (*s == '0' && s[1]) s++;
    memmove(d, s, strlen(s) + 1);
    k = (int)strlen(num);
  }
  rt_buf_add(b, num, (size_t)k);
}

enum { SHAPE_BAD = -1, SHAPE_OBJECT, SHAPE_ARRAY };

typedef struct { const char *k; size_t n; } jkey;

static int cmp_jkey(const void *a, const void *b) {
  const jkey *x = a, *y = b;
  int c = memcmp(x->k, y->k, x->n < y->n ? x->n : y->n);
  return c ? c : (x->n > y->n) - (x->n < y->n);
}

static int write_value(lua_State *L, int idx, rt_buf *b, wctx *w);

/* An object: keys sorted, so the same data gives the same text. */
static int write_object(lua_State *L, int idx, rt_buf *b, wctx *w, jkey *keys, size_t nk) {
  if (nk > 1) qsort(keys, nk, sizeof *keys, cmp_jkey);
  int d = w->depth++;
  rt_buf_addc(b, '{');
  int rc = 0;
  for (size_t i = 0; i < nk && rc == 0; i++) {
    if (i) rt_buf_addc(b, ',');
    w->keys[d] = keys[i].k;
    w->klen[d] = keys[i].n;
    if ((rc = charge(w, keys[i].n))) break;
    rt_lconv_add_string(b, keys[i].k, keys[i].n);
    rt_buf_addc(b, ':');
    lua_pushlstring(L, keys[i].k, keys[i].n);
    lua_rawget(L, idx);
    rc = write_value(L, -1, b, w);
    lua_pop(L, 1);
  }
  if (rc == 0) rt_buf_addc(b, '}');
  w->depth = d;
  return rc;
}

static int write_table(lua_State *L, int idx, rt_buf *b, wctx *w) {
  if (w->depth >= MAX_DEPTH_OUT)
    return fail(w, "%s: tables nested deeper than 64 levels (a loop?)%s", "");
  luaL_checkstack(L, 6, "stored value");
  /* One pass over the keys classifies the table: a list has only the
   * keys 1..max, with holes where JSON had null (a flow can also leave
   * one with t[i] = nil); an object has only text keys; an empty table is
   * an object. lua_rawlen is no help here: with holes it may return any
   * border, and a list written up to it would silently lose its tail. */
  lua_Integer count = 0, max = 0;
  bool all_str = true, all_int = true, bad_key = false;
  jkey stack_keys[16], *keys = stack_keys;
  size_t nk = 0, cap = 16;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    count++;
    if (lua_type(L, -2) != LUA_TSTRING) {
      all_str = false;
      if (all_int && lua_isinteger(L, -2) && lua_tointeger(L, -2) > 0) {
        lua_Integer k = lua_tointeger(L, -2);
        if (k > max) max = k;
      } else {
        all_int = false;
      }
    } else {
      all_int = false;
      if (all_str) {
        if (nk == cap) {
          cap *= 2;
          keys = keys == stack_keys ? memcpy(rt_xmalloc(cap * sizeof *keys), stack_keys, sizeof stack_keys)
                                    : rt_xrealloc(keys, cap * sizeof *keys);
        }
        keys[nk].k = lua_tolstring(L, -2, &keys[nk].n);   /* the table keeps the string alive */
        /* Values with broken UTF-8 keep their readable part (U+FFFD), but
         * two keys cleaned that way could become one key and lose a value. */
        if (!bad_key) bad_key = !rt_utf8_valid(keys[nk].k, keys[nk].n);
        nk++;
      }
    }
    lua_pop(L, 1);
  }
  lua_Integer n = max;
  int rc;
  if (all_str && bad_key) {
    rc = fail(w, "%s: a key is not valid UTF-8 text (or holds a NUL byte)%s", "");
  } else if (all_str) {
    rc = write_object(L, idx, b, w, keys, nk);
  } else if (all_int && n - count > count) {
    /* {[1000000] = 1} is not a list of a million nulls */
    rc = fail(w, "%s: a list with more holes (nil) than values%s", "");
  } else if (all_int) {
    int d = w->depth++;
    rt_buf_addc(b, '[');
    rc = 0;
    for (lua_Integer i = 1; i <= n && rc == 0; i++) {
      if (i > 1) rt_buf_addc(b, ',');
      w->keys[d] = NULL;
      w->idx[d] = i;
      lua_rawgeti(L, idx, i);
      rc = write_value(L, -1, b, w);
      lua_pop(L, 1);
    }
    if (rc == 0) rt_buf_addc(b, ']');
    w->depth = d;
  } else {
    rc = fail(w, "%s: a table mixes a list and named fields (or has non-text keys)%s", "");
  }
  if (keys != stack_keys) free(keys);
  return rc;
}

static int write_value(lua_State *L, int idx, rt_buf *b, wctx *w) {
  /* Every node costs a few bytes of output at least. */
  if (charge(w, 8)) return -1;
  switch (lua_type(L, idx)) {
  case LUA_TNIL: rt_buf_add(b, "null", 4); return 0;
  case LUA_TBOOLEAN:
    if (lua_toboolean(L, idx)) rt_buf_add(b, "true", 4);
    else rt_buf_add(b, "false", 5);
    return 0;
  case LUA_TNUMBER:
    if (lua_isinteger(L, idx)) {
      rt_buf_add_i64(b, (int64_t)lua_tointeger(L, idx));
    } else {
      double v = lua_tonumber(L, idx);
      if (!isfinite(v)) return fail(w, "%s: NaN or infinity cannot be stored%s", "");
      add_real(b, v);
    }
    return 0;
  case LUA_TSTRING: {
    size_t n;
    const char *s = lua_tolstring(L, idx, &n);
    if (charge(w, n)) return -1;
    rt_lconv_add_string(b, s, n);
    return 0;
  }
  case LUA_TTABLE: break;
  default:
    return fail(w, "%s: a %s cannot be stored (only text, numbers, true/false and tables)",
                luaL_typename(L, idx));
  }
  idx = lua_absindex(L, idx);
  if (rt_lfreeze_contents(L, idx)) {   /* a module-level table: what it holds */
    int rc = write_table(L, lua_gettop(L), b, w);
    lua_pop(L, 1);
    return rc;
  }
  return write_table(L, idx, b, w);
}

int rt_lconv_encode(lua_State *L, int idx, rt_buf *out, const rt_lconv_lim *lim, char *err,
                    size_t errn) {
  /* err is written only on a refusal: this runs for every state. */
  wctx w = {.lim = lim, .left = lim->cap, .err = err, .errn = errn};
  return write_value(L, lua_absindex(L, idx), out, &w);
}

char *rt_lconv_text(lua_State *L, int idx, const char *root, size_t cap, size_t *len, char *err,
                    size_t errn) {
  rt_lconv_lim lim = {.root = root, .cap = cap};
  rt_buf b = RT_BUF_INIT;
  if (rt_lconv_encode(L, idx, &b, &lim, err, errn) != 0) {
    rt_buf_free(&b);
    return NULL;
  }
  if (!b.s) rt_buf_reserve(&b, 1);
  return rt_buf_take(&b, len);
}

json_t *rt_lconv_tree(lua_State *L, int idx, const char *root, size_t cap, char *err,
                      size_t errn) {
  size_t n;
  char *s = rt_lconv_text(L, idx, root, cap, &n, err, errn);
  if (!s) return NULL;
  json_error_t je;
  json_t *j = json_loadb(s, n, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
  free(s);
  if (!j) snprintf(err, errn, "%s: %s", root ? root : "value", je.text);
  return j;
}

/* ---- reader ---- */

typedef struct {
  const char *p, *end;
  int depth;
} rctx;

static void skip_ws(rctx *d) {
  while (d->p < d->end && (*d->p == ' ' || *d->p == '\n' || *d->p == '\r' || *d->p == '\t')) d->p++;
}

static int hex4(const char *p, const char *end, uint32_t *out) {
  if (end - p < 4) return -1;
  uint32_t v = 0;
  for (int i = 0; i < 4; i++) {
    char c = p[i];
    v <<= 4;
    if (c >= '0' && c <= '9') v |= (uint32_t)(c - '0');
    else if (c >= 'a' && c <= 'f') v |= (uint32_t)(c - 'a' + 10);
    else if (c >= 'A' && c <= 'F') v |= (uint32_t)(c - 'A' + 10);
    else return -1;
  }
  *out = v;
  return 0;
}

int rt_lconv_escape(const char **p, const char *end, uint32_t *cp) {
  const char *q = *p;
  if (q >= end) return -1;
  char c = *q++;
  int rc = 0;
  switch (c) {
  case '"': case '\\': case '/': *cp = (uint32_t)c; break;
  case 'b': *cp = '\b'; break;
  case 'f': *cp = '\f'; break;
  case 'n': *cp = '\n'; break;
  case 'r': *cp = '\r'; break;
  case 't': *cp = '\t'; break;
  case 'u': {
    uint32_t u, lo;
    if (hex4(q, end, &u)) return -1;
    q += 4;
    if (u >= 0xD800 && u < 0xDC00 && end - q >= 6 && q[0] == '\\' && q[1] == 'u') {
      if (hex4(q + 2, end, &lo) || lo < 0xDC00 || lo > 0xDFFF) return -1;
      q += 6;
      u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
    } else if (u >= 0xD800 && u < 0xE000) {
      u = 0xFFFD;
      rc = 1;
    }
    *cp = u;
    break;
  }
  default: return -1;
  }
  *p = q;
  return rc;
}

/* [-0, +1] on success. A string without escapes or broken bytes (most of
 * them) is pushed straight from the text. */
static int read_string(lua_State *L, rctx *d) {
  d->p++;  /* opening quote */
  const char *s = d->p;
  d->p += rt_lconv_plain_run(d->p, (size_t)(d->end - d->p));
  if (d->p >= d->end || *d->p == '"') {
    if (d->p >= d->end) return -1;
    lua_pushlstring(L, s, (size_t)(d->p - s));
    d->p++;
    return 0;
  }
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  luaL_addlstring(&b, s, (size_t)(d->p - s));
  while (d->p < d->end && *d->p != '"') {
    const char *run = d->p;
    while (d->p < d->end && *d->p != '"' && *d->p != '\\') d->p++;
    luaL_addlstring(&b, run, (size_t)(d->p - run));
    if (d->p >= d->end || *d->p == '"') break;
    d->p++;
    uint32_t cp;
    if (rt_lconv_escape(&d->p, d->end, &cp) < 0) goto bad;
    char u[4];
    luaL_addlstring(&b, u, rt_utf8_encode(cp, u));
  }
  if (d->p >= d->end) goto bad;
  d->p++;
  luaL_pushresult(&b);
  /* Stored text is input too: bytes the writer would clean (broken UTF-8,
   * control bytes, NUL from \u0000) are cleaned here, so what was read can
   * always be written again and reads back the same. */
  size_t n;
  const char *v = lua_tolstring(L, -1, &n);
  if (!rt_utf8_valid(v, n)) {
    /* cleaned in Lua memory: an allocation error raises without a leak */
    luaL_Buffer cb;
    char *out = luaL_buffinitsize(L, &cb, n * 3);
    luaL_pushresultsize(&cb, rt_utf8_clean_buf(v, n, out));
    lua_remove(L, -2);
  }
  return 0;
bad:
  /* A grown luaL_Buffer is a to-be-closed box on the stack. Finish it
   * here, never leave it for the caller's lua_settop: Lua 5.4.4's
   * lua_settop keeps a stale top when the box's __close call grows the
   * stack (fixed in 5.4.5), and the state then fails at random later
   * ("attempt to call a nil value" panics, found by fuzz_state). */
  luaL_pushresult(&b);
  lua_pop(L, 1);
  return -1;
}

static bool at_digit(const rctx *d) { return d->p < d->end && *d->p >= '0' && *d->p <= '9'; }

/* JSON's number grammar exactly: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
 * strtod alone would also take ".5", "+1", "1." and "0x1p3", which no
 * other JSON reader accepts, so a value read here could not be read back
 * by anyone else. */
static int read_number(lua_State *L, rctx *d) {
  const char *start = d->p;
  bool real = false;
  if (d->p < d->end && *d->p == '-') d->p++;
  if (!at_digit(d)) return -1;
  if (*d->p++ != '0')
    while (at_digit(d)) d->p++;
  if (d->p < d->end && *d->p == '.') {
    real = true;
    d->p++;
    if (!at_digit(d)) return -1;
    while (at_digit(d)) d->p++;
  }
  if (d->p < d->end && (*d->p == 'e' || *d->p == 'E')) {
    real = true;
    d->p++;
    if (d->p < d->end && (*d->p == '+' || *d->p == '-')) d->p++;
    if (!at_digit(d)) return -1;
    while (at_digit(d)) d->p++;
  }
  size_t n = (size_t)(d->p - start);
  if (!n) return -1;
  /* strtod needs a NUL-terminated copy; a number of any length is JSON
   * (a long one goes to the heap, and is freed before anything can raise). */
  char small[64], *num = n < sizeof small ? small : rt_xmalloc(n + 1);
  memcpy(num, start, n);
  num[n] = '\0';
  char *endp;
  int rc = -1;
  if (!real) {
    errno = 0;
    long long v = strtoll(num, &endp, 10);
    if (*endp == '\0' && errno == 0) {
      if (num != small) free(num);
      lua_pushinteger(L, (lua_Integer)v);
      return 0;
    }
  }
  double v = strtod(num, &endp);
  if (!*endp && isfinite(v)) rc = 0;   /* 1e999: not writable again, so not readable */
  if (num != small) free(num);
  if (rc == 0) lua_pushnumber(L, v);
  return rc;
}

/* How many members or elements the object or array whose opening bracket
 * is just before p has, from a scan to its closing bracket (strings and
 * nested values skipped), so that its table is made at its size: grown
 * one key at a time, a table is rebuilt at 1, 2, 4, 8... entries, and that
 * rehash cost more than this scan for a conversation's state. Capped: a
 * bigger one grows as it is read. Malformed text gives some count and
 * fails in the reader. */
#define PRESIZE_MAX 1024
static int count_items(const char *p, const char *end) {
  int depth = 0, items = 0;
  bool any = false;
  while (p < end) {
    char c = *p++;
    if (c == '"') {
      any = true;
      /* To the closing quote: the next quote not escaped, that is with an
       * even number of backslashes before it. */
      for (;;) {
        const char *q = memchr(p, '"', (size_t)(end - p));
        if (!q) { p = end; break; }
        size_t bs = 0;
        while (q - bs > p && q[-1 - (ptrdiff_t)bs] == '\\') bs++;
        p = q + 1;
        if (bs % 2 == 0) break;
      }
    } else if (c == '{' || c == '[') {
      any = true;
      depth++;
    } else if (c == '}' || c == ']') {
      if (depth-- == 0) break;
    } else if (c == ',') {
      if (depth == 0 && ++items >= PRESIZE_MAX) return PRESIZE_MAX;
    } else if (c != ' ' && c != '\n' && c != '\r' && c != '\t') {
      any = true;
    }
  }
  return any ? items + 1 : 0;
}

static int read_value(lua_State *L, rctx *d) {
  skip_ws(d);
  if (d->p >= d->end || ++d->depth > MAX_DEPTH_IN) return -1;
  luaL_checkstack(L, 4, "JSON nested too deep");
  int rc = 0;
  char c = *d->p;
  if (c == '{') {
    d->p++;
    lua_createtable(L, 0, count_items(d->p, d->end));
    skip_ws(d);
    if (d->p < d->end && *d->p == '}') d->p++;
    else for (;;) {
      skip_ws(d);
      if (d->p >= d->end || *d->p != '"' || read_string(L, d)) return -1;
      skip_ws(d);
      if (d->p >= d->end || *d->p++ != ':') return -1;
      if (read_value(L, d)) return -1;
      lua_rawset(L, -3);
      skip_ws(d);
      if (d->p < d->end && *d->p == ',') { d->p++; continue; }
      if (d->p < d->end && *d->p == '}') { d->p++; break; }
      return -1;
    }
  } else if (c == '[') {
    d->p++;
    lua_createtable(L, count_items(d->p, d->end), 0);
    skip_ws(d);
    lua_Integer i = 0;
    if (d->p < d->end && *d->p == ']') d->p++;
    else for (;;) {
      if (read_value(L, d)) return -1;
      lua_rawseti(L, -2, ++i);
      skip_ws(d);
      if (d->p < d->end && *d->p == ',') { d->p++; continue; }
      if (d->p < d->end && *d->p == ']') { d->p++; break; }
      return -1;
    }
  } else if (c == '"') {
    rc = read_string(L, d);
  } else if (d->end - d->p >= 4 && memcmp(d->p, "true", 4) == 0) {
    d->p += 4; lua_pushboolean(L, 1);
  } else if (d->end - d->p >= 5 && memcmp(d->p, "false", 5) == 0) {
    d->p += 5; lua_pushboolean(L, 0);
  } else if (d->end - d->p >= 4 && memcmp(d->p, "null", 4) == 0) {
    d->p += 4; lua_pushnil(L);
  } else {
    rc = read_number(L, d);
  }
  d->depth--;
  return rc;
}

int rt_lconv_decode(lua_State *L, const char *s, size_t n, size_t *bad_at) {
  int top = lua_gettop(L);
  rctx d = {s, s + n, 0};
  if (read_value(L, &d) == 0) {
    skip_ws(&d);
    if (d.p == d.end) return 0;
  }
  if (bad_at) *bad_at = (size_t)(d.p - s);
  lua_settop(L, top);
  return -1;
}

/* ---- jansson trees into Lua ---- */

void rt_lconv_push_tree(lua_State *L, const json_t *j) {
  luaL_checkstack(L, 4, "JSON nested too deep");
  switch (json_typeof(j)) {
  case JSON_OBJECT: {
    lua_createtable(L, 0, (int)json_object_size(j));
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)j, k, v) {
      if (json_is_null(v)) continue;
      rt_lconv_push_tree(L, v);
      lua_setfield(L, -2, k);
    }
    break;
  }
  case JSON_ARRAY: {
    lua_createtable(L, (int)json_array_size(j), 0);
    size_t i;
    json_t *v;
    json_array_foreach((json_t *)j, i, v) {
      rt_lconv_push_tree(L, v);
      lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    break;
  }
  case JSON_STRING: lua_pushlstring(L, json_string_value(j), json_string_length(j)); break;
  case JSON_INTEGER: lua_pushinteger(L, (lua_Integer)json_integer_value(j)); break;
  case JSON_REAL: lua_pushnumber(L, json_real_value(j)); break;
  case JSON_TRUE: lua_pushboolean(L, 1); break;
  case JSON_FALSE: lua_pushboolean(L, 0); break;
  default: lua_pushnil(L); break;
  }
}
