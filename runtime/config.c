/* config.c -- loading shop.json (see config.h).
 *
 * Order matters: ${VAR}s are filled first so that the values the shop really
 * runs with are what the schema checks; defaults are filled last, after
 * validation, so errors point only at what the operator wrote. */
#include "config.h"
#include "buf.h"
#include "jschema.h"
#include "plugin.h"
#include "rt.h"
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#define MAX_ERRORS 20
/* A shop config is a few KB; anything this big is a mistake (a database
 * dump saved under the wrong name) and should not be slurped. */
#define MAX_FILE_SIZE (16 * 1024 * 1024)

struct rt_config {
  char *dir;           /* absolute, no trailing slash */
  json_t *root;
  /* String values that came from ${VAR} expansion, one reference each, so
   * redaction can recognise them by identity however deep they sit. */
  json_t **expanded;
  size_t nexp, capexp;
};

/* ---- error text -------------------------------------------------------- */

typedef struct errbuf {
  rt_buf b;
  int lines;
} errbuf;

static void eb_line(errbuf *b, const char *line) {
  if (b->b.len) rt_buf_addc(&b->b, '\n');
  rt_buf_adds(&b->b, line);
  b->lines++;
}

/* ---- ${VAR} expansion -------------------------------------------------- */

static void remember_expanded(rt_config *c, json_t *v) {
  if (c->nexp == c->capexp) {
    c->capexp = c->capexp ? c->capexp * 2 : 8;
    c->expanded = rt_xrealloc(c->expanded, c->capexp * sizeof *c->expanded);
  }
  c->expanded[c->nexp++] = json_incref(v);
}

static int is_expanded(const rt_config *c, json_t *v) {
  for (size_t i = 0; i < c->nexp; i++)
    if (c->expanded[i] == v) return 1;
  return 0;
}

/* Expands ${NAME} and ${NAME:-default} in s ("$${" is a literal "${").
 * Returns 0 and an owned *out (with *refs set when any reference was seen),
 * or writes a problem into problem (without any value in it) and returns -1.
 * Like the shell, ":-" also applies when the variable is set but empty. */
static int expand_str(const char *s, char **out, int *refs, char *problem,
                      size_t plen) {
  rt_buf b = RT_BUF_INIT;
  *refs = 0;
  for (const char *p = s; *p;) {
    if (p[0] == '$' && p[1] == '$' && p[2] == '{') {
      rt_buf_add(&b, "${", 2);
      p += 3;
      continue;
    }
    if (p[0] != '$' || p[1] != '{') {
      rt_buf_add(&b, p, 1);
      p++;
      continue;
    }
    const char *name = p + 2, *e = name;
    if (isalpha((unsigned char)*e) || *e == '_')
      while (isalnum((unsigned char)*e) || *e == '_') e++;
    size_t nlen = (size_t)(e - name);
    const char *dflt = NULL, *end;
    if (nlen && e[0] == ':' && e[1] == '-') {
      dflt = e + 2;
      end = strchr(dflt, '}');
    } else {
      end = (nlen && *e == '}') ? e : NULL;
    }
    if (!end) {
      snprintf(problem, plen,
               "malformed ${...} reference: use ${NAME} or ${NAME:-default}, "
               "or $${ for a literal ${");
      rt_buf_free(&b);
      return -1;
    }
    char var[128];
    if (nlen >= sizeof var) {
      snprintf(problem, plen, "environment variable name is too long");
      rt_buf_free(&b);
      return -1;
    }
    memcpy(var, name, nlen);
    var[nlen] = '\0';
    const char *val = getenv(var);
    if (dflt && (!val || !*val)) rt_buf_add(&b, dflt, (size_t)(end - dflt));
    else if (val) rt_buf_add(&b, val, strlen(val));
    else {
      snprintf(problem, plen, "environment variable %s is not set", var);
      rt_buf_free(&b);
      return -1;
    }
    *refs = 1;
    p = end + 1;
  }
  *out = rt_buf_take(&b, NULL);
  return 0;
}

/* Replaces the string in place (json_string_set), so the json_t stays where
 * it is in the tree and can be remembered by identity. */
static void expand_value(rt_config *c, json_t *v, char *path, size_t plen,
                         errbuf *eb) {
  if (json_is_object(v)) {
    const char *key;
    json_t *val;
    json_object_foreach(v, key, val) {
      /* Comments often show how to write a reference; never expand them. */
      if (!strcmp(key, "_comment")) continue;
      /* A section switched off needs none of its variables: a new shop's
       * "llm": {"enabled": false, "api_key": "${OPENAI_API_KEY}"} loads
       * before anyone has a key. */
      if (json_is_object(val) && json_is_false(json_object_get(val, "enabled"))) continue;
      size_t n = rt_jschema_path_key(path, 1024, plen, key);
      expand_value(c, val, path, n, eb);
      path[plen] = '\0';
    }
  } else if (json_is_array(v)) {
    size_t i;
    json_t *val;
    json_array_foreach(v, i, val) {
      size_t n = rt_jschema_path_index(path, 1024, plen, i);
      expand_value(c, val, path, n, eb);
      path[plen] = '\0';
    }
  } else if (json_is_string(v) && strstr(json_string_value(v), "${")) {
    char problem[200], *out = NULL;
    int refs;
    if (expand_str(json_string_value(v), &out, &refs, problem, sizeof problem) < 0) {
      if (eb->lines < MAX_ERRORS) {
        char *line = rt_xasprintf("shop.json: %s: %s", path, problem);
        eb_line(eb, line);
        free(line);
      }
      return;
    }
    if (json_string_set(v, out) < 0) {
      if (eb->lines < MAX_ERRORS) {
        char *line = rt_xasprintf("shop.json: %s: an environment variable "
                                  "used here is not valid UTF-8", path);
        eb_line(eb, line);
        free(line);
      }
    } else if (refs) {
      remember_expanded(c, v);
    }
    free(out);
  }
}

/* ---- loading ----------------------------------------------------------- */

/* Reads a whole regular file. Returns RT_OK, RT_ENOENT or RT_EIO with the
 * reason in *why (static text or strerror). */
static int slurp(const char *path, char **data, size_t *len, const char **why) {
  struct stat st;
  if (stat(path, &st) < 0) {
    *why = errno == ENOENT || errno == ENOTDIR ? "no such file" : strerror(errno);
    return errno == ENOENT || errno == ENOTDIR ? RT_ENOENT : RT_EIO;
  }
  if (!S_ISREG(st.st_mode)) {
    *why = "not a regular file";
    return RT_EIO;
  }
  if (st.st_size > MAX_FILE_SIZE) {
    *why = "file too large";
    return RT_EIO;
  }
  FILE *f = fopen(path, "rb");
  if (!f) {
    *why = strerror(errno);
    return RT_EIO;
  }
  char *buf = rt_xmalloc((size_t)st.st_size + 1);
  size_t n = fread(buf, 1, (size_t)st.st_size, f);
  int bad = ferror(f);
  fclose(f);
  if (bad) {
    free(buf);
    *why = "read error";
    return RT_EIO;
  }
  buf[n] = '\0';
  *data = buf;
  *len = n;
  return RT_OK;
}

/* jansson's messages end in "near '<text>'", quoting the file; the text may
 * be a secret, and line:col already says where, so the quote is dropped. */
static void strip_near(char *text) {
  char *p = strstr(text, " near '");
  if (!p) p = strstr(text, " near \"");
  if (p) *p = '\0';
}

static int parse_json(const char *data, size_t len, const char *label, json_t **out,
                      char **err) {
  /* Editors on Windows save UTF-8 with a BOM; jansson rejects it. */
  size_t skip = (len >= 3 && !memcmp(data, "\xEF\xBB\xBF", 3)) ? 3 : 0;
  json_error_t je;
  *out = json_loadb(data + skip, len - skip, JSON_REJECT_DUPLICATES, &je);
  if (*out) return RT_OK;
  strip_near(je.text);
  *err = rt_xasprintf("%s:%d:%d: %s", label, je.line, je.column, je.text);
  return RT_EINVAL;
}

static json_t *load_schema(const char *schema_path, int *rc, char **err) {
  char *data = NULL;
  size_t len = 0;
  const char *why;
  if ((*rc = slurp(schema_path, &data, &len, &why)) != RT_OK) {
    *err = rt_xasprintf("%s: %s", schema_path, why);
    return NULL;
  }
  json_t *schema = NULL;
  if ((*rc = parse_json(data, len, schema_path, &schema, err)) != RT_OK) {
    free(data);
    return NULL;
  }
  free(data);
  return schema;
}

/* obj[key] as an object, created when missing or of another type. */
static json_t *object_at(json_t *obj, const char *key) {
  json_t *v = json_object_get(obj, key);
  if (!json_is_object(v)) {
    v = json_object();
    json_object_set_new(obj, key, v);
  }
  return v;
}

int rt_config_schema(const char *schema_path, json_t **out, char **err) {
  int rc;
  *out = NULL;
  json_t *schema = load_schema(schema_path, &rc, err);
  if (!schema) return rc;
  json_t *props = object_at(schema, "properties");
  for (const rt_plugin *const *pp = rt_plugins; *pp; pp++) {
    const rt_plugin *p = *pp;
    char *label = rt_xasprintf("plugins/%s/schema.json", p->name);
    json_t *frag = NULL;
    rc = parse_json(p->schema_json, strlen(p->schema_json), label, &frag, err);
    free(label);
    if (rc != RT_OK) {
      json_decref(schema);
      return rc;
    }
    json_t *at = p->kind == RT_PLUGIN_CHANNEL
                     ? object_at(object_at(props, "channels"), "properties")
                     : props;
    json_object_set_new(at, p->name, frag);
  }
  *out = schema;
  return RT_OK;
}

int rt_config_load(const char *shop_dir, const char *schema_path, rt_config **out,
                   char **err) {
  *out = NULL;
  *err = NULL;
  /* Name the file as the operator gave it, minus trailing slashes. */
  size_t dl = strlen(shop_dir);
  while (dl > 1 && shop_dir[dl - 1] == '/') dl--;
  char *shown = rt_xasprintf("%.*s/shop.json", (int)dl, shop_dir);

  char abs[PATH_MAX];
  if (!realpath(shop_dir, abs)) {
    int e = errno;
    *err = rt_xasprintf("%s: %s", shown,
                        e == ENOENT || e == ENOTDIR ? "no such file" : strerror(e));
    free(shown);
    return e == ENOENT || e == ENOTDIR ? RT_ENOENT : RT_EIO;
  }
  char *file = rt_xasprintf("%s/shop.json", strcmp(abs, "/") ? abs : "");
  char *data = NULL;
  size_t len = 0;
  const char *why;
  int rc = slurp(file, &data, &len, &why);
  free(file);
  if (rc != RT_OK) {
    *err = rt_xasprintf("%s: %s", shown, why);
    free(shown);
    return rc;
  }
  free(shown);

  json_t *root = NULL;
  rc = parse_json(data, len, "shop.json", &root, err);
  free(data);
  if (rc != RT_OK) return rc;

  json_t *schema = NULL;
  if ((rc = rt_config_schema(schema_path, &schema, err)) != RT_OK) {
    json_decref(root);
    return rc;
  }

  rt_config *c = rt_xcalloc(1, sizeof *c);
  c->dir = rt_xstrdup(abs);
  c->root = root;

  errbuf eb = {RT_BUF_INIT, 0};
  char path[1024] = "$";
  expand_value(c, root, path, 1, &eb);
  if (eb.lines) {
    *err = rt_buf_take(&eb.b, NULL);
    json_decref(schema);
    rt_config_free(c);
    return RT_EINVAL;
  }

  /* One slot more than we show, to know whether to say there are more. */
  rt_jschema_err errs[MAX_ERRORS + 1];
  int n = rt_jschema_validate(schema, root, errs, MAX_ERRORS + 1);
  if (n > 0) {
    for (int i = 0; i < n && i < MAX_ERRORS; i++) {
      char *line = rt_xasprintf("shop.json: %s: %s", errs[i].path, errs[i].msg);
      eb_line(&eb, line);
      free(line);
    }
    if (n > MAX_ERRORS)
      eb_line(&eb, "shop.json: more errors not shown; fix these first");
    *err = rt_buf_take(&eb.b, NULL);
    json_decref(schema);
    rt_config_free(c);
    return RT_EINVAL;
  }
  rt_jschema_apply_defaults(schema, root);
  json_decref(schema);
  *out = c;
  return RT_OK;
}

void rt_config_free(rt_config *c) {
  if (!c) return;
  for (size_t i = 0; i < c->nexp; i++) json_decref(c->expanded[i]);
  free(c->expanded);
  json_decref(c->root);
  free(c->dir);
  free(c);
}

/* ---- lookups ----------------------------------------------------------- */

json_t *rt_config_json(const rt_config *c) { return c->root; }

const char *rt_config_dir(const rt_config *c) { return c->dir; }

json_t *rt_config_get(const rt_config *c, const char *path) {
  json_t *cur = c->root;
  const char *p = path;
  while (cur && *p) {
    const char *dot = strchr(p, '.');
    size_t n = dot ? (size_t)(dot - p) : strlen(p);
    char seg[256];
    if (n >= sizeof seg) return NULL;
    memcpy(seg, p, n);
    seg[n] = '\0';
    if (json_is_object(cur)) {
      cur = json_object_get(cur, seg);
    } else if (json_is_array(cur)) {
      char *e;
      unsigned long i = strtoul(seg, &e, 10);
      cur = (n && !*e && isdigit((unsigned char)seg[0])) ? json_array_get(cur, i) : NULL;
    } else {
      return NULL;
    }
    p += n;
    if (*p == '.') p++;
  }
  return cur;
}

const char *rt_config_str(const rt_config *c, const char *path, const char *dflt) {
  json_t *v = rt_config_get(c, path);
  return json_is_string(v) ? json_string_value(v) : dflt;
}

long long rt_config_int(const rt_config *c, const char *path, long long dflt) {
  json_t *v = rt_config_get(c, path);
  return json_is_integer(v) ? (long long)json_integer_value(v) : dflt;
}

int rt_config_bool(const rt_config *c, const char *path, int dflt) {
  json_t *v = rt_config_get(c, path);
  return json_is_boolean(v) ? json_is_true(v) : dflt;
}

int64_t rt_config_duration(const rt_config *c, const char *path, int64_t dflt_sec) {
  json_t *v = rt_config_get(c, path);
  int64_t sec;
  /* The same cap for both spellings, so a caller can turn any result into
   * milliseconds and add it to "now" without overflow. */
  if (json_is_integer(v) && json_integer_value(v) >= 0 &&
      json_integer_value(v) <= RT_DURATION_MAX_SEC)
    return json_integer_value(v);
  if (json_is_string(v) && rt_parse_duration(json_string_value(v), &sec) == RT_OK)
    return sec;
  return dflt_sec;
}

char *rt_config_path(const rt_config *c, const char *rel) {
  if (!rel || !*rel) return rt_xstrdup(c->dir);
  if (rel[0] == '/') return rt_xstrdup(rel);
  return rt_xasprintf("%s/%s", strcmp(c->dir, "/") ? c->dir : "", rel);
}

/* ---- redaction --------------------------------------------------------- */

static int secret_key(const char *k) {
  static const char *names[] = {"token", "secret", "password", "api_key", "apikey", "key"};
  static const char *suffixes[] = {"_token", "_secret", "_key"};
  for (size_t i = 0; i < RT_ARRAY_LEN(names); i++)
    if (!strcasecmp(k, names[i])) return 1;
  size_t n = strlen(k);
  for (size_t i = 0; i < RT_ARRAY_LEN(suffixes); i++) {
    size_t m = strlen(suffixes[i]);
    if (n > m && !strcasecmp(k + n - m, suffixes[i])) return 1;
  }
  return 0;
}

/* An unset secret (null, "") is shown as it is: "token": "" tells the
 * operator the token is missing without revealing anything. */
static int empty_value(json_t *v) {
  return json_is_null(v) || (json_is_string(v) && json_string_length(v) == 0);
}

static json_t *redact(const rt_config *c, json_t *v) {
  if (is_expanded(c, v)) return json_string("***");
  if (json_is_object(v)) {
    json_t *o = json_object();
    const char *key;
    json_t *val;
    json_object_foreach(v, key, val) {
      if (secret_key(key) && !empty_value(val))
        json_object_set_new(o, key, json_string("***"));
      else
        json_object_set_new(o, key, redact(c, val));
    }
    return o;
  }
  if (json_is_array(v)) {
    json_t *a = json_array();
    size_t i;
    json_t *val;
    json_array_foreach(v, i, val) json_array_append_new(a, redact(c, val));
    return a;
  }
  return json_copy(v);
}

char *rt_config_redacted(const rt_config *c) {
  json_t *r = redact(c, c->root);
  size_t flags = JSON_INDENT(2);
  size_t n = json_dumpb(r, NULL, 0, flags);
  char *s = rt_xmalloc(n + 1);
  json_dumpb(r, s, n, flags);
  s[n] = '\0';
  json_decref(r);
  return s;
}

