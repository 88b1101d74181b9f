/* inbox.c -- receive commit, acks and crash recovery (see inbox.h). */
#include "inbox.h"
#include "lconv.h"
#include "log.h"
#include "utf8.h"
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RECEIVES_PER_FLUSH 4096

typedef struct recv_item {
  char *channel, *ext_id, *chat_id, *kind, *payload;
  json_t *doc;                 /* payload as built: a step run now needs no parse */
  void (*ack)(void *, int);
  void *ud;
} recv_item;

struct rt_inbox {
  rt_inbox_opts o;
  recv_item *recv;
  size_t nrecv, caprecv;
  uint64_t gen_seq;            /* ids for events a channel gave none */
  size_t nstaged;              /* recv[0..nstaged) are written in the open transaction */
  int64_t *ids;                /* their inbox ids */
  int *res;                    /* 0 new, 1 duplicate, 2 handed to run now */
  size_t capstaged;
  bool unclean;                /* the last run died: store first, always */
  bool isolating;              /* running the events of an unclean stop one by one */
  char **iso_keys;             /* their queues, in order */
  size_t niso, iso_pos;
  /* Acks of committed events whose commit is not yet on disk (a store with
   * sync_later): sent by rt_inbox_synced, oldest first. */
  struct held_ack { void (*ack)(void *, int); void *ud; int status; int64_t commit; } *held;
  size_t nheld, capheld;
};

rt_inbox *rt_inbox_new(const rt_inbox_opts *o) {
  rt_inbox *in = rt_xcalloc(1, sizeof *in);
  in->o = *o;
  return in;
}

static void recv_free(recv_item *r) {
  free(r->channel); free(r->ext_id); free(r->chat_id); free(r->kind); free(r->payload);
  json_decref(r->doc);
}

static void iso_end(rt_inbox *in) {
  in->isolating = false;
  for (size_t i = 0; i < in->niso; i++) free(in->iso_keys[i]);
  free(in->iso_keys);
  in->iso_keys = NULL;
  in->niso = in->iso_pos = 0;
}

/* "engine.running" in the meta table is 1 from start to a clean close; 1 at
 * a start means the last run died (crash, kill -9, power). Two writes per
 * run, none per event. */
static int set_running_mark(rt_inbox *in, const char *v) {
  rt_store *s = in->o.store;
  int rc = rt_store_begin(s);
  if (rc == RT_OK) rc = rt_store_meta_set(s, "engine.running", v);
  if (rc == RT_OK) rc = rt_store_commit(s);
  else rt_store_rollback(s);
  return rc;
}

void rt_inbox_free(rt_inbox *in, bool clean) {
  if (!in) return;
  /* A clean stop. While recovered events still wait to run alone, the mark
   * stays: the next start isolates them again. */
  if (!in->o.test_mode && !in->isolating && clean) set_running_mark(in, "0");
  iso_end(in);
  for (size_t i = 0; i < in->nrecv; i++) recv_free(&in->recv[i]);
  free(in->recv);
  free(in->held);   /* never acked: the channel delivers them again */
  free(in->ids);
  free(in->res);
  free(in);
}

/* ---- receive ---- */

int rt_inbox_receive(rt_inbox *in, const rt_event_in *ev, void (*ack)(void *, int), void *ud) {
  if (!ev->channel || !ev->chat_id || !*ev->chat_id) return RT_EINVAL;
  json_t *p = json_object();
  if (ev->extra_json) {
    json_t *x = json_loads(ev->extra_json, 0, NULL);
    if (json_is_object(x)) json_object_update(p, x);
    json_decref(x);
  }
  const char *kind = ev->kind ? ev->kind : "text";
  json_object_set_new(p, "kind", json_string(kind));
  /* Broken UTF-8 from a channel keeps its readable part. */
  size_t ntext = 0, nname = 0;
  char *text = ev->text ? rt_utf8_clean(ev->text, strlen(ev->text), &ntext) : NULL;
  char *name = ev->name ? rt_utf8_clean(ev->name, strlen(ev->name), &nname) : NULL;
  if (text) json_object_set_new(p, "text", json_stringn(text, ntext));
  if (ev->user_id) json_object_set_new(p, "user", json_string(ev->user_id));
  if (name) json_object_set_new(p, "name", json_stringn(name, nname));
  int64_t at = rt_clock_now(in->o.clock);
  json_object_set_new(p, "at", json_integer(at / 1000));
  char *payload;
  if (ev->extra_json || !rt_utf8_valid(kind, strlen(kind)) ||
      (ev->user_id && !rt_utf8_valid(ev->user_id, strlen(ev->user_id)))) {
    payload = json_dumps(p, JSON_COMPACT | JSON_SORT_KEYS);
  } else {
    /* The same text json_dumps writes (compact, keys sorted, jansson's
     * escapes: lconv.c), without walking the tree: a third of the cost of
     * receiving a message. */
    rt_buf b = RT_BUF_INIT;
    rt_buf_adds(&b, "{\"at\":");
    rt_buf_add_i64(&b, at / 1000);
    rt_buf_adds(&b, ",\"kind\":");
    rt_lconv_add_string(&b, kind, strlen(kind));
    if (name) {
      rt_buf_adds(&b, ",\"name\":");
      rt_lconv_add_string(&b, name, nname);
    }
    if (text) {
      rt_buf_adds(&b, ",\"text\":");
      rt_lconv_add_string(&b, text, ntext);
    }
    if (ev->user_id) {
      rt_buf_adds(&b, ",\"user\":");
      rt_lconv_add_string(&b, ev->user_id, strlen(ev->user_id));
    }
    rt_buf_addc(&b, '}');
    payload = rt_buf_take(&b, NULL);
  }
  free(text);
  free(name);
  if (in->nrecv == in->caprecv) {
    in->caprecv = in->caprecv ? in->caprecv * 2 : 64;
    in->recv = rt_xrealloc(in->recv, in->caprecv * sizeof *in->recv);
  }
  char gen[64];
  if (!ev->ext_id) snprintf(gen, sizeof gen, "gen:%lld:%llu", (long long)at,
                            (unsigned long long)++in->gen_seq);
  in->recv[in->nrecv++] = (recv_item){
    rt_xstrdup(ev->channel), rt_xstrdup(ev->ext_id ? ev->ext_id : gen),
    rt_xstrdup(ev->chat_id), rt_xstrdup(kind), payload, p, ack, ud};
  if (in->o.kick) in->o.kick(in->o.kick_ud);
  return RT_OK;
}

size_t rt_inbox_waiting(const rt_inbox *in) { return in->nrecv; }

int rt_inbox_stage(rt_inbox *in, const rt_inbox_direct *direct) {
  in->nstaged = 0;
  if (!in->nrecv) return RT_OK;
  rt_store *s = in->o.store;
  size_t n = in->nrecv < RECEIVES_PER_FLUSH ? in->nrecv : RECEIVES_PER_FLUSH;
  if (n > in->capstaged) {
    in->capstaged = n;
    in->ids = rt_xrealloc(in->ids, n * sizeof *in->ids);
    in->res = rt_xrealloc(in->res, n * sizeof *in->res);
  }
  if (in->unclean || in->isolating) direct = NULL;
  int64_t now = rt_clock_now(in->o.clock);
  for (size_t i = 0; i < n; i++) {
    recv_item *r = &in->recv[i];
    if (direct && direct->full && direct->full(direct->ud)) break;
    bool now_run = direct && direct->can_run(direct->ud, r->channel, r->chat_id);
    int rc = rt_store_inbox_add_as(s, r->channel, r->ext_id, r->chat_id, r->kind, r->payload,
                                   now_run ? "done" : "new", now, &in->ids[i]);
    if (rc != RT_OK && rc != 1) return rc;
    in->res[i] = rc == 1 ? 1 : now_run ? 2 : 0;
    in->nstaged = i + 1;
    if (in->res[i] == 2) {
      /* A copy: if the transaction rolls back, the batch is written again. */
      direct->run(direct->ud, r->channel, r->chat_id, in->ids[i], 0, rt_xstrdup(r->payload),
                  json_incref(r->doc), strcmp(r->kind, "wake") == 0);
    }
  }
  return RT_OK;
}

void rt_inbox_staged(rt_inbox *in, bool committed) {
  size_t n = in->nstaged;
  in->nstaged = 0;
  /* Rolled back: the batch comes again, unacked (the host drops the steps
   * it started for it). */
  if (!committed || !n) return;
  int64_t commit = rt_store_commit_count(in->o.store);
  bool on_disk = rt_store_synced_commits(in->o.store) >= commit;
  for (size_t i = 0; i < n; i++) {
    recv_item *r = &in->recv[i];
    if (in->res[i] == 0) {
      rt_convq_push(in->o.queues, r->channel, r->chat_id, in->ids[i], r->payload,
                    strcmp(r->kind, "wake") == 0, false);
      r->payload = NULL;
    } else if (in->res[i] == 1) {
      rt_log(RT_LOG_DEBUG, "duplicate", "channel=%s ext_id=%s", r->channel, r->ext_id);
    }
    int status = in->res[i] == 1 ? 1 : RT_OK;
    if (r->ack && on_disk) {
      r->ack(r->ud, status);
    } else if (r->ack) {
      if (in->nheld == in->capheld) {
        in->capheld = in->capheld ? in->capheld * 2 : 64;
        in->held = rt_xrealloc(in->held, in->capheld * sizeof *in->held);
      }
      in->held[in->nheld++] = (struct held_ack){r->ack, r->ud, status, commit};
    }
    recv_free(r);
  }
  memmove(in->recv, in->recv + n, (in->nrecv - n) * sizeof *in->recv);
  in->nrecv -= n;
}

void rt_inbox_synced(rt_inbox *in) {
  int64_t upto = rt_store_synced_commits(in->o.store);
  size_t k = 0;
  /* An ack may receive again (a channel's next batch): those are staged
   * later and held behind these. */
  while (k < in->nheld && in->held[k].commit <= upto) {
    struct held_ack h = in->held[k++];
    h.ack(h.ud, h.status);
  }
  if (!k) return;
  memmove(in->held, in->held + k, (in->nheld - k) * sizeof *in->held);
  in->nheld -= k;
}

int rt_inbox_add_wake(rt_store *s, const char *channel, const char *chat_id, int64_t timer_id,
                      const char *payload, const char *status, int64_t now, int64_t *id) {
  char ext[32];
  snprintf(ext, sizeof ext, "wake:%lld", (long long)timer_id);
  return rt_store_inbox_add_as(s, channel, ext, chat_id, "wake", payload, status, now, id);
}

bool rt_inbox_may_run_direct(const rt_inbox *in) { return !in->unclean && !in->isolating; }

int rt_inbox_flush(rt_inbox *in) {
  if (!in->nrecv) return RT_OK;
  rt_store *s = in->o.store;
  int rc = rt_store_begin(s);
  if (rc == RT_OK) rc = rt_inbox_stage(in, NULL);
  if (rc == RT_OK) rc = rt_store_commit(s);
  else rt_store_rollback(s);
  rt_inbox_staged(in, rc == RT_OK);
  if (rc != RT_OK) return rt_store_errcode(s) ? rt_store_errcode(s) : rc;
  return RT_OK;
}

/* ---- crash recovery ---- */

/* Whatever was received but not applied runs again. After an unclean stop
 * those events run one at a time, so an event that takes the process down
 * is known exactly. */
static void recover_one(void *ud, const rt_inbox_row *r) {
  rt_inbox *in = ud;
  rt_convq_chat *c = rt_convq_push(in->o.queues, r->channel, r->chat_id, r->id, NULL,
                                   strcmp(r->kind, "wake") == 0, in->isolating);
  if (in->isolating && c->len - c->head == 1) {
    in->iso_keys = rt_xrealloc(in->iso_keys, (in->niso + 1) * sizeof *in->iso_keys);
    in->iso_keys[in->niso++] = rt_xstrdup(c->key);
  }
}

void rt_inbox_recover(rt_inbox *in) {
  rt_store *s = in->o.store;
  if (!in->o.test_mode) {
    char *mark = NULL;
    if (rt_store_meta_get(s, "engine.running", &mark) == RT_OK && mark && strcmp(mark, "1") == 0)
      in->isolating = in->unclean = true;
    free(mark);
    /* Not fatal (a full disk must not stop the bot from starting and
     * reporting it): this run then goes without crash detection. */
    if (set_running_mark(in, "1") != RT_OK) {
      char q[512];
      rt_log_quote(rt_store_errmsg(s), q, sizeof q);
      rt_log(RT_LOG_ERROR, "store-error", "err=%s what=running-mark", q);
    }
  }
  rt_store_inbox_pending(s, recover_one, in);
  if (in->isolating && !in->niso) in->isolating = false;
  if (in->isolating)
    rt_log(RT_LOG_WARN, "unclean-stop", "chats=%zu: the events left over run one at a time",
           in->niso);
}

bool rt_inbox_isolating(const rt_inbox *in) { return in->isolating; }

int rt_inbox_isolated_next(rt_inbox *in, rt_convq_chat **chat, bool *quarantine) {
  *chat = NULL;
  *quarantine = false;
  while (in->iso_pos < in->niso) {
    rt_convq_chat *c = rt_convq_get(in->o.queues, in->iso_keys[in->iso_pos]);
    rt_convq_ev *ev = c && !c->running ? rt_convq_head(c) : NULL;
    if (!ev || !ev->isolate) {
      in->iso_pos++;
      continue;
    }
    if (!ev->marked) {
      int64_t before = 0;
      rt_store *s = in->o.store;
      int rc = rt_store_begin(s);
      if (rc == RT_OK) rc = rt_store_inbox_attempt(s, ev->id, &before);
      if (rc == RT_OK) rc = rt_store_commit(s);
      else rt_store_rollback(s);
      if (rc != RT_OK && rc != RT_ENOENT) return rc;
      ev->marked = true;
      ev->attempts = before;
    }
    *chat = c;
    *quarantine = ev->attempts >= RT_INBOX_CRASHES_TO_QUARANTINE;
    return RT_OK;
  }
  if (in->isolating) {
    iso_end(in);
    rt_log(RT_LOG_INFO, "recovered", "the events left by the unclean stop are done");
  }
  return RT_OK;
}
