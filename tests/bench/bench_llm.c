/* bench_llm.c -- figures of the llm provider against fake_openai.py:
 *   - the client's own time per call (wall minus the server's answer time),
 *     one call at a time against a server that answers at once, and with
 *     N calls in flight;
 *   - N calls in flight at once against a server that takes 1 s, and the
 *     RSS they cost this process.
 *   bench_llm [--calls 2000] [--inflight 500]
 * Prints figures, never fails on them. */
#include "llm/llm.h"
#include "http_client.h"
#include "rt.h"
#include <jansson.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

extern char **environ;

static pid_t start_fake(const char *rules, int *port) {
  char dir[] = "/tmp/bench_llm.XXXXXX";
  if (!mkdtemp(dir)) return -1;
  char script[128], pf[128], bin[512];
  snprintf(script, sizeof script, "%s/rules.json", dir);
  snprintf(pf, sizeof pf, "%s/port", dir);
  const char *src = getenv("RT_SOURCE_DIR") ? getenv("RT_SOURCE_DIR") : RT_SOURCE_DIR;
  snprintf(bin, sizeof bin, "%s/tests/fakes/fake_openai.py", src);
  FILE *f = fopen(script, "w");
  fputs(rules, f);
  fclose(f);
  char *argv[] = {"python3", bin, "--script", script, "--port-file", pf, "--max-seconds", "300", NULL};
  pid_t pid;
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  int rc = posix_spawnp(&pid, "python3", &fa, NULL, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) return -1;
  for (int i = 0; i < 300; i++) {
    FILE *p = fopen(pf, "r");
    if (p) {
      int ok = fscanf(p, "%d", port) == 1;
      fclose(p);
      if (ok) return pid;
    }
    usleep(20000);
  }
  return -1;
}

static long rss_kb(void) {
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  long kb = 0;
  while (f && fgets(line, sizeof line, f))
    if (strncmp(line, "VmRSS:", 6) == 0) kb = atol(line + 6);
  if (f) fclose(f);
  return kb;
}

static void set_health(void *h, const char *n, const char *p) {}
static void started(void *ud, int st, const char *e) {}
static int left;
static void on_done(void *ud, const rt_call_result *r) {
  left--;
  if (r->status != RT_OK) (*(int *)ud)++;
}
static void closed(void *ud) {}

static rt_provider *open_llm(uv_loop_t *loop, rt_http *http, rt_plugin_env *env, int port) {
  char url[96];
  snprintf(url, sizeof url, "http://127.0.0.1:%d/v1", port);
  json_t *conf = json_pack("{s:s,s:s,s:i,s:i,s:i}", "base_url", url, "model", "bench",
                           "timeout_ms", 60000, "deadline_ms", 120000, "max_in_flight", 100000);
  memset(env, 0, sizeof *env);
  env->loop = loop;
  env->name = "llm";
  env->conf = conf;
  env->http = http;
  env->set_health = set_health;
  rt_provider *p;
  char *err = NULL;
  if (rt_llm_new(conf, &p, &err) != RT_OK) abort();
  p->start(p, env, started, NULL);
  json_decref(conf);
  return p;
}

static void run(uv_loop_t *loop, rt_provider *p, int n, int at_once, int *failed) {
  json_t *args = json_pack("{s:s}", "text", "да вот думаю на зимнюю резину переобуться");
  int sent = 0;
  left = 0;
  while (sent < n || left > 0) {
    while (sent < n && left < at_once) {
      rt_call *c;
      char *err = NULL;
      if (p->call(p, "chat", args, on_done, failed, &c, &err) != RT_OK) abort();
      sent++;
      left++;
    }
    uv_run(loop, UV_RUN_ONCE);
  }
  json_decref(args);
}

/* ---- every customer message sent to the LLM, as the seed shop does ----
 *
 * For each transcript in dir: every user: line is one llm.chat call with
 * the persona prompt and the dialog so far (the transcript's bot: lines as
 * the assistant's), every photo: line one call with a photo. The fake bills
 * prompt tokens by the request's text (fake_openai.py, prompt_estimate) and
 * 85 per photo. Leads: transcripts that expect a lead; retention dialogs:
 * ret_*.chat. */
typedef struct { int64_t tokens, cost_micro; int calls; } tally;
static tally g_tally;
static int g_left;
static void on_counted(void *ud, const rt_call_result *r) {
  g_tally.tokens += r->usage.tokens_in + r->usage.tokens_out;
  g_tally.cost_micro += r->usage.cost_micro;
  g_tally.calls++;
  g_left--;
}

static void all_llm(uv_loop_t *loop, rt_provider *p, const char *dir, const char *photo) {
  char cmd[600];
  snprintf(cmd, sizeof cmd, "ls %s/*.chat 2>/dev/null", dir);
  FILE *ls = popen(cmd, "r");
  char file[512];
  int leads = 0, rets = 0;
  int64_t lead_tokens = 0, lead_cost = 0, ret_tokens = 0, ret_cost = 0;
  int dialogs = 0, calls = 0;
  while (ls && fgets(file, sizeof file, ls)) {
    file[strcspn(file, "\n")] = '\0';
    FILE *f = fopen(file, "r");
    if (!f) continue;
    json_t *hist = json_array();
    bool is_lead = false, is_ret = strstr(file, "/ret_") != NULL;
    g_tally = (tally){0, 0, 0};
    char line[8192];
    while (fgets(line, sizeof line, f)) {
      line[strcspn(line, "\n")] = '\0';
      if (strncmp(line, "expect lead", 11) == 0) is_lead = true;
      bool user = strncmp(line, "user: ", 6) == 0, ph = strncmp(line, "photo:", 6) == 0;
      if (strncmp(line, "bot: ", 5) == 0) {
        json_array_append_new(hist, json_pack("{s:s,s:s}", "role", "assistant", "content", line + 5));
        continue;
      }
      if (!user && !ph) continue;
      const char *t = user ? line + 6 : (line[6] == ' ' ? line + 7 : line + 6);
      json_t *args = json_pack("{s:s,s:O,s:{s:s,s:s}}", "text", t[0] ? t : "(фото)", "history", hist,
                               "vars", "shop", "Колесо", "persona", "Виталий");
      if (ph) json_object_set_new(args, "images", json_pack("[s]", photo));
      rt_call *c;
      char *err = NULL;
      if (p->call(p, "chat", args, on_counted, NULL, &c, &err) == RT_OK) {
        g_left = 1;
        while (g_left > 0) uv_run(loop, UV_RUN_ONCE);
      }
      free(err);
      json_decref(args);
      json_array_append_new(hist, json_pack("{s:s,s:s}", "role", "user", "content", t));
    }
    fclose(f);
    json_decref(hist);
    dialogs++;
    calls += g_tally.calls;
    if (is_lead) { leads++; lead_tokens += g_tally.tokens; lead_cost += g_tally.cost_micro; }
    if (is_ret) { rets++; ret_tokens += g_tally.tokens; ret_cost += g_tally.cost_micro; }
  }
  if (ls) pclose(ls);
  printf("llm.all_to_llm: %d transcripts, %d calls; per completed lead %.0f tokens, %.4f ₽ (%d leads); "
         "per retention dialog %.0f tokens, %.4f ₽ (%d dialogs)\n",
         dialogs, calls, leads ? (double)lead_tokens / leads : 0, leads ? (double)lead_cost / 1e6 / leads : 0,
         leads, rets ? (double)ret_tokens / rets : 0, rets ? (double)ret_cost / 1e6 / rets : 0, rets);
}

int main(int argc, char **argv) {
  int calls = 2000, inflight = 500;
  const char *transcripts = NULL;
  for (int i = 1; i + 1 < argc; i++) {
    if (strcmp(argv[i], "--calls") == 0) calls = atoi(argv[++i]);
    else if (strcmp(argv[i], "--inflight") == 0) inflight = atoi(argv[++i]);
    else if (strcmp(argv[i], "--transcripts") == 0) transcripts = argv[++i];
  }
  int port;
  pid_t fast = start_fake("[{\"content\":\"Подберём зимние шины.\",\"usage\":{\"prompt_tokens\":300,\"completion_tokens\":12}}]", &port);
  if (fast < 0) { fprintf(stderr, "cannot start fake_openai.py\n"); return 2; }
  uv_loop_t loop;
  uv_loop_init(&loop);
  rt_http *http = rt_http_new(&loop);
  rt_plugin_env env;
  rt_provider *p = open_llm(&loop, http, &env, port);
  int failed = 0;
  run(&loop, p, calls / 10 < 50 ? 50 : calls / 10, 1, &failed); /* warm up */
  p->close(p, closed, NULL);
  p = open_llm(&loop, http, &env, port);
  run(&loop, p, calls, 1, &failed);
  rt_llm_stats st;
  rt_llm_get_stats(p, &st);
  printf("llm.client_ms: p50 %.3f, p99 %.3f, max %.3f over %d calls one at a time "
         "(wall minus the server's answer time; goal p99 < 1 ms)\n",
         st.overhead_ms_p50, st.overhead_ms_p99, st.overhead_ms_max, calls);
  p->close(p, closed, NULL);
  p = open_llm(&loop, http, &env, port);
  run(&loop, p, calls, 50, &failed);
  rt_llm_get_stats(p, &st);
  printf("llm.client_ms_50_at_once: p50 %.3f, p99 %.3f (the loop answers 50 completions per turn)\n",
         st.overhead_ms_p50, st.overhead_ms_p99);
  p->close(p, closed, NULL);
  if (transcripts) {
    /* a fake that bills by what is sent (no fixed usage in its rule) */
    kill(fast, SIGTERM);
    waitpid(fast, NULL, 0);
    fast = start_fake("[{\"content\":\"Записал. Пришлите, пожалуйста, VIN или номер кузова.\"}]", &port);
    /* prices of gpt-4o-mini in roubles (0.15 and 0.60 $ per 1M tokens at 90 ₽) */
    char url[96];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v1", port);
    char prompt[600];
    snprintf(prompt, sizeof prompt, "%s/../prompt.md", transcripts);
    json_t *conf = json_pack("{s:s,s:s,s:f,s:f,s:s}", "base_url", url, "model", "bench",
                             "price_per_1k_prompt", 0.0135, "price_per_1k_completion", 0.054,
                             "prompt", prompt);
    rt_provider *q;
    char *err = NULL;
    rt_llm_new(conf, &q, &err);
    env.conf = conf;
    q->start(q, &env, started, NULL);
    char photo[256];
    snprintf(photo, sizeof photo, "/tmp/bench_llm_photo.%d.jpg", (int)getpid());
    char cmd[400];
    snprintf(cmd, sizeof cmd, "convert -size 1280x960 xc:'#9aa' -fill black -pointsize 90 "
                              "-annotate +80+400 'BREMBO P 85 020' %s", photo);
    if (system(cmd) == 0) all_llm(&loop, q, transcripts, photo);
    unlink(photo);
    q->close(q, closed, NULL);
    json_decref(conf);
  }
  kill(fast, SIGTERM);
  waitpid(fast, NULL, 0);

  pid_t slow = start_fake("[{\"delay_ms\":1000,\"content\":\"ок\",\"usage\":{\"prompt_tokens\":300,\"completion_tokens\":2}}]", &port);
  p = open_llm(&loop, http, &env, port);
  uv_run(&loop, UV_RUN_NOWAIT);
  long rss0 = rss_kb();
  json_t *args = json_pack("{s:s}", "text", "да вот думаю на зимнюю резину переобуться");
  left = 0;
  for (int i = 0; i < inflight; i++) {
    rt_call *c;
    char *err = NULL;
    p->call(p, "chat", args, on_done, &failed, &c, &err);
    left++;
  }
  json_decref(args);
  uint64_t t0 = uv_hrtime();
  long rss_peak = rss0;
  size_t http_peak = 0;
  while (left > 0) {
    uv_run(&loop, UV_RUN_ONCE);
    long r = rss_kb();
    if (r > rss_peak) rss_peak = r;
    if (rt_http_inflight(http) > http_peak) http_peak = rt_http_inflight(http);
  }
  double s = (double)(uv_hrtime() - t0) / 1e9;
  rt_llm_get_stats(p, &st);
  printf("llm.in_flight: %zu calls at once (%zu HTTP requests open at once) against a 1 s server, "
         "all answered in %.2f s; rss +%ld KB for them (%.1f KB per call), %d failed\n",
         st.max_in_flight_seen, http_peak, s, rss_peak - rss0,
         (double)(rss_peak - rss0) / (double)inflight, failed);
  printf("llm.client_ms_%d_in_flight: p50 %.3f, p99 %.3f\n", inflight, st.overhead_ms_p50,
         st.overhead_ms_p99);
  p->close(p, closed, NULL);
  rt_http_close(http, closed, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  kill(slow, SIGTERM);
  waitpid(slow, NULL, 0);
  return 0;
}
