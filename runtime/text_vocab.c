/* text_vocab.c -- a persona's vocabulary and the intents read with it (see
 * text.h).
 *
 * The words are the persona's data (scripts/vitaly/lib/words.lua and the
 * shop's goods list): named classes of pcre2 alternatives over the normal
 * form. This file only compiles them and combines the fixed classes into
 * intents; it knows no Russian word itself.
 *
 * Each alternative is compiled alone first, so a broken one is reported by
 * its class and number; then a class is compiled once as (?:a1)|(?:a2)|...
 * with PCRE2_UCP (\b and \w know Cyrillic) and JIT where available.
 *
 * A class is tried on the normal form and, when the message has Latin
 * letters, on its Russian reading (rt_text_ru_buf): "net spasibo" is read
 * as "нет спасибо", "ok" still as "ok".
 *
 * The combination rules (the generic part of reading a reply):
 *  - NEED: the need class, or a part named without refusing (declined,
 *    stop, problem, circumstance), or a symptom naming a part that was not
 *    bought here ("стартер не крутит");
 *  - PROBLEM: the problem class or a symptom of something bought here
 *    ("колодки, что у вас брал, скрипят"), unless it is a circumstance
 *    ("разбил машину") or a symptom that wants a part;
 *  - LATER: the later class, or a date expression that is not a deadline
 *    or a near day next to a NEED ("нужны колодки к пятнице");
 *  - DECLINED: the declined class or a circumstance ("машину продал");
 *  - DONE: the done class, not NEED.
 * The other intents are their class as is. */
#include "text.h"
#include "buf.h"
#include "rt.h"
#include "re.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VOCAB_CLASSES 64

typedef struct {
  char *name;
  rt_buf src;          /* (?:a1)|(?:a2)... */
  int count;
  pcre2_code *re;
  bool jit_tried;      /* JIT-compiled on first use (see cls) */
} vclass;

struct rt_text_vocab {
  vclass cls[VOCAB_CLASSES];
  int ncls;
  bool built;
  char **models;       /* frame model codes, upper case */
  size_t nmodels, capmodels;
  int fixed[16];       /* class index of each fixed name, -1 when absent */
  pcre2_match_data *md;
  /* The last message, normalised, with the classes tried on it so far.
   * Flows ask text.is() several times about one message ("declined" or
   * "no" or "done"), and each question needs only the classes its intent
   * depends on. */
  struct {
    char *s, *norm, *ru;   /* ru: NULL when the same as norm */
    size_t len, rulen;
    uint64_t tried, hit;
    int later;             /* -1 not computed, else 0/1 */
  } memo;
};

enum { F_STOP, F_LATER, F_DECLINED, F_PROBLEM, F_NEED, F_PART, F_DONE, F_NO, F_YES,
       F_THANKS, F_CIRCUMSTANCE, F_SYMPTOM, F_PURCHASE, F_COUNT };
static const char *const fixed_names[F_COUNT] = {
  "stop", "later", "declined", "problem", "need", "part", "done", "no", "yes", "thanks",
  "circumstance", "symptom", "purchase"};

rt_text_vocab *rt_text_vocab_new(void) {
  rt_text_vocab *v = rt_xcalloc(1, sizeof *v);
  for (int i = 0; i < F_COUNT; i++) v->fixed[i] = -1;
  v->memo.later = -1;
  return v;
}

void rt_text_vocab_free(rt_text_vocab *v) {
  if (!v) return;
  for (int i = 0; i < v->ncls; i++) {
    free(v->cls[i].name);
    rt_buf_free(&v->cls[i].src);
    pcre2_code_free(v->cls[i].re);
  }
  for (size_t i = 0; i < v->nmodels; i++) free(v->models[i]);
  free(v->models);
  pcre2_match_data_free(v->md);
  free(v->memo.s);
  free(v->memo.norm);
  free(v->memo.ru);
  free(v);
}

static int find_class(const rt_text_vocab *v, const char *name) {
  for (int i = 0; i < v->ncls; i++)
    if (!strcmp(v->cls[i].name, name)) return i;
  return -1;
}

static bool valid_name(const char *name) {
  if (!name || !*name || strlen(name) > 40) return false;
  for (const char *p = name; *p; p++)
    if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_')) return false;
  return true;
}

static pcre2_code *compile(const char *src, size_t n, char **err) {
  return rt_re_compile(src, n, PCRE2_CASELESS, err);
}

int rt_text_vocab_add(rt_text_vocab *v, const char *name, const char *pattern, char **err) {
  *err = NULL;
  if (v->built) {
    *err = rt_xstrdup("the vocabulary is already built");
    return RT_EINVAL;
  }
  if (!valid_name(name)) {
    *err = rt_xasprintf("bad class name '%s' (a-z, 0-9, _)", name ? name : "");
    return RT_EINVAL;
  }
  if (!pattern || !*pattern) {
    *err = rt_xstrdup("empty pattern");
    return RT_EINVAL;
  }
  pcre2_code *re = compile(pattern, PCRE2_ZERO_TERMINATED, err);
  if (!re) return RT_EINVAL;
  pcre2_code_free(re);
  int i = find_class(v, name);
  if (i < 0) {
    if (v->ncls >= VOCAB_CLASSES) {
      *err = rt_xasprintf("more than %d word classes", VOCAB_CLASSES);
      return RT_EINVAL;
    }
    i = v->ncls++;
    v->cls[i].name = rt_xstrdup(name);
    v->cls[i].src = (rt_buf)RT_BUF_INIT;
  }
  vclass *c = &v->cls[i];
  if (c->count++) rt_buf_add(&c->src, "|", 1);
  rt_buf_add(&c->src, "(?:", 3);
  rt_buf_add(&c->src, pattern, strlen(pattern));
  rt_buf_add(&c->src, ")", 1);
  return RT_OK;
}

int rt_text_vocab_model(rt_text_vocab *v, const char *code) {
  size_t n = code ? strlen(code) : 0;
  if (n < 2 || n > 8) return RT_EINVAL;
  char up[9];
  for (size_t i = 0; i < n; i++) {
    char ch = code[i];
    if (ch >= 'a' && ch <= 'z') ch = (char)(ch - 32);
    if (!((ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9'))) return RT_EINVAL;
    up[i] = ch;
  }
  up[n] = '\0';
  if (v->nmodels == v->capmodels) {
    v->capmodels = v->capmodels ? v->capmodels * 2 : 32;
    v->models = rt_xrealloc(v->models, v->capmodels * sizeof *v->models);
  }
  v->models[v->nmodels++] = rt_xstrdup(up);
  return RT_OK;
}

const char *const *rt_text_vocab_models(const rt_text_vocab *v, size_t *n) {
  *n = v ? v->nmodels : 0;
  return v ? (const char *const *)v->models : NULL;
}

int rt_text_vocab_build(rt_text_vocab *v, char **err) {
  *err = NULL;
  for (int i = 0; i < v->ncls; i++) {
    vclass *c = &v->cls[i];
    char *e = NULL;
    c->re = compile(rt_buf_str(&c->src), c->src.len, &e);
    if (!c->re) {
      *err = rt_xasprintf("class %s: %s", c->name, e);
      free(e);
      return RT_EINVAL;
    }
  }
  for (int f = 0; f < F_COUNT; f++) v->fixed[f] = find_class(v, fixed_names[f]);
  v->md = pcre2_match_data_create(4, NULL);
  v->built = true;
  return RT_OK;
}

bool rt_text_vocab_has(const rt_text_vocab *v, const char *name) {
  return v && name && find_class(v, name) >= 0;
}

/* ---- reading one message --------------------------------------------- */

static void memo_for(rt_text_vocab *v, const char *s) {
  if (v->memo.s && strcmp(v->memo.s, s) == 0) return;
  free(v->memo.s);
  free(v->memo.norm);
  free(v->memo.ru);
  v->memo.s = rt_xstrdup(s);
  v->memo.norm = rt_text_norm(s);
  v->memo.len = strlen(v->memo.norm);
  v->memo.ru = NULL;
  bool latin = false;
  for (size_t i = 0; i < v->memo.len && !latin; i++)
    latin = v->memo.norm[i] >= 'a' && v->memo.norm[i] <= 'z';
  if (latin) {
    char *ru = rt_xmalloc(2 * v->memo.len + 1);
    size_t n = rt_text_ru_buf(v->memo.norm, v->memo.len, ru);
    if (n == v->memo.len && memcmp(ru, v->memo.norm, n) == 0) {
      free(ru);
    } else {
      v->memo.ru = ru;
      v->memo.rulen = n;
    }
  }
  v->memo.tried = v->memo.hit = 0;
  v->memo.later = -1;
}

static bool match_in(rt_text_vocab *v, int i, const char *s, size_t n) {
  /* the normal form and its reading are valid UTF-8 by construction */
  return v->md && pcre2_match(v->cls[i].re, (PCRE2_SPTR)s, n, 0, PCRE2_NO_UTF_CHECK, v->md,
                              NULL) >= 0;
}

static bool cls(rt_text_vocab *v, int i) {
  if (i < 0 || !v->cls[i].re) return false;
  uint64_t bit = (uint64_t)1 << i;
  if (!(v->memo.tried & bit)) {
    v->memo.tried |= bit;
    /* JIT makes a class several times cheaper per message; where JIT is
     * unavailable the interpreter still works. It is done when the class
     * is first read, not when the flows load: the machine code of all the
     * classes is half a megabyte, and the JIT compiler's own pages as
     * much again, which a bot idle after start (or a reload that fails
     * its checks) does not need. */
    if (!v->cls[i].jit_tried) {
      v->cls[i].jit_tried = true;
      pcre2_jit_compile(v->cls[i].re, PCRE2_JIT_COMPLETE);
    }
    if (match_in(v, i, v->memo.norm, v->memo.len) ||
        (v->memo.ru && match_in(v, i, v->memo.ru, v->memo.rulen)))
      v->memo.hit |= bit;
  }
  return (v->memo.hit & bit) != 0;
}

static bool fx(rt_text_vocab *v, int f) { return cls(v, v->fixed[f]); }

static bool is_declined(rt_text_vocab *v) {
  return fx(v, F_DECLINED) || fx(v, F_CIRCUMSTANCE);
}

/* A symptom that names a part and is not about something bought here
 * ("стартер не крутит", "треснуло лобовое") wants that part. */
static bool symptom_need(rt_text_vocab *v) {
  return fx(v, F_SYMPTOM) && fx(v, F_PART) && !fx(v, F_PURCHASE);
}

static bool is_problem(rt_text_vocab *v) {
  if (fx(v, F_CIRCUMSTANCE) || symptom_need(v)) return false;
  return fx(v, F_PROBLEM) || (fx(v, F_SYMPTOM) && fx(v, F_PURCHASE));
}

static bool is_need(rt_text_vocab *v) {
  if (fx(v, F_CIRCUMSTANCE)) return false;
  return fx(v, F_NEED) || symptom_need(v) ||
         (fx(v, F_PART) && !is_declined(v) && !fx(v, F_STOP) && !is_problem(v));
}

static bool is_later(rt_text_vocab *v) {
  if (fx(v, F_LATER)) return true;
  if (v->memo.later < 0) {
    const char *k;
    bool deadline;
    v->memo.later = 0;
    if (rt_text_date_in_norm(v->memo.ru ? v->memo.ru : v->memo.norm, &k, &deadline)) {
      bool soon = !strcmp(k, "tomorrow") || !strcmp(k, "after_tomorrow") ||
                  !strcmp(k, "weekday") || !strcmp(k, "weekend") || !strcmp(k, "next_week");
      v->memo.later = !(is_need(v) && (deadline || soon));
    }
  }
  return v->memo.later == 1;
}

static bool intent_is(rt_text_vocab *v, unsigned bit) {
  switch (bit) {
  case RT_INTENT_STOP: return fx(v, F_STOP);
  case RT_INTENT_LATER: return is_later(v);
  case RT_INTENT_DECLINED: return is_declined(v);
  case RT_INTENT_PROBLEM: return is_problem(v);
  case RT_INTENT_NEED: return is_need(v);
  case RT_INTENT_DONE: return fx(v, F_DONE) && !is_need(v);
  case RT_INTENT_NO: return fx(v, F_NO);
  case RT_INTENT_YES: return fx(v, F_YES);
  case RT_INTENT_THANKS: return fx(v, F_THANKS);
  default: return false;
  }
}

bool rt_text_vocab_is(rt_text_vocab *v, const char *s, unsigned bit) {
  if (!v || !v->built || !s) return false;
  memo_for(v, s);
  return intent_is(v, bit);
}

unsigned rt_text_vocab_intents(rt_text_vocab *v, const char *s) {
  if (!v || !v->built || !s) return 0;
  memo_for(v, s);
  unsigned bits = 0;
  for (unsigned bit = 1; bit & RT_INTENT_ALL; bit <<= 1)
    if (intent_is(v, bit)) bits |= bit;
  return bits;
}

bool rt_text_vocab_match(rt_text_vocab *v, const char *s, const char *name) {
  if (!v || !v->built || !s || !name) return false;
  int i = find_class(v, name);
  if (i < 0) return false;
  memo_for(v, s);
  return cls(v, i);
}

/* ---- intent names ------------------------------------------------------ */

static const struct { unsigned bit; const char *name; } intent_names[] = {
  {RT_INTENT_STOP, "stop"},       {RT_INTENT_LATER, "later"}, {RT_INTENT_DECLINED, "declined"},
  {RT_INTENT_PROBLEM, "problem"}, {RT_INTENT_NEED, "need"},   {RT_INTENT_DONE, "done"},
  {RT_INTENT_NO, "no"},           {RT_INTENT_YES, "yes"},     {RT_INTENT_THANKS, "thanks"},
};

const char *rt_text_vocab_intent(rt_text_vocab *v, const char *s) {
  unsigned bits = rt_text_vocab_intents(v, s);
  for (size_t i = 0; i < RT_ARRAY_LEN(intent_names); i++)
    if (bits & intent_names[i].bit) return intent_names[i].name;
  return NULL;
}

const char *rt_text_intent_name(unsigned bit) {
  for (size_t i = 0; i < RT_ARRAY_LEN(intent_names); i++)
    if (bit == intent_names[i].bit) return intent_names[i].name;
  return NULL;
}

unsigned rt_text_intent_bit(const char *name) {
  if (!name) return 0;
  for (size_t i = 0; i < RT_ARRAY_LEN(intent_names); i++)
    if (!strcmp(name, intent_names[i].name)) return intent_names[i].bit;
  return 0;
}
