/* test_config.c -- the JSON Schema validator and shop.json loading. */
#include "config.h"
#include "jschema.h"
#include "rt.h"
#include "t.h"
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- helpers ----------------------------------------------------------- */

static json_t *J(const char *text) {
  json_error_t e;
  json_t *j = json_loads(text, JSON_DECODE_ANY, &e);
  if (!j) fprintf(stderr, "  bad test JSON: %s: %s\n", text, e.text);
  return j;
}

/* Validates inst against schema (both JSON text); returns the error count and
 * copies the first error into *first. */
static int V(const char *schema, const char *inst, rt_jschema_err *first) {
  json_t *s = J(schema), *i = J(inst);
  rt_jschema_err errs[16];
  memset(errs, 0, sizeof errs);
  int n = rt_jschema_validate(s, i, errs, 16);
  if (first) *first = errs[0];
  json_decref(s);
  json_decref(i);
  return n;
}

static const char *schema_path(void) {
  static char buf[4096];
  const char *src = getenv("RT_SOURCE_DIR");
  if (!src) src = RT_SOURCE_DIR; /* running the binary by hand */
  snprintf(buf, sizeof buf, "%s/schema/shop.schema.json", src);
  return buf;
}

static char *mkshop(const char *json) {
  char tmpl[] = "/tmp/rt_config_XXXXXX";
  if (!mkdtemp(tmpl)) return NULL;
  char *f = rt_xasprintf("%s/shop.json", tmpl);
  FILE *fp = fopen(f, "w");
  fputs(json, fp);
  fclose(fp);
  free(f);
  return rt_xstrdup(tmpl);
}

static void rmshop(char *dir) {
  char *f = rt_xasprintf("%s/shop.json", dir);
  unlink(f);
  free(f);
  rmdir(dir);
  free(dir);
}

/* Loads json as a shop; returns the rc and either *out or *err. */
static int load(const char *json, rt_config **out, char **err) {
  char *dir = mkshop(json);
  int rc = rt_config_load(dir, schema_path(), out, err);
  rmshop(dir);
  return rc;
}

static int count_lines(const char *s) {
  int n = 1;
  for (; *s; s++) n += *s == '\n';
  return n;
}

#define MIN_SHOP "{\"name\": \"Шины-Дом\", \"persona\": {}}"

/* ---- validator: types ---------------------------------------------------- */

T(type_basic) {
  rt_jschema_err e;
  CHECK_INT(V("{\"type\":\"string\"}", "\"x\"", NULL), 0);
  CHECK_INT(V("{\"type\":\"string\"}", "5", &e), 1);
  CHECK_STR(e.path, "$");
  CHECK_STR(e.msg, "expected string, got number");
  CHECK_INT(V("{\"type\":\"boolean\"}", "true", NULL), 0);
  CHECK_INT(V("{\"type\":\"boolean\"}", "null", &e), 1);
  CHECK_STR(e.msg, "expected boolean, got null");
  CHECK_INT(V("{\"type\":\"null\"}", "null", NULL), 0);
  CHECK_INT(V("{\"type\":\"object\"}", "[]", &e), 1);
  CHECK_STR(e.msg, "expected object, got array");
  CHECK_INT(V("{\"type\":\"array\"}", "{}", &e), 1);
  CHECK_STR(e.msg, "expected array, got object");
  CHECK_INT(V("{\"type\":\"number\"}", "1.5", NULL), 0);
  CHECK_INT(V("{\"type\":\"number\"}", "2", NULL), 0);
}

T(type_integer) {
  rt_jschema_err e;
  CHECK_INT(V("{\"type\":\"integer\"}", "3", NULL), 0);
  CHECK_INT(V("{\"type\":\"integer\"}", "3.0", NULL), 0); /* 2020-12 */
  CHECK_INT(V("{\"type\":\"integer\"}", "3.5", &e), 1);
  CHECK_STR(e.msg, "expected integer, got number");
  CHECK_INT(V("{\"type\":\"integer\"}", "\"3\"", &e), 1);
  CHECK_STR(e.msg, "expected integer, got string");
}

T(type_array_of_names) {
  rt_jschema_err e;
  const char *s = "{\"type\":[\"string\",\"integer\"]}";
  CHECK_INT(V(s, "\"managers\"", NULL), 0);
  CHECK_INT(V(s, "-100123", NULL), 0);
  CHECK_INT(V(s, "true", &e), 1);
  CHECK_STR(e.msg, "expected string or integer, got boolean");
}

T(type_mismatch_suppresses_other_keywords) {
  /* "level": 5 should say one thing, not also "must be one of". */
  CHECK_INT(V("{\"type\":\"string\",\"enum\":[\"a\"],\"minLength\":3}", "5", NULL), 1);
}

T(boolean_schemas) {
  rt_jschema_err e;
  CHECK_INT(V("true", "{\"a\":1}", NULL), 0);
  CHECK_INT(V("false", "1", &e), 1);
  CHECK_STR(e.msg, "not allowed here");
  CHECK_INT(V("{}", "[1,2]", NULL), 0);
}

/* ---- validator: objects -------------------------------------------------- */

T(properties_nested_path) {
  rt_jschema_err e;
  const char *s =
      "{\"type\":\"object\",\"properties\":{\"channels\":{\"type\":\"object\","
      "\"properties\":{\"console\":{\"type\":\"object\",\"properties\":"
      "{\"enabled\":{\"type\":\"boolean\"}}}}}}}";
  CHECK_INT(V(s, "{\"channels\":{\"console\":{\"enabled\":true}}}", NULL), 0);
  CHECK_INT(V(s, "{\"channels\":{\"console\":{\"enabled\":\"yes\"}}}", &e), 1);
  CHECK_STR(e.path, "$.channels.console.enabled");
  CHECK_STR(e.msg, "expected boolean, got string");
}

T(required) {
  rt_jschema_err e;
  const char *s = "{\"type\":\"object\",\"required\":[\"name\",\"persona\"]}";
  CHECK_INT(V(s, "{\"name\":\"x\",\"persona\":{}}", NULL), 0);
  CHECK_INT(V(s, "{\"name\":\"x\"}", &e), 1);
  CHECK_STR(e.path, "$");
  CHECK_STR(e.msg, "missing required key \"persona\"");
  CHECK_INT(V(s, "{}", NULL), 2);
}

T(additional_properties_false) {
  rt_jschema_err e;
  const char *s = "{\"type\":\"object\",\"properties\":{\"http\":{\"type\":\"object\","
                  "\"additionalProperties\":false,\"properties\":{\"listen\":{}}}}}";
  CHECK_INT(V(s, "{\"http\":{\"listen\":\"x\"}}", NULL), 0);
  CHECK_INT(V(s, "{\"http\":{\"listn\":\"x\"}}", &e), 1);
  CHECK_STR(e.path, "$.http.listn");
  CHECK_STR(e.msg, "unknown key \"listn\"");
  /* true and absent both allow anything */
  CHECK_INT(V("{\"additionalProperties\":true}", "{\"a\":1}", NULL), 0);
  CHECK_INT(V("{\"properties\":{}}", "{\"a\":1}", NULL), 0);
}

T(additional_properties_schema) {
  rt_jschema_err e;
  const char *s = "{\"properties\":{\"phone\":{\"type\":\"string\"}},"
                  "\"additionalProperties\":{\"type\":\"string\"}}";
  CHECK_INT(V(s, "{\"phone\":\"1\",\"metro\":\"Сокол\"}", NULL), 0);
  CHECK_INT(V(s, "{\"phone\":\"1\",\"parking\":true}", &e), 1);
  CHECK_STR(e.path, "$.parking");
  CHECK_STR(e.msg, "expected string, got boolean");
}

T(pattern_properties) {
  rt_jschema_err e;
  const char *s = "{\"patternProperties\":{\"^x_\":{\"type\":\"integer\"}},"
                  "\"additionalProperties\":false}";
  CHECK_INT(V(s, "{\"x_a\":1,\"x_b\":2}", NULL), 0);
  CHECK_INT(V(s, "{\"x_a\":\"1\"}", &e), 1);
  CHECK_STR(e.path, "$.x_a");
  CHECK_STR(e.msg, "expected integer, got string");
  CHECK_INT(V(s, "{\"y\":1}", &e), 1);
  CHECK_STR(e.msg, "unknown key \"y\"");
  /* Cyrillic keys through a UTF pattern */
  CHECK_INT(V("{\"patternProperties\":{\"^\\\\p{Cyrillic}+$\":{\"type\":\"array\"}},"
              "\"additionalProperties\":false}",
              "{\"шины\":[]}", NULL), 0);
}

T(odd_keys_are_quoted_in_paths) {
  rt_jschema_err e;
  CHECK_INT(V("{\"additionalProperties\":false}", "{\"a.b\":1}", &e), 1);
  CHECK_STR(e.path, "$[\"a.b\"]");
  CHECK_INT(V("{\"additionalProperties\":false}", "{\"шины\":1}", &e), 1);
  CHECK_STR(e.path, "$.шины");
  char buf[16];
  size_t n = rt_jschema_path_key(buf, sizeof buf, 0, "averyveryverylongkey");
  CHECK_INT(n, 15);
  CHECK_INT(strlen(buf), 15);
}

/* ---- validator: arrays --------------------------------------------------- */

T(items_and_counts) {
  rt_jschema_err e;
  const char *s = "{\"type\":\"array\",\"items\":{\"type\":\"integer\",\"minimum\":1,"
                  "\"maximum\":31},\"minItems\":1,\"maxItems\":3}";
  CHECK_INT(V(s, "[5,20]", NULL), 0);
  CHECK_INT(V(s, "[5,32]", &e), 1);
  CHECK_STR(e.path, "$[1]");
  CHECK_STR(e.msg, "must be <= 31");
  CHECK_INT(V(s, "[]", &e), 1);
  CHECK_STR(e.msg, "must have at least 1 items");
  CHECK_INT(V(s, "[1,2,3,4]", &e), 1);
  CHECK_STR(e.msg, "must have at most 3 items");
  CHECK_INT(V(s, "[0,\"x\"]", NULL), 2);
}

T(unique_items) {
  rt_jschema_err e;
  CHECK_INT(V("{\"uniqueItems\":true}", "[1,2,3]", NULL), 0);
  CHECK_INT(V("{\"uniqueItems\":true}", "[1,2,1.0]", &e), 1);
  CHECK_STR(e.msg, "items [0] and [2] are equal; items must be unique");
  CHECK_INT(V("{\"uniqueItems\":false}", "[1,1]", NULL), 0);
}

/* ---- validator: values --------------------------------------------------- */

T(enum_and_const) {
  rt_jschema_err e;
  const char *s = "{\"enum\":[\"debug\",\"info\",\"warn\",\"error\"]}";
  CHECK_INT(V(s, "\"warn\"", NULL), 0);
  CHECK_INT(V(s, "\"verbose\"", &e), 1);
  CHECK_STR(e.msg, "must be one of: debug, info, warn, error");
  CHECK_INT(V("{\"enum\":[1,\"a\",null]}", "1.0", NULL), 0);
  CHECK_INT(V("{\"enum\":[1,\"a\",null]}", "2", &e), 1);
  CHECK_STR(e.msg, "must be one of: 1, a, null");
  CHECK_INT(V("{\"const\":\"x\"}", "\"x\"", NULL), 0);
  CHECK_INT(V("{\"const\":\"x\"}", "\"y\"", &e), 1);
  CHECK_STR(e.msg, "must be x");
  CHECK_INT(V("{\"const\":{\"a\":[1]}}", "{\"a\":[1]}", NULL), 0);
}

T(numbers) {
  rt_jschema_err e;
  CHECK_INT(V("{\"minimum\":1,\"maximum\":1024}", "1", NULL), 0);
  CHECK_INT(V("{\"minimum\":1,\"maximum\":1024}", "1024", NULL), 0);
  CHECK_INT(V("{\"minimum\":1,\"maximum\":1024}", "0", &e), 1);
  CHECK_STR(e.msg, "must be >= 1");
  CHECK_INT(V("{\"minimum\":1,\"maximum\":1024}", "1024.5", &e), 1);
  CHECK_STR(e.msg, "must be <= 1024");
  CHECK_INT(V("{\"exclusiveMinimum\":0}", "0", &e), 1);
  CHECK_STR(e.msg, "must be > 0");
  CHECK_INT(V("{\"exclusiveMaximum\":100}", "99.9", NULL), 0);
  CHECK_INT(V("{\"exclusiveMaximum\":100}", "100", &e), 1);
  CHECK_STR(e.msg, "must be < 100");
  CHECK_INT(V("{\"minimum\":0.5}", "0.25", &e), 1);
  CHECK_STR(e.msg, "must be >= 0.5");
  /* numeric keywords ignore non-numbers */
  CHECK_INT(V("{\"minimum\":1}", "\"0\"", NULL), 0);
}

T(string_lengths_count_code_points) {
  rt_jschema_err e;
  CHECK_INT(V("{\"maxLength\":7}", "\"Виталий\"", NULL), 0);
  CHECK_INT(V("{\"minLength\":7}", "\"Виталий\"", NULL), 0);
  CHECK_INT(V("{\"maxLength\":6}", "\"Виталий\"", &e), 1);
  CHECK_STR(e.msg, "must be at most 6 characters long");
  CHECK_INT(V("{\"minLength\":1}", "\"\"", &e), 1);
  CHECK_STR(e.msg, "must be at least 1 characters long");
}

T(pattern) {
  rt_jschema_err e;
  CHECK_INT(V("{\"pattern\":\"^[0-9]+$\"}", "\"123\"", NULL), 0);
  CHECK_INT(V("{\"pattern\":\"^[0-9]+$\"}", "\"12a\"", &e), 1);
  CHECK_STR(e.msg, "does not match pattern ^[0-9]+$");
  /* unanchored like ECMA regexes */
  CHECK_INT(V("{\"pattern\":\"b\"}", "\"abc\"", NULL), 0);
  /* UTF: one Cyrillic letter is one character */
  CHECK_INT(V("{\"pattern\":\"^[А-Яа-яЁё]{3}$\"}", "\"Дом\"", NULL), 0);
  CHECK_INT(V("{\"pattern\":\"^\\\\w+$\"}", "\"Дом\"", NULL), 0);
  /* a broken regex is the schema's fault and says so */
  CHECK_INT(V("{\"pattern\":\"([\"}", "\"x\"", &e), 1);
  CHECK(strncmp(e.msg, "schema error: pattern ([", 24) == 0);
}

T(formats) {
  rt_jschema_err e;
  const char *t = "{\"format\":\"time\"}", *d = "{\"format\":\"date\"}",
             *u = "{\"format\":\"duration\"}";
  CHECK_INT(V(t, "\"09:00\"", NULL), 0);
  CHECK_INT(V(t, "\"23:59\"", NULL), 0);
  CHECK_INT(V(t, "\"24:00\"", NULL), 1);
  CHECK_INT(V(t, "\"9:00\"", &e), 1);
  CHECK_STR(e.msg, "not a valid time, expected HH:MM like 09:00");
  CHECK_INT(V(t, "\"09:60\"", NULL), 1);
  CHECK_INT(V(t, "\"09:00:00\"", NULL), 1);
  CHECK_INT(V(d, "\"2024-02-29\"", NULL), 0);
  CHECK_INT(V(d, "\"2023-02-29\"", NULL), 1);
  CHECK_INT(V(d, "\"2000-02-29\"", NULL), 0);
  CHECK_INT(V(d, "\"1900-02-29\"", NULL), 1);
  CHECK_INT(V(d, "\"2024-04-31\"", NULL), 1);
  CHECK_INT(V(d, "\"2024-13-01\"", &e), 1);
  CHECK_STR(e.msg, "not a valid date, expected YYYY-MM-DD like 2024-03-08");
  CHECK_INT(V(d, "\"2024-1-01\"", NULL), 1);
  CHECK_INT(V(u, "\"30m\"", NULL), 0);
  CHECK_INT(V(u, "\"1h30m\"", NULL), 0);
  CHECK_INT(V(u, "\"90\"", &e), 1);
  CHECK_STR(e.msg, "not a valid duration, expected like 30m, 24h, 3d, 1h30m");
  /* unknown formats are annotations */
  CHECK_INT(V("{\"format\":\"email\"}", "\"not an email\"", NULL), 0);
  /* formats only constrain strings */
  CHECK_INT(V(t, "5", NULL), 0);
}

/* ---- validator: composition ---------------------------------------------- */

T(ref_to_defs) {
  rt_jschema_err e;
  const char *s = "{\"properties\":{\"a\":{\"$ref\":\"#/$defs/dur\"}},"
                  "\"$defs\":{\"dur\":{\"type\":\"string\",\"format\":\"duration\"}}}";
  CHECK_INT(V(s, "{\"a\":\"24h\"}", NULL), 0);
  CHECK_INT(V(s, "{\"a\":\"tomorrow\"}", &e), 1);
  CHECK_STR(e.path, "$.a");
  CHECK_INT(V(s, "{\"a\":24}", &e), 1);
  CHECK_STR(e.msg, "expected string, got number");
  CHECK_INT(V("{\"$ref\":\"#/$defs/nope\"}", "1", &e), 1);
  CHECK_STR(e.msg, "schema error: cannot resolve $ref #/$defs/nope");
  /* escaped pointer tokens */
  CHECK_INT(V("{\"$ref\":\"#/$defs/a~1b\",\"$defs\":{\"a/b\":{\"type\":\"null\"}}}",
              "1", &e), 1);
  CHECK_STR(e.msg, "expected null, got number");
}

T(ref_cycle_terminates) {
  rt_jschema_err e;
  CHECK_INT(V("{\"$ref\":\"#\"}", "1", &e), 1);
  CHECK(strstr(e.msg, "schema error") != NULL);
  /* a legit recursive schema: a tree of arrays */
  const char *s = "{\"$ref\":\"#/$defs/n\",\"$defs\":{\"n\":{\"type\":\"array\","
                  "\"items\":{\"$ref\":\"#/$defs/n\"}}}}";
  CHECK_INT(V(s, "[[[]],[]]", NULL), 0);
  CHECK_INT(V(s, "[[1]]", &e), 1);
  CHECK_STR(e.path, "$[0][0]");
}

T(one_of_any_of) {
  rt_jschema_err e;
  const char *one = "{\"oneOf\":[{\"type\":\"integer\"},{\"type\":\"number\"}]}";
  CHECK_INT(V(one, "1.5", NULL), 0);
  CHECK_INT(V(one, "1", &e), 1);
  CHECK_STR(e.msg, "matches 2 of the oneOf schemas, must match exactly one");
  CHECK_INT(V(one, "\"x\"", &e), 1);
  CHECK_STR(e.msg, "does not match any of the allowed oneOf schemas");
  const char *any = "{\"anyOf\":[{\"type\":\"integer\"},{\"type\":\"number\"}]}";
  CHECK_INT(V(any, "1", NULL), 0);
  CHECK_INT(V(any, "null", &e), 1);
  CHECK_STR(e.msg, "does not match any of the allowed anyOf schemas");
  /* only one branch takes objects: its own errors are shown */
  const char *mix = "{\"anyOf\":[{\"type\":\"string\"},{\"type\":\"object\","
                    "\"required\":[\"url\"]}]}";
  CHECK_INT(V(mix, "{}", &e), 1);
  CHECK_STR(e.msg, "missing required key \"url\"");
  CHECK_INT(V(mix, "\"x\"", NULL), 0);
  CHECK_INT(V("{\"allOf\":[{\"minimum\":1},{\"maximum\":2}]}", "3", &e), 1);
  CHECK_STR(e.msg, "must be <= 2");
}

T(error_cap_and_validity_mode) {
  const char *s = "{\"items\":{\"type\":\"string\"}}";
  json_t *sc = J(s), *in = J("[1,2,3,4,5]");
  rt_jschema_err errs[3];
  CHECK_INT(rt_jschema_validate(sc, in, errs, 3), 3);
  CHECK_STR(errs[2].path, "$[2]");
  CHECK_INT(rt_jschema_validate(sc, in, NULL, 0), 1);
  json_t *ok = J("[\"a\"]");
  CHECK_INT(rt_jschema_validate(sc, ok, NULL, 0), 0);
  json_decref(ok);
  json_decref(sc);
  json_decref(in);
}

T(ignored_keywords) {
  CHECK_INT(V("{\"description\":\"x\",\"default\":5,\"title\":\"t\",\"x-foo\":1,"
              "\"type\":\"string\"}", "\"s\"", NULL), 0);
}

/* ---- defaults ------------------------------------------------------------ */

T(apply_defaults) {
  json_t *s = J("{\"properties\":{"
                "\"a\":{\"default\":1},"
                "\"b\":{\"default\":\"keep?\"},"
                "\"sec\":{\"type\":\"object\",\"default\":{},\"properties\":{"
                "  \"x\":{\"default\":[1,2]},\"y\":{\"$ref\":\"#/$defs/y\"}}},"
                "\"nodflt\":{\"type\":\"object\",\"properties\":{\"z\":{\"default\":0}}},"
                "\"list\":{\"items\":{\"properties\":{\"q\":{\"default\":true}}}}},"
                "\"$defs\":{\"y\":{\"default\":\"from-ref\"}}}");
  json_t *i = J("{\"b\":\"mine\",\"list\":[{},{\"q\":false}]}");
  rt_jschema_apply_defaults(s, i);
  CHECK_INT(json_integer_value(json_object_get(i, "a")), 1);
  CHECK_STR(json_string_value(json_object_get(i, "b")), "mine");
  json_t *sec = json_object_get(i, "sec");
  CHECK(json_is_object(sec));
  CHECK_INT(json_array_size(json_object_get(sec, "x")), 2);
  CHECK_STR(json_string_value(json_object_get(sec, "y")), "from-ref");
  CHECK(json_object_get(i, "nodflt") == NULL);
  CHECK(json_is_true(json_object_get(json_array_get(json_object_get(i, "list"), 0), "q")));
  CHECK(json_is_false(json_object_get(json_array_get(json_object_get(i, "list"), 1), "q")));
  /* defaults are copies: changing one does not change the schema */
  json_array_append_new(json_object_get(sec, "x"), json_integer(3));
  json_t *sx = json_object_get(json_object_get(json_object_get(
      json_object_get(s, "properties"), "sec"), "properties"), "x");
  CHECK_INT(json_array_size(json_object_get(sx, "default")), 2);
  json_decref(s);
  json_decref(i);
}

/* ---- durations ----------------------------------------------------------- */

T(durations) {
  int64_t s = -1;
  CHECK_INT(rt_parse_duration("30m", &s), RT_OK); CHECK_INT(s, 1800);
  CHECK_INT(rt_parse_duration("24h", &s), RT_OK); CHECK_INT(s, 86400);
  CHECK_INT(rt_parse_duration("90d", &s), RT_OK); CHECK_INT(s, 90 * 86400);
  CHECK_INT(rt_parse_duration("45s", &s), RT_OK); CHECK_INT(s, 45);
  CHECK_INT(rt_parse_duration("1h30m", &s), RT_OK); CHECK_INT(s, 5400);
  CHECK_INT(rt_parse_duration("1d2h3m4s", &s), RT_OK); CHECK_INT(s, 93784);
  CHECK_INT(rt_parse_duration("0s", &s), RT_OK); CHECK_INT(s, 0);
  CHECK_INT(rt_parse_duration("90m", &s), RT_OK); CHECK_INT(s, 5400);
  s = 7;
  CHECK_INT(rt_parse_duration("", &s), RT_EINVAL);
  CHECK_INT(rt_parse_duration(NULL, &s), RT_EINVAL);
  CHECK_INT(rt_parse_duration("30", &s), RT_EINVAL);
  CHECK_INT(rt_parse_duration("m", &s), RT_EINVAL);
  CHECK_INT(rt_parse_duration("30x", &s), RT_EINVAL);
  CHECK_INT(rt_parse_duration("30m1h", &s), RT_EINVAL);
  CHECK_INT(rt_parse_duration("1h1h", &s), RT_EINVAL);
  CHECK_INT(rt_parse_duration(" 30m", &s), RT_EINVAL);
  CHECK_INT(rt_parse_duration("30m ", &s), RT_EINVAL);
  CHECK_INT(rt_parse_duration("-5m", &s), RT_EINVAL);
  CHECK_INT(rt_parse_duration("1.5h", &s), RT_EINVAL);
  CHECK_INT(rt_parse_duration("99999999999999999999s", &s), RT_ELIMIT);
  CHECK_INT(rt_parse_duration("999999999999999d", &s), RT_ELIMIT);
  CHECK_INT(s, 7); /* untouched on error */
}

/* ---- config loading ------------------------------------------------------ */

T(load_minimal_applies_defaults) {
  rt_config *c = NULL;
  char *err = NULL;
  CHECK_INT(load(MIN_SHOP, &c, &err), RT_OK);
  CHECK(err == NULL);
  if (!c) { free(err); return; }
  CHECK_STR(rt_config_str(c, "name", NULL), "Шины-Дом");
  CHECK_STR(rt_config_str(c, "persona.name", NULL), "Виталий");
  CHECK_STR(rt_config_str(c, "persona.role", NULL), "менеджер магазина");
  CHECK(rt_config_str(c, "persona.signature", NULL) == NULL);
  CHECK_STR(rt_config_str(c, "timezone", NULL), "Europe/Moscow");
  CHECK_STR(rt_config_str(c, "http.listen", NULL), "127.0.0.1:8080");
  CHECK_INT(rt_config_bool(c, "http.enabled", 0), 1);
  CHECK_STR(rt_config_str(c, "log.level", NULL), "info");
  CHECK_STR(rt_config_str(c, "log.format", NULL), "logfmt");
  CHECK_STR(rt_config_str(c, "flows.dir", NULL), "flows");
  CHECK_STR(rt_config_str(c, "flows.start", NULL), "lead");
  CHECK_INT(rt_config_int(c, "flows.reload_debounce_ms", 0), 15);
  CHECK_STR(rt_config_str(c, "store.path", NULL), "data/shop.db");
  CHECK_STR(rt_config_str(c, "store.synchronous", NULL), "full");
  CHECK_INT(rt_config_int(c, "limits.step_instructions", 0), 10000000);
  CHECK_INT(rt_config_int(c, "limits.lua_memory_mb", 0), 64);
  CHECK_INT(rt_config_int(c, "limits.step_timeout_ms", 0), 30000);
  CHECK_INT(rt_config_int(c, "limits.http_requests_per_step", 0), 10);
  CHECK_STR(rt_config_str(c, "managers.channel", NULL), "console");
  CHECK_STR(rt_config_str(c, "managers.chat_id", NULL), "managers");
  CHECK_INT(rt_config_duration(c, "handoff.release_after", 0), 86400);
  CHECK_INT(rt_config_duration(c, "handoff.remind_after", 0), 1800);
  CHECK_INT(rt_config_int(c, "retention.idle_days", 0), 90);
  CHECK_INT(rt_config_int(c, "retention.cooldown_days", 0), 30);
  CHECK_INT(rt_config_duration(c, "retention.silent_after", 0), 3 * 86400);
  CHECK(json_number_value(rt_config_get(c, "retention.discount_percent")) == 5);
  CHECK_INT(rt_config_duration(c, "retention.offer_valid", 0), 86400);
  CHECK_INT(rt_config_int(c, "retention.rate_per_minute", 0), 20);
  CHECK_INT(rt_config_int(c, "gifts.after_days", 0), 3);
  CHECK_INT(rt_config_int(c, "payday.0", 0), 5);
  CHECK_INT(rt_config_int(c, "payday.1", 0), 20);
  CHECK_INT(rt_config_int(c, "payday.2", -1), -1);
  CHECK_INT(json_array_size(rt_config_get(c, "working_hours.days")), 6);
  CHECK_STR(rt_config_str(c, "working_hours.from", NULL), "09:00");
  CHECK_STR(rt_config_str(c, "working_hours.to", NULL), "19:00");
  CHECK_INT(rt_config_bool(c, "channels.console.enabled", 0), 1);
  /* the telegram plugin's section: its defaults, no token (so not started) */
  CHECK_STR(rt_config_str(c, "channels.telegram.token", NULL), "");
  CHECK_INT(rt_config_int(c, "channels.telegram.poll_timeout_s", 0), 25);
  CHECK_STR(rt_config_str(c, "tests.dir", NULL), "tests");
  CHECK_INT(rt_config_bool(c, "tests.on_reload", 1), 0);
  /* lookups of the wrong type or missing paths fall back */
  CHECK_STR(rt_config_str(c, "limits.lua_memory_mb", "d"), "d");
  CHECK_INT(rt_config_int(c, "http.listen", 7), 7);
  CHECK_INT(rt_config_int(c, "no.such.path", 7), 7);
  CHECK_INT(rt_config_duration(c, "http.listen", 9), 9);
  CHECK_INT(rt_config_duration(c, "limits.step_timeout_ms", 9), 30000);
  /* every default the schema fills is itself valid */
  json_error_t je;
  json_t *schema = json_load_file(schema_path(), 0, &je);
  CHECK(schema != NULL);
  CHECK_INT(rt_jschema_validate(schema, rt_config_json(c), NULL, 0), 0);
  json_decref(schema);
  rt_config_free(c);
}

T(dir_and_paths) {
  char *dir = mkshop(MIN_SHOP);
  char *withslash = rt_xasprintf("%s/./", dir);
  rt_config *c = NULL;
  char *err = NULL;
  CHECK_INT(rt_config_load(withslash, schema_path(), &c, &err), RT_OK);
  if (c) {
    CHECK_STR(rt_config_dir(c), dir); /* /tmp is not a symlink here */
    char *p = rt_config_path(c, "flows");
    char *want = rt_xasprintf("%s/flows", dir);
    CHECK_STR(p, want);
    free(p);
    free(want);
    p = rt_config_path(c, "/var/lib/x.db");
    CHECK_STR(p, "/var/lib/x.db");
    free(p);
    rt_config_free(c);
  }
  free(err);
  free(withslash);
  rmshop(dir);
}

T(full_example_loads) {
  /* like the docs example, plus ${VAR:-default} and an open channel key */
  const char *ex =
      "{\n"
      "  \"$schema\": \"../schema/shop.schema.json\",\n"
      "  \"_comment\": \"Токен задаётся так: ${TG_TOKEN}\",\n"
      "  \"name\": \"Шины-Дом\",\n"
      "  \"persona\": {\"name\": \"Виталий\", \"role\": \"менеджер магазина\","
      " \"signature\": \"— Виталий, Шины-Дом\"},\n"
      "  \"shop\": {\"phone\": \"+7 495 000-00-00\", \"city\": \"Москва\","
      " \"metro\": \"Сокол\"},\n"
      "  \"timezone\": \"Europe/Moscow\",\n"
      "  \"working_hours\": {\"days\": [1,2,3,4,5], \"from\": \"10:00\", \"to\": \"20:00\"},\n"
      "  \"flows\": {\"dir\": \"flows\", \"lib\": \"lib\", \"start\": \"lead\"},\n"
      "  \"store\": {\"path\": \"data/shop.db\", \"synchronous\": \"normal\"},\n"
      "  \"http\": {\"listen\": \"0.0.0.0:8080\"},\n"
      "  \"log\": {\"level\": \"debug\", \"format\": \"json\"},\n"
      "  \"limits\": {\"lua_memory_mb\": 128},\n"
      "  \"managers\": {\"channel\": \"telegram\", \"chat_id\": -1001234567890},\n"
      "  \"handoff\": {\"release_after\": \"12h\", \"remind_after\": \"15m\"},\n"
      "  \"retention\": {\"discount_percent\": 7.5, \"silent_after\": \"2d\"},\n"
      "  \"gifts\": {\"after_days\": 3, \"accessories\": {\"шины\": [\"вентили\", \"колпачки\"]}},\n"
      "  \"payday\": [10, 25],\n"
      "  \"channels\": {\"console\": {\"enabled\": false},"
      " \"telegram\": {\"token\": \"${RT_TEST_TG:-none}\", \"poll_timeout_s\": 30}},\n"
      "  \"llm\": {\"base_url\": \"http://127.0.0.1:9/v1\", \"api_key\": \"sk-literal\"},\n"
      "  \"tests\": {\"on_reload\": true}\n"
      "}\n";
  rt_config *c = NULL;
  char *err = NULL;
  int rc = load(ex, &c, &err);
  CHECK_INT(rc, RT_OK);
  if (err) fprintf(stderr, "  %s\n", err);
  free(err);
  if (!c) return;
  CHECK_INT(rt_config_int(c, "managers.chat_id", 0), -1001234567890LL);
  CHECK_STR(rt_config_str(c, "_comment", NULL), "Токен задаётся так: ${TG_TOKEN}");
  CHECK_INT(rt_config_duration(c, "handoff.remind_after", 0), 900);
  CHECK_INT(rt_config_int(c, "limits.step_timeout_ms", 0), 30000);
  CHECK_STR(rt_config_str(c, "flows.lib", NULL), "lib");
  CHECK_STR(rt_config_str(c, "shop.metro", NULL), "Сокол");
  CHECK_INT(rt_config_bool(c, "channels.console.enabled", 1), 0);
  rt_config_free(c);
}

/* The example in docs/config.md must stay valid. */
T(docs_example_loads) {
  const char *src = getenv("RT_SOURCE_DIR");
  char *md = rt_xasprintf("%s/docs/config.md", src ? src : RT_SOURCE_DIR);
  FILE *f = fopen(md, "r");
  free(md);
  CHECK(f != NULL);
  if (!f) return;
  static char text[65536];
  size_t n = fread(text, 1, sizeof text - 1, f);
  fclose(f);
  text[n] = '\0';
  char *start = strstr(text, "```json\n");
  CHECK(start != NULL);
  if (!start) return;
  start += 8;
  char *end = strstr(start, "```");
  CHECK(end != NULL);
  if (!end) return;
  *end = '\0';
  setenv("TG_TOKEN", "1:docs", 1);
  setenv("LLM_API_KEY", "sk-docs", 1);
  rt_config *c = NULL;
  char *err = NULL;
  CHECK_INT(load(start, &c, &err), RT_OK);
  if (err) fprintf(stderr, "  %s\n", err);
  free(err);
  if (c) CHECK_STR(rt_config_str(c, "channels.telegram.token", NULL), "1:docs");
  rt_config_free(c);
  unsetenv("TG_TOKEN");
  unsetenv("LLM_API_KEY");
}

T(missing_file) {
  char tmpl[] = "/tmp/rt_config_XXXXXX";
  CHECK(mkdtemp(tmpl) != NULL);
  rt_config *c = (rt_config *)1;
  char *err = NULL;
  CHECK_INT(rt_config_load(tmpl, schema_path(), &c, &err), RT_ENOENT);
  CHECK(c == NULL);
  char *want = rt_xasprintf("%s/shop.json: no such file", tmpl);
  CHECK_STR(err, want);
  free(want);
  free(err);
  /* no such directory: same message */
  char *gone = rt_xasprintf("%s/nope/", tmpl);
  CHECK_INT(rt_config_load(gone, schema_path(), &c, &err), RT_ENOENT);
  want = rt_xasprintf("%s/nope/shop.json: no such file", tmpl);
  CHECK_STR(err, want);
  free(want);
  free(err);
  free(gone);
  rmdir(tmpl);
}

T(missing_schema) {
  char *dir = mkshop(MIN_SHOP);
  rt_config *c = NULL;
  char *err = NULL;
  CHECK_INT(rt_config_load(dir, "/nonexistent/shop.schema.json", &c, &err), RT_ENOENT);
  CHECK_STR(err, "/nonexistent/shop.schema.json: no such file");
  free(err);
  rmshop(dir);
}

T(malformed_json_line_col) {
  rt_config *c = NULL;
  char *err = NULL;
  CHECK_INT(load("{\n  \"name\": \"x\",\n  \"persona\": {,}\n}\n", &c, &err), RT_EINVAL);
  CHECK(c == NULL);
  CHECK(err && strncmp(err, "shop.json:3:", 12) == 0);
  fprintf(stderr, "  (message: %s)\n", err ? err : "");
  free(err);
  /* the quoted text near the error may be a secret: it is never shown */
  CHECK_INT(load("{\n\"token\": \"s3cr3t-tok\n\"}", &c, &err), RT_EINVAL);
  CHECK(err && strncmp(err, "shop.json:2:", 12) == 0);
  CHECK(err && !strstr(err, "s3cr3t"));
  free(err);
  CHECK_INT(load("{\"name\": \"a\", \"name\": \"b\", \"persona\": {}}", &c, &err), RT_EINVAL);
  CHECK(err && strstr(err, "duplicate"));
  free(err);
  CHECK_INT(load("", &c, &err), RT_EINVAL);
  CHECK(err && strncmp(err, "shop.json:", 10) == 0);
  free(err);
}

T(utf8_bom_accepted) {
  rt_config *c = NULL;
  char *err = NULL;
  CHECK_INT(load("\xEF\xBB\xBF" MIN_SHOP, &c, &err), RT_OK);
  free(err);
  rt_config_free(c);
}

T(wrong_type_path) {
  rt_config *c = NULL;
  char *err = NULL;
  CHECK_INT(load("{\"name\":\"x\",\"persona\":{},\"http\":{\"listen\":8080}}", &c, &err),
            RT_EINVAL);
  CHECK(c == NULL);
  CHECK_STR(err, "shop.json: $.http.listen: expected string, got number");
  free(err);
  CHECK_INT(load("[1]", &c, &err), RT_EINVAL);
  CHECK_STR(err, "shop.json: $: expected object, got array");
  free(err);
}

T(unknown_key_path) {
  rt_config *c = NULL;
  char *err = NULL;
  CHECK_INT(load("{\"name\":\"x\",\"persona\":{},\"http\":{\"listn\":\"1:2\"}}", &c, &err),
            RT_EINVAL);
  CHECK_STR(err, "shop.json: $.http.listn: unknown key \"listn\"");
  free(err);
  CHECK_INT(load("{\"name\":\"x\",\"persona\":{},\"channels\":{\"telegarm\":{}}}", &c, &err),
            RT_EINVAL);
  CHECK_STR(err, "shop.json: $.channels.telegarm: unknown key \"telegarm\"");
  free(err);
}

T(missing_required) {
  rt_config *c = NULL;
  char *err = NULL;
  CHECK_INT(load("{\"name\":\"x\"}", &c, &err), RT_EINVAL);
  CHECK_STR(err, "shop.json: $: missing required key \"persona\"");
  free(err);
}

T(schema_values) {
  rt_config *c = NULL;
  char *err = NULL;
  CHECK_INT(load("{\"name\":\"x\",\"persona\":{},\"log\":{\"level\":\"verbose\"}}", &c, &err),
            RT_EINVAL);
  CHECK_STR(err, "shop.json: $.log.level: must be one of: debug, info, warn, error");
  free(err);
  CHECK_INT(load("{\"name\":\"x\",\"persona\":{},\"http\":{\"listen\":\"8080\"}}", &c, &err),
            RT_EINVAL);
  CHECK(err && strncmp(err, "shop.json: $.http.listen: does not match pattern ^", 50) == 0);
  free(err);
  CHECK_INT(load("{\"name\":\"x\",\"persona\":{},\"limits\":{\"lua_memory_mb\":2048}}", &c, &err),
            RT_EINVAL);
  CHECK_STR(err, "shop.json: $.limits.lua_memory_mb: must be <= 1024");
  free(err);
  CHECK_INT(load("{\"name\":\"x\",\"persona\":{},\"payday\":[5,32]}", &c, &err), RT_EINVAL);
  CHECK_STR(err, "shop.json: $.payday[1]: must be <= 31");
  free(err);
  CHECK_INT(load("{\"name\":\"x\",\"persona\":{},\"handoff\":{\"remind_after\":\"soon\"}}",
                 &c, &err), RT_EINVAL);
  CHECK_STR(err, "shop.json: $.handoff.remind_after: not a valid duration, expected like "
                 "30m, 24h, 3d, 1h30m");
  free(err);
  CHECK_INT(load("{\"name\":\"x\",\"persona\":{},\"channels\":{\"telegram\":{\"token\":1}}}",
                 &c, &err), RT_EINVAL);
  CHECK_STR(err, "shop.json: $.channels.telegram.token: expected string, got number");
  free(err);
  CHECK_INT(load("{\"name\":\"x\",\"persona\":{},\"shop\":{\"parking\":true}}", &c, &err),
            RT_EINVAL);
  CHECK_STR(err, "shop.json: $.shop.parking: expected string, got boolean");
  free(err);
  CHECK_INT(load("{\"name\":\"x\",\"persona\":{},\"working_hours\":{\"from\":\"9\"}}", &c, &err),
            RT_EINVAL);
  CHECK(err && strstr(err, "$.working_hours.from: not a valid time"));
  free(err);
  /* listen forms that must pass */
  const char *ok[] = {"0.0.0.0:80", "localhost:65535", "[::1]:8080", "shop.local:8443"};
  for (size_t i = 0; i < RT_ARRAY_LEN(ok); i++) {
    char *j = rt_xasprintf("{\"name\":\"x\",\"persona\":{},\"http\":{\"listen\":\"%s\"}}", ok[i]);
    CHECK_INT(load(j, &c, &err), RT_OK);
    rt_config_free(c);
    free(err);
    free(j);
  }
  CHECK_INT(load("{\"name\":\"x\",\"persona\":{},\"http\":{\"listen\":\"h:65536\"}}", &c, &err),
            RT_EINVAL);
  free(err);
}

T(all_errors_one_per_line) {
  rt_config *c = NULL;
  char *err = NULL;
  CHECK_INT(load("{\"persona\":{\"nmae\":\"x\"},\"http\":{\"listen\":1,\"enabled\":\"y\"},"
                 "\"colour\":1}", &c, &err), RT_EINVAL);
  CHECK_STR(err, "shop.json: $: missing required key \"name\"\n"
                 "shop.json: $.persona.nmae: unknown key \"nmae\"\n"
                 "shop.json: $.http.listen: expected string, got number\n"
                 "shop.json: $.http.enabled: expected boolean, got string\n"
                 "shop.json: $.colour: unknown key \"colour\"");
  free(err);
  /* 30 bad paydays: 20 lines and a note */
  char big[512] = "{\"name\":\"x\",\"persona\":{},\"payday\":[";
  for (int i = 0; i < 30; i++) strcat(big, i ? ",0" : "0");
  strcat(big, "]}");
  CHECK_INT(load(big, &c, &err), RT_EINVAL);
  CHECK_INT(err ? count_lines(err) : 0, 21);
  CHECK(err && strstr(err, "more errors not shown"));
  free(err);
}

/* ---- ${VAR} -------------------------------------------------------------- */

T(env_expansion) {
  setenv("RT_TEST_NAME", "Шины-Дом", 1);
  setenv("RT_TEST_PORT", "9090", 1);
  setenv("RT_TEST_EMPTY", "", 1);
  unsetenv("RT_TEST_UNSET");
  rt_config *c = NULL;
  char *err = NULL;
  CHECK_INT(load("{\"name\":\"${RT_TEST_NAME}\",\"persona\":{\"name\":\"${RT_TEST_UNSET:-Олег}\","
                 "\"role\":\"${RT_TEST_EMPTY:-продавец}\",\"signature\":\"a${RT_TEST_EMPTY}b\"},"
                 "\"http\":{\"listen\":\"127.0.0.1:${RT_TEST_PORT}\"},"
                 "\"shop\":{\"price\":\"$${NOT_A_VAR} и 100$\",\"site\":\"${RT_TEST_UNSET:-}\"}}",
                 &c, &err), RT_OK);
  if (err) fprintf(stderr, "  %s\n", err);
  free(err);
  if (!c) return;
  CHECK_STR(rt_config_str(c, "name", NULL), "Шины-Дом");
  CHECK_STR(rt_config_str(c, "persona.name", NULL), "Олег");
  CHECK_STR(rt_config_str(c, "persona.role", NULL), "продавец");
  CHECK_STR(rt_config_str(c, "persona.signature", NULL), "ab");
  CHECK_STR(rt_config_str(c, "http.listen", NULL), "127.0.0.1:9090");
  CHECK_STR(rt_config_str(c, "shop.price", NULL), "${NOT_A_VAR} и 100$");
  CHECK_STR(rt_config_str(c, "shop.site", NULL), "");
  rt_config_free(c);
}

T(env_expansion_in_arrays) {
  setenv("RT_TEST_CAT", "диски", 1);
  rt_config *c = NULL;
  char *err = NULL;
  CHECK_INT(load("{\"name\":\"x\",\"persona\":{},\"gifts\":{\"accessories\":"
                 "{\"a\":[\"${RT_TEST_CAT}\"]}}}", &c, &err), RT_OK);
  free(err);
  if (!c) return;
  CHECK_STR(rt_config_str(c, "gifts.accessories.a.0", NULL), "диски");
  rt_config_free(c);
}

T(env_unset_is_an_error_without_values) {
  setenv("RT_TEST_SECRET", "hunter2-value", 1);
  unsetenv("TG_TOKEN");
  rt_config *c = NULL;
  char *err = NULL;
  CHECK_INT(load("{\"name\":\"x\",\"persona\":{\"name\":\"${RT_TEST_SECRET}\"},"
                 "\"channels\":{\"telegram\":{\"token\":\"${TG_TOKEN}\"}},"
                 "\"llm\":{\"api_key\":\"sk-literal-secret\"}}", &c, &err), RT_EINVAL);
  CHECK(c == NULL);
  CHECK_STR(err, "shop.json: $.channels.telegram.token: environment variable TG_TOKEN "
                 "is not set");
  CHECK(err && !strstr(err, "hunter2"));
  CHECK(err && !strstr(err, "sk-literal"));
  free(err);
  /* several: one line each */
  CHECK_INT(load("{\"name\":\"${RT_TEST_UNSET}\",\"persona\":{\"role\":\"${RT_TEST_UNSET2}\"}}",
                 &c, &err), RT_EINVAL);
  CHECK_STR(err, "shop.json: $.name: environment variable RT_TEST_UNSET is not set\n"
                 "shop.json: $.persona.role: environment variable RT_TEST_UNSET2 is not set");
  free(err);
  /* malformed references */
  const char *bad[] = {"${", "${}", "${1X}", "${A B}", "${A", "${A:-x", "${A-x}"};
  for (size_t i = 0; i < RT_ARRAY_LEN(bad); i++) {
    char *j = rt_xasprintf("{\"name\":\"%s\",\"persona\":{}}", bad[i]);
    CHECK_INT(load(j, &c, &err), RT_EINVAL);
    CHECK(err && strstr(err, "shop.json: $.name: malformed ${...} reference"));
    free(err);
    free(j);
  }
}

T(env_not_needed_in_a_section_switched_off) {
  /* shopbot new writes "llm": {"enabled": false, "api_key": "${OPENAI_API_KEY}"}:
   * it must load before the shop has a key, and still fail once turned on */
  unsetenv("RT_TEST_KEY");
  rt_config *c = NULL;
  char *err = NULL;
  CHECK_INT(load("{\"name\":\"x\",\"persona\":{},"
                 "\"llm\":{\"enabled\":false,\"api_key\":\"${RT_TEST_KEY}\"},"
                 "\"ocr\":{\"enabled\":false,\"tesseract\":\"${RT_TEST_KEY}\"}}",
                 &c, &err), RT_OK);
  if (err) fprintf(stderr, "  %s\n", err);
  free(err);
  err = NULL;
  if (c) {
    CHECK_STR(rt_config_str(c, "llm.api_key", NULL), "${RT_TEST_KEY}");
    rt_config_free(c);
  }
  CHECK_INT(load("{\"name\":\"x\",\"persona\":{},"
                 "\"llm\":{\"enabled\":true,\"api_key\":\"${RT_TEST_KEY}\"}}", &c, &err), RT_EINVAL);
  CHECK_STR(err, "shop.json: $.llm.api_key: environment variable RT_TEST_KEY is not set");
  free(err);
}

T(expanded_value_failing_schema_is_not_echoed) {
  setenv("RT_TEST_LISTEN", "super-secret-listen", 1);
  rt_config *c = NULL;
  char *err = NULL;
  CHECK_INT(load("{\"name\":\"x\",\"persona\":{},\"http\":{\"listen\":\"${RT_TEST_LISTEN}\"}}",
                 &c, &err), RT_EINVAL);
  CHECK(err && strstr(err, "$.http.listen: does not match pattern"));
  CHECK(err && !strstr(err, "super-secret"));
  free(err);
}

/* ---- redaction ----------------------------------------------------------- */

T(redaction) {
  setenv("RT_TEST_TG", "123456:AAbbCCdd", 1);
  setenv("RT_TEST_PHONE", "+7 999 111-22-33", 1);
  rt_config *c = NULL;
  char *err = NULL;
  CHECK_INT(load("{\"name\":\"Шины\",\"persona\":{},"
                 "\"shop\":{\"phone\":\"${RT_TEST_PHONE}\",\"city\":\"Тула\"},"
                 "\"channels\":{\"telegram\":{\"token\":\"${RT_TEST_TG}\"},"
                 "  \"whatsapp\":{\"Access_Token\":\"wa-literal\",\"phone_id\":\"42\","
                 "  \"webhook_secret\":\"whs-literal\",\"empty_token\":\"\","
                 "  \"key\":\"wc-literal\",\"monkey\":\"visible\"}},"
                 "\"llm\":{\"api_key\":\"sk-literal\"},"
                 "\"crm\":{\"SECRET_KEY\":\"crm-literal\",\"url\":\"https://crm.example/\","
                 "  \"apikey\":\"ak-literal\","
                 "  \"password\":\"pw-literal\",\"secret\":{\"nested\":\"s-literal\"},"
                 "  \"list\":[\"${RT_TEST_TG}\",\"plain\"]}}",
                 &c, &err), RT_OK);
  if (err) fprintf(stderr, "  %s\n", err);
  free(err);
  if (!c) return;
  /* the real values are there for the runtime */
  CHECK_STR(rt_config_str(c, "channels.telegram.token", NULL), "123456:AAbbCCdd");
  char *r = rt_config_redacted(c);
  const char *leaks[] = {"AAbbCCdd", "999", "wa-literal", "whs-literal", "wc-literal",
                         "sk-literal", "ak-literal", "pw-literal", "s-literal",
                         "crm-literal"};
  for (size_t i = 0; i < RT_ARRAY_LEN(leaks); i++) {
    if (strstr(r, leaks[i])) fprintf(stderr, "  leaked %s\n", leaks[i]);
    CHECK(strstr(r, leaks[i]) == NULL);
  }
  json_error_t je;
  json_t *j = json_loads(r, 0, &je);
  CHECK(j != NULL);
  CHECK_STR(json_string_value(json_object_get(json_object_get(j, "shop"), "phone")), "***");
  CHECK_STR(json_string_value(json_object_get(json_object_get(j, "shop"), "city")), "Тула");
  json_t *wa = json_object_get(json_object_get(j, "channels"), "whatsapp");
  CHECK_STR(json_string_value(json_object_get(wa, "phone_id")), "42");
  CHECK_STR(json_string_value(json_object_get(wa, "empty_token")), "");
  /* (webchat has its own schema now: the free-form keys moved to whatsapp) */
  CHECK_STR(json_string_value(json_object_get(wa, "monkey")), "visible");
  /* the llm section has its own schema (plugins/llm): the free-form keys
   * live in crm's */
  json_t *llm = json_object_get(j, "crm");
  CHECK_STR(json_string_value(json_object_get(json_object_get(j, "llm"), "api_key")), "***");
  CHECK_STR(json_string_value(json_object_get(llm, "secret")), "***");
  CHECK_STR(json_string_value(json_array_get(json_object_get(llm, "list"), 0)), "***");
  CHECK_STR(json_string_value(json_array_get(json_object_get(llm, "list"), 1)), "plain");
  CHECK_STR(json_string_value(json_object_get(json_object_get(j, "crm"), "url")),
            "https://crm.example/");
  /* defaults are in the redacted view too */
  CHECK_STR(json_string_value(json_object_get(json_object_get(j, "http"), "listen")),
            "127.0.0.1:8080");
  json_decref(j);
  free(r);
  rt_config_free(c);
}

T(schema_has_descriptions) {
  /* every property in the shop schema documents itself */
  json_error_t je;
  json_t *s = json_load_file(schema_path(), 0, &je);
  CHECK(s != NULL);
  if (!s) return;
  json_t *stack[64];
  int sp = 0, missing = 0;
  stack[sp++] = s;
  while (sp) {
    json_t *n = stack[--sp];
    json_t *props = json_object_get(n, "properties");
    const char *k;
    json_t *v;
    json_object_foreach(props, k, v) {
      if (!json_is_string(json_object_get(v, "description"))) {
        fprintf(stderr, "  no description: %s\n", k);
        missing++;
      }
      if (sp < 64) stack[sp++] = v;
    }
  }
  CHECK_INT(missing, 0);
  json_decref(s);
}

/* ---- numeric limits (huge values must be refused, never wrapped) -------- */

T(duration_limits) {
  static const struct { const char *in; int rc; int64_t sec; } cases[] = {
    {"36500d", RT_OK, INT64_C(36500) * 86400},
    {"36499d23h59m60s", RT_OK, INT64_C(36500) * 86400},
    {"3153600000s", RT_OK, INT64_C(3153600000)},
    {"3153600001s", RT_ELIMIT, 0},
    {"36500d1s", RT_ELIMIT, 0},
    {"36501d", RT_ELIMIT, 0},
    {"876001h", RT_ELIMIT, 0},
    {"100000000000000d", RT_ELIMIT, 0},       /* handoff.release_after in the review */
    {"106751991167000d", RT_ELIMIT, 0},       /* c:wake(...) in the review */
    {"106751991167d", RT_ELIMIT, 0},          /* transcript "clock: +..." */
    {"9223372036854775807s", RT_ELIMIT, 0},   /* INT64_MAX */
    {"9223372036854775808s", RT_ELIMIT, 0},   /* INT64_MAX + 1 */
    {"18446744073709551616d", RT_ELIMIT, 0},
    {"9223372036854775807d9223372036854775807h9223372036854775807m9223372036854775807s",
     RT_ELIMIT, 0},
    {"00000000000000000000000000000000000000001s", RT_OK, 1},
    {"99999999999999999999x", RT_EINVAL, 0},  /* syntax first */
    {"99999999999999999999", RT_EINVAL, 0},
    {"-9223372036854775808s", RT_EINVAL, 0},
  };
  for (size_t i = 0; i < RT_ARRAY_LEN(cases); i++) {
    int64_t sec = -7;
    int rc = rt_parse_duration(cases[i].in, &sec);
    if (rc != cases[i].rc || (rc == RT_OK && sec != cases[i].sec) || (rc != RT_OK && sec != -7)) {
      fprintf(stderr, "  rt_parse_duration(\"%s\") = %d, %lld\n", cases[i].in, rc, (long long)sec);
      CHECK(0);
    }
  }
}

T(hhmm) {
  static const struct { const char *in; int want; } cases[] = {
    {"09:00", 540}, {"9:00", 540}, {"00:00", 0}, {"23:59", 1439}, {"24:00", 1440},
    {"0:05", 5},
    {"0777777777:7", -1},  /* found by fuzzing: signed overflow in h * 60 */
    {"2147483647:00", -1}, {"2147483648:00", -1}, {"9223372036854775807:59", -1},
    {"99999999999999999999:00", -1}, {"00:2147483647", -1}, {"-1:00", -1}, {"-0:00", -1},
    {"+9:00", -1}, {" 9:00", -1}, {"9:00 ", -1}, {"9:5", -1}, {"9:005", -1}, {"24:01", -1},
    {"25:00", -1}, {"23:60", -1}, {"100:00", -1}, {"09", -1}, {"09:", -1}, {":00", -1},
    {"", -1}, {"0x9:00", -1}, {"09:00:00", -1},
  };
  for (size_t i = 0; i < RT_ARRAY_LEN(cases); i++) {
    int got = rt_parse_hhmm(cases[i].in);
    if (got != cases[i].want) {
      fprintf(stderr, "  rt_parse_hhmm(\"%s\") = %d, want %d\n", cases[i].in, got, cases[i].want);
      CHECK(0);
    }
  }
  CHECK_INT(rt_parse_hhmm(NULL), -1);
}

/* Every count and duration in shop.json has a maximum, so no value a file
 * can hold overflows the C that multiplies it (days -> ms, MB -> bytes) or
 * narrows it to an int. A key added without one fails here. Ids (a type
 * that also allows strings, like managers.chat_id) are not quantities. */
static int unbounded(json_t *n, char *path, size_t plen) {
  int bad = 0;
  if (json_is_array(n)) {
    size_t i;
    json_t *v;
    json_array_foreach(n, i, v) bad += unbounded(v, path, plen);
    return bad;
  }
  if (!json_is_object(n)) return 0;
  const char *type = json_string_value(json_object_get(n, "type"));
  if (type && (!strcmp(type, "integer") || !strcmp(type, "number"))) {
    json_t *mx = json_object_get(n, "maximum"), *mn = json_object_get(n, "minimum");
    if (!json_is_number(mx) || !json_is_number(mn) || json_number_value(mx) > 2147483647.0 ||
        json_number_value(mn) < -2147483648.0) {
      fprintf(stderr, "  %s: %s without minimum and maximum within int\n", path, type);
      bad++;
    }
  }
  const char *ref = json_string_value(json_object_get(n, "$ref"));
  if (ref && !strcmp(ref, "#/$defs/duration")) {
    int64_t sec;
    if (rt_parse_duration(json_string_value(json_object_get(n, "maxDuration")), &sec) != RT_OK) {
      fprintf(stderr, "  %s: duration without a valid maxDuration\n", path);
      bad++;
    }
  }
  const char *k;
  json_t *v;
  json_object_foreach(n, k, v) {
    if (!strcmp(k, "default") || !strcmp(k, "enum") || !strcmp(k, "const")) continue;
    size_t nl = rt_jschema_path_key(path, 1024, plen, k);
    bad += unbounded(v, path, nl);
    path[plen] = '\0';
  }
  return bad;
}

T(schema_bounds_every_number) {
  /* The schema shop.json is checked with: the plugins' sections too. */
  json_t *s = NULL;
  char *err = NULL;
  CHECK_INT(rt_config_schema(schema_path(), &s, &err), RT_OK);
  free(err);
  if (!s) return;
  char path[1024] = "schema";
  CHECK_INT(unbounded(s, path, strlen(path)), 0);
  json_decref(s);
}

/* Schema-valid but absurd values are refused at load with the key's path,
 * before any of them can reach the engine. */
T(huge_values_refused_at_load) {
  static const struct { const char *json, *want; } cases[] = {
    {"{\"name\":\"T\",\"persona\":{},\"store\":{\"keep_days\":200000000000}}",
     "shop.json: $.store.keep_days: must be <= 36500"},
    {"{\"name\":\"T\",\"persona\":{},\"store\":{\"keep_days\":9223372036854775807}}",
     "shop.json: $.store.keep_days: must be <= 36500"},
    {"{\"name\":\"T\",\"persona\":{},\"handoff\":{\"release_after\":\"100000000000000d\"}}",
     "shop.json: $.handoff.release_after: duration too long, at most 36500d"},
    {"{\"name\":\"T\",\"persona\":{},\"handoff\":{\"release_after\":\"366d\"}}",
     "shop.json: $.handoff.release_after: must be <= 365d"},
    {"{\"name\":\"T\",\"persona\":{},\"limits\":{\"step_timeout_ms\":9223372036854775807}}",
     "shop.json: $.limits.step_timeout_ms: must be <= 3600000"},
    {"{\"name\":\"T\",\"persona\":{},\"retention\":{\"idle_days\":4294967297}}",
     "shop.json: $.retention.idle_days: must be <= 36500"},
  };
  for (size_t i = 0; i < RT_ARRAY_LEN(cases); i++) {
    rt_config *c = NULL;
    char *err = NULL;
    CHECK_INT(load(cases[i].json, &c, &err), RT_EINVAL);
    CHECK_STR(err, cases[i].want);
    rt_config_free(c);
    free(err);
  }
  /* at the maxima it loads, and the values come out unchanged */
  rt_config *c = NULL;
  char *err = NULL;
  CHECK_INT(load("{\"name\":\"T\",\"persona\":{},\"store\":{\"keep_days\":36500},"
                 "\"handoff\":{\"release_after\":\"365d\"},"
                 "\"managers\":{\"chat_id\":9000000000000000000}}", &c, &err), RT_OK);
  if (!c) { free(err); return; }
  CHECK_INT(rt_config_int(c, "store.keep_days", 0), 36500);
  CHECK_INT(rt_config_duration(c, "handoff.release_after", 0), 365 * 86400);
  /* an integer read as a duration keeps to the same cap */
  CHECK_INT(rt_config_duration(c, "managers.chat_id", 5), 5);
  rt_config_free(c);
}

int main(void) {
  T_RUN(type_basic);
  T_RUN(type_integer);
  T_RUN(type_array_of_names);
  T_RUN(type_mismatch_suppresses_other_keywords);
  T_RUN(boolean_schemas);
  T_RUN(properties_nested_path);
  T_RUN(required);
  T_RUN(additional_properties_false);
  T_RUN(additional_properties_schema);
  T_RUN(pattern_properties);
  T_RUN(odd_keys_are_quoted_in_paths);
  T_RUN(items_and_counts);
  T_RUN(unique_items);
  T_RUN(enum_and_const);
  T_RUN(numbers);
  T_RUN(string_lengths_count_code_points);
  T_RUN(pattern);
  T_RUN(formats);
  T_RUN(ref_to_defs);
  T_RUN(ref_cycle_terminates);
  T_RUN(one_of_any_of);
  T_RUN(error_cap_and_validity_mode);
  T_RUN(ignored_keywords);
  T_RUN(apply_defaults);
  T_RUN(durations);
  T_RUN(load_minimal_applies_defaults);
  T_RUN(dir_and_paths);
  T_RUN(full_example_loads);
  T_RUN(docs_example_loads);
  T_RUN(missing_file);
  T_RUN(missing_schema);
  T_RUN(malformed_json_line_col);
  T_RUN(utf8_bom_accepted);
  T_RUN(wrong_type_path);
  T_RUN(unknown_key_path);
  T_RUN(missing_required);
  T_RUN(schema_values);
  T_RUN(all_errors_one_per_line);
  T_RUN(env_expansion);
  T_RUN(env_expansion_in_arrays);
  T_RUN(env_unset_is_an_error_without_values);
  T_RUN(env_not_needed_in_a_section_switched_off);
  T_RUN(expanded_value_failing_schema_is_not_echoed);
  T_RUN(redaction);
  T_RUN(schema_has_descriptions);
  T_RUN(duration_limits);
  T_RUN(hhmm);
  T_RUN(schema_bounds_every_number);
  T_RUN(huge_values_refused_at_load);
  return T_DONE();
}
