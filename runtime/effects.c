/* effects.c -- applying a finished step (see effects.h). */
#include "effects.h"
#include "inbox.h"
#include "log.h"
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
  return strcmp(kind, "wake") != 0 && strcmp(kind, "manager") != 0;
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

static void json_raw(char **buf, size_t *len, size_t *cap, const char *s) {
  size_t n = strlen(s);
  if (*len + n + 1 > *cap) {
    *cap = *len + n + 64;
    *buf = rt_xrealloc(*buf, *cap);
  }
  memcpy(*buf + *len, s, n + 1);
  *len += n;
}

/* Appends s as a JSON string; s is valid UTF-8 (it came out of jansson). */
static void json_text(char **buf, size_t *len, size_t *cap, const char *s) {
  size_t n = strlen(s);
  if (*len + n * 6 + 3 > *cap) {
    *cap = *len + n * 6 + 64;
    *buf = rt_xrealloc(*buf, *cap);
  }
  char *o = *buf + *len;
  *o++ = '"';
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if (*p == '"' || *p == '\\') { *o++ = '\\'; *o++ = (char)*p; }
    else if (*p == '\n') { *o++ = '\\'; *o++ = 'n'; }
    else if (*p < 0x20) o += sprintf(o, "\\u%04x", *p);
    else *o++ = (char)*p;
  }
  *o++ = '"';
  *len = (size_t)(o - *buf);
  (*buf)[*len] = '\0';
}

/* Queues one message. The payload of a plain message is written as text
 * directly ({"about":..,"text":..}, keys sorted like every stored JSON);
 * one with buttons goes through jansson. */
static int add_out(rt_effects *fx, rt_turn *t, const char *channel, const char *chat,
                   json_t *msg, bool other_chat, int seq, int64_t now) {
  char idem[96];
  snprintf(idem, sizeof idem, "c%lld:r%lld:%d", (long long)t->conv.id,
           (long long)t->conv.rev + 1, seq);
  char *p = NULL;
  const char *text = jstr(msg, "text");
  if (!json_object_get(msg, "buttons") && text) {
    size_t len = 0, cap = 0;
    json_raw(&p, &len, &cap, "{");
    if (other_chat) {
      json_raw(&p, &len, &cap, "\"about\":");
      json_text(&p, &len, &cap, t->conv.chat_id);
      json_raw(&p, &len, &cap, ",");
    }
    json_raw(&p, &len, &cap, "\"text\":");
    json_text(&p, &len, &cap, text);
    json_raw(&p, &len, &cap, "}");
  } else {
    json_t *j = json_pack("{s:s?}", "text", text);
    if (json_object_get(msg, "buttons")) json_object_set(j, "buttons", json_object_get(msg, "buttons"));
    if (other_chat) json_object_set_new(j, "about", json_string(t->conv.chat_id));
    p = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(j);
  }
  /* Replies and notes to the managers go before what nobody waits for: a
   * wake-up's (or a campaign's) messages queue behind them across chats. */
  const char *ek = jstr(t->event, "kind");
  int prio = !other_chat && ek && strcmp(ek, "wake") == 0 ? 1 : 0;
  int rc = rt_store_outbox_add_prio(fx->o.store, t->conv.id, channel, chat, idem, "text", p, prio,
                                    now, NULL);
  free(p);
  fx->outbox_dirty = true;
  return rc == 1 ? RT_OK : rc;
}

/* The campaign an effect belongs to: named in its data, else the one the
 * conversation is in (c.slots.campaign, reported by host.lua). */
static const char *campaign_of(json_t *result, json_t *data) {
  const char *c = data ? jstr(data, "campaign") : NULL;
  if (!c && result) c = jstr(result, "campaign");
  return c;
}

/* The chat goes to a manager and the managers hear why: the common end of
 * a failed step and of a quarantined event. err: {code, msg, flow, step,
 * source, line}; event_kind names the statistics event. */
static int hand_over(rt_effects *fx, rt_turn *t, json_t *err, const char *event_kind, int64_t now) {
  int rc = rt_handoff_stop(fx->o.handoff, &t->conv, err, event_kind, now);
  if (rc == RT_OK) {
    char *text = rt_handoff_note(fx->o.handoff, &t->conv, err);
    json_t *p = json_pack("{s:s}", "text", text);
    if (!p) p = json_pack("{s:s}", "text", "Бот остановился в одном из чатов: ответьте клиенту.");
    rc = add_out(fx, t, fx->mgr_channel, fx->mgr_chat, p, true, 0, now);
    json_decref(p);
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

/* Bytes one queued message stands for: its text and its buttons. */
static int64_t message_size(json_t *m) {
  const char *text = jstr(m, "text");
  int64_t n = text ? (int64_t)strlen(text) : 0;
  json_t *b = json_object_get(m, "buttons");
  if (b) n += (int64_t)json_dumpb(b, NULL, 0, JSON_COMPACT | JSON_ENCODE_ANY);
  return n;
}

static json_t *check_limits(rt_effects *fx, rt_turn *t) {
  json_t *r = rt_lturn_result(t->lt), *v;
  size_t i;
  int64_t total = 0;
  json_array_foreach(json_object_get(r, "out"), i, v) {
    int64_t n = message_size(v);
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
  json_t *timers = json_object_get(r, "timers");
  int64_t sets = 0;
  json_array_foreach(timers, i, v) {
    if (strcmp(jstr(v, "op"), "set") != 0) continue;
    json_t *at = json_object_get(v, "at");
    if (!json_is_integer(at) || json_integer_value(at) < 0 || json_integer_value(at) > MAX_DUE_S) {
      char shown[64];
      if (json_is_integer(at)) snprintf(shown, sizeof shown, "%lld", (long long)json_integer_value(at));
      else snprintf(shown, sizeof shown, "%g", json_number_value(at));
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
  int64_t added = 0;
  const char *names[64];
  bool exists[64];
  size_t nn = 0;
  json_array_foreach(timers, i, v) {
    const char *name = jstr(v, "name");
    if (!name || name[0] == '_') continue;
    size_t k = 0;
    while (k < nn && strcmp(names[k], name) != 0) k++;
    if (k == nn) {
      if (nn == RT_ARRAY_LEN(names)) break;
      names[nn] = name;
      exists[nn++] = rt_store_timer_exists(fx->o.store, t->conv.id, name) == 1;
    }
    bool set = strcmp(jstr(v, "op"), "set") == 0;
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
  json_t *r = rt_lturn_result(t->lt);
  int rc = RT_OK;
  const char *kind = jstr(t->event, "kind");
  if (kind && is_customer_message(kind)) t->conv.last_in_at = now;
  free_set(&t->conv.flow, jstr(r, "flow"));
  free_set(&t->conv.step, jstr(r, "step"));
  if (jstr(r, "phone")) free_set(&t->conv.phone, jstr(r, "phone"));
  json_t *user = json_object_get(t->event, "user");
  if (json_is_string(user)) free_set(&t->conv.user_id, json_string_value(user));
  free(t->conv.state);
  t->conv.state = rt_xstrdup(rt_lturn_slots(t->lt) ? rt_lturn_slots(t->lt) : "{}");
  free_set(&t->conv.last_error, NULL);
  const char *flow = t->conv.flow;
  json_t *migrated = json_object_get(r, "migrated");
  if (json_is_object(migrated) && json_object_get(migrated, "from")) {
    char *d = json_dumps(migrated, JSON_COMPACT | JSON_SORT_KEYS);
    rc = rt_store_event_add(fx->o.store, now, t->conv.id, flow, NULL, "step_migrated", d);
    rt_log(RT_LOG_WARN, "step-migrated", "conv=%lld flow=%s from=%s to=%s", (long long)t->conv.id,
           flow, jstr(migrated, "from"), jstr(migrated, "to"));
    free(d);
  }

  json_t *v;
  size_t i;
  int seq = 0;
  json_array_foreach(json_object_get(r, "out"), i, v) {
    if (rc != RT_OK) break;
    const char *to = jstr(v, "to");
    const char *ch = t->conv.channel, *chat = t->conv.chat_id;
    if (to && strcmp(to, "managers") == 0) { ch = fx->mgr_channel; chat = fx->mgr_chat; }
    else if (to && strcmp(to, "chat") == 0) { ch = jstr(v, "channel"); chat = jstr(v, "chat"); }
    rc = add_out(fx, t, ch, chat, v, ch != t->conv.channel, seq++, now);
  }
  json_array_foreach(json_object_get(r, "timers"), i, v) {
    if (rc != RT_OK) break;
    fx->timers_dirty = true;
    const char *name = jstr(v, "name");
    if (strcmp(jstr(v, "op"), "cancel") == 0) {
      rc = rt_store_timer_cancel(fx->o.store, t->conv.id, name);
    } else {
      json_t *data = json_object_get(v, "data");
      char *d = data ? json_dumps(data, JSON_COMPACT | JSON_ENCODE_ANY | JSON_SORT_KEYS) : NULL;
      /* check_limits has kept "at" within [0, MAX_DUE_S]. */
      rc = rt_store_timer_set(fx->o.store, t->conv.id, name,
                              sat_mul((int64_t)json_integer_value(json_object_get(v, "at")), 1000),
                              jstr(v, "step"), d, now);
      free(d);
    }
  }
  json_t *entry;
  json_array_foreach(json_object_get(r, "leads"), i, entry) {
    if (rc != RT_OK) break;
    /* Attributed to the flow that recorded it, even if the step then
     * switched flows. */
    json_t *v = json_object_get(entry, "lead");
    const char *lflow = jstr(entry, "flow") ? jstr(entry, "flow") : flow;
    json_t *parts = json_object_get(v, "parts");
    char *pj = parts ? json_dumps(parts, JSON_COMPACT | JSON_ENCODE_ANY | JSON_SORT_KEYS) : NULL;
    char *dj = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS);
    const char *campaign = campaign_of(r, v);
    rt_lead_in l = {
      .conv_id = t->conv.id, .at = now, .flow = lflow, .channel = t->conv.channel,
      .campaign = campaign, .car = jstr(v, "car"), .car_kind = jstr(v, "car_kind"),
      .parts = pj, .name = jstr(v, "name"), .phone = jstr(v, "phone") ? jstr(v, "phone") : t->conv.phone,
      .data = dj,
    };
    int64_t lead_id = 0;
    rc = rt_store_lead_add(fx->o.store, &l, &lead_id);
    if (rc == RT_OK) {
      char ev[64];
      snprintf(ev, sizeof ev, "{\"lead_id\":%lld}", (long long)lead_id);
      rc = rt_store_event_add(fx->o.store, now, t->conv.id, lflow, campaign, "lead", ev);
      rt_log(RT_LOG_INFO, "lead", "conv=%lld lead=%lld flow=%s", (long long)t->conv.id,
             (long long)lead_id, lflow);
    }
    free(pj);
    free(dj);
  }
  json_array_foreach(json_object_get(r, "events"), i, v) {
    if (rc != RT_OK) break;
    json_t *data = json_object_get(v, "data");
    char *dj = data ? json_dumps(data, JSON_COMPACT | JSON_ENCODE_ANY | JSON_SORT_KEYS) : NULL;
    const char *campaign = campaign_of(r, data);
    const char *eflow = jstr(v, "flow") ? jstr(v, "flow") : flow;
    rc = rt_store_event_add(fx->o.store, now, t->conv.id, eflow, campaign, jstr(v, "kind"), dj);
    if (rc == RT_OK && campaign && strcmp(jstr(v, "kind"), "outcome") == 0 && jstr(data, "outcome"))
      rc = rt_store_campaign_outcome(fx->o.store, campaign, t->conv.phone, jstr(data, "outcome"));
    free(dj);
  }
  json_array_foreach(json_object_get(r, "ops"), i, v) {
    if (rc != RT_OK) break;
    const char *op = jstr(v, "op");
    if (strcmp(op, "handoff") == 0) {
      json_t *d = json_pack("{s:s?}", "reason", jstr(v, "reason"));
      char *dj = json_dumps(d, JSON_COMPACT | JSON_SORT_KEYS);
      rc = rt_store_event_add(fx->o.store, now, t->conv.id, flow, campaign_of(r, NULL), "handoff", dj);
      free(dj);
      json_decref(d);
      if (rc == RT_OK) rc = rt_handoff_hold(fx->o.handoff, t->conv.id, now);
    } else if (strcmp(op, "release") == 0) {
      rc = rt_store_timer_cancel(fx->o.store, t->conv.id, "_handoff_release");
    } else if (strcmp(op, "optout") == 0) {
      rc = rt_store_customer_optout(fx->o.store, t->conv.phone, t->conv.channel, t->conv.chat_id, now);
      if (rc == RT_OK) rc = rt_store_event_add(fx->o.store, now, t->conv.id, flow,
                                               campaign_of(r, NULL), "optout", "{}");
    }
  }
  const char *mode = jstr(r, "mode");
  if (mode) free_set(&t->conv.mode, mode);
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
  else rc = rt_handoff_apply(fx->o.handoff, &t->conv, t->event, now);
  if (rc == RT_OK) rc = rt_store_conv_save(s, &t->conv, now);
  if (rc == RT_OK && t->status != RT_TURN_QUARANTINED)
    rc = rt_store_inbox_finish(s, t->ev.id,
                               t->status == RT_LTURN_ERROR ? "failed"
                               : t->status == RT_TURN_SKIPPED ? "skipped" : "done", now);
  return rc;
}
