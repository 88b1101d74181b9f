/* handoff.c -- the hand-off policy (see handoff.h). */
#include "handoff.h"
#include "utf8.h"
#include <stdlib.h>
#include <string.h>

struct rt_handoff {
  rt_handoff_opts o;
};

rt_handoff *rt_handoff_new(const rt_handoff_opts *o) {
  rt_handoff *h = rt_xcalloc(1, sizeof *h);
  h->o = *o;
  return h;
}

void rt_handoff_free(rt_handoff *h) { free(h); }

static const char *jstr(json_t *o, const char *k) {
  return json_string_value(json_object_get(o, k));
}

static void free_set(char **p, const char *v) {
  char *n = v ? rt_xstrdup(v) : NULL;
  free(*p);
  *p = n;
}

/* "blocked"/"unblocked": the customer blocked the bot or came back (a
 * channel's notice, no message: no step runs for it). */
/* "reset": the chat starts over (the terminal's /new), no message either. */
static bool is_customer_message(const char *kind) {
  return strcmp(kind, "wake") != 0 && strcmp(kind, "manager") != 0 &&
         strcmp(kind, "blocked") != 0 && strcmp(kind, "unblocked") != 0 &&
         strcmp(kind, "reset") != 0;
}

bool rt_handoff_bot_runs(const rt_conv_row *c, const char *kind, const char *wake_step) {
  const char *mode = c->mode ? c->mode : "bot";
  bool system_wake = wake_step && wake_step[0] == '_';
  /* Handed off: the manager talks, the bot stays silent. Only wake-ups
   * (the flow's own reminders) still run, and not after a failed step: the
   * flow broke, and a broken flow's reminders could talk over the manager or
   * keep a runaway going (a step over limits.wakeups_pending). */
  bool failed = strcmp(mode, "bot") != 0 && c->last_error;
  return !((strcmp(mode, "bot") != 0 && is_customer_message(kind)) || system_wake ||
           strcmp(kind, "manager") == 0 || strcmp(kind, "blocked") == 0 ||
           strcmp(kind, "unblocked") == 0 || strcmp(kind, "reset") == 0 ||
           (failed && strcmp(kind, "wake") == 0));
}

int rt_handoff_hold(rt_handoff *h, int64_t conv_id, int64_t now) {
  /* handoff.release_after may be "never" in practice (years): the sum
   * saturates at the latest due time instead of wrapping into the past. */
  int64_t due;
  if (__builtin_add_overflow(now, h->o.release_after_ms, &due)) due = INT64_MAX;
  if (due > RT_HANDOFF_MAX_DUE_MS) due = RT_HANDOFF_MAX_DUE_MS;
  return rt_store_timer_set(h->o.store, conv_id, "_handoff_release", due, "_release", "{}", now);
}

static void back_to_bot(rt_conv_row *c) {
  free_set(&c->mode, "bot");
  free_set(&c->owner, NULL);
  free_set(&c->owner_name, NULL);
  free_set(&c->flow, NULL);
  free_set(&c->step, NULL);
}

const char *rt_handoff_owned_by(const rt_conv_row *c, json_t *event) {
  const char *kind = jstr(event, "kind"), *text = jstr(event, "text");
  const char *user = jstr(event, "user");
  if (!kind || strcmp(kind, "manager") != 0 || !text || !c->owner) return NULL;
  if (strcmp(text, "take") != 0 && strcmp(text, "release") != 0) return NULL;
  if (!c->mode || strcmp(c->mode, "manager") != 0) return NULL;
  if (user && strcmp(user, c->owner) == 0) return NULL;
  return c->owner_name ? c->owner_name : c->owner;
}

int rt_handoff_apply(rt_handoff *h, rt_conv_row *c, json_t *event, int64_t now) {
  rt_store *s = h->o.store;
  const char *kind = jstr(event, "kind");
  const char *step = jstr(event, "step");
  const char *text = jstr(event, "text");
  int rc = RT_OK;
  if (kind && strcmp(kind, "manager") == 0) {
    if (text && strcmp(text, "release") == 0) {
      back_to_bot(c);
      rc = rt_store_timer_cancel(s, c->id, "_handoff_release");
      if (rc == RT_OK) rc = rt_store_event_add(s, now, c->id, NULL, NULL, "released",
                                               "{\"by\":\"manager\"}");
    } else if (text && strcmp(text, "take") == 0) {
      /* Every manager answer is a "take": the event is recorded once, when
       * the chat comes to the manager, not for each answer after. */
      bool already = c->mode && strcmp(c->mode, "manager") == 0;
      free_set(&c->mode, "manager");
      /* The first manager to answer owns the chat (rt_handoff_owned_by). */
      if (!c->owner && jstr(event, "user")) {
        free_set(&c->owner, jstr(event, "user"));
        free_set(&c->owner_name, jstr(event, "by") ? jstr(event, "by") : jstr(event, "user"));
      }
      rc = rt_handoff_hold(h, c->id, now);
      if (rc == RT_OK && !already)
        rc = rt_store_event_add(s, now, c->id, NULL, NULL, "taken", "{}");
    }
  } else if (kind && (strcmp(kind, "blocked") == 0 || strcmp(kind, "unblocked") == 0)) {
    /* Campaigns skip a blocked address; a customer who comes back is
     * reachable again. The reason is the delivery's code for a 403
     * ("blocked", rt_fail_reason_name), so a campaign's report counts
     * both ways of learning it under one reason. */
    bool blocked = strcmp(kind, "blocked") == 0;
    rc = rt_store_address_mark(s, c->channel, c->chat_id, blocked ? "blocked" : "reachable",
                               blocked ? "blocked" : NULL, now);
    if (rc == RT_OK) rc = rt_store_event_add(s, now, c->id, NULL, NULL, kind, "{}");
  } else if (kind && strcmp(kind, "reset") == 0) {
    /* A new conversation in the same chat: back to the bot with no flow,
     * no slots, no error and no wake-up left (a reminder of the old one
     * must not talk into the new). The history (inbox, outbox, leads,
     * events) stays, and "reset" is recorded among the events. */
    back_to_bot(c);
    free_set(&c->state, "{}");
    free_set(&c->last_error, NULL);
    rc = rt_store_timers_cancel_all(s, c->id);
    if (rc == RT_OK) rc = rt_store_event_add(s, now, c->id, NULL, NULL, "reset", "{}");
  } else if (step && strcmp(step, "_release") == 0) {
    if (c->mode && strcmp(c->mode, "bot") != 0) {
      back_to_bot(c);
      rc = rt_store_event_add(s, now, c->id, NULL, NULL, "released", "{\"by\":\"silence\"}");
    }
  } else if (kind && is_customer_message(kind)) {
    c->last_in_at = now;
    rc = rt_store_event_add(s, now, c->id, c->flow, NULL, "message_while_handoff", "{}");
    /* The silence that releases the chat counts from the last message. */
    if (rc == RT_OK) rc = rt_handoff_hold(h, c->id, now);
  }
  return rc;
}

int rt_handoff_stop(rt_handoff *h, rt_conv_row *c, json_t *err, const char *event_kind,
                    int64_t now) {
  char *ej = json_dumps(err, JSON_COMPACT | JSON_SORT_KEYS);
  free_set(&c->last_error, ej);
  free_set(&c->mode, "handoff");
  int rc = rt_store_event_add(h->o.store, now, c->id, jstr(err, "flow"), NULL, event_kind, ej);
  free(ej);
  if (rc == RT_OK) rc = rt_handoff_hold(h, c->id, now);
  return rc;
}

char *rt_handoff_note(rt_handoff *h, rt_bundle *b, const rt_conv_row *c, json_t *err) {
  (void)h;
  const char *src = jstr(err, "source");
  char *where = src ? rt_xasprintf("%s:%lld", src,
                                   (long long)json_integer_value(json_object_get(err, "line")))
                    : NULL;
  char *chat = rt_xasprintf("%s:%s", c->channel, c->chat_id);
  rt_note_facts f = {.chat = chat, .flow = jstr(err, "flow") ? jstr(err, "flow") : "?",
                     .step = jstr(err, "step") ? jstr(err, "step") : "?", .where = where,
                     .msg = jstr(err, "msg") ? jstr(err, "msg") : "?"};
  char *text = b ? rt_bundle_note(b, "stopped", &f) : NULL;
  /* Not even the host's plain line could be built (no memory in Lua): the
   * managers still get the facts. */
  if (!text) text = rt_xasprintf("%s %s.%s: %s", chat, f.flow, f.step, f.msg);
  free(where);
  free(chat);
  /* Stored as JSON text: whatever bytes the flows put in, it stays UTF-8. */
  size_t n;
  char *clean = rt_utf8_clean(text, strlen(text), &n);
  free(text);
  return clean;
}
