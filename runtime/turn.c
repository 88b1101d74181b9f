/* turn.c -- starting, resuming and killing steps (see turn.h). */
#include "turn.h"
#include "handoff.h"
#include "http_client.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct rt_turns {
  rt_turns_opts o;
  rt_host host;
  rt_http *http;              /* lent to bundles (rt_bundle_opts.http) */
  bool own_http;              /* made here (none was lent): closed here */
  rt_turn *done_head, *done_tail;
  rt_turn *yielded;
  rt_turn **resume;
  size_t nresume, capresume;
  size_t running;
  bool closing;
};

static void kick(rt_turns *ts) {
  if (ts->o.kick && !ts->closing) ts->o.kick(ts->o.kick_ud);
}

/* ---- lists ---- */

static void yielded_add(rt_turns *ts, rt_turn *t) {
  t->prev_y = NULL;
  t->next_y = ts->yielded;
  if (ts->yielded) ts->yielded->prev_y = t;
  ts->yielded = t;
}

static void yielded_del(rt_turns *ts, rt_turn *t) {
  if (t->prev_y) t->prev_y->next_y = t->next_y;
  else if (ts->yielded == t) ts->yielded = t->next_y;
  if (t->next_y) t->next_y->prev_y = t->prev_y;
  t->prev_y = t->next_y = NULL;
}

static void done_add(rt_turns *ts, rt_turn *t) {
  t->next = NULL;
  if (ts->done_tail) ts->done_tail->next = t;
  else ts->done_head = t;
  ts->done_tail = t;
}

void rt_turn_free(rt_turn *t) {
  if (!t) return;
  if (t->owner) t->owner->running--;
  rt_lturn_free(t->lt);
  json_decref(t->limit_err);
  json_decref(t->event);
  rt_conv_row_clear(&t->conv);
  free(t->ev.payload);
  free(t);
}

void rt_turn_settle(rt_turn *t, bool keep_lt) {
  const char *k = json_string_value(json_object_get(t->event, "kind"));
  size_t n = k ? strnlen(k, sizeof t->kind - 1) : 1;
  memcpy(t->kind, k ? k : "-", n);
  t->kind[n] = '\0';
  if (!keep_lt) {
    rt_lturn_free(t->lt);
    t->lt = NULL;
    t->bundle = NULL;
  }
  json_decref(t->limit_err);
  t->limit_err = NULL;
  json_decref(t->event);
  t->event = NULL;
  free(t->ev.payload);
  t->ev.payload = NULL;
}

/* ---- host calls ---- */

static int64_t host_now(void *ud) {
  rt_turns *ts = ud;
  return rt_clock_now(ts->o.clock);
}

static int host_customer(void *ud, const char *phone, const char *channel, const char *chat,
                         const rt_record_sink *k) {
  rt_turns *ts = ud;
  return rt_store_customer_read(ts->o.store, phone, channel, chat, k);
}

static int host_customer_addresses(void *ud, const char *phone, const rt_record_sink *k) {
  rt_turns *ts = ud;
  return rt_store_customer_addresses(ts->o.store, phone, k);
}

static void host_ready(void *ud, rt_lturn *lt) {
  rt_turns *ts = ud;
  if (ts->nresume == ts->capresume) {
    ts->capresume = ts->capresume ? ts->capresume * 2 : 16;
    ts->resume = rt_xrealloc(ts->resume, ts->capresume * sizeof *ts->resume);
  }
  ts->resume[ts->nresume++] = rt_lturn_host(lt);
  kick(ts);
}

/* ---- the module ---- */

rt_turns *rt_turns_new(const rt_turns_opts *o) {
  rt_turns *ts = rt_xcalloc(1, sizeof *ts);
  ts->o = *o;
  ts->host = (rt_host){.ud = ts, .ready = host_ready, .customer = host_customer,
                       .customer_addresses = host_customer_addresses, .now_ms = host_now};
  /* Cheap: curl is set up by the first request that goes out. */
  ts->own_http = !o->http;
  ts->http = o->http ? o->http : rt_http_new(o->loop);
  return ts;
}

const rt_host *rt_turns_host(rt_turns *ts) { return &ts->host; }

rt_http *rt_turns_http(rt_turns *ts) { return ts->http; }

void rt_turns_close(rt_turns *ts, void (*done)(void *), void *ud) {
  ts->closing = true;
  /* Abandon turns in flight: their inbox rows stay 'new' and run again at
   * the next start. */
  for (rt_turn *t = ts->done_head; t;) { rt_turn *n = t->next; rt_turn_free(t); t = n; }
  ts->done_head = ts->done_tail = NULL;
  while (ts->yielded) { rt_turn *t = ts->yielded; yielded_del(ts, t); rt_turn_free(t); }
  free(ts->resume);
  rt_http *h = ts->own_http ? ts->http : NULL;
  free(ts);
  if (h) rt_http_close(h, done, ud);
  else if (done) done(ud);
}

bool rt_turns_any_done(const rt_turns *ts) { return ts->done_head != NULL; }
bool rt_turns_any_resumable(const rt_turns *ts) { return ts->nresume > 0; }
size_t rt_turns_running(const rt_turns *ts) { return ts->running; }

rt_turn *rt_turns_take_done(rt_turns *ts) {
  rt_turn *t = ts->done_head;
  ts->done_head = ts->done_tail = NULL;
  return t;
}

void rt_turns_abandon(rt_turns *ts, rt_turn *t) {
  yielded_del(ts, t);
  rt_turn_free(t);
}

rt_turn *rt_turns_start(rt_turns *ts, rt_bundle *b, rt_convq_chat *chat, json_t *doc,
                        bool quarantine) {
  rt_turn *t = rt_xcalloc(1, sizeof *t);
  t->owner = ts;
  t->chat = chat;
  t->bundle = b;
  t->ev = rt_convq_start(chat);
  ts->running++;
  t->started_ms = rt_clock_now(ts->o.clock);
  rt_store *s = ts->o.store;
  /* A quarantined event is not even parsed: whatever in it brought the
   * process down stays untouched. */
  if (quarantine) {
    t->event = json_object();
    json_decref(doc);
  } else if (doc && t->ev.payload) {
    t->event = doc;   /* built from this very text at receive: no second parse */
  } else {
    json_decref(doc);
    if (!t->ev.payload && rt_store_inbox_get(s, t->ev.id, &t->ev.payload) != RT_OK)
      t->ev.payload = rt_xstrdup("{}");
    t->event = json_loads(t->ev.payload, 0, NULL);
  }
  if (!json_is_object(t->event)) {
    json_decref(t->event);
    t->event = json_pack("{s:s}", "kind", "text");
  }
  /* The receive commit creates the row; create=true only covers a row
   * removed by hand since, so the chat starts over instead of sticking. */
  int rc = ts->o.conv_get
               ? ts->o.conv_get(ts->o.conv_ud, chat->channel, chat->chat_id, t->started_ms, &t->conv)
               : rt_store_conv_get(s, chat->channel, chat->chat_id, true, t->started_ms, &t->conv);
  if (rc != RT_OK) {
    t->status = RT_TURN_STORE_ERROR;
    done_add(ts, t);
    return t;
  }
  if (quarantine) {
    t->status = RT_TURN_QUARANTINED;
    done_add(ts, t);
    return t;
  }
  const char *kind = json_string_value(json_object_get(t->event, "kind"));
  if (!kind) kind = "text";
  if (!rt_handoff_bot_runs(&t->conv, kind, json_string_value(json_object_get(t->event, "step")))) {
    t->status = RT_TURN_SKIPPED;
    done_add(ts, t);
    return t;
  }
  /* The event goes to Lua as the payload text, decoded straight into a
   * table; the state comes from the bundle's cache or the row's text. */
  json_t *user = json_object_get(t->event, "user");
  rt_lturn_in in = {
    .id = t->conv.id, .rev = t->conv.rev, .channel = t->conv.channel, .chat = t->conv.chat_id,
    .user = json_is_string(user) ? json_string_value(user) : t->conv.user_id,
    .phone = t->conv.phone, .name = json_string_value(json_object_get(t->event, "name")),
    .flow = t->conv.flow, .step = t->conv.step, .mode = t->conv.mode ? t->conv.mode : "bot",
    .state = t->conv.state, .event = t->ev.payload,
  };
  t->status = rt_lturn_begin(b, t, &in, &t->lt);
  if (t->status == RT_LTURN_YIELD) yielded_add(ts, t);
  else done_add(ts, t);
  return t;
}

void rt_turns_resume(rt_turns *ts) {
  size_t n = ts->nresume;
  rt_turn **list = ts->resume;
  ts->resume = NULL;
  ts->nresume = ts->capresume = 0;
  for (size_t i = 0; i < n; i++) {
    rt_turn *t = list[i];
    if (t->status != RT_LTURN_YIELD) continue;
    t->status = rt_lturn_resume(t->lt);
    if (t->status != RT_LTURN_YIELD) {
      yielded_del(ts, t);
      done_add(ts, t);
    }
  }
  free(list);
}

void rt_turns_deadlines(rt_turns *ts, int64_t now) {
  for (rt_turn *t = ts->yielded; t;) {
    rt_turn *next = t->next_y;
    if (now - t->started_ms > ts->o.step_timeout_ms) {
      char msg[128];
      snprintf(msg, sizeof msg, "step waited longer than %lld ms (limits.step_timeout_ms)",
               (long long)ts->o.step_timeout_ms);
      rt_lturn_kill(t->lt, "timeout", msg);
      t->status = RT_LTURN_ERROR;
      yielded_del(ts, t);
      done_add(ts, t);
      kick(ts);
    }
    t = next;
  }
}
