/* tgupd.c -- see tgupd.h. */
#include "tgupd.h"
#include "buf.h"
#include "lconv.h"
#include "rt.h"
#include "utf8.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 64

/* -1 from any reader: malformed, or something the reader does not vouch
 * for; the whole answer then goes to jansson. */
typedef struct {
  const char *p, *end;
  char *out;                 /* next free byte of the arena */
  int depth;
} sc;

static void ws(sc *s) {
  while (s->p < s->end && (*s->p == ' ' || *s->p == '\n' || *s->p == '\r' || *s->p == '\t'))
    s->p++;
}

static bool lit(sc *s, const char *w, size_t n) {
  if ((size_t)(s->end - s->p) < n || memcmp(s->p, w, n) != 0) return false;
  s->p += n;
  return true;
}

/* A string at s->p (its opening quote), decoded into the arena as a
 * NUL-terminated string (*v), or only checked when v is NULL. Refused as
 * jansson refuses them: control bytes, broken UTF-8, \u0000, lone
 * surrogates. */
static int str(sc *s, const char **v) {
  s->p++;
  char *o = s->out;
  for (;;) {
    /* a run without escapes (valid UTF-8 checked on the way), copied at
     * once */
    const char *run = s->p;
    while (s->p < s->end) {
      unsigned char c = (unsigned char)*s->p;
      if (c >= 0x80) {
        size_t len;
        if (rt_utf8_decode(s->p, (size_t)(s->end - s->p), &len) == RT_UTF8_BAD) return -1;
        s->p += len;
        continue;
      }
      if (c == '"' || c == '\\' || c < 0x20) break;
      s->p++;
    }
    if (v && s->p > run) {
      memcpy(o, run, (size_t)(s->p - run));
      o += s->p - run;
    }
    if (s->p >= s->end) return -1;
    unsigned char c = (unsigned char)*s->p;
    if (c == '"') {
      s->p++;
      if (v) {
        *o++ = '\0';
        *v = s->out;
        s->out = o;
      }
      return 0;
    }
    if (c == '\\') {
      s->p++;
      uint32_t cp;
      if (rt_lconv_escape(&s->p, s->end, &cp) != 0 || cp == 0) return -1;
      if (v) o += rt_utf8_encode(cp, o);
      continue;
    }
    return -1;   /* a control byte */
  }
}

/* A number: *is_int and, for an integer within int64, *iv. A real is
 * checked as jansson does (it refuses one that overflows a double). */
static int num(sc *s, bool *is_int, int64_t *iv) {
  const char *b = s->p;
  if (s->p < s->end && *s->p == '-') s->p++;
  if (s->p >= s->end) return -1;
  if (*s->p == '0') s->p++;
  else if (*s->p >= '1' && *s->p <= '9')
    while (s->p < s->end && *s->p >= '0' && *s->p <= '9') s->p++;
  else return -1;
  bool real = false;
  if (s->p < s->end && *s->p == '.') {
    real = true;
    s->p++;
    if (s->p >= s->end || *s->p < '0' || *s->p > '9') return -1;
    while (s->p < s->end && *s->p >= '0' && *s->p <= '9') s->p++;
  }
  if (s->p < s->end && (*s->p == 'e' || *s->p == 'E')) {
    real = true;
    s->p++;
    if (s->p < s->end && (*s->p == '+' || *s->p == '-')) s->p++;
    if (s->p >= s->end || *s->p < '0' || *s->p > '9') return -1;
    while (s->p < s->end && *s->p >= '0' && *s->p <= '9') s->p++;
  }
  *is_int = !real;
  if (real) {
    char tmp[64];
    size_t n = (size_t)(s->p - b);
    if (n >= sizeof tmp) return -1;   /* jansson may read it; we do not vouch */
    memcpy(tmp, b, n);
    tmp[n] = '\0';
    return isinf(strtod(tmp, NULL)) ? -1 : 0;
  }
  /* Within int64, as jansson wants it (it refuses a bigger integer). */
  bool neg = *b == '-';
  uint64_t u = 0, lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
  for (const char *d = neg ? b + 1 : b; d < s->p; d++) {
    unsigned k = (unsigned)(*d - '0');
    if (u > (lim - k) / 10) return -1;
    u = u * 10 + k;
  }
  *iv = neg ? (u == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)u) : (int64_t)u;
  return 0;
}

static int skip(sc *s);

/* An object or array at s->p, checked and passed over. */
static int skip_compound(sc *s) {
  char close = *s->p == '{' ? '}' : ']';
  bool obj = close == '}';
  if (++s->depth > MAX_DEPTH) return -1;
  s->p++;
  ws(s);
  if (s->p < s->end && *s->p == close) {
    s->p++;
    s->depth--;
    return 0;
  }
  for (;;) {
    if (obj) {
      if (s->p >= s->end || *s->p != '"' || str(s, NULL)) return -1;
      ws(s);
      if (s->p >= s->end || *s->p != ':') return -1;
      s->p++;
      ws(s);
    }
    if (skip(s)) return -1;
    ws(s);
    if (s->p >= s->end) return -1;
    if (*s->p == ',') {
      s->p++;
      ws(s);
      continue;
    }
    if (*s->p != close) return -1;
    s->p++;
    s->depth--;
    return 0;
  }
}

static int skip(sc *s) {
  if (s->p >= s->end) return -1;
  bool is_int;
  int64_t iv;
  switch (*s->p) {
  case '{': case '[': return skip_compound(s);
  case '"': return str(s, NULL);
  case 't': return lit(s, "true", 4) ? 0 : -1;
  case 'f': return lit(s, "false", 5) ? 0 : -1;
  case 'n': return lit(s, "null", 4) ? 0 : -1;
  default: return num(s, &is_int, &iv);
  }
}

/* The keys of the object at s->p, one at a time: 1 with *key (decoded
 * into the arena) and s->p at its value, 0 at the end (past '}'), -1. */
typedef struct {
  bool first;
} objit;

static int obj_next(sc *s, objit *it, const char **key) {
  ws(s);
  if (it->first) {
    it->first = false;
    if (s->p < s->end && *s->p == '}') {
      s->p++;
      return 0;
    }
  } else {
    if (s->p >= s->end) return -1;
    if (*s->p == '}') {
      s->p++;
      return 0;
    }
    if (*s->p != ',') return -1;
    s->p++;
    ws(s);
  }
  if (s->p >= s->end || *s->p != '"' || str(s, key)) return -1;
  ws(s);
  if (s->p >= s->end || *s->p != ':') return -1;
  s->p++;
  ws(s);
  return 1;
}

/* Opens the object at s->p. */
static int obj_open(sc *s, objit *it) {
  if (s->p >= s->end || *s->p != '{' || ++s->depth > MAX_DEPTH) return -1;
  s->p++;
  it->first = true;
  return 0;
}

/* A value the fast path takes: an integer (*ok false for another type, the
 * value passed over), or a string. */
static int take_int(sc *s, int64_t *v, bool *ok) {
  *ok = false;
  if (s->p < s->end && (*s->p == '-' || (*s->p >= '0' && *s->p <= '9'))) {
    bool is_int;
    int64_t iv;
    if (num(s, &is_int, &iv)) return -1;
    if (is_int) {
      *v = iv;
      *ok = true;
    }
    return 0;
  }
  return skip(s);
}

static int take_str(sc *s, const char **v) {
  *v = NULL;
  if (s->p < s->end && *s->p == '"') return str(s, v);
  return skip(s);
}

/* Bits of the keys already seen in one object: a second one leaves the
 * update to jansson (which keeps the last). */
static void once(unsigned *seen, unsigned bit, bool *fast) {
  if (*seen & bit) *fast = false;
  *seen |= bit;
}

/* message.from or message.chat. */
static int read_party(sc *s, rt_tgupd *u, bool chat, bool *fast) {
  objit it;
  const char *k;
  unsigned seen = 0;
  int rc;
  bool ok, is_private = false, has_id = false;
  if (obj_open(s, &it)) return -1;
  while ((rc = obj_next(s, &it, &k)) == 1) {
    if (strcmp(k, "id") == 0) {
      once(&seen, 1, fast);
      if (take_int(s, chat ? &u->chat_id : &u->from_id, &ok)) return -1;
      has_id = ok;
    } else if (chat && strcmp(k, "type") == 0) {
      const char *ty;
      once(&seen, 2, fast);
      if (take_str(s, &ty)) return -1;
      is_private = ty && strcmp(ty, "private") == 0;
    } else if (!chat && strcmp(k, "is_bot") == 0) {
      once(&seen, 2, fast);
      if (s->p < s->end && *s->p == 't') *fast = false;   /* a bot's: skipped by the channel */
      if (skip(s)) return -1;
    } else if (!chat && strcmp(k, "first_name") == 0) {
      once(&seen, 4, fast);
      if (take_str(s, &u->first_name)) return -1;
    } else if (!chat && strcmp(k, "last_name") == 0) {
      once(&seen, 8, fast);
      if (take_str(s, &u->last_name)) return -1;
    } else if (!chat && strcmp(k, "username") == 0) {
      once(&seen, 16, fast);
      if (take_str(s, &u->username)) return -1;
    } else if (skip(s)) {
      return -1;
    }
  }
  if (rc < 0) return -1;
  s->depth--;
  if (chat && (!has_id || !is_private)) *fast = false;
  if (!chat) u->has_from_id = has_id;
  return 0;
}

static int read_message(sc *s, rt_tgupd *u, bool *fast) {
  objit it;
  const char *k;
  unsigned seen = 0;
  int rc;
  bool ok, chat = false, from = false;
  if (obj_open(s, &it)) return -1;
  while ((rc = obj_next(s, &it, &k)) == 1) {
    if (strcmp(k, "chat") == 0 || strcmp(k, "from") == 0) {
      bool is_chat = k[0] == 'c';
      once(&seen, is_chat ? 1 : 2, fast);
      if (s->p < s->end && *s->p == '{') {
        if (read_party(s, u, is_chat, fast)) return -1;
        if (is_chat) chat = true;
        else from = true;
      } else {
        *fast = false;
        if (skip(s)) return -1;
      }
    } else if (strcmp(k, "message_id") == 0) {
      once(&seen, 4, fast);
      if (take_int(s, &u->message_id, &ok)) return -1;
      u->has_message_id = ok;
    } else if (strcmp(k, "text") == 0) {
      once(&seen, 8, fast);
      if (take_str(s, &u->text)) return -1;
    } else if (strcmp(k, "media_group_id") == 0) {
      once(&seen, 16, fast);
      if (take_str(s, &u->media_group_id)) return -1;
    } else if (skip(s)) {
      return -1;
    }
  }
  if (rc < 0) return -1;
  s->depth--;
  if (!chat || !from || !u->text) *fast = false;
  return 0;
}

static int read_update(sc *s, rt_tgupd *u) {
  objit it;
  const char *k;
  unsigned seen = 0;
  int rc;
  bool ok, fast = true, msg = false;
  if (obj_open(s, &it)) return -1;
  while ((rc = obj_next(s, &it, &k)) == 1) {
    if (strcmp(k, "update_id") == 0) {
      once(&seen, 1, &fast);
      if (take_int(s, &u->update_id, &ok)) return -1;
      u->has_id = ok;
    } else if (strcmp(k, "message") == 0) {
      once(&seen, 2, &fast);
      if (s->p < s->end && *s->p == '{') {
        if (read_message(s, u, &fast)) return -1;
        msg = true;
      } else {
        fast = false;
        if (skip(s)) return -1;
      }
    } else if (skip(s)) {
      return -1;
    }
  }
  if (rc < 0) return -1;
  s->depth--;
  u->fast = fast && msg && u->has_id;
  return 0;
}

static rt_tgupd *push(rt_tgupd_batch *b) {
  if (b->n == b->cap) {
    b->cap = b->cap ? b->cap * 2 : 64;
    b->u = rt_xrealloc(b->u, b->cap * sizeof *b->u);
  }
  rt_tgupd *u = &b->u[b->n++];
  memset(u, 0, sizeof *u);
  return u;
}

static int read_result(sc *s, rt_tgupd_batch *b) {
  if (++s->depth > MAX_DEPTH) return -1;
  s->p++;
  ws(s);
  if (s->p < s->end && *s->p == ']') {
    s->p++;
    s->depth--;
    return 0;
  }
  for (;;) {
    rt_tgupd *u = push(b);
    u->start = s->p;
    if (s->p < s->end && *s->p == '{') {
      if (read_update(s, u)) return -1;
    } else if (skip(s)) {   /* not an update: the channel passes over it */
      return -1;
    }
    u->len = (size_t)(s->p - u->start);
    ws(s);
    if (s->p >= s->end) return -1;
    if (*s->p == ',') {
      s->p++;
      ws(s);
      continue;
    }
    if (*s->p != ']') return -1;
    s->p++;
    s->depth--;
    return 0;
  }
}

int rt_tgupd_read(const char *text, size_t n, rt_tgupd_batch *b) {
  rt_tgupd_free(b);
  /* Decoded strings are never longer than their text with its quotes. */
  b->arena = rt_xmalloc(n + 1);
  sc s = {.p = text, .end = text + n, .out = b->arena};
  objit it;
  const char *k;
  int rc;
  bool ok = false, result = false;
  ws(&s);
  if (obj_open(&s, &it)) goto bad;
  while ((rc = obj_next(&s, &it, &k)) == 1) {
    if (strcmp(k, "ok") == 0) {
      if (ok || !lit(&s, "true", 4)) goto bad;
      ok = true;
    } else if (strcmp(k, "result") == 0) {
      if (result || s.p >= s.end || *s.p != '[' || read_result(&s, b)) goto bad;
      result = true;
    } else if (skip(&s)) {
      goto bad;
    }
  }
  if (rc < 0 || !ok || !result) goto bad;
  ws(&s);
  if (s.p != s.end) goto bad;
  return 0;
bad:
  rt_tgupd_free(b);
  return -1;
}

void rt_tgupd_free(rt_tgupd_batch *b) {
  free(b->u);
  free(b->arena);
  memset(b, 0, sizeof *b);
}

bool rt_tgupd_whole(const char *text, size_t n) {
  sc s = {.p = text, .end = text + n};
  ws(&s);
  if (skip(&s)) return false;
  ws(&s);
  return s.p == s.end;
}

/* ---- the loose reader (tgupd.h, an answer jansson refuses) ----
 *
 * It vouches for nothing inside a string or a scalar: it only finds where
 * each ends, so a text jansson refuses is still cut where jansson would
 * have cut it. */

static const char *lws(const char *p, const char *end) {
  while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')) p++;
  return p;
}

/* Past the string at *p (its opening quote); false when it does not end. */
static bool loose_str(const char **p, const char *end) {
  const char *q = *p + 1;
  while (q < end) {
    if (*q == '\\') {
      q += 2;
      continue;
    }
    if (*q == '"') {
      *p = q + 1;
      return true;
    }
    q++;
  }
  return false;
}

static bool delim(char c) {
  return c == ',' || c == ']' || c == '}' || c == ' ' || c == '\n' || c == '\r' || c == '\t';
}

/* Past the value at *p: a string, an object or array (to the close that
 * brings the nesting back, strings passed over whole), or a scalar (to the
 * next delimiter). false when it does not end before end. */
static bool loose_value(const char **p, const char *end) {
  const char *q = *p;
  if (q >= end) return false;
  if (*q == '"') return loose_str(p, end);
  if (*q == '{' || *q == '[') {
    size_t depth = 0;
    while (q < end) {
      char c = *q;
      if (c == '"') {
        if (!loose_str(&q, end)) return false;
        continue;
      }
      if (c == '{' || c == '[') {
        depth++;
      } else if ((c == '}' || c == ']') && --depth == 0) {
        *p = q + 1;
        return true;
      }
      q++;
    }
    return false;
  }
  while (q < end && !delim(*q)) q++;
  if (q == *p || q >= end) return false;   /* a scalar is followed by something */
  *p = q;
  return true;
}

/* The next key of an object whose '{' (first) or previous value was passed:
 * 1 with the key's raw text and *p at its value, 0 past the closing '}',
 * -1 broken or cut short. */
static int loose_next(const char **p, const char *end, bool first, const char **k, size_t *kn) {
  const char *q = lws(*p, end);
  if (q >= end) return -1;
  if (*q == '}') {
    *p = q + 1;
    return 0;
  }
  if (!first) {
    if (*q != ',') return -1;
    q = lws(q + 1, end);
  }
  if (q >= end || *q != '"') return -1;
  const char *ks = q + 1;
  if (!loose_str(&q, end)) return -1;
  *k = ks;
  *kn = (size_t)(q - 1 - ks);
  q = lws(q, end);
  if (q >= end || *q != ':') return -1;
  *p = lws(q + 1, end);
  return 1;
}

static bool key_is(const char *k, size_t kn, const char *want) {
  return kn == strlen(want) && memcmp(k, want, kn) == 0;
}

/* An integer within int64 at p, followed by a delimiter (a number cut by
 * the end of the text is not read: it may be longer). */
static bool loose_int(const char *p, const char *end, int64_t *v) {
  bool neg = p < end && *p == '-';
  const char *d = neg ? p + 1 : p;
  uint64_t u = 0, lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
  const char *b = d;
  for (; d < end && *d >= '0' && *d <= '9'; d++) {
    unsigned k = (unsigned)(*d - '0');
    if (u > (lim - k) / 10) return false;
    u = u * 10 + k;
  }
  if (d == b || d >= end || !delim(*d)) return false;
  *v = neg ? (u == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)u) : (int64_t)u;
  return true;
}

bool rt_tgupd_id(const char *s, size_t n, int64_t *id) {
  const char *p = lws(s, s + n), *end = s + n, *k;
  size_t kn;
  if (p >= end || *p != '{') return false;
  p++;
  for (bool first = true;; first = false) {
    if (loose_next(&p, end, first, &k, &kn) != 1) return false;
    if (key_is(k, kn, "update_id")) return loose_int(p, end, id);
    if (!loose_value(&p, end)) return false;
  }
}

/* "ok" of the answer at p: false when it is there and not true. */
static bool loose_ok(const char *p, const char *end, bool *ok) {
  if ((size_t)(end - p) < 4 || memcmp(p, "true", 4) != 0) return false;
  *ok = true;
  return true;
}

/* At the first element of the answer's result array (past its '['), *p,
 * *ok when "ok":true came before it; false when the answer is not an
 * object with such an array, or breaks first. */
static bool loose_result(const char **p, const char *end, bool *ok) {
  const char *q = lws(*p, end), *k;
  size_t kn;
  *ok = false;
  if (q >= end || *q != '{') return false;
  q++;
  for (bool first = true;; first = false) {
    if (loose_next(&q, end, first, &k, &kn) != 1) return false;
    if (key_is(k, kn, "ok") && !loose_ok(q, end, ok)) return false;
    if (key_is(k, kn, "result")) {
      if (q >= end || *q != '[') return false;
      *p = lws(q + 1, end);
      return true;
    }
    if (!loose_value(&q, end)) return false;
  }
}

bool rt_tgupd_first_id(const char *s, size_t n, int64_t *id) {
  const char *p = s, *end = s + n;
  bool ok;
  return loose_result(&p, end, &ok) && rt_tgupd_id(p, (size_t)(end - p), id);
}

int rt_tgupd_split(const char *s, size_t n, rt_tgupd_span **out, size_t *count) {
  const char *p = s, *end = s + n, *k;
  size_t kn, cap = 0, cnt = 0;
  rt_tgupd_span *v = NULL;
  bool ok;
  *out = NULL;
  *count = 0;
  if (!loose_result(&p, end, &ok)) return -1;
  if (p < end && *p == ']') {
    p++;
  } else {
    for (;;) {
      const char *b = p;
      if (!loose_value(&p, end)) goto bad;
      if (cnt == cap) v = rt_xrealloc(v, (cap = cap ? cap * 2 : 16) * sizeof *v);
      v[cnt++] = (rt_tgupd_span){b, (size_t)(p - b)};
      p = lws(p, end);
      if (p >= end) goto bad;
      if (*p == ']') {
        p++;
        break;
      }
      if (*p != ',') goto bad;
      p = lws(p + 1, end);
    }
  }
  /* The answer's other keys after the array, and its close: an answer cut
   * short is not taken, however many updates it held whole. */
  for (;;) {
    int rc = loose_next(&p, end, false, &k, &kn);
    if (rc < 0) goto bad;
    if (rc == 0) break;
    if (key_is(k, kn, "ok") && !loose_ok(p, end, &ok)) goto bad;
    if (!loose_value(&p, end)) goto bad;
  }
  if (!ok || lws(p, end) != end) goto bad;
  *out = v;
  *count = cnt;
  return 0;
bad:
  free(v);
  return -1;
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* The code unit of a \uXXXX at p (its backslash), or -1. */
static long u_escape(const char *p, const char *end) {
  if (end - p < 6 || p[0] != '\\' || p[1] != 'u') return -1;
  long u = 0;
  for (int i = 2; i < 6; i++) {
    int h = hexval(p[i]);
    if (h < 0) return -1;
    u = u * 16 + h;
  }
  return u;
}

/* The string at *p (its opening quote), copied to out with what jansson
 * refuses replaced (tgupd.h); the replacements counted in *fixed. */
static void repair_str(const char **pp, const char *end, rt_buf *out, size_t *fixed) {
  const char *p = *pp;
  rt_buf_addc(out, *p++);
  while (p < end) {
    unsigned char c = (unsigned char)*p;
    if (c == '"') {
      rt_buf_addc(out, '"');
      p++;
      break;
    }
    if (c == '\\') {
      long u = u_escape(p, end);
      if (u < 0) {   /* another escape (or a broken one, left to jansson) */
        size_t k = end - p >= 2 ? 2 : 1;
        rt_buf_add(out, p, k);
        p += k;
        continue;
      }
      if (u >= 0xD800 && u < 0xDC00) {
        long lo = u_escape(p + 6, end);
        if (lo >= 0xDC00 && lo < 0xE000) {   /* a whole pair */
          rt_buf_add(out, p, 12);
          p += 12;
          continue;
        }
      }
      if (u == 0 || (u >= 0xD800 && u < 0xE000)) {
        rt_buf_adds(out, "\\ufffd");
        (*fixed)++;
      } else {
        rt_buf_add(out, p, 6);
      }
      p += 6;
      continue;
    }
    if (c < 0x20) {   /* a raw control byte: escaped as JSON wants it */
      if (c == 0) rt_buf_adds(out, "\\ufffd");
      else rt_buf_printf(out, "\\u%04x", c);
      (*fixed)++;
      p++;
      continue;
    }
    if (c >= 0x80) {
      size_t len;
      if (rt_utf8_decode(p, (size_t)(end - p), &len) == RT_UTF8_BAD) {
        rt_buf_adds(out, "\xEF\xBF\xBD");
        (*fixed)++;
      } else {
        rt_buf_add(out, p, len);
      }
      p += len;
      continue;
    }
    rt_buf_addc(out, (char)c);
    p++;
  }
  *pp = p;
}

size_t rt_tgupd_repair(const char *s, size_t n, rt_buf *out) {
  const char *p = s, *end = s + n;
  size_t fixed = 0;
  while (p < end) {
    char c = *p;
    if (c == '"') {
      repair_str(&p, end, out, &fixed);
      continue;
    }
    if (c == '-' || (c >= '0' && c <= '9')) {
      /* A number (outside strings nothing else starts so): an integer
       * jansson would refuse becomes a real. */
      const char *b = p;
      bool is_int = true;
      while (p < end && (*p == '-' || *p == '+' || *p == '.' || *p == 'e' || *p == 'E' ||
                         (*p >= '0' && *p <= '9'))) {
        if (*p == '.' || *p == 'e' || *p == 'E') is_int = false;
        p++;
      }
      rt_buf_add(out, b, (size_t)(p - b));
      sc t = {.p = b, .end = p};
      bool ii;
      int64_t iv;
      if (is_int && p[-1] >= '0' && p[-1] <= '9' && num(&t, &ii, &iv) != 0 && t.p == p) {
        rt_buf_adds(out, ".0");
        fixed++;
      }
      continue;
    }
    rt_buf_addc(out, c);
    p++;
  }
  return fixed;
}
