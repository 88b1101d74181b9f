/* wake_crash.c -- a burst of wake-ups under kill -9 (it.wake_kill).
 *
 *   wake_crash init DIR N         a shop in DIR whose wake-up step replies
 *                                 "woke <chat>", and N conversations, each
 *                                 with a wake-up due now
 *   wake_crash run DIR LOG PAGES  the engine, as the bot runs it, until no
 *                                 wake-up is due and nothing is left to
 *                                 send; PAGES: the WAL's bound
 *                                 (rt_engine_opts.wal_max_pages), small so
 *                                 that kills also land in checkpoints
 *
 * The fake channel is the customer: it appends "chat outbox-id text" to LOG
 * and fsyncs before it answers, so the log is what the outside world
 * received, whatever moment the process is killed. */
#include "config.h"
#include "engine.h"
#include "paths.h"
#include "rt.h"
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int log_fd = -1;

static void log_send(rt_channel *ch, const rt_out_msg *m, rt_send_done done, void *ud) {
  (void)ch;
  char line[256];
  int n = snprintf(line, sizeof line, "%s %lld %s\n", m->chat_id, (long long)m->id,
                   m->text ? m->text : "-");
  if (n < 0 || n >= (int)sizeof line || write(log_fd, line, (size_t)n) != n || fsync(log_fd)) {
    perror("log");
    exit(2);
  }
  done(ud, &(rt_send_result){.verdict = RT_SEND_DELIVERED});
}

static int write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  if (!f) return -1;
  fputs(text, f);
  return fclose(f);
}

static const char *shop =
  "{\"name\":\"t\",\"persona\":{},\"flows\":{\"start\":\"main\"},"
  "\"http\":{\"enabled\":false},\"log\":{\"level\":\"error\"}}";

static const char *flow =
  "return flow 'main' {\n"
  "  start = function(c, ev) c:say('hello') end,\n"
  "  woke = function(c, ev) c:say('woke ' .. c.chat) end,\n"
  "}\n";

static rt_store *open_store(const char *dir) {
  char *sql = rt_paths_schema("sql"), *err = NULL, *db = rt_xasprintf("%s/data/shop.db", dir);
  rt_store_opts o = {.sql_dir = sql, .sync_full = true};
  rt_store *s = NULL;
  if (rt_store_open(db, &o, &s, &err) != RT_OK) {
    fprintf(stderr, "wake_crash: %s\n", err);
    free(err);
  }
  free(sql);
  free(db);
  return s;
}

static rt_engine *eng;
static uv_loop_t loop;

static void tick(uv_timer_t *t) {
  (void)t;
  rt_store_counts c = {0};
  rt_store_counts_get(rt_engine_store(eng), &c);
  if (rt_engine_idle(eng) && c.outbox_pending == 0) uv_stop(&loop);
}

static int run(const char *dir, const char *log, long pages) {
  log_fd = open(log, O_WRONLY | O_APPEND | O_CREAT, 0644);
  if (log_fd < 0) { perror(log); return 1; }
  char *schema = rt_paths_schema("shop.schema.json"), *err = NULL;
  rt_config *cfg;
  if (rt_config_load(dir, schema, &cfg, &err) != RT_OK) {
    fprintf(stderr, "wake_crash: %s\n", err);
    return 1;
  }
  free(schema);
  uv_loop_init(&loop);
  rt_engine_opts o = {.loop = &loop, .cfg = cfg, .wal_max_pages = pages};
  if (rt_engine_new(&o, &eng, &err) != RT_OK) {
    fprintf(stderr, "wake_crash: %s\n", err);
    return 1;
  }
  rt_channel ch = {.name = "console", .send = log_send};
  rt_engine_add_channel(eng, &ch);
  uv_timer_t t;
  uv_timer_init(&loop, &t);
  uv_timer_start(&t, tick, 20, 20);
  rt_engine_start(eng);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_close((uv_handle_t *)&t, NULL);
  rt_engine_close(eng, NULL, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  rt_config_free(cfg);
  close(log_fd);
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: wake_crash init DIR N | run DIR LOG PAGES\n");
    return 2;
  }
  const char *dir = argv[2];
  if (strcmp(argv[1], "init") == 0 && argc == 4) {
    char path[512];
    snprintf(path, sizeof path, "%s/flows", dir);
    mkdir(dir, 0755);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/flows/main.lua", dir);
    if (write_file(path, flow) != 0) return 1;
    snprintf(path, sizeof path, "%s/shop.json", dir);
    if (write_file(path, shop) != 0) return 1;
    rt_store *s = open_store(dir);
    if (!s) return 1;
    char *q = rt_xasprintf(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < %d) "
        "INSERT INTO conversations (channel, chat_id, flow, step, state, created_at, updated_at) "
        "SELECT 'console', 'k' || i, 'main', 'start', '{}', 0, 0 FROM n;"
        "INSERT INTO timers (conv_id, name, due_at, step, data, created_at) "
        "SELECT id, 'w', 1000, 'woke', '{}', 0 FROM conversations;", atoi(argv[3]));
    int rc = rt_store_exec(s, q);
    free(q);
    rt_store_close(s);
    return rc == RT_OK ? 0 : 1;
  }
  if (strcmp(argv[1], "run") == 0 && argc == 5) return run(dir, argv[3], atol(argv[4]));
  return 2;
}
