/* effects.c -- applying a finished step (see effects.h). */
#include "effects.h"
#include "buf.h"
#include "inbox.h"
#include "lconv.h"
#include "log.h"
#include "utf8.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Due times a flow may set, in seconds: from the epoch to the end of the
 * year 9999. Far past any real reminder, and small enough that the
 * milliseconds the store keeps, plus any now, fit an int64_t. */
#define MAX_DUE_S INT64_C(253402300799)

struct rt_effects {
  rt_effects_opts o;
  char *start_flow, *mgr_channel, *mgr_chat;
  bool outbox_dirty;           /* an applied turn queued messages */
  bool timers_dirty;           /* an applied turn set or cancelled timers */
  rt_effects_stats st;
};

rt_effects *rt_effects_new(const rt_effects_opts *o) {
  rt_effects *fx = rt_xcalloc(1, sizeof *fx);
  fx->o = *o;
  fx->start_flow = rt_xstrdup(o->start_flow);
  fx->mgr_channel = rt_xstrdup(o->mgr_channel);
  fx->mgr_chat = rt_xstrdup(o->mgr_chat);
  return fx;
}

void rt_effects_free(rt_effects *fx) {
  if (!fx) return;
  free(fx->start_flow);
  free(fx->mgr_channel);
  free(fx->mgr_chat);
  free(fx);
}

bool rt_effects_take_outbox(rt_effects *fx) {
  bool v = fx->outbox_dirty;
  fx->outbox_dirty = false;
  return v;
}

bool rt_effects_take_timers(rt_effects *fx) {
  bool v = fx->timers_dirty;
  fx->timers_dirty = false;
  return v;
}

const rt_effects_stats *rt_effects_get_stats(const rt_effects *fx) { return &fx->st; }

static bool is_customer_message(const char *kind) {
  return strcmp(kind, "wake") != 0 && strcmp(kind, "manager") != 0 &&
         strcmp(kind, "blocked") != 0 && strcmp(kind, "unblocked") != 0 &&
         strcmp(kind, "reset") != 0;
}

static int64_t sat_mul(int64_t a, int64_t b) {
  int64_t r;
  if (__builtin_mul_overflow(a, b, &r)) return (a < 0) != (b < 0) ? INT64_MIN : INT64_MAX;
  return r;
}


static const char *jstr(json_t *o, const char *k) {
  return json_string_value(json_object_get(o, k));
}

static void free_set(char **p, const char *v) {
  char *n = v ? rt_xstrdup(v) : NULL;
  free(*p);
  *p = n;
}

/* The idempotency key of a step's seq-th message, "c<conv>:r<rev>:<tag><seq>"
 * (tag "" for the step's own messages, "x" for the host's), the same for
 * a step run again after a crash: the revision it writes is part of it. */
static void idem_key(char *out, const rt_turn *t, const char *tag, int seq) {
  char *o = out;
  *o++ = 'c';
  o += rt_i64_to(o, t->conv.id);
  *o++ = ':';
  *o++ = 'r';
  o += rt_i64_to(o, t->conv.rev + 1);
  *o++ = ':';
  while (*tag) *o++ = *tag++;
  o += rt_i64_to(o, seq);
  *o = '\0';
}

/* Queues one message; payload is its stored JSON text. Replies and notes
 * to the managers go before what nobody waits for: a wake-up's (or a
 * campaign's) messages queue behind them across chats. */
static int add_out(rt_effects *fx, rt_turn *t, const char *channel, const char *chat,
                   const char *payload, bool other_chat, int seq, int64_t now) {
  char idem[96];
  idem_key(idem, t, "", seq);
  const char *ek = jstr(t->event, "kind");
  int prio = !other_chat && ek && strcmp(ek, "wake") == 0 ? 1 : 0;
  int rc = rt_store_outbox_add_prio(fx->o.store, t->conv.id, channel, chat, idem, "text", payload,
                                    prio, now, NULL);
  fx->outbox_dirty = true;
  return rc;
}

/* The chat goes to a manager and the managers hear why: the common end of
 * a failed step and of a quarantined event. err: {code, msg, flow, step,
 * source, line}; event_kind names the statistics event. */
static int hand_over(rt_effects *fx, rt_turn *t, json_t *err, const char *event_kind, int64_t now) {
  int rc = rt_handoff_stop(fx->o.handoff, &t->conv, err, event_kind, now);
  if (rc == RT_OK) {
    char *text = rt_handoff_note(fx->o.handoff, t->bundle, &t->conv, err);
    rt_buf p = RT_BUF_INIT;
    rt_buf_adds(&p, "{\"about\":");
    rt_lconv_add_string(&p, t->conv.chat_id, strlen(t->conv.chat_id));
    rt_buf_adds(&p, ",\"text\":");
    rt_lconv_add_string(&p, text, strlen(text));
    rt_buf_addc(&p, '}');
    rc = add_out(fx, t, fx->mgr_channel, fx->mgr_chat, p.s, true, 0, now);
    rt_buf_free(&p);
    free(text);
  }
  return rc;
}

/* A step that failed: nothing it did is kept; the chat goes to a manager
 * and the managers hear why. */
static int apply_error(rt_effects *fx, rt_turn *t, int64_t now) {
  json_t *err = t->limit_err ? t->limit_err : rt_lturn_error(t->lt);
  fx->st.steps_failed++;
  char q[1024];
  rt_log_quote(jstr(err, "msg") ? jstr(err, "msg") : "?", q, sizeof q);
  rt_log(RT_LOG_ERROR, "step-failed", "conv=%lld flow=%s step=%s source=%s line=%lld code=%s err=%s",
         (long long)t->conv.id, jstr(err, "flow") ? jstr(err, "flow") : "-",
         jstr(err, "step") ? jstr(err, "step") : "-",
         jstr(err, "source") ? jstr(err, "source") : "-",
         (long long)json_integer_value(json_object_get(err, "line")), jstr(err, "code"), q);
  return hand_over(fx, t, err, "step_error", now);
}

/* The flow and step an event would have run in: the wake-up's step, else
 * where the conversation waits (the start flow for a new one). */
static void event_step(rt_effects *fx, rt_turn *t, json_t *err) {
  const char *ws = strcmp(jstr(t->event, "kind") ? jstr(t->event, "kind") : "", "wake") == 0
                       ? jstr(t->event, "step") : NULL;
  const char *flow = t->conv.flow ? t->conv.flow : fx->start_flow;
  const char *step = t->conv.flow ? t->conv.step : "start";
  const char *dot = ws ? strchr(ws, '.') : NULL;
  if (dot) {
    json_object_set_new(err, "flow", json_stringn(ws, (size_t)(dot - ws)));
    json_object_set_new(err, "step", json_string(dot + 1));
    return;
  }
  json_object_set_new(err, "flow", json_string(flow));
  if (ws || step) json_object_set_new(err, "step", json_string(ws ? ws : step));
}

/* An event that took the process down with it: not run again, recorded,
 * and its chat handed to a manager. */
static int apply_quarantine(rt_effects *fx, rt_turn *t, int64_t now) {
  char *msg = rt_xasprintf("this message stopped the bot %d times while it ran alone; it was "
                           "set aside (quarantined, inbox id %lld) and will not run again",
                           RT_INBOX_CRASHES_TO_QUARANTINE, (long long)t->ev.id);
  json_t *err = json_pack("{s:s, s:s, s:I}", "code", "crash", "msg", msg,
                          "inbox_id", (json_int_t)t->ev.id);
  free(msg);
  event_step(fx, t, err);
  rt_log(RT_LOG_ERROR, "quarantined", "conv=%lld inbox=%lld attempts=%lld flow=%s step=%s",
         (long long)t->conv.id, (long long)t->ev.id, (long long)t->ev.attempts,
         jstr(err, "flow") ? jstr(err, "flow") : "-", jstr(err, "step") ? jstr(err, "step") : "-");
  int rc = hand_over(fx, t, err, "quarantined", now);
  if (rc == RT_OK) rc = rt_store_inbox_quarantine(fx->o.store, t->ev.id, jstr(err, "msg"), now);
  json_decref(err);
  return rc;
}

/* ---- limits on a step's effects ----
 * Checked before anything of the step is written: a step over a limit
 * fails like one that ran out of memory or time, and keeps nothing. */

static json_t *limit_error(rt_effects *fx, rt_turn *t, char *msg) {
  json_t *err = json_pack("{s:s, s:s}", "code", "limit", "msg", msg);
  free(msg);
  event_step(fx, t, err);
  return err;
}

static json_t *check_limits(rt_effects *fx, rt_turn *t) {
  const rt_fx *r = rt_lturn_effects(t->lt);
  int64_t total = 0;
  for (size_t i = 0; i < r->nout; i++) {
    int64_t n = r->out[i].size;
    if (n > fx->o.message_max)
      return limit_error(fx, t, rt_xasprintf(
          "message %zu of the step is %lld bytes; one message may be at most %lld KB "
          "(limits.message_max_kb)", i + 1, (long long)n, (long long)(fx->o.message_max >> 10)));
    total += n;
    if (total > fx->o.step_output_max)
      return limit_error(fx, t, rt_xasprintf(
          "the step's messages come to more than %lld KB (limits.step_output_kb)",
          (long long)(fx->o.step_output_max >> 10)));
  }
  int64_t sets = 0;
  for (size_t i = 0; i < r->ntimers; i++) {
    const rt_fx_timer *v = &r->timers[i];
    if (v->cancel) continue;
    if (!v->due_ok || v->due_s < 0 || v->due_s > MAX_DUE_S) {
      char shown[64];
      if (v->due_ok) snprintf(shown, sizeof shown, "%lld", (long long)v->due_s);
      else snprintf(shown, sizeof shown, "%g", v->due_num);
      return limit_error(fx, t, rt_xasprintf(
          "wake: due time %s is out of range: whole unix seconds from 0 to %lld (the end of "
          "the year 9999)", shown, (long long)MAX_DUE_S));
    }
    if (++sets > fx->o.wakeups_per_step)
      return limit_error(fx, t, rt_xasprintf(
          "a step may set at most %lld wake-ups (limits.wakeups_per_step)",
          (long long)fx->o.wakeups_per_step));
  }
  if (!sets) return NULL;
  /* Wake-ups pending after this step: the flow's timers in the store, the
   * fired ones waiting in this chat's queue (not this event), and what the
   * step's sets and cancels change, in order. */
  int64_t pending = rt_store_timer_count(fx->o.store, t->conv.id);
  if (pending < 0) return NULL;   /* the write below reports the store error */
  pending += (int64_t)t->chat->nwake - (t->ev.wake ? 1 : 0);
  /* Each named set adds at most one: when even that many fit, which of
   * them exist already does not matter (a check-in sets one wake-up in a
   * chat that has none or one: no lookup per name). */
  int64_t most = 0;
  for (size_t i = 0; i < r->ntimers; i++)
    if (!r->timers[i].cancel && r->timers[i].name && r->timers[i].name[0] != '_') most++;
  if (pending + most <= fx->o.wakeups_pending) return NULL;
  int64_t added = 0;
  const char *names[64];
  bool exists[64];
  size_t nn = 0;
  for (size_t i = 0; i < r->ntimers; i++) {
    const rt_fx_timer *v = &r->timers[i];
    const char *name = v->name;
    if (!name || name[0] == '_') continue;
    size_t k = 0;
    while (k < nn && strcmp(names[k], name) != 0) k++;
    if (k == nn) {
      if (nn == RT_ARRAY_LEN(names)) break;
      names[nn] = name;
      exists[nn++] = rt_store_timer_exists(fx->o.store, t->conv.id, name) == 1;
    }
    bool set = !v->cancel;
    if (set && !exists[k]) added++;
    else if (!set && exists[k]) added--;
    exists[k] = set;
  }
  if (added > 0 && pending + added > fx->o.wakeups_pending)
    return limit_error(fx, t, rt_xasprintf(
        "the conversation would have %lld wake-ups pending; at most %lld "
        "(limits.wakeups_pending)", (long long)(pending + added), (long long)fx->o.wakeups_pending));
  return NULL;
}

static int apply_result(rt_effects *fx, rt_turn *t, int64_t now) {
  const rt_fx *r = rt_lturn_effects(t->lt);
  rt_store *st = fx->o.store;
  int64_t conv = t->conv.id;
  int rc = RT_OK;
  const char *kind = jstr(t->event, "kind");
  if (kind && is_customer_message(kind)) t->conv.last_in_at = now;
  free_set(&t->conv.flow, r->flow);
  free_set(&t->conv.step, r->step);
  if (r->phone) free_set(&t->conv.phone, r->phone);
  json_t *user = json_object_get(t->event, "user");
  if (json_is_string(user)) free_set(&t->conv.user_id, json_string_value(user));
  free_set(&t->conv.state, r->state_json ? r->state_json : "{}");
  free_set(&t->conv.last_error, NULL);
  const char *flow = t->conv.flow;
  if (r->migrated && r->migrated_from) {
    rc = rt_store_event_add(st, now, conv, flow, NULL, "step_migrated", r->migrated_json);
    rt_log(RT_LOG_WARN, "step-migrated", "conv=%lld flow=%s from=%s to=%s", (long long)conv,
           flow, r->migrated_from, r->migrated_to ? r->migrated_to : "-");
  }
  for (size_t i = 0; i < r->nout && rc == RT_OK; i++) {
    const rt_fx_msg *m = &r->out[i];
    const char *ch = t->conv.channel, *chat = t->conv.chat_id;
    if (m->to == RT_FX_MANAGERS) { ch = fx->mgr_channel; chat = fx->mgr_chat; }
    else if (m->to == RT_FX_CHAT) { ch = m->channel; chat = m->chat; }
    rc = add_out(fx, t, ch, chat, m->payload_json, m->to != RT_FX_SELF, (int)i, now);
  }
  for (size_t i = 0; i < r->ntimers && rc == RT_OK; i++) {
    const rt_fx_timer *v = &r->timers[i];
    fx->timers_dirty = true;
    if (v->cancel) rc = rt_store_timer_cancel(st, conv, v->name);
    else   /* check_limits has kept the due time within [0, MAX_DUE_S] */
      rc = rt_store_timer_set(st, conv, v->name, sat_mul(v->due_s, 1000), v->step, v->data_json,
                              now);
  }
  for (size_t i = 0; i < r->nleads && rc == RT_OK; i++) {
    /* Attributed to the flow that recorded it, even if the step then
     * switched flows. */
    const rt_fx_lead *v = &r->leads[i];
    const char *lflow = v->flow ? v->flow : flow;
    rt_lead_in l = {
      .conv_id = conv, .at = now, .flow = lflow, .channel = t->conv.channel,
      .campaign = v->campaign, .car = v->car, .car_kind = v->car_kind, .parts = v->parts_json,
      .name = v->name, .phone = v->phone ? v->phone : t->conv.phone, .data = v->data_json,
    };
    int64_t lead_id = 0;
    rc = rt_store_lead_add(st, &l, &lead_id);
    if (rc == RT_OK) {
      char ev[64];
      snprintf(ev, sizeof ev, "{\"lead_id\":%lld}", (long long)lead_id);
      rc = rt_store_event_add(st, now, conv, lflow, v->campaign, "lead", ev);
      rt_log(RT_LOG_INFO, "lead", "conv=%lld lead=%lld flow=%s", (long long)conv,
             (long long)lead_id, lflow);
    }
  }
  for (size_t i = 0; i < r->nevents && rc == RT_OK; i++) {
    const rt_fx_event *v = &r->events[i];
    rc = rt_store_event_add(st, now, conv, v->flow ? v->flow : flow, v->campaign, v->kind,
                            v->data_json);
    if (rc == RT_OK && v->campaign && v->outcome && v->kind && strcmp(v->kind, "outcome") == 0)
      rc = rt_store_campaign_outcome(st, v->campaign, t->conv.phone, v->outcome);
  }
  for (size_t i = 0; i < r->nops && rc == RT_OK; i++) {
    const rt_fx_op *v = &r->ops[i];
    switch (v->op) {
    case RT_FX_HANDOFF:
      rc = rt_store_event_add(st, now, conv, flow, r->campaign, "handoff", v->data_json);
      if (rc == RT_OK) rc = rt_handoff_hold(fx->o.handoff, conv, now);
      break;
    case RT_FX_RELEASE:
      rc = rt_store_timer_cancel(st, conv, "_handoff_release");
      break;
    case RT_FX_OPTOUT:
      rc = rt_store_customer_optout(st, t->conv.phone, t->conv.channel, t->conv.chat_id, now);
      if (rc == RT_OK) rc = rt_store_event_add(st, now, conv, flow, r->campaign, "optout", "{}");
      break;
    }
  }
  /* What the step's provider calls cost, per conversation (stats). */
  if (rc == RT_OK && r->usage.calls) {
    char ev[160];
    snprintf(ev, sizeof ev, "{\"calls\":%lld,\"cost_micro\":%lld,\"tokens_in\":%lld,"
             "\"tokens_out\":%lld}", (long long)r->usage.calls, (long long)r->usage.cost_micro,
             (long long)r->usage.tokens_in, (long long)r->usage.tokens_out);
    rc = rt_store_event_add(st, now, conv, flow, r->campaign, "usage", ev);
  }
  if (r->mode) free_set(&t->conv.mode, r->mode);
  return rc;
}

/* ---- what crosses between a customer and the managers' chat ----
 *
 * When a manager answers from the managers' chat (a `manager` event with
 * `say`: plugins/telegram's reply to a note), the answer goes to the
 * customer; the first answer also tells the managers who took the chat.
 * While a manager has the chat, the customer's messages are relayed to the
 * managers' chat as notes about this chat, so the dialog reads there whole
 * (not for the console, whose terminal already shows both sides). */

static int add_payload(rt_effects *fx, rt_turn *t, const char *channel, const char *chat,
                       json_t *msg, int seq, int64_t now) {
  char idem[96];
  idem_key(idem, t, "x", seq);
  char *p = json_dumps(msg, JSON_COMPACT | JSON_SORT_KEYS);
  int rc = rt_store_outbox_add_prio(fx->o.store, t->conv.id, channel, chat, idem, "text", p, 0,
                                    now, NULL);
  free(p);
  fx->outbox_dirty = true;
  return rc;
}

/* A note's text in the persona's words (rt_bundle_note), else the bare
 * fact given. Owned, valid UTF-8. */
static char *note_text(rt_turn *t, const char *kind, rt_note_facts *f, const char *fallback) {
  char *chat = rt_xasprintf("%s:%s", t->conv.channel, t->conv.chat_id);
  f->chat = chat;
  char *text = t->bundle ? rt_bundle_note(t->bundle, kind, f) : NULL;
  free(chat);
  if (!text) text = rt_xstrdup(fallback ? fallback : kind);
  size_t n;
  char *clean = rt_utf8_clean(text, strlen(text), &n);
  free(text);
  return clean;
}

/* Another manager answered (or sent /bot to) a chat a manager owns:
 * nothing reaches the customer, the chat stays with its owner, and the
 * group hears who has it (as a reply to the card). */
static int tell_owned(rt_effects *fx, rt_turn *t, const char *owner, int64_t now) {
  json_t *ev = t->event;
  const char *by = jstr(ev, "by") ? jstr(ev, "by") : jstr(ev, "user") ? jstr(ev, "user") : "?";
  bool release = strcmp(jstr(ev, "text"), "release") == 0;
  char *note = note_text(t, "owned", &(rt_note_facts){.who = by, .owner = owner,
                                                      .what = release ? "release" : "say"},
                         owner);
  json_t *m = json_pack("{s:s, s:s}", "text", note, "about", t->conv.chat_id);
  int rc = add_payload(fx, t, fx->mgr_channel, fx->mgr_chat, m, 0, now);
  json_decref(m);
  free(note);
  if (rc == RT_OK) {
    json_t *d = json_pack("{s:s, s:s}", "by", by, "owner", owner);
    char *dj = json_dumps(d, JSON_COMPACT | JSON_SORT_KEYS);
    rc = rt_store_event_add(fx->o.store, now, t->conv.id, NULL, NULL, "take_refused", dj);
    free(dj);
    json_decref(d);
  }
  rt_log(RT_LOG_INFO, "manager-refused", "conv=%lld what=%s", (long long)t->conv.id,
         release ? "release" : "say");
  return rc;
}

/* /stats in the managers' chat: today's figures, in the persona's words,
 * back to that chat. */
static int tell_stats(rt_effects *fx, rt_turn *t, int64_t now) {
  json_t *fig = fx->o.figures ? fx->o.figures(fx->o.figures_ud, fx->o.store, now) : NULL;
  char *plain = fig ? json_dumps(fig, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
  char *note = note_text(t, "stats", &(rt_note_facts){.figures = fig}, plain ? plain : "-");
  json_t *m = json_pack("{s:s}", "text", note);
  int rc = add_payload(fx, t, fx->mgr_channel, fx->mgr_chat, m, 0, now);
  json_decref(m);
  free(note);
  free(plain);
  json_decref(fig);
  return rc;
}

static int cross_managers(rt_effects *fx, rt_turn *t, const char *mode_before, int64_t now) {
  json_t *ev = t->event;
  const char *kind = jstr(ev, "kind");
  const char *name = jstr(ev, "name");
  int rc = RT_OK;
  if (!kind) return RT_OK;
  if (strcmp(kind, "manager") == 0 && (jstr(ev, "say") || jstr(ev, "say_photo"))) {
    json_t *m = json_pack("{s:s}", "text", jstr(ev, "say") ? jstr(ev, "say") : "");
    if (jstr(ev, "say_photo"))
      json_object_set_new(m, "media", json_pack("{s:s, s:s}", "ref", jstr(ev, "say_photo"),
                                                "kind", "photo"));
    rc = add_payload(fx, t, t->conv.channel, t->conv.chat_id, m, 0, now);
    json_decref(m);
    if (rc == RT_OK && strcmp(mode_before, "manager") != 0) {
      const char *by = jstr(ev, "by") ? jstr(ev, "by") : jstr(ev, "user") ? jstr(ev, "user") : "?";
      char *note = note_text(t, "taken", &(rt_note_facts){.who = by}, by);
      m = json_pack("{s:s, s:s}", "text", note, "about", t->conv.chat_id);
      rc = add_payload(fx, t, fx->mgr_channel, fx->mgr_chat, m, 1, now);
      json_decref(m);
      free(note);
    }
  } else if (is_customer_message(kind) && strcmp(mode_before, "manager") == 0 &&
             strcmp(fx->mgr_channel, "console") != 0) {
    const char *text = jstr(ev, "text");
    json_t *photos = json_object_get(ev, "photos");
    json_t *photo = json_array_get(photos, 0);
    /* The line's words are the persona's (notes.relayed); the bare facts
     * are the fallback. */
    const char *who = name ? name : t->conv.chat_id;
    const char *said = text && *text ? text : NULL;
    const char *what = said ? "text" : photo ? "photo" : "empty";
    char *bare = rt_xasprintf("%s: %s", who, said ? said : what);
    char *line = note_text(t, "relayed", &(rt_note_facts){.who = who, .msg = said, .what = what},
                           bare);
    free(bare);
    /* A photo's id is the channel's own: re-sent only within that channel.
     * The first carries the line as its caption, the others follow it. */
    bool same = strcmp(t->conv.channel, fx->mgr_channel) == 0;
    size_t n = same ? json_array_size(photos) : 0;
    for (size_t i = 0; (i == 0 || i < n) && rc == RT_OK; i++) {
      json_t *ph = json_array_get(photos, i);
      json_t *m = json_pack("{s:s, s:s}", "text", i == 0 ? line : "", "about", t->conv.chat_id);
      if (same && jstr(ph, "id"))
        json_object_set_new(m, "media", json_pack("{s:s, s:s}", "ref", jstr(ph, "id"), "kind",
                                                  "photo"));
      else if (i > 0) {
        json_decref(m);
        continue;
      }
      rc = add_payload(fx, t, fx->mgr_channel, fx->mgr_chat, m, (int)i, now);
      json_decref(m);
    }
    free(line);
  }
  return rc;
}

/* A customer's own shared contact is their phone (and their address on
 * the channel); a deep link's payload is where the chat came from. */
static int event_facts(rt_effects *fx, rt_turn *t, int64_t now) {
  json_t *ev = t->event;
  const char *kind = jstr(ev, "kind");
  int rc = RT_OK;
  const char *phone = jstr(ev, "phone");
  if (kind && strcmp(kind, "contact") == 0 && phone && phone[0] == '+') {
    if (!t->conv.phone) free_set(&t->conv.phone, phone);
    if (strcmp(t->conv.phone, phone) == 0)
      rc = rt_store_address_set(fx->o.store, phone, t->conv.channel, t->conv.chat_id, now);
  }
  const char *src = jstr(ev, "source");
  if (rc == RT_OK && src && kind && is_customer_message(kind)) {
    json_t *d = json_pack("{s:s}", "source", src);
    char *dj = json_dumps(d, JSON_COMPACT);
    rc = rt_store_event_add(fx->o.store, now, t->conv.id, t->conv.flow, NULL, "source", dj);
    free(dj);
    json_decref(d);
  }
  return rc;
}

int rt_effects_apply(rt_effects *fx, rt_turn *t, int64_t now) {
  rt_store *s = fx->o.store;
  if (t->status == RT_TURN_STORE_ERROR) return rt_store_errcode(s) ? rt_store_errcode(s) : RT_EIO;
  if (t->status == RT_LTURN_DONE && !t->limit_err && (t->limit_err = check_limits(fx, t)))
    t->status = RT_LTURN_ERROR;
  int rc;
  if (t->status == RT_LTURN_DONE) rc = apply_result(fx, t, now);
  else if (t->status == RT_LTURN_ERROR) rc = apply_error(fx, t, now);
  else if (t->status == RT_TURN_QUARANTINED) rc = apply_quarantine(fx, t, now);
  else {
    char *mode_before = rt_xstrdup(t->conv.mode ? t->conv.mode : "bot");
    const char *owner = rt_handoff_owned_by(&t->conv, t->event);
    const char *kind = jstr(t->event, "kind"), *text = jstr(t->event, "text");
    if (owner) {
      rc = tell_owned(fx, t, owner, now);
    } else if (kind && strcmp(kind, "manager") == 0 && text && strcmp(text, "stats") == 0) {
      rc = tell_stats(fx, t, now);
    } else {
      rc = rt_handoff_apply(fx->o.handoff, &t->conv, t->event, now);
      if (rc == RT_OK) rc = cross_managers(fx, t, mode_before, now);
    }
    free(mode_before);
  }
  /* Only a chat a manager has has an owner: a flow's c:release(), a failed
   * step's hand-off or the silence end it. */
  if (!t->conv.mode || strcmp(t->conv.mode, "manager") != 0) {
    free_set(&t->conv.owner, NULL);
    free_set(&t->conv.owner_name, NULL);
  }
  if (rc == RT_OK && t->status != RT_TURN_QUARANTINED) rc = event_facts(fx, t, now);
  if (rc == RT_OK) rc = rt_store_conv_save(s, &t->conv, now);
  /* An event stored in this transaction as done needs no second write
   * when its step did end so, and a wake-up run with no inbox row needs
   * none at all (rt_inbox_add_wake); one that failed or was skipped gets
   * its row now, as the record of it. */
  const char *status = t->status == RT_LTURN_ERROR ? "failed"
                       : t->status == RT_TURN_SKIPPED ? "skipped" : "done";
  bool done = strcmp(status, "done") == 0;
  if (rc != RT_OK || t->status == RT_TURN_QUARANTINED) return rc;
  if (!t->ev.id && t->ev.timer_id) {
    if (done) return RT_OK;
    int64_t id = 0;
    rc = rt_inbox_add_wake(s, t->chat->channel, t->chat->chat_id, t->ev.timer_id,
                           t->ev.payload ? t->ev.payload : "{}", "new", now, &id);
    if (rc == 1) return RT_OK;   /* a store edited by hand: the row is there */
    if (rc == RT_OK) rc = rt_store_inbox_finish(s, id, status, now);
    return rc;
  }
  if (!(t->ev.stored_done && done)) rc = rt_store_inbox_finish(s, t->ev.id, status, now);
  return rc;
}
