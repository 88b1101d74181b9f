/* test_lapi_provider.c -- provider calls from flows (integration.h,
 * lapi_provider.c), with C test providers on a real uv loop:
 *
 * - "slow" answers later from a uv timer: the step gets the value as Lua
 *   data, two calls in one step add up their usage in rt_fx.usage;
 * - "bad" fails: the step gets (nil, error, detail);
 * - "mute" never answers: killing the yielded turn (what the engine does
 *   at the step deadline) calls cancel exactly once, freeing it does not
 *   call it again, and a "slow" call killed while its timer runs never
 *   gets done afterwards;
 * - an unknown op answers (nil, "bad_request", the provider's words);
 * - through the engine: a step waiting on "mute" is killed by
 *   limits.step_timeout_ms, cancel runs once, the chat goes to a manager;
 *   a finished step's usage is recorded as a "usage" event. */
#include "config.h"
#include "engine.h"
#include "integration.h"
#include "lvm.h"
#include "paths.h"
#include "rt.h"
#include "store.h"
#include "store_tools.h"
#include "t.h"
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static uv_loop_t loop;
static char dir[64];

/* ---- the test providers ---- */

struct rt_call {
  uv_timer_t timer;
  rt_provider *p;
  rt_call_done done;
  void *ud;
  json_t *args;
  bool fail;
};

typedef struct {
  int calls, dones, cancels, done_after_cancel;
  bool cancelled_any;
} counters;

static counters cnt;

static void call_closed(uv_handle_t *h) {
  rt_call *c = h->data;
  json_decref(c->args);
  free(c);
}

static void answer(uv_timer_t *tm) {
  rt_call *c = tm->data;
  cnt.dones++;
  if (cnt.cancelled_any) cnt.done_after_cancel++;
  if (c->fail) {
    rt_call_result r = {.status = RT_ENET, .error = "unavailable", .detail = "the service is down"};
    c->done(c->ud, &r);
  } else {
    const char *q = json_string_value(json_object_get(c->args, "q"));
    json_t *v = json_pack("{s:s+, s:[i,i], s:b}", "answer", q ? q : "?", "!", "n", 1, 2, "ok", 1);
    rt_call_result r = {.status = RT_OK, .value = v,
                        .usage = {.tokens_in = 3, .tokens_out = 5, .cost_micro = 7}};
    c->done(c->ud, &r);
    json_decref(v);
  }
  uv_close((uv_handle_t *)&c->timer, call_closed);
}

static int test_call(rt_provider *p, const char *op, const json_t *args, rt_call_done done, void *ud,
                     rt_call **out, char **err) {
  if (strcmp(op, "ask") != 0) {
    *err = rt_xasprintf("%s has no op '%s'", p->name, op);
    return RT_EINVAL;
  }
  cnt.calls++;
  rt_call *c = rt_xcalloc(1, sizeof *c);
  c->p = p;
  c->done = done;
  c->ud = ud;
  c->args = json_deep_copy(args);
  c->fail = strcmp(p->name, "bad") == 0;
  uv_timer_init(&loop, &c->timer);
  c->timer.data = c;
  if (strcmp(p->name, "mute") != 0) uv_timer_start(&c->timer, answer, 20, 0);
  *out = c;
  return RT_OK;
}

static void test_cancel(rt_provider *p, rt_call *c) {
  (void)p;
  cnt.cancels++;
  cnt.cancelled_any = true;
  uv_timer_stop(&c->timer);
  uv_close((uv_handle_t *)&c->timer, call_closed);
}

static rt_provider slow = {.name = "slow", .call = test_call, .cancel = test_cancel};
static rt_provider bad = {.name = "bad", .call = test_call, .cancel = test_cancel};
static rt_provider mute = {.name = "mute", .call = test_call, .cancel = test_cancel};
static rt_provider *const providers[] = {&slow, &bad, &mute};

/* ---- the bundle ---- */

static int ready;
static void on_ready(void *ud, rt_lturn *t) { (void)ud; (void)t; ready++; }
static int64_t fake_now(void *ud) { (void)ud; return 1772434800000LL; }
static rt_host host = {.ready = on_ready, .now_ms = fake_now};
static rt_bundle *b;

static const char *flow_src =
  "return flow 'main' {\n"
  "  start = function(c, ev)\n"
  "    local r, e, d = slow.ask{q = ev.text}\n"
  "    if r then c:say(r.answer .. ' ' .. #r.n .. ' ' .. tostring(r.ok)) else c:say(e .. ':' .. d) end\n"
  "  end,\n"
  "  twice = function(c)\n"
  "    local a = slow.ask{q = 'a'}\n"
  "    local b = slow.ask{q = 'b'}\n"
  "    c:say(a.answer .. b.answer)\n"
  "  end,\n"
  "  bad = function(c)\n"
  "    local r, e, d = bad.ask{}\n"
  "    c:say(tostring(r) .. ' ' .. e .. ' ' .. d)\n"
  "  end,\n"
  "  mute = function(c) mute.ask{} c:say('never') end,\n"
  "  unknown = function(c) local r, e, d = slow.nope{} c:say(tostring(r) .. ' ' .. e .. ' ' .. d) end,\n"
  "}\n";

static void write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  fputs(text, f);
  fclose(f);
}

static rt_lturn *begin(const char *step, const char *text, int *st) {
  char ev[128];
  snprintf(ev, sizeof ev, "{\"kind\":\"text\",\"text\":\"%s\"}", text);
  rt_lturn_in in = {.id = 1, .channel = "t", .chat = "1", .flow = "main", .step = step,
                    .mode = "bot", .state = "{}", .event = ev};
  rt_lturn *t = NULL;
  *st = rt_lturn_begin(b, NULL, &in, &t);
  return t;
}

/* Runs the loop until the yielded turn is ready, then resumes it. */
static int settle(rt_lturn *t, int st) {
  for (int i = 0; st == RT_LTURN_YIELD && i < 20; i++) {
    ready = 0;
    for (int k = 0; k < 1000 && !ready; k++) uv_run(&loop, UV_RUN_ONCE);
    if (!ready) break;
    st = rt_lturn_resume(t);
  }
  return st;
}

static const char *said(rt_lturn *t) {
  const rt_fx *fx = rt_lturn_effects(t);
  return fx && fx->nout ? fx->out[0].text : NULL;
}

T(answer_later) {
  int st;
  rt_lturn *t = begin("start", "привет", &st);
  CHECK_INT(st, RT_LTURN_YIELD);
  st = settle(t, st);
  CHECK_INT(st, RT_LTURN_DONE);
  CHECK_STR(said(t), "привет! 2 true");
  const rt_fx *fx = rt_lturn_effects(t);
  CHECK(fx && fx->usage.calls == 1 && fx->usage.tokens_in == 3 && fx->usage.tokens_out == 5 &&
        fx->usage.cost_micro == 7);
  rt_lturn_free(t);
}

T(usage_adds_up) {
  int st;
  rt_lturn *t = begin("twice", "", &st);
  st = settle(t, st);
  CHECK_INT(st, RT_LTURN_DONE);
  CHECK_STR(said(t), "a!b!");
  const rt_fx *fx = rt_lturn_effects(t);
  CHECK(fx && fx->usage.calls == 2 && fx->usage.tokens_in == 6 && fx->usage.tokens_out == 10 &&
        fx->usage.cost_micro == 14);
  rt_lturn_free(t);
}

T(failure_is_nil_error_detail) {
  int st;
  rt_lturn *t = begin("bad", "", &st);
  st = settle(t, st);
  CHECK_INT(st, RT_LTURN_DONE);
  CHECK_STR(said(t), "nil unavailable the service is down");
  rt_lturn_free(t);
}

T(unknown_op) {
  int st;
  int calls = cnt.calls;
  rt_lturn *t = begin("unknown", "", &st);
  CHECK_INT(st, RT_LTURN_DONE);
  CHECK_STR(said(t), "nil bad_request slow has no op 'nope'");
  CHECK_INT(cnt.calls, calls);
  rt_lturn_free(t);
}

T(kill_cancels_once) {
  memset(&cnt, 0, sizeof cnt);
  int st;
  rt_lturn *t = begin("mute", "", &st);
  CHECK_INT(st, RT_LTURN_YIELD);
  for (int i = 0; i < 5; i++) uv_run(&loop, UV_RUN_NOWAIT);
  CHECK_INT(cnt.cancels, 0);
  rt_lturn_kill(t, "timeout", "step waited too long");
  CHECK_INT(cnt.cancels, 1);
  rt_lturn_free(t);
  CHECK_INT(cnt.cancels, 1);
  /* Freed while waiting (shutdown): cancelled once too. */
  t = begin("mute", "", &st);
  CHECK_INT(st, RT_LTURN_YIELD);
  rt_lturn_free(t);
  CHECK_INT(cnt.cancels, 2);
  /* A call that would answer, killed first: done never comes. */
  t = begin("start", "x", &st);
  CHECK_INT(st, RT_LTURN_YIELD);
  rt_lturn_kill(t, "timeout", "step waited too long");
  rt_lturn_free(t);
  CHECK_INT(cnt.cancels, 3);
  uv_run(&loop, UV_RUN_NOWAIT);
  usleep(40000);
  for (int i = 0; i < 5; i++) uv_run(&loop, UV_RUN_NOWAIT);
  CHECK_INT(cnt.done_after_cancel, 0);
  CHECK_INT(cnt.dones, 0);
}

T(not_at_load_time) {
  char flows[128], path[160];
  snprintf(flows, sizeof flows, "%s/loadtime", dir);
  mkdir(flows, 0700);
  snprintf(path, sizeof path, "%s/main.lua", flows);
  write_file(path, "local x = slow.ask{}\nreturn flow 'main' { start = function(c) end }\n");
  rt_bundle_opts o = {.flows_dir = flows, .start_flow = "main", .host = &host,
                      .providers = providers, .nproviders = 3};
  rt_bundle *lb = NULL;
  char *err = NULL;
  CHECK(rt_bundle_load(&o, &lb, &err) != RT_OK);
  CHECK(err && strstr(err, "slow.ask is only available inside a step"));
  free(err);
  unlink(path);
  rmdir(flows);
}

/* ---- through the engine ---- */

static int nmsgs;
static char msgs[16][256];

static void cap_send(rt_channel *ch, const rt_out_msg *m, rt_send_done done, void *ud) {
  (void)ch;
  if (nmsgs < 16) snprintf(msgs[nmsgs++], sizeof msgs[0], "%s", m->text);
  done(ud, &(rt_send_result){.verdict = RT_SEND_DELIVERED});
}

static rt_channel chan = {.name = "console", .send = cap_send};
static void closed(void *ud) { *(bool *)ud = true; }

typedef struct { int64_t n; char *data; size_t cap; } evq;

static bool one_row(void *ud, int ncols, const char *const *vals) {
  evq *q = ud;
  if (ncols >= 2) {
    q->n = vals[0] ? atoll(vals[0]) : 0;
    snprintf(q->data, q->cap, "%s", vals[1] ? vals[1] : "");
  }
  return false;
}

/* The number of events of kind, and the data of the largest. */
static int64_t count_events(rt_engine *e, const char *kind, char *data, size_t n) {
  evq q = {-1, data, n};
  char *err = NULL;
  if (rt_store_query_text(rt_engine_store(e), "SELECT count(*), max(data) FROM events WHERE kind = ?1",
                          kind, 1, one_row, &q, &err) != RT_OK) {
    free(err);
    return -1;
  }
  return q.n;
}

T(engine_deadline_and_usage) {
  char shop[128], path[192];
  snprintf(shop, sizeof shop, "%s/shop", dir);
  mkdir(shop, 0700);
  snprintf(path, sizeof path, "%s/flows", shop);
  mkdir(path, 0700);
  snprintf(path, sizeof path, "%s/shop.json", shop);
  write_file(path, "{\"name\":\"t\",\"persona\":{},\"flows\":{\"start\":\"main\"},"
                   "\"http\":{\"enabled\":false},\"log\":{\"level\":\"error\"},"
                   "\"limits\":{\"step_timeout_ms\":300},"
                   "\"store\":{\"synchronous\":\"normal\"}}");
  snprintf(path, sizeof path, "%s/flows/main.lua", shop);
  write_file(path, "return flow 'main' {\n"
                   "  start = function(c, ev)\n"
                   "    if ev.text == 'wait' then mute.ask{} c:say('never') return end\n"
                   "    local r = slow.ask{q = ev.text}\n"
                   "    c:say(r.answer)\n"
                   "  end,\n"
                   "}\n");
  char *schema = rt_paths_schema("shop.schema.json"), *err = NULL;
  rt_config *cfg = NULL;
  int rc = rt_config_load(shop, schema, &cfg, &err);
  free(schema);
  CHECK(rc == RT_OK);
  if (rc != RT_OK) { fprintf(stderr, "config: %s\n", err); free(err); return; }
  rt_engine *e = NULL;
  rt_engine_opts o = {.loop = &loop, .cfg = cfg, .providers = providers, .nproviders = 3};
  rc = rt_engine_new(&o, &e, &err);
  CHECK(rc == RT_OK);
  if (rc != RT_OK) { fprintf(stderr, "engine: %s\n", err); free(err); rt_config_free(cfg); return; }
  rt_engine_add_channel(e, &chan);
  rt_engine_start(e);
  memset(&cnt, 0, sizeof cnt);
  rt_event_in ev = {.channel = "console", .ext_id = "e1", .chat_id = "c1", .user_id = "c1",
                    .kind = "text", .text = "wait"};
  CHECK(rt_engine_receive(e, &ev, NULL, NULL) == RT_OK);
  rt_event_in ev2 = {.channel = "console", .ext_id = "e2", .chat_id = "c2", .user_id = "c2",
                     .kind = "text", .text = "hi"};
  CHECK(rt_engine_receive(e, &ev2, NULL, NULL) == RT_OK);
  uint64_t t0 = uv_hrtime();
  char data[256] = "";
  while ((uv_hrtime() - t0) / 1e9 < 5 &&
         (count_events(e, "step_error", data, sizeof data) < 1 || !rt_engine_idle(e)))
    uv_run(&loop, UV_RUN_ONCE);
  CHECK_INT(count_events(e, "step_error", data, sizeof data), 1);
  CHECK(strstr(data, "timeout") != NULL);
  CHECK_INT(cnt.cancels, 1);
  CHECK_INT(cnt.done_after_cancel, 0);
  CHECK_INT(count_events(e, "usage", data, sizeof data), 1);
  CHECK_STR(data, "{\"calls\":1,\"cost_micro\":7,\"tokens_in\":3,\"tokens_out\":5}");
  bool said_hi = false;
  for (int i = 0; i < nmsgs; i++) said_hi |= strcmp(msgs[i], "hi!") == 0;
  CHECK(said_hi);
  bool done = false;
  rt_engine_close(e, closed, &done);
  while (!done) uv_run(&loop, UV_RUN_ONCE);
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK_INT(cnt.cancels, 1);
  rt_config_free(cfg);
}

int main(void) {
  snprintf(dir, sizeof dir, "/tmp/test_lapi_provider.XXXXXX");
  if (!mkdtemp(dir)) return 1;
  uv_loop_init(&loop);
  char flows[128], path[160];
  snprintf(flows, sizeof flows, "%s/flows", dir);
  mkdir(flows, 0700);
  snprintf(path, sizeof path, "%s/main.lua", flows);
  write_file(path, flow_src);
  rt_bundle_opts o = {.flows_dir = flows, .start_flow = "main", .host = &host,
                      .step_instructions = 1000000, .providers = providers, .nproviders = 3};
  char *err = NULL;
  if (rt_bundle_load(&o, &b, &err) != RT_OK) {
    fprintf(stderr, "load: %s\n", err);
    return 1;
  }
  T_RUN(answer_later);
  T_RUN(usage_adds_up);
  T_RUN(failure_is_nil_error_detail);
  T_RUN(unknown_op);
  T_RUN(kill_cancels_once);
  T_RUN(not_at_load_time);
  rt_bundle_unref(b);
  unlink(path);
  rmdir(flows);
  T_RUN(engine_deadline_and_usage);
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK(uv_loop_close(&loop) == 0);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  if (system(cmd) != 0) return 1;
  return T_DONE();
}
