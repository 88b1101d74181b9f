/* paths.c -- see paths.h. */
#include "paths.h"
#include "rt.h"
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static bool is_dir(const char *p) {
  struct stat st;
  return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* <prefix>/share/shopbot when the binary runs as <prefix>/bin/shopbot and
 * that folder holds the schema: an installed shopbot finds its data with no
 * variable set. Computed once; the answer cannot change while we run. */
static const char *installed_home(void) {
  static char home[PATH_MAX];
  static int done;
  if (done) return home[0] ? home : NULL;
  done = 1;
  char exe[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n <= 0) return NULL;
  exe[n] = '\0';
  char *slash = strrchr(exe, '/');
  if (!slash) return NULL;
  *slash = '\0';                         /* <prefix>/bin */
  slash = strrchr(exe, '/');
  if (!slash || strcmp(slash, "/bin") != 0) return NULL;
  *slash = '\0';                         /* <prefix> */
  char cand[PATH_MAX];
  if (snprintf(cand, sizeof cand, "%s/share/shopbot/schema/shop.schema.json", exe) >=
      (int)sizeof cand)
    return NULL;
  struct stat st;
  if (stat(cand, &st) != 0) return NULL;
  size_t len = strlen(cand) - strlen("/schema/shop.schema.json");
  memcpy(home, cand, len);
  home[len] = '\0';
  return home;
}

const char *rt_paths_home(void) {
  const char *h = getenv("SHOPBOT_HOME");
  if (h && *h) return h;
  const char *inst = installed_home();
  return inst ? inst : RT_SOURCE_DIR;
}

char *rt_paths_schema(const char *rel) {
  return rt_xasprintf("%s/schema/%s", rt_paths_home(), rel);
}

char *rt_paths_scripts(const char *rel) {
  return rt_xasprintf("%s/scripts/%s", rt_paths_home(), rel);
}

/* "a/./b/../c" -> "a/c", lexically (the folder may not exist, so realpath
 * cannot be used); ".." at the root stays at the root, leading ".."s of a
 * relative path stay. */
static char *normalise(const char *path) {
  size_t n = strlen(path);
  char *copy = rt_xstrdup(path), *out = rt_xmalloc(n + 2);
  char **parts = rt_xmalloc((n / 2 + 2) * sizeof *parts);
  size_t np = 0, ups = 0;  /* ups: leading ".." kept at the front */
  bool abs = path[0] == '/';
  for (char *save = NULL, *t = strtok_r(copy, "/", &save); t; t = strtok_r(NULL, "/", &save)) {
    if (strcmp(t, ".") == 0) continue;
    if (strcmp(t, "..") == 0) {
      if (np > ups) np--;
      else if (!abs) parts[np++] = t, ups++;
      continue;
    }
    parts[np++] = t;
  }
  size_t o = 0;
  if (abs) out[o++] = '/';
  for (size_t i = 0; i < np; i++) {
    if (i) out[o++] = '/';
    size_t l = strlen(parts[i]);
    memcpy(out + o, parts[i], l);
    o += l;
  }
  if (o == 0) out[o++] = '.';
  out[o] = '\0';
  free(parts);
  free(copy);
  return out;
}

char *rt_paths_flows(const char *shop_dir, const char *rel) {
  if (!rel || !*rel) rel = "flows";
  if (rel[0] == '/') return normalise(rel);
  char *joined = rt_xasprintf("%s/%s", shop_dir, rel);
  char *own = normalise(joined);
  free(joined);
  if (is_dir(own) || strncmp(rel, "../", 3) != 0) return own;
  /* A path that climbs out of the shop folder (the examples' own
   * "../../scripts/vitaly") names a folder of shopbot's: when the shop was
   * copied elsewhere, look for the rest of it in shopbot's data dir. */
  const char *rest = rel;
  while (strncmp(rest, "../", 3) == 0) rest += 3;
  char *alt = rt_xasprintf("%s/%s", rt_paths_home(), rest);
  char *alt_n = normalise(alt);
  free(alt);
  if (*rest && is_dir(alt_n)) {
    free(own);
    return alt_n;
  }
  free(alt_n);
  return own;
}

int rt_paths_flows_check(const char *shop_dir, const char *rel, const char *resolved, char **err) {
  if (is_dir(resolved)) return RT_OK;
  if (!rel || !*rel) rel = "flows";
  const char *rest = rel;
  while (strncmp(rest, "../", 3) == 0) rest += 3;
  char *also = rest != rel && *rest ? rt_xasprintf("%s/%s", rt_paths_home(), rest) : NULL;
  char *also_n = also ? normalise(also) : NULL;
  *err = rt_xasprintf("shop.json: $.flows.dir: the flows folder \"%s\" of %s is %s, which does "
                      "not exist%s%s%s", rel, shop_dir, resolved, also_n ? " (nor does " : "",
                      also_n ? also_n : "", also_n ? ")" : "");
  free(also);
  free(also_n);
  return RT_ENOENT;
}
