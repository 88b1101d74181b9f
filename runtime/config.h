/* config.h -- SHOP_DIR/shop.json, validated, with defaults and ${VAR}s.
 *
 * rt_config_load reads the file, fills ${VAR} and ${VAR:-default} references
 * in string values from the environment, validates the result against the
 * shop schema (schema/shop.schema.json with the plugins' fragments merged
 * in, rt_config_schema) and fills the schema's defaults, so
 * every reader sees one complete document and no module keeps its own idea of
 * a default. The config is immutable after load; a reload is a new
 * rt_config.
 *
 * Secrets: a value that came from a ${VAR} reference, and the value of any key
 * named token, secret, password, api_key, apikey, key or ending in _token,
 * _secret or _key (any case), is printed as "***" by rt_config_redacted and
 * never appears in an error message. */
#ifndef RT_CONFIG_H
#define RT_CONFIG_H
#include <stdint.h>
#include <jansson.h>
#include "tz.h"   /* rt_parse_duration, RT_DURATION_MAX_SEC */

typedef struct rt_config rt_config;

/* Loads shop_dir/shop.json against the schema at schema_path. On failure
 * returns RT_ENOENT (no shop.json, no schema), RT_EIO (unreadable) or
 * RT_EINVAL (syntax, ${VAR} or schema errors), and sets *err to an owned
 * message: one line per problem, e.g.
 *   "shop.json:3:15: string or '}' expected"
 *   "shop.json: $.http.listen: expected string, got number"
 *   "shop.json: $.channels.telegram.token: environment variable TG_TOKEN is not set"
 * Up to 20 schema errors are listed. */
int rt_config_load(const char *shop_dir, const char *schema_path, rt_config **out,
                   char **err);
void rt_config_free(rt_config *c);

/* The shop schema rt_config_load validates with: the file at schema_path
 * (schema/shop.schema.json) with the schema fragment of every plugin built
 * in (plugins/plugins.c, plugin.h) put in its place -- a channel's at
 * properties.channels.properties.<name>, a provider's at
 * properties.<name> -- replacing what the file says there (the file keeps
 * loose sections for plugins not built, so their shop.json stays valid).
 * Fragments may $ref the file's "#/$defs/...". Returns RT_OK and a new
 * reference, or RT_ENOENT/RT_EIO/RT_EINVAL and an owned message. */
int rt_config_schema(const char *schema_path, json_t **out, char **err);

/* The whole document: defaults applied, ${VAR} expanded. Borrowed; do not
 * modify it. */
json_t *rt_config_json(const rt_config *c);

/* Lookups by dotted path ("http.listen", "payday.0": a numeric segment indexes
 * an array). Missing or of another type: the default. */
json_t *rt_config_get(const rt_config *c, const char *path); /* borrowed or NULL */
const char *rt_config_str(const rt_config *c, const char *path, const char *dflt);
/* Every integer key of the shop schema has a maximum that fits an int and
 * keeps day/ms/MB conversions far from overflow (unit.config checks the
 * schema for it), so a loaded config never hands out an absurd count. */
long long rt_config_int(const rt_config *c, const char *path, long long dflt);
int rt_config_bool(const rt_config *c, const char *path, int dflt);

/* A duration string ("30m") or an integer number of seconds, at most
 * RT_DURATION_MAX_SEC. Missing, of another type, malformed or too big: the
 * default (rt_config_load has already refused such a file when the schema
 * says the key is a duration). */
int64_t rt_config_duration(const rt_config *c, const char *path, int64_t dflt_sec);


/* Owned JSON text (2-space indent) with secrets replaced by "***". */
char *rt_config_redacted(const rt_config *c);
/* Absolute shop directory, without a trailing slash. */
const char *rt_config_dir(const rt_config *c);
/* Owned: rel resolved against the shop dir unless it is absolute. */
char *rt_config_path(const rt_config *c, const char *rel);

#endif
