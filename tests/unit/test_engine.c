/* test_engine.c -- the engine with real I/O: a real (non-test) engine on a
 * temporary shop, a capture channel, and fake_http for a slow server.
 *
 * - three conversations: while one step waits 1.5 s on a slow server, the
 *   other two get their replies (twice each), and the waiting chat's second
 *   message waits its turn;
 * - a reload while that step waits: it finishes on the old code, the next
 *   message runs the new code;
 * - a redelivered event (same channel id) is processed once;
 * - state survives closing and reopening the engine;
 * - a due wake-up that runs and ends done in the transaction that fires it
 *   leaves no inbox row; one whose step fails gets a failed row, one whose
 *   step waits on the slow server a new row while it waits (what a restart
 *   finds again), done once it finishes. */
#include "config.h"
#include "engine.h"
#include "paths.h"
#include "rt.h"
#include "t.h"
#include "tstore.h"       /* q_int: the test looks at rows */
#include <libgen.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>

extern char **environ;

static char dir[64];
static pid_t fake_pid;
static int fake_port;

typedef struct { char chat[32]; char text[256]; uint64_t at; } msg;
static msg msgs[64];
static int nmsgs;

static void cap_send(rt_channel *ch, const rt_out_msg *m, rt_send_done done, void *ud) {
  (void)ch;
  if (nmsgs < 64) {
    snprintf(msgs[nmsgs].chat, sizeof msgs[nmsgs].chat, "%s", m->chat_id);
    snprintf(msgs[nmsgs].text, sizeof msgs[nmsgs].text, "%s", m->text);
    msgs[nmsgs].at = uv_hrtime();
    nmsgs++;
  }
  done(ud, &(rt_send_result){.verdict = RT_SEND_DELIVERED});
}

static void write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  fputs(text, f);
  fclose(f);
}

static const char *flow_v1 =
  "return flow 'main' {\n"
  "  start = function(c, ev) return c:go('talk') end,\n"
  "  talk = function(c, ev)\n"
  "    if ev.text == 'slow' then\n"
  "      local r, err = http.get('http://127.0.0.1:%d/slow')\n"
  "      c:say('v1 slow ' .. (r and r.json.ok and 'ok' or tostring(err)))\n"
  "      return\n"
  "    end\n"
  "    if ev.text == 'wakeok' then c:wake(time.now() + 2, 'fine') return end\n"
  "    if ev.text == 'wakefail' then c:wake(time.now() + 2, 'boom') return end\n"
  "    if ev.text == 'wakeslow' then c:wake(time.now() + 2, 'slowwake') return end\n"
  "    c.slots.n = (c.slots.n or 0) + 1\n"
  "    c:say('v1 ' .. ev.text .. ' ' .. c.slots.n)\n"
  "  end,\n"
  "  fine = function(c, ev) c:say('woke fine') end,\n"
  "  boom = function(c, ev) error('boom') end,\n"
  "  slowwake = function(c, ev)\n"
  "    local r, err = http.get('http://127.0.0.1:%d/slow')\n"
  "    c:say('woke slow ' .. (r and r.json.ok and 'ok' or tostring(err)))\n"
  "  end,\n"
  "}\n";

static int start_fake(void) {
  char self[4096], bin[4200], script[128], portfile[128];
  ssize_t k = readlink("/proc/self/exe", self, sizeof self - 1);
  self[k > 0 ? k : 0] = '\0';
  snprintf(bin, sizeof bin, "%s/fake_http", dirname(self));
  snprintf(script, sizeof script, "%s/script.json", dir);
  snprintf(portfile, sizeof portfile, "%s/port", dir);
  write_file(script, "[{\"method\":\"GET\",\"path\":\"/slow\",\"delay_ms\":1500,\"json\":{\"ok\":true}}]");
  char *argv[] = {bin, "--port", "0", "--script", script, "--log", "/dev/null",
                  "--port-file", portfile, "--max-seconds", "60", NULL};
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  int rc = posix_spawn(&fake_pid, bin, &fa, NULL, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) return -1;
  for (int i = 0; i < 200; i++) {
    FILE *f = fopen(portfile, "r");
    if (f) {
      int ok = fscanf(f, "%d", &fake_port) == 1;
      fclose(f);
      if (ok && fake_port > 0) return 0;
    }
    usleep(20000);
  }
  return -1;
}

static rt_channel chan = {.name = "console", .caps = RT_CH_BUTTONS, .send = cap_send};

static void receive(rt_engine *e, const char *chat, const char *ext, const char *text) {
  rt_event_in ev = {.channel = "console", .ext_id = ext, .chat_id = chat, .user_id = chat,
                    .kind = "text", .text = text};
  CHECK(rt_engine_receive(e, &ev, NULL, NULL) == RT_OK);
}

static void run_until(uv_loop_t *loop, rt_engine *e, int want, double max_s) {
  uint64_t t0 = uv_hrtime();
  while ((nmsgs < want || !rt_engine_idle(e)) && (uv_hrtime() - t0) / 1e9 < max_s)
    uv_run(loop, UV_RUN_ONCE);
}

static int find(const char *chat, const char *text) {
  for (int i = 0; i < nmsgs; i++)
    if (strcmp(msgs[i].chat, chat) == 0 && strcmp(msgs[i].text, text) == 0) return i;
  return -1;
}

static void closed(void *ud) { *(bool *)ud = true; }

static rt_engine *open_engine(uv_loop_t *loop, rt_config **cfg) {
  char *schema = rt_paths_schema("shop.schema.json"), *err = NULL;
  int rc = rt_config_load(dir, schema, cfg, &err);
  free(schema);
  if (rc != RT_OK) { fprintf(stderr, "config: %s\n", err); free(err); return NULL; }
  rt_engine *e = NULL;
  rt_engine_opts o = {.loop = loop, .cfg = *cfg};
  rc = rt_engine_new(&o, &e, &err);
  if (rc != RT_OK) { fprintf(stderr, "engine: %s\n", err); free(err); return NULL; }
  rt_engine_add_channel(e, &chan);
  rt_engine_start(e);
  return e;
}

static void close_engine(uv_loop_t *loop, rt_engine *e, rt_config *cfg) {
  bool done = false;
  rt_engine_close(e, closed, &done);
  while (!done) uv_run(loop, UV_RUN_ONCE);
  uv_run(loop, UV_RUN_DEFAULT);
  rt_config_free(cfg);
}

T(interleave_reload_dedup) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  rt_config *cfg;
  rt_engine *e = open_engine(&loop, &cfg);
  CHECK(e != NULL);
  if (!e) return;
  receive(e, "c3", "e1", "slow");
  receive(e, "c3", "e2", "after");
  /* Let c3's step start and block on the slow server. */
  for (int i = 0; i < 20; i++) uv_run(&loop, UV_RUN_NOWAIT);
  /* Edit the flow while c3 waits: the new code says v2. */
  char path[128], *src = NULL;
  snprintf(path, sizeof path, "%s/flows/main.lua", dir);
  src = rt_xasprintf(flow_v1, fake_port, fake_port);
  for (char *p = strstr(src, "v1"); p; p = strstr(p, "v1")) p[1] = '2';
  write_file(path, src);
  free(src);
  char *err = NULL;
  CHECK(rt_engine_reload(e, &err) == RT_OK);
  free(err);
  receive(e, "c1", "e3", "a");
  receive(e, "c2", "e4", "b");
  receive(e, "c1", "e5", "c");
  receive(e, "c2", "e6", "d");
  receive(e, "c1", "e3", "a");        /* redelivery: same id */
  run_until(&loop, e, 6, 10);
  CHECK_INT(nmsgs, 6);
  int s = find("c3", "v1 slow ok"), a = find("c1", "v2 a 1"), c = find("c1", "v2 c 2");
  int b = find("c2", "v2 b 1"), d = find("c2", "v2 d 2"), after = find("c3", "v2 after 1");
  CHECK(s >= 0 && a >= 0 && b >= 0 && c >= 0 && d >= 0 && after >= 0);
  /* The other chats did not wait for the slow one. */
  CHECK(a < s && b < s && c < s && d < s);
  /* The waiting chat's next message ran after its first, on the new code. */
  CHECK(s < after);
  CHECK(msgs[s].at - msgs[a].at > 1000000000ULL);
  close_engine(&loop, e, cfg);

  /* Reopen: the saved state continues. */
  nmsgs = 0;
  e = open_engine(&loop, &cfg);
  CHECK(e != NULL);
  if (!e) return;
  receive(e, "c1", "e7", "e");
  run_until(&loop, e, 1, 5);
  CHECK(find("c1", "v2 e 3") >= 0);
  close_engine(&loop, e, cfg);
  CHECK(uv_loop_close(&loop) == 0);
}

T(wake_rows_only_when_needed) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  rt_config *cfg;
  rt_engine *e = open_engine(&loop, &cfg);
  CHECK(e != NULL);
  if (!e) return;
  nmsgs = 0;
  receive(e, "w1", "w-e1", "wakeok");
  receive(e, "w2", "w-e2", "wakefail");
  receive(e, "w3", "w-e3", "wakeslow");
  /* The wake-ups are set at time.now() + 2: time.now() is whole seconds,
   * so + 1 could fall due within the very transaction that stores it,
   * while its chat still runs -- which rightly gives it an inbox row. */
  /* Until the quick wake-up has answered and the slow one's row is
   * committed while its step waits (1.5 s). */
  const char *slow_new = "SELECT COUNT(*) FROM inbox WHERE kind = 'wake' AND chat_id = 'w3' "
                         "AND status = 'new'";
  uint64_t t0 = uv_hrtime();
  while ((find("w1", "woke fine") < 0 || q_int(rt_engine_store(e), slow_new) != 1) &&
         (uv_hrtime() - t0) / 1e9 < 5)
    uv_run(&loop, UV_RUN_ONCE);
  CHECK(find("w1", "woke fine") >= 0);
  CHECK(find("w3", "woke slow ok") < 0);
  CHECK_INT(q_int(rt_engine_store(e), "SELECT COUNT(*) FROM inbox WHERE kind = 'wake' AND chat_id = 'w1'"), 0);
  CHECK_INT(q_int(rt_engine_store(e), "SELECT COUNT(*) FROM inbox WHERE kind = 'wake' AND chat_id = 'w2' "
                     "AND status = 'failed' AND json_extract(payload, '$.step') = 'boom'"), 1);
  CHECK_INT(q_int(rt_engine_store(e), slow_new), 1);
  run_until(&loop, e, nmsgs + 1, 10);
  CHECK(find("w3", "woke slow ok") >= 0);
  CHECK_INT(q_int(rt_engine_store(e), "SELECT COUNT(*) FROM inbox WHERE kind = 'wake' AND chat_id = 'w3' "
                     "AND status = 'done'"), 1);
  CHECK_INT(q_int(rt_engine_store(e), "SELECT COUNT(*) FROM inbox WHERE kind = 'wake'"), 2);
  CHECK_INT(q_int(rt_engine_store(e), "SELECT COUNT(*) FROM timers WHERE name NOT LIKE '\\_%' ESCAPE '\\'"), 0);
  close_engine(&loop, e, cfg);
  CHECK(uv_loop_close(&loop) == 0);
}

int main(void) {
  snprintf(dir, sizeof dir, "/tmp/test_engine.XXXXXX");
  if (!mkdtemp(dir)) return 1;
  if (start_fake() != 0) { fprintf(stderr, "cannot start fake_http\n"); return 1; }
  char path[128];
  snprintf(path, sizeof path, "%s/flows", dir);
  mkdir(path, 0755);
  snprintf(path, sizeof path, "%s/shop.json", dir);
  write_file(path, "{\"name\":\"t\",\"persona\":{},\"flows\":{\"start\":\"main\"},"
                   "\"http\":{\"enabled\":false},\"log\":{\"level\":\"error\"},"
                   "\"store\":{\"synchronous\":\"normal\"}}");
  snprintf(path, sizeof path, "%s/flows/main.lua", dir);
  char *src = rt_xasprintf(flow_v1, fake_port, fake_port);
  write_file(path, src);
  free(src);
  T_RUN(interleave_reload_dedup);
  T_RUN(wake_rows_only_when_needed);
  kill(fake_pid, SIGTERM);
  waitpid(fake_pid, NULL, 0);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  if (system(cmd) != 0) { /* best effort */ }
  return T_DONE();
}
