/* paths.h -- where shopbot finds its own data (schema/, SQL migrations,
 * scripts/lib: the Lua modules every shop's flows get, personas/ for
 * `shopbot new`) and a shop's flows folder.
 *
 * $SHOPBOT_HOME when set; else <prefix>/share/shopbot when the binary is
 * <prefix>/bin/shopbot and that folder holds the schema (an install);
 * else the source tree the binary was built from, so a build runs in
 * place without an install step. */
#ifndef RT_PATHS_H
#define RT_PATHS_H
const char *rt_paths_home(void);
/* Owned path of schema/<rel>. */
char *rt_paths_schema(const char *rel);
/* Owned path of scripts/<rel>. */
char *rt_paths_scripts(const char *rel);
/* Owned path of a shop's flows folder: rel (flows.dir; NULL or "" =
 * "flows") against shop_dir, lexically normalised. When that folder is
 * missing and rel climbs out of the shop ("../../scripts/vitaly", as the
 * examples have it), the same path without its leading "../"s under
 * rt_paths_home() is taken if it exists, so an example copied elsewhere
 * keeps working. Otherwise the shop-relative path, so the error that
 * follows names the folder looked for. */
char *rt_paths_flows(const char *shop_dir, const char *rel);
/* RT_OK when the folder rt_paths_flows gave exists; else RT_ENOENT with
 * *err (owned) naming flows.dir as written, the folder it resolved to and
 * the data-dir one looked at too. */
int rt_paths_flows_check(const char *shop_dir, const char *rel, const char *resolved, char **err);
#endif
