/* cmd_tools.c -- `shopbot import|campaign|stats` (see cmd_tools.h). */
#include "cmd_tools.h"
#include "campaign.h"
#include "campaign_cfg.h"
#include "clock.h"
#include "config.h"
#include "import.h"
#include "paths.h"
#include "rt.h"
#include "stats.h"
#include "store.h"
#include "tz.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct {
  rt_config *cfg;
  rt_store *store;
} shop;

static void shop_close(shop *sh) {
  rt_store_close(sh->store);
  rt_config_free(sh->cfg);
}

/* Creates the folders above path (data/ of a fresh shop). */
static void mkdirs_for(const char *path) {
  char *p = rt_xstrdup(path);
  for (char *s = strchr(p + 1, '/'); s; s = strchr(s + 1, '/')) {
    *s = '\0';
    if (mkdir(p, 0755) != 0 && errno != EEXIST) break;
    *s = '/';
  }
  free(p);
}

/* Loads the shop's config and opens its store; prints why not. */
static int shop_open(const char *cmd, const char *dir, shop *sh) {
  memset(sh, 0, sizeof *sh);
  char *err = NULL;
  char *schema = rt_paths_schema("shop.schema.json");
  int rc = rt_config_load(dir, schema, &sh->cfg, &err);
  free(schema);
  if (rc != RT_OK) {
    fprintf(stderr, "shopbot %s: %s\n", cmd, err ? err : "cannot load shop.json");
    free(err);
    return rc;
  }
  char *path = rt_config_path(sh->cfg, rt_config_str(sh->cfg, "store.path", "data/shop.db"));
  char *sql = rt_paths_schema("sql");
  mkdirs_for(path);
  rt_store_opts so = {
    .sql_dir = sql,
    .sync_full = strcmp(rt_config_str(sh->cfg, "store.synchronous", "full"), "full") == 0,
  };
  rc = rt_store_open(path, &so, &sh->store, &err);
  free(sql);
  free(path);
  if (rc != RT_OK) {
    fprintf(stderr, "shopbot %s: %s\n", cmd, err ? err : "cannot open the store");
    free(err);
    rt_config_free(sh->cfg);
    sh->cfg = NULL;
  }
  return rc;
}

static bool is_help(const char *a) {
  return strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0;
}

/* ---- import ---- */

static const char import_usage[] =
  "usage: shopbot import SHOP_DIR FILE.csv\n"
  "\n"
  "Imports customers (and orders, when the file has an order column) from a\n"
  "1C/CSV export into the shop's store. Re-importing updates, never duplicates.\n"
  "Rows with a bad phone or date are listed with their line numbers and skipped.\n"
  "See docs/import.md for the columns.\n";

int rt_cmd_import(int argc, char **argv) {
  const char *pos[2];
  int npos = 0;
  for (int i = 1; i < argc; i++) {
    if (is_help(argv[i])) { fputs(import_usage, stdout); return 0; }
    if (argv[i][0] == '-' && argv[i][1]) {
      fprintf(stderr, "shopbot import: unknown option %s\n%s", argv[i], import_usage);
      return 2;
    }
    if (npos == 2) { fprintf(stderr, "shopbot import: too many arguments\n%s", import_usage); return 2; }
    pos[npos++] = argv[i];
  }
  if (npos != 2) { fputs(import_usage, stderr); return 2; }
  shop sh;
  if (shop_open("import", pos[0], &sh) != RT_OK) return 1;
  rt_import_report *rep = rt_xmalloc(sizeof *rep);
  char *err = NULL;
  const char *tz = rt_config_str(sh.cfg, "timezone", RT_TZ_DEFAULT);
  int rc = rt_import_csv(sh.store, pos[1], rt_clock_now(NULL), tz, rep, &err);
  char dl[3] = {rep->delimiter ? rep->delimiter : ';', 0, 0};
  if (dl[0] == '\t') memcpy(dl, "\\t", 3);
  if (rep->rows || rc == RT_OK)
    printf("imported %s: %lld rows (%s, '%s'): customers %lld new, %lld updated; "
           "orders %lld new, %lld updated; %lld skipped\n",
           pos[1], (long long)rep->rows, rep->encoding,
           dl,
           (long long)rep->customers_inserted, (long long)rep->customers_updated,
           (long long)rep->orders_inserted, (long long)rep->orders_updated,
           (long long)rep->skipped);
  for (int i = 0; i < rep->nproblems; i++)
    fprintf(stderr, "line %d: %s\n", rep->problems[i].line, rep->problems[i].msg);
  if (rep->problems_total > rep->nproblems)
    fprintf(stderr, "... and %lld more problems\n",
            (long long)(rep->problems_total - rep->nproblems));
  if (err) fprintf(stderr, "shopbot import: %s\n", err);
  free(err);
  free(rep);
  shop_close(&sh);
  return rc == RT_OK ? 0 : 1;
}

/* ---- campaign ---- */

static const char campaign_usage[] =
  "usage: shopbot campaign SHOP_DIR retention|gifts [--dry-run] [--json] [--now ISO8601]\n"
  "\n"
  "Schedules check-ins: retention writes to customers idle for retention.idle_days,\n"
  "gifts follows up gift orders after gifts.after_days. Messages are due inside\n"
  "working_hours in each customer's time zone, at most retention.rate_per_minute\n"
  "a minute. Nobody is contacted twice.\n"
  "  --dry-run   compute and report, write nothing\n"
  "  --json      print the report as JSON\n"
  "  --now T     pretend the time is T (2025-03-10T10:00:00+03:00, 2025-03-10 10:00)\n";

static void print_campaign(const rt_campaign_report *r) {
  printf("campaign %s%s: %lld candidates, %lld selected, %lld scheduled\n", r->campaign,
         r->dry_run ? " (dry run, nothing written)" : "", (long long)r->candidates,
         (long long)r->selected, (long long)r->scheduled);
  printf("  skipped: opted_out %lld, blocked %lld, open_conversation %lld, cooldown %lld, "
         "no_channel %lld\n",
         (long long)r->skipped.opted_out, (long long)r->skipped.blocked,
         (long long)r->skipped.open_conversation, (long long)r->skipped.cooldown,
         (long long)r->skipped.no_channel);
  if (r->first_at) {
    char a[40], b[40];
    rt_campaign_iso(r->first_at, r->tz, a, sizeof a);
    rt_campaign_iso(r->last_at, r->tz, b, sizeof b);
    printf("  first check-in %s, last %s\n", a, b);
  }
}

int rt_cmd_campaign(int argc, char **argv) {
  const char *pos[2], *now_s = NULL;
  int npos = 0;
  bool dry = false, json = false;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (is_help(a)) { fputs(campaign_usage, stdout); return 0; }
    if (strcmp(a, "--dry-run") == 0) dry = true;
    else if (strcmp(a, "--json") == 0) json = true;
    else if (strcmp(a, "--now") == 0 && i + 1 < argc) now_s = argv[++i];
    else if (strncmp(a, "--now=", 6) == 0) now_s = a + 6;
    else if (a[0] == '-' && a[1]) {
      fprintf(stderr, "shopbot campaign: unknown option or missing value: %s\n%s", a, campaign_usage);
      return 2;
    } else if (npos == 2) {
      fprintf(stderr, "shopbot campaign: too many arguments\n%s", campaign_usage);
      return 2;
    } else {
      pos[npos++] = a;
    }
  }
  if (npos != 2) { fputs(campaign_usage, stderr); return 2; }
  if (strcmp(pos[1], "retention") != 0 && strcmp(pos[1], "gifts") != 0) {
    fprintf(stderr, "shopbot campaign: unknown campaign \"%s\"\n%s", pos[1], campaign_usage);
    return 2;
  }
  shop sh;
  if (shop_open("campaign", pos[0], &sh) != RT_OK) return 1;
  rt_campaign_opts o;
  char *err = NULL;
  int rc = rt_campaign_opts_config(&o, sh.cfg, pos[1], rt_clock_now(NULL), &err);
  o.dry_run = dry;
  if (rc == RT_OK && now_s && rt_clock_parse(now_s, o.tz, &o.now_ms) != RT_OK) {
    fprintf(stderr, "shopbot campaign: bad --now \"%s\"\n%s", now_s, campaign_usage);
    shop_close(&sh);
    return 2;
  }
  rt_campaign_report rep;
  if (rc == RT_OK) rc = rt_campaign_run(sh.store, &o, &rep, &err);
  if (rc == RT_OK) {
    if (json) {
      char *j = rt_campaign_report_json(&rep);
      printf("%s\n", j);
      free(j);
    } else {
      print_campaign(&rep);
    }
  } else {
    fprintf(stderr, "shopbot campaign: %s\n", err ? err : "failed");
  }
  free(err);
  shop_close(&sh);
  return rc == RT_OK ? 0 : 1;
}

/* ---- stats ---- */

static const char stats_usage[] =
  "usage: shopbot stats SHOP_DIR [--since YYYY-MM-DD] [--json]\n"
  "\n"
  "Campaign funnels (contacted, outcomes and their shares, offers, leads),\n"
  "leads and median time to lead per flow, and LLM tokens and cost.\n"
  "  --since D   only what happened from day D (shop time zone) on\n"
  "  --json      print JSON instead of a table\n";

int rt_cmd_stats(int argc, char **argv) {
  const char *dir = NULL, *since_s = NULL;
  bool json = false;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (is_help(a)) { fputs(stats_usage, stdout); return 0; }
    if (strcmp(a, "--json") == 0) json = true;
    else if (strcmp(a, "--since") == 0 && i + 1 < argc) since_s = argv[++i];
    else if (strncmp(a, "--since=", 8) == 0) since_s = a + 8;
    else if (a[0] == '-' && a[1]) {
      fprintf(stderr, "shopbot stats: unknown option or missing value: %s\n%s", a, stats_usage);
      return 2;
    } else if (dir) {
      fprintf(stderr, "shopbot stats: too many arguments\n%s", stats_usage);
      return 2;
    } else {
      dir = a;
    }
  }
  if (!dir) { fputs(stats_usage, stderr); return 2; }
  shop sh;
  if (shop_open("stats", dir, &sh) != RT_OK) return 1;
  int64_t since = 0;
  if (since_s &&
      rt_clock_parse(since_s, rt_config_str(sh.cfg, "timezone", RT_TZ_DEFAULT), &since) != RT_OK) {
    fprintf(stderr, "shopbot stats: bad --since \"%s\"\n%s", since_s, stats_usage);
    shop_close(&sh);
    return 2;
  }
  json_t *st = NULL;
  char *err = NULL;
  int rc = rt_stats_collect(sh.store, since, &st, &err);
  if (rc == RT_OK && json) {
    rc = rt_stats_leads_per_day(sh.store, since, rt_config_str(sh.cfg, "timezone", RT_TZ_DEFAULT),
                                st, &err);
    if (rc != RT_OK) json_decref(st);
  }
  if (rc == RT_OK) {
    char *out = json ? json_dumps(st, JSON_INDENT(2) | JSON_PRESERVE_ORDER)
                     : rt_stats_table(st, rt_config_get(sh.cfg, "stats.texts"));
    fputs(out, stdout);
    if (json) fputc('\n', stdout);
    free(out);
    json_decref(st);
  } else {
    fprintf(stderr, "shopbot stats: %s\n", err ? err : "failed");
  }
  free(err);
  shop_close(&sh);
  return rc == RT_OK ? 0 : 1;
}
