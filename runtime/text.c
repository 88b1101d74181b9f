/* text.c -- normal form, car ids, phones, dates, the Russian reading of Latin
 * letters (see text.h); the intents are text_vocab.c.
 *
 * Car ids, phones and plates are found by small hand-written scanners over
 * code points, dates by rules over word tokens of the normal form. Each part
 * starts with a comment on the choices that are not obvious from the code. */
#include "text.h"
#include "rt.h"
#include "tz.h"
#include "utf8.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ======================================================================
 * UTF-8
 * ====================================================================== */

/* The codec is utf8.h's; BAD_CP names its "invalid byte" here. */
#define BAD_CP RT_UTF8_BAD

static bool is_space(uint32_t cp) {
  return cp == 0 || cp == ' ' || (cp >= '\t' && cp <= '\r') || cp == 0x85 ||
         cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200B) ||
         cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F ||
         cp == 0x3000 || cp == 0xFEFF;
}

/* Every case pair we map keeps its UTF-8 length, which is what lets
 * rt_text_norm_buf promise an output no longer than its input. */
static uint32_t lower(uint32_t cp) {
  if (cp >= 'A' && cp <= 'Z') return cp + 32;
  if (cp >= 0xC0 && cp <= 0xDE && cp != 0xD7) return cp + 32;
  if (cp >= 0x410 && cp <= 0x42F) return cp + 32;
  if (cp == 0x401 || cp == 0x451) return 0x435; /* Ё ё -> е */
  if (cp >= 0x400 && cp <= 0x40F) return cp + 0x50;
  return cp;
}

static bool is_cyr(uint32_t cp) { return cp >= 0x400 && cp <= 0x4FF; }
static bool is_latin_ext(uint32_t cp) {
  return cp >= 0xC0 && cp <= 0x24F && cp != 0xD7 && cp != 0xF7;
}

/* ======================================================================
 * Normal form
 * ====================================================================== */

size_t rt_text_norm_buf(const char *s, size_t n, char *out) {
  const unsigned char *u = (const unsigned char *)s;
  size_t o = 0;
  bool gap = false;
  for (size_t i = 0; i < n;) {
    size_t l;
    uint32_t cp = rt_utf8_decode((const char *)u + i, n - i, &l);
    i += l;
    if (cp == BAD_CP) {
      cp = '?';
    } else if (is_space(cp)) {
      gap = o > 0;
      continue;
    }
    if (gap) { out[o++] = ' '; gap = false; }
    o += rt_utf8_encode(lower(cp), out + o);
  }
  out[o] = '\0';
  return o;
}

char *rt_text_norm(const char *s) {
  if (!s) s = "";
  size_t n = strlen(s);
  char *out = rt_xmalloc(n + 1);
  rt_text_norm_buf(s, n, out);
  return out;
}

/* ======================================================================
 * Code point view shared by the car and phone scanners
 * ====================================================================== */

typedef struct {
  size_t n;        /* code points */
  uint32_t *cp;    /* BAD_CP for invalid bytes */
  size_t *off;     /* byte offset of each code point; off[n] = strlen */
} cpview;

static void cpview_init(cpview *v, const char *s) {
  const unsigned char *u = (const unsigned char *)s;
  size_t len = strlen(s);
  v->cp = rt_xmalloc((len + 1) * sizeof *v->cp);
  v->off = rt_xmalloc((len + 1) * sizeof *v->off);
  v->n = 0;
  for (size_t i = 0; i < len;) {
    size_t l;
    v->off[v->n] = i;
    v->cp[v->n++] = rt_utf8_decode((const char *)u + i, len - i, &l);
    i += l;
  }
  v->off[v->n] = len;
  v->cp[v->n] = 0;
}

static void cpview_free(cpview *v) {
  free(v->cp);
  free(v->off);
}

static bool is_dash(uint32_t cp) {
  return cp == '-' || (cp >= 0x2010 && cp <= 0x2015) || cp == 0x2212;
}

static bool is_hspace(uint32_t cp) {
  return cp == ' ' || cp == '\t' || cp == 0xA0 || (cp >= 0x2000 && cp <= 0x200A) ||
         cp == 0x202F;
}

/* ======================================================================
 * Car identifiers
 *
 * The text is mapped to one character per code point: Latin letters and
 * digits upper-cased, Cyrillic letters that look like Latin ones (what a
 * customer types copying from a registration certificate on a Russian
 * keyboard) mapped to them, any other letter to '#' (it poisons the word it
 * is in), spaces and dashes to ' ' (may sit inside an id), everything else
 * to '.' (ends an id). Ids are then built from whole "groups" (maximal runs
 * of letters/digits): a VIN is one or more groups joined by at most three
 * separators that add up to exactly 17 characters, so a VIN is never cut out
 * of a longer word and a word is never glued onto a VIN.
 *
 * VIN rules: 17 characters, at least one letter, the last four digits (ISO
 * 3779 requires a numeric serial end). I, O and Q are not VIN characters;
 * typed where a digit belongs they are read as 1, 0 and 0, the result must
 * still satisfy the rules above, and the id is marked as a typo: the flow
 * asks the customer to check it rather than order by a guess. The check
 * digit is reported, never required: outside North America it is often not
 * a check digit at all.
 *
 * Frame rules: MODEL SEP SERIAL where MODEL is 1-4 letters, 1-3 digits and
 * up to 2 letters (GX110, JZX100, CN9A, JB23W) and SERIAL 4-7 digits. A
 * Russian plate body (A123BC) is never a model, a serial followed by "км",
 * "р", "руб", "тыс" is a mileage or a price, and a 4-digit serial after a
 * space that reads as a year 1900-2099 is a year ("E39 2001 года").
 * ====================================================================== */

static char car_class(uint32_t cp) {
  if (cp >= '0' && cp <= '9') return (char)cp;
  if (cp >= 'a' && cp <= 'z') return (char)(cp - 32);
  if (cp >= 'A' && cp <= 'Z') return (char)cp;
  if (cp >= 0x430 && cp <= 0x44F) cp -= 0x20;
  switch (cp) {
  case 0x410: return 'A';
  case 0x412: return 'B';
  case 0x415: return 'E';
  case 0x41A: return 'K';
  case 0x41C: return 'M';
  case 0x41D: return 'H';
  case 0x41E: return 'O';
  case 0x420: return 'P';
  case 0x421: return 'C';
  case 0x422: return 'T';
  case 0x423: return 'Y';
  case 0x425: return 'X';
  default: break;
  }
  if (cp != BAD_CP && (is_cyr(cp) || is_latin_ext(cp))) return '#';
  if (cp != BAD_CP && (is_hspace(cp) || is_dash(cp))) return ' ';
  return '.';
}

static bool up(char c) { return c >= 'A' && c <= 'Z'; }
static bool dig(char c) { return c >= '0' && c <= '9'; }

typedef struct { size_t a, b; bool poisoned; } cgroup; /* map[a..b) */
typedef struct { size_t b, e; } span;                /* byte range */

typedef struct {
  char *map;
  cgroup *g;
  size_t ng;
  bool *used;
} carscan;

/* Groups i and i+1 are separated by 1-3 separators only. */
static bool joined(const carscan *c, size_t i) {
  if (i + 1 >= c->ng) return false;
  size_t gap = c->g[i + 1].a - c->g[i].b;
  if (gap < 1 || gap > 3) return false;
  for (size_t k = c->g[i].b; k < c->g[i + 1].a; k++)
    if (c->map[k] != ' ') return false;
  return true;
}

static size_t glen(const carscan *c, size_t i) { return c->g[i].b - c->g[i].a; }

static int vin_value(char ch) {
  static const signed char v[26] = {1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 2, 3, 4,
                                    5, 0, 7, 0, 9, 2, 3, 4, 5, 6, 7, 8, 9};
  return dig(ch) ? ch - '0' : v[ch - 'A'];
}

bool rt_text_vin_check(const char *v) {
  static const int w[17] = {8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2};
  int sum = 0;
  for (int i = 0; i < 17; i++) sum += vin_value(v[i]) * w[i];
  int r = sum % 11;
  return v[8] == (r == 10 ? 'X' : '0' + r);
}

static bool vin_fix(char *v, bool *typo) {
  int letters = 0;
  *typo = false;
  for (int i = 0; i < 17; i++) {
    if (v[i] == 'O' || v[i] == 'Q') { v[i] = '0'; *typo = true; }
    else if (v[i] == 'I') { v[i] = '1'; *typo = true; }
    if (up(v[i])) letters++;
  }
  if (!letters) return false;
  for (int i = 13; i < 17; i++)
    if (!dig(v[i])) return false;
  return true;
}

static bool plate_letter(char ch) { return ch && strchr("ABEKMHOPCTYX", ch); }

static bool frame_model(const char *m, size_t n) {
  if (n < 2 || n > 7) return false;
  size_t i = 0, l, d, s;
  while (i < n && up(m[i])) i++;
  l = i;
  while (i < n && dig(m[i])) i++;
  d = i - l;
  while (i < n && up(m[i])) i++;
  s = i - l - d;
  if (i != n || l < 1 || l > 4 || d < 1 || d > 3 || s > 2) return false;
  if (l == 1 && d == 3 && s == 2 && plate_letter(m[0]) && plate_letter(m[4]) &&
      plate_letter(m[5]))
    return false;
  return true;
}

static bool group_is(const carscan *c, size_t i, const char *w, bool prefix) {
  size_t n = strlen(w), gl = glen(c, i);
  if (prefix ? gl < n : gl != n) return false;
  return memcmp(c->map + c->g[i].a, w, n) == 0;
}

static bool add_car(rt_text_car *out, span *spans, int *cnt, int max, char kind,
                    const char *val, bool ok, bool na, bool typo, span sp) {
  for (int i = 0; i < *cnt; i++)
    if (out[i].kind == kind && strcmp(out[i].value, val) == 0) return true;
  if (*cnt >= max) return false;
  rt_text_car *r = &out[*cnt];
  memset(r, 0, sizeof *r);
  r->kind = kind;
  snprintf(r->value, sizeof r->value, "%s", val);
  r->check_ok = ok;
  r->north_american = na;
  r->typo = typo;
  if (spans) spans[*cnt] = sp;
  (*cnt)++;
  return true;
}

/* Finds up to max ids; spans (optional) gets their byte ranges in s. */
static int cars_scan(const char *s, rt_text_car *out, int max, span *spans,
                     const char *const *models, size_t nmodels) {
  if (!s || max <= 0) return 0;
  cpview v;
  cpview_init(&v, s);
  carscan c;
  c.map = rt_xmalloc(v.n + 1);
  c.g = rt_xmalloc((v.n + 1) * sizeof *c.g);
  c.used = rt_xcalloc(v.n + 1, sizeof *c.used);
  c.ng = 0;
  for (size_t i = 0; i < v.n; i++) c.map[i] = car_class(v.cp[i]);
  c.map[v.n] = '.';
  for (size_t i = 0; i < v.n;) {
    char ch = c.map[i];
    if (!(up(ch) || dig(ch) || ch == '#')) { i++; continue; }
    cgroup g = {i, i, false};
    bool cyr_only = true;
    while (g.b < v.n && (up(c.map[g.b]) || dig(c.map[g.b]) || c.map[g.b] == '#')) {
      if (c.map[g.b] == '#') g.poisoned = true;
      cyr_only = cyr_only && is_cyr(v.cp[g.b]);
      g.b++;
    }
    /* A Russian word of look-alike letters ("НОМЕР", "ВСЕ ОК") is a word,
     * never a piece of an id: only a short one can be a typed WMI ("ХТА"). */
    if (cyr_only && g.b - g.a >= 4) g.poisoned = true;
    c.g[c.ng++] = g;
    i = g.b;
  }

  int cnt = 0;
  /* VINs first: their pieces must not be taken for frames. */
  for (size_t k = 0; k < c.ng && cnt < max; k++) {
    if (c.g[k].poisoned) continue;
    size_t acc = glen(&c, k), j = k;
    while (acc < 17 && joined(&c, j) && !c.g[j + 1].poisoned) acc += glen(&c, ++j);
    if (acc != 17) continue;
    char vin[18];
    size_t o = 0;
    for (size_t x = k; x <= j; x++)
      for (size_t p = c.g[x].a; p < c.g[x].b; p++) vin[o++] = c.map[p];
    vin[17] = '\0';
    bool typo;
    if (!vin_fix(vin, &typo)) continue;
    span sp = {v.off[c.g[k].a], v.off[c.g[j].b]};
    if (!add_car(out, spans, &cnt, max, 'v', vin, rt_text_vin_check(vin),
                 vin[0] >= '1' && vin[0] <= '5', typo, sp))
      break;
    for (size_t x = k; x <= j; x++) c.used[x] = true;
    k = j;
  }
  for (size_t k = 0; k + 1 < c.ng && cnt < max; k++) {
    const cgroup *m = &c.g[k], *sr = &c.g[k + 1];
    if (c.used[k] || c.used[k + 1] || m->poisoned || sr->poisoned) continue;
    if (!frame_model(c.map + m->a, glen(&c, k)) || !joined(&c, k)) continue;
    size_t sl = glen(&c, k + 1);
    if (sl < 4 || sl > 7) continue;
    bool digits = true, dash = false;
    for (size_t p = sr->a; p < sr->b; p++) digits = digits && dig(c.map[p]);
    if (!digits) continue;
    for (size_t p = m->b; p < sr->a; p++) dash = dash || is_dash(v.cp[p]);
    if (sl == 4 && !dash) {
      int year = 0;
      for (size_t p = sr->a; p < sr->b; p++) year = year * 10 + (c.map[p] - '0');
      if (year >= 1900 && year <= 2099) continue;
    }
    if (joined(&c, k + 1) && (group_is(&c, k + 2, "KM", false) ||
                              group_is(&c, k + 2, "P", false) ||
                              group_is(&c, k + 2, "PY#", true) ||
                              group_is(&c, k + 2, "T#C", true)))
      continue;
    char val[32];
    int ml = (int)glen(&c, k);
    snprintf(val, sizeof val, "%.*s-%.*s", ml, c.map + m->a, (int)sl, c.map + sr->a);
    span sp = {v.off[m->a], v.off[sr->b]};
    if (!add_car(out, spans, &cnt, max, 'f', val, false, false, false, sp)) break;
    c.used[k] = c.used[k + 1] = true;
    k++;
  }
  /* Frames typed without a separator ("GX1106012345"): one group that is a
   * known model code and 4-7 digits after it; the longest code wins. */
  for (size_t k = 0; k < c.ng && cnt < max && nmodels; k++) {
    const cgroup *g = &c.g[k];
    size_t gl = glen(&c, k), best = 0;
    if (c.used[k] || g->poisoned || gl < 6) continue;
    for (size_t m = 0; m < nmodels; m++) {
      size_t ml = strlen(models[m]);
      if (ml <= best || gl < ml + 4 || gl > ml + 7) continue;
      if (memcmp(c.map + g->a, models[m], ml) != 0) continue;
      bool digits = true;
      for (size_t p = g->a + ml; p < g->b; p++) digits = digits && dig(c.map[p]);
      if (digits) best = ml;
    }
    if (!best) continue;
    char val[32];
    snprintf(val, sizeof val, "%.*s-%.*s", (int)best, c.map + g->a, (int)(gl - best),
             c.map + g->a + best);
    span sp = {v.off[g->a], v.off[g->b]};
    if (!add_car(out, spans, &cnt, max, 'f', val, false, false, false, sp)) break;
    c.used[k] = true;
  }
  free(c.map);
  free(c.g);
  free(c.used);
  cpview_free(&v);
  return cnt;
}

int rt_text_cars(const char *s, rt_text_car *out, int max) {
  if (!out) return 0;
  return cars_scan(s, out, max, NULL, NULL, 0);
}

int rt_text_cars_models(const char *s, rt_text_car *out, int max, const char *const *models,
                        size_t nmodels) {
  if (!out) return 0;
  return cars_scan(s, out, max, NULL, models, models ? nmodels : 0);
}

static bool first_car(const char *s, char kind, char *out, size_t n) {
  rt_text_car cars[16];
  int cnt = cars_scan(s, cars, (int)RT_ARRAY_LEN(cars), NULL, NULL, 0);
  for (int i = 0; i < cnt; i++) {
    if (cars[i].kind == kind) {
      snprintf(out, n, "%s", cars[i].value);
      return true;
    }
  }
  out[0] = '\0';
  return false;
}

bool rt_text_vin(const char *s, char out[18]) { return first_car(s, 'v', out, 18); }
bool rt_text_frame(const char *s, char out[32]) { return first_car(s, 'f', out, 32); }

/* ======================================================================
 * Phones
 *
 * A candidate is digit groups joined by up to three of " -()" (and Unicode
 * dashes/spaces), not glued to a letter or digit on either side, not after
 * "№"/"#" and not inside a car id. Dots are not separators: "15.12.2026"
 * must stay a date. If the whole candidate is not a phone, shorter runs of
 * its groups are tried ("2 шт 8 912 ..." loses the "2"). Russian numbers need
 * a plausible second digit (3, 4, 7, 8, 9: regional, Kazakh, 8-800, mobile);
 * bare 10-digit numbers must start with 9 in free text, and the 5-5 shape of
 * Toyota part numbers (90919-01253) is refused. "+8 9xx" is the common typo
 * for "+7 9xx" and is corrected. The international prefixes dialled from
 * Russia, "8 10" and "00", stand for the plus ("8 10 375 29 ...",
 * "00 49 ..."), and the neighbours' 12-digit numbers are read without the
 * plus too (Belarus 375, Ukraine 380, Uzbekistan 998, Kyrgyzstan 996,
 * Tajikistan 992, Azerbaijan 994, Georgia 995): no Russian number has 12
 * digits.
 * ====================================================================== */

static bool cis12(const char *d, size_t n) {
  static const char *const codes[] = {"375", "380", "998", "996", "992", "994", "995"};
  if (n != 12) return false;
  for (size_t i = 0; i < RT_ARRAY_LEN(codes); i++)
    if (memcmp(d, codes[i], 3) == 0) return true;
  return false;
}

static bool ru_second(char ch) { return ch && strchr("34789", ch); }

static bool phone_make(const char *d, size_t n, bool plus, bool field, bool five_five,
                       char out[20]) {
  if (!plus && n >= 13 && memcmp(d, "810", 3) == 0 && d[3] != '0')
    return phone_make(d + 3, n - 3, true, field, false, out);
  if (!plus && n >= 12 && d[0] == '0' && d[1] == '0' && d[2] != '0')
    return phone_make(d + 2, n - 2, true, field, false, out);
  if (!plus && cis12(d, n)) {
    snprintf(out, 20, "+%s", d);
    return true;
  }
  if (plus) {
    if (n < 10 || n > 15) return false;
    if (d[0] == '8' && n == 11 && d[1] == '9') {
      snprintf(out, 20, "+7%s", d + 1);
      return true;
    }
    if (d[0] == '7' && (n != 11 || !ru_second(d[1]))) return false;
    if (d[0] == '0') return false;
    snprintf(out, 20, "+%s", d);
    return true;
  }
  if (n == 11 && (d[0] == '7' || d[0] == '8') && ru_second(d[1])) {
    snprintf(out, 20, "+7%s", d + 1);
    return true;
  }
  if (n == 10 && !five_five && (d[0] == '9' || (field && strchr("348", d[0])))) {
    snprintf(out, 20, "+7%s", d);
    return true;
  }
  return false;
}

static bool is_letter(uint32_t cp) {
  return (cp < 0x80 && ((cp | 32) >= 'a' && (cp | 32) <= 'z')) || is_cyr(cp) ||
         is_latin_ext(cp);
}

static bool is_digit_cp(uint32_t cp) { return cp >= '0' && cp <= '9'; }

static bool phone_sep(uint32_t cp) {
  return is_hspace(cp) || is_dash(cp) || cp == '(' || cp == ')';
}

#define PHONE_MAX_GROUPS 12

/* Up to max different phones of s, in order; one when max is 1. */
static int phones_scan(const char *s, char (*all)[20], int max, span *spans) {
  if (!s || max <= 0) return 0;
  int nall = 0;
  char out[20];
  span cars[16];
  rt_text_car tmp[16];
  int ncars = cars_scan(s, tmp, 16, cars, NULL, 0);
  cpview v;
  cpview_init(&v, s);
  for (size_t i = 0; i < v.n && nall < max;) {
    bool found = false;
    uint32_t c0 = v.cp[i];
    bool plus = c0 == '+';
    size_t p = i + (plus ? 1 : 0);
    if (plus && p < v.n && is_hspace(v.cp[p])) p++;
    if (!is_digit_cp(v.cp[p]) ||
        (i > 0 && (is_letter(v.cp[i - 1]) || is_digit_cp(v.cp[i - 1])))) {
      i++;
      continue;
    }
    /* "№ 9123456789" is an order, whatever it looks like. */
    bool numbered = false;
    for (size_t k = i; k > 0; k--) {
      uint32_t pc = v.cp[k - 1];
      if (is_hspace(pc)) continue;
      numbered = pc == 0x2116 || pc == '#';
      break;
    }
    size_t ga[PHONE_MAX_GROUPS], gb[PHONE_MAX_GROUPS];
    int ng = 0;
    while (ng < PHONE_MAX_GROUPS) {
      ga[ng] = p;
      while (p < v.n && is_digit_cp(v.cp[p])) p++;
      gb[ng++] = p;
      size_t k = p;
      while (k < v.n && k - p < 3 && phone_sep(v.cp[k])) k++;
      if (k == p || k >= v.n || !is_digit_cp(v.cp[k])) break;
      p = k;
    }
    size_t next = gb[ng - 1];
    if (next < v.n && is_letter(v.cp[next])) ng--; /* "...89р": a word, not ours */
    for (int a = 0; a < ng && !found; a++) {
      if (a == 0 && numbered) continue;
      for (int b = ng - 1; b >= a && !found; b--) {
        char d[20];
        size_t nd = 0;
        bool fits = true;
        for (int g = a; g <= b && fits; g++) {
          for (size_t k = ga[g]; k < gb[g]; k++) {
            if (nd >= 16) { fits = false; break; }
            d[nd++] = (char)v.cp[k];
          }
        }
        if (!fits || nd < 10) continue;
        d[nd] = '\0';
        bool ff = b == a + 1 && gb[a] - ga[a] == 5 && gb[b] - ga[b] == 5;
        if (!phone_make(d, nd, plus && a == 0, false, ff, out)) continue;
        size_t sb = v.off[a == 0 ? i : ga[a]], se = v.off[gb[b]];
        bool in_car = false;
        for (int x = 0; x < ncars; x++)
          in_car = in_car || (sb < cars[x].e && cars[x].b < se);
        if (in_car) { out[0] = '\0'; continue; }
        found = true;
        bool seen = false;
        for (int x = 0; x < nall; x++) seen = seen || !strcmp(all[x], out);
        if (!seen) {
          if (spans) spans[nall] = (span){sb, se};
          memcpy(all[nall++], out, 20);
        }
      }
    }
    i = next > i ? next : i + 1;
  }
  cpview_free(&v);
  return nall;
}

bool rt_text_phone(const char *s, char out[20]) {
  char one[1][20];
  out[0] = '\0';
  if (phones_scan(s, one, 1, NULL) != 1) return false;
  memcpy(out, one[0], 20);
  return true;
}

int rt_text_phones(const char *s, char (*out)[20], int max) {
  return out ? phones_scan(s, out, max, NULL) : 0;
}



bool rt_text_phone_norm(const char *s, char out[20]) {
  out[0] = '\0';
  if (!s) return false;
  const unsigned char *u = (const unsigned char *)s;
  size_t n = strlen(s);
  char d[20];
  size_t nd = 0;
  bool plus = false, any = false;
  for (size_t i = 0; i < n;) {
    size_t l;
    uint32_t cp = rt_utf8_decode((const char *)u + i, n - i, &l);
    i += l;
    if (is_digit_cp(cp)) {
      if (nd >= 16) return false;
      d[nd++] = (char)cp;
      any = true;
    } else if (cp == '+' && !any && !plus) {
      plus = true;
    } else if (!(is_space(cp) || phone_sep(cp) || cp == '.')) {
      return false;
    }
  }
  d[nd] = '\0';
  return phone_make(d, nd, plus, true, false, out);
}

/* A CSV phone cell as chat reads it: the whole cell as a phone field, or
 * else the one phone written in it with a label, a name or an extension
 * around ("тел. 8 912 345-67-89 (Ольга)", "+7 343 200-10-20 доб. 15"); the
 * text around the number goes to rest, trimmed. Two different numbers in
 * one cell are not guessed between. */
bool rt_text_phone_field(const char *s, char out[20], char *rest, size_t restn) {
  if (rest && restn) rest[0] = '\0';
  if (!s) { out[0] = '\0'; return false; }
  if (rt_text_phone_norm(s, out)) return true;
  char all[2][20];
  span sp[2];
  if (phones_scan(s, all, 2, sp) != 1) { out[0] = '\0'; return false; }
  memcpy(out, all[0], 20);
  if (!rest || !restn) return true;
  size_t o = 0, n = strlen(s);
  for (size_t i = 0; i < n && o + 1 < restn; i++) {
    if (i == sp[0].b) {
      if (o && rest[o - 1] != ' ') rest[o++] = ' ';
      i = sp[0].e - 1;
      continue;
    }
    if (s[i] == ' ' && o && rest[o - 1] == ' ') continue;
    rest[o++] = s[i];
  }
  rest[o] = '\0';
  /* trim spaces and the punctuation left at the ends */
  size_t b = 0;
  while (rest[b] && strchr(" ,;:.-()", rest[b])) b++;
  while (o > b && strchr(" ,;:.-()", rest[o - 1])) o--;
  memmove(rest, rest + b, o - b);
  rest[o - b] = '\0';
  return true;
}

/* ======================================================================
 * Plates, letter counts, plain words, bounded heads
 *
 * What the flows used to do character by character in Lua, done once and
 * linearly here.
 *
 * A plate is read the way a customer types it: Cyrillic or Latin letters
 * of the plate alphabet (АВЕКМНОРСТУХ / ABEKMHOPCTYX), spaces and hyphens (any dash)
 * anywhere in it, an optional "RUS" after the region, ASCII punctuation
 * around it ("(а123вс96)."). In free text it must stand as whole words and
 * span at most PLATE_WORDS of them, so digits of a phone number and the
 * letters of neighbouring words are never glued into one. The scan feeds
 * each word to a small state machine for the windows that start at most
 * PLATE_WORDS - 1 words earlier, so every byte is looked at at most
 * PLATE_WORDS times.
 * ====================================================================== */

#define PLATE_WORDS 5
#define PLATE_CORE 12    /* A123BC196 + RUS */
#define HEAD_WORD_BACK 32

static bool ascii_punct(uint32_t cp) {
  return cp > ' ' && cp < 0x7F && !(cp >= '0' && cp <= '9') && !((cp | 32) >= 'a' && (cp | 32) <= 'z');
}

/* One code point in plate terms: a Latin capital or digit, '.' for ASCII
 * punctuation (and invalid bytes, which the normal form shows as '?'), 0 for
 * a hyphen (dropped), '#' for anything else. */
static char plate_class(uint32_t cp) {
  if (is_dash(cp)) return 0;
  if (cp == BAD_CP || ascii_punct(cp)) return '.';
  char c = car_class(lower(cp));   /* lower: Ё and ё are Е */
  return (dig(c) || up(c)) && cp < 0x80 ? c : plate_letter(c) ? c : '#';
}

typedef struct {
  int phase;          /* 0 leading punctuation, 1 the plate, 2 trailing punctuation */
  bool fail;
  size_t n;
  char core[PLATE_CORE + 1];
} platem;

static void plate_feed(platem *m, char c) {
  if (m->fail) return;
  if (m->phase == 0 && c != '.') m->phase = 1;
  if (m->phase == 1) {
    if (c == '.') m->phase = 2;
    else if (c == '#' || m->n >= PLATE_CORE) m->fail = true;
    else m->core[m->n++] = c;
  } else if (m->phase == 2 && c != '.') {
    m->fail = true;
  }
}

/* The fed text so far is a plate: writes it (without RUS) to out. */
static bool plate_accept(const platem *m, char out[16]) {
  if (m->fail) return false;
  size_t n = m->n;
  if (n >= 3 && memcmp(m->core + n - 3, "RUS", 3) == 0) n -= 3;
  if (n != 8 && n != 9) return false;
  const char *p = m->core;
  if (!plate_letter(p[0]) || !plate_letter(p[4]) || !plate_letter(p[5])) return false;
  for (size_t i = 1; i < n; i++)
    if ((i < 4 || i > 5) && !dig(p[i])) return false;
  memcpy(out, p, n);
  out[n] = '\0';
  return true;
}

/* Feeds the word at u[*pos..) (while the machine lives) and moves *pos to
 * the space after it. */
static void plate_word(const unsigned char *u, size_t n, size_t *pos, platem *m) {
  size_t i = *pos;
  while (i < n) {
    size_t l;
    uint32_t cp = rt_utf8_decode((const char *)u + i, n - i, &l);
    if (cp != BAD_CP && is_space(cp)) break;
    i += l;
    char c = plate_class(cp);
    if (c && !m->fail) plate_feed(m, c);
  }
  *pos = i;
}

static size_t skip_spaces(const unsigned char *u, size_t n, size_t i) {
  while (i < n) {
    size_t l;
    uint32_t cp = rt_utf8_decode((const char *)u + i, n - i, &l);
    if (cp == BAD_CP || !is_space(cp)) break;
    i += l;
  }
  return i;
}

bool rt_text_plate(const char *s, bool whole, char out[16]) {
  out[0] = '\0';
  if (!s) return false;
  const unsigned char *u = (const unsigned char *)s;
  size_t n = strlen(s);
  size_t start = skip_spaces(u, n, 0);
  if (whole) {
    platem m = {0};
    size_t p = start;
    while (p < n && !m.fail) {
      plate_word(u, n, &p, &m);
      p = skip_spaces(u, n, p);
    }
    return p >= n && plate_accept(&m, out);
  }
  while (start < n) {
    platem m = {0};
    size_t p = start, next = start;
    for (int w = 0; w < PLATE_WORDS && p < n; w++) {
      plate_word(u, n, &p, &m);
      if (w == 0) next = p;
      if (m.fail) break;
      if (plate_accept(&m, out)) return true;
      p = skip_spaces(u, n, p);
    }
    if (next == start) plate_word(u, n, &next, &(platem){.fail = true});
    start = skip_spaces(u, n, next);
  }
  return false;
}

size_t rt_text_letters(const char *s, size_t n) {
  const unsigned char *u = (const unsigned char *)s;
  size_t count = 0;
  for (size_t i = 0; i < n;) {
    size_t l;
    uint32_t cp = rt_utf8_decode((const char *)u + i, n - i, &l);
    i += l;
    if (cp == BAD_CP) continue;
    cp = lower(cp);
    if ((cp >= '0' && cp <= '9') || (cp >= 'a' && cp <= 'z') || (cp >= 0x430 && cp <= 0x44F))
      count++;
  }
  return count;
}

size_t rt_text_plain_buf(const char *s, size_t n, char *out) {
  const unsigned char *u = (const unsigned char *)s;
  size_t o = 0;
  bool gap = false;
  for (size_t i = 0; i < n;) {
    size_t l;
    uint32_t cp = rt_utf8_decode((const char *)u + i, n - i, &l);
    i += l;
    if (cp == BAD_CP || is_space(cp) || ascii_punct(cp)) {
      gap = o > 0;
      continue;
    }
    if (gap) { out[o++] = ' '; gap = false; }
    o += rt_utf8_encode(lower(cp), out + o);
  }
  out[o] = '\0';
  return o;
}

size_t rt_text_head(const char *s, size_t n, size_t max_chars, bool *cut) {
  const unsigned char *u = (const unsigned char *)s;
  size_t i = 0, chars = 0, word = 0, word_chars = 0;  /* the last word: start, length */
  while (i < n && chars < max_chars) {
    size_t l;
    uint32_t cp = rt_utf8_decode((const char *)u + i, n - i, &l);
    if (cp != BAD_CP && is_space(cp)) {
      word_chars = 0;
    } else if (word_chars++ == 0) {
      word = i;
    }
    i += l;
    chars++;
  }
  *cut = i < n;
  if (!*cut || word_chars == 0) return i;
  size_t l;
  uint32_t next = rt_utf8_decode((const char *)u + i, n - i, &l);
  if (next != BAD_CP && is_space(next)) return i;
  /* The cut falls inside a word: leave that word out, so half a VIN or
   * frame number is never read as a whole one, unless the head is nothing
   * but that word or it is too long to be an id. */
  if (word > 0 && word_chars <= HEAD_WORD_BACK) return word;
  return i;
}

/* ======================================================================
 * Dates
 *
 * The normal form is cut into tokens (words, digit runs, single other
 * characters, each knowing whether a space preceded it) and a list of rules
 * is tried at every token, left to right; the first rule that matches at the
 * leftmost position wins. A rule may be preceded by a preposition ("в", "к",
 * "до", "после", ...), which becomes part of the match and which some rules
 * need: weekday abbreviations ("в пт") and "в декабре" only count after one.
 * Words are matched by exact forms or stems, which covers declension and the
 * cheap typos ("черз", "зафтра", "питницу", "недельки"). Rules describe a
 * date (dspec) without computing it, so intent detection can ask "is there a
 * date here" without knowing today.
 * ====================================================================== */

typedef struct {
  size_t b, e;   /* bytes in the normal form */
  char type;     /* 'w' word, 'n' digits, 'p' anything else */
  bool sp;       /* a space precedes it */
  int val;       /* digits: value, -1 when longer than 9 digits */
  int ndig;
} tok;

typedef struct {
  const char *s;
  tok *t;
  int n;
} dctx;

static bool word_cp(uint32_t cp) {
  return (cp < 0x80 && (cp | 32) >= 'a' && (cp | 32) <= 'z') || is_cyr(cp) ||
         is_latin_ext(cp);
}

static void tokenize(dctx *c, const char *norm) {
  const unsigned char *u = (const unsigned char *)norm;
  size_t len = strlen(norm);
  c->s = norm;
  c->t = rt_xmalloc((len + 1) * sizeof *c->t);
  c->n = 0;
  bool sp = false;
  for (size_t i = 0; i < len;) {
    size_t l;
    uint32_t cp = rt_utf8_decode((const char *)u + i, len - i, &l);
    if (cp == ' ') { sp = true; i += l; continue; }
    tok t = {i, i + l, 'p', sp, 0, 0};
    sp = false;
    if (is_digit_cp(cp)) {
      size_t j = i;
      long v = 0;
      while (j < len && u[j] >= '0' && u[j] <= '9') {
        if (t.ndig < 9) v = v * 10 + (u[j] - '0');
        t.ndig++;
        j++;
      }
      t.type = 'n';
      t.e = j;
      t.val = t.ndig <= 9 ? (int)v : -1;
    } else if (word_cp(cp)) {
      size_t j = i + l, l2;
      while (j < len && word_cp(rt_utf8_decode((const char *)u + j, len - j, &l2))) j += l2;
      t.type = 'w';
      t.e = j;
    }
    c->t[c->n++] = t;
    i = t.e;
  }
}

static bool tw(const dctx *c, int i) { return i >= 0 && i < c->n && c->t[i].type == 'w'; }
static size_t tlen(const dctx *c, int i) { return c->t[i].e - c->t[i].b; }
static const char *tstr(const dctx *c, int i) { return c->s + c->t[i].b; }

static bool weq(const dctx *c, int i, const char *w) {
  size_t n = strlen(w);
  return tw(c, i) && tlen(c, i) == n && memcmp(tstr(c, i), w, n) == 0;
}

static bool wpre(const dctx *c, int i, const char *p) {
  size_t n = strlen(p);
  return tw(c, i) && tlen(c, i) >= n && memcmp(tstr(c, i), p, n) == 0;
}

static bool wany(const dctx *c, int i, const char *const *ws) {
  for (; *ws; ws++)
    if (weq(c, i, *ws)) return true;
  return false;
}

static bool tnum(const dctx *c, int i) {
  return i >= 0 && i < c->n && c->t[i].type == 'n' && c->t[i].val >= 0;
}

static bool tp(const dctx *c, int i, char ch) {
  return i >= 0 && i < c->n && c->t[i].type == 'p' && tlen(c, i) == 1 && tstr(c, i)[0] == ch;
}

static bool glued(const dctx *c, int i) { return i >= 0 && i < c->n && !c->t[i].sp; }

enum {
  OP_DAYS, OP_MONTHS, OP_WEEKDAY, OP_NEXT_WEEK, OP_WEEKEND, OP_MONTHDAY, OP_DATE,
  OP_MONTH_END, OP_MONTH_START, OP_MONTH_MID, OP_NEXT_MONTH, OP_MONTH, OP_SEASON,
  OP_PAYDAY, OP_HOLIDAYS, OP_NEWYEAR
};

typedef struct {
  int op;
  const char *kind;
  int n;      /* days, months, weekday 1-7, day of month */
  int mon;    /* 1-12, 0 = relative to today */
  int year;   /* 0 = the next such date */
  bool next;  /* "следующ..." */
} dspec;

enum { U_NONE, U_DAY, U_WEEK, U_MONTH, U_YEAR };

static const char *const W_PREP[] = {"в", "во", "к", "ко", "до", "на", "с", "со", "после", NULL};
static const char *const W_DEADLINE[] = {"к", "ко", "до", NULL};
static const char *const W_VIA[] = {"через", "черз", "чрез", "черес", "чериз", "чирез",
                                    "черех", "черезз", "чере", "чз", "чрз", "черезь", "черещ",
                                    "xthtp", NULL};
static const char *const W_TOMORROW[] = {"завтра", "завтро", "зафтра", "завтраа", "зовтра",
                                         NULL};
static const char *const W_AFTER_TOMORROW[] = {"послезавтра", "послезавтро", "послезафтра",
                                               NULL};
static const char *const W_THIS[] = {"эту", "этот", "эта", "этой", "ближайшую", "ближайший",
                                     "ближайшая", NULL};
static const char *const W_THIS_PL[] = {"эти", "этих", "ближайшие", "ближайших", NULL};
static const char *const W_THIS_MONTH[] = {"этого", "текущего", "этом", "этой", NULL};
static const char *const W_DAY_SUFFIX[] = {"го", "ого", "му", "ому", NULL};
static const char *const W_CHISLO[] = {"числа", "число", "числу", NULL};
static const char *const W_NUM_SUFFIX[] = {"х", "ух", "ех", "ти", "ю", NULL};
static const char *const W_YEAR[] = {"г", "года", "год", "гг", NULL};
static const char *const W_PAY_PREP[] = {"после", "как", "когда", "с", "со", "до", "к", "ко",
                                         NULL};
static const char *const W_PAY_VERB[] = {"придет", "прийдет", "будет", "получу", "дадут",
                                         "выдадут", "пришла", "поступит", "упадет", NULL};

static bool next_at(const dctx *c, int i) {
  return wpre(c, i, "следующ") || wpre(c, i, "следущ") || wpre(c, i, "будущ") ||
         weq(c, i, "след");
}

/* Skips "следующ..." (and the dot of "след."); sets *nx. */
static int skip_next(const dctx *c, int j, bool *nx) {
  *nx = false;
  if (!next_at(c, j)) return j;
  *nx = true;
  j++;
  return tp(c, j, '.') ? j + 1 : j;
}

static int num_word(const dctx *c, int i) {
  static const struct { const char *w; int n; } nums[] = {
    {"один", 1}, {"одну", 1}, {"одна", 1}, {"одного", 1}, {"одной", 1},
    {"два", 2}, {"две", 2}, {"двое", 2}, {"двух", 2},
    {"пару", 2}, {"пара", 2}, {"пары", 2}, {"парочку", 2},
    {"три", 3}, {"трое", 3}, {"трех", 3}, {"тройку", 3}, {"несколько", 3},
    {"четыре", 4}, {"четырех", 4}, {"пять", 5}, {"пяти", 5}, {"шесть", 6},
    {"шести", 6}, {"семь", 7}, {"восемь", 8}, {"девять", 9}, {"десять", 10},
  };
  for (size_t k = 0; k < RT_ARRAY_LEN(nums); k++)
    if (weq(c, i, nums[k].w)) return nums[k].n;
  return 0;
}

static bool str_in(const char *w, size_t n, const char *const *list) {
  for (; *list; list++)
    if (strlen(*list) == n && memcmp(w, *list, n) == 0) return true;
  return false;
}

static bool str_pre(const char *w, size_t n, const char *p) {
  size_t pn = strlen(p);
  return n >= pn && memcmp(w, p, pn) == 0;
}

static int unit_word(const char *w, size_t n) {
  static const char *const days[] = {"день", "дня", "дней", "дн", "денек", "денька",
                                     "деньков", "денечек", "денечка", "деньки", "сутки",
                                     "суток", NULL};
  static const char *const years[] = {"год", "года", "лет", "годик", "годика", NULL};
  if (str_in(w, n, days)) return U_DAY;
  if (str_pre(w, n, "недел") || str_pre(w, n, "нидел") || str_in(w, n, (const char *const[]){"нед", NULL}))
    return U_WEEK;
  if (str_pre(w, n, "месяц") || str_pre(w, n, "месяч") || str_pre(w, n, "мисяц") ||
      str_in(w, n, (const char *const[]){"мес", NULL}))
    return U_MONTH;
  if (str_in(w, n, years)) return U_YEAR;
  return U_NONE;
}

/* A unit word at i; "полгода", "полмесяца" set *half. */
static int unit_at(const dctx *c, int i, bool *half) {
  *half = false;
  if (!tw(c, i)) return U_NONE;
  const char *w = tstr(c, i);
  size_t n = tlen(c, i);
  int u = unit_word(w, n);
  if (u) return u;
  static const char pol[] = "пол";
  size_t pl = sizeof pol - 1;
  if (n > pl && memcmp(w, pol, pl) == 0 && (u = unit_word(w + pl, n - pl))) *half = true;
  return u;
}

/* A quantity at i in halves ("2" = 4, "полторы" = 3); next index or -1. */
static int qty(const dctx *c, int i, int *halves) {
  int j;
  if (weq(c, i, "полтора") || weq(c, i, "полторы")) {
    *halves = 3;
    return i + 1;
  }
  if (tnum(c, i) && c->t[i].val >= 1 && c->t[i].val <= 999) {
    *halves = 2 * c->t[i].val;
  } else {
    int n = num_word(c, i);
    if (!n) return -1;
    *halves = 2 * n;
  }
  j = i + 1;
  /* "2-3 дня", "пару-тройку дней": the first number counts. */
  if (tp(c, j, '-') && glued(c, j + 1) && (tnum(c, j + 1) || num_word(c, j + 1))) j += 2;
  /* "2-х недель", "2х недель" */
  if (tp(c, j, '-') && glued(c, j + 1) && wany(c, j + 1, W_NUM_SUFFIX)) j += 2;
  else if (glued(c, j) && wany(c, j, W_NUM_SUFFIX)) j++;
  return j;
}

static bool rel_spec(int u, int halves, dspec *d) {
  d->kind = "relative";
  switch (u) {
  case U_DAY: d->op = OP_DAYS; d->n = (halves + 1) / 2; break;
  case U_WEEK: d->op = OP_DAYS; d->n = halves * 7 / 2; break;
  case U_MONTH:
    if (halves % 2 == 0) { d->op = OP_MONTHS; d->n = halves / 2; }
    else { d->op = OP_DAYS; d->n = halves * 15; }
    break;
  case U_YEAR: d->op = OP_MONTHS; d->n = halves * 6; break;
  default: return false;
  }
  if (d->n < 1) d->n = 1;
  return d->op == OP_DAYS ? d->n <= 1100 : d->n <= 36;
}

static int weekday_at(const dctx *c, int i, bool abbr) {
  static const struct { const char *w; int wd; bool prefix; } wds[] = {
    {"понедельн", 1, true}, {"понед", 1, false}, {"пнд", 1, false},
    {"вторник", 2, true}, {"вторн", 2, false},
    {"среда", 3, false}, {"среду", 3, false}, {"среды", 3, false}, {"среде", 3, false},
    {"четверг", 4, true}, {"четв", 4, false},
    {"пятниц", 5, true}, {"питниц", 5, true}, {"пятн", 5, false},
    {"суббот", 6, true}, {"субот", 6, true}, {"субб", 6, false},
    {"воскрес", 7, true}, {"воскр", 7, false},
  };
  static const char *const ab[] = {"пн", "вт", "ср", "чт", "пт", "сб", "вс"};
  for (size_t k = 0; k < RT_ARRAY_LEN(wds); k++)
    if (wds[k].prefix ? wpre(c, i, wds[k].w) : weq(c, i, wds[k].w)) return wds[k].wd;
  if (abbr)
    for (int k = 0; k < 7; k++)
      if (weq(c, i, ab[k])) return k + 1;
  return 0;
}

static int month_of(const dctx *c, int i) {
  static const struct { const char *w; int m; bool prefix; } ms[] = {
    {"январ", 1, true}, {"янв", 1, false}, {"феврал", 2, true}, {"фев", 2, false},
    {"февр", 2, false}, {"март", 3, true}, {"мар", 3, false}, {"апрел", 4, true},
    {"апр", 4, false}, {"мая", 5, false}, {"май", 5, false}, {"маю", 5, false},
    {"мае", 5, false}, {"июн", 6, true}, {"июл", 7, true}, {"август", 8, true},
    {"авг", 8, false}, {"сентябр", 9, true}, {"сен", 9, false}, {"сент", 9, false},
    {"октябр", 10, true}, {"окт", 10, false}, {"ноябр", 11, true}, {"ноя", 11, false},
    {"нояб", 11, false}, {"декабр", 12, true}, {"дек", 12, false},
  };
  for (size_t k = 0; k < RT_ARRAY_LEN(ms); k++)
    if (ms[k].prefix ? wpre(c, i, ms[k].w) : weq(c, i, ms[k].w)) return ms[k].m;
  return 0;
}

static int mdays(int y, int m) { return rt_tz_days_in_month(y, m); }

/* ---- the rules: (ctx, index, preposition index or -1, out) -> end ---- */

static int r_tomorrow(const dctx *c, int i, int pi, dspec *d) {
  if (!wany(c, i, W_TOMORROW)) return 0;
  *d = (dspec){OP_DAYS, "tomorrow", 1, 0, 0, false};
  return i + 1;
}

static int r_after_tomorrow(const dctx *c, int i, int pi, dspec *d) {
  int e = 0;
  if (wany(c, i, W_AFTER_TOMORROW)) e = i + 1;
  else if (weq(c, i, "после") && wany(c, i + 1, W_TOMORROW)) e = i + 2;
  if (e) *d = (dspec){OP_DAYS, "after_tomorrow", 2, 0, 0, false};
  return e;
}

/* "через неделю-две", "через месяц-полтора": the earliest bound counts, the
 * rest of the range is skipped. */
static int skip_range(const dctx *c, int j) {
  int h;
  if (tp(c, j, '-') && glued(c, j) && glued(c, j + 1) && qty(c, j + 1, &h) > 0) {
    int k = qty(c, j + 1, &h);
    bool half;
    return unit_at(c, k, &half) ? k + 1 : k;
  }
  return j;
}

static int r_relative(const dctx *c, int i, int pi, dspec *d) {
  int j = i + 1;
  if (weq(c, i, "ч") && tp(c, i + 1, '/') && glued(c, i + 1) && weq(c, i + 2, "з") &&
      glued(c, i + 2))
    j = i + 3;   /* "ч/з" */
  else if (!wany(c, i, W_VIA))
    return 0;
  int halves = 2, q = qty(c, j, &halves);
  bool half = false, h2;
  if (q > 0) j = q;
  if (weq(c, j, "пол")) {
    half = true;
    j++;
    if (tp(c, j, '-')) j++;
  }
  int u = unit_at(c, j, &h2);
  if (!u) return 0;
  if (half || h2) halves = 1;
  int e = j + 1;
  /* "через дней 10", "через недели две": the number after the unit */
  int q2;
  if (q < 0 && !half && !h2 && (q2 = qty(c, e, &halves)) > 0) e = q2;
  e = skip_range(c, e);
  return rel_spec(u, halves, d) ? e : 0;
}

/* "дня через два", "недельки через две" */
static int r_rel_inverted(const dctx *c, int i, int pi, dspec *d) {
  bool half;
  int u = unit_at(c, i, &half), halves;
  if (!u || half || !wany(c, i + 1, W_VIA)) return 0;
  int q = qty(c, i + 2, &halves);
  if (q < 0) return 0;
  return rel_spec(u, halves, d) ? q : 0;
}

static int r_next_week(const dctx *c, int i, int pi, dspec *d) {
  bool nx;
  int j = skip_next(c, i, &nx);
  if (!nx) {
    if (!(weq(c, i, "той") && weq(c, pi, "на"))) return 0; /* "на той неделе" */
    j = i + 1;
  }
  if (!(wpre(c, j, "недел") || weq(c, j, "нед"))) return 0;
  j++;
  /* "на следующей неделе в среду" */
  int k = (weq(c, j, "в") || weq(c, j, "во")) ? j + 1 : j;
  int wd = weekday_at(c, k, k > j);
  if (wd) {
    *d = (dspec){OP_WEEKDAY, "weekday", wd, 0, 0, true};
    return k + 1;
  }
  *d = (dspec){OP_NEXT_WEEK, "next_week", 0, 0, 0, true};
  return j;
}

static int r_weekend(const dctx *c, int i, int pi, dspec *d) {
  bool nx;
  int j = skip_next(c, i, &nx);
  if (!nx && wany(c, j, W_THIS_PL)) j++;
  if (!wpre(c, j, "выходн")) return 0;
  *d = (dspec){OP_WEEKEND, "weekend", 6, 0, 0, nx};
  return j + 1;
}

static int r_weekday(const dctx *c, int i, int pi, dspec *d) {
  bool nx;
  int j = skip_next(c, i, &nx);
  if (!nx && wany(c, j, W_THIS)) j++;
  int wd = weekday_at(c, j, pi >= 0);
  if (!wd) return 0;
  *d = (dspec){OP_WEEKDAY, "weekday", wd, 0, 0, nx};
  return j + 1;
}

/* "15 декабря", "1-го января 2027 г." */
static int r_date_words(const dctx *c, int i, int pi, dspec *d) {
  if (!tnum(c, i) || c->t[i].ndig > 2 || c->t[i].val < 1 || c->t[i].val > 31) return 0;
  int j = i + 1;
  if (tp(c, j, '-') && glued(c, j + 1) &&
      (wany(c, j + 1, W_DAY_SUFFIX) || weq(c, j + 1, "е") || weq(c, j + 1, "ое")))
    j += 2;
  else if (glued(c, j) && (wany(c, j, W_DAY_SUFFIX) || weq(c, j, "е")))
    j++;
  int mon = month_of(c, j);
  if (!mon) return 0;
  j++;
  if (tp(c, j, '.') && glued(c, j)) j++;
  int year = 0;
  if (tnum(c, j) && c->t[j].ndig == 4 && c->t[j].val >= 2000 && c->t[j].val <= 2100) {
    year = c->t[j].val;
    j++;
    if (wany(c, j, W_YEAR)) {
      j++;
      if (tp(c, j, '.') && glued(c, j)) j++;
    }
  }
  if (c->t[i].val > mdays(year ? year : 2024, mon)) return 0;
  *d = (dspec){OP_DATE, "date", c->t[i].val, mon, year, false};
  return j;
}

/* "15.12", "15/12", "15.12.2026", "15.12.26"; "1.5" and "2.0" are numbers. */
static int r_date_num(const dctx *c, int i, int pi, dspec *d) {
  if (!tnum(c, i) || c->t[i].ndig > 2) return 0;
  if (!(tp(c, i + 1, '.') || tp(c, i + 1, '/'))) return 0;
  char sep = tstr(c, i + 1)[0];
  if (!glued(c, i + 1) || !glued(c, i + 2) || !tnum(c, i + 2) || c->t[i + 2].ndig > 2) return 0;
  /* part of a longer dotted number: "1.15.12", "192.168.1.1" */
  if (i >= 2 && glued(c, i) && (tp(c, i - 1, '.') || tp(c, i - 1, '/') || tp(c, i - 1, ',')) &&
      tnum(c, i - 2))
    return 0;
  int day = c->t[i].val, mon = c->t[i + 2].val, year = 0, j = i + 3;
  if (tp(c, j, sep) && glued(c, j) && glued(c, j + 1) && tnum(c, j + 1) &&
      (c->t[j + 1].ndig == 2 || c->t[j + 1].ndig == 4)) {
    year = c->t[j + 1].val;
    if (c->t[j + 1].ndig == 2) year += 2000;
    j += 2;
    if (year < 2000 || year > 2100) return 0;
  } else if (c->t[i + 2].ndig != 2) {
    return 0;
  }
  if ((tp(c, j, '.') || tp(c, j, '/')) && glued(c, j) && glued(c, j + 1) && tnum(c, j + 1))
    return 0;
  if (mon < 1 || mon > 12 || day < 1 || day > mdays(year ? year : 2024, mon)) return 0;
  *d = (dspec){OP_DATE, "date", day, mon, year, false};
  return j;
}

/* "15-го", "15го", "к 15-му", "20 числа", "на 5-е число" */
static int r_monthday(const dctx *c, int i, int pi, dspec *d) {
  if (!tnum(c, i) || c->t[i].ndig > 2 || c->t[i].val < 1 || c->t[i].val > 31) return 0;
  int j = i + 1, e = 0;
  if (tp(c, j, '-') && glued(c, j + 1)) j++;
  if (wany(c, j, W_DAY_SUFFIX)) {
    e = j + 1;
    if (wany(c, e, W_CHISLO)) e++;
  } else if (wany(c, j, W_CHISLO)) {
    e = j + 1;
  } else if (weq(c, j, "е") || weq(c, j, "ое")) {
    if (wany(c, j + 1, W_CHISLO)) e = j + 2;
    else if (pi >= 0) e = j + 1;
  }
  if (e) *d = (dspec){OP_MONTHDAY, "monthday", c->t[i].val, 0, 0, false};
  return e;
}

/* "в конце месяца", "в начале следующего месяца", "в середине декабря",
 * "в конце недели" */
static int r_month_part(const dctx *c, int i, int pi, dspec *d) {
  int op;
  const char *kind;
  if (wpre(c, i, "конц") || weq(c, i, "конец")) { op = OP_MONTH_END; kind = "month_end"; }
  else if (wpre(c, i, "начал")) { op = OP_MONTH_START; kind = "month_start"; }
  else if (wpre(c, i, "середин")) { op = OP_MONTH_MID; kind = "month_mid"; }
  else return 0;
  bool nx;
  int j = skip_next(c, i + 1, &nx), mon = 0;
  if (!nx && wany(c, j, W_THIS_MONTH)) j++;
  if (wpre(c, j, "недел")) {
    /* "в конце недели" = Friday, "в начале следующей недели" = Monday */
    if (op == OP_MONTH_START) *d = (dspec){OP_NEXT_WEEK, "next_week", 0, 0, 0, true};
    else *d = (dspec){OP_WEEKDAY, "weekday", op == OP_MONTH_END ? 5 : 3, 0, 0, nx};
    return j + 1;
  }
  if (!(wpre(c, j, "месяц") || weq(c, j, "мес"))) {
    if (nx || !(mon = month_of(c, j))) return 0;
  }
  *d = (dspec){op, kind, 0, mon, 0, nx};
  return j + 1;
}

static int r_next_month(const dctx *c, int i, int pi, dspec *d) {
  bool nx;
  int j = skip_next(c, i, &nx);
  if (!nx || !(wpre(c, j, "месяц") || weq(c, j, "мес"))) return 0;
  *d = (dspec){OP_NEXT_MONTH, "next_month", 0, 0, 0, true};
  return j + 1;
}

/* "в декабре": the prepositional case ends in "е". */
static int r_month_in(const dctx *c, int i, int pi, dspec *d) {
  if (!(weq(c, pi, "в") || weq(c, pi, "во"))) return 0;
  int mon = month_of(c, i);
  static const char e[] = "е";
  if (!mon || tlen(c, i) < 4 || memcmp(tstr(c, i) + tlen(c, i) - 2, e, 2) != 0) return 0;
  *d = (dspec){OP_MONTH, "month", 0, mon, 0, false};
  return i + 1;
}

static int r_season(const dctx *c, int i, int pi, dspec *d) {
  static const struct { const char *w; int m; } ss[] = {
    {"весной", 3}, {"весна", 3}, {"весну", 3}, {"весне", 3},
    {"летом", 6}, {"лету", 6}, {"лето", 6},
    {"осенью", 9}, {"осени", 9}, {"осень", 9},
    {"зимой", 12}, {"зиме", 12}, {"зиму", 12}, {"зима", 12},
  };
  for (size_t k = 0; k < RT_ARRAY_LEN(ss); k++) {
    if (weq(c, i, ss[k].w)) {
      *d = (dspec){OP_SEASON, "season", 0, ss[k].m, 0, false};
      return i + 1;
    }
  }
  return 0;
}

/* "аванс" is also a prepayment, "зп" also an abbreviation: both only after a
 * preposition. */
static bool pay_at(const dctx *c, int i, bool prep) {
  return wpre(c, i, "зарпл") || wpre(c, i, "зряплат") || wpre(c, i, "получк") ||
         (prep && (weq(c, i, "зп") || wpre(c, i, "аванс")));
}

static int r_payday(const dctx *c, int i, int pi, dspec *d) {
  int j;
  if (wany(c, i, W_PAY_PREP) && pay_at(c, i + 1, true)) j = i + 2;
  else if (pay_at(c, i, pi >= 0)) j = i + 1;
  else return 0;
  if (wany(c, j, W_PAY_VERB)) j++;
  *d = (dspec){OP_PAYDAY, "payday", 0, 0, 0, false};
  return j;
}

/* "после праздников", "после нового года", "после нг", "после новогодних
 * (праздников)", "после январских"; "в начале января" and, said in November
 * or December, "в январе" mean the same: the first working day after the New
 * Year holidays. The month rules leave those to this one (it runs first). */
static bool newyear_word(const dctx *c, int i) {
  return wpre(c, i, "новогодн") || wpre(c, i, "январск") || weq(c, i, "нг") ||
         (weq(c, i, "нового") && wpre(c, i + 1, "год")) || weq(c, i, "новый");
}

static int r_holidays(const dctx *c, int i, int pi, dspec *d) {
  if (weq(c, pi, "после") || weq(c, pi, "с") || weq(c, pi, "на")) {
    if (newyear_word(c, i)) {
      int e = i + 1;
      if (weq(c, i, "нового") || weq(c, i, "новый")) e++;
      if (wpre(c, e, "праздник") || wpre(c, e, "каникул")) e++;
      *d = (dspec){OP_NEWYEAR, "holidays", 0, 0, 0, false};
      return e;
    }
    if (wpre(c, i, "праздник") || wpre(c, i, "праздничн")) {
      *d = (dspec){OP_HOLIDAYS, "holidays", 0, 0, 0, false};
      return i + 1;
    }
    if (wpre(c, i, "майск")) {   /* "после майских (праздников)" */
      int e = i + 1;
      if (wpre(c, e, "праздник") || wpre(c, e, "каникул")) e++;
      *d = (dspec){OP_HOLIDAYS, "holidays", 5, 0, 0, false};
      return e;
    }
  }
  /* "в начале января" */
  if ((weq(c, pi, "в") || weq(c, pi, "во")) && wpre(c, i, "начал") && month_of(c, i + 1) == 1) {
    *d = (dspec){OP_NEWYEAR, "holidays", 0, 0, 0, false};
    return i + 2;
  }
  /* "в январе" (the flag: only when said in November or December) */
  if ((weq(c, pi, "в") || weq(c, pi, "во")) && month_of(c, i) == 1 && tlen(c, i) >= 4) {
    *d = (dspec){OP_NEWYEAR, "holidays", 1, 0, 0, false};
    return i + 1;
  }
  return 0;
}

typedef int (*drule)(const dctx *, int, int, dspec *);
/* Order matters only among rules that can start at the same token: the
 * numeric ones, longest form first. */
static const drule date_rules[] = {
  r_holidays, r_date_words, r_date_num, r_monthday, r_relative, r_rel_inverted, r_after_tomorrow,
  r_tomorrow, r_next_week, r_weekend, r_weekday, r_month_part, r_next_month,
  r_month_in, r_season, r_payday,
};

/* ---- calendar arithmetic (proleptic Gregorian, days since 1970-01-01) ---- */

typedef struct { int y, m, d; } ymd;

static ymd civil_from_days(int64_t z) {
  int64_t y;
  int m, d;
  rt_tz_civil_from_days(z, &y, &m, &d);
  return (ymd){(int)y, m, d};
}

static ymd add_days(ymd a, int n) { return civil_from_days(rt_tz_days_from_civil(a.y, a.m, a.d) + n); }

static ymd add_months(ymd a, int n) {
  int t = a.y * 12 + (a.m - 1) + n;
  ymd r = {t / 12, t % 12 + 1, a.d};
  if (r.d > mdays(r.y, r.m)) r.d = mdays(r.y, r.m);
  return r;
}

static ymd next_month_1st(ymd t) { return add_months((ymd){t.y, t.m, 1}, 1); }

/* 1 = Monday ... 7 = Sunday; 1970-01-01 was a Thursday. */
static int wday(ymd a) {
  int64_t z = rt_tz_days_from_civil(a.y, a.m, a.d);
  return (int)(((z % 7) + 7 + 3) % 7) + 1;
}

static int cmp_ymd(ymd a, ymd b) {
  if (a.y != b.y) return a.y < b.y ? -1 : 1;
  if (a.m != b.m) return a.m < b.m ? -1 : 1;
  return a.d < b.d ? -1 : a.d > b.d;
}

static bool in_season(int start, int m) {
  return start == 12 ? (m == 12 || m <= 2) : (m >= start && m < start + 3);
}

/* ---- the production calendar ---------------------------------------------
 * The public holidays of Russia: the New Year block (January 1 to the last
 * day off, which the yearly decree sets: the table, or opts->newyear_last),
 * and single days that move to the Monday when they fall on a weekend.
 * "After the holidays" is the first working day (Monday to Friday) after. */

static bool weekend(ymd a) { return wday(a) >= 6; }

static ymd next_workday(ymd a) {
  do a = add_days(a, 1); while (weekend(a));
  return a;
}

static ymd after_newyear(int y, const rt_text_date_opts *o) {
  static const struct { int y, last; } decree[] = {{2025, 8}, {2026, 11}, {2027, 10}};
  int last = o && o->newyear_last >= 1 && o->newyear_last <= 31 ? o->newyear_last : 0;
  for (size_t i = 0; !last && i < RT_ARRAY_LEN(decree); i++)
    if (decree[i].y == y) last = decree[i].last;
  if (!last) last = 8;
  return next_workday((ymd){y, 1, last});
}

static ymd after_holidays(ymd t, const rt_text_date_opts *o) {
  static const struct { int m, d; } days[] = {{2, 23}, {3, 8}, {5, 1}, {5, 9}, {6, 12}, {11, 4}};
  ymd best = after_newyear(t.m == 1 && t.d <= 15 ? t.y : t.y + 1, o);
  if (cmp_ymd(best, t) <= 0) best = after_newyear(t.y + 1, o);
  for (int y = t.y; y <= t.y + 1; y++) {
    for (size_t i = 0; i < RT_ARRAY_LEN(days); i++) {
      ymd h = {y, days[i].m, days[i].d};
      if (weekend(h)) h = add_days(h, 8 - wday(h));   /* the day off moves to Monday */
      ymd after = next_workday(h);
      /* a holiday today or ahead; one that is past does not count */
      if (cmp_ymd(h, t) >= 0 && cmp_ymd(after, best) < 0) best = after;
    }
  }
  return best;
}

static bool date_eval(const dspec *d, ymd t, const rt_text_date_opts *o, ymd *out) {
  ymd r = t;
  switch (d->op) {
  case OP_DAYS: *out = add_days(t, d->n); return true;
  case OP_MONTHS: *out = add_months(t, d->n); return true;
  case OP_WEEKDAY:
  case OP_WEEKEND: {
    int w = wday(t), target = d->n;
    if (d->next) {
      *out = add_days(t, 7 - w + target); /* that day of next week */
    } else {
      int delta = (target - w + 7) % 7;
      *out = add_days(t, delta ? delta : 7);
    }
    return true;
  }
  case OP_NEXT_WEEK: *out = add_days(t, 8 - wday(t)); return true;
  case OP_MONTHDAY: {
    int dd = d->n < mdays(t.y, t.m) ? d->n : mdays(t.y, t.m);
    if (dd > t.d) {
      *out = (ymd){t.y, t.m, dd};
    } else {
      r = next_month_1st(t);
      r.d = d->n < mdays(r.y, r.m) ? d->n : mdays(r.y, r.m);
      *out = r;
    }
    return true;
  }
  case OP_DATE:
    r = (ymd){d->year ? d->year : t.y, d->mon, d->n};
    if (!d->year && cmp_ymd(r, t) < 0) r.y++;
    if (r.d > mdays(r.y, r.m)) return false;
    *out = r;
    return true;
  case OP_MONTH_END:
    if (d->mon) {
      r = (ymd){t.y + (d->mon < t.m), d->mon, 1};
    } else {
      r = (ymd){t.y, t.m, 1};
      /* on the last two days "the end of the month" is already here */
      if (d->next || t.d >= mdays(t.y, t.m) - 1) r = add_months(r, 1);
    }
    r.d = mdays(r.y, r.m);
    *out = r;
    return true;
  case OP_MONTH_START:
    if (d->mon) {
      r = (ymd){t.y, d->mon, 1};
      if (cmp_ymd(r, t) <= 0) r.y++;
    } else {
      r = next_month_1st(t);
    }
    *out = r;
    return true;
  case OP_MONTH_MID:
    if (d->mon) {
      r = (ymd){t.y, d->mon, 15};
      if (cmp_ymd(r, t) <= 0) r.y++;
    } else {
      r = (ymd){t.y, t.m, 15};
      if (d->next || cmp_ymd(r, t) <= 0) r = add_months(r, 1);
    }
    *out = r;
    return true;
  case OP_NEXT_MONTH: *out = next_month_1st(t); return true;
  case OP_MONTH:
    if (d->mon == t.m) return false; /* "в ноябре" in November says nothing */
    *out = (ymd){t.y + (d->mon < t.m), d->mon, 1};
    return true;
  case OP_SEASON:
    if (in_season(d->mon, t.m)) {
      r = next_month_1st(t);
      *out = in_season(d->mon, r.m) ? r : add_days(t, 7);
    } else {
      *out = (ymd){t.y + (d->mon < t.m), d->mon, 1};
    }
    return true;
  case OP_PAYDAY: {
    int days[4], nd = 0;
    for (int k = 0; k < 4; k++)
      if (o && o->payday[k] >= 1 && o->payday[k] <= 31) days[nd++] = o->payday[k];
    if (!nd) { days[0] = 5; days[1] = 20; nd = 2; }
    bool have = false;
    for (int k = 0; k < 3; k++) {
      ymd m = add_months((ymd){t.y, t.m, 1}, k);
      for (int x = 0; x < nd; x++) {
        ymd cand = {m.y, m.m, days[x] < mdays(m.y, m.m) ? days[x] : mdays(m.y, m.m)};
        if (cmp_ymd(cand, t) > 0 && (!have || cmp_ymd(cand, r) < 0)) { r = cand; have = true; }
      }
    }
    if (have) *out = r;
    return have;
  }
  case OP_NEWYEAR:
    if (d->n == 1 && t.m < 11) { /* "в январе" in spring is a month */
      *out = (ymd){t.y + (t.m > 1), 1, 1};
      return t.m != 1;
    }
    *out = after_newyear(t.m == 1 && t.d <= 15 ? t.y : t.y + 1, o);
    if (cmp_ymd(*out, t) <= 0) *out = after_newyear(t.y + 1, o);
    return true;
  case OP_HOLIDAYS:
    if (d->n == 5) { /* the May holidays: after the 9th (moved off a weekend) */
      ymd h = {t.y, 5, 9};
      if (weekend(h)) h = add_days(h, 8 - wday(h));
      if (cmp_ymd(h, t) < 0) {
        h = (ymd){t.y + 1, 5, 9};
        if (weekend(h)) h = add_days(h, 8 - wday(h));
      }
      *out = next_workday(h);
      return true;
    }
    *out = after_holidays(t, o);
    return true;
  default: return false;
  }
}

typedef struct {
  int b, e, pi;  /* tokens [b, e); pi = preposition token or -1 */
  dspec d;
  ymd day;
} dmatch;

/* A verb in the past tense ("продал", "меняли", "ставила", "покупался"):
 * the common endings, at least four letters, minus the nouns that end so. */
static bool past_verb(const dctx *c, int i) {
  static const char *const ends[] = {"ал", "ял", "ил", "ел", "ыл", "ула", "ала", "яла", "ила",
                                     "ела", "ыла", "али", "яли", "или", "ели", "ыли", "ался",
                                     "ился", "алась", "илась", "ались", "ились", NULL};
  static const char *const nouns[] = {"дела", "тела", "села", "сила", "пила", "вила", "мила",
                                      "цела", "стрела", "пчела", "гели", "цели", "мели",
                                      "дали", "мысли", "сутки", "хотел", "хотела", "хотели",
                                      "начал", NULL};
  if (!tw(c, i) || wany(c, i, nouns)) return false;
  size_t n = tlen(c, i);
  const char *w = tstr(c, i);
  if (n < 8) return false;   /* four Cyrillic letters are eight bytes */
  for (const char *const *e = ends; *e; e++) {
    size_t l = strlen(*e);
    if (n > l && memcmp(w + n - l, *e, l) == 0) return true;
  }
  return false;
}

/* The date at tokens [b, e) tells when something happened, not when to
 * write: a past verb right before or after it in the same clause ("весной
 * продал машину", "в январе меняли ремень"), or "назад" after it. */
static bool past_near(const dctx *c, int b, int e) {
  for (int k = e; k < c->n && k < e + 2 && c->t[k].type == 'w'; k++)
    if (past_verb(c, k) || weq(c, k, "назад")) return true;
  for (int k = b - 1; k >= 0 && k >= b - 2 && c->t[k].type == 'w'; k--)
    if (past_verb(c, k)) return true;
  return false;
}

/* Leftmost date expression; with today == NULL only its presence. */
static bool date_find(const dctx *c, const ymd *today, const rt_text_date_opts *o, dmatch *m) {
  for (int i = 0; i < c->n; i++) {
    for (int pass = 0; pass < 2; pass++) {
      int at = i, pi = -1;
      if (pass == 1) {
        if (!wany(c, i, W_PREP)) break;
        at = i + 1;
        pi = i;
      }
      for (size_t r = 0; r < RT_ARRAY_LEN(date_rules); r++) {
        dspec d;
        memset(&d, 0, sizeof d);
        int e = date_rules[r](c, at, pi, &d);
        if (e <= at) continue;
        if (past_near(c, i, e)) break;
        if (today && !date_eval(&d, *today, o, &m->day)) continue;
        m->b = i;
        m->e = e;
        m->pi = pi;
        m->d = d;
        return true;
      }
    }
  }
  return false;
}

bool rt_text_date_in_norm(const char *norm, const char **kind, bool *deadline) {
  dctx c;
  tokenize(&c, norm);
  dmatch m;
  bool found = date_find(&c, NULL, NULL, &m);
  if (found) {
    *kind = m.d.kind;
    *deadline = m.pi >= 0 && wany(&c, m.pi, W_DEADLINE);
  }
  free(c.t);
  return found;
}

int rt_text_date(const char *s, int64_t now, const char *tz, const rt_text_date_opts *opts,
                 rt_text_date_res *out) {
  if (!s || !out) return 0;
  if (tz && !rt_tz_valid(tz)) tz = NULL;
  static const rt_text_date_opts defaults = RT_TEXT_DATE_OPTS_DEFAULT;
  if (!opts) opts = &defaults;
  struct tm tm;
  if (rt_tz_local_tm(tz, now, &tm) != RT_OK) return 0;
  ymd today = {tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday};
  /* dates are read in the Russian reading: "cherez nedelyu" too */
  char *n0 = rt_text_norm(s);
  size_t n0len = strlen(n0);
  char *norm = rt_xmalloc(2 * n0len + 1);
  rt_text_ru_buf(n0, n0len, norm);
  free(n0);
  dctx c;
  tokenize(&c, norm);
  dmatch m;
  int found = date_find(&c, &today, opts, &m) ? 1 : 0;
  if (found) {
    int hour = opts->default_hour >= 0 && opts->default_hour <= 23 ? opts->default_hour : 10;
    memset(out, 0, sizeof *out);
    out->at = rt_tz_make(tz, m.day.y, m.day.m, m.day.d, hour, 0);
    snprintf(out->kind, sizeof out->kind, "%s", m.d.kind);
    size_t b = c.t[m.b].b, n = c.t[m.e - 1].e - b;
    n = rt_utf8_floor(norm + b, n, sizeof out->matched - 1); /* whole code points */
    memcpy(out->matched, norm + b, n);
    out->matched[n] = '\0';
  }
  free(c.t);
  free(norm);
  return found;
}


/* ======================================================================
 * Russian reading of Latin letters
 *
 * Customers on a phone without a Russian layout write Russian in Latin
 * letters ("net, spasibo", "nuzhen akkumulyator"), and customers who switch
 * layouts mid-word leave Latin look-alikes inside Russian words ("cтоп" with
 * a Latin c). The Russian reading of a normal form rewrites both: a word of
 * Latin letters only is transliterated by the common informal scheme
 * (zh, kh, ch, sh, shch/sch, ts, ya/yu/yo, y as ы or й, ' as ь), a word with
 * both alphabets gets its Latin look-alikes replaced. Words with digits
 * (VINs, part numbers, "5w30") are left alone. The intent patterns are
 * tried on the normal form and on this reading, so English words keep
 * working ("ok", "stop") and transliterated Russian reads like Russian.
 * ====================================================================== */

static bool lat(char ch) { return ch >= 'a' && ch <= 'z'; }
static bool lat_vowel(char ch) { return ch && strchr("aeiouy", ch) != NULL; }

static size_t put(char *out, size_t o, const char *s) {
  size_t n = strlen(s);
  memcpy(out + o, s, n);
  return o + n;
}

/* One all-Latin word w[0..n) into out at o. */
static size_t translit_word(const char *w, size_t n, char *out, size_t o) {
  static const struct { const char *lat, *cyr; } multi[] = {
    {"shch", "щ"}, {"sch", "щ"}, {"zh", "ж"}, {"kh", "х"}, {"ch", "ч"}, {"sh", "ш"},
    {"ts", "ц"},   {"ya", "я"},  {"yu", "ю"}, {"yo", "е"}, {"ja", "я"}, {"ju", "ю"},
    {"jo", "е"},
  };
  static const char *const one[26] = {
    "а", "б", "ц", "д", "е", "ф", "г", "х", "и", "й", "к", "л", "м",
    "н", "о", "п", "к", "р", "с", "т", "у", "в", "в", "х", "ы", "з"};
  if (n == 4 && memcmp(w, "eshe", 4) == 0) return put(out, o, "еще");
  for (size_t i = 0; i < n;) {
    bool after_vowel = i > 0 && lat_vowel(w[i - 1]);
    if (i == 0 && n > 2 && w[0] == 'e' && w[1] == 't') { o = put(out, o, "э"); i++; continue; }
    if (w[i] == '\'') { o = put(out, o, "ь"); i++; continue; }
    if (w[i] == 'y' && i + 1 < n && w[i + 1] == 'e') {
      o = put(out, o, i == 0 || after_vowel ? "е" : "ы");
      i += i == 0 || after_vowel ? 2 : 1;
      continue;
    }
    bool done = false;
    for (size_t k = 0; k < RT_ARRAY_LEN(multi) && !done; k++) {
      size_t l = strlen(multi[k].lat);
      if (i + l <= n && memcmp(w + i, multi[k].lat, l) == 0) {
        o = put(out, o, multi[k].cyr);
        i += l;
        done = true;
      }
    }
    if (done) continue;
    if (w[i] == 'y' && after_vowel) o = put(out, o, "й");
    else o = put(out, o, one[w[i] - 'a']);
    i++;
  }
  return o;
}

static const char *lookalike(char ch) {
  switch (ch) {
  case 'a': return "а"; case 'b': return "в"; case 'c': return "с"; case 'e': return "е";
  case 'h': return "н"; case 'k': return "к"; case 'm': return "м"; case 'o': return "о";
  case 'p': return "р"; case 't': return "т"; case 'x': return "х"; case 'y': return "у";
  default: return NULL;
  }
}

size_t rt_text_ru_buf(const char *norm, size_t n, char *out) {
  size_t o = 0;
  for (size_t i = 0; i < n;) {
    /* a word: up to a space or ASCII punctuation other than ' */
    size_t j = i;
    bool latin = false, cyr = false, other = false;
    while (j < n && norm[j] != ' ') {
      unsigned char ch = (unsigned char)norm[j];
      if (ch < 0x80 && ch != '\'' && !lat((char)ch)) {
        if (j == i) break;
        if (!(ch >= '0' && ch <= '9')) break;
        other = true;
      }
      if (lat((char)ch)) latin = true;
      else if (ch == 0xD0 || ch == 0xD1) cyr = true;
      else if (ch >= 0x80 && (ch & 0xC0) != 0x80) other = true;
      j++;
    }
    if (j == i) { out[o++] = norm[i++]; continue; }
    if (latin && !cyr && !other) {
      o = translit_word(norm + i, j - i, out, o);
    } else if (latin && cyr && !other) {
      for (size_t k = i; k < j; k++) {
        const char *c = lat(norm[k]) ? lookalike(norm[k]) : NULL;
        if (c) o = put(out, o, c);
        else out[o++] = norm[k];
      }
    } else {
      memcpy(out + o, norm + i, j - i);
      o += j - i;
    }
    i = j;
  }
  out[o] = '\0';
  return o;
}
