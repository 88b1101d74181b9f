/* jschema.c -- JSON Schema subset validator (see jschema.h).
 *
 * One recursive walk over (schema, instance). The current JSON path lives in
 * one growing buffer that each level extends and restores, so deep documents
 * cost no stack per level for paths. anyOf/oneOf try their branches in a
 * silent mode that only counts errors. Regexes are compiled per use: the
 * schemas are small and validation is not on a hot path; a cache would be the
 * first thing to add if lead imports ever show up in a profile. */
#include "jschema.h"
#include "re.h"
#include "tz.h"
#include "rt.h"
#include "utf8.h"
#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Deeper than any sane config; stops $ref cycles ("$ref": "#") from
 * recursing forever. */
#define MAX_DEPTH 128

typedef struct vctx {
  json_t *root;          /* for $ref */
  rt_jschema_err *errs;  /* NULL in silent mode */
  int max, n;            /* slots, slots used */
  int total;             /* errors found, stored or not */
  int depth;
  char path[1024];
  size_t plen;
} vctx;

static void validate(vctx *c, json_t *s, json_t *v);

/* ---- paths ------------------------------------------------------------- */

static size_t path_put(char *buf, size_t cap, size_t len, const char *s, size_t n) {
  if (len >= cap) return len;
  size_t room = cap - 1 - len;
  if (n > room) n = room;
  memcpy(buf + len, s, n);
  len += n;
  buf[len] = '\0';
  return len;
}

static int key_is_plain(const char *k) {
  if (!*k) return 0;
  for (const unsigned char *p = (const unsigned char *)k; *p; p++)
    if (*p <= ' ' || *p == '.' || *p == '[' || *p == ']' || *p == '"' ||
        *p == '\'' || *p == '\\')
      return 0;
  return 1;
}

size_t rt_jschema_path_key(char *buf, size_t cap, size_t len, const char *key) {
  if (key_is_plain(key)) {
    len = path_put(buf, cap, len, ".", 1);
    return path_put(buf, cap, len, key, strlen(key));
  }
  len = path_put(buf, cap, len, "[\"", 2);
  for (const char *p = key; *p; p++) {
    char esc[8];
    int n;
    if (*p == '"' || *p == '\\') n = snprintf(esc, sizeof esc, "\\%c", *p);
    else if ((unsigned char)*p < ' ') n = snprintf(esc, sizeof esc, "\\u%04x", *p);
    else { esc[0] = *p; n = 1; }
    len = path_put(buf, cap, len, esc, (size_t)n);
  }
  return path_put(buf, cap, len, "\"]", 2);
}

size_t rt_jschema_path_index(char *buf, size_t cap, size_t len, size_t idx) {
  char tmp[32];
  int n = snprintf(tmp, sizeof tmp, "[%zu]", idx);
  return path_put(buf, cap, len, tmp, (size_t)n);
}

/* ---- errors ------------------------------------------------------------ */

static void fail(vctx *c, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Records an error at the current path, or at path.key when key is given
 * (unknown keys are reported where they are, not at their parent). */
static void fail(vctx *c, const char *key, const char *fmt, ...) {
  c->total++;
  if (!c->errs || c->n >= c->max) return;
  rt_jschema_err *e = &c->errs[c->n++];
  size_t len = path_put(e->path, sizeof e->path, 0, c->path, c->plen);
  if (key) rt_jschema_path_key(e->path, sizeof e->path, len, key);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(e->msg, sizeof e->msg, fmt, ap);
  va_end(ap);
}

/* ---- helpers ----------------------------------------------------------- */

static const char *type_name(json_t *v) {
  switch (json_typeof(v)) {
  case JSON_OBJECT: return "object";
  case JSON_ARRAY: return "array";
  case JSON_STRING: return "string";
  case JSON_INTEGER:
  case JSON_REAL: return "number";
  case JSON_TRUE:
  case JSON_FALSE: return "boolean";
  default: return "null";
  }
}

static int type_is(const char *t, json_t *v) {
  if (!strcmp(t, "object")) return json_is_object(v);
  if (!strcmp(t, "array")) return json_is_array(v);
  if (!strcmp(t, "string")) return json_is_string(v);
  if (!strcmp(t, "number")) return json_is_number(v);
  if (!strcmp(t, "boolean")) return json_is_boolean(v);
  if (!strcmp(t, "null")) return json_is_null(v);
  if (!strcmp(t, "integer")) {
    if (json_is_integer(v)) return 1;
    /* 2020-12: 3.0 is an integer; jansson parses it as a real. */
    if (json_is_real(v)) {
      double d = json_real_value(v);
      return isfinite(d) && d == floor(d);
    }
  }
  return 0;
}

/* Numbers compare by value (1 == 1.0); everything else as jansson does. */
static int json_same(json_t *a, json_t *b) {
  if (json_is_number(a) && json_is_number(b)) {
    if (json_is_integer(a) && json_is_integer(b))
      return json_integer_value(a) == json_integer_value(b);
    return json_number_value(a) == json_number_value(b);
  }
  return json_equal(a, b);
}

/* Schema values for messages: strings bare (debug, info), the rest as JSON. */
static void render(json_t *v, char *out, size_t n) {
  if (json_is_string(v)) {
    snprintf(out, n, "%s", json_string_value(v));
    return;
  }
  /* json_dumpb leaves the buffer undefined when it is too small; a value that
   * long is not worth quoting in a one-line message anyway. */
  size_t r = json_dumpb(v, out, n - 1, JSON_ENCODE_ANY | JSON_COMPACT);
  if (r == 0 || r >= n) snprintf(out, n, "(%s)", type_name(v));
  else out[r] = '\0';
}

/* Returns 1 match, 0 no match, -1 bad pattern (message in emsg). */
static int regex_match(const char *pat, const char *s, size_t n, char *emsg,
                       size_t elen) {
  char *err = NULL;
  pcre2_code *re = rt_re_compile(pat, PCRE2_ZERO_TERMINATED, 0, &err);
  if (!re) {
    snprintf(emsg, elen, "%s", err);
    free(err);
    return -1;
  }
  pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
  int rc = pcre2_match(re, (PCRE2_SPTR)s, n, 0, 0, md, NULL);
  pcre2_match_data_free(md);
  pcre2_code_free(re);
  if (rc >= 0) return 1;
  if (rc == PCRE2_ERROR_NOMATCH) return 0;
  PCRE2_UCHAR buf[128];
  pcre2_get_error_message(rc, buf, sizeof buf);
  snprintf(emsg, elen, "%s", (char *)buf);
  return -1;
}

static int is_digits(const char *s, int n) {
  for (int i = 0; i < n; i++)
    if (!isdigit((unsigned char)s[i])) return 0;
  return 1;
}

static int valid_time(const char *s) {
  if (strlen(s) != 5 || s[2] != ':' || !is_digits(s, 2) || !is_digits(s + 3, 2))
    return 0;
  int h = (s[0] - '0') * 10 + (s[1] - '0'), m = (s[3] - '0') * 10 + (s[4] - '0');
  return h < 24 && m < 60;
}

static int valid_date(const char *s) {
  if (strlen(s) != 10 || s[4] != '-' || s[7] != '-' || !is_digits(s, 4) ||
      !is_digits(s + 5, 2) || !is_digits(s + 8, 2))
    return 0;
  int y = atoi(s), m = atoi(s + 5), d = atoi(s + 8);
  if (m < 1 || m > 12 || d < 1) return 0;
  return d <= rt_tz_days_in_month(y, m);
}

/* "#" or "#/a/b~1c": a JSON pointer into the root schema. */
static json_t *resolve_ref(json_t *root, const char *ref) {
  if (ref[0] != '#') return NULL;
  const char *p = ref + 1;
  if (!*p) return root;
  if (*p != '/') return NULL;
  json_t *cur = root;
  while (*p == '/' && cur) {
    p++;
    const char *end = strchr(p, '/');
    size_t n = end ? (size_t)(end - p) : strlen(p);
    char tok[256];
    size_t o = 0;
    for (size_t i = 0; i < n && o + 1 < sizeof tok; i++) {
      if (p[i] == '~' && i + 1 < n && (p[i + 1] == '0' || p[i + 1] == '1')) {
        tok[o++] = p[i + 1] == '0' ? '~' : '/';
        i++;
      } else {
        tok[o++] = p[i];
      }
    }
    tok[o] = '\0';
    if (json_is_object(cur)) {
      cur = json_object_get(cur, tok);
    } else if (json_is_array(cur)) {
      char *e;
      unsigned long idx = strtoul(tok, &e, 10);
      cur = (*tok && !*e) ? json_array_get(cur, idx) : NULL;
    } else {
      cur = NULL;
    }
    p += n;
  }
  return cur;
}

/* Does v match s? Counts only, writes nothing. */
static int matches(vctx *c, json_t *s, json_t *v) {
  vctx sub = *c;
  sub.errs = NULL;
  sub.max = sub.n = sub.total = 0;
  validate(&sub, s, v);
  return sub.total == 0;
}

/* A branch "fits by type" when its own type keyword (if any) accepts v. Used
 * to pick the branch whose detailed errors are worth showing. */
static int type_fits(json_t *s, json_t *v) {
  json_t *t = json_is_object(s) ? json_object_get(s, "type") : NULL;
  if (!t) return 1;
  if (json_is_string(t)) return type_is(json_string_value(t), v);
  size_t i;
  json_t *x;
  json_array_foreach(t, i, x) if (json_is_string(x) && type_is(json_string_value(x), v)) return 1;
  return 0;
}

/* ---- keywords ---------------------------------------------------------- */

static int check_type(vctx *c, json_t *t, json_t *v) {
  if (json_is_string(t)) {
    if (type_is(json_string_value(t), v)) return 1;
    fail(c, NULL, "expected %s, got %s", json_string_value(t), type_name(v));
    return 0;
  }
  if (!json_is_array(t)) return 1;
  size_t i;
  json_t *x;
  char want[200] = "";
  size_t wl = 0;
  json_array_foreach(t, i, x) {
    if (!json_is_string(x)) continue;
    if (type_is(json_string_value(x), v)) return 1;
    int n = snprintf(want + wl, sizeof want - wl, "%s%s", i ? " or " : "",
                     json_string_value(x));
    if (n > 0 && wl + (size_t)n < sizeof want) wl += (size_t)n;
  }
  fail(c, NULL, "expected %s, got %s", want, type_name(v));
  return 0;
}

static void check_enum(vctx *c, json_t *en, json_t *v) {
  if (!json_is_array(en)) return;
  size_t i;
  json_t *x;
  json_array_foreach(en, i, x) if (json_same(x, v)) return;
  char list[240] = "";
  size_t l = 0;
  json_array_foreach(en, i, x) {
    char one[120];
    render(x, one, sizeof one);
    int n = snprintf(list + l, sizeof list - l, "%s%s", i ? ", " : "", one);
    if (n < 0 || l + (size_t)n >= sizeof list) break;
    l += (size_t)n;
  }
  fail(c, NULL, "must be one of: %s", list);
}

static void check_string(vctx *c, json_t *s, json_t *v) {
  const char *str = json_string_value(v);
  size_t blen = json_string_length(v);
  json_t *k;
  if ((k = json_object_get(s, "minLength")) && json_is_integer(k) &&
      rt_utf8_count(str, blen) < (size_t)json_integer_value(k))
    fail(c, NULL, "must be at least %lld characters long",
         (long long)json_integer_value(k));
  if ((k = json_object_get(s, "maxLength")) && json_is_integer(k) &&
      rt_utf8_count(str, blen) > (size_t)json_integer_value(k))
    fail(c, NULL, "must be at most %lld characters long",
         (long long)json_integer_value(k));
  if ((k = json_object_get(s, "pattern")) && json_is_string(k)) {
    char emsg[160];
    int m = regex_match(json_string_value(k), str, blen, emsg, sizeof emsg);
    if (m < 0) fail(c, NULL, "schema error: pattern %s: %s", json_string_value(k), emsg);
    else if (!m) fail(c, NULL, "does not match pattern %s", json_string_value(k));
  }
  if ((k = json_object_get(s, "format")) && json_is_string(k)) {
    const char *f = json_string_value(k);
    int64_t sec;
    int rc = RT_OK;
    if (!strcmp(f, "time") && !valid_time(str))
      fail(c, NULL, "not a valid time, expected HH:MM like 09:00");
    else if (!strcmp(f, "date") && !valid_date(str))
      fail(c, NULL, "not a valid date, expected YYYY-MM-DD like 2024-03-08");
    else if (!strcmp(f, "duration") && (rc = rt_parse_duration(str, &sec)) == RT_ELIMIT)
      fail(c, NULL, "duration too long, at most %lldd",
           (long long)(RT_DURATION_MAX_SEC / 86400));
    else if (!strcmp(f, "duration") && rc != RT_OK)
      fail(c, NULL, "not a valid duration, expected like 30m, 24h, 3d, 1h30m");
    else if (!strcmp(f, "regex")) {
      /* Not JSON Schema's ECMA regex: a PCRE2 pattern, compiled as the
       * plugins compile theirs (UTF, Unicode classes, any case). */
      char *err = NULL;
      pcre2_code *re = rt_re_compile(str, PCRE2_ZERO_TERMINATED, PCRE2_CASELESS, &err);
      if (re) {
        pcre2_code_free(re);
      } else {
        fail(c, NULL, "not a valid regular expression: %s", err);
        free(err);
      }
    }
  }
  /* Not JSON Schema: the largest duration a key takes ("maxDuration": "30d").
   * It sits beside "$ref": "#/$defs/duration", which checks the syntax. */
  int64_t sec, max;
  if ((k = json_object_get(s, "maxDuration")) && json_is_string(k) &&
      rt_parse_duration(json_string_value(k), &max) == RT_OK &&
      rt_parse_duration(str, &sec) == RT_OK && sec > max)
    fail(c, NULL, "must be <= %s", json_string_value(k));
}

static void check_number(vctx *c, json_t *s, json_t *v) {
  double d = json_number_value(v);
  char b[64];
  json_t *k;
  if ((k = json_object_get(s, "minimum")) && json_is_number(k) &&
      d < json_number_value(k)) {
    render(k, b, sizeof b);
    fail(c, NULL, "must be >= %s", b);
  }
  if ((k = json_object_get(s, "maximum")) && json_is_number(k) &&
      d > json_number_value(k)) {
    render(k, b, sizeof b);
    fail(c, NULL, "must be <= %s", b);
  }
  if ((k = json_object_get(s, "exclusiveMinimum")) && json_is_number(k) &&
      d <= json_number_value(k)) {
    render(k, b, sizeof b);
    fail(c, NULL, "must be > %s", b);
  }
  if ((k = json_object_get(s, "exclusiveMaximum")) && json_is_number(k) &&
      d >= json_number_value(k)) {
    render(k, b, sizeof b);
    fail(c, NULL, "must be < %s", b);
  }
}

static void check_array(vctx *c, json_t *s, json_t *v) {
  size_t n = json_array_size(v);
  json_t *k;
  if ((k = json_object_get(s, "minItems")) && json_is_integer(k) &&
      (long long)n < json_integer_value(k))
    fail(c, NULL, "must have at least %lld items", (long long)json_integer_value(k));
  if ((k = json_object_get(s, "maxItems")) && json_is_integer(k) &&
      (long long)n > json_integer_value(k))
    fail(c, NULL, "must have at most %lld items", (long long)json_integer_value(k));
  if ((k = json_object_get(s, "uniqueItems")) && json_is_true(k)) {
    for (size_t i = 1; i < n; i++)
      for (size_t j = 0; j < i; j++)
        if (json_same(json_array_get(v, i), json_array_get(v, j))) {
          fail(c, NULL, "items [%zu] and [%zu] are equal; items must be unique", j, i);
          i = n; /* one message is enough */
          break;
        }
  }
  json_t *items = json_object_get(s, "items");
  if (!items) return;
  size_t i;
  json_t *x;
  json_array_foreach(v, i, x) {
    size_t save = c->plen;
    c->plen = rt_jschema_path_index(c->path, sizeof c->path, c->plen, i);
    validate(c, items, x);
    c->plen = save;
    c->path[save] = '\0';
  }
}

static void check_object(vctx *c, json_t *s, json_t *v) {
  json_t *props = json_object_get(s, "properties");
  json_t *pprops = json_object_get(s, "patternProperties");
  json_t *addl = json_object_get(s, "additionalProperties");
  json_t *req = json_object_get(s, "required");
  size_t i;
  json_t *x;
  if (json_is_array(req))
    json_array_foreach(req, i, x) if (json_is_string(x) &&
                                      !json_object_get(v, json_string_value(x)))
        fail(c, NULL, "missing required key \"%s\"", json_string_value(x));

  const char *key;
  json_t *val;
  json_object_foreach(v, key, val) {
    size_t save = c->plen;
    c->plen = rt_jschema_path_key(c->path, sizeof c->path, c->plen, key);
    int known = 0;
    json_t *ps = json_is_object(props) ? json_object_get(props, key) : NULL;
    if (ps) {
      known = 1;
      validate(c, ps, val);
    }
    if (json_is_object(pprops)) {
      const char *pat;
      json_t *psch;
      json_object_foreach(pprops, pat, psch) {
        char emsg[160];
        int m = regex_match(pat, key, strlen(key), emsg, sizeof emsg);
        if (m < 0) {
          fail(c, NULL, "schema error: patternProperties %s: %s", pat, emsg);
        } else if (m) {
          known = 1;
          validate(c, psch, val);
        }
      }
    }
    c->plen = save;
    c->path[save] = '\0';
    if (known || !addl) continue;
    if (json_is_false(addl)) {
      fail(c, key, "unknown key \"%s\"", key);
    } else if (json_is_object(addl)) {
      c->plen = rt_jschema_path_key(c->path, sizeof c->path, c->plen, key);
      validate(c, addl, val);
      c->plen = save;
      c->path[save] = '\0';
    }
  }
}

static void check_combinators(vctx *c, json_t *s, json_t *v) {
  json_t *k;
  size_t i;
  json_t *x;
  if ((k = json_object_get(s, "allOf")) && json_is_array(k))
    json_array_foreach(k, i, x) validate(c, x, v);

  int is_one = 0;
  if ((k = json_object_get(s, "oneOf")) && json_is_array(k)) is_one = 1;
  else if (!((k = json_object_get(s, "anyOf")) && json_is_array(k))) return;
  size_t ok = 0, fits = 0;
  json_t *fit = NULL;
  json_array_foreach(k, i, x) {
    if (matches(c, x, v)) ok++;
    if (type_fits(x, v)) { fits++; fit = x; }
  }
  if (is_one && ok > 1) {
    fail(c, NULL, "matches %zu of the oneOf schemas, must match exactly one", ok);
  } else if (ok == 0) {
    /* Only one branch even takes this type: its errors say what is wrong
     * far better than "matches none". */
    if (fits == 1) validate(c, fit, v);
    else fail(c, NULL, "does not match any of the allowed %s schemas",
              is_one ? "oneOf" : "anyOf");
  }
}

static void validate(vctx *c, json_t *s, json_t *v) {
  if (json_is_true(s)) return;
  if (json_is_false(s)) {
    fail(c, NULL, "not allowed here");
    return;
  }
  if (!json_is_object(s)) return;
  if (c->depth >= MAX_DEPTH) {
    fail(c, NULL, "schema error: nesting deeper than %d (a $ref cycle?)", MAX_DEPTH);
    return;
  }
  c->depth++;
  json_t *k;
  if ((k = json_object_get(s, "$ref")) && json_is_string(k)) {
    json_t *target = resolve_ref(c->root, json_string_value(k));
    if (!target) fail(c, NULL, "schema error: cannot resolve $ref %s", json_string_value(k));
    else validate(c, target, v);
  }
  /* A value of the wrong type makes every other keyword noise. */
  if ((k = json_object_get(s, "type")) && !check_type(c, k, v)) {
    c->depth--;
    return;
  }
  if ((k = json_object_get(s, "const")) && !json_same(k, v)) {
    char b[200];
    render(k, b, sizeof b);
    fail(c, NULL, "must be %s", b);
  }
  if ((k = json_object_get(s, "enum"))) check_enum(c, k, v);
  if (json_is_string(v)) check_string(c, s, v);
  else if (json_is_number(v)) check_number(c, s, v);
  else if (json_is_array(v)) check_array(c, s, v);
  else if (json_is_object(v)) check_object(c, s, v);
  check_combinators(c, s, v);
  c->depth--;
}

int rt_jschema_validate(json_t *schema, json_t *inst, rt_jschema_err *errs,
                        int max_errs) {
  vctx c;
  memset(&c, 0, sizeof c);
  c.root = schema;
  c.errs = max_errs > 0 ? errs : NULL;
  c.max = max_errs > 0 ? max_errs : 0;
  strcpy(c.path, "$");
  c.plen = 1;
  validate(&c, schema, inst);
  if (max_errs <= 0) return c.total > 0;
  return c.n;
}

/* ---- defaults ---------------------------------------------------------- */

/* A property's default: its own, else the one its $ref target declares, so a
 * shared $defs entry can carry the default for every place that uses it. */
static json_t *default_of(json_t *root, json_t *s, int depth) {
  while (json_is_object(s) && depth++ < MAX_DEPTH) {
    json_t *d = json_object_get(s, "default"), *r = json_object_get(s, "$ref");
    if (d) return d;
    if (!json_is_string(r)) return NULL;
    s = resolve_ref(root, json_string_value(r));
  }
  return NULL;
}

static void defaults(json_t *root, json_t *s, json_t *v, int depth) {
  if (!json_is_object(s) || depth >= MAX_DEPTH) return;
  json_t *k;
  if ((k = json_object_get(s, "$ref")) && json_is_string(k))
    defaults(root, resolve_ref(root, json_string_value(k)), v, depth + 1);
  if ((k = json_object_get(s, "allOf")) && json_is_array(k)) {
    size_t i;
    json_t *x;
    json_array_foreach(k, i, x) defaults(root, x, v, depth + 1);
  }
  if (json_is_array(v) && (k = json_object_get(s, "items"))) {
    size_t i;
    json_t *x;
    json_array_foreach(v, i, x) defaults(root, k, x, depth + 1);
    return;
  }
  if (!json_is_object(v)) return;
  json_t *props = json_object_get(s, "properties");
  json_t *pprops = json_object_get(s, "patternProperties");
  json_t *addl = json_object_get(s, "additionalProperties");
  const char *key;
  json_t *ps;
  if (json_is_object(props))
    json_object_foreach(props, key, ps) {
      json_t *d = default_of(root, ps, depth);
      if (d && !json_object_get(v, key))
        json_object_set_new(v, key, json_deep_copy(d));
    }
  json_t *val;
  json_object_foreach(v, key, val) {
    if (!json_is_object(val) && !json_is_array(val)) continue;
    int known = 0;
    if (json_is_object(props) && (ps = json_object_get(props, key))) {
      known = 1;
      defaults(root, ps, val, depth + 1);
    }
    if (json_is_object(pprops)) {
      const char *pat;
      json_t *psch;
      json_object_foreach(pprops, pat, psch) {
        char emsg[160];
        if (regex_match(pat, key, strlen(key), emsg, sizeof emsg) == 1) {
          known = 1;
          defaults(root, psch, val, depth + 1);
        }
      }
    }
    if (!known && json_is_object(addl)) defaults(root, addl, val, depth + 1);
  }
}

void rt_jschema_apply_defaults(json_t *schema, json_t *inst) {
  defaults(schema, schema, inst, 0);
}
