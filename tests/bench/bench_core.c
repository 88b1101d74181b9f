/* bench_core.c -- figures for the runtime core (prints, never asserts).
 *
 *   events/s and CPU µs per event: in-process injection -> Lua step ->
 *     durable group commit, N events over C conversations;
 *   RSS and database size with S stored conversations;
 *   hot reload: load+validate+swap time, and file write -> swap latency
 *     through the watcher, with those conversations stored.
 *
 * usage: bench_core [--events N] [--convs C] [--stored S] [--dir D] */
#include "config.h"
#include "engine.h"
#include "paths.h"
#include "rt.h"
#include "log.h"
#include "watch.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

static long sent;
static void null_send(rt_channel *ch, const rt_out_msg *m, rt_send_done done, void *ud) {
  (void)ch;
  (void)m;
  sent++;
  done(ud, &(rt_send_result){.verdict = RT_SEND_DELIVERED});
}
static rt_channel chan = {.name = "console", .caps = RT_CH_BUTTONS, .send = null_send};

static double now_s(void) { return (double)uv_hrtime() / 1e9; }

/* The watcher's callback: what app.c does on a change, minus the log. */
static void reload_now(void *ud) {
  char *err = NULL;
  rt_engine_reload(ud, &err);
  free(err);
}

static double cpu_s(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static long rss_kb(void) {
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  long kb = -1;
  while (f && fgets(line, sizeof line, f))
    if (sscanf(line, "VmRSS: %ld", &kb) == 1) break;
  if (f) fclose(f);
  return kb;
}

static long file_kb(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 ? (long)(st.st_size / 1024) : 0;
}

static const char *script[] = {"/start", "XW8ZZZ614BG012345", "колодки передние", "фильтр масляный",
                               "свечи", "масло 5w30", "диски", "лампы h7", "щетки", "нет"};

static void drain(uv_loop_t *loop, rt_engine *e) {
  while (!rt_engine_idle(e)) uv_run(loop, UV_RUN_NOWAIT);
}

/* Sends n events spread over convs chats, each chat getting script lines
 * in order; chunk events are queued before the loop runs. */
static void inject(uv_loop_t *loop, rt_engine *e, long n, long convs, long base, const char *tag) {
  char chat[32], ext[64];
  long chunk = convs < 5000 ? convs : 5000;
  for (long i = 0; i < n; i++) {
    long conv = base + i % convs, round = i / convs;
    snprintf(chat, sizeof chat, "%s%ld", tag, conv);
    snprintf(ext, sizeof ext, "%s:%ld", tag, i);
    rt_event_in ev = {.channel = "console", .ext_id = ext, .chat_id = chat, .user_id = chat,
                      .kind = "text", .text = script[round % 10]};
    rt_engine_receive(e, &ev, NULL, NULL);
    if ((i + 1) % chunk == 0) drain(loop, e);
  }
  drain(loop, e);
}

int main(int argc, char **argv) {
  long events = 100000, convs = 10000, stored = 100000;
  const char *shop = NULL;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--events") == 0 && i + 1 < argc) events = atol(argv[++i]);
    else if (strcmp(argv[i], "--convs") == 0 && i + 1 < argc) convs = atol(argv[++i]);
    else if (strcmp(argv[i], "--stored") == 0 && i + 1 < argc) stored = atol(argv[++i]);
    else if (strcmp(argv[i], "--shop") == 0 && i + 1 < argc) shop = argv[++i];
    else { fprintf(stderr, "usage: bench_core [--events N] [--convs C] [--stored S] [--shop DIR]\n"); return 2; }
  }
  char tmp[] = "/var/tmp/bench_core.XXXXXX";
  if (!mkdtemp(tmp)) return 1;
  char cmd[1024];
  snprintf(cmd, sizeof cmd, "cp -r %s/tests/bench/shop/. %s/", shop ? shop : rt_paths_home(), tmp);
  if (system(cmd) != 0) return 1;
  rt_config *cfg;
  char *schema = rt_paths_schema("shop.schema.json"), *err = NULL;
  if (rt_config_load(tmp, schema, &cfg, &err) != RT_OK) { fprintf(stderr, "%s\n", err); return 1; }
  free(schema);
  rt_log_set_level(RT_LOG_WARN);
  uv_loop_t loop;
  uv_loop_init(&loop);
  rt_engine *e;
  rt_engine_opts o = {.loop = &loop, .cfg = cfg};
  long rss0 = rss_kb();
  if (rt_engine_new(&o, &e, &err) != RT_OK) { fprintf(stderr, "%s\n", err); return 1; }
  rt_engine_add_channel(e, &chan);
  rt_engine_start(e);
  long rss_start = rss_kb();

  double t0 = now_s(), c0 = cpu_s();
  inject(&loop, e, events, convs, 0, "a");
  double t1 = now_s(), c1 = cpu_s();
  const rt_engine_stats *st = rt_engine_get_stats(e);
  printf("core.events: %ld events over %ld conversations, %ld replies\n", events, convs, sent);
  printf("core.events_per_s: %.0f events/s (durable group commit, synchronous=full)\n",
         events / (t1 - t0));
  printf("core.cpu_us_per_event: %.1f us\n", (c1 - c0) * 1e6 / events);
  printf("core.events_applied: %llu\n", (unsigned long long)st->events);
  printf("core.rss_engine_start: %ld KB (process before engine: %ld KB)\n", rss_start, rss0);

  /* Reload with the conversations above stored. */
  double r0 = now_s();
  if (rt_engine_reload(e, &err) != RT_OK) { fprintf(stderr, "%s\n", err); return 1; }
  double r1 = now_s();
  printf("core.reload_swap_ms: %.2f ms (load + validate + swap, %ld conversations stored)\n",
         (r1 - r0) * 1e3, convs);
  rt_watch *w;
  char *flows = rt_config_path(cfg, "flows");
  const char *dirs[] = {flows};
  rt_watch_new(&loop, dirs, 1, (int)rt_config_int(cfg, "flows.reload_debounce_ms", 15),
               reload_now, e, &w, &err);
  double best = 1e9, sum = 0;
  char path[512];
  snprintf(path, sizeof path, "%s/lead.lua", flows);
  FILE *src = fopen(path, "rb");
  char *code = rt_xmalloc(1 << 20);
  size_t len = src ? fread(code, 1, (1 << 20) - 1, src) : 0;
  if (src) fclose(src);
  code[len] = '\0';
  for (int k = 0; k < 5; k++) {
    unsigned before = rt_watch_changes(w);
    /* The write an editor makes: the whole file, with one comment changed. */
    double w0 = now_s();
    FILE *f = fopen(path, "wb");
    fprintf(f, "-- edit %d\n%s", k, code);
    fclose(f);
    while (rt_watch_changes(w) == before) uv_run(&loop, UV_RUN_ONCE);
    double dt = (now_s() - w0) * 1e3;
    sum += dt;
    if (dt < best) best = dt;
  }
  free(code);
  printf("core.reload_write_to_swap_ms: %.1f ms mean, %.1f ms best (flows.reload_debounce_ms %lld ms included; write of the file to swap)\n",
         sum / 5, best, (long long)rt_config_int(cfg, "flows.reload_debounce_ms", 15));
  rt_watch_close(w, NULL, NULL);
  free(flows);

  /* Many stored conversations: each gets one event, so each has a row. */
  long more = stored - convs;
  double s0 = now_s();
  if (more > 0) inject(&loop, e, more, more, 0, "s");
  double s1 = now_s();
  char *db = rt_config_path(cfg, "data/shop.db"), *wal = rt_xasprintf("%s-wal", db);
  rt_store_exec(rt_engine_store(e), "PRAGMA wal_checkpoint(TRUNCATE)");
  printf("core.stored_conversations: %ld (%.0f new conversations/s)\n", stored,
         more > 0 ? more / (s1 - s0) : 0.0);
  long rss_stored = rss_kb();
  char *m = rt_engine_metrics(e), *lm = strstr(m, "\nshopbot_lua_memory_bytes ");
  long long lua_bytes = lm ? atoll(lm + 26) : -1;
  free(m);
  rt_alloc_trim();
  printf("core.rss_with_stored: %ld KB (%ld KB after the trim; SQLite %lld KB; Lua %lld KB)\n",
         rss_stored, rss_kb(), (long long)rt_store_mem_used(rt_engine_store(e)) / 1024,
         lua_bytes / 1024);
  printf("core.db_size: %ld KB (+ wal %ld KB)\n", file_kb(db), file_kb(wal));
  free(db);
  free(wal);
  rt_engine_close(e, NULL, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  rt_config_free(cfg);
  snprintf(cmd, sizeof cmd, "rm -rf %s", tmp);
  if (system(cmd) != 0) return 1;
  return 0;
}
