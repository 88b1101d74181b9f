/* deliver.c -- see deliver.h. */
#include "deliver.h"
#include "lconv.h"
#include "log.h"
#include "map.h"
#include "rt.h"
#include "utf8.h"
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_SCAN_LIMIT 512
#define DEFAULT_IN_FLIGHT 64
#define POLL_MS 1000            /* rows a previous run left in backoff become due */
#define BACKOFF_BASE_MS 1000
#define BACKOFF_MAX_MS 600000
/* Committed rows a channel keeps in memory before it goes back to reading
 * the outbox (a campaign queued faster than the channel's rate). */
#define MEM_ROWS_MAX 8192

const char *rt_fail_reason_name(rt_fail_reason r) {
  switch (r) {
  case RT_FAIL_BLOCKED: return "blocked";
  case RT_FAIL_CHAT_NOT_FOUND: return "chat_not_found";
  case RT_FAIL_OUTSIDE_WINDOW: return "outside_window";
  case RT_FAIL_TOO_LONG: return "too_long";
  case RT_FAIL_UNSUPPORTED: return "unsupported";
  case RT_FAIL_OTHER: break;
  }
  return "other";
}

/* ---- token bucket ----
 * rate tokens per second, at most burst of them (one second's worth, at
 * least one, unless the channel declares a chat_burst); rate 0 = no limit.
 * Time in the host clock's ms. */

typedef struct {
  double tokens, rate, burst;
  int64_t at;
} bucket;

static void bucket_init(bucket *b, double rate, int burst, int64_t now) {
  b->rate = rate > 0 ? rate : 0;
  b->burst = burst > 0 ? burst : rate > 1 ? floor(rate) : 1;
  b->tokens = b->burst;
  b->at = now;
}

static void bucket_fill(bucket *b, int64_t now) {
  if (b->rate <= 0) return;
  if (now > b->at) {
    b->tokens += (double)(now - b->at) * b->rate / 1000.0;
    if (b->tokens > b->burst) b->tokens = b->burst;
  }
  b->at = now;   /* a clock that went back refills nothing */
}

static bool bucket_ok(bucket *b, int64_t now) {
  if (b->rate <= 0) return true;
  bucket_fill(b, now);
  return b->tokens >= 1.0;
}

/* ms until one token is there (after bucket_ok said no). */
static int64_t bucket_wait(const bucket *b) {
  double ms = ceil((1.0 - b->tokens) * 1000.0 / b->rate);
  return ms < 1 ? 1 : (int64_t)ms;
}

static void bucket_take(bucket *b) {
  if (b->rate > 0) b->tokens -= 1.0;
}

/* ---- state ---- */

typedef struct qrow {
  rt_outbox_row *r;          /* owned (one allocation) */
  struct qrow *next;
} qrow;

typedef struct chat {
  bool busy;                 /* a row in flight, or its result not committed */
  bool listed;               /* in its target's list of chats with rows queued */
  bucket b;
  qrow *qhead, *qtail;       /* committed rows not sent yet, oldest first (synced) */
} chat;

/* A channel's rows are in memory ("synced") when every pending row of it
 * in the outbox is either in flight, or waiting for its result's commit,
 * or queued here: then committed rows are handed over by the store
 * (rt_store_outbox_take) and sent without reading the outbox back.
 * Otherwise (at start, after more than MEM_ROWS_MAX rows waited) the scan
 * reads each chat's head from the outbox, and the channel is synced again
 * when the outbox holds no pending row beyond the busy chats' own. */
typedef struct target {
  rt_channel *ch;
  bucket b;
  int64_t paused_until;
  int in_flight, max_in_flight;
  rt_map chats;              /* chat id -> chat */
  bool synced;
  size_t nmem, nbusy;        /* rows queued in memory; chats busy */
  chat **want;               /* chats with rows queued (synced) */
  size_t nwant, capwant;
  /* The channel's mark (025_outbox_mark.sql), while synced: its rows are
   * written open, and a sent one needs no write of its own once the mark
   * is past it. open[] holds the ids of the open rows handed over, oldest
   * first, from open0 on; settled[] which of them a commit has answered
   * for (sent, failed, or set pending by a retry). */
  bool marked, stop_due;     /* stop_due: the last mark_stop failed */
  int64_t mark, mark_from;   /* the mark as committed; where it started */
  int64_t mark_saving;       /* the mark the open transaction moves it to */
  int64_t last_open;         /* the newest open row handed over */
  int64_t *open;
  unsigned char *settled;
  size_t nopen, open0, capopen;
} target;

typedef struct job {
  rt_deliver *d;
  target *t;
  chat *c;
  rt_outbox_row *r;          /* owned: queued again when the result is a retry */
} job;

typedef struct result {
  int64_t id;
  target *t;
  chat *c;
  rt_outbox_row *r;          /* owned, as in job; NULL once delivered or failed */
  rt_send_verdict verdict;
  bool open;                 /* the row was written open (rt_outbox_row.open) */
  const char *reason;        /* static */
  char *err;
  int64_t retry_at, at;
} result;

struct rt_deliver {
  rt_deliver_opts o;
  target **ts;
  size_t nts;
  result *res;
  size_t nres, capres, nsaved;
  uv_timer_t timer;          /* the next known due time, at most POLL_MS away */
  uv_timer_t flush;          /* own commit when the host gives no wake */
  bool started, closing, scanning, rescan, held, flush_armed;
  bool scan_due;               /* results committed: a scan comes on the next loop turn */
  bool recover_due;            /* rt_store_outbox_recover to run (at start) before a scan */
  int handles, jobs;
  int64_t next_trim;
  uint64_t rng;
  rt_deliver_stats st;
  void (*close_done)(void *);
  void *close_ud;
};

static int64_t now_ms(rt_deliver *d) { return rt_clock_now(d->o.clock); }

static uint64_t rnd(rt_deliver *d) {
  /* xorshift64*: jitter only, no need for more */
  d->rng ^= d->rng >> 12;
  d->rng ^= d->rng << 25;
  d->rng ^= d->rng >> 27;
  return d->rng * 2685821657736338717ULL;
}

/* Exponential backoff with "equal jitter": half fixed, half random, so a
 * burst of failures does not come back as a burst. */
static int64_t backoff(rt_deliver *d, int64_t attempts) {
  int64_t base = (int64_t)BACKOFF_BASE_MS << (attempts < 10 ? attempts : 10);
  if (base > BACKOFF_MAX_MS) base = BACKOFF_MAX_MS;
  return base / 2 + (int64_t)(rnd(d) % (uint64_t)(base / 2 + 1));
}

static chat *chat_get(target *t, const char *id, int64_t now) {
  chat *c = rt_map_get(&t->chats, id);
  if (c) return c;
  c = rt_xcalloc(1, sizeof *c);
  double rate = t->ch->limits.per_chat;
  int burst = t->ch->limits.chat_burst;
  if (t->ch->is_group && t->ch->limits.per_group > 0 && t->ch->is_group(t->ch, id)) {
    rate = t->ch->limits.per_group;
    burst = 0;
  }
  bucket_init(&c->b, rate, burst, now);
  rt_map_set(&t->chats, id, c);
  return c;
}

/* Chats idle with a full bucket carry nothing worth keeping. */
static void trim_chats(target *t, int64_t now) {
  size_t it = 0;
  const char *k;
  void *v;
  char **drop = NULL;
  size_t n = 0;
  while (rt_map_next(&t->chats, &it, &k, &v)) {
    chat *c = v;
    if (c->busy || c->listed) continue;
    bucket_fill(&c->b, now);
    if (c->b.rate > 0 && c->b.tokens < c->b.burst) continue;
    drop = rt_xrealloc(drop, (n + 1) * sizeof *drop);
    drop[n++] = rt_xstrdup(k);
  }
  for (size_t i = 0; i < n; i++) {
    free(rt_map_del(&t->chats, drop[i]));
    free(drop[i]);
  }
  free(drop);
}

/* ---- rows kept in memory (synced channels) ---- */

static void want_add(target *t, chat *c) {
  if (c->listed) return;
  c->listed = true;
  if (t->nwant == t->capwant) {
    t->capwant = t->capwant ? t->capwant * 2 : 64;
    t->want = rt_xrealloc(t->want, t->capwant * sizeof *t->want);
  }
  t->want[t->nwant++] = c;
}

/* front: a row whose retry was committed goes back before the chat's later
 * rows. */
static void queue_push(target *t, chat *c, rt_outbox_row *r, bool front) {
  qrow *q = rt_xmalloc(sizeof *q);
  q->r = r;
  q->next = NULL;
  if (!c->qhead) c->qhead = c->qtail = q;
  else if (front) { q->next = c->qhead; c->qhead = q; }
  else { c->qtail->next = q; c->qtail = q; }
  t->nmem++;
  want_add(t, c);
}

static rt_outbox_row *queue_pop(target *t, chat *c) {
  qrow *q = c->qhead;
  rt_outbox_row *r = q->r;
  c->qhead = q->next;
  if (!c->qhead) c->qtail = NULL;
  free(q);
  t->nmem--;
  return r;
}

static void queue_free(target *t, chat *c) {
  while (c->qhead) free(queue_pop(t, c));
}

/* A store failure, logged with what failed and, if given, its channel. */
static void store_error(rt_deliver *d, const char *what, const target *t) {
  char q[256];
  rt_log_quote(rt_store_errmsg(d->o.store), q, sizeof q);
  if (t) rt_log(RT_LOG_ERROR, "store-error", "what=%s channel=%s err=%s", what, t->ch->name, q);
  else rt_log(RT_LOG_ERROR, "store-error", "what=%s err=%s", what, q);
}

/* ---- the channel's mark ---- */

static void open_add(target *t, int64_t id) {
  if (t->nopen == t->capopen) {
    t->capopen = t->capopen ? t->capopen * 2 : 256;
    t->open = rt_xrealloc(t->open, t->capopen * sizeof *t->open);
    t->settled = rt_xrealloc(t->settled, t->capopen);
  }
  t->open[t->nopen] = id;
  t->settled[t->nopen++] = 0;
  t->last_open = id;
}

/* The index of id in open[] (ids grow), or -1. */
static ssize_t open_find(const target *t, int64_t id) {
  size_t lo = t->open0, hi = t->nopen;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (t->open[mid] < id) lo = mid + 1;
    else hi = mid;
  }
  return lo < t->nopen && t->open[lo] == id ? (ssize_t)lo : -1;
}

static void open_trim(target *t) {
  while (t->open0 < t->nopen && t->settled[t->open0]) t->open0++;
  if (t->open0 == t->nopen) t->open0 = t->nopen = 0;
  else if (t->open0 > t->nopen / 2) {
    memmove(t->open, t->open + t->open0, (t->nopen - t->open0) * sizeof *t->open);
    memmove(t->settled, t->settled + t->open0, t->nopen - t->open0);
    t->nopen -= t->open0;
    t->open0 = 0;
  }
}

static void mark_start(rt_deliver *d, target *t) {
  int64_t next;
  int rc = rt_store_outbox_mark_start(d->o.store, t->ch->name, &next);
  /* A channel that keeps a history gets none; inside a transaction none
   * starts (one rolled back would take the mark's row with it, and the
   * rows written open after it would have no mark): a later scan tries. */
  if (rc == RT_EINVAL || rc == RT_EBUSY) return;
  if (rc != RT_OK) {
    store_error(d, "outbox-mark", t);
    return;
  }
  t->marked = true;
  t->mark = t->mark_from = t->mark_saving = next;
  t->last_open = next - 1;
  t->open0 = t->nopen = 0;
}

/* The open rows set pending (the scans find them there); false if the
 * store failed, and then no scan of the outbox may run until it did. The
 * mark is off either way: it never moves again, so the rows memory drops
 * now stay above it, open, for the stop's next try or the next start. */
static bool mark_stop(rt_deliver *d, target *t) {
  if (!t->marked && !t->stop_due) return true;
  t->marked = false;
  t->open0 = t->nopen = 0;
  if (rt_store_outbox_mark_stop(d->o.store, t->ch->name) != RT_OK) {
    store_error(d, "outbox-mark-stop", t);
    t->stop_due = true;
    return false;
  }
  t->stop_due = false;
  return true;
}

/* Back to reading the outbox: memory no longer knows every pending row. */
static void unsync(rt_deliver *d, target *t) {
  mark_stop(d, t);
  for (size_t i = 0; i < t->nwant; i++) {
    queue_free(t, t->want[i]);
    t->want[i]->listed = false;
  }
  t->nwant = 0;
  t->synced = false;
}

/* ---- the typed message ---- */

typedef struct {
  json_t *doc;
  char *text;                /* owned: the text of a text-only payload */
  const char **buttons, **params;
  rt_out_msg m;
} parsed;

/* Most rows are a reply's text alone, {"text":"..."} as the effects write
 * it (compact, lconv's escapes): that string read straight, without a tree
 * (jansson takes some 30,000 instructions for a line of text). NULL for
 * anything else, which the tree reads. */
static char *text_only(const char *js) {
  static const char head[] = "{\"text\":\"";
  if (strncmp(js, head, sizeof head - 1) != 0) return NULL;
  const char *p = js + sizeof head - 1;
  size_t n = strlen(p);
  if (n < 2 || p[n - 2] != '"' || p[n - 1] != '}') return NULL;
  char *out = rt_xmalloc(n + 1), *o = out;   /* escapes only shrink */
  const char *end = p + n - 2;
  while (p < end) {
    /* Plain text and valid UTF-8, a run at a time (rt_lconv_plain_run). */
    size_t run = rt_lconv_plain_run(p, (size_t)(end - p));
    memcpy(o, p, run);
    o += run;
    p += run;
    if (p == end) break;
    /* A quote or a control byte: the string ends early, not text-only;
     * a byte that is no UTF-8: the tree cleans it. */
    if (*p != '\\') goto bad;
    p++;
    uint32_t cp;
    /* a lone surrogate or NUL: the tree says what it is */
    if (rt_lconv_escape(&p, end, &cp) != 0 || cp == 0) goto bad;
    /* cp is a scalar value here (no surrogate, at most U+10FFFF): valid */
    o += rt_utf8_encode(cp, o);
  }
  *o = '\0';
  return out;
bad:
  free(out);
  return NULL;
}

static const char *str_of(json_t *v) {
  if (json_is_string(v)) return json_string_value(v);
  return json_string_value(json_object_get(v, "text"));
}

/* The stored payload ({text, buttons, about, media, template, topic}) parsed once;
 * NULL with *why set when it cannot be sent as it is. */
static bool parse_msg(const rt_outbox_row *r, const rt_channel *ch, parsed *p, const char **why) {
  memset(p, 0, sizeof *p);
  rt_out_msg *m = &p->m;
  m->id = r->id;
  m->chat_id = r->chat_id;
  m->idem_key = r->idem_key;
  m->attempt = (int)r->attempts;
  if ((p->text = text_only(r->payload))) {
    m->text = p->text;
    m->kind = RT_MSG_TEXT;
    return true;
  }
  p->doc = json_loads(r->payload, 0, NULL);
  if (!json_is_object(p->doc)) { *why = "the stored payload is not a JSON object"; return false; }
  m->about = json_string_value(json_object_get(p->doc, "about"));
  m->topic = json_string_value(json_object_get(p->doc, "topic"));
  m->text = json_string_value(json_object_get(p->doc, "text"));
  if (!m->text) m->text = "";
  m->kind = RT_MSG_TEXT;
  json_t *b = json_object_get(p->doc, "buttons");
  if (json_array_size(b)) {
    p->buttons = rt_xcalloc(json_array_size(b), sizeof *p->buttons);
    size_t i;
    json_t *v;
    json_array_foreach(b, i, v) {
      const char *s = str_of(v);
      if (s) p->buttons[m->nbuttons++] = s;
    }
    m->buttons = p->buttons;
    if (m->nbuttons) m->kind = RT_MSG_BUTTONS;
  }
  json_t *media = json_object_get(p->doc, "media");
  if (json_is_object(media)) {
    m->media_ref = json_string_value(json_object_get(media, "ref"));
    m->media_kind = json_string_value(json_object_get(media, "kind"));
    if (!m->media_kind) m->media_kind = "photo";
    if (!m->media_ref) { *why = "media without ref"; return false; }
    m->kind = RT_MSG_MEDIA;
  }
  json_t *tpl = json_object_get(p->doc, "template");
  if (json_is_object(tpl)) {
    m->template_name = json_string_value(json_object_get(tpl, "name"));
    if (!m->template_name) { *why = "template without name"; return false; }
    json_t *ps = json_object_get(tpl, "params");
    if (json_array_size(ps)) {
      p->params = rt_xcalloc(json_array_size(ps), sizeof *p->params);
      size_t i;
      json_t *v;
      json_array_foreach(ps, i, v) p->params[m->ntemplate_params++] = str_of(v) ? str_of(v) : "";
      m->template_params = p->params;
    }
    m->kind = RT_MSG_TEMPLATE;
  }
  unsigned need = m->kind == RT_MSG_BUTTONS ? RT_CH_BUTTONS : m->kind == RT_MSG_MEDIA ? RT_CH_MEDIA
                  : m->kind == RT_MSG_TEMPLATE ? RT_CH_TEMPLATES : 0;
  if (need && !(ch->caps & need)) {
    *why = m->kind == RT_MSG_BUTTONS ? "the channel has no buttons"
           : m->kind == RT_MSG_MEDIA ? "the channel sends no media" : "the channel has no templates";
    return false;
  }
  return true;
}

static void parsed_free(parsed *p) {
  free(p->text);
  free(p->buttons);
  free(p->params);
  json_decref(p->doc);
}

/* ---- results ---- */

static void flush_cb(uv_timer_t *h);

static void results_waiting(rt_deliver *d) {
  if (d->o.wake) d->o.wake(d->o.wake_ud);
  else if (!d->flush_armed) {
    d->flush_armed = true;
    uv_timer_start(&d->flush, flush_cb, 0, 0);
  }
}

static void maybe_free(rt_deliver *d);

static void send_done(void *ud, const rt_send_result *r) {
  job *j = ud;
  rt_deliver *d = j->d;
  target *t = j->t;
  d->jobs--;
  t->in_flight--;
  if (d->closing) {
    free(j->r);
    free(j);
    maybe_free(d);
    return;
  }
  int64_t now = now_ms(d);
  result x = {.id = j->r->id, .t = t, .c = j->c, .r = j->r, .verdict = r->verdict, .at = now,
              .open = j->r->open, .err = r->text ? rt_xstrdup(r->text) : NULL};
  char q[256];
  rt_log_quote(r->text ? r->text : "", q, sizeof q);
  switch (r->verdict) {
  case RT_SEND_DELIVERED:
    d->st.sent++;
    break;
  case RT_SEND_RETRY_LATER:
    x.retry_at = now + (r->after_ms > 0 ? r->after_ms : backoff(d, j->r->attempts));
    d->st.retried++;
    rt_log(RT_LOG_WARN, "send-retry", "channel=%s outbox=%lld in_ms=%lld err=%s", t->ch->name,
           (long long)j->r->id, (long long)(x.retry_at - now), q);
    break;
  case RT_SEND_PAUSE_CHANNEL: {
    int64_t until = r->until_ms > 0 ? r->until_ms
                    : now + (r->after_ms > 0 ? r->after_ms : backoff(d, j->r->attempts));
    if (until > t->paused_until) t->paused_until = until;
    x.retry_at = until;
    d->st.paused++;
    rt_log(RT_LOG_WARN, "channel-paused", "channel=%s outbox=%lld for_ms=%lld err=%s",
           t->ch->name, (long long)j->r->id, (long long)(until - now), q);
    break;
  }
  case RT_SEND_FAILED:
  default:
    x.verdict = RT_SEND_FAILED;
    x.reason = rt_fail_reason_name(r->reason);
    d->st.failed++;
    rt_log(RT_LOG_ERROR, "send-failed", "channel=%s outbox=%lld reason=%s err=%s", t->ch->name,
           (long long)j->r->id, x.reason, q);
    break;
  }
  /* Delivered or failed for good: what is written is the id and the
   * verdict, so the row (its text) need not wait for that commit; in a
   * burst a whole batch of them would. */
  if (x.verdict == RT_SEND_DELIVERED || x.verdict == RT_SEND_FAILED) {
    free(x.r);
    x.r = NULL;
  }
  if (d->nres == d->capres) {
    d->capres = d->capres ? d->capres * 2 : 64;
    d->res = rt_xrealloc(d->res, d->capres * sizeof *d->res);
  }
  d->res[d->nres++] = x;
  free(j);
  results_waiting(d);
}

bool rt_deliver_has_results(const rt_deliver *d) { return d->nres > 0; }

static int cmp_id(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

/* Sorts ids, mostly in order already (answers come back about as rows
 * were sent): glibc's qsort mallocs a copy of the whole array each time. */
static void sort_ids(int64_t *ids, size_t n) {
  for (size_t i = 1; i < n; i++)
    if (ids[i - 1] > ids[i]) {
      qsort(ids, n, sizeof *ids, cmp_id);
      return;
    }
}

static bool has_id(const int64_t *ids, size_t n, int64_t id) {
  return bsearch(&id, ids, n, sizeof *ids, cmp_id) != NULL;
}

/* Where each marked channel's mark can go once this transaction commits:
 * to its oldest open row that is neither settled yet nor answered now
 * (ans, sorted), or past the newest one handed over. */
static int save_marks(rt_deliver *d, const int64_t *ans, size_t nans) {
  int rc = RT_OK;
  for (size_t k = 0; k < d->nts && rc == RT_OK; k++) {
    target *t = d->ts[k];
    if (!t->marked) continue;
    size_t i = t->open0;
    while (i < t->nopen && (t->settled[i] || has_id(ans, nans, t->open[i]))) i++;
    t->mark_saving = i < t->nopen ? t->open[i] : t->last_open + 1;
    if (t->mark_saving > t->mark) rc = rt_store_outbox_mark_set(d->o.store, t->ch->name, t->mark_saving);
  }
  return rc;
}

/* A delivered row the mark covers once this transaction commits: open,
 * of the channel's present mark, and below where the mark goes. */
static bool covered(const result *x) {
  const target *t = x->t;
  return x->open && t->marked && x->id >= t->mark_from && x->id < t->mark_saving;
}

/* The delivered rows, marked sent a run of neighbouring ids at a time: a
 * busy pump's answers are mostly rows queued together (consecutive ids),
 * and one UPDATE over a run walks its rows in order where one per row
 * looked each up again (tests/bench/bench_core). The rows take the
 * latest of their answers' times as sent_at: they were answered since the
 * last commit, a few milliseconds apart. Rows the channel's mark covers
 * need no write at all. */
static int save_sent(rt_deliver *d) {
  if (!d->nres) return RT_OK;
  size_t n = 0, nans = 0;
  /* One array: first the open rows answered (for the marks), then the
   * delivered rows to mark sent. */
  int64_t at = 0, *ids = rt_xmalloc(d->nres * sizeof *ids);
  for (size_t i = 0; i < d->nres; i++)
    if (d->res[i].open) ids[nans++] = d->res[i].id;
  sort_ids(ids, nans);
  int rc = save_marks(d, ids, nans);
  for (size_t i = 0; i < d->nres; i++)
    if (d->res[i].verdict == RT_SEND_DELIVERED && !covered(&d->res[i])) {
      ids[n++] = d->res[i].id;
      if (d->res[i].at > at) at = d->res[i].at;
    }
  sort_ids(ids, n);
  for (size_t i = 0; i < n && rc == RT_OK;) {
    size_t j = i + 1;
    while (j < n && ids[j] == ids[j - 1] + 1) j++;
    rc = rt_store_outbox_sent_range(d->o.store, ids[i], ids[j - 1], at);
    i = j;
  }
  free(ids);
  return rc;
}

int rt_deliver_save(rt_deliver *d) {
  int rc = save_sent(d);
  for (size_t i = 0; i < d->nres && rc == RT_OK; i++) {
    result *x = &d->res[i];
    if (x->verdict == RT_SEND_DELIVERED) continue;
    if (x->verdict == RT_SEND_FAILED) {
      rc = rt_store_outbox_failed_why(d->o.store, x->id, x->reason, x->err, x->at);
      /* blocked, chat not found: campaigns stop using that address */
      if (rc == RT_OK) rc = rt_store_address_failed(d->o.store, x->id, x->reason, x->at);
    }
    else rc = rt_store_outbox_retry(d->o.store, x->id, x->retry_at, x->err);
  }
  d->nsaved = rc == RT_OK ? d->nres : 0;
  return rc;
}

static void scan(rt_deliver *d);
static void timer_cb(uv_timer_t *h);

void rt_deliver_saved(rt_deliver *d, bool committed) {
  size_t n = committed ? d->nsaved : 0;
  d->nsaved = 0;
  if (!n) return;   /* kept: written again with the host's next commit */
  for (size_t i = 0; i < d->nts; i++)
    if (d->ts[i]->marked) d->ts[i]->mark = d->ts[i]->mark_saving;
  for (size_t i = 0; i < n; i++) {
    result *x = &d->res[i];
    x->c->busy = false;
    x->t->nbusy--;
    if (x->open && x->t->marked) {
      ssize_t k = open_find(x->t, x->id);
      if (k >= 0) x->t->settled[k] = 1;
    }
    /* a retry set the row pending: it waits in the indexes from now on */
    if (x->r) x->r->open = false;
    /* A retry leaves the row pending: on a synced channel it waits in
     * memory, at its chat's head, as the store now has it. */
    if (x->verdict != RT_SEND_DELIVERED && x->verdict != RT_SEND_FAILED && x->t->synced) {
      x->r->attempts++;
      x->r->next_try_at = x->retry_at;
      queue_push(x->t, x->c, x->r, true);
    } else {
      free(x->r);
    }
    free(x->err);
  }
  for (size_t i = 0; i < d->nts; i++)
    if (d->ts[i]->marked) open_trim(d->ts[i]);
  memmove(d->res, d->res + n, (d->nres - n) * sizeof *d->res);
  d->nres -= n;
  /* The chats are free to send their next row: scan on the next loop
   * turn, so that a commit that also queued rows (rt_deliver_committed
   * right after) costs one scan, not two. */
  if (d->started && !d->closing) {
    d->scan_due = true;
    uv_timer_start(&d->timer, timer_cb, 0, 0);
  }
}

static void flush_cb(uv_timer_t *h) {
  rt_deliver *d = h->data;
  d->flush_armed = false;
  if (!d->nres || d->closing) return;
  int rc = rt_store_begin(d->o.store);
  if (rc == RT_OK) rc = rt_deliver_save(d);
  if (rc == RT_OK) rc = rt_store_commit(d->o.store);
  else rt_store_rollback(d->o.store);
  if (rc != RT_OK) {
    rt_log(RT_LOG_ERROR, "store-error", "what=delivery-results err=\"%s\"",
           rt_store_errmsg(d->o.store));
    d->flush_armed = true;
    uv_timer_start(&d->flush, flush_cb, POLL_MS, 0);
  }
  rt_deliver_saved(d, rc == RT_OK);
}

/* ---- the scan ---- */

typedef struct {
  rt_deliver *d;
  target *t;
  int64_t now, *next;
  int seen;
  bool stopped;
} scan_ctx;

static void at_least(int64_t *next, int64_t at) {
  if (at < *next) *next = at;
}

static bool channel_can(scan_ctx *s) {
  target *t = s->t;
  if (t->paused_until > s->now) { at_least(s->next, t->paused_until); return false; }
  if (t->in_flight >= t->max_in_flight) return false;   /* an answer scans again */
  if (!bucket_ok(&t->b, s->now)) {
    at_least(s->next, s->now + bucket_wait(&t->b));
    s->d->held = true;
    return false;
  }
  return true;
}

/* Sends r (owned by the job from now) to chat c; the caller checked the
 * chat's and the channel's limits. */
static void send_row(scan_ctx *s, chat *c, rt_outbox_row *r) {
  rt_deliver *d = s->d;
  target *t = s->t;
  job *j = rt_xmalloc(sizeof *j);
  *j = (job){d, t, c, r};
  c->busy = true;
  t->nbusy++;
  t->in_flight++;
  d->jobs++;
  parsed p;
  const char *why = NULL;
  if (!parse_msg(r, t->ch, &p, &why)) {
    rt_send_result fr = {.verdict = RT_SEND_FAILED,
                         .reason = strstr(why, "the channel") ? RT_FAIL_UNSUPPORTED : RT_FAIL_OTHER,
                         .text = why};
    send_done(j, &fr);
  } else {
    /* The tokens are taken at the moment of the send, after the payload
     * was read (which takes time on a slow machine): the rate holds for
     * the times the service sees. Both buckets had a token at the check,
     * and the time since only adds to them. */
    int64_t now = now_ms(d);
    bucket_fill(&t->b, now);
    bucket_fill(&c->b, now);
    bucket_take(&t->b);
    bucket_take(&c->b);
    t->ch->send(t->ch, &p.m, send_done, j);
  }
  parsed_free(&p);
}

static bool head_cb(void *ud, const rt_outbox_row *r) {
  scan_ctx *s = ud;
  rt_deliver *d = s->d;
  target *t = s->t;
  s->seen++;
  /* The buckets count at the moment of each send, not at the start of a
   * long scan: else a later send could use tokens refilled for time that
   * had not passed yet when an earlier one went. */
  s->now = now_ms(d);
  chat *c = chat_get(t, r->chat_id, s->now);
  if (c->busy) return true;
  if (!bucket_ok(&c->b, s->now)) {
    at_least(s->next, s->now + bucket_wait(&c->b));
    d->held = true;
    return true;
  }
  if (!channel_can(s)) { s->stopped = true; return false; }
  send_row(s, c, rt_outbox_row_dup(r));
  return true;
}

/* The scan of a synced channel, over the rows in memory: each chat's head,
 * by priority then id, as the outbox query orders them. */
static int head_cmp(const void *a, const void *b) {
  const rt_outbox_row *x = (*(chat *const *)a)->qhead->r, *y = (*(chat *const *)b)->qhead->r;
  if (x->priority != y->priority) return x->priority < y->priority ? -1 : 1;
  return x->id < y->id ? -1 : x->id > y->id;
}

static void scan_mem(rt_deliver *d, target *t, int64_t now, int64_t *next) {
  scan_ctx s = {d, t, now, next, 0, false};
  size_t k = 0;
  for (size_t i = 0; i < t->nwant; i++) {
    chat *c = t->want[i];
    if (c->qhead) t->want[k++] = c;
    else c->listed = false;
  }
  t->nwant = k;
  if (!k || !channel_can(&s)) return;
  /* Mostly in order already (chats are listed as their rows commit), and
   * glibc's qsort mallocs a buffer of the whole list each time: sort only
   * when the list is not sorted. */
  bool sorted = true;
  for (size_t i = 1; i < k && sorted; i++) sorted = head_cmp(&t->want[i - 1], &t->want[i]) <= 0;
  if (!sorted) qsort(t->want, k, sizeof *t->want, head_cmp);
  for (size_t i = 0; i < t->nwant; i++) {
    chat *c = t->want[i];
    if (c->busy || !c->qhead) continue;
    s.now = now_ms(d);
    rt_outbox_row *r = c->qhead->r;
    if (r->next_try_at > s.now) { at_least(next, r->next_try_at); continue; }
    if (!bucket_ok(&c->b, s.now)) {
      at_least(next, s.now + bucket_wait(&c->b));
      d->held = true;
      continue;
    }
    if (!channel_can(&s)) break;
    d->st.from_memory++;
    send_row(&s, c, queue_pop(t, c));
  }
}

/* Rows the store saw committed since the last scan. */
static void absorb(rt_deliver *d, int64_t now) {
  size_t n;
  bool overflow;
  rt_outbox_row **v = rt_store_outbox_take(d->o.store, &n, &overflow);
  if (overflow)
    for (size_t i = 0; i < d->nts; i++) unsync(d, d->ts[i]);
  for (size_t i = 0; i < n; i++) {
    target *t = NULL;
    for (size_t k = 0; k < d->nts && !t; k++)
      if (strcmp(d->ts[k]->ch->name, v[i]->channel) == 0) t = d->ts[k];
    if (!t || !t->synced) { free(v[i]); continue; }
    /* Written open under an earlier mark, since stopped: the stop set it
     * pending, as any other. */
    if (v[i]->open && !(t->marked && v[i]->id >= t->mark_from)) v[i]->open = false;
    if (v[i]->open) open_add(t, v[i]->id);
    queue_push(t, chat_get(t, v[i]->chat_id, now), v[i], false);
    if (t->nmem > MEM_ROWS_MAX) unsync(d, t);
  }
  free(v);
}

static void scan_target(rt_deliver *d, target *t, int64_t now, int64_t *next) {
  scan_ctx s = {d, t, now, next, 0, false};
  /* Open rows not set pending yet are in no index: try again first. */
  if (t->stop_due && !mark_stop(d, t)) { at_least(next, now + POLL_MS); return; }
  if (!channel_can(&s)) return;
  int limit = d->o.scan_limit > 0 ? d->o.scan_limit : DEFAULT_SCAN_LIMIT;
  if (rt_store_outbox_heads(d->o.store, t->ch->name, now, limit, head_cb, &s) != RT_OK) {
    store_error(d, "outbox-scan", t);
    return;
  }
  /* A full page of chats that could not go: more may be behind it. */
  if (s.seen >= limit && !s.stopped) at_least(next, now + 100);
  /* Every pending row is a busy chat's own: from now on the rows the store
   * hands over are all there is. */
  else if (s.seen < limit && rt_store_outbox_pending(d->o.store, t->ch->name) == (int64_t)t->nbusy) {
    t->synced = true;
    mark_start(d, t);
  }
}

static void timer_cb(uv_timer_t *h);

static void scan(rt_deliver *d) {
  if (!d->started || d->closing) return;
  if (d->scanning) { d->rescan = true; return; }   /* a send answered inside the scan */
  d->scanning = true;
  d->scan_due = false;
  int64_t now, next;
  if (d->recover_due && rt_store_outbox_recover(d->o.store) == RT_OK) d->recover_due = false;
  if (d->recover_due) {   /* no scan may send before the open rows are pending */
    store_error(d, "outbox-recover", NULL);
    d->scanning = false;
    uv_timer_start(&d->timer, timer_cb, POLL_MS, 0);
    return;
  }
  absorb(d, now_ms(d));
  do {
    d->rescan = false;
    d->held = false;
    now = now_ms(d);
    next = now + POLL_MS;
    for (size_t i = 0; i < d->nts && !d->closing; i++) {
      if (d->ts[i]->synced) scan_mem(d, d->ts[i], now, &next);
      else scan_target(d, d->ts[i], now, &next);
    }
  } while (d->rescan && !d->closing);
  d->scanning = false;
  if (d->closing) return;
  if (now >= d->next_trim) {
    d->next_trim = now + 10 * POLL_MS;
    for (size_t i = 0; i < d->nts; i++) trim_chats(d->ts[i], now);
  }
  uv_timer_start(&d->timer, timer_cb, (uint64_t)(next > now ? next - now : 0), 0);
}

static void timer_cb(uv_timer_t *h) { scan(h->data); }

/* ---- lifecycle ---- */

rt_deliver *rt_deliver_new(const rt_deliver_opts *o) {
  rt_deliver *d = rt_xcalloc(1, sizeof *d);
  d->o = *o;
  d->rng = o->seed ? o->seed : (uv_hrtime() ^ (uint64_t)(uintptr_t)d) | 1;
  uv_timer_init(o->loop, &d->timer);
  uv_timer_init(o->loop, &d->flush);
  d->timer.data = d->flush.data = d;
  d->handles = 2;
  rt_store_outbox_track(o->store, MEM_ROWS_MAX);
  return d;
}

void rt_deliver_add_channel(rt_deliver *d, rt_channel *ch) {
  target *t = rt_xcalloc(1, sizeof *t);
  t->ch = ch;
  bucket_init(&t->b, ch->limits.per_sec, 0, now_ms(d));
  t->max_in_flight = ch->limits.in_flight > 0 ? ch->limits.in_flight : DEFAULT_IN_FLIGHT;
  rt_map_init(&t->chats);
  d->ts = rt_xrealloc(d->ts, (d->nts + 1) * sizeof *d->ts);
  d->ts[d->nts++] = t;
}

size_t rt_deliver_nchannels(const rt_deliver *d) { return d->nts; }

void rt_deliver_start(rt_deliver *d) {
  d->started = true;
  /* Rows a killed process left open are pending again before any scan. */
  d->recover_due = true;
  scan(d);
}

void rt_deliver_committed(rt_deliver *d) { scan(d); }

bool rt_deliver_idle(const rt_deliver *d) {
  return d->jobs == 0 && d->nres == 0 && !d->held && !d->scan_due;
}

const rt_deliver_stats *rt_deliver_get_stats(const rt_deliver *d) { return &d->st; }

void rt_deliver_trim(rt_deliver *d) {
  int64_t now = now_ms(d);
  for (size_t i = 0; i < d->nts; i++) trim_chats(d->ts[i], now);
}

static void maybe_free(rt_deliver *d) {
  if (d->handles || d->jobs) return;
  for (size_t i = 0; i < d->nts; i++) {
    size_t it = 0;
    const char *k;
    void *v;
    while (rt_map_next(&d->ts[i]->chats, &it, &k, &v)) {
      queue_free(d->ts[i], v);
      free(v);
    }
    rt_map_free(&d->ts[i]->chats);
    free(d->ts[i]->want);
    free(d->ts[i]->open);
    free(d->ts[i]->settled);
    free(d->ts[i]);
  }
  free(d->ts);
  for (size_t i = 0; i < d->nres; i++) {
    free(d->res[i].err);
    free(d->res[i].r);
  }
  free(d->res);
  free(d);
}

static void closed(uv_handle_t *h) {
  rt_deliver *d = h->data;
  if (--d->handles) return;
  void (*done)(void *) = d->close_done;
  void *ud = d->close_ud;
  maybe_free(d);
  if (done) done(ud);
}

void rt_deliver_close(rt_deliver *d, void (*done)(void *), void *ud) {
  /* A clean stop leaves no row open: the store says what it holds. */
  for (size_t i = 0; i < d->nts; i++) mark_stop(d, d->ts[i]);
  d->closing = true;
  rt_store_outbox_track(d->o.store, 0);
  d->close_done = done;
  d->close_ud = ud;
  uv_close((uv_handle_t *)&d->timer, closed);
  uv_close((uv_handle_t *)&d->flush, closed);
}
