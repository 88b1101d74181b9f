/* paths.c -- see paths.h. */
#include "paths.h"
#include "rt.h"
#include <stdlib.h>

const char *rt_paths_home(void) {
  const char *h = getenv("SHOPBOT_HOME");
  return h && *h ? h : RT_SOURCE_DIR;
}

char *rt_paths_schema(const char *rel) {
  return rt_xasprintf("%s/schema/%s", rt_paths_home(), rel);
}

char *rt_paths_scripts(const char *rel) {
  return rt_xasprintf("%s/scripts/%s", rt_paths_home(), rel);
}
