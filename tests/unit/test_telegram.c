/* test_telegram.c -- the Telegram channel against the fake Bot API
 * (tests/fakes/fake_telegram.py, spawned with python3), with a host of the
 * test's own: receive records events and acks them only when the test says
 * so, kv is a JSON object, health is remembered. Checks the offset moving
 * only after the commit, redelivery after a restart, normalisation of real
 * update shapes, photo downloads, sends (split, buttons, photos), every
 * error verdict, migration, 409/401, the webhook's secret, and that the token
 * never reaches a log line. */
#include "t.h"
#include "buf.h"
#include "http_client.h"
#include "http_server.h"
#include "log.h"
#include "telegram/telegram.h"
#include "telegram/tgupd.h"
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#define TOKEN "123456:TEST-token_abcdef"
#define SECRET_PART "TEST-token_abcdef"

static uv_loop_t loop;
static rt_http *http;
static pid_t fake_pid;
static int fake_port;
static char api_base[64];
static char data_dir[256];

/* ---- the test's host ---- */

typedef struct {
  void (*ack)(void *, int);
  void *ud;
  int status;
} pending_ack;

static json_t *events;        /* every event received, in order */
static json_t *seen;          /* ext_id -> true: the host's dedup */
static json_t *kv;
static pending_ack acks[4096];
static size_t nacks;
static bool auto_ack;
static char health_msg[512];
static int health_calls;

static int h_receive(void *host, const rt_event_in *ev, void (*ack)(void *, int), void *ud) {
  (void)host;
  if (!ev->chat_id || !*ev->chat_id) return RT_EINVAL;
  bool dup = json_object_get(seen, ev->ext_id) != NULL;
  if (!dup) {
    json_object_set_new(seen, ev->ext_id, json_true());
    json_t *e = json_pack("{s:s, s:s, s:s, s:s?, s:s, s:s?, s:s?}", "channel", ev->channel,
                          "ext_id", ev->ext_id, "chat", ev->chat_id, "user", ev->user_id,
                          "kind", ev->kind, "text", ev->text, "name", ev->name);
    if (ev->extra_json) json_object_set_new(e, "extra", json_loads(ev->extra_json, 0, NULL));
    json_array_append_new(events, e);
  }
  /* answered when the test commits (or on the next turn with auto_ack);
   * a duplicate is answered 1, as the host does */
  if (ack) acks[nacks++] = (pending_ack){ack, ud, dup ? 1 : RT_OK};
  return RT_OK;
}

static void ack_all(int status) {
  size_t n = nacks;
  pending_ack copy[4096];
  memcpy(copy, acks, n * sizeof *copy);
  nacks = 0;
  for (size_t i = 0; i < n; i++) copy[i].ack(copy[i].ud, copy[i].status ? copy[i].status : status);
}

static char *h_kv_get(void *host, const char *name, const char *key) {
  (void)host; (void)name;
  const char *v = json_string_value(json_object_get(kv, key));
  return v ? strdup(v) : NULL;
}

static int h_kv_set(void *host, const char *name, const char *key, const char *val) {
  (void)host; (void)name;
  if (val) json_object_set_new(kv, key, json_string(val));
  else json_object_del(kv, key);
  return RT_OK;
}

static void h_health(void *host, const char *name, const char *problem) {
  (void)host; (void)name;
  health_calls++;
  snprintf(health_msg, sizeof health_msg, "%s", problem ? problem : "");
}

static int64_t h_now(void *host) {
  (void)host;
  return (int64_t)uv_now(&loop);
}

static rt_plugin_env env;

static void env_init(rt_httpd *httpd) {
  env = (rt_plugin_env){.loop = &loop, .name = "telegram", .http = http, .httpd = httpd,
                        .data_dir = data_dir, .now_ms = h_now, .receive = h_receive,
                        .kv_get = h_kv_get, .kv_set = h_kv_set, .set_health = h_health};
}

/* ---- running the loop ---- */

static void tick_cb(uv_timer_t *t) { (void)t; }

/* Runs the loop until cond() or ms pass; acks automatically when auto_ack. */
static bool run_until(bool (*cond)(void), int ms) {
  uv_timer_t tick;
  uv_timer_init(&loop, &tick);
  uv_timer_start(&tick, tick_cb, 5, 5);
  uint64_t end = uv_now(&loop) + (uint64_t)ms;
  bool ok = false;
  while (uv_now(&loop) < end) {
    if (auto_ack && nacks) ack_all(RT_OK);
    if (cond && cond()) { ok = true; break; }
    uv_run(&loop, UV_RUN_ONCE);
  }
  uv_close((uv_handle_t *)&tick, NULL);
  uv_run(&loop, UV_RUN_NOWAIT);
  return ok;
}

static void run_ms(int ms) { run_until(NULL, ms); }

/* ---- the fake's control endpoints ---- */

typedef struct { bool done; json_t *j; int status; } ctl_res;

static void ctl_cb(rt_http_resp *r, void *ud) {
  ctl_res *c = ud;
  c->status = r->status;
  c->j = json_loadb(r->body, r->body_len, 0, NULL);
  c->done = true;
}

static ctl_res *cur_ctl;
static bool ctl_done(void) { return cur_ctl->done; }

static json_t *ctl(const char *path, json_t *body) {
  char url[128];
  snprintf(url, sizeof url, "http://127.0.0.1:%d%s", fake_port, path);
  char *b = body ? json_dumps(body, JSON_COMPACT) : strdup("{}");
  json_decref(body);
  static const char *const hdr[] = {"Content-Type: application/json", NULL};
  rt_http_opts o = {.method = "POST", .url = url, .body = b, .body_len = strlen(b),
                    .headers = hdr, .timeout_ms = 10000};
  ctl_res c = {0};
  rt_http_request(http, &o, ctl_cb, &c, NULL);
  free(b);
  cur_ctl = &c;
  bool saved = auto_ack;
  auto_ack = false;
  run_until(ctl_done, 10000);
  auto_ack = saved;
  return c.j;
}

static void ctl0(const char *path, json_t *body) { json_decref(ctl(path, body)); }

static json_t *state(void) { return ctl("/_/state", NULL); }

static int64_t push(json_t *body) {
  json_t *r = ctl("/_/push", body);
  int64_t id = json_integer_value(json_object_get(r, "update_id"));
  json_decref(r);
  return id;
}

static bool start_fake(void) {
  const char *src = getenv("RT_SOURCE_DIR");
  char script[512];
  snprintf(script, sizeof script, "%s/tests/fakes/fake_telegram.py", src ? src : RT_SOURCE_DIR);
  char portfile[300];
  snprintf(portfile, sizeof portfile, "%s/port", data_dir);
  char *argv[] = {"python3", script, "--token", TOKEN, "--port-file", portfile, NULL};
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  int rc = posix_spawnp(&fake_pid, "python3", &fa, NULL, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) return false;
  for (int i = 0; i < 200; i++) {
    FILE *f = fopen(portfile, "r");
    if (f) {
      int ok = fscanf(f, "%d", &fake_port);
      fclose(f);
      if (ok == 1) {
        snprintf(api_base, sizeof api_base, "http://127.0.0.1:%d", fake_port);
        return true;
      }
    }
    usleep(50000);
  }
  return false;
}

/* ---- the channel under test ---- */

static rt_channel *ch;
static bool closed_flag;
static void started(void *ud, int st, const char *err) {
  (void)ud;
  if (st != RT_OK) fprintf(stderr, "  start failed: %s\n", err ? err : "?");
}
static void closed(void *ud) { (void)ud; closed_flag = true; }
static bool is_closed(void) { return closed_flag; }

static rt_channel *open_channel(json_t *conf, rt_httpd *httpd) {
  char *err = NULL;
  rt_channel *c = NULL;
  if (rt_telegram_new(conf, &c, &err) != RT_OK) {
    fprintf(stderr, "  create: %s\n", err);
    free(err);
    json_decref(conf);
    return NULL;
  }
  json_decref(conf);
  env_init(httpd);
  c->start(c, &env, started, NULL);
  return c;
}

static void close_channel(rt_channel *c) {
  closed_flag = false;
  c->close(c, closed, NULL);
  run_until(is_closed, 5000);
}

static json_t *conf_poll(void) {
  return json_pack("{s:s, s:s, s:i}", "token", TOKEN, "api_base", api_base, "poll_timeout_s", 2);
}

static size_t want_events;
static bool have_events(void) { return json_array_size(events) >= want_events; }

static json_t *ev_at(size_t i) { return json_array_get(events, i); }
static const char *ev_s(size_t i, const char *k) {
  return json_string_value(json_object_get(ev_at(i), k));
}
static json_t *ev_x(size_t i, const char *k) {
  return json_object_get(json_object_get(ev_at(i), "extra"), k);
}

static void reset_host(void) {
  /* seen stays: like the inbox, the host remembers every update it took */
  json_array_clear(events);
  nacks = 0;
  health_msg[0] = '\0';
  health_calls = 0;
}

/* ---- sends ---- */

typedef struct { bool done; rt_send_result r; char text[512]; } send_res;
static send_res *cur_send;
static void send_cb(void *ud, const rt_send_result *r) {
  send_res *s = ud;
  s->r = *r;
  snprintf(s->text, sizeof s->text, "%s", r->text ? r->text : "");
  s->r.text = s->text;
  s->done = true;
}
static bool send_done(void) { return cur_send->done; }

static send_res do_send(const char *chat, const char *text, const char *const *buttons,
                        size_t nb, const char *media, const char *about, int64_t row) {
  rt_out_msg m = {.id = row, .chat_id = chat, .idem_key = "k", .about = about,
                  .kind = media ? RT_MSG_MEDIA : nb ? RT_MSG_BUTTONS : RT_MSG_TEXT,
                  .text = text, .buttons = buttons, .nbuttons = nb, .media_ref = media,
                  .media_kind = media ? "photo" : NULL};
  send_res s = {0};
  cur_send = &s;
  ch->send(ch, &m, send_cb, &s);
  run_until(send_done, 15000);
  return s;
}

static json_t *sent_list(void) { return ctl("/_/sent", NULL); }

/* tgupd reads private text messages itself and leaves the rest to jansson;
 * whatever jansson would refuse or read otherwise makes it give up. */
T(updates_reader) {
  rt_tgupd_batch b = {0};
  const char *doc =
      "{\"ok\":true,\"result\":["
      "{\"update_id\":7,\"message\":{\"message_id\":3,\"from\":{\"id\":42,\"is_bot\":false,"
      "\"first_name\":\"\\u0418\\u0432\\u0430\\u043d\",\"last_name\":\"Петров\",\"username\":\"ivan\"},"
      "\"chat\":{\"id\":42,\"type\":\"private\",\"first_name\":\"Иван\"},\"date\":1,"
      "\"text\":\"/start ad_1 \\ud83d\\ude97\",\"entities\":[{\"offset\":0,\"length\":6,"
      "\"type\":\"bot_command\"}],\"link_preview_options\":{\"is_disabled\":true}}},"
      "{\"update_id\":8,\"message\":{\"message_id\":4,\"from\":{\"id\":42,\"is_bot\":false},"
      "\"chat\":{\"id\":42,\"type\":\"private\"},\"photo\":[{\"file_id\":\"x\",\"width\":1.5e2}]}},"
      "{\"update_id\":9,\"message\":{\"message_id\":5,\"from\":{\"id\":5,\"is_bot\":true},"
      "\"chat\":{\"id\":5,\"type\":\"private\"},\"text\":\"hi\"}},"
      "{\"update_id\":10,\"message\":{\"from\":{\"id\":1},\"chat\":{\"id\":-100,\"type\":\"group\"},"
      "\"text\":\"hi\"}},"
      "{\"update_id\":11,\"edited_message\":{\"text\":\"x\"}},"
      "{\"update_id\":12,\"message\":{\"message_id\":6,\"text\":\"a\",\"text\":\"b\","
      "\"from\":{\"id\":1},\"chat\":{\"id\":1,\"type\":\"private\"}}},"
      "{\"update_id\":\"13\"}, 5 ,"
      "{\"update_id\":-9223372036854775808,\"message\":{\"from\":{\"id\":1},"
      "\"chat\":{\"id\":1,\"type\":\"private\"},\"text\":\"\"}}"
      "] }\n";
  CHECK_INT(rt_tgupd_read(doc, strlen(doc), &b), 0);
  CHECK_INT(b.n, 9);
  if (b.n == 9) {
    rt_tgupd *u = &b.u[0];
    CHECK(u->fast && u->has_id);
    CHECK_INT(u->update_id, 7);
    CHECK_INT(u->chat_id, 42);
    CHECK_INT(u->from_id, 42);
    CHECK_INT(u->message_id, 3);
    CHECK_STR(u->first_name, "Иван");
    CHECK_STR(u->last_name, "Петров");
    CHECK_STR(u->username, "ivan");
    CHECK_STR(u->text, "/start ad_1 🚗");
    CHECK(u->media_group_id == NULL);
    /* the update's own text, for jansson when it is not fast */
    json_t *j = json_loadb(b.u[1].start, b.u[1].len, 0, NULL);
    CHECK(j != NULL);
    CHECK_INT(json_integer_value(json_object_get(j, "update_id")), 8);
    json_decref(j);
    CHECK(!b.u[1].fast && b.u[1].has_id);   /* a photo */
    CHECK(!b.u[2].fast);                    /* from a bot */
    CHECK(!b.u[3].fast);                    /* a group */
    CHECK(!b.u[4].fast && b.u[4].has_id);   /* an edit */
    CHECK(!b.u[5].fast);                    /* a key twice: jansson keeps the last */
    CHECK(!b.u[6].has_id && !b.u[7].has_id);
    CHECK(b.u[8].fast && !b.u[8].has_message_id);
    CHECK_INT(b.u[8].update_id, INT64_MIN);
    CHECK_STR(b.u[8].text, "");
  }
  rt_tgupd_free(&b);
  /* what jansson refuses (or reads otherwise) is never read here */
  static const char *const refused[] = {
      "{\"ok\":true,\"result\":[]} x",
      "{\"ok\":true,\"result\":[{\"update_id\":1}],\"result\":[]}",
      "{\"ok\":false,\"result\":[]}",
      "{\"ok\":true}",
      "{\"ok\":true,\"result\":[{\"update_id\":9223372036854775808}]}",
      "{\"ok\":true,\"result\":[{\"update_id\":01}]}",
      "{\"ok\":true,\"result\":[{\"a\":\"\\u0000\"}]}",
      "{\"ok\":true,\"result\":[{\"a\":\"\\ud800\"}]}",
      "{\"ok\":true,\"result\":[{\"a\":\"\xff\"}]}",
      "{\"ok\":true,\"result\":[{\"a\":\"\x01\"}]}",
      "{\"ok\":true,\"result\":[{\"a\":1e999}]}",
      "{\"ok\":true,\"result\":[{\"a\":[1,]}]}",
      "{\"ok\":true,\"result\":[{\"a\":tru}]}",
      "{\"ok\":true,\"result\":[{\"update_id\":1,}]}",
      "{\"ok\":true,\"result\":[" "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["
      "]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]" "]}",
  };
  for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
    int rc = rt_tgupd_read(refused[i], strlen(refused[i]), &b);
    if (rc != -1) fprintf(stderr, "  accepted: %s\n", refused[i]);
    CHECK_INT(rc, -1);
    CHECK(b.u == NULL && b.n == 0);
  }
  const char *empty = " {\"description\":\"x\",\"result\":[ ],\"ok\":true}";
  CHECK_INT(rt_tgupd_read(empty, strlen(empty), &b), 0);
  CHECK_INT(b.n, 0);
  rt_tgupd_free(&b);
}

/* An answer jansson refuses whole is cut into its updates, each read
 * alone: the loose reader finds them (and their ids) through strings,
 * escapes and nesting, refuses an answer cut short, and the repair makes
 * what jansson refuses readable. */
T(updates_split_repair) {
  const char *doc =
      "{\"ok\":true,\"result\":["
      "{\"update_id\":1,\"message\":{\"text\":\"a \\\"}]\\\\\"}},"
      " {\"message\":{\"text\":\"\\ud800\"},\"update_id\":2} ,"
      "{\"update_id\":3,\"message\":{\"text\":\"\\u0000\",\"big\":123456789012345678901234}},"
      "{\"update_id\":4,\"x\":[1,{\"y\":\"\\x\"}]}"
      "]}\n";
  rt_tgupd_span *sp;
  size_t n;
  CHECK_INT(rt_tgupd_split(doc, strlen(doc), &sp, &n), 0);
  CHECK_INT(n, 4);
  int64_t id;
  for (size_t i = 0; i < n && n == 4; i++) {
    CHECK(rt_tgupd_id(sp[i].start, sp[i].len, &id));
    CHECK_INT(id, (int64_t)i + 1);
    CHECK(sp[i].start[0] == '{' && sp[i].start[sp[i].len - 1] == '}');
  }
  if (n == 4) {
    json_t *j = json_loadb(sp[0].start, sp[0].len, 0, NULL);
    CHECK_STR(json_string_value(json_object_get(json_object_get(j, "message"), "text")), "a \"}]\\");
    json_decref(j);
    /* a lone surrogate and \u0000: U+FFFD; a huge integer: a real */
    rt_buf b = RT_BUF_INIT;
    CHECK(json_loadb(sp[1].start, sp[1].len, 0, NULL) == NULL);
    CHECK_INT(rt_tgupd_repair(sp[1].start, sp[1].len, &b), 1);
    j = json_loadb(rt_buf_str(&b), b.len, 0, NULL);
    CHECK_STR(json_string_value(json_object_get(json_object_get(j, "message"), "text")), "\xEF\xBF\xBD");
    json_decref(j);
    rt_buf_free(&b);
    CHECK_INT(rt_tgupd_repair(sp[2].start, sp[2].len, &b), 2);
    j = json_loadb(rt_buf_str(&b), b.len, 0, NULL);
    json_t *m = json_object_get(j, "message");
    CHECK_STR(json_string_value(json_object_get(m, "text")), "\xEF\xBF\xBD");
    CHECK(json_is_real(json_object_get(m, "big")));
    CHECK_INT(json_integer_value(json_object_get(j, "update_id")), 3);
    json_decref(j);
    rt_buf_free(&b);
    /* a broken escape stays broken: the update is skipped by its id */
    CHECK_INT(rt_tgupd_repair(sp[3].start, sp[3].len, &b), 0);
    CHECK(json_loadb(rt_buf_str(&b), b.len, 0, NULL) == NULL);
    rt_buf_free(&b);
  }
  free(sp);
  /* pairs, escapes and integers within int64 are kept as they are */
  const char *fine = "{\"a\":\"\\ud83d\\ude97 \\\\u0000 \\n\",\"b\":-9223372036854775808,\"c\":1.5e3}";
  rt_buf b = RT_BUF_INIT;
  CHECK_INT(rt_tgupd_repair(fine, strlen(fine), &b), 0);
  CHECK_STR(rt_buf_str(&b), fine);
  rt_buf_free(&b);
  /* raw bytes jansson refuses in a string */
  const char *raw = "{\"a\":\"x\xff\x01y\"}";
  CHECK_INT(rt_tgupd_repair(raw, strlen(raw), &b), 2);
  CHECK_STR(rt_buf_str(&b), "{\"a\":\"x\xEF\xBF\xBD\\u0001y\"}");
  rt_buf_free(&b);
  /* an answer cut short, or not an answer, is not split */
  static const char *const refused[] = {
      "{\"ok\":true,\"result\":[{\"update_id\":1},{\"update_id\":2,\"t\":\"}]}",
      "{\"ok\":true,\"result\":[{\"update_id\":1}]",
      "{\"ok\":true,\"result\":[{\"update_id\":1}",
      "{\"ok\":false,\"result\":[]}",
      "<html>502</html>",
      "",
  };
  for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
    int rc = rt_tgupd_split(refused[i], strlen(refused[i]), &sp, &n);
    if (rc != -1) fprintf(stderr, "  split: %s\n", refused[i]);
    CHECK_INT(rc, -1);
  }
  CHECK_INT(rt_tgupd_split("{\"ok\":true,\"result\":[]}", 23, &sp, &n), 0);
  CHECK_INT(n, 0);
  free(sp);
  /* the first id of an answer's head, the rest cut off */
  const char *head = "{\"ok\":true,\"result\":[{\"update_id\":77,\"message\":{\"text\":\"xxxx";
  CHECK(rt_tgupd_first_id(head, strlen(head), &id));
  CHECK_INT(id, 77);
  CHECK(!rt_tgupd_first_id(head, 36, &id));   /* "update_id":7 may go on */
  CHECK(!rt_tgupd_first_id("{\"ok\":true,\"result\":[{\"x\":1", 27, &id));
  /* a send's answer is whole JSON, or not taken */
  const char *ok = "{\"ok\":true,\"result\":{\"message_id\":5,\"chat\":{\"id\":1}}}";
  CHECK(rt_tgupd_whole(ok, strlen(ok)));
  CHECK(!rt_tgupd_whole(ok, strlen(ok) - 1));
  CHECK(!rt_tgupd_whole(ok, 30));
}

/* ---- tests ---- */

T(split) {
  char **p;
  size_t n = rt_telegram_split("короткий текст", 4096, &p);
  CHECK_INT(n, 1);
  CHECK_STR(p[0], "короткий текст");
  rt_telegram_parts_free(p, n);
  /* paragraph first, then sentence, then word */
  n = rt_telegram_split("Первый абзац.\n\nВторой абзац, подлиннее.", 30, &p);
  CHECK_INT(n, 2);
  CHECK_STR(p[0], "Первый абзац.");
  CHECK_STR(p[1], "Второй абзац, подлиннее.");
  rt_telegram_parts_free(p, n);
  n = rt_telegram_split("Одно предложение. Другое предложение тут", 25, &p);
  CHECK_INT(n, 2);
  CHECK_STR(p[0], "Одно предложение.");
  CHECK_STR(p[1], "Другое предложение тут");
  rt_telegram_parts_free(p, n);
  n = rt_telegram_split("слово слово слово", 12, &p);
  CHECK_INT(n, 2);
  CHECK_STR(p[0], "слово слово");
  CHECK_STR(p[1], "слово");
  rt_telegram_parts_free(p, n);
  /* 10,000 Cyrillic letters without a space: cut on code points, nothing lost */
  char *big = malloc(20001);
  for (int i = 0; i < 10000; i++) memcpy(big + 2 * i, "я", 2);
  big[20000] = '\0';
  n = rt_telegram_split(big, 4096, &p);
  CHECK_INT(n, 3);
  size_t total = 0;
  for (size_t i = 0; i < n; i++) total += strlen(p[i]);
  CHECK_INT(total, 20000);
  CHECK_INT(strlen(p[0]), 8192);
  rt_telegram_parts_free(p, n);
  /* emoji are two UTF-16 units: 3000 of them need two messages */
  char *em = malloc(12001);
  for (int i = 0; i < 3000; i++) memcpy(em + 4 * i, "\xF0\x9F\x9A\x97", 4);
  em[12000] = '\0';
  n = rt_telegram_split(em, 4096, &p);
  CHECK_INT(n, 2);
  CHECK_INT(strlen(p[0]), 2048 * 4);
  rt_telegram_parts_free(p, n);
  free(em);
  free(big);
}

T(phone_and_mask) {
  char *s = rt_telegram_phone("79123456789");
  CHECK_STR(s, "+79123456789");
  free(s);
  s = rt_telegram_phone("+7 912 345-67-89");
  CHECK_STR(s, "+79123456789");
  free(s);
  s = rt_telegram_phone("89123456789");
  CHECK_STR(s, "+79123456789");
  free(s);
  CHECK(rt_telegram_phone("12345") == NULL);
  CHECK(rt_telegram_phone("call me") == NULL);
  s = rt_telegram_mask("GET https://api.telegram.org/bot" TOKEN "/getMe failed", TOKEN);
  CHECK(strstr(s, SECRET_PART) == NULL);
  CHECK(strstr(s, "<token>") != NULL);
  free(s);
}

T(config_errors) {
  char *err = NULL;
  rt_channel *c;
  json_t *conf = json_pack("{s:s}", "token", "");
  CHECK_INT(rt_telegram_new(conf, &c, &err), RT_EINVAL);
  CHECK(err && strstr(err, "token"));
  free(err);
  json_decref(conf);
  err = NULL;
  conf = json_pack("{s:s, s:s}", "token", TOKEN, "webhook_url", "https://shop.example");
  CHECK_INT(rt_telegram_new(conf, &c, &err), RT_EINVAL);
  CHECK(err && strstr(err, "webhook_url") && !strstr(err, SECRET_PART));
  free(err);
  json_decref(conf);
  conf = json_pack("{s:s}", "token", "");
  CHECK(rt_plugin_telegram.wanted(conf) == false);
  json_decref(conf);
  json_t *sch = json_loads(rt_plugin_telegram.schema_json, 0, NULL);
  CHECK(json_is_object(json_object_get(json_object_get(sch, "properties"), "token")));
  json_decref(sch);
}

static int64_t polls_before;
static bool polled_again(void) {
  json_t *s = state();
  bool r = json_integer_value(json_object_get(s, "polls")) > polls_before &&
           json_array_size(json_object_get(s, "pending")) == 0;
  json_decref(s);
  return r;
}

T(poll_offset_after_commit) {
  reset_host();
  auto_ack = false;
  /* all in Telegram's queue before the bot starts: one getUpdates answer */
  push(json_pack("{s:i, s:s, s:s, s:s}", "chat_id", 1001, "text", "/start promo_autumn",
                 "first_name", "Иван", "username", "ivan_p"));
  push(json_pack("{s:i, s:{s:i}, s:s}", "chat_id", 1001, "photo", "size", 60000,
                 "caption", "вот деталь"));
  push(json_pack("{s:i, s:s}", "chat_id", 1001, "contact", "8 912 345-67-89"));
  push(json_pack("{s:i, s:{s:i, s:s}}", "chat_id", 1001, "document", "size", 2000, "mime",
                 "image/png"));
  push(json_pack("{s:i, s:s, s:b}", "chat_id", -100777, "text", "чужая группа", "is_bot", 0));
  push(json_pack("{s:i, s:s, s:b}", "chat_id", 1002, "text", "я бот", "is_bot", 1));
  push(json_pack("{s:i, s:b, s:i, s:s}", "chat_id", 1001, "edited", 1, "message_id", 1, "text",
                 "/start promo_winter"));
  ch = open_channel(conf_poll(), NULL);
  CHECK(ch != NULL);
  if (!ch) return;
  CHECK(ch->limits.per_sec == 30 && ch->limits.per_chat == 1);
  CHECK(ch->limits.per_group > 0.33 && ch->limits.per_group < 0.34);
  CHECK(ch->caps & RT_CH_BUTTONS);
  want_events = 5;
  CHECK(run_until(have_events, 10000));
  CHECK_INT(json_array_size(events), 5);
  CHECK_STR(ev_s(0, "kind"), "text");
  CHECK_STR(ev_s(0, "chat"), "1001");
  CHECK_STR(ev_s(0, "user"), "1001");
  CHECK_STR(ev_s(0, "name"), "Иван");
  CHECK_STR(json_string_value(ev_x(0, "start")), "promo_autumn");
  CHECK_STR(json_string_value(ev_x(0, "source")), "promo_autumn");
  CHECK_STR(json_string_value(ev_x(0, "username")), "ivan_p");
  CHECK(strncmp(ev_s(0, "ext_id"), "tg:", 3) == 0);
  CHECK_STR(ev_s(1, "kind"), "photo");
  CHECK_STR(ev_s(1, "text"), "вот деталь");
  json_t *ph = json_array_get(ev_x(1, "photos"), 0);
  const char *path = json_string_value(json_object_get(ph, "path"));
  struct stat st;
  CHECK(path && stat(path, &st) == 0 && st.st_size == 60000);
  CHECK_INT(json_integer_value(json_object_get(ph, "size")), 60000);
  CHECK(json_string_value(json_object_get(ph, "id")) != NULL);
  CHECK(path && strncmp(path, data_dir, strlen(data_dir)) == 0);
  CHECK_STR(ev_s(2, "kind"), "contact");
  CHECK_STR(json_string_value(ev_x(2, "phone")), "+79123456789");
  CHECK_STR(ev_s(3, "kind"), "photo");   /* an image sent as a file */
  CHECK_STR(json_string_value(json_object_get(json_array_get(ev_x(3, "photos"), 0), "mime")),
            "image/png");
  CHECK_STR(ev_s(4, "kind"), "text");
  CHECK(json_is_true(ev_x(4, "edited")));
  /* Nothing acked yet: every update is still pending at Telegram's side,
   * and the bot did not poll past them. */
  json_t *s = state();
  CHECK_INT(json_array_size(json_object_get(s, "pending")), 7);
  polls_before = json_integer_value(json_object_get(s, "polls"));
  json_decref(s);
  run_ms(500);
  s = state();
  CHECK_INT(json_integer_value(json_object_get(s, "polls")), polls_before);
  json_decref(s);
  /* The commit: the next poll confirms them. */
  ack_all(RT_OK);
  CHECK(run_until(polled_again, 5000));
  close_channel(ch);
}

T(restart_redelivers_uncommitted) {
  reset_host();
  auto_ack = false;
  push(json_pack("{s:i, s:s}", "chat_id", 1003, "text", "первое"));
  push(json_pack("{s:i, s:s}", "chat_id", 1003, "text", "второе"));
  ch = open_channel(conf_poll(), NULL);
  want_events = 2;
  CHECK(run_until(have_events, 8000));
  /* the first is committed, the second is not: the process dies */
  pending_ack second = acks[1];
  nacks = 1;
  ack_all(RT_OK);
  nacks = 0;
  close_channel(ch);
  second.ack(second.ud, RT_EIO);   /* the host drops what it had not committed */
  /* the host forgets the uncommitted one */
  json_object_del(seen, ev_s(1, "ext_id"));
  json_array_remove(events, 1);
  auto_ack = true;
  ch = open_channel(conf_poll(), NULL);
  want_events = 2;
  CHECK(run_until(have_events, 8000));
  CHECK_INT(json_array_size(events), 2);
  CHECK_STR(ev_s(1, "text"), "второе");
  polls_before = 0;
  CHECK(run_until(polled_again, 5000));
  close_channel(ch);
  auto_ack = false;
}

T(send_text_buttons_split) {
  reset_host();
  auto_ack = true;
  ch = open_channel(conf_poll(), NULL);
  push(json_pack("{s:i, s:s}", "chat_id", 2001, "text", "привет"));
  want_events = 1;
  run_until(have_events, 8000);
  send_res r = do_send("2001", "Здравствуйте!", NULL, 0, NULL, NULL, 1);
  CHECK_INT(r.r.verdict, RT_SEND_DELIVERED);
  const char *b[] = {"Да", "Нет", "Позвать менеджера"};
  r = do_send("2001", "Подходит?", b, 3, NULL, NULL, 2);
  CHECK_INT(r.r.verdict, RT_SEND_DELIVERED);
  /* 9000 characters in paragraphs: three messages, in order */
  char *longt = malloc(40000);
  longt[0] = '\0';
  for (int i = 0; i < 150; i++) {
    char para[120];
    snprintf(para, sizeof para, "Абзац %02d. Текст абзаца, чтобы было длинно и по-русски.%s", i,
             i < 149 ? "\n\n" : "");
    strcat(longt, para);
  }
  /* each part after the first waits for the chat's rate: the queue sends
   * the row again, and it goes on from the next part */
  int tries = 0;
  do r = do_send("2001", longt, NULL, 0, NULL, NULL, 3);
  while (r.r.verdict == RT_SEND_RETRY_LATER && strstr(r.text, "delivered") && ++tries < 10);
  CHECK_INT(r.r.verdict, RT_SEND_DELIVERED);
  CHECK_INT(tries, 2);
  json_t *sent = sent_list();
  size_t n = json_array_size(sent);
  CHECK(n >= 4);
  json_t *s0 = json_array_get(sent, 0), *s1 = json_array_get(sent, 1);
  CHECK_STR(json_string_value(json_object_get(s0, "text")), "Здравствуйте!");
  json_t *kb = json_object_get(json_object_get(s1, "reply_markup"), "keyboard");
  CHECK_INT(json_array_size(kb), 2);   /* two short ones in a row, the long one below */
  CHECK_STR(json_string_value(json_object_get(json_array_get(json_array_get(kb, 0), 0), "text")),
            "Да");
  /* the long text came back whole and in order */
  rt_buf all = RT_BUF_INIT;
  for (size_t i = 2; i < n; i++) {
    const char *t = json_string_value(json_object_get(json_array_get(sent, i), "text"));
    CHECK(t && strlen(t) > 0);
    if (i > 2) rt_buf_adds(&all, "\n\n");
    rt_buf_adds(&all, t);
  }
  CHECK_INT(n - 2, 3);
  CHECK_STR(rt_buf_str(&all), longt);
  rt_buf_free(&all);
  free(longt);
  json_decref(sent);
  close_channel(ch);
}

T(inline_buttons_and_callback) {
  reset_host();
  auto_ack = true;
  json_t *conf = conf_poll();
  json_object_set_new(conf, "buttons", json_string("inline"));
  ch = open_channel(conf, NULL);
  push(json_pack("{s:i, s:s}", "chat_id", 2101, "text", "привет"));
  want_events = 1;
  run_until(have_events, 8000);
  const char *b[] = {"Позже", "Очень длинная надпись на кнопке, которая не влезет в 64 байта"};
  send_res r = do_send("2101", "Когда удобно?", b, 2, NULL, NULL, 10);
  CHECK_INT(r.r.verdict, RT_SEND_DELIVERED);
  push(json_pack("{s:i, s:s}", "chat_id", 2101, "callback_data", "#2"));
  want_events = 2;
  CHECK(run_until(have_events, 8000));
  CHECK_STR(ev_s(1, "kind"), "button");
  CHECK_STR(ev_s(1, "text"), "Очень длинная надпись на кнопке, которая не влезет в 64 байта");
  CHECK_STR(json_string_value(ev_x(1, "data")), "#2");
  run_ms(200);
  json_t *s = state();
  CHECK_INT(json_integer_value(json_object_get(s, "callbacks_answered")), 1);
  json_decref(s);
  close_channel(ch);
}

T(send_errors) {
  reset_host();
  auto_ack = true;
  ch = open_channel(conf_poll(), NULL);
  push(json_pack("{s:i, s:s}", "chat_id", 3001, "text", "привет"));
  push(json_pack("{s:i, s:s}", "chat_id", 3002, "text", "привет"));
  want_events = 2;
  run_until(have_events, 8000);
  ctl0("/_/inject", json_pack("{s:s, s:i, s:i}", "method", "sendMessage", "status", 429,
                              "retry_after", 3));
  send_res r = do_send("3001", "раз", NULL, 0, NULL, NULL, 20);
  CHECK_INT(r.r.verdict, RT_SEND_PAUSE_CHANNEL);
  CHECK_INT(r.r.after_ms, 3000);
  CHECK(strstr(r.text, "retry after 3") != NULL);
  ctl0("/_/inject", json_pack("{s:s, s:i}", "method", "sendMessage", "status", 502));
  r = do_send("3001", "два", NULL, 0, NULL, NULL, 21);
  CHECK_INT(r.r.verdict, RT_SEND_RETRY_LATER);
  ctl0("/_/block", json_pack("{s:i}", "chat_id", 3002));
  r = do_send("3002", "три", NULL, 0, NULL, NULL, 22);
  CHECK_INT(r.r.verdict, RT_SEND_FAILED);
  CHECK_INT(r.r.reason, RT_FAIL_BLOCKED);
  CHECK(strstr(r.text, "blocked") != NULL);
  r = do_send("999999", "четыре", NULL, 0, NULL, NULL, 23);
  CHECK_INT(r.r.verdict, RT_SEND_FAILED);
  CHECK_INT(r.r.reason, RT_FAIL_CHAT_NOT_FOUND);
  r = do_send("3001", "", NULL, 0, NULL, NULL, 24);
  CHECK_INT(r.r.verdict, RT_SEND_FAILED);
  CHECK(strstr(r.text, "empty") != NULL);
  /* a group that became a supergroup: the new id, kept, and the message there */
  ctl0("/_/group", json_pack("{s:i, s:s, s:s}", "chat_id", -4001, "type", "group", "title",
                             "Менеджеры"));
  ctl0("/_/migrate", json_pack("{s:i, s:I}", "chat_id", -4001, "to", (json_int_t)-1004001));
  r = do_send("-4001", "Новая заявка", NULL, 0, NULL, "3001", 25);
  CHECK_INT(r.r.verdict, RT_SEND_DELIVERED);
  CHECK_STR(json_string_value(json_object_get(kv, "migrated:-4001")), "-1004001");
  json_t *sent = sent_list();
  json_t *last = json_array_get(sent, json_array_size(sent) - 1);
  CHECK_INT(json_integer_value(json_object_get(last, "chat_id")), -1004001);
  json_decref(sent);
  CHECK(ch->is_group(ch, "-4001") && !ch->is_group(ch, "3001"));
  /* a 429 in a group is that group's limit: only it waits */
  ctl0("/_/inject", json_pack("{s:s, s:i, s:i}", "method", "sendMessage", "status", 429,
                              "retry_after", 5));
  r = do_send("-4001", "ещё заявка", NULL, 0, NULL, "3001", 26);
  CHECK_INT(r.r.verdict, RT_SEND_RETRY_LATER);
  CHECK_INT(r.r.after_ms, 5000);
  close_channel(ch);
}

T(photos_out) {
  reset_host();
  auto_ack = true;
  ch = open_channel(conf_poll(), NULL);
  push(json_pack("{s:i, s:{s:i}}", "chat_id", 5001, "photo", "size", 3000));
  want_events = 1;
  CHECK(run_until(have_events, 8000));
  json_t *ph = json_array_get(ev_x(0, "photos"), 0);
  char *fid = strdup(json_string_value(json_object_get(ph, "id")));
  char *path = strdup(json_string_value(json_object_get(ph, "path")));
  send_res r = do_send("5001", "Это она?", NULL, 0, fid, NULL, 30);
  CHECK_INT(r.r.verdict, RT_SEND_DELIVERED);
  r = do_send("5001", "", NULL, 0, path, NULL, 31);
  CHECK_INT(r.r.verdict, RT_SEND_DELIVERED);
  r = do_send("5001", "", NULL, 0, "/etc/passwd", NULL, 32);
  CHECK_INT(r.r.verdict, RT_SEND_FAILED);
  json_t *sent = sent_list();
  size_t n = json_array_size(sent);
  json_t *a = json_array_get(sent, n - 2), *b = json_array_get(sent, n - 1);
  CHECK_STR(json_string_value(json_object_get(a, "how")), "file_id");
  CHECK_STR(json_string_value(json_object_get(a, "caption")), "Это она?");
  CHECK_STR(json_string_value(json_object_get(b, "how")), "upload");
  CHECK_INT(json_integer_value(json_object_get(b, "size")), 3000);
  json_decref(sent);
  free(fid);
  free(path);
  close_channel(ch);
}

static bool health_set(void) { return health_msg[0] != '\0'; }

T(conflict_and_unauthorized) {
  reset_host();
  auto_ack = true;
  ch = open_channel(conf_poll(), NULL);
  run_ms(300);
  ctl0("/_/conflict", NULL);
  CHECK(run_until(health_set, 5000));
  CHECK(strstr(health_msg, "another") != NULL);
  close_channel(ch);
  reset_host();
  json_t *conf = json_pack("{s:s, s:s, s:i}", "token", "654321:WRONG-token_zzzz", "api_base",
                           api_base, "poll_timeout_s", 1);
  ch = open_channel(conf, NULL);
  CHECK(run_until(health_set, 5000));
  CHECK(strstr(health_msg, "401") != NULL && strstr(health_msg, "token") != NULL);
  CHECK(strstr(health_msg, "WRONG") == NULL);
  send_res r = do_send("1", "x", NULL, 0, NULL, NULL, 40);
  CHECK_INT(r.r.verdict, RT_SEND_PAUSE_CHANNEL);
  close_channel(ch);
}

static void set_flag(void *ud) { *(bool *)ud = true; }

/* A raw POST to our own webhook. */
static int post_hook(int port, const char *secret, const char *body) {
  char url[128];
  snprintf(url, sizeof url, "http://127.0.0.1:%d/tg/hook", port);
  char hdr[300];
  snprintf(hdr, sizeof hdr, "X-Telegram-Bot-Api-Secret-Token: %s", secret ? secret : "");
  const char *hdrs[] = {"Content-Type: application/json", secret ? hdr : NULL, NULL};
  rt_http_opts o = {.method = "POST", .url = url, .body = body, .body_len = strlen(body),
                    .headers = hdrs, .timeout_ms = 10000};
  ctl_res c = {0};
  rt_http_request(http, &o, ctl_cb, &c, NULL);
  cur_ctl = &c;
  run_until(ctl_done, 10000);
  json_decref(c.j);
  return c.status;
}

static bool webhook_set_(void) {
  json_t *s = state();
  bool r = json_is_object(json_object_get(s, "webhook"));
  json_decref(s);
  return r;
}

T(webhook) {
  reset_host();
  auto_ack = true;
  rt_httpd *hd = NULL;
  char *err = NULL;
  CHECK_INT(rt_httpd_new(&loop, "127.0.0.1:0", &hd, &err), RT_OK);
  if (!hd) return;
  int port = rt_httpd_port(hd);
  char url[128];
  snprintf(url, sizeof url, "http://127.0.0.1:%d/tg/hook", port);
  json_t *conf = json_pack("{s:s, s:s, s:s}", "token", TOKEN, "api_base", api_base,
                           "webhook_url", url);
  ch = open_channel(conf, hd);
  CHECK(run_until(webhook_set_, 5000));
  const char *secret = json_string_value(json_object_get(kv, "webhook_secret"));
  CHECK(secret && strlen(secret) >= 32);
  const char *upd = "{\"update_id\":5,\"message\":{\"message_id\":1,\"date\":1,\"chat\":{\"id\":"
                    "6001,\"type\":\"private\"},\"from\":{\"id\":6001,\"is_bot\":false,"
                    "\"first_name\":\"A\"},\"text\":\"по вебхуку\"}}";
  CHECK_INT(post_hook(port, NULL, upd), 401);
  CHECK_INT(post_hook(port, "wrong", upd), 401);
  CHECK_INT(json_array_size(events), 0);
  CHECK_INT(post_hook(port, secret, "not json"), 400);
  CHECK_INT(post_hook(port, secret, upd), 200);
  CHECK_INT(json_array_size(events), 1);
  /* delivered by the fake, with its header */
  push(json_pack("{s:i, s:s}", "chat_id", 6002, "text", "от телеграма"));
  want_events = 2;
  CHECK(run_until(have_events, 8000));
  CHECK_STR(ev_s(1, "text"), "от телеграма");
  /* the host's order: the HTTP server closes first, then the plugins */
  bool hd_done = false;
  rt_httpd_close(hd, set_flag, &hd_done);
  while (!hd_done) uv_run(&loop, UV_RUN_ONCE);
  close_channel(ch);
  /* back to polling: deleteWebhook first */
  reset_host();
  ch = open_channel(conf_poll(), NULL);
  push(json_pack("{s:i, s:s}", "chat_id", 6003, "text", "снова polling"));
  want_events = 1;
  CHECK(run_until(have_events, 8000));
  CHECK(json_object_get(kv, "webhook") == NULL);
  close_channel(ch);
}

T(managers_reply_to_card) {
  reset_host();
  auto_ack = true;
  ch = open_channel(conf_poll(), NULL);
  ctl0("/_/group", json_pack("{s:i, s:s}", "chat_id", -1007001, "type", "supergroup"));
  push(json_pack("{s:i, s:s}", "chat_id", 7001, "text", "нужны колодки"));
  want_events = 1;
  run_until(have_events, 8000);
  send_res r = do_send("-1007001", "Заявка: колодки, Иван", NULL, 0, NULL, "7001", 50);
  CHECK_INT(r.r.verdict, RT_SEND_DELIVERED);
  json_t *sent = sent_list();
  int64_t card = json_integer_value(json_object_get(json_array_get(sent, json_array_size(sent) - 1),
                                                    "message_id"));
  json_decref(sent);
  push(json_pack("{s:i, s:i, s:s, s:I}", "chat_id", -1007001, "user_id", 90001, "text",
                 "Здравствуйте, есть в наличии", "reply_to", (json_int_t)card));
  push(json_pack("{s:i, s:i, s:s}", "chat_id", -1007001, "user_id", 90001, "text",
                 "просто болтаем"));
  push(json_pack("{s:i, s:i, s:s, s:I}", "chat_id", -1007001, "user_id", 90001, "text", "/bot",
                 "reply_to", (json_int_t)card));
  want_events = 3;
  CHECK(run_until(have_events, 8000));
  run_ms(300);
  CHECK_INT(json_array_size(events), 3);
  CHECK_STR(ev_s(1, "kind"), "manager");
  CHECK_STR(ev_s(1, "chat"), "7001");
  CHECK_STR(ev_s(1, "text"), "take");
  CHECK_STR(json_string_value(ev_x(1, "say")), "Здравствуйте, есть в наличии");
  CHECK_STR(ev_s(2, "kind"), "manager");
  CHECK_STR(ev_s(2, "text"), "release");
  close_channel(ch);
}

/* The token's secret half never reaches the log. */
T(token_masked_in_logs) {
  char logf[300];
  snprintf(logf, sizeof logf, "%s/log.txt", data_dir);
  fflush(stderr);
  int saved = dup(2);
  int fd = open(logf, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  dup2(fd, 2);
  close(fd);
  rt_log_set_level(RT_LOG_DEBUG);
  reset_host();
  auto_ack = true;
  json_t *conf = json_pack("{s:s, s:s, s:i}", "token", TOKEN, "api_base", "http://127.0.0.1:1",
                           "poll_timeout_s", 1);
  ch = open_channel(conf, NULL);
  run_ms(1500);
  send_res r = do_send("1", "x", NULL, 0, NULL, NULL, 60);
  CHECK_INT(r.r.verdict, RT_SEND_RETRY_LATER);
  CHECK(strstr(r.text, SECRET_PART) == NULL);
  close_channel(ch);
  ch = open_channel(json_pack("{s:s, s:s, s:i}", "token", "654321:WRONG-token_zzzz", "api_base",
                              api_base, "poll_timeout_s", 1), NULL);
  run_ms(500);
  close_channel(ch);
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  rt_log_set_level(RT_LOG_WARN);
  FILE *f = fopen(logf, "r");
  char buf[65536];
  size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
  if (f) fclose(f);
  buf[n] = '\0';
  CHECK(n > 0);
  CHECK(strstr(buf, SECRET_PART) == NULL);
  CHECK(strstr(buf, "WRONG-token") == NULL);
  CHECK(strstr(buf, "telegram-") != NULL);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  snprintf(data_dir, sizeof data_dir, "/tmp/test_telegram.XXXXXX");
  if (!mkdtemp(data_dir)) return 1;
  uv_loop_init(&loop);
  http = rt_http_new(&loop);
  events = json_array();
  seen = json_object();
  kv = json_object();
  rt_log_set_level(getenv("TG_DEBUG") ? RT_LOG_DEBUG : RT_LOG_WARN);
  T_RUN(split);
  T_RUN(updates_reader);
  T_RUN(updates_split_repair);
  T_RUN(phone_and_mask);
  T_RUN(config_errors);
  if (!start_fake()) {
    fprintf(stderr, "FAIL cannot start tests/fakes/fake_telegram.py (python3)\n");
    return 1;
  }
  T_RUN(poll_offset_after_commit);
  if (getenv("TG_ONE")) return T_DONE();
  T_RUN(restart_redelivers_uncommitted);
  T_RUN(send_text_buttons_split);
  T_RUN(inline_buttons_and_callback);
  T_RUN(send_errors);
  T_RUN(photos_out);
  T_RUN(conflict_and_unauthorized);
  T_RUN(webhook);
  T_RUN(managers_reply_to_card);
  T_RUN(token_masked_in_logs);
  kill(fake_pid, SIGTERM);
  waitpid(fake_pid, NULL, 0);
  rt_http_close(http, NULL, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  json_decref(events);
  json_decref(seen);
  json_decref(kv);
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf %s", data_dir);
  if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", data_dir);
  return T_DONE();
}
