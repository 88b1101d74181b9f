/* test_llm.c -- the llm provider against tests/fakes/fake_openai.py: chat
 * and extract, structured outputs and the json_object fallback, the repair
 * turn, usage and cost, images, the price-claim guard, and every failure
 * (429 with Retry-After, quota, 5xx, garbage, truncated JSON, a server that
 * hangs mid-body, timeouts) with the breaker and health; cancel; 500 calls
 * in flight while the loop stays responsive. */
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#else
#define RUNNING_ON_VALGRIND 0
#endif
#include "t.h"
#include "llm/llm.h"
#include "buf.h"
#include "http_client.h"
#include "rt.h"
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

extern char **environ;

static char tmpdir[] = "/tmp/test_llm.XXXXXX";
static pid_t fake_pid;
static int fake_port;
static char fake_log[256];

static const char *src_dir(void) {
  return getenv("RT_SOURCE_DIR") ? getenv("RT_SOURCE_DIR") : RT_SOURCE_DIR;
}

/* Starts the fake with rules (a JSON array as text). */
static int fake_start(const char *rules, const char *flag) {
  static int seq;
  char script[256], portfile[256], bin[512];
  seq++;
  snprintf(script, sizeof script, "%s/rules%d.json", tmpdir, seq);
  snprintf(portfile, sizeof portfile, "%s/port%d", tmpdir, seq);
  snprintf(fake_log, sizeof fake_log, "%s/log%d.jsonl", tmpdir, seq);
  snprintf(bin, sizeof bin, "%s/tests/fakes/fake_openai.py", src_dir());
  FILE *f = fopen(script, "w");
  fputs(rules, f);
  fclose(f);
  char *argv[] = {"python3", bin, "--script", script, "--port-file", portfile, "--log", fake_log,
                  "--max-seconds", "120", "--api-key", "sk-test-SECRET-4242",
                  (char *)flag, NULL};
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  int rc = posix_spawnp(&fake_pid, "python3", &fa, NULL, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) return -1;
  for (int i = 0; i < 200; i++) {
    FILE *pf = fopen(portfile, "r");
    if (pf) {
      int ok = fscanf(pf, "%d", &fake_port) == 1;
      fclose(pf);
      if (ok) return 0;
    }
    usleep(20000);
  }
  return -1;
}

static void fake_stop(void) {
  if (fake_pid > 0) {
    kill(fake_pid, SIGTERM);
    waitpid(fake_pid, NULL, 0);
  }
  fake_pid = 0;
}

/* The fake's log: one request per line. */
static json_t *fake_requests(void) {
  json_t *a = json_array();
  FILE *f = fopen(fake_log, "r");
  char line[1 << 16];
  while (f && fgets(line, sizeof line, f)) json_array_append_new(a, json_loads(line, 0, NULL));
  if (f) fclose(f);
  return a;
}

/* ---- the provider on a loop ---- */

static char g_problem[512];
static int g_health_calls;

static void set_health(void *host, const char *name, const char *problem) {
  g_health_calls++;
  snprintf(g_problem, sizeof g_problem, "%s", problem ? problem : "");
}

static int started;
static void on_started(void *ud, int status, const char *err) { started = status == RT_OK ? 1 : -1; }

/* The /metrics exporter the plugin hands the host (plugin.h set_metrics). */
static void (*g_metrics)(void *ud, rt_buf *out);
static void *g_metrics_ud;
static void set_metrics(void *host, const char *name, void (*write)(void *ud, rt_buf *out), void *ud) {
  (void)host;
  (void)name;
  g_metrics = write;
  g_metrics_ud = ud;
}

/* The value of one series line ("name{labels}") in the exported block, -1
 * when it is not there. */
static double metric(const char *series) {
  if (!g_metrics) return -1;
  rt_buf b = RT_BUF_INIT;
  g_metrics(g_metrics_ud, &b);
  char key[200];
  snprintf(key, sizeof key, "\n%s ", series);
  const char *p = strstr(rt_buf_str(&b), key);
  double v = p ? strtod(p + strlen(key), NULL) : -1;
  rt_buf_free(&b);
  return v;
}

typedef struct {
  uv_loop_t loop;
  rt_plugin_env env;
  rt_http *http;
  rt_provider *p;
  json_t *conf;
} rig;

static void rig_open(rig *r, const char *extra_conf) {
  uv_loop_init(&r->loop);
  r->http = rt_http_new(&r->loop);
  char url[128];
  snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/", fake_port);
  r->conf = json_pack("{s:s,s:s,s:s,s:f,s:f,s:f,s:i,s:i,s:i}", "base_url", url, "api_key",
                      "sk-test-SECRET-4242", "model", "gpt-4o-mini", "price_per_1k_prompt", 0.5,
                      "price_per_1k_completion", 1.5, "price_per_1k_cached", 0.25, "timeout_ms",
                      3000, "deadline_ms", 8000, "backoff_ms", 50);
  if (extra_conf) {
    json_t *x = json_loads(extra_conf, 0, NULL);
    json_object_update(r->conf, x);
    json_decref(x);
  }
  memset(&r->env, 0, sizeof r->env);
  r->env.loop = &r->loop;
  r->env.name = "llm";
  r->env.conf = r->conf;
  r->env.http = r->http;
  r->env.set_health = set_health;
  r->env.set_metrics = set_metrics;
  g_metrics = NULL;
  char *err = NULL;
  CHECK_INT(rt_llm_new(r->conf, &r->p, &err), RT_OK);
  free(err);
  started = 0;
  g_problem[0] = '\0';
  r->p->start(r->p, &r->env, on_started, NULL);
  CHECK_INT(started, 1);
}

static void closed(void *ud) { *(int *)ud = 1; }

static void rig_close(rig *r) {
  int a = 0, b = 0;
  r->p->close(r->p, closed, &a);
  rt_http_close(r->http, closed, &b);
  uv_run(&r->loop, UV_RUN_DEFAULT);
  CHECK(a && b);
  CHECK_INT(uv_loop_close(&r->loop), 0);
  json_decref(r->conf);
}

typedef struct {
  int done, status;
  char error[32], detail[512];
  json_t *value;
  rt_call_usage usage;
  uint64_t at;
} answer;

static void on_done(void *ud, const rt_call_result *r) {
  answer *a = ud;
  a->done++;
  a->status = r->status;
  snprintf(a->error, sizeof a->error, "%s", r->error ? r->error : "");
  snprintf(a->detail, sizeof a->detail, "%s", r->detail ? r->detail : "");
  json_decref(a->value);
  a->value = r->value ? json_deep_copy(r->value) : NULL;
  a->usage = r->usage;
  a->usage.model = NULL;
  a->at = uv_hrtime();
}

/* One call, run to its end. */
static void call(rig *r, const char *op, const char *args_json, answer *a) {
  memset(a, 0, sizeof *a);
  json_t *args = json_loads(args_json, 0, NULL);
  CHECK(args != NULL);
  rt_call *c = NULL;
  char *err = NULL;
  int rc = r->p->call(r->p, op, args, on_done, a, &c, &err);
  json_decref(args);
  if (rc != RT_OK) {
    a->status = rc;
    snprintf(a->detail, sizeof a->detail, "%s", err ? err : "");
    free(err);
    return;
  }
  CHECK_INT(a->done, 0);
  while (!a->done) uv_run(&r->loop, UV_RUN_ONCE);
  CHECK_INT(a->done, 1);
}

static const char *sget(const json_t *o, const char *k) { return json_string_value(json_object_get(o, k)); }

/* ---- tests ---- */

T(chat_and_usage) {
  CHECK_INT(fake_start("[{\"when\":{\"user\":\"резин\"},\"content\":\"Подберём шины под вашу машину.\","
                       "\"usage\":{\"prompt_tokens\":1000,\"completion_tokens\":200,\"cached_tokens\":400}}]",
                       NULL), 0);
  char prompt[256];
  snprintf(prompt, sizeof prompt, "%s/prompt.md", tmpdir);
  FILE *f = fopen(prompt, "w");
  fputs("<!-- Пояснение для маркетолога:\n{shop} -- название. -->\n\n"
        "Ты {persona}, продавец магазина «{shop}» ({address}).<!-- и это --> {unknown} остаётся.", f);
  fclose(f);
  char extra[400];
  snprintf(extra, sizeof extra, "{\"prompt\":\"%s\"}", prompt);
  rig r;
  rig_open(&r, extra);
  answer a;
  call(&r, "chat", "{\"text\":\"да вот думаю на зимнюю резину переобуться\","
                   "\"vars\":{\"persona\":\"Виталий\",\"shop\":\"Автодом\",\"address\":\"Тула\"},"
                   "\"history\":[{\"role\":\"assistant\",\"content\":\"Нужны запчасти?\"}]}", &a);
  CHECK_INT(a.status, RT_OK);
  CHECK_STR(sget(a.value, "text"), "Подберём шины под вашу машину.");
  CHECK_INT(a.usage.tokens_in, 1000);
  CHECK_INT(a.usage.tokens_out, 200);
  /* 600 * 0.5 + 400 * 0.25 + 200 * 1.5 per 1000 = 0.7 */
  CHECK_INT(a.usage.cost_micro, 700000);
  json_t *reqs = fake_requests();
  CHECK_INT(json_array_size(reqs), 1);
  json_t *q = json_array_get(reqs, 0);
  CHECK_STR(sget(q, "path"), "/v1/chat/completions");
  CHECK_STR(sget(json_object_get(q, "headers"), "authorization"), "Bearer sk-test-SECRET-4242");
  json_t *body = json_object_get(q, "body");
  CHECK_STR(sget(body, "model"), "gpt-4o-mini");
  CHECK_INT(json_integer_value(json_object_get(body, "max_tokens")), 400);
  CHECK(json_object_get(body, "response_format") == NULL);
  json_t *msgs = json_object_get(body, "messages");
  CHECK_INT(json_array_size(msgs), 3);
  CHECK_STR(sget(json_array_get(msgs, 0), "role"), "system");
  CHECK_STR(sget(json_array_get(msgs, 0), "content"),
            "Ты Виталий, продавец магазина «Автодом» (Тула). {unknown} остаётся.");
  CHECK_STR(sget(json_array_get(msgs, 1), "role"), "assistant");
  /* hot reload: the marketer edits prompt.md, the next call uses it */
  sleep(1);
  f = fopen(prompt, "w");
  fputs("Новый текст для {shop}.", f);
  fclose(f);
  json_decref(a.value);
  call(&r, "chat", "{\"text\":\"резина\",\"vars\":{\"shop\":\"Автодом\"}}", &a);
  json_decref(reqs);
  reqs = fake_requests();
  msgs = json_object_get(json_object_get(json_array_get(reqs, 1), "body"), "messages");
  CHECK_STR(sget(json_array_get(msgs, 0), "content"), "Новый текст для Автодом.");
  json_decref(reqs);
  json_decref(a.value);
  rt_llm_stats st;
  rt_llm_get_stats(r.p, &st);
  CHECK_INT(st.tokens_cached, 800);
  CHECK(metric("shopbot_llm_tokens_total{kind=\"prompt\"}") == 2000);
  CHECK(metric("shopbot_llm_tokens_total{kind=\"completion\"}") == 400);
  CHECK(metric("shopbot_llm_tokens_total{kind=\"cached\"}") == 800);
  CHECK(metric("shopbot_llm_cost_total") == 1.4);
  rig_close(&r);
  fake_stop();
}

T(extract_strict_and_repair) {
  CHECK_INT(fake_start(
      "[{\"when\":{\"schema\":\"retention_reply\",\"retry\":true},\"json\":{\"intent\":\"later\",\"when\":\"через месяц\",\"parts\":[]}},"
      " {\"when\":{\"schema\":\"retention_reply\",\"user\":\"месяц\"},\"json\":{\"intent\":\"maybe\",\"when\":null,\"parts\":[]}},"
      " {\"when\":{\"schema\":\"retention_reply\",\"user\":\"всегда\"},\"content\":\"{\\\"intent\\\": \\\"nee\"},"
      " {\"when\":{\"schema\":\"retention_reply\",\"user\":\"забор\"},\"content\":\"```json\\n{\\\"intent\\\":\\\"need\\\",\\\"when\\\":null,\\\"parts\\\":[\\\"колодки\\\"]}\\n```\"},"
      " {\"when\":{\"schema\":\"parts_list\"},\"json\":{\"parts\":[\"колодки\",\"диски\"]},\"finish_reason\":\"length\"}]",
      NULL), 0);
  rig r;
  rig_open(&r, NULL);
  answer a;
  /* first answer breaks the enum: one repair turn shows the model its error */
  call(&r, "extract", "{\"schema\":\"retention_reply\",\"text\":\"давайте через месяц\"}", &a);
  CHECK_INT(a.status, RT_OK);
  CHECK_STR(sget(a.value, "intent"), "later");
  CHECK_STR(sget(a.value, "when"), "через месяц");
  json_t *reqs = fake_requests();
  CHECK_INT(json_array_size(reqs), 2);
  json_t *b0 = json_object_get(json_array_get(reqs, 0), "body");
  json_t *rf = json_object_get(b0, "response_format");
  CHECK_STR(sget(rf, "type"), "json_schema");
  CHECK_STR(sget(json_object_get(rf, "json_schema"), "name"), "retention_reply");
  CHECK(json_is_true(json_object_get(json_object_get(rf, "json_schema"), "strict")));
  json_t *m1 = json_object_get(json_object_get(json_array_get(reqs, 1), "body"), "messages");
  CHECK_STR(sget(json_array_get(m1, json_array_size(m1) - 2), "role"), "assistant");
  const char *fix = sget(json_array_get(m1, json_array_size(m1) - 1), "content");
  CHECK(fix && strstr(fix, "$.intent"));
  json_decref(reqs);
  json_decref(a.value);
  /* truncated JSON, and after the repair turn still: a clean failure */
  call(&r, "extract", "{\"schema\":\"retention_reply\",\"text\":\"как всегда\"}", &a);
  CHECK_INT(a.status, RT_OK); /* the repair turn matched the retry rule */
  json_decref(a.value);
  /* fences are dropped */
  call(&r, "extract", "{\"schema\":\"retention_reply\",\"text\":\"забор\"}", &a);
  CHECK_INT(a.status, RT_OK);
  CHECK_STR(json_string_value(json_array_get(json_object_get(a.value, "parts"), 0)), "колодки");
  json_decref(a.value);
  /* finish_reason length twice: invalid, never fed to the flow */
  call(&r, "extract", "{\"schema\":\"parts_list\",\"text\":\"колодки и диски\"}", &a);
  CHECK(a.status != RT_OK);
  CHECK_STR(a.error, "invalid");
  CHECK(a.value == NULL);
  CHECK(a.usage.tokens_in > 0);  /* a failed call's tokens are paid too */
  /* bad calls */
  call(&r, "extract", "{\"schema\":\"../shop\",\"text\":\"x\"}", &a);
  CHECK_INT(a.status, RT_EINVAL);
  call(&r, "extract", "{\"schema\":\"no_such\",\"text\":\"x\"}", &a);
  CHECK_INT(a.status, RT_EINVAL);
  CHECK(strstr(a.detail, "no schema") != NULL);
  call(&r, "summarise", "{\"text\":\"x\"}", &a);
  CHECK_INT(a.status, RT_EINVAL);
  call(&r, "chat", "{}", &a);
  CHECK_INT(a.status, RT_EINVAL);
  rig_close(&r);
  fake_stop();
}

T(json_object_fallback) {
  CHECK_INT(fake_start("[{\"when\":{\"format\":\"json_object\"},"
                       "\"json\":{\"kind\":\"part\",\"vin\":null,\"part_name\":\"суппорт\",\"confidence\":0.7}}]",
                       "--no-json-schema"), 0);
  rig r;
  rig_open(&r, NULL);
  answer a;
  for (int i = 0; i < 2; i++) {
    call(&r, "extract", "{\"schema\":\"photo_triage\",\"text\":\"что это за деталь?\"}", &a);
    CHECK_INT(a.status, RT_OK);
    CHECK_STR(sget(a.value, "part_name"), "суппорт");
    json_decref(a.value);
  }
  json_t *reqs = fake_requests();
  /* json_schema refused once, then JSON mode from the first call on */
  CHECK_INT(json_array_size(reqs), 3);
  CHECK_INT(json_integer_value(json_object_get(json_array_get(reqs, 0), "status")), 400);
  json_t *b = json_object_get(json_array_get(reqs, 2), "body");
  CHECK_STR(sget(json_object_get(b, "response_format"), "type"), "json_object");
  const char *sys = sget(json_array_get(json_object_get(b, "messages"), 0), "content");
  CHECK(sys && strstr(sys, "JSON Schema:"));
  json_decref(reqs);
  rig_close(&r);
  fake_stop();
}

T(image_parts) {
  char img[256];
  snprintf(img, sizeof img, "%s/part.jpg", tmpdir);
  char cmd[512];
  snprintf(cmd, sizeof cmd, "convert -size 3000x2000 xc:'#8899aa' -fill black -pointsize 200 "
                            "-annotate +100+600 'BOSCH' %s", img);
  CHECK_INT(system(cmd), 0);
  CHECK_INT(fake_start("[{\"when\":{\"image\":true,\"schema\":\"photo_triage\"},"
                       "\"json\":{\"kind\":\"part\",\"vin\":null,\"part_name\":\"колодки тормозные\",\"confidence\":0.9}}]",
                       NULL), 0);
  rig r;
  rig_open(&r, NULL);
  answer a;
  char args[600];
  snprintf(args, sizeof args, "{\"schema\":\"photo_triage\",\"text\":\"Что на фото?\",\"images\":[{\"id\":\"p1\",\"path\":\"%s\"}]}", img);
  call(&r, "extract", args, &a);
  CHECK_INT(a.status, RT_OK);
  CHECK_STR(sget(a.value, "part_name"), "колодки тормозные");
  json_decref(a.value);
  json_t *reqs = fake_requests();
  json_t *msgs = json_object_get(json_object_get(json_array_get(reqs, 0), "body"), "messages");
  json_t *parts = json_object_get(json_array_get(msgs, json_array_size(msgs) - 1), "content");
  json_t *iu = json_object_get(json_array_get(parts, 1), "image_url");
  const char *url = sget(iu, "url");
  CHECK(url && strncmp(url, "data:image/jpeg;base64,/9j/", 27) == 0);
  CHECK_STR(sget(iu, "detail"), "low");
  /* downscaled: 3000x2000 to 1568 on the long side is well under 300 KB */
  CHECK(url && strlen(url) < 400000);
  json_decref(reqs);
  snprintf(args, sizeof args, "{\"schema\":\"photo_triage\",\"text\":\"x\",\"images\":[\"text:/etc/passwd\"]}");
  call(&r, "extract", args, &a);
  CHECK_INT(a.status, RT_EINVAL);
  rig_close(&r);
  fake_stop();
}

T(price_claim_guard) {
  CHECK_INT(fake_start("[{\"content\":\"Колодки стоят 2 500 ₽, есть в наличии.\"}]", NULL), 0);
  rig r;
  rig_open(&r, NULL);
  CHECK(rt_llm_claim(r.p, "Колодки стоят 2500 руб.", NULL) != NULL);
  CHECK(rt_llm_claim(r.p, "Цена — 1200", NULL) != NULL);
  CHECK(rt_llm_claim(r.p, "Да, это есть в наличии", NULL) != NULL);
  CHECK(rt_llm_claim(r.p, "Доставим завтра к обеду", NULL) != NULL);
  CHECK(rt_llm_claim(r.p, "Отправим через 3 дня", NULL) != NULL);
  CHECK(rt_llm_claim(r.p, "Менеджер подскажет цену и срок.", NULL) == NULL);
  CHECK(rt_llm_claim(r.p, "VIN XW8ZZZ61ZKG000000 записал, 2019 год.", NULL) == NULL);
  json_t *facts = json_pack("{s:s}", "price", "2500 ₽");
  CHECK(rt_llm_claim(r.p, "Колодки стоят 2 500 ₽", facts) == NULL);
  CHECK(rt_llm_claim(r.p, "Колодки стоят 3000 ₽", facts) != NULL);
  json_decref(facts);
  answer a;
  /* the model insists on a price: the repair turn, then refused */
  call(&r, "chat", "{\"text\":\"сколько стоят колодки?\"}", &a);
  CHECK(a.status != RT_OK);
  CHECK_STR(a.error, "refused");
  CHECK(strstr(a.detail, "price") != NULL);
  json_t *reqs = fake_requests();
  CHECK_INT(json_array_size(reqs), 2);
  json_decref(reqs);
  /* the flow supplied the price and the stock: the same words pass */
  call(&r, "chat", "{\"text\":\"сколько стоят колодки?\",\"facts\":{\"price\":\"2500 ₽\",\"stock\":\"есть\"}}", &a);
  CHECK_INT(a.status, RT_OK);
  json_decref(a.value);
  rig_close(&r);
  fake_stop();
}

/* The words the bot writes to the model itself and the guard's patterns
 * are the shop's (llm.texts, llm.guard): overridden here in English, the
 * requests carry them; a guard set to "" is off; a bad pattern is refused
 * with its key. */
T(texts_and_guard_are_the_shops) {
  CHECK_INT(fake_start("[{\"when\":{\"schema\":\"parts_list\",\"retry\":true},\"json\":{\"parts\":[\"pads\"]}},"
                       " {\"when\":{\"schema\":\"parts_list\"},\"json\":{\"parts\":7}},"
                       " {\"content\":\"Pads cost 2500 dollars, we ship them on friday.\"}]", NULL), 0);
  rig r;
  rig_open(&r, "{\"texts\":{\"facts\":\"Facts you may tell:\",\"extract\":\"Read the message; answer {schema} JSON. {nope}\","
                "\"repair_extract\":\"Wrong: {problem}. Again as {schema}.\",\"repair_chat\":\"Not allowed: {problem}.\","
                "\"claimed\":\"you named {what}\",\"price\":\"a price\"},"
                "\"guard\":{\"price\":\"\\\\d+ dollars\",\"stock\":\"\",\"delivery\":\"\"}}");
  answer a;
  call(&r, "extract", "{\"schema\":\"parts_list\",\"text\":\"pads please\"}", &a);
  CHECK_INT(a.status, RT_OK);
  json_decref(a.value);
  json_t *reqs = fake_requests();
  CHECK_INT(json_array_size(reqs), 2);
  json_t *m = json_object_get(json_object_get(json_array_get(reqs, 0), "body"), "messages");
  const char *sys = sget(json_array_get(m, 0), "content");
  CHECK(sys && strncmp(sys, "Read the message; answer parts_list JSON. {nope}", 48) == 0);
  m = json_object_get(json_object_get(json_array_get(reqs, 1), "body"), "messages");
  const char *fix = sget(json_array_get(m, json_array_size(m) - 1), "content");
  CHECK(fix && strncmp(fix, "Wrong: ", 7) == 0 && strstr(fix, ". Again as parts_list."));
  json_decref(reqs);
  /* the shop's price pattern catches its own currency; stock and delivery are off */
  CHECK(rt_llm_claim(r.p, "pads cost 2500 dollars", NULL) != NULL);
  CHECK(rt_llm_claim(r.p, "Колодки стоят 2500 руб.", NULL) == NULL);
  CHECK(rt_llm_claim(r.p, "Да, это есть в наличии", NULL) == NULL);
  CHECK(rt_llm_claim(r.p, "Доставим завтра к обеду", NULL) == NULL);
  call(&r, "chat", "{\"text\":\"how much?\",\"facts\":{\"stock\":\"yes\"}}", &a);
  CHECK_STR(a.error, "refused");
  reqs = fake_requests();
  m = json_object_get(json_object_get(json_array_get(reqs, 2), "body"), "messages");
  sys = sget(json_array_get(m, 0), "content");
  CHECK(sys && strstr(sys, "\n\nFacts you may tell:\n- stock: yes\n"));
  m = json_object_get(json_object_get(json_array_get(reqs, 3), "body"), "messages");
  CHECK_STR(sget(json_array_get(m, json_array_size(m) - 1), "content"), "Not allowed: you named a price.");
  json_decref(reqs);
  rig_close(&r);
  fake_stop();
  /* a pattern that does not compile: refused at start, with its key */
  json_t *bad = json_pack("{s:s,s:{s:s}}", "base_url", "http://127.0.0.1:9/v1", "guard", "price", "(unclosed");
  rt_provider *p = NULL;
  char *err = NULL;
  CHECK(rt_llm_new(bad, &p, &err) == RT_EINVAL);
  CHECK(err && strncmp(err, "llm.guard.price: not a valid regular expression: ", 49) == 0);
  free(err);
  json_decref(bad);
}

T(rate_limits_and_errors) {
  CHECK_INT(fake_start(
      "[{\"when\":{\"user\":\"^limit\"},\"times\":1,\"status\":429,\"headers\":{\"Retry-After\":\"1\"},"
      "  \"error\":{\"error\":{\"message\":\"Rate limit reached for gpt-4o-mini. Please try again in 1s.\",\"type\":\"requests\",\"param\":null,\"code\":\"rate_limit_exceeded\"}}},"
      " {\"when\":{\"user\":\"^quota\"},\"status\":429,"
      "  \"error\":{\"error\":{\"message\":\"You exceeded your current quota, please check your plan and billing details.\",\"type\":\"insufficient_quota\",\"param\":null,\"code\":\"insufficient_quota\"}}},"
      " {\"when\":{\"user\":\"^garbage\"},\"times\":1,\"garbage\":true},"
      " {\"when\":{\"user\":\"^trunc\"},\"times\":1,\"truncate\":40},"
      " {\"when\":{\"user\":\"^hang\"},\"hang\":true,\"hang_s\":5},"
      " {\"when\":{\"user\":\"^slow\"},\"delay_ms\":2500},"
      " {\"when\":{\"user\":\"^bad\"},\"status\":400,\"error\":{\"error\":{\"message\":\"This model's maximum context length is 128000 tokens.\",\"type\":\"invalid_request_error\",\"param\":\"messages\",\"code\":\"context_length_exceeded\"}}},"
      " {\"content\":\"ок\"}]",
      NULL), 0);
  rig r;
  rig_open(&r, "{\"breaker_failures\":50}");
  answer a;
  uint64_t t0 = uv_hrtime();
  call(&r, "chat", "{\"text\":\"limit\"}", &a);
  double ms = (double)(uv_hrtime() - t0) / 1e6;
  CHECK_INT(a.status, RT_OK);
  CHECK(ms >= 950);  /* Retry-After: 1 honoured */
  json_decref(a.value);
  call(&r, "chat", "{\"text\":\"quota\"}", &a);
  CHECK_STR(a.error, "limit");
  call(&r, "chat", "{\"text\":\"garbage\"}", &a);
  CHECK_INT(a.status, RT_OK);  /* retried */
  json_decref(a.value);
  call(&r, "chat", "{\"text\":\"trunc\"}", &a);
  CHECK_INT(a.status, RT_OK);
  json_decref(a.value);
  call(&r, "chat", "{\"text\":\"bad\"}", &a);
  CHECK_STR(a.error, "bad_request");
  CHECK(strstr(a.detail, "context length") != NULL);
  rig_close(&r);
  /* timeouts: per attempt 400 ms, the whole call 1000 ms */
  rig_open(&r, "{\"timeout_ms\":400,\"deadline_ms\":1000,\"breaker_failures\":50}");
  t0 = uv_hrtime();
  call(&r, "chat", "{\"text\":\"hang\"}", &a);
  ms = (double)(uv_hrtime() - t0) / 1e6;
  CHECK_STR(a.error, "timeout");
  CHECK(ms < 1500);
  call(&r, "chat", "{\"text\":\"slow\"}", &a);
  CHECK_STR(a.error, "timeout");
  rig_close(&r);
  json_t *reqs = fake_requests();
  int quota = 0;
  size_t i;
  json_t *q;
  json_array_foreach(reqs, i, q) {
    const char *u = sget(json_array_get(json_object_get(json_object_get(q, "body"), "messages"), 1), "content");
    (void)u;
    json_t *parts = json_object_get(json_array_get(json_object_get(json_object_get(q, "body"), "messages"), 1), "content");
    const char *t = sget(json_array_get(parts, 0), "text");
    if (t && strcmp(t, "quota") == 0) quota++;
  }
  CHECK_INT(quota, 1);  /* insufficient_quota is never retried */
  json_decref(reqs);
  fake_stop();
}

T(key_never_shown) {
  CHECK_INT(fake_start("[]", NULL), 0);
  rig r;
  rig_open(&r, "{\"api_key\":\"sk-wrong-key-777\"}");
  answer a;
  call(&r, "chat", "{\"text\":\"привет\"}", &a);
  CHECK_STR(a.error, "unavailable");
  CHECK(strstr(a.detail, "401") != NULL);
  CHECK(strstr(a.detail, "sk-") == NULL);
  CHECK(strstr(g_problem, "api_key") != NULL);
  CHECK(strstr(g_problem, "sk-") == NULL);
  rig_close(&r);
  fake_stop();
}

/* The server fails every attempt: after breaker_failures the breaker opens,
 * health says so, calls fail at once without a request; once the server
 * is back, the probe after breaker_open_ms closes it. */
T(breaker) {
  CHECK_INT(fake_start("[{\"when\":{\"user\":\"down\"},\"status\":500,\"error\":{\"error\":{\"message\":\"The server had an error while processing your request. Sorry about that!\",\"type\":\"server_error\",\"param\":null,\"code\":null}}},"
                       " {\"content\":\"снова работаю\"}]", NULL), 0);
  rig r;
  rig_open(&r, "{\"breaker_failures\":3,\"breaker_open_ms\":400,\"retries\":2}");
  answer a;
  CHECK(g_metrics != NULL);
  CHECK(metric("shopbot_llm_breaker_open") == 0);
  call(&r, "chat", "{\"text\":\"down\"}", &a);
  CHECK_STR(a.error, "unavailable");
  CHECK(strstr(g_problem, "the LLM server fails") != NULL);
  /* /metrics: the failed call, its error, its three attempts, the breaker */
  CHECK(metric("shopbot_llm_calls_total{result=\"failed\"}") == 1);
  CHECK(metric("shopbot_llm_errors_total{error=\"unavailable\"}") == 1);
  CHECK(metric("shopbot_llm_errors_total{error=\"timeout\"}") == 0);
  CHECK(metric("shopbot_llm_attempts_total") == 3);
  CHECK(metric("shopbot_llm_breaker_open") == 1);
  CHECK(metric("shopbot_llm_call_seconds_count") == 1);
  json_t *reqs = fake_requests();
  size_t before = json_array_size(reqs);
  CHECK_INT(before, 3);
  json_decref(reqs);
  uint64_t t0 = uv_hrtime();
  call(&r, "chat", "{\"text\":\"up\"}", &a);
  CHECK_STR(a.error, "unavailable");
  CHECK(strstr(a.detail, "circuit open") != NULL);
  CHECK((double)(uv_hrtime() - t0) / 1e6 < 50);
  reqs = fake_requests();
  CHECK_INT(json_array_size(reqs), before);  /* nothing was sent */
  json_decref(reqs);
  usleep(450 * 1000);
  uv_update_time(&r.loop);
  call(&r, "chat", "{\"text\":\"up\"}", &a);
  CHECK_INT(a.status, RT_OK);
  CHECK_STR(g_problem, "");
  CHECK(metric("shopbot_llm_breaker_open") == 0);
  CHECK(metric("shopbot_llm_calls_total{result=\"ok\"}") == 1);
  CHECK(metric("shopbot_llm_fast_failed_total") == 1);
  CHECK(metric("shopbot_llm_call_seconds_count") == 3);
  CHECK(metric("shopbot_llm_call_seconds_bucket{le=\"+Inf\"}") == 3);
  CHECK(metric("shopbot_llm_call_seconds_bucket{le=\"0.1\"}") >= 1);   /* the fast failure */
  json_decref(a.value);
  rig_close(&r);
  fake_stop();
}

T(cancel) {
  CHECK_INT(fake_start("[{\"delay_ms\":1500,\"content\":\"поздно\"}]", NULL), 0);
  rig r;
  rig_open(&r, NULL);
  answer a = {0};
  json_t *args = json_pack("{s:s}", "text", "x");
  rt_call *c = NULL;
  char *err = NULL;
  CHECK_INT(r.p->call(r.p, "chat", args, on_done, &a, &c, &err), RT_OK);
  for (int i = 0; i < 5; i++) uv_run(&r.loop, UV_RUN_NOWAIT);
  r.p->cancel(r.p, c);
  json_decref(args);
  rig_close(&r);
  CHECK_INT(a.done, 0);
  fake_stop();
}

/* 500 calls in flight against a server that answers each in 1 s, while a
 * 10 ms timer on the same loop keeps its beat: the other conversations'
 * work is not held up by the waiting calls. */
static uint64_t tick_last, tick_worst;
static int ticks;
static void on_tick(uv_timer_t *t) {
  uint64_t now = uv_hrtime();
  if (tick_last && now - tick_last > tick_worst) tick_worst = now - tick_last;
  tick_last = now;
  ticks++;
}

T(five_hundred_in_flight) {
  CHECK_INT(fake_start("[{\"delay_ms\":1000,\"content\":\"ок\",\"usage\":{\"prompt_tokens\":10,\"completion_tokens\":1}}]", NULL), 0);
  rig r;
  rig_open(&r, "{\"timeout_ms\":20000,\"deadline_ms\":30000}");
  enum { N = 500 };
  answer *a = calloc(N, sizeof *a);
  json_t *args = json_pack("{s:s}", "text", "x");
  for (int i = 0; i < N; i++) {
    rt_call *c = NULL;
    char *err = NULL;
    CHECK_INT(r.p->call(r.p, "chat", args, on_done, &a[i], &c, &err), RT_OK);
  }
  json_decref(args);
  uv_timer_t tick;
  uv_timer_init(&r.loop, &tick);
  uv_timer_start(&tick, on_tick, 10, 10);
  int left = N;
  while (left > 0) {
    uv_run(&r.loop, UV_RUN_ONCE);
    left = 0;
    for (int i = 0; i < N; i++) left += !a[i].done;
  }
  uv_timer_stop(&tick);
  uv_close((uv_handle_t *)&tick, NULL);
  int ok = 0;
  for (int i = 0; i < N; i++) {
    ok += a[i].status == RT_OK;
    json_decref(a[i].value);
  }
  rt_llm_stats st;
  rt_llm_get_stats(r.p, &st);
  printf("llm.in_flight: %zu at once, %d/%d ok, worst loop gap %.1f ms\n", st.max_in_flight_seen,
         ok, N, (double)tick_worst / 1e6);
  CHECK_INT(st.max_in_flight_seen, N);
  CHECK(metric("shopbot_llm_in_flight_max") == N);
  CHECK(metric("shopbot_llm_in_flight") == 0);
  CHECK_INT(ok, N);
  /* Under valgrind the gap is valgrind's own slowness, not the loop's. */
  if (!RUNNING_ON_VALGRIND) CHECK((double)tick_worst / 1e6 < 500);
  free(a);
  rig_close(&r);
  fake_stop();
}

int main(void) {
  if (!mkdtemp(tmpdir)) return 2;
  srand(1);
  T_RUN(chat_and_usage);
  T_RUN(extract_strict_and_repair);
  T_RUN(json_object_fallback);
  T_RUN(image_parts);
  T_RUN(price_claim_guard);
  T_RUN(texts_and_guard_are_the_shops);
  T_RUN(rate_limits_and_errors);
  T_RUN(key_never_shown);
  T_RUN(breaker);
  T_RUN(cancel);
  T_RUN(five_hundred_in_flight);
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
  if (system(cmd) != 0) return 2;
  return T_DONE();
}
