/* cmd_new.c -- see cmd_new.h. */
#include "cmd_new.h"
#include "buf.h"
#include "config.h"
#include "paths.h"
#include "rt.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char new_usage[] =
  "usage: shopbot new SHOP_DIR [--persona NAME] [--name \"SHOP NAME\"]\n"
  "\n"
  "Makes a new shop folder you own: a commented shop.json, the persona's\n"
  "flows and their lib/ in SHOP_DIR/flows/, its recorded conversations in\n"
  "SHOP_DIR/tests/, a sample customers.csv, the persona prompt for a language\n"
  "model (prompt.md; the llm section of shop.json is off until you turn it on)\n"
  "and a README (in Russian) saying which file holds which wording.\n"
  "SHOP_DIR must not exist or be empty; nothing is ever overwritten.\n"
  "Then: shopbot check SHOP_DIR.\n"
  "\n"
  "  --persona NAME   whose flows to start from (default: vitaly)\n"
  "  --name TEXT      the shop's name, as the bot says it\n";

/* ---- files ---- */

static int read_all(const char *path, char **out, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return RT_ENOENT;
  rt_buf b = {0};
  char chunk[8192];
  size_t n;
  while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) rt_buf_add(&b, chunk, n);
  int bad = ferror(f);
  fclose(f);
  if (bad) { rt_buf_free(&b); return RT_EIO; }
  *out = rt_buf_take(&b, len);
  return RT_OK;
}

static int write_all(const char *path, const char *data, size_t len, char **err) {
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) {
    *err = rt_xasprintf("%s: %s", path, strerror(errno));
    return RT_EIO;
  }
  size_t off = 0;
  while (off < len) {
    ssize_t w = write(fd, data + off, len - off);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) {
      *err = rt_xasprintf("%s: %s", path, strerror(errno));
      close(fd);
      return RT_EIO;
    }
    off += (size_t)w;
  }
  if (close(fd) != 0) {
    *err = rt_xasprintf("%s: %s", path, strerror(errno));
    return RT_EIO;
  }
  return RT_OK;
}

/* A copy of s with every `from` replaced by `to` (from non-empty). */
static char *replace_all(const char *s, size_t len, const char *from, const char *to,
                         size_t *out_len) {
  rt_buf b = {0};
  size_t fl = strlen(from), tl = strlen(to);
  const char *p = s, *end = s + len;
  while (p < end) {
    const char *hit = fl ? memmem(p, (size_t)(end - p), from, fl) : NULL;
    if (!hit) { rt_buf_add(&b, p, (size_t)(end - p)); break; }
    rt_buf_add(&b, p, (size_t)(hit - p));
    rt_buf_add(&b, to, tl);
    p = hit + fl;
  }
  rt_buf_add(&b, "", 0);
  return rt_buf_take(&b, out_len);
}

typedef struct {
  const char *from, *to;  /* replaced in *.chat files (the example shop's name) */
} subst;

static bool ends_with(const char *s, const char *suf) {
  size_t n = strlen(s), k = strlen(suf);
  return n >= k && strcmp(s + n - k, suf) == 0;
}

static int copy_file(const char *src, const char *dst, const subst *sb, char **err) {
  char *data;
  size_t len;
  if (read_all(src, &data, &len) != RT_OK) {
    *err = rt_xasprintf("%s: %s", src, strerror(errno ? errno : EIO));
    return RT_EIO;
  }
  if (sb && sb->from && *sb->from && ends_with(src, ".chat")) {
    size_t nl;
    char *r = replace_all(data, len, sb->from, sb->to, &nl);
    free(data);
    data = r;
    len = nl;
  }
  int rc = write_all(dst, data, len, err);
  free(data);
  return rc;
}

/* Copies the regular files and folders under src into dst (created);
 * hidden names are skipped (editor swap files, .git). */
static int copy_tree(const char *src, const char *dst, const subst *sb, char **err) {
  DIR *d = opendir(src);
  if (!d) {
    *err = rt_xasprintf("%s: %s", src, strerror(errno));
    return RT_ENOENT;
  }
  if (mkdir(dst, 0755) != 0 && errno != EEXIST) {
    *err = rt_xasprintf("%s: %s", dst, strerror(errno));
    closedir(d);
    return RT_EIO;
  }
  struct dirent *de;
  int rc = RT_OK;
  while (rc == RT_OK && (de = readdir(d))) {
    if (de->d_name[0] == '.') continue;
    char *s = rt_xasprintf("%s/%s", src, de->d_name), *t = rt_xasprintf("%s/%s", dst, de->d_name);
    struct stat st;
    if (stat(s, &st) != 0) { /* a dangling link: nothing to copy */ }
    else if (S_ISDIR(st.st_mode)) rc = copy_tree(s, t, sb, err);
    else if (S_ISREG(st.st_mode)) rc = copy_file(s, t, sb, err);
    free(s);
    free(t);
  }
  closedir(d);
  return rc;
}

static void rm_tree(const char *path) {
  DIR *d = opendir(path);
  if (d) {
    struct dirent *de;
    while ((de = readdir(d))) {
      if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
      char *p = rt_xasprintf("%s/%s", path, de->d_name);
      struct stat st;
      if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode)) rm_tree(p);
      else unlink(p);
      free(p);
    }
    closedir(d);
  }
  rmdir(path);
}

/* 1 if path is a folder with nothing in it, 0 if it does not exist, -1 if
 * it is anything else (a file, a folder with entries). */
static int dir_state(const char *path) {
  struct stat st;
  if (stat(path, &st) != 0) return errno == ENOENT ? 0 : -1;
  if (!S_ISDIR(st.st_mode)) return -1;
  DIR *d = opendir(path);
  if (!d) return -1;
  struct dirent *de;
  int n = 0;
  while ((de = readdir(d)))
    if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) n++;
  closedir(d);
  return n ? -1 : 1;
}

/* JSON string body (no quotes) for a template placeholder. */
static char *json_inner(const char *s) {
  json_t *j = json_string(s);
  char *d = j ? json_dumps(j, JSON_ENCODE_ANY) : NULL;
  json_decref(j);
  if (!d) return rt_xstrdup("");
  size_t n = strlen(d);
  memmove(d, d + 1, n - 2);
  d[n - 2] = '\0';
  return d;
}

/* Writes template tmpl to dst with {{name}} and {{schema}} filled; json
 * says whether values go inside JSON strings. */
static int fill_template(const char *tmpl, const char *dst, const char *name,
                         const char *schema, bool json, char **err) {
  char *data;
  size_t len;
  if (read_all(tmpl, &data, &len) != RT_OK) {
    *err = rt_xasprintf("%s: cannot read the template", tmpl);
    return RT_ENOENT;
  }
  char *n = json ? json_inner(name) : rt_xstrdup(name);
  char *s = json ? json_inner(schema) : rt_xstrdup(schema);
  size_t l1, l2;
  char *a = replace_all(data, len, "{{name}}", n, &l1);
  char *b = replace_all(a, l1, "{{schema}}", s, &l2);
  int rc = write_all(dst, b, l2, err);
  free(data); free(n); free(s); free(a); free(b);
  return rc;
}

/* ---- the persona ---- */

static bool persona_name_ok(const char *p) {
  if (!*p || strlen(p) > 64) return false;
  for (; *p; p++)
    if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_' || *p == '-'))
      return false;
  return true;
}

static char *personas_list(void) {
  char *dir = rt_xasprintf("%s/personas", rt_paths_home());
  rt_buf b = {0};
  DIR *d = opendir(dir);
  struct dirent *de;
  while (d && (de = readdir(d))) {
    if (de->d_name[0] == '.') continue;
    if (b.len) rt_buf_add(&b, ", ", 2);
    rt_buf_add(&b, de->d_name, strlen(de->d_name));
  }
  if (d) closedir(d);
  rt_buf_add(&b, "", 0);
  char *s = rt_buf_take(&b, NULL);
  if (!*s) { free(s); s = rt_xasprintf("none in %s", dir); }
  free(dir);
  return s;
}

typedef struct {
  char *dir, *flows, *tests, *customers, *prompt, *example_name, *default_name;
} persona;

static void persona_free(persona *p) {
  free(p->dir); free(p->flows); free(p->tests); free(p->customers); free(p->prompt);
  free(p->example_name); free(p->default_name);
}

static char *persona_path(const persona *p, json_t *m, const char *key) {
  const char *v = json_string_value(json_object_get(m, key));
  if (!v || !*v) return NULL;
  return v[0] == '/' ? rt_xstrdup(v) : rt_xasprintf("%s/%s", p->dir, v);
}

static int persona_load(const char *name, persona *p, char **err) {
  memset(p, 0, sizeof *p);
  if (!persona_name_ok(name)) {
    char *l = personas_list();
    *err = rt_xasprintf("unknown persona \"%s\" (there are: %s)", name, l);
    free(l);
    return RT_EINVAL;
  }
  p->dir = rt_xasprintf("%s/personas/%s", rt_paths_home(), name);
  char *mf = rt_xasprintf("%s/persona.json", p->dir);
  json_error_t je;
  json_t *m = json_load_file(mf, 0, &je);
  if (!m) {
    struct stat st;
    if (stat(p->dir, &st) != 0) {
      char *l = personas_list();
      *err = rt_xasprintf("unknown persona \"%s\" (there are: %s)", name, l);
      free(l);
    } else {
      *err = rt_xasprintf("%s:%d: %s", mf, je.line, je.text);
    }
    free(mf);
    return RT_EINVAL;
  }
  free(mf);
  p->flows = persona_path(p, m, "flows");
  p->tests = persona_path(p, m, "tests");
  p->customers = persona_path(p, m, "customers");
  p->prompt = persona_path(p, m, "prompt");
  const char *en = json_string_value(json_object_get(m, "example_name"));
  const char *dn = json_string_value(json_object_get(m, "default_name"));
  p->example_name = en ? rt_xstrdup(en) : NULL;
  p->default_name = dn ? rt_xstrdup(dn) : NULL;   /* none: the folder's name (below) */
  json_decref(m);
  if (!p->flows) {
    *err = rt_xasprintf("%s/persona.json: \"flows\" is missing", p->dir);
    return RT_EINVAL;
  }
  return RT_OK;
}

/* ---- the command ---- */

static int bad(const char *msg) {
  fprintf(stderr, "shopbot new: %s\n%s", msg, new_usage);
  return 2;
}

/* Builds the shop in tmp (a fresh folder next to the target). */
static int build_shop(const persona *p, const char *tmp, const char *name, char **err) {
  char *flows = rt_xasprintf("%s/flows", tmp);
  int rc = copy_tree(p->flows, flows, NULL, err);
  free(flows);
  if (rc != RT_OK) return rc;
  subst sb = {p->example_name, name};
  if (p->tests) {
    char *t = rt_xasprintf("%s/tests", tmp);
    rc = copy_tree(p->tests, t, &sb, err);
    free(t);
    if (rc != RT_OK) return rc;
  }
  if (p->customers) {
    char *c = rt_xasprintf("%s/customers.csv", tmp);
    rc = copy_file(p->customers, c, NULL, err);
    free(c);
    if (rc != RT_OK) return rc;
  }
  /* The persona prompt for the llm section (off until the shop turns it
   * on), as the marketer will edit it: its {shop}, {address}... are the
   * flows' to fill from shop.json at each call, so copied untouched. */
  if (p->prompt) {
    char *c = rt_xasprintf("%s/prompt.md", tmp);
    rc = copy_file(p->prompt, c, NULL, err);
    free(c);
    if (rc != RT_OK) return rc;
  }
  char *schema_rel = rt_paths_schema("shop.schema.json");
  char real[PATH_MAX];
  const char *schema = realpath(schema_rel, real) ? real : schema_rel;
  char *tj = rt_xasprintf("%s/shop.json", p->dir), *dj = rt_xasprintf("%s/shop.json", tmp);
  rc = fill_template(tj, dj, name, schema, true, err);
  free(tj); free(dj); free(schema_rel);
  if (rc != RT_OK) return rc;
  char *tr = rt_xasprintf("%s/README.md", p->dir), *dr = rt_xasprintf("%s/README.md", tmp);
  rc = fill_template(tr, dr, name, "", false, err);
  free(tr); free(dr);
  return rc;
}

int rt_cmd_new(int argc, char **argv) {
  const char *dir = NULL, *pname = "vitaly", *name = NULL;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) { fputs(new_usage, stdout); return 0; }
    if (strcmp(a, "--persona") == 0 || strcmp(a, "--name") == 0) {
      if (i + 1 >= argc || !*argv[i + 1]) return bad(a[2] == 'p' ? "--persona needs a NAME"
                                                                 : "--name needs a TEXT");
      if (a[2] == 'p') pname = argv[++i];
      else name = argv[++i];
    } else if (strncmp(a, "--persona=", 10) == 0) pname = a + 10;
    else if (strncmp(a, "--name=", 7) == 0) name = a + 7;
    else if (a[0] == '-') return bad("unknown option");
    else if (dir) return bad("too many arguments");
    else dir = a;
  }
  if (!dir) return bad("SHOP_DIR is required");
  if (name && (!*name || strlen(name) > 200 || strpbrk(name, "\n\r"))) 
    return bad("--name must be one line of 1-200 characters");
  int st = dir_state(dir);
  if (st < 0) {
    fprintf(stderr, "shopbot new: %s already exists and is not an empty folder; "
                    "shopbot new never overwrites: pick a new name\n", dir);
    return 1;
  }
  char *err = NULL;
  persona p;
  if (persona_load(pname, &p, &err) != RT_OK) {
    fprintf(stderr, "shopbot new: %s\n", err);
    free(err);
    persona_free(&p);
    return 1;
  }
  /* Built next to the target, then renamed into place (rename replaces an
   * empty folder), so a failure halfway leaves nothing half-made. */
  char *copy = rt_xstrdup(dir);
  size_t n = strlen(copy);
  while (n > 1 && copy[n - 1] == '/') copy[--n] = '\0';
  /* The shop's name: --name, the persona's default_name, or the folder's
   * own name (no wording of ours). */
  if (!name) name = p.default_name;
  if (!name) name = strrchr(copy, '/') ? strrchr(copy, '/') + 1 : copy;
  char *tmpl = rt_xasprintf("%s.new-XXXXXX", copy);
  int rc = RT_OK;
  if (!mkdtemp(tmpl)) {
    err = rt_xasprintf("cannot make a folder next to %s: %s", dir, strerror(errno));
    rc = RT_EIO;
  }
  if (rc == RT_OK) rc = build_shop(&p, tmpl, name, &err);
  if (rc == RT_OK && rename(tmpl, copy) != 0) {
    err = rt_xasprintf("%s: %s", dir, strerror(errno));
    rc = RT_EIO;
  }
  if (rc != RT_OK) rm_tree(tmpl);
  else chmod(copy, 0755);
  if (rc == RT_OK) {
    /* The shop must load as made; a template out of step with the schema
     * is our bug, said here rather than at the marketer's first check. */
    char *schema = rt_paths_schema("shop.schema.json"), *cerr = NULL;
    rt_config *cfg;
    if (rt_config_load(copy, schema, &cfg, &cerr) != RT_OK) {
      fprintf(stderr, "shopbot new: the new shop.json does not load: %s\n", cerr);
      free(cerr);
      rc = RT_EINVAL;
    } else {
      rt_config_free(cfg);
    }
    free(schema);
  }
  if (rc == RT_OK) {
    printf("made %s (%s, persona %s)\n"
           "next:\n"
           "  shopbot check %s\n"
           "  shopbot test %s\n"
           "  shopbot run %s     # web chat at http://127.0.0.1:8080/\n"
           "what to edit: %s/README.md\n",
           copy, name, pname, copy, copy, copy, copy);
  } else if (err) {
    fprintf(stderr, "shopbot new: %s\n", err);
  }
  free(err);
  free(tmpl);
  free(copy);
  persona_free(&p);
  return rc == RT_OK ? 0 : 1;
}
