/* jschema.h -- a JSON Schema validator (a draft 2020-12 subset) on jansson.
 *
 * Enough of the standard for the shop config and the import/lead schemas:
 *
 *   type (name or array of names), enum, const, allOf, anyOf, oneOf,
 *   $ref ("#" or "#/json/pointer", usually "#/$defs/name"), boolean schemas,
 *   properties, required, additionalProperties (bool or schema),
 *   patternProperties, items (a schema), minItems, maxItems, uniqueItems,
 *   minimum, maximum, exclusiveMinimum, exclusiveMaximum,
 *   minLength, maxLength (in code points), pattern (PCRE2, UTF, unanchored),
 *   format: "time" (HH:MM), "date" (YYYY-MM-DD), "duration" ("30m", "1h30m",
 *   see rt_parse_duration); other formats are annotations and pass.
 *
 * Everything else (default, description, title, examples, $schema, $id,
 * $comment, unknown keywords) is ignored by validation.
 *
 * Messages never quote the instance's values, only key names and what the
 * schema wanted, so a secret that failed validation cannot reach a log line
 * or a chat through an error. */
#ifndef RT_JSCHEMA_H
#define RT_JSCHEMA_H
#include <stddef.h>
#include <jansson.h>

typedef struct rt_jschema_err {
  char path[256]; /* "$", "$.channels.console.enabled", "$.payday[2]" */
  char msg[256];  /* "expected string, got number", "unknown key \"listn\"" */
} rt_jschema_err;

/* Validates inst against schema. Writes up to max_errs errors, in document
 * order, and returns how many it wrote (0: valid). With max_errs <= 0 (errs
 * may then be NULL) it returns 1 when inst is invalid and 0 when valid.
 * An error in the schema itself (a broken $ref, a bad regex) is reported as
 * an error of the instance at the place it was hit, "schema error: ...". */
int rt_jschema_validate(json_t *schema, json_t *inst, rt_jschema_err *errs,
                        int max_errs);

/* Fills "default" values into inst: for every object the schema describes
 * with "properties", each missing property that has a default gets a deep
 * copy of it; then it recurses into present properties (including those just
 * filled), patternProperties/additionalProperties values, array items, $ref
 * and allOf. oneOf/anyOf are not entered: which branch applies is ambiguous.
 * Give a section object "default": {} to have its inner defaults filled when
 * the whole section is missing. Does not validate: run it after validation. */
void rt_jschema_apply_defaults(json_t *schema, json_t *inst);

/* Appends an object key or array index to a JSON path in buf (capacity cap,
 * current length len) the way error paths are written: ".key" for plain keys,
 * "[\"a.b\"]" for keys with dots, brackets, quotes, spaces or none at all,
 * "[3]" for indices. Truncates safely; returns the new length. Exported so
 * other modules (config) name places the same way the validator does. */
size_t rt_jschema_path_key(char *buf, size_t cap, size_t len, const char *key);
size_t rt_jschema_path_index(char *buf, size_t cap, size_t len, size_t idx);

#endif
