/* tgupd.c -- see tgupd.h. */
#include "tgupd.h"
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
