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
#include "crash_driver.h"
#include "engine.h"
#include "paths.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int log_fd = -1;

static void log_send(rt_channel *ch, const rt_out_msg *m, rt_send_done done, void *ud) {
  (void)ch;
  crash_log_send(log_fd, m, m->text ? m->text : "-");
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
  char *db = rt_xasprintf("%s/data/shop.db", dir);
  rt_store *s = crash_store_open("wake_crash", db);
  free(db);
  return s;
}

static void engine_start(void *e) { rt_engine_start(e); }
static void engine_stop(void *e) { rt_engine_close(e, NULL, NULL); }

/* Done when the engine has nothing queued, running or being sent and
 * the store no row left to send. */
static bool engine_finished(void *e) {
  int64_t pending = crash_pending(rt_engine_store(e));
  return rt_engine_idle(e) && pending == 0;
}

static int run(const char *dir, const char *log, long pages) {
  log_fd = crash_log_open(log);
  if (log_fd < 0) return 1;
  char *schema = rt_paths_schema("shop.schema.json"), *err = NULL;
  rt_config *cfg;
  if (rt_config_load(dir, schema, &cfg, &err) != RT_OK) {
    fprintf(stderr, "wake_crash: %s\n", err);
    return 1;
  }
  free(schema);
  uv_loop_t loop;
  uv_loop_init(&loop);
  rt_engine_opts o = {.loop = &loop, .cfg = cfg, .wal_max_pages = pages};
  rt_engine *eng;
  if (rt_engine_new(&o, &eng, &err) != RT_OK) {
    fprintf(stderr, "wake_crash: %s\n", err);
    return 1;
  }
  rt_channel ch = {.name = "console", .send = log_send};
  rt_engine_add_channel(eng, &ch);
  crash_run(&loop, eng, engine_start, engine_stop, engine_finished, eng);
  rt_config_free(cfg);
  close(log_fd);
  return 0;
}

int main(int argc, char **argv) {
  if (crash_usage(argc, "wake_crash init DIR N | run DIR LOG PAGES")) return 2;
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
