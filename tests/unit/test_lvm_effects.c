/* test_lvm_effects.c -- what a finished step hands C (rt_fx, lvm.h) and the
 * states kept as Lua tables between events.
 *
 * - every effect a step can have, typed: messages to the customer, the
 *   managers and another chat with their stored payloads (about, buttons,
 *   media, template, text; keys sorted), wake-ups set and cancelled, leads
 *   with their campaign, events with outcome, handoff/release/optout, the
 *   new flow/step/mode/phone and the state text;
 * - a value that cannot be stored fails the step with its path;
 * - the state cache: a kept state is what the next turn at that revision
 *   starts from; a step that changes it and fails leaves nothing of that
 *   change behind; another revision reads the stored text; the cache is
 *   bounded and forget drops one conversation. */
#include "lvm.h"
#include "rt.h"
#include "t.h"
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int64_t fake_now(void *ud) { (void)ud; return 1772434800000LL; }
static rt_host host = {.now_ms = fake_now};
static char dir[64];
static rt_bundle *b;

static const char *src =
  "return flow 'main' {\n"
  "  start = function(c) end,\n"
  "  all = function(c, ev)\n"
  "    c.slots.campaign = 'spring'\n"
  "    c.phone = '+79990001122'\n"
  "    c:say('Привет \"друг\"', {buttons = {'Да', {text = 'Нет'}}})\n"
  "    c:say('фото', {media = {ref = 'https://x/1.jpg', kind = 'photo'}})\n"
  "    c:say('шаблон', {template = {name = 'remind', params = {'a', 'b'}}})\n"
  "    c:notify('новый лид')\n"
  "    c:send('telegram', '42', 'туда')\n"
  "    c:wake(1800000000, 'later', {n = 1})\n"
  "    c:wake('1h', 'soon', nil, 't2')\n"
  "    c:cancel('old')\n"
  "    c:lead{car = 'Лада', parts = {'фильтр'}, campaign = 'autumn'}\n"
  "    c:record('outcome', {outcome = 'yes'})\n"
  "    c:handoff('просит человека')\n"
  "    c:optout()\n"
  "    return 'next'\n"
  "  end,\n"
  "  next = function(c) end,\n"
  "  bad_lead = function(c) c:lead{f = print} end,\n"
  "  count = function(c, ev)\n"
  "    c.slots.n = (c.slots.n or 0) + 1\n"
  "    c.slots.seen = c.slots.seen or {}\n"
  "    c.slots.seen[#c.slots.seen + 1] = ev.text\n"
  "    if ev.text == 'fail' then error('boom') end\n"
  "  end,\n"
  "}\n";

static rt_lturn *begin(int64_t id, int64_t rev, const char *step, const char *state,
                       const char *text, int *st) {
  char ev[128];
  snprintf(ev, sizeof ev, "{\"kind\":\"text\",\"text\":\"%s\"}", text);
  rt_lturn_in in = {.id = id, .rev = rev, .channel = "console", .chat = "c1", .flow = "main",
                    .step = step, .mode = "bot", .state = state, .event = ev};
  rt_lturn *t = NULL;
  *st = rt_lturn_begin(b, NULL, &in, &t);
  return t;
}

T(every_effect_typed) {
  int st;
  rt_lturn *t = begin(1, 0, "all", "{}", "x", &st);
  CHECK_INT(st, RT_LTURN_DONE);
  const rt_fx *fx = rt_lturn_effects(t);
  CHECK(fx != NULL);
  if (!fx) { rt_lturn_free(t); return; }
  CHECK_STR(fx->flow, "main");
  CHECK_STR(fx->step, "next");
  CHECK_STR(fx->mode, "handoff");
  CHECK_STR(fx->phone, "+79990001122");
  CHECK_STR(fx->campaign, "spring");
  CHECK_STR(fx->state_json, "{\"campaign\":\"spring\"}");
  CHECK_INT(fx->nout, 5);
  if (fx->nout == 5) {
    const rt_fx_msg *m = fx->out;
    CHECK_INT(m[0].to, RT_FX_SELF);
    CHECK_STR(m[0].payload_json, "{\"buttons\":[\"Да\",{\"text\":\"Нет\"}],\"text\":\"Привет \\\"друг\\\"\"}");
    CHECK_INT(m[0].nbuttons, 2);
    CHECK(m[0].nbuttons == 2 && strcmp(m[0].buttons[1], "Нет") == 0);
    CHECK_INT(m[0].size, (int64_t)strlen("Привет \"друг\"") +
                         (int64_t)strlen("[\"Да\",{\"text\":\"Нет\"}]"));
    CHECK_STR(m[1].media_ref, "https://x/1.jpg");
    CHECK_STR(m[1].media_kind, "photo");
    CHECK_STR(m[1].payload_json, "{\"media\":{\"kind\":\"photo\",\"ref\":\"https://x/1.jpg\"},\"text\":\"фото\"}");
    CHECK_STR(m[2].template_name, "remind");
    CHECK_STR(m[2].payload_json, "{\"template\":{\"name\":\"remind\",\"params\":[\"a\",\"b\"]},\"text\":\"шаблон\"}");
    CHECK_INT(m[3].to, RT_FX_MANAGERS);
    CHECK_STR(m[3].payload_json, "{\"about\":\"c1\",\"text\":\"новый лид\"}");
    CHECK_INT(m[4].to, RT_FX_CHAT);
    CHECK_STR(m[4].channel, "telegram");
    CHECK_STR(m[4].chat, "42");
    CHECK_STR(m[4].payload_json, "{\"about\":\"c1\",\"text\":\"туда\"}");
  }
  CHECK_INT(fx->ntimers, 3);
  if (fx->ntimers == 3) {
    CHECK(!fx->timers[0].cancel && fx->timers[0].due_ok && fx->timers[0].due_s == 1800000000);
    CHECK_STR(fx->timers[0].name, "later");
    CHECK_STR(fx->timers[0].step, "later");
    CHECK_STR(fx->timers[0].data_json, "{\"n\":1}");
    CHECK_STR(fx->timers[1].name, "t2");
    CHECK(fx->timers[1].due_s == 1772434800 + 3600 && fx->timers[1].data_json == NULL);
    CHECK(fx->timers[2].cancel);
    CHECK_STR(fx->timers[2].name, "old");
  }
  CHECK_INT(fx->nleads, 1);
  if (fx->nleads == 1) {
    CHECK_STR(fx->leads[0].car, "Лада");
    CHECK_STR(fx->leads[0].campaign, "autumn");
    CHECK_STR(fx->leads[0].flow, "main");
    CHECK_STR(fx->leads[0].parts_json, "[\"фильтр\"]");
    CHECK_STR(fx->leads[0].data_json, "{\"campaign\":\"autumn\",\"car\":\"Лада\",\"parts\":[\"фильтр\"]}");
    CHECK(fx->leads[0].phone == NULL);
  }
  CHECK_INT(fx->nevents, 1);
  if (fx->nevents == 1) {
    CHECK_STR(fx->events[0].kind, "outcome");
    CHECK_STR(fx->events[0].outcome, "yes");
    CHECK_STR(fx->events[0].campaign, "spring");
    CHECK_STR(fx->events[0].data_json, "{\"outcome\":\"yes\"}");
  }
  CHECK_INT(fx->nops, 2);
  if (fx->nops == 2) {
    CHECK_INT(fx->ops[0].op, RT_FX_HANDOFF);
    CHECK_STR(fx->ops[0].reason, "просит человека");
    CHECK_STR(fx->ops[0].data_json, "{\"reason\":\"просит человека\"}");
    CHECK_INT(fx->ops[1].op, RT_FX_OPTOUT);
  }
  CHECK_INT(fx->usage.calls, 0);
  rt_lturn_free(t);
}

T(unstorable_effect_fails) {
  int st;
  rt_lturn *t = begin(1, 0, "bad_lead", "{}", "x", &st);
  CHECK_INT(st, RT_LTURN_ERROR);
  const char *msg = json_string_value(json_object_get(rt_lturn_error(t), "msg"));
  CHECK(msg && strstr(msg, "c.leads[1].lead.f: a function cannot be stored"));
  CHECK_STR(json_string_value(json_object_get(rt_lturn_error(t), "code")), "state");
  CHECK(rt_lturn_effects(t) == NULL);
  rt_lturn_free(t);
}

/* The state text the next turn writes, owned. */
static char *count(int64_t id, int64_t rev, const char *stored, const char *text, bool keep,
                   int *st) {
  rt_lturn *t = begin(id, rev, "count", stored, text, st);
  char *out = *st == RT_LTURN_DONE ? rt_xstrdup(rt_lturn_slots(t)) : NULL;
  if (keep) rt_lturn_keep_state(t, rev + 1);
  rt_lturn_free(t);
  return out;
}

T(state_cache) {
  int st;
  char *s = count(7, 1, "{}", "a", true, &st);
  CHECK_STR(s, "{\"n\":1,\"seen\":[\"a\"]}");
  free(s);
  CHECK_INT(rt_bundle_cached_states(b), 1);
  /* Kept at rev 2: the stored text is not read (here it says otherwise). */
  s = count(7, 2, "{\"n\":100}", "b", true, &st);
  CHECK_STR(s, "{\"n\":2,\"seen\":[\"a\",\"b\"]}");
  free(s);
  /* A failed step changed the table, then raised: what it started from
   * must not come back changed. */
  s = count(7, 3, "{\"n\":2,\"seen\":[\"a\",\"b\"]}", "fail", true, &st);
  CHECK_INT(st, RT_LTURN_ERROR);
  free(s);
  CHECK_INT(rt_bundle_cached_states(b), 0);
  s = count(7, 3, "{\"n\":2,\"seen\":[\"a\",\"b\"]}", "c", false, &st);
  CHECK_STR(s, "{\"n\":3,\"seen\":[\"a\",\"b\",\"c\"]}");
  free(s);
  /* Finished but not committed (not kept): the next turn reads the text. */
  s = count(7, 3, "{\"n\":2,\"seen\":[\"a\",\"b\"]}", "c", false, &st);
  CHECK_STR(s, "{\"n\":3,\"seen\":[\"a\",\"b\",\"c\"]}");
  free(s);
  /* Kept for rev 4, but the row moved on (rev 5: a manager took it): the
   * stored text wins. */
  free(count(7, 3, "{}", "d", true, &st));
  s = count(7, 5, "{\"n\":50}", "e", true, &st);
  CHECK_STR(s, "{\"n\":51,\"seen\":[\"e\"]}");
  free(s);
  rt_bundle_forget_state(b, 7);
  CHECK_INT(rt_bundle_cached_states(b), 0);
  s = count(7, 6, "{\"n\":9}", "f", false, &st);
  CHECK_STR(s, "{\"n\":10,\"seen\":[\"f\"]}");
  free(s);
}

T(state_cache_bounded) {
  /* This bundle keeps at most 4 (state_cache in main). */
  int st;
  for (int64_t id = 100; id < 120; id++) free(count(id, 1, "{}", "x", true, &st));
  CHECK(rt_bundle_cached_states(b) <= 4);
  /* the newest are kept */
  char *s = count(119, 2, "{}", "y", true, &st);
  CHECK_STR(s, "{\"n\":2,\"seen\":[\"x\",\"y\"]}");
  free(s);
  s = count(100, 2, "{}", "y", true, &st);
  CHECK_STR(s, "{\"n\":1,\"seen\":[\"y\"]}");
  free(s);
}

int main(void) {
  snprintf(dir, sizeof dir, "/tmp/test_lvm_effects.XXXXXX");
  if (!mkdtemp(dir)) return 1;
  char path[128];
  snprintf(path, sizeof path, "%s/main.lua", dir);
  FILE *f = fopen(path, "w");
  fputs(src, f);
  fclose(f);
  rt_bundle_opts o = {.flows_dir = dir, .start_flow = "main", .host = &host, .state_cache = 4};
  char *err = NULL;
  if (rt_bundle_load(&o, &b, &err) != RT_OK) { fprintf(stderr, "%s\n", err); return 1; }
  T_RUN(every_effect_typed);
  T_RUN(unstorable_effect_fails);
  T_RUN(state_cache);
  T_RUN(state_cache_bounded);
  rt_bundle_unref(b);
  unlink(path);
  rmdir(dir);
  return T_DONE();
}
