/* bench_retention.c -- retention check-ins with a shop's worth of customers
 * (prints, never asserts).
 *
 *   bench_retention [--rows N] [--turns K] [--limit S] [--reuse FILE]
 *
 * Imports N generated customers (default 1,000,000, the CSV of
 * bench_import), runs the retention campaign for real, makes K of its
 * check-ins due now (default 20,000, spread over the whole campaign) and
 * lets the engine run them with the examples/autoparts shop and the Vitaly
 * flows, durable as in production (synchronous = full). Each check-in is a
 * wake-up, a step that greets the customer by name through c:customer(), a
 * reply and a timer.
 * Also times the lookup behind c:customer() alone, by phone and for a chat
 * no customer has, each statement in its own read transaction, and by
 * phone again inside one transaction, as a step makes it. Every timed part stops after --limit seconds (default
 * 20), so a slow lookup still gives a figure. --reuse FILE keeps the store as
 * it is just before the check-ins run in FILE, and takes it from there when
 * FILE exists (the import, the campaign and the lookups are skipped): for
 * comparing builds on the same store. Goal: >= 20,000 check-ins/s. */
#include "campaign.h"
#include "config.h"
#include "engine.h"
#include "gen_customers.h"
#include "import.h"
#include "log.h"
#include "paths.h"
#include "rt.h"
#include "store_impl.h"
#include <jansson.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static long sent;
static void null_send(rt_channel *ch, const rt_out_msg *m, rt_send_done done, void *ud) {
  (void)ch;
  (void)m;
  sent++;
  done(ud, &(rt_send_result){.verdict = RT_SEND_DELIVERED});
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double cpu_s(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/* The kernel's part of it: page reads of the store and the WAL writes. */
static double sys_s(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

static int64_t wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

typedef struct { char *phone, *channel, *chat; } who;

/* The lookup as host_customer makes it, over the given conversations, for
 * at most limit seconds. Returns µs per lookup and sets *n and *found. */
static double time_lookups(rt_store *s, const who *w, long nw, bool miss, double limit, long *n,
                           long *found) {
  *n = *found = 0;
  /* w is in phone order; a prime stride visits it all in an order that
   * does not favour the first phones when the time limit cuts it short. */
  long stride = nw % 7919 ? 7919 : 7907;
  double t0 = now_s();
  for (long i = 0; i < nw && now_s() - t0 < limit; i++) {
    const who *x = &w[i * stride % nw];
    json_t *j = miss ? rt_store_customer_json(s, NULL, "telegram", "no-such-chat")
                     : rt_store_customer_json(s, x->phone, x->channel, x->chat);
    if (j) (*found)++;
    json_decref(j);
    (*n)++;
  }
  return *n ? (now_s() - t0) * 1e6 / *n : 0;
}

int main(int argc, char **argv) {
  long rows = 1000000, turns = 20000;
  double limit = 20;
  const char *reuse = NULL;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--rows") == 0 && i + 1 < argc) rows = atol(argv[++i]);
    else if (strcmp(argv[i], "--turns") == 0 && i + 1 < argc) turns = atol(argv[++i]);
    else if (strcmp(argv[i], "--limit") == 0 && i + 1 < argc) limit = atof(argv[++i]);
    else if (strcmp(argv[i], "--reuse") == 0 && i + 1 < argc) reuse = argv[++i];
    else {
      fprintf(stderr, "usage: bench_retention [--rows N] [--turns K] [--limit S] [--reuse FILE]\n");
      return 2;
    }
  }
  char dir[] = "/var/tmp/bench_retention.XXXXXX";
  if (!mkdtemp(dir)) { perror("mkdtemp"); return 1; }
  char csv[600], db[600], sql[600], shop[600], cmd[1400];
  snprintf(csv, sizeof csv, "%s/customers.csv", dir);
  snprintf(db, sizeof db, "%s/shop.db", dir);
  snprintf(sql, sizeof sql, "%s/schema/sql", rt_paths_home());
  snprintf(shop, sizeof shop, "%s/examples/autoparts", rt_paths_home());
  rt_log_set_level(RT_LOG_WARN);
  int64_t now = wall_ms();
  bool reused = reuse && access(reuse, R_OK) == 0;
  if (reused) {
    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", reuse, db);
    if (system(cmd) != 0) { fprintf(stderr, "cannot copy %s\n", reuse); return 1; }
    printf("retention.reused: %s\n", reuse);
    /* The store's clock moved on since it was kept: the check-ins the
     * campaign scheduled for the hours after it fall due too, and they are
     * its first ones, customers in phone order, whose pages lie together,
     * so a run found 36,000 due instead of 20,000, each cheaper than a
     * spread one. Those move on by the time that passed, and past the run
     * (--limit), or the next seconds' would fall due during it; only they
     * move, the other rows and their index stay as the campaign wrote
     * them. So the same 20,000 are due, and only they. */
    rt_store_opts so = {.sql_dir = sql, .sync_full = true};
    rt_store *s;
    char *err = NULL, *kept = NULL;
    if (rt_store_open(db, &so, &s, &err) != RT_OK) { fprintf(stderr, "%s\n", err); return 1; }
    if (rt_store_meta_get(s, "bench_retention_kept_at", &kept) == RT_OK && kept) {
      char q[160];
      long long then = atoll(kept), until = (long long)now + (long long)(limit * 1000);
      snprintf(q, sizeof q, "UPDATE timers SET due_at = due_at + %lld WHERE due_at > %lld "
               "AND due_at <= %lld", until - then, then, until);
      if (rt_store_exec(s, q) != RT_OK) { fprintf(stderr, "%s\n", rt_store_errmsg(s)); return 1; }
      rt_store_exec(s, "PRAGMA wal_checkpoint(TRUNCATE)");
    }
    free(kept);
    rt_store_close(s);
    goto run;
  }

  /* A shop with rows customers, and the campaign's check-ins scheduled. */
  if (gen_csv(csv, rows, now) != 0) { perror(csv); return 1; }
  rt_store_opts so = {.sql_dir = sql, .sync_full = true};
  rt_store *s;
  char *err = NULL;
  if (rt_store_open(db, &so, &s, &err) != RT_OK) { fprintf(stderr, "%s\n", err); return 1; }
  rt_import_report *rep = malloc(sizeof *rep);
  double t0 = now_s();
  if (rt_import_csv(s, csv, now, "Europe/Moscow", rep, &err) != RT_OK) {
    fprintf(stderr, "import: %s\n", err);
    return 1;
  }
  printf("retention.customers: %lld imported in %.2f s\n", (long long)rep->customers_inserted,
         now_s() - t0);
  free(rep);
  rt_campaign_opts o;
  rt_campaign_opts_default(&o, "retention", now);
  rt_campaign_report cr;
  t0 = now_s();
  if (rt_campaign_run(s, &o, &cr, &err) != RT_OK) { fprintf(stderr, "campaign: %s\n", err); return 1; }
  printf("retention.scheduled: %lld check-ins in %.2f s\n", (long long)cr.scheduled, now_s() - t0);
  if (turns > cr.scheduled) turns = (long)cr.scheduled;
  /* Spread over the whole campaign, not its first hours: the campaign
   * schedules in phone order, and a lookup that scans in phone order would
   * find the first customers at once. */
  long step = turns > 0 ? (long)(cr.scheduled / turns) : 1;
  char q[256];
  snprintf(q, sizeof q, "UPDATE timers SET due_at = %lld WHERE id IN "
           "(SELECT id FROM timers WHERE id %% %ld = 0 ORDER BY id LIMIT %ld)", (long long)now,
           step > 0 ? step : 1, turns);
  if (rt_store_exec(s, q) != RT_OK) { fprintf(stderr, "%s\n", rt_store_errmsg(s)); return 1; }

  /* The lookup alone, for the customers of those check-ins. */
  sqlite3_stmt *st;
  sqlite3_prepare_v2(rt_store_db(s),
                     "SELECT v.phone, v.channel, v.chat_id FROM timers t JOIN conversations v "
                     "ON v.id = t.conv_id WHERE t.due_at <= ?1 ORDER BY t.id", -1, &st, NULL);
  sqlite3_bind_int64(st, 1, now);
  who *w = calloc((size_t)turns + 1, sizeof *w);
  long nw = 0;
  while (nw < turns && sqlite3_step(st) == SQLITE_ROW) {
    for (int c = 0; c < 3; c++) {
      const char *v = (const char *)sqlite3_column_text(st, c);
      char **dst = c == 0 ? &w[nw].phone : c == 1 ? &w[nw].channel : &w[nw].chat;
      *dst = v ? rt_xstrdup(v) : NULL;
    }
    nw++;
  }
  sqlite3_finalize(st);
  long n, found;
  double us = time_lookups(s, w, nw, false, limit / 4, &n, &found);
  printf("retention.customer_lookup_us: %.2f us (c:customer() of a campaign contact, %ld lookups, "
         "%ld found)\n", us, n, found);
  us = time_lookups(s, w, nw, true, limit / 4, &n, &found);
  printf("retention.customer_miss_us: %.2f us (a chat no customer has, %ld lookups)\n", us, n);
  /* A step calls it inside its batch's transaction: the read lock is taken
   * once for the batch, not by each statement as above. */
  rt_store_begin(s);
  us = time_lookups(s, w, nw, false, limit / 4, &n, &found);
  rt_store_rollback(s);
  printf("retention.customer_lookup_txn_us: %.2f us (the same inside a transaction, as a step "
         "makes it, %ld lookups)\n", us, n);
  for (long i = 0; i < nw; i++) {
    free(w[i].phone);
    free(w[i].channel);
    free(w[i].chat);
  }
  free(w);
  char at[32];
  snprintf(at, sizeof at, "%lld", (long long)now);
  rt_store_meta_set(s, "bench_retention_kept_at", at);
  rt_store_exec(s, "PRAGMA wal_checkpoint(TRUNCATE)");
  rt_store_close(s);
  if (reuse) {
    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", db, reuse);
    if (system(cmd) != 0) fprintf(stderr, "cannot keep the store in %s\n", reuse);
  }

run:;

  /* The bot runs them. */
  rt_config *cfg;
  char *schema = rt_paths_schema("shop.schema.json");
  if (rt_config_load(shop, schema, &cfg, &err) != RT_OK) { fprintf(stderr, "%s\n", err); return 1; }
  free(schema);
  rt_log_set_level(RT_LOG_WARN);
  uv_loop_t loop;
  uv_loop_init(&loop);
  rt_engine *e;
  rt_engine_opts eo = {.loop = &loop, .cfg = cfg, .store_path = db};
  if (rt_engine_new(&eo, &e, &err) != RT_OK) { fprintf(stderr, "%s\n", err); return 1; }
  rt_channel chans[] = {{.name = "console", .caps = RT_CH_BUTTONS, .send = null_send},
                        {.name = "telegram", .caps = RT_CH_BUTTONS, .send = null_send},
                        {.name = "whatsapp", .caps = RT_CH_BUTTONS, .send = null_send}};
  for (size_t i = 0; i < sizeof chans / sizeof *chans; i++) rt_engine_add_channel(e, &chans[i]);
  const rt_engine_stats *es = rt_engine_get_stats(e);
  int64_t w0 = rt_store_wal_written(rt_engine_store(e));
  int64_t r0 = rt_store_page_reads(rt_engine_store(e));
  t0 = now_s();
  double c0 = cpu_s(), k0 = sys_s();
  rt_engine_start(e);
  struct timespec l0, l1;   /* the loop thread's own CPU: the bound of the rate */
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &l0);
  while (!((long)es->events >= turns && rt_engine_idle(e)) && now_s() - t0 < limit)
    uv_run(&loop, UV_RUN_ONCE);
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &l1);
  double dt = now_s() - t0, dc = cpu_s() - c0, dk = sys_s() - k0;
  long done = (long)es->events;
  printf("retention.checkins_per_s: %.0f check-ins/s (goal >= 20000; %ld of %ld in %.2f s, "
         "%ld customers, synchronous=full)\n", done / dt, done, turns, dt, rows);
  printf("retention.cpu_us_per_checkin: %.1f us (%.1f of it in the kernel)\n",
         done ? dc * 1e6 / done : 0.0, done ? dk * 1e6 / done : 0.0);
  double dl = (double)(l1.tv_sec - l0.tv_sec) + (l1.tv_nsec - l0.tv_nsec) / 1e9;
  printf("retention.loop_us_per_checkin: %.1f us (the loop thread alone; the syncs and most "
         "of the WAL's copies run beside it)\n", done ? dl * 1e6 / done : 0.0);
  /* What the check-ins cost in writes: every page goes to the WAL at its
   * commit and once more into the file at a checkpoint. */
  printf("retention.wal_pages_per_checkin: %.2f\n",
         done ? (double)(rt_store_wal_written(rt_engine_store(e)) - w0) / done : 0.0);
  /* Reads are most of the kernel's part: each page SQLite's cache misses. */
  printf("retention.page_reads_per_checkin: %.2f\n",
         done ? (double)(rt_store_page_reads(rt_engine_store(e)) - r0) / done : 0.0);
  printf("retention.replies: %ld (steps failed: %llu)\n", sent, (unsigned long long)es->steps_failed);
  rt_engine_close(e, NULL, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  rt_config_free(cfg);
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", dir);
  return 0;
}
