/* bench_import.c -- import, retention selection and pending wake-ups at
 * shop scale.
 *
 *   bench_import [--rows N] [--timers N] [--keep]
 *
 * Generates a 1C-style CSV of N customers (default 1,000,000) in a temp dir,
 * imports it, runs the retention campaign over the result (dry run, then for
 * real), then schedules --timers pending wake-ups (default 500,000). Prints
 * "name: value unit" lines. Goals: import >= 200,000 rows/s, selection <= 2 s,
 * pending wake-ups cost no memory beyond SQLite's page cache. Then writes
 * the events of N/10 campaign dialogs (contacted, an outcome) and times
 * `shopbot stats` over them (rt_stats_collect). */
#include "campaign.h"
#include "gen_customers.h"
#include "import.h"
#include "stats.h"
#include "store.h"
#include "tz.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static long peak_rss_kb(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss;
}

/* CPU seconds of this process: on a loaded machine the wall time says
 * more about the neighbours than about the import. */
static double cpu_s(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static long cur_rss_kb(void) {
  long pages = 0, res = 0;
  FILE *f = fopen("/proc/self/statm", "r");
  if (f) {
    if (fscanf(f, "%ld %ld", &pages, &res) != 2) res = 0;
    fclose(f);
  }
  return res * (sysconf(_SC_PAGESIZE) / 1024);
}

static long long file_size(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 ? (long long)st.st_size : 0;
}

int main(int argc, char **argv) {
  long rows = 1000000, timers = 500000;
  bool keep = false, import_only = false;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--rows") == 0 && i + 1 < argc) rows = atol(argv[++i]);
    else if (strcmp(argv[i], "--timers") == 0 && i + 1 < argc) timers = atol(argv[++i]);
    else if (strcmp(argv[i], "--keep") == 0) keep = true;
    else if (strcmp(argv[i], "--import-only") == 0) import_only = true;
    else {
      fprintf(stderr, "usage: bench_import [--rows N] [--timers N] [--keep] [--import-only]\n");
      return 2;
    }
  }
  char dir[] = "/tmp/bench_import.XXXXXX";
  if (!mkdtemp(dir)) { perror("mkdtemp"); return 1; }
  char csv[600], db[600], wal[600], sql[600];
  snprintf(csv, sizeof csv, "%s/customers.csv", dir);
  snprintf(db, sizeof db, "%s/shop.db", dir);
  snprintf(wal, sizeof wal, "%s/shop.db-wal", dir);
  const char *src = getenv("RT_SOURCE_DIR");
  snprintf(sql, sizeof sql, "%s/schema/sql", src && *src ? src : RT_SOURCE_DIR);
  int64_t now = rt_tz_make("Europe/Moscow", 2025, 3, 10, 10, 0) * 1000;

  double t0 = now_s();
  if (gen_csv(csv, rows, now) != 0) { perror(csv); return 1; }
  printf("rows: %ld rows\n", rows);
  printf("csv_size: %.1f MB\n", file_size(csv) / 1e6);
  printf("generate_time: %.2f s\n", now_s() - t0);

  rt_store_opts so = {.sql_dir = sql, .sync_full = true};
  rt_store *s;
  char *err = NULL;
  if (rt_store_open(db, &so, &s, &err) != RT_OK) { fprintf(stderr, "%s\n", err); return 1; }
  long rss0 = cur_rss_kb();
  rt_import_report *rep = malloc(sizeof *rep);
  t0 = now_s();
  double c0 = cpu_s();
  int rc = rt_import_csv(s, csv, now, "Europe/Moscow", rep, &err);
  double dt = now_s() - t0, dc = cpu_s() - c0;
  if (rc != RT_OK) { fprintf(stderr, "import: %s\n", err); return 1; }
  printf("import_time: %.2f s\n", dt);
  printf("import_rate: %.0f rows/s (goal >= 200000)\n", rep->rows / dt);
  printf("import_cpu_rate: %.0f rows per CPU second\n", dc > 0 ? rep->rows / dc : 0.0);
  printf("import_inserted: %lld rows\n", (long long)rep->customers_inserted);
  printf("import_problems: %lld\n", (long long)rep->problems_total);
  printf("import_rss_growth: %ld KB\n", cur_rss_kb() - rss0);
  printf("peak_rss: %ld KB\n", peak_rss_kb());
  rt_store_exec(s, "PRAGMA wal_checkpoint(TRUNCATE)");
  printf("db_size: %.1f MB\n", (file_size(db) + file_size(wal)) / 1e6);
  if (import_only) goto done;

  rt_campaign_opts o;
  rt_campaign_opts_default(&o, "retention", now);
  o.dry_run = true;
  rt_campaign_report cr;
  t0 = now_s();
  if (rt_campaign_run(s, &o, &cr, &err) != RT_OK) { fprintf(stderr, "campaign: %s\n", err); return 1; }
  dt = now_s() - t0;
  printf("retention_candidates: %lld customers\n", (long long)cr.candidates);
  printf("retention_selected: %lld customers\n", (long long)cr.selected);
  printf("retention_dry_run_time: %.2f s (goal <= 2)\n", dt);
  char a[40], b[40];
  rt_campaign_iso(cr.first_at, "Europe/Moscow", a, sizeof a);
  rt_campaign_iso(cr.last_at, "Europe/Moscow", b, sizeof b);
  printf("retention_span: %s .. %s\n", a, b);
  o.dry_run = false;
  rss0 = cur_rss_kb();
  t0 = now_s();
  if (rt_campaign_run(s, &o, &cr, &err) != RT_OK) { fprintf(stderr, "campaign: %s\n", err); return 1; }
  dt = now_s() - t0;
  printf("retention_real_time: %.2f s\n", dt);
  printf("retention_scheduled: %lld check-ins\n", (long long)cr.scheduled);
  printf("retention_rss_growth: %ld KB\n", cur_rss_kb() - rss0);
  o.dry_run = true;
  t0 = now_s();
  rt_campaign_run(s, &o, &cr, &err);
  printf("retention_second_run: %lld selected in %.2f s\n", (long long)cr.selected, now_s() - t0);

  /* Pending wake-ups on conversations of their own, as flows set them. */
  rss0 = cur_rss_kb();
  t0 = now_s();
  for (long i = 0; i < timers; i++) {
    if (i % 10000 == 0) rt_store_begin(s);
    rt_store_timer_set(s, 100000000 + i, "bench:wake", now + 60000 + (int64_t)(xs() % (30 * 86400000ULL)),
                       "lead.remind", "{}", now);
    if (i % 10000 == 9999 || i == timers - 1) rt_store_commit(s);
  }
  dt = now_s() - t0;
  printf("timers_scheduled: %ld timers\n", timers);
  printf("timers_schedule_time: %.2f s\n", dt);
  printf("timers_rss_growth: %ld KB\n", cur_rss_kb() - rss0);
  rt_store_counts c;
  rt_store_counts_get(s, &c);
  printf("timers_pending: %lld timers\n", (long long)c.timers_pending);
  t0 = now_s();
  int64_t next = rt_store_timer_next(s);
  printf("timer_next_time: %.3f ms (next due in %lld s)\n", (now_s() - t0) * 1000,
         (long long)((next - now) / 1000));
  /* The dialogs of the campaign in `shopbot stats`: each conversation's
   * last outcome is looked up among its own events (022_events_conv.sql). */
  long dialogs = rows / 10;
  rt_store_begin(s);
  for (long i = 0; i < dialogs; i++) {
    rt_store_event_add(s, now + i, 200000000 + i, "retention", "retention", "contacted", "{}");
    rt_store_event_add(s, now + i + 1, 200000000 + i, "retention", "retention", "outcome",
                       i % 3 ? "{\"outcome\":\"declined\"}" : "{\"outcome\":\"need\"}");
  }
  rt_store_commit(s);
  t0 = now_s();
  json_t *stats = NULL;
  if (rt_stats_collect(s, 0, &stats, &err) != RT_OK) { fprintf(stderr, "stats: %s\n", err); return 1; }
  printf("stats_time: %.2f s (shopbot stats over %ld campaign dialogs, two events each)\n",
         now_s() - t0, dialogs);
  json_decref(stats);
  printf("sqlite_memory: %.1f MB (page cache and statements)\n", rt_store_mem_used(s) / 1e6);
  printf("current_rss: %ld KB\n", cur_rss_kb());
  printf("peak_rss: %ld KB\n", peak_rss_kb());
  rt_store_exec(s, "PRAGMA wal_checkpoint(TRUNCATE)");
  printf("db_size_final: %.1f MB\n", (file_size(db) + file_size(wal)) / 1e6);
done:
  rt_store_close(s);
  free(rep);
  if (!keep) {
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", dir);
  } else {
    printf("kept: %s\n", dir);
  }
  return 0;
}
