/* test_engine_effects.c -- what a step may ask of the engine, on a real
 * (non-test) engine over a temporary shop:
 *
 * - wake-ups keep their identity: three messages that each set a wake-up
 *   for the same fixed second (long past) all get it (the timer ids of the
 *   first ones, fired and deleted, must not make the later ones duplicates);
 * - the limits on a step's effects (limits.wakeups_per_step,
 *   limits.wakeups_pending, limits.message_max_kb, limits.step_output_kb)
 *   fail the step with a message naming the limit, and a wake-up fan-out
 *   (each wake-up sets more) stops with bounded counts;
 * - absurd due times (math.maxinteger, a float, a huge duration) fail the
 *   step instead of overflowing;
 * - absurd config values (store.keep_days: 2e11, huge step timeout and
 *   memory) are loaded through a schema that does not bound them, and the
 *   engine's arithmetic stays defined (UBSan) and prunes nothing;
 * - c:customer() reads the customer's addresses only when the flow looks;
 * - chat ids of 520+ bytes that share a prefix keep separate queues and
 *   conversations;
 * - due wake-ups fire inside the pump's transaction and run there, their
 *   inbox rows written once, as done, at most 2,048 per transaction;
 * - steps that set their own wake-up again, in a burst of more than one
 *   transaction takes, lose none of the wake-ups still due;
 * - the loop's own checkpoints keep the WAL under its bound during a burst
 *   and copy all of it once the loop is idle; a reader in another process
 *   that holds the copy back does not set off copy after copy;
 * - a commit's fsync runs off the loop (walsync.h): with a slow disk the
 *   step is committed, but its ack and its reply wait for the fsync; a
 *   failed fsync stops the process before anything is acked or sent. */
#include "config.h"
#include "engine.h"
#include "rt.h"
#include "t.h"
#include "store_impl.h"   /* rt_store_db: the test looks at rows */
#include "tstore.h"       /* q_int */
#include <sqlite3.h>
#include <stdlib.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char dir[64];

typedef struct { char *chat; char *text; } msg;
static msg msgs[512];
static int nmsgs;

static void cap_send(rt_channel *ch, const rt_out_msg *m, rt_send_done done, void *ud) {
  (void)ch;
  if (nmsgs < (int)RT_ARRAY_LEN(msgs)) {
    msgs[nmsgs].chat = rt_xstrdup(m->chat_id);
    msgs[nmsgs].text = rt_xstrdup(m->text);
    nmsgs++;
  }
  done(ud, &(rt_send_result){.verdict = RT_SEND_DELIVERED});
}

static rt_channel chan = {.name = "console", .caps = RT_CH_BUTTONS, .send = cap_send};

static void write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  fputs(text, f);
  fclose(f);
}

static const char *flow =
  "return flow 'main' {\n"
  "  start = function(c, ev)\n"
  "    local t = ev.text\n"
  "    c.slots.t = c.slots.t or {}\n"
  "    c.slots.t[#c.slots.t + 1] = t\n"
  "    if t:sub(1, 5) == 'fixed' then c:wake(1700000000, 'woke', {k = t}, 'w' .. t)\n"
  "    elseif t == 'maxint' then c:wake(math.maxinteger, 'woke')\n"
  "    elseif t == 'float' then c:wake(1e300, 'woke')\n"
  "    elseif t == 'negative' then c:wake(-5, 'woke')\n"
  "    elseif t == 'duration' then c:wake('106751991167000d', 'woke')\n"
  "    elseif t == 'eleven' then for i = 1, 11 do c:wake('1h', 'woke', nil, 'e' .. i) end\n"
  "    elseif t == 'ten' then for i = 1, 10 do c:wake('1h', 'woke', nil, 'e' .. i) end\n"
  "    elseif t == 'boom' then return c:go('boom')\n"
  "    elseif t == 'big' then c:say(string.rep('я', 10000)) return\n"
  "    elseif t == 'much' then for i = 1, 5 do c:say(string.rep('a', 15000)) end return\n"
  "    elseif t == 'handoff' then c:handoff('asked')\n"
  "    elseif t == 'name' then c:say('name ' .. c:customer().name) return\n"
  "    elseif t == 'addr' then\n"
  "      local cu = c:customer()\n"
  "      local kept = false\n"
  "      for k in pairs(cu) do kept = kept or k == 'addresses' end\n"
  "      local a = cu.addresses\n"
  "      for k, v in pairs(cu) do if k == 'addresses' then kept = not kept and v == a end end\n"
  "      c:say('addr ' .. tostring(a.telegram) .. ' ' .. tostring(a.whatsapp) .. ' ' ..\n"
  "            tostring(kept and cu.addresses == a) .. ' ' ..\n"
  "            tostring(getmetatable(cu)) .. ' ' .. tostring(cu.nosuch))\n"
  "      return\n"
  "    end\n"
  "    c:say('got ' .. t)\n"
  "  end,\n"
  "  woke = function(c, ev)\n"
  "    c:record('woke', {name = ev.name, step = ev.step, at = ev.at})\n"
  "    c:say('woke ' .. tostring(ev.data.k))\n"
  "  end,\n"
  "  rearm = function(c, ev)\n"
  "    c:record('rearmed', {})\n"
  "    c:wake('1d', 'rearm', nil, ev.name)\n"
  "  end,\n"
  "  boom = function(c, ev)\n"
  "    for i = 1, 10 do c:wake(time.now(), 'boom', nil, 'b' .. i .. math.random(1e9)) end\n"
  "  end,\n"
  "}\n";

static void receive(rt_engine *e, const char *chat, const char *ext, const char *text) {
  rt_event_in ev = {.channel = "console", .ext_id = ext, .chat_id = chat, .user_id = "u",
                    .kind = "text", .text = text};
  CHECK(rt_engine_receive(e, &ev, NULL, NULL) == RT_OK);
}

/* Runs until the engine is idle (due wake-ups included) or max_s passed. */
static bool settle(uv_loop_t *loop, rt_engine *e, double max_s) {
  uint64_t t0 = uv_hrtime();
  uv_run(loop, UV_RUN_NOWAIT);
  while ((uv_hrtime() - t0) / 1e9 < max_s) {
    if (rt_engine_idle(e)) return true;
    uv_run(loop, UV_RUN_ONCE);
  }
  return rt_engine_idle(e);
}

static int count_to(const char *chat, const char *text) {
  int n = 0;
  for (int i = 0; i < nmsgs; i++)
    if (strcmp(msgs[i].chat, chat) == 0 && (!text || strcmp(msgs[i].text, text) == 0)) n++;
  return n;
}

/* The conversation's last_error message contains want. */
static bool error_says(rt_engine *e, const char *chat, const char *want) {
  sqlite3_stmt *st;
  bool ok = false;
  sqlite3_prepare_v2(rt_store_db(rt_engine_store(e)),
                     "SELECT json_extract(last_error, '$.msg') FROM conversations "
                     "WHERE chat_id = ?1", -1, &st, NULL);
  sqlite3_bind_text(st, 1, chat, -1, SQLITE_STATIC);
  if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
    ok = strstr((const char *)sqlite3_column_text(st, 0), want) != NULL;
  if (!ok) fprintf(stderr, "  %s: last_error lacks \"%s\"\n", chat, want);
  sqlite3_finalize(st);
  return ok;
}

static void closed(void *ud) { *(bool *)ud = true; }

typedef struct { uv_loop_t loop; rt_config *cfg; rt_engine *e; } env;

/* The WAL's fsync the engines of this file get (NULL: fdatasync). */
static int (*wal_fsync_hook)(const char *wal_path);

/* schema: NULL = the shop schema; else a path to a looser one. wal_max:
 * rt_engine_opts.wal_max_pages; start: rt_engine_start (else the caller
 * starts it, after setting rows up). */
static bool open_env_with(env *v, const char *shop_json, const char *schema, int64_t wal_max,
                          bool start) {
  char path[128];
  snprintf(path, sizeof path, "%s/shop.json", dir);
  write_file(path, shop_json);
  char *sp = schema ? rt_xstrdup(schema) : rt_xasprintf("%s/schema/shop.schema.json",
                                                        getenv("RT_SOURCE_DIR"));
  char *err = NULL;
  int rc = rt_config_load(dir, sp, &v->cfg, &err);
  free(sp);
  if (rc != RT_OK) { fprintf(stderr, "config: %s\n", err); free(err); v->e = NULL; return false; }
  uv_loop_init(&v->loop);
  rt_engine_opts o = {.loop = &v->loop, .cfg = v->cfg, .wal_max_pages = wal_max,
                      .wal_fsync = wal_fsync_hook};
  rc = rt_engine_new(&o, &v->e, &err);
  if (rc != RT_OK) { fprintf(stderr, "engine: %s\n", err); free(err); return false; }
  rt_engine_add_channel(v->e, &chan);
  if (start) rt_engine_start(v->e);
  return true;
}

static bool open_env(env *v, const char *shop_json, const char *schema) {
  return open_env_with(v, shop_json, schema, 0, true);
}

static void close_env(env *v) {
  bool done = false;
  rt_engine_close(v->e, closed, &done);
  while (!done) uv_run(&v->loop, UV_RUN_ONCE);
  uv_run(&v->loop, UV_RUN_DEFAULT);
  rt_config_free(v->cfg);
  CHECK(uv_loop_close(&v->loop) == 0);
  for (int i = 0; i < nmsgs; i++) { free(msgs[i].chat); free(msgs[i].text); }
  nmsgs = 0;
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s/data", dir);
  if (system(cmd) != 0) { /* best effort */ }
}

#define SHOP(extra) "{\"name\":\"t\",\"persona\":{},\"flows\":{\"start\":\"main\"}," \
  "\"http\":{\"enabled\":false},\"log\":{\"level\":\"error\"}" extra "}"

T(wakeups_same_due_second) {
  env v = {0};
  CHECK(open_env(&v, SHOP(""), NULL));
  if (!v.e) return;
  rt_store *st = rt_engine_store(v.e);
  const char *ids[] = {"fixed1", "fixed2", "fixed3"};
  for (int i = 0; i < 3; i++) {
    receive(v.e, "r3", ids[i], ids[i]);
    CHECK(settle(&v.loop, v.e, 10));
    /* Each wake-up fires before the next message sets its own: the table
     * is empty again each time, as after a restart. */
    rt_engine_fire_timers(v.e);
    CHECK(settle(&v.loop, v.e, 10));
  }
  CHECK_INT(count_to("r3", "woke fixed1"), 1);
  CHECK_INT(count_to("r3", "woke fixed2"), 1);
  CHECK_INT(count_to("r3", "woke fixed3"), 1);
  CHECK_INT(q_int(st, "SELECT COUNT(*) FROM timers"), 0);
  /* Each ran once (above); a wake-up that ran in its fire has no inbox
   * row, one that was stored first is done. */
  CHECK_INT(q_int(st, "SELECT COUNT(*) FROM inbox WHERE kind = 'wake' AND status <> 'done'"), 0);
  close_env(&v);
}

T(limits_fail_the_step) {
  env v = {0};
  CHECK(open_env(&v, SHOP(""), NULL));
  if (!v.e) return;
  rt_store *st = rt_engine_store(v.e);
  receive(v.e, "maxint", "a1", "maxint");
  receive(v.e, "float", "a2", "float");
  receive(v.e, "negative", "a3", "negative");
  receive(v.e, "duration", "a4", "duration");
  receive(v.e, "eleven", "a5", "eleven");
  receive(v.e, "ten", "a6", "ten");
  receive(v.e, "big", "a7", "big");
  receive(v.e, "much", "a8", "much");
  receive(v.e, "handoff", "a9", "handoff");
  CHECK(settle(&v.loop, v.e, 10));
  CHECK(error_says(v.e, "maxint", "out of range"));
  CHECK(error_says(v.e, "float", "out of range"));
  CHECK(error_says(v.e, "negative", "out of range"));
  CHECK(error_says(v.e, "duration", "duration"));
  CHECK(error_says(v.e, "eleven", "limits.wakeups_per_step"));
  CHECK_INT(count_to("ten", "got ten"), 1);
  CHECK(error_says(v.e, "big", "limits.message_max_kb"));
  CHECK(error_says(v.e, "much", "limits.step_output_kb"));
  /* A failed step keeps nothing: no reply, no timer; the managers hear. */
  CHECK_INT(count_to("maxint", NULL) + count_to("big", NULL) + count_to("much", NULL), 0);
  CHECK_INT(q_int(st, "SELECT COUNT(*) FROM timers t JOIN conversations c ON c.id = t.conv_id "
                       "WHERE c.chat_id = 'eleven' AND t.name NOT LIKE '\\_%' ESCAPE '\\'"), 0);
  CHECK_INT(q_int(st, "SELECT COUNT(*) FROM timers t JOIN conversations c ON c.id = t.conv_id "
                       "WHERE c.chat_id = 'ten'"), 10);
  CHECK(count_to("managers", NULL) >= 7);
  /* The release of a handoff is within the due-time range. */
  CHECK(q_int(st, "SELECT MAX(due_at) FROM timers WHERE name = '_handoff_release'") > 0);
  CHECK(q_int(st, "SELECT MAX(due_at) FROM timers") <= 253402300799000LL);
  close_env(&v);
}

T(fanout_is_bounded) {
  env v = {0};
  CHECK(open_env(&v, SHOP(",\"limits\":{\"wakeups_pending\":50}"), NULL));
  if (!v.e) return;
  rt_store *st = rt_engine_store(v.e);
  receive(v.e, "r11", "b1", "boom");
  CHECK(settle(&v.loop, v.e, 20));
  long long timers = q_int(st, "SELECT COUNT(*) FROM timers WHERE name NOT LIKE '\\_%' ESCAPE '\\'");
  long long wakes = q_int(st, "SELECT COUNT(*) FROM inbox WHERE kind = 'wake'");
  fprintf(stderr, "  fan-out: timers=%lld wake-ups=%lld\n", timers, wakes);
  CHECK_INT(timers, 0);    /* all fired, and skipped after the failure */
  CHECK(wakes <= 10 + 50 + 10);
  CHECK_INT(q_int(st, "SELECT COUNT(*) FROM events WHERE kind = 'step_error'"), 1);
  CHECK(error_says(v.e, "r11", "limits.wakeups_pending"));
  close_env(&v);
}

T(wakeups_pending_counts_new_names) {
  /* At the limit, setting the same names again adds nothing and passes;
   * one new name is over it and fails the step. */
  env v = {0};
  CHECK(open_env(&v, SHOP(",\"limits\":{\"wakeups_pending\":10}"), NULL));
  if (!v.e) return;
  rt_store *st = rt_engine_store(v.e);
  receive(v.e, "wp", "w1", "ten");
  CHECK(settle(&v.loop, v.e, 20));
  receive(v.e, "wp", "w2", "ten");
  CHECK(settle(&v.loop, v.e, 20));
  CHECK_INT(count_to("wp", "got ten"), 2);
  receive(v.e, "wp", "w3", "fixed1");
  CHECK(settle(&v.loop, v.e, 20));
  CHECK_INT(count_to("wp", "got fixed1"), 0);
  CHECK(error_says(v.e, "wp", "limits.wakeups_pending"));
  CHECK_INT(q_int(st, "SELECT COUNT(*) FROM timers WHERE name LIKE 'e%'"), 10);
  CHECK_INT(q_int(st, "SELECT COUNT(*) FROM timers WHERE name = 'wfixed1'"), 0);
  close_env(&v);
}

T(absurd_config_values) {
  char schema[128];
  snprintf(schema, sizeof schema, "%s/loose.schema.json", dir);
  write_file(schema, "{\"type\":\"object\"}");
  env v = {0};
  CHECK(open_env(&v, SHOP(",\"limits\":{\"step_timeout_ms\":9223372036854775807,"
                          "\"lua_memory_mb\":9223372036854775807,"
                          "\"message_max_kb\":9223372036854775807},"
                          "\"handoff\":{\"release_after\":9223372036854775807}"),
                 schema));
  if (!v.e) return;
  rt_store *st = rt_engine_store(v.e);
  receive(v.e, "cfg", "c1", "handoff");
  receive(v.e, "cfg2", "c2", "ten");
  CHECK(settle(&v.loop, v.e, 10));
  CHECK_INT(count_to("cfg", "got handoff"), 1);
  CHECK_INT(count_to("cfg2", "got ten"), 1);
  CHECK(q_int(st, "SELECT MAX(due_at) FROM timers") <= 253402300799000LL);
  close_env(&v);

  CHECK(open_env(&v, SHOP(",\"store\":{\"keep_days\":200000000000}"), schema));
  if (!v.e) return;
  st = rt_engine_store(v.e);
  receive(v.e, "old", "d1", "hello");
  CHECK(settle(&v.loop, v.e, 10));
  rt_store_exec(st, "UPDATE inbox SET received_at = 0; UPDATE outbox SET created_at = 0");
  /* The watchdog prunes on its first tick (250 ms). */
  uint64_t t0 = uv_hrtime();
  while ((uv_hrtime() - t0) / 1e9 < 0.6) uv_run(&v.loop, UV_RUN_ONCE);
  CHECK_INT(q_int(st, "SELECT COUNT(*) FROM inbox"), 1);
  CHECK_INT(q_int(st, "SELECT COUNT(*) FROM outbox"), 1);
  close_env(&v);
}

/* A burst larger than one transaction's steps (2,048): the first
 * transaction runs and stores 2,048 of them, each with its step; the rest
 * wait in memory, unacknowledged, and run with their receive in the next
 * one. No event is stored as new first (which would cost it a status
 * update when its step ran), and nothing is acked before its commit. */
static int acks, ack_errors;
static void count_ack(void *ud, int status) {
  (void)ud;
  acks++;
  if (status != RT_OK) ack_errors++;
}

T(burst_past_the_batch_limit) {
  env v = {0};
  CHECK(open_env(&v, SHOP(""), NULL));
  if (!v.e) return;
  rt_store *st = rt_engine_store(v.e);
  acks = ack_errors = 0;
  enum { N = 3000 };
  char chat[32], ext[32];
  for (int i = 0; i < N; i++) {
    snprintf(chat, sizeof chat, "burst%d", i);
    snprintf(ext, sizeof ext, "b%d", i);
    rt_event_in ev = {.channel = "console", .ext_id = ext, .chat_id = chat, .user_id = "u",
                      .kind = "text", .text = "hello"};
    CHECK(rt_engine_receive(v.e, &ev, count_ack, NULL) == RT_OK);
  }
  CHECK_INT(acks, 0);
  /* One loop turn: one pump, one transaction; its acks wait for its fsync
   * (walsync.h), which the next commit does not wait for. */
  uv_run(&v.loop, UV_RUN_NOWAIT);
  CHECK_INT(q_int(st, "SELECT COUNT(*) FROM inbox"), 2048);
  CHECK_INT(q_int(st, "SELECT COUNT(*) FROM inbox WHERE status <> 'done'"), 0);
  CHECK_INT(q_int(st, "SELECT COUNT(*) FROM outbox"), 2048);
  for (int i = 0; i < 10000 && !acks; i++) uv_run(&v.loop, UV_RUN_ONCE);
  CHECK_INT(acks, 2048);
  CHECK(settle(&v.loop, v.e, 30));
  CHECK_INT(acks, N);
  CHECK_INT(ack_errors, 0);
  CHECK_INT(q_int(st, "SELECT COUNT(*) FROM inbox WHERE status = 'done'"), N);
  CHECK_INT(q_int(st, "SELECT COUNT(*) FROM outbox WHERE payload LIKE '%got hello%'"), N);
  CHECK_INT(q_int(st, "SELECT COUNT(*) FROM conversations WHERE chat_id LIKE 'burst%'"), N);
  close_env(&v);
}

T(long_chat_ids) {
  env v = {0};
  CHECK(open_env(&v, SHOP(""), NULL));
  if (!v.e) return;
  rt_store *st = rt_engine_store(v.e);
  char a[600], b[600];
  memset(a, 'x', 520);
  memset(b, 'x', 520);
  strcpy(a + 520, "AAAAAA");
  strcpy(b + 520, "BBBBBB");
  receive(v.e, a, "l1", "secret of A");
  receive(v.e, b, "l2", "message of B");
  CHECK(settle(&v.loop, v.e, 10));
  CHECK_INT(count_to(a, "got secret of A"), 1);
  CHECK_INT(count_to(b, "got message of B"), 1);
  CHECK_INT(count_to(a, NULL), 1);
  CHECK_INT(q_int(st, "SELECT COUNT(*) FROM conversations WHERE length(chat_id) > 500 "
                       "AND json_array_length(state, '$.t') = 1"), 2);
  close_env(&v);
}

/* Due timers fire a batch per transaction (timers.c): more than one batch
 * due at once all fire, each once; a timer whose conversation is gone is
 * deleted without an event; the wake-up's data and name reach the step as
 * they were stored, quotes, backslashes and line breaks included. */
T(wakeups_in_batches) {
  env v = {0};
  CHECK(open_env(&v, SHOP(",\"limits\":{\"wakeups_pending\":5000}"), NULL));
  if (!v.e) return;
  rt_store *st = rt_engine_store(v.e);
  receive(v.e, "b0", "c0", "hold");
  CHECK(settle(&v.loop, v.e, 10));
  sqlite3 *db = rt_store_db(rt_engine_store(v.e));
  /* 2,500 more conversations, each with a wake-up long due. */
  CHECK(sqlite3_exec(db,
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2500) "
    "INSERT INTO conversations (channel, chat_id, flow, step, state, created_at, updated_at) "
    "SELECT channel, 'b-' || i, flow, step, state, created_at, updated_at "
    "FROM conversations, n WHERE chat_id = 'b0';"
    "INSERT INTO timers (conv_id, name, due_at, step, data, created_at) "
    "SELECT id, 'w', 1000, 'woke', '{\"k\":\"n' || id || '\"}', 0 FROM conversations "
    "WHERE chat_id LIKE 'b-%';"
    "INSERT INTO timers (conv_id, name, due_at, step, data, created_at) "
    "SELECT id, 'q\"\\\n', 999, 'woke', '{\"k\":\"a\\\"b\\\\c\\nd\"}', 0 FROM conversations "
    "WHERE chat_id = 'b0';"
    "INSERT INTO timers (conv_id, name, due_at, step, data, created_at) "
    "VALUES (987654321, 'gone', 998, 'woke', '{}', 0);", NULL, NULL, NULL) == SQLITE_OK);
  CHECK_INT(q_int(st, "SELECT COUNT(*) FROM timers WHERE due_at < 2000"), 2502);
  CHECK(rt_engine_fire_timers(v.e) == RT_OK);
  CHECK(settle(&v.loop, v.e, 60));
  CHECK_INT(q_int(st, "SELECT COUNT(*) FROM timers WHERE due_at < 2000"), 0);
  CHECK_INT(q_int(st, "SELECT COUNT(*) FROM inbox WHERE kind = 'wake' AND status = 'done'"),
            2501);
  CHECK_INT(q_int(st, "SELECT COUNT(DISTINCT chat_id) FROM outbox WHERE chat_id LIKE 'b-%'"),
            2500);
  CHECK_INT(q_int(st, "SELECT COUNT(*) FROM outbox WHERE chat_id LIKE 'b-%'"), 2500);
  CHECK_INT(q_int(st, "SELECT COUNT(*) FROM inbox WHERE kind = 'wake' AND "
                       "json_extract(payload, '$.name') = 'q\"\\' || char(10)"), 1);
  CHECK_INT(q_int(st, "SELECT COUNT(*) FROM inbox WHERE kind = 'wake' AND chat_id = 'b-7' AND "
                       "json_extract(payload, '$.data.k') = 'n' || (SELECT id FROM "
                       "conversations WHERE chat_id = 'b-7')"), 1);
  CHECK_INT(count_to("b0", "woke a\"b\\c\nd"), 1);
  close_env(&v);
}

/* n conversations of chats prefix1 .. prefixn, each with one wake-up long
 * due: its name, its step and data (an SQL expression over the row's
 * chat_id). */
static void due_wakeups(rt_store *st, int n, const char *prefix, const char *name,
                        const char *step, const char *data) {
  char *q = rt_xasprintf(
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < %d) "
    "INSERT INTO conversations (channel, chat_id, flow, step, state, created_at, updated_at) "
    "SELECT 'console', '%s' || i, 'main', 'start', '{}', 0, 0 FROM n;"
    "INSERT INTO timers (conv_id, name, due_at, step, data, created_at) "
    "SELECT id, '%s', 1000, '%s', %s, 0 FROM conversations WHERE chat_id LIKE '%s%%';",
    n, prefix, name, step, data, prefix);
  CHECK(sqlite3_exec(rt_store_db(st), q, NULL, NULL, NULL) == SQLITE_OK);
  free(q);
}

/* Due wake-ups fire inside the pump's transaction: one whose chat is idle
 * runs there and then, with no inbox row at all (the timer's delete, in
 * the same commit as the step's reply, is its record); a transaction
 * takes at most 2,048, the rest wait for the next. No explicit fire: the
 * running engine finds them itself (at start here). */
T(wakeups_run_in_their_fire) {
  env v = {0};
  CHECK(open_env_with(&v, SHOP(""), NULL, 0, false));
  if (!v.e) return;
  rt_store *st = rt_engine_store(v.e);
  enum { N = 3000 };
  due_wakeups(st, N, "w-", "w", "woke", "'{\"k\":\"' || chat_id || '\"}'");
  rt_engine_start(v.e);
  /* One loop turn: one pump, one transaction. */
  uv_run(&v.loop, UV_RUN_NOWAIT);
  CHECK_INT(q_int(st, "SELECT COUNT(*) FROM timers"), N - 2048);
  CHECK_INT(q_int(st, "SELECT COUNT(*) FROM events WHERE kind = 'woke'"), 2048);
  CHECK_INT(q_int(st, "SELECT COUNT(*) FROM inbox WHERE kind = 'wake'"), 0);
  CHECK_INT(q_int(st, "SELECT COUNT(*) FROM inbox WHERE status <> 'done'"), 0);
  CHECK_INT(q_int(st, "SELECT COUNT(*) FROM outbox WHERE json_extract(payload, '$.text') = "
                       "'woke ' || chat_id"), 2048);
  CHECK(settle(&v.loop, v.e, 60));
  CHECK_INT(q_int(st, "SELECT COUNT(*) FROM timers"), 0);
  CHECK_INT(q_int(st, "SELECT COUNT(*) FROM inbox WHERE kind = 'wake'"), 0);
  CHECK_INT(q_int(st, "SELECT COUNT(DISTINCT chat_id) FROM outbox WHERE "
                       "json_extract(payload, '$.text') = 'woke ' || chat_id"), N);
  CHECK_INT(q_int(st, "SELECT COUNT(*) FROM outbox"), N);
  /* The wake event's fields reached the step as the timer had them (the
   * step recorded them). */
  CHECK_INT(q_int(st, "SELECT COUNT(*) FROM events WHERE kind = 'woke' AND "
                       "json_extract(data, '$.step') = 'woke' AND "
                       "json_extract(data, '$.name') = 'w' AND "
                       "json_extract(data, '$.at') = 1"), N);
  close_env(&v);
}

/* c:customer() reads the record, and the customer's addresses only when
 * the flow looks at them: a step that greets by name makes no read of
 * them (bench_retention), one that looks gets the reachable newest per
 * channel, read once, kept on the table; the reader stays hidden. */
T(customer_addresses_when_read) {
  env v = {0};
  CHECK(open_env(&v, SHOP(""), NULL));
  if (!v.e) return;
  rt_store *st = rt_engine_store(v.e);
  sqlite3 *db = rt_store_db(st);
  CHECK(sqlite3_exec(db,
    "INSERT INTO customers (phone, name, updated_at) VALUES ('+79990001122', 'Иван', 0);"
    "INSERT INTO customer_addresses (channel, address, phone, updated_at) VALUES "
    "('telegram', 'tg-old', '+79990001122', 1), ('telegram', 'tg-new', '+79990001122', 2), "
    "('whatsapp', '79990001122', '+79990001122', 3);"
    "UPDATE customer_addresses SET status = 'blocked' WHERE channel = 'whatsapp';",
    NULL, NULL, NULL) == SQLITE_OK);
  tstore_trace tr = {.needle = "FROM customer_addresses WHERE phone"};
  tstore_trace_start(st, &tr);
  receive(v.e, "+79990001122", "cu1", "name");
  CHECK(settle(&v.loop, v.e, 10));
  CHECK_INT(count_to("+79990001122", "name Иван"), 1);
  CHECK_INT(tr.hits, 0);
  receive(v.e, "+79990001122", "cu2", "addr");
  CHECK(settle(&v.loop, v.e, 10));
  CHECK_INT(count_to("+79990001122", "addr tg-new nil true false nil"), 1);
  CHECK_INT(tr.hits, 1);
  tstore_trace_stop(st);
  close_env(&v);
}

/* A step that sets its own wake-up again (the same name, a day later)
 * while more are due than one transaction takes: every due wake-up fires
 * once, none is deleted without firing, and each conversation keeps its
 * next one. (Deleting a batch's timers by "the first 2,048 due" after its
 * steps ran took the re-set ones out of that count and deleted due ones
 * in their place.) */
T(rearmed_wakeups_all_fire) {
  env v = {0};
  CHECK(open_env_with(&v, SHOP(""), NULL, 0, false));
  if (!v.e) return;
  rt_store *st = rt_engine_store(v.e);
  enum { N = 2048 + 300 };
  due_wakeups(st, N, "ra-", "again", "rearm", "'{}'");
  rt_engine_start(v.e);
  CHECK(settle(&v.loop, v.e, 60));
  CHECK_INT(q_int(st, "SELECT COUNT(*) FROM events WHERE kind = 'rearmed'"), N);
  CHECK_INT(q_int(st, "SELECT COUNT(DISTINCT conv_id) FROM events WHERE kind = 'rearmed'"), N);
  CHECK_INT(q_int(st, "SELECT COUNT(*) FROM timers WHERE name = 'again' AND due_at > 1000"), N);
  close_env(&v);
}

/* Runs the loop until the WAL is all copied into the file or max_s
 * passed; the pages left. */
static int64_t wal_left_after(env *v, double max_s) {
  rt_store *s = rt_engine_store(v->e);
  uint64_t t0 = uv_hrtime();
  while (rt_store_wal_pages(s) > 0 && (uv_hrtime() - t0) / 1e9 < max_s)
    uv_run(&v->loop, UV_RUN_ONCE);
  return rt_store_wal_pages(s);
}

static long long file_size(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 ? (long long)st.st_size : 0;
}

/* The loop copies the WAL into the file itself (SQLite's own checkpoint,
 * inside a COMMIT, is off): a burst that never lets the loop rest still
 * keeps the WAL near four times its bound (a test bound of 64 pages); an idle
 * engine has no copy under way, and the pages committed while the last
 * one ran were copied when it finished; a second later everything is. */
T(wal_stays_bounded) {
  env v = {0};
  CHECK(open_env_with(&v, SHOP(""), NULL, 64, true));
  if (!v.e) return;
  rt_store *st = rt_engine_store(v.e);
  rt_store *s = rt_engine_store(v.e);
  int64_t w0 = rt_store_wal_written(s);
  char chat[32], ext[32], wal[160];
  snprintf(wal, sizeof wal, "%s/data/shop.db-wal", dir);
  long long peak = 0;
  for (int round = 0; round < 60; round++) {
    for (int i = 0; i < 500; i++) {
      snprintf(chat, sizeof chat, "wal%d", (i * 7919 + round) % 2500);
      snprintf(ext, sizeof ext, "wal%d.%d", round, i);
      receive(v.e, chat, ext, "hello");
    }
    for (int k = 0; k < 50 && !rt_engine_idle(v.e); k++) {
      uv_run(&v.loop, UV_RUN_NOWAIT);
      if (file_size(wal) > peak) peak = file_size(wal);
    }
  }
  CHECK(settle(&v.loop, v.e, 30));
  int64_t written = rt_store_wal_written(s) - w0;
  CHECK_INT(q_int(st, "SELECT COUNT(*) FROM inbox WHERE status = 'done'"), 30000);
  /* The burst wrote many times the bound; the file held about four
   * bounds' worth (engine.c, checkpoint()), what one copy and one
   * transaction add, not everything written. */
  if (written < 32 * 64 || peak >= written * 4096 / 4)
    fprintf(stderr, "  written %lld pages, WAL file peak %lld bytes\n", (long long)written, peak);
  CHECK(written >= 32 * 64);
  CHECK(peak > 0 && peak < written * 4096 / 4);
  CHECK(rt_store_wal_pages(s) < 64);
  /* A second without work: whatever is left is copied. */
  CHECK_INT(wal_left_after(&v, 5), 0);
  close_env(&v);
}

/* A reader in another process (here another connection) holds an old
 * snapshot: a copy stops short of the pages committed after it began, and
 * the next one would too. An idle engine does not start copy after copy
 * meanwhile (it did, back to back, on the worker), and once the reader is
 * gone the next work copies everything. */
T(copies_wait_for_a_reader) {
  env v = {0};
  CHECK(open_env_with(&v, SHOP(""), NULL, 64, true));
  if (!v.e) return;
  rt_store *s = rt_engine_store(v.e);
  char path[160], chat[32], ext[32];
  snprintf(path, sizeof path, "%s/data/shop.db", dir);
  sqlite3 *rd = NULL;
  CHECK(sqlite3_open_v2(path, &rd, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK);
  CHECK(sqlite3_exec(rd, "BEGIN; SELECT COUNT(*) FROM conversations;", NULL, NULL, NULL) ==
        SQLITE_OK);
  /* Less than four bounds' worth in all (the loop would copy that itself,
   * and stop short too), more than the last few the loop copies. */
  for (int i = 0; i < 300; i++) {
    snprintf(chat, sizeof chat, "rd%d", i % 100);
    snprintf(ext, sizeof ext, "rd%d", i);
    receive(v.e, chat, ext, "hello");
  }
  CHECK(settle(&v.loop, v.e, 30));
  CHECK(rt_store_wal_pages(s) > 8);   /* held by the reader */
  CHECK(rt_store_wal_frames(s) < 4 * 64);
  const rt_engine_stats *es = rt_engine_get_stats(v.e);
  uint64_t c0 = es->wal_copies;
  uint64_t t0 = uv_hrtime();
  /* Past the trim after a second without work, which copies whatever is
   * left. */
  while ((uv_hrtime() - t0) / 1e9 < 2.5) uv_run(&v.loop, UV_RUN_ONCE);
  if (es->wal_copies - c0 > 4)
    fprintf(stderr, "  %llu copies in 2.5 s idle\n", (unsigned long long)(es->wal_copies - c0));
  CHECK(es->wal_copies - c0 <= 4);
  CHECK(sqlite3_exec(rd, "COMMIT", NULL, NULL, NULL) == SQLITE_OK);
  sqlite3_close(rd);
  receive(v.e, "rd0", "rd-after", "hello");
  CHECK(settle(&v.loop, v.e, 10));
  CHECK_INT(wal_left_after(&v, 5), 0);
  close_env(&v);
}

/* A disk that takes 300 ms per fsync; runs on the worker thread. */
static atomic_int syncs_done;
static int slow_fsync(const char *wal_path) {
  struct timespec d = {0, 300 * 1000000L};
  nanosleep(&d, NULL);
  int rc = rt_store_wal_fsync(wal_path);
  atomic_fetch_add(&syncs_done, 1);
  return rc;
}

static int ack_syncs = -1;   /* syncs done when the ack came */
static void sync_ack(void *ud, int status) {
  (void)ud;
  (void)status;
  acks++;
  ack_syncs = atomic_load(&syncs_done);
}

T(slow_sync_holds_acks_and_sends) {
  wal_fsync_hook = slow_fsync;
  env v = {0};
  CHECK(open_env(&v, SHOP(""), NULL));
  wal_fsync_hook = NULL;
  if (!v.e) return;
  rt_store *st = rt_engine_store(v.e);
  /* Whatever the start committed is on disk first. */
  uint64_t t0 = uv_hrtime();
  while (!rt_engine_idle(v.e) && (uv_hrtime() - t0) / 1e9 < 5) uv_run(&v.loop, UV_RUN_ONCE);
  int base = atomic_load(&syncs_done), sent0 = nmsgs;
  acks = 0;
  rt_event_in ev = {.channel = "console", .ext_id = "s1", .chat_id = "slowdisk", .user_id = "u",
                    .kind = "text", .text = "hello"};
  CHECK(rt_engine_receive(v.e, &ev, sync_ack, NULL) == RT_OK);
  /* 100 ms of loop: the step ran and committed, the fsync is under way. */
  t0 = uv_hrtime();
  while ((uv_hrtime() - t0) / 1e6 < 100) {
    uv_run(&v.loop, UV_RUN_NOWAIT);
    struct timespec d = {0, 5 * 1000000L};
    nanosleep(&d, NULL);
  }
  CHECK_INT(q_int(st, "SELECT COUNT(*) FROM inbox WHERE chat_id = 'slowdisk' AND status = 'done'"),
            1);
  CHECK_INT(q_int(st, "SELECT COUNT(*) FROM outbox WHERE chat_id = 'slowdisk'"), 1);
  CHECK_INT(acks, 0);
  CHECK_INT(nmsgs, sent0);
  CHECK_INT(atomic_load(&syncs_done), base);
  /* Once it is on disk: the ack, then the reply. */
  t0 = uv_hrtime();
  while ((!acks || nmsgs == sent0) && (uv_hrtime() - t0) / 1e9 < 5) uv_run(&v.loop, UV_RUN_ONCE);
  CHECK_INT(acks, 1);
  CHECK(ack_syncs > base);
  CHECK_INT(nmsgs, sent0 + 1);
  close_env(&v);
}

static atomic_int disk_broken;
static int failing_fsync(const char *wal_path) {
  return atomic_load(&disk_broken) ? 5 /* EIO */ : rt_store_wal_fsync(wal_path);
}

static void ack_too_early(void *ud, int status) {
  (void)ud;
  (void)status;
  _exit(3);
}

static void send_too_early(rt_channel *ch, const rt_out_msg *m, rt_send_done done, void *ud) {
  (void)ch;
  (void)m;
  (void)done;
  (void)ud;
  _exit(4);
}

T(failed_sync_stops_the_process) {
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) {
    chan.send = send_too_early;
    wal_fsync_hook = failing_fsync;
    env v = {0};
    if (!open_env(&v, SHOP(""), NULL)) _exit(2);
    uint64_t t1 = uv_hrtime();
    while (!rt_engine_idle(v.e) && (uv_hrtime() - t1) / 1e9 < 5) uv_run(&v.loop, UV_RUN_ONCE);
    atomic_store(&disk_broken, 1);
    rt_event_in ev = {.channel = "console", .ext_id = "f1", .chat_id = "baddisk", .user_id = "u",
                      .kind = "text", .text = "hello"};
    rt_engine_receive(v.e, &ev, ack_too_early, NULL);
    uint64_t t0 = uv_hrtime();
    while ((uv_hrtime() - t0) / 1e9 < 5) uv_run(&v.loop, UV_RUN_ONCE);
    _exit(0);   /* never stopped */
  }
  int status = 0;
  CHECK(waitpid(pid, &status, 0) == pid);
  CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);
  if (WIFEXITED(status)) fprintf(stderr, "  child exit %d\n", WEXITSTATUS(status));
}

int main(void) {
  snprintf(dir, sizeof dir, "/tmp/test_engine_effects.XXXXXX");
  if (!mkdtemp(dir)) return 1;
  if (!getenv("RT_SOURCE_DIR")) setenv("RT_SOURCE_DIR", RT_SOURCE_DIR, 1);
  char path[128];
  snprintf(path, sizeof path, "%s/flows", dir);
  mkdir(path, 0755);
  snprintf(path, sizeof path, "%s/flows/main.lua", dir);
  write_file(path, flow);
  T_RUN(wakeups_same_due_second);
  T_RUN(customer_addresses_when_read);
  T_RUN(limits_fail_the_step);
  T_RUN(fanout_is_bounded);
  T_RUN(wakeups_pending_counts_new_names);
  T_RUN(absurd_config_values);
  T_RUN(long_chat_ids);
  T_RUN(wakeups_in_batches);
  T_RUN(burst_past_the_batch_limit);
  T_RUN(wakeups_run_in_their_fire);
  T_RUN(rearmed_wakeups_all_fire);
  T_RUN(wal_stays_bounded);
  T_RUN(copies_wait_for_a_reader);
  T_RUN(slow_sync_holds_acks_and_sends);
  T_RUN(failed_sync_stops_the_process);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  if (system(cmd) != 0) { /* best effort */ }
  return T_DONE();
}
