/* paths.h -- where shopbot finds its own data (schema/, SQL migrations,
 * scripts/lib: the Lua modules every shop's flows get).
 *
 * $SHOPBOT_HOME when set, else the source tree the binary was built from,
 * so a build runs in place without an install step. */
#ifndef RT_PATHS_H
#define RT_PATHS_H
const char *rt_paths_home(void);
/* Owned path of schema/<rel>. */
char *rt_paths_schema(const char *rel);
/* Owned path of scripts/<rel>. */
char *rt_paths_scripts(const char *rel);
#endif
