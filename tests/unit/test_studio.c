/* test_studio.c -- the studio's pieces that need no process: names and
 * paths it takes from the page, the flows error it shows as a banner, a
 * one-customer check-in, leads per day, and a store opened read-only. */
#include "t.h"
#include "campaign.h"
#include "stats.h"
#include "store.h"
#include "store_tools.h"
#include "studio.h"
#include <jansson.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmpdir[256];

static rt_store *open_at(const char *name, bool ro) {
  char path[512], dir[512];
  const char *src = getenv("RT_SOURCE_DIR");
  snprintf(dir, sizeof dir, "%s/schema/sql", src && *src ? src : RT_SOURCE_DIR);
  snprintf(path, sizeof path, "%s/%s", tmpdir, name);
  rt_store_opts o = {.sql_dir = dir, .sync_off = true, .read_only = ro};
  rt_store *s = NULL;
  char *err = NULL;
  if (rt_store_open(path, &o, &s, &err) != RT_OK) {
    fprintf(stderr, "store: %s\n", err);
    free(err);
    return NULL;
  }
  return s;
}

T(names) {
  CHECK(rt_studio_name_ok("lead_anna"));
  CHECK(rt_studio_name_ok("A-1"));
  CHECK(!rt_studio_name_ok(""));
  CHECK(!rt_studio_name_ok("../evil"));
  CHECK(!rt_studio_name_ok("a/b"));
  CHECK(!rt_studio_name_ok(".hidden"));
  CHECK(!rt_studio_name_ok("x.chat"));
  CHECK(!rt_studio_name_ok("имя"));
  char long_name[80];
  memset(long_name, 'a', 65);
  long_name[65] = '\0';
  CHECK(!rt_studio_name_ok(long_name));
  long_name[64] = '\0';
  CHECK(rt_studio_name_ok(long_name));
}

T(flow_paths) {
  CHECK(rt_studio_flow_path_ok("lead.lua"));
  CHECK(rt_studio_flow_path_ok("lib/say.lua"));
  CHECK(!rt_studio_flow_path_ok("../shop.json"));
  CHECK(!rt_studio_flow_path_ok("../x.lua"));
  CHECK(!rt_studio_flow_path_ok("lib/../../x.lua"));
  CHECK(!rt_studio_flow_path_ok("/etc/x.lua"));
  CHECK(!rt_studio_flow_path_ok("lib//x.lua"));
  CHECK(!rt_studio_flow_path_ok("./x.lua"));
  CHECK(!rt_studio_flow_path_ok("lead.lua.bak"));
  CHECK(!rt_studio_flow_path_ok("a b.lua"));
  CHECK(!rt_studio_flow_path_ok(NULL));
}

T(error_banner) {
  json_t *j = rt_studio_error_json("flows/lead.lua:411: <eof> expected near 'local'");
  CHECK_STR(json_string_value(json_object_get(j, "file")), "flows/lead.lua");
  CHECK_INT(json_integer_value(json_object_get(j, "line")), 411);
  CHECK_STR(json_string_value(json_object_get(j, "message")), "<eof> expected near 'local'");
  json_decref(j);
  j = rt_studio_error_json("2 of 40 transcript tests fail on the new flows: FAIL tests/a.chat:3: x");
  CHECK(json_object_get(j, "file") == NULL);
  CHECK(json_string_value(json_object_get(j, "text")) != NULL);
  json_decref(j);
  j = rt_studio_error_json("cannot load /x/y/retention.lua:12: attempt to call a nil value");
  CHECK_STR(json_string_value(json_object_get(j, "file")), "/x/y/retention.lua");
  CHECK_INT(json_integer_value(json_object_get(j, "line")), 12);
  json_decref(j);
}

static bool count_row(void *ud, const rt_store_row *r) {
  (void)r;
  (*(int *)ud)++;
  return true;
}

T(checkin_and_days) {
  rt_store *s = open_at("studio.db", false);
  CHECK(s != NULL);
  if (!s) return;
  char *err = NULL;
  /* No such customer: refused, nothing scheduled. */
  CHECK_INT(rt_campaign_checkin(s, "retention", "+79120000001", "test", "+79120000001", 1000, &err),
            RT_ENOENT);
  CHECK(err && strstr(err, "+79120000001"));
  free(err);
  CHECK_INT(rt_store_exec(s, "INSERT INTO customers (phone, name, updated_at) "
                             "VALUES ('+79120000001', 'Иван', 0)"), RT_OK);
  CHECK_INT(rt_campaign_checkin(s, "spam", "+79120000001", "test", "+79120000001", 1000, &err),
            RT_EINVAL);
  free(err);
  CHECK_INT(rt_campaign_checkin(s, "retention", "+79120000001", "test", "+79120000001", 1000, &err),
            RT_OK);
  free(err);
  CHECK_INT(rt_campaign_checkin(s, "gifts", "+79120000001", "test", "+79120000001", 2000, &err),
            RT_OK);
  free(err);
  rt_conv_row row;
  CHECK_INT(rt_store_conv_get(s, "test", "+79120000001", false, 0, &row), RT_OK);
  int timers = 0;
  CHECK_INT(rt_store_conv_timers(s, row.id, count_row, &timers), RT_OK);
  CHECK_INT(timers, 2);
  CHECK_INT(rt_store_timer_next(s), 1000);
  rt_conv_row_clear(&row);

  /* Leads per day, in the shop's zone: 23:30 and 00:30 Moscow are two days. */
  int64_t d1 = INT64_C(1796157000000);   /* 2026-12-01 23:30 +03:00 */
  rt_lead_in l1 = {.conv_id = 1, .at = d1, .flow = "lead"};
  rt_lead_in l2 = {.conv_id = 1, .at = d1 + 3600000, .flow = "lead"};
  rt_lead_in l3 = {.conv_id = 1, .at = d1 + 7200000, .flow = "lead"};
  CHECK_INT(rt_store_lead_add(s, &l1, NULL), RT_OK);
  CHECK_INT(rt_store_lead_add(s, &l2, NULL), RT_OK);
  CHECK_INT(rt_store_lead_add(s, &l3, NULL), RT_OK);
  json_t *st = json_object();
  CHECK_INT(rt_stats_leads_per_day(s, 0, "Europe/Moscow", st, &err), RT_OK);
  json_t *days = json_object_get(st, "leads_per_day");
  CHECK_INT(json_array_size(days), 2);
  CHECK_STR(json_string_value(json_object_get(json_array_get(days, 0), "day")), "2026-12-01");
  CHECK_INT(json_integer_value(json_object_get(json_array_get(days, 0), "leads")), 1);
  CHECK_STR(json_string_value(json_object_get(json_array_get(days, 1), "day")), "2026-12-02");
  CHECK_INT(json_integer_value(json_object_get(json_array_get(days, 1), "leads")), 2);
  json_decref(st);
  rt_store_close(s);

  /* Read-only: the figures come, and nothing can be written. */
  struct stat before, after;
  char path[512];
  snprintf(path, sizeof path, "%s/studio.db", tmpdir);
  CHECK_INT(stat(path, &before), 0);
  rt_store *ro = open_at("studio.db", true);
  CHECK(ro != NULL);
  if (!ro) return;
  CHECK_INT(rt_store_leads_count(ro), 3);
  CHECK(rt_store_exec(ro, "DELETE FROM leads") != RT_OK);
  CHECK_INT(rt_store_leads_count(ro), 3);
  rt_store_close(ro);
  CHECK_INT(stat(path, &after), 0);
  CHECK(before.st_mtime == after.st_mtime && before.st_size == after.st_size);
  /* A missing file is not created by a read-only open. */
  CHECK(open_at("missing.db", true) == NULL);
  snprintf(path, sizeof path, "%s/missing.db", tmpdir);
  CHECK(access(path, F_OK) != 0);
}

int main(void) {
  snprintf(tmpdir, sizeof tmpdir, "/tmp/shopbot-unit-studio-XXXXXX");
  if (!mkdtemp(tmpdir)) return 1;
  T_RUN(names);
  T_RUN(flow_paths);
  T_RUN(error_banner);
  T_RUN(checkin_and_days);
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
  if (system(cmd) != 0) { /* a leftover temp folder fails nothing */ }
  return T_DONE();
}
