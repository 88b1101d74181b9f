/* telegram.c -- see telegram.h and README.md. */
#include "telegram.h"
#include "buf.h"
#include "http_client.h"
#include "http_server.h"
#include "lconv.h"
#include "log.h"
#include "map.h"
#include "tgupd.h"
#include "utf8.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* What getUpdates and setWebhook ask for: the kinds this channel reads. */
#define ALLOWED_UPDATES "[\"message\",\"edited_message\",\"callback_query\",\"my_chat_member\"]"
#define TG_DOWNLOAD_MAX ((int64_t)20 << 20)   /* the cloud Bot API's download cap */
#define TG_CAPTION_MAX 1024
#define TG_CALLBACK_MAX 64                    /* callback_data, bytes */
#define POLL_BACKOFF_MAX_MS 30000
#define CONFLICT_RETRY_MS 5000
#define UNAUTHORIZED_PAUSE_MS 60000
#define TYPING_AFTER_MS 1500                  /* a reply slower than this shows "typing" */
#define TYPING_EVERY_MS 4500                  /* Telegram shows it for about 5 s */
#define TYPING_FOR_MS 60000
#define PRUNE_EVERY_MS (3600 * 1000)          /* the photos folder is looked at hourly */
#define TG_BODY_MAX ((size_t)4 << 20)         /* a Bot API answer's size cap */
#define POLL_LIMIT_MAX 100                    /* getUpdates' limit, the server's cap */

typedef struct tg tg;
typedef struct tg_job tg_job;

/* One long-poll answer: the offset moves past it when every event in it is
 * committed (refs: its jobs not yet acked, +1 while they are queued). */
typedef struct {
  tg *t;
  int refs;
  bool failed;
  int64_t next_offset;
} tg_batch;

/* One update on its way to the host. Jobs run one at a time, in order, so
 * a photo's download never lets a later message of the chat overtake it. */
struct tg_job {
  tg_job *next;
  tg *t;
  json_t *upd;               /* owned */
  tg_batch *batch;           /* long polling, or */
  rt_httpd_req *wreq;        /* the webhook request answered after the commit */
  /* the event being built */
  rt_event_in ev;
  char ext[48], chat[32], user[32];
  char *name, *text;
  json_t *extra;             /* owned: ev.extra_json's object */
  char *extra_text;          /* owned: or its text, for a job read without a tree */
  bool ready;                /* the event is built already (tgupd.h) */
  json_t *photos;            /* borrowed from extra: entries still to download */
  size_t photo_i;
  rt_http_req *req;          /* getFile or the download in flight */
  bool acked;                /* the host answered (or the job ended without an event) */
  tg_job *anext;             /* t->awaiting: jobs waiting for their ack */
};

typedef struct tg_send tg_send;
struct tg_send {
  tg *t;
  tg_send *next, *prev;      /* t->sends */
  rt_http_req *req;
  rt_send_done done;
  void *ud;
  int64_t row;
  char *chat;                /* where it goes (a migrated group's new id) */
  char *orig_chat;           /* the chat the row names */
  char *about_chat;          /* a note to the managers: the customer's chat */
  char **parts;
  size_t nparts, part;
  char *markup;              /* reply_markup JSON for the last part, or NULL */
  char *media_ref, *media_kind, *caption;
  bool media_done;
  bool about;                /* a note to the managers about a customer's chat */
  int64_t reply_to;          /* that customer's card in the managers' chat, or 0 */
  /* managers.topics: the customer's forum topic in the managers' chat */
  char *topic_name;          /* its name (the persona's), to create or recreate it */
  int64_t thread;            /* its message_thread_id, 0 = none (yet) */
  bool want_topic;           /* createForumTopic comes before the note */
  int migrations;
};

/* Parts of a split message already delivered: a retry of the row goes on
 * from there instead of sending them twice. Kept in memory and, for a row
 * of several Telegram messages, in the plugin's values too (kv
 * "parts:<chat>" = "<row>:<parts done>:<media done>", written after each
 * part Telegram took): after a crash the row goes on after the parts
 * already delivered, so only the part in flight at the crash (or whose
 * answer was lost, a timeout) may come twice (docs/architecture.md, the
 * one window). One key per chat is
 * enough: the delivery queue has at most one row of a chat in flight or
 * unconfirmed, so a key naming another row is that earlier row's, whose
 * result is committed, and is simply overwritten. */
typedef struct tg_progress {
  struct tg_progress *next;
  int64_t row;
  size_t parts_done;
  bool media_done;
} tg_progress;

/* A chat waiting for its reply: "typing" goes out at due, again every
 * TYPING_EVERY_MS, until the reply or TYPING_FOR_MS. No timer of its own:
 * one timer of the channel (typing_timer) serves them all, since a timer
 * made and closed for every message cost an allocation, a map entry's
 * handle and an extra turn of the loop for its close. */
typedef struct tg_typing {
  char chat[32];
  int64_t since, due;
} tg_typing;

struct tg {
  rt_channel ch;
  const rt_plugin_env *env;
  char *token, *api_base, *base, *file_base;
  char *webhook_url, *webhook_path, *webhook_secret_conf, *secret;
  int poll_timeout_s;
  int64_t photo_max;
  bool inline_buttons;
  char *managers;            /* the managers' chat (kv managers_chat), or NULL */
  bool topics_off;           /* createForumTopic was refused (no forum, no rights):
                              * notes go as cards until the next start */
  int64_t bot_id;
  char *bot_username;
  /* polling */
  rt_http_req *poll_req, *ctl_req;
  uv_timer_t timer;          /* the next poll after a failure, or a start step */
  uv_timer_t prune;          /* photos older than store.keep_days go */
  bool prune_open;
  bool timer_open, started, stopped, closing, webhook_mode;
  int64_t offset;            /* 0: none sent yet */
  int64_t backoff_ms;
  int poll_limit;            /* getUpdates' limit: halved after an answer over
                              * TG_BODY_MAX, doubled back after each answer read */
  /* updates of getUpdates answers jansson refused whole (polled_split) or
   * too big alone (polled_too_big), for /metrics */
  uint64_t upd_repaired, upd_unreadable, upd_too_big;
  /* inbound */
  tg_job *jobs, *jobs_tail;  /* waiting to be normalised and received */
  tg_job *busy;              /* the one downloading its photos */
  tg_job *awaiting;          /* received, waiting for the commit */
  struct tg_group *groups;   /* albums being gathered or awaiting their commit */
  uv_timer_t group_timer;    /* the earliest album's wait is over */
  bool group_timer_open;
  int64_t group_wait_ms;
  /* outbound */
  tg_send *sends;
  tg_progress *progress;
  rt_map migrated;           /* old chat id -> new (""= looked up, none) */
  rt_map typing;             /* chat -> tg_typing */
  uv_timer_t typing_timer;   /* the earliest tg_typing.due */
  bool typing_timer_open;
  size_t handles_open;
  void (*close_done)(void *);
  void *close_ud;
  uint64_t rnd;
};

/* ---- small helpers ---- */

char *rt_telegram_mask(const char *s, const char *token) {
  if (!s) return rt_xstrdup("");
  rt_buf b = RT_BUF_INIT;
  const char *secret = token ? strchr(token, ':') : NULL;
  size_t tl = token ? strlen(token) : 0;
  size_t sl = secret && secret[1] ? strlen(secret + 1) : 0;
  const char *p = s;
  while (*p) {
    if (tl >= 4 && strncmp(p, token, tl) == 0) {
      rt_buf_adds(&b, "<token>");
      p += tl;
    } else if (sl >= 4 && strncmp(p, secret + 1, sl) == 0) {
      rt_buf_adds(&b, "<token>");
      p += sl;
    } else {
      rt_buf_addc(&b, *p++);
    }
  }
  return rt_buf_take(&b, NULL);
}

/* Logs with the token masked in the detail. */
static void tlog(tg *t, rt_log_level lvl, const char *msg, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void tlog(tg *t, rt_log_level lvl, const char *msg, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  rt_buf b = RT_BUF_INIT;
  rt_buf_vprintf(&b, fmt, ap);
  va_end(ap);
  char *m = rt_telegram_mask(rt_buf_str(&b), t->token);
  rt_log(lvl, msg, "%s", m);
  free(m);
  rt_buf_free(&b);
}

/* A logfmt-quoted, masked copy of s for a log line (static buffer-free). */
static char *q(tg *t, const char *s) {
  char *m = rt_telegram_mask(s ? s : "", t->token);
  size_t n = strlen(m) * 2 + 8;
  if (n > 2048) n = 2048;
  char *o = rt_xmalloc(n);
  rt_log_quote(m, o, n);
  free(m);
  return o;
}

static void health(tg *t, const char *problem) {
  if (!t->env || !t->env->set_health) return;
  char *m = problem ? rt_telegram_mask(problem, t->token) : NULL;
  t->env->set_health(t->env->host, t->env->name ? t->env->name : "telegram", m);
  free(m);
}

static uint64_t rnd(tg *t) {   /* xorshift64*: jitter and multipart boundaries */
  uint64_t x = t->rnd;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  t->rnd = x;
  return x * 0x2545F4914F6CDD1DULL;
}

static const char *jstr(const json_t *o, const char *k) {
  return json_string_value(json_object_get(o, k));
}

static bool jint(const json_t *o, const char *k, int64_t *v) {
  json_t *x = json_object_get(o, k);
  if (!json_is_integer(x)) return false;
  *v = json_integer_value(x);
  return true;
}

/* ---- text splitting ---- */

static size_t u16_units(uint32_t cp) { return cp >= 0x10000 ? 2 : 1; }

size_t rt_telegram_split(const char *text, size_t max, char ***out) {
  size_t cap = 4, n = 0;
  char **parts = rt_xcalloc(cap, sizeof *parts);
  size_t len = strlen(text ? text : "");
  const char *s = text ? text : "";
  if (max < 8) max = 8;
  size_t pos = 0;
  if (len <= max) {
    /* Fits (a code point never takes more UTF-16 units than bytes): the
     * loop's one part, without decoding it. */
    size_t e = len;
    while (e > 0 && (s[e - 1] == ' ' || s[e - 1] == '\n' || s[e - 1] == '\t')) e--;
    parts[n++] = rt_xstrndup(s, e);
    *out = parts;
    return n;
  }
  while (pos < len) {
    /* Scan forward up to max units, remembering the best cut points. */
    size_t units = 0, i = pos, para = 0, sent = 0, word = 0;
    while (i < len) {
      size_t cl;
      uint32_t cp = rt_utf8_decode(s + i, len - i, &cl);
      size_t u = cp == RT_UTF8_BAD ? 1 : u16_units(cp);
      if (units + u > max) break;
      units += u;
      if (cp == '\n' && i + 1 < len && s[i + 1] == '\n') para = i;
      else if ((cp == '.' || cp == '!' || cp == '?' || cp == 0x2026) && i + cl < len &&
               (s[i + cl] == ' ' || s[i + cl] == '\n'))
        sent = i + cl;
      else if (cp == ' ' || cp == '\n' || cp == '\t') word = i;
      i += cl;
    }
    size_t end, next;
    if (i >= len) {
      end = next = len;
    } else if (para > pos) {
      end = para; next = para;
    } else if (sent > pos) {
      end = sent; next = sent;
    } else if (word > pos) {
      end = word; next = word;
    } else {
      end = next = i;   /* one word longer than a message: cut on a code point */
    }
    /* Drop whitespace around the cut. */
    size_t e = end;
    while (e > pos && (s[e - 1] == ' ' || s[e - 1] == '\n' || s[e - 1] == '\t')) e--;
    if (e > pos) {
      if (n == cap) parts = rt_xrealloc(parts, (cap *= 2) * sizeof *parts);
      parts[n++] = rt_xstrndup(s + pos, e - pos);
    }
    pos = next;
    while (pos < len && (s[pos] == ' ' || s[pos] == '\n' || s[pos] == '\t')) pos++;
  }
  if (n == 0) parts[n++] = rt_xstrdup("");
  *out = parts;
  return n;
}

void rt_telegram_parts_free(char **parts, size_t n) {
  for (size_t i = 0; i < n; i++) free(parts[i]);
  free(parts);
}

char *rt_telegram_phone(const char *raw) {
  if (!raw) return NULL;
  char d[24];
  size_t n = 0;
  for (const char *p = raw; *p; p++) {
    if (*p >= '0' && *p <= '9') {
      if (n >= 16) return NULL;
      d[n++] = *p;
    } else if (!(*p == '+' || *p == ' ' || *p == '-' || *p == '(' || *p == ')' || *p == '.')) {
      return NULL;
    }
  }
  d[n] = '\0';
  if (n < 10 || n > 15) return NULL;
  if (n == 11 && d[0] == '8') d[0] = '7';
  else if (n == 10 && d[0] == '9') return rt_xasprintf("+7%s", d);
  return rt_xasprintf("+%s", d);
}

/* ---- Bot API calls ---- */

/* One answer of the Bot API, read once. */
typedef struct {
  int status;                /* HTTP status; 0 on a transport error */
  int err;                   /* RT_OK, RT_ETIMEOUT, RT_ENET, RT_ELIMIT */
  json_t *doc;               /* owned, may be NULL (HTML from a proxy) */
  bool ok;
  json_t *result;            /* borrowed from doc */
  int code;                  /* error_code, else the status */
  const char *desc;          /* description, or a sentence of ours */
  int64_t retry_after;       /* s, -1 if none */
  int64_t migrate_to;        /* 0 if none */
  char why[300];
} tg_resp;

static void resp_read(tg *t, rt_http_resp *r, tg_resp *o) {
  memset(o, 0, sizeof *o);
  o->retry_after = -1;
  o->status = r->status;
  o->err = r->err;
  if (r->err != RT_OK) {
    char *m = rt_telegram_mask(r->errmsg, t->token);
    snprintf(o->why, sizeof o->why, "%s", m);
    free(m);
    o->desc = o->why;
    return;
  }
  o->doc = json_loadb(r->body, r->body_len, 0, NULL);
  o->ok = json_is_true(json_object_get(o->doc, "ok"));
  o->result = json_object_get(o->doc, "result");
  int64_t v;
  o->code = jint(o->doc, "error_code", &v) ? (int)v : r->status;
  o->desc = jstr(o->doc, "description");
  json_t *par = json_object_get(o->doc, "parameters");
  if (jint(par, "retry_after", &v)) o->retry_after = v;
  else if (r->retry_after >= 0) o->retry_after = r->retry_after;
  if (jint(par, "migrate_to_chat_id", &v)) o->migrate_to = v;
  if (!o->desc) {
    snprintf(o->why, sizeof o->why, o->doc ? "HTTP %d" : "HTTP %d, not a Bot API answer",
             r->status);
    o->desc = o->why;
  }
  if (o->ok && r->status != 200) o->ok = r->status >= 200 && r->status < 300;
}

static void resp_free(tg_resp *o) { json_decref(o->doc); }

/* A call with its JSON body already written. keep_head: an answer over
 * TG_BODY_MAX still gives its first bytes (getUpdates: polled_too_big). */
static int call_head(tg *t, const char *method, const char *body, size_t len, long timeout_ms,
                     bool keep_head, rt_http_cb cb, void *ud, rt_http_req **out) {
  char url[1024];
  int n = snprintf(url, sizeof url, "%s%s", t->base, method);
  char *big = n >= (int)sizeof url ? rt_xasprintf("%s%s", t->base, method) : NULL;
  static const char *const hdr[] = {"Content-Type: application/json", NULL};
  rt_http_opts o = {.method = "POST", .url = big ? big : url, .body = body, .body_len = len,
                    .headers = hdr, .timeout_ms = timeout_ms ? timeout_ms : 30000,
                    .max_body = TG_BODY_MAX, .keep_head = keep_head};
  int rc = rt_http_request(t->env->http, &o, cb, ud, out);
  free(big);
  return rc;
}

static int call_text(tg *t, const char *method, const char *body, size_t len, long timeout_ms,
                     rt_http_cb cb, void *ud, rt_http_req **out) {
  return call_head(t, method, body, len, timeout_ms, false, cb, ud, out);
}

static int call_keep(tg *t, const char *method, json_t *params, long timeout_ms, bool keep_head,
                     rt_http_cb cb, void *ud, rt_http_req **out) {
  char *body = json_dumps(params, JSON_COMPACT);
  int rc = call_head(t, method, body, strlen(body), timeout_ms, keep_head, cb, ud, out);
  free(body);
  json_decref(params);
  return rc;
}

static int call(tg *t, const char *method, json_t *params, long timeout_ms, rt_http_cb cb,
                void *ud, rt_http_req **out) {
  return call_keep(t, method, params, timeout_ms, false, cb, ud, out);
}

/* Telegram's answer to a send that went through starts so: then only a
 * note to the managers needs to read it (the card's message_id); the
 * others need not parse the Message of some 600 bytes Telegram echoes --
 * but it must be whole JSON (checked without a tree, rt_tgupd_whole): an
 * answer cut short (a proxy, a connection closed early) goes to resp_read,
 * which refuses it, and the row is retried like one answered by an HTML
 * page. The message may have been delivered all the same: the retry then
 * sends it twice, the duplicate window of docs/architecture.md
 * (Deliveries) for a send whose answer was lost. */
static bool answer_ok(const rt_http_resp *r) {
  static const char ok[] = "{\"ok\":true,";
  return r->err == RT_OK && r->status == 200 && r->body_len > sizeof ok - 1 &&
         memcmp(r->body, ok, sizeof ok - 1) == 0 && rt_tgupd_whole(r->body, r->body_len);
}

/* Calls nobody waits for (answerCallbackQuery, sendChatAction): logged if
 * they fail, never retried. */
static void fire_done(rt_http_resp *r, void *ud) {
  tg *t = ud;
  tg_resp a;
  resp_read(t, r, &a);
  if (!a.ok) {
    char *d = q(t, a.desc);
    tlog(t, RT_LOG_DEBUG, "telegram-call-failed", "code=%d err=%s", a.code, d);
    free(d);
  }
  resp_free(&a);
}

static void fire(tg *t, const char *method, json_t *params) {
  if (call(t, method, params, 10000, fire_done, t, NULL) != RT_OK)
    rt_log(RT_LOG_WARN, "telegram-call-refused", "method=%s", method);
}

/* ---- the managers' chat and migrated groups ---- */

/* The chat a message to `chat` really goes to: a group that became a
 * supergroup has a new id, persisted by kv_set when Telegram said so. */
static const char *chat_target(tg *t, const char *chat) {
  if (chat[0] != '-') return chat;
  const char *m = rt_map_get(&t->migrated, chat);
  if (!m) {
    char key[64];
    snprintf(key, sizeof key, "migrated:%s", chat);
    char *v = t->env->kv_get ? t->env->kv_get(t->env->host, t->env->name, key) : NULL;
    rt_map_set(&t->migrated, chat, v ? v : rt_xstrdup(""));
    m = rt_map_get(&t->migrated, chat);
  }
  return *m ? m : chat;
}

static void chat_migrate(tg *t, const char *old, int64_t to) {
  char key[64], val[32];
  snprintf(key, sizeof key, "migrated:%s", old);
  snprintf(val, sizeof val, "%lld", (long long)to);
  int rc = t->env->kv_set ? t->env->kv_set(t->env->host, t->env->name, key, val) : RT_OK;
  free(rt_map_del(&t->migrated, old));
  rt_map_set(&t->migrated, old, rt_xstrdup(val));
  rt_log(RT_LOG_WARN, "telegram-group-migrated", "chat=%s to=%s saved=%s", old, val,
         rc == RT_OK ? "yes" : "no");
}

/* The managers' chat is where the host sends notes about customers (the
 * outbox's `about`): learnt from the first one and kept, so the group needs
 * no second setting here. */
static void managers_learn(tg *t, const char *chat) {
  if (t->managers && strcmp(t->managers, chat) == 0) return;
  free(t->managers);
  t->managers = rt_xstrdup(chat);
  if (t->env->kv_set) t->env->kv_set(t->env->host, t->env->name, "managers_chat", chat);
}

static bool is_managers(tg *t, const char *chat) {
  if (!t->managers) return false;
  return strcmp(chat, t->managers) == 0 || strcmp(chat, chat_target(t, t->managers)) == 0;
}

/* ---- inbound: normalising an update ---- */

static void job_free(tg_job *j) {
  json_decref(j->upd);
  json_decref(j->extra);
  free(j->extra_text);
  free(j->name);
  free(j->text);
  free(j);
}

static void poll_schedule(tg *t, int64_t ms);
static void poll_start(tg *t);
static void jobs_run(tg *t);

static void batch_unref(tg_batch *b) {
  if (--b->refs > 0) return;
  tg *t = b->t;
  if (t && !t->closing && !t->stopped) {
    if (b->failed) {
      /* The same offset again: what was not committed comes back, what was
       * comes back as a duplicate. */
      poll_schedule(t, 1000);
    } else {
      if (b->next_offset > t->offset) t->offset = b->next_offset;
      poll_start(t);
    }
  }
  free(b);
}

/* A getUpdates answer was read: Telegram is reachable again, and the
 * answer's updates make one batch (the offset moves past them once all of
 * them are committed, batch_unref). */
static tg_batch *batch_new(tg *t) {
  if (t->backoff_ms) health(t, NULL);
  t->backoff_ms = 0;
  /* An answer was read whole: after one too big, the limit goes back up. */
  t->poll_limit = t->poll_limit * 2 < POLL_LIMIT_MAX ? t->poll_limit * 2 : POLL_LIMIT_MAX;
  tg_batch *b = rt_xcalloc(1, sizeof *b);
  b->t = t;
  b->refs = 1;
  b->next_offset = t->offset;
  return b;
}

/* Update id of the batch's answer: the offset moves past it either way;
 * true when it is new (not confirmed by an earlier offset). */
static bool batch_takes(tg_batch *b, int64_t id) {
  if (id + 1 > b->next_offset) b->next_offset = id + 1;
  return !(b->t->offset && id < b->t->offset);
}

/* The job is over: its batch may move on, its webhook request is answered. */
static void job_finish(tg_job *j, int status) {
  if (j->batch) {
    if (status < 0) j->batch->failed = true;
    batch_unref(j->batch);
    j->batch = NULL;
  }
  if (j->wreq) {
    /* A non-2xx answer makes Telegram deliver the update again later. */
    if (status < 0) rt_httpd_respond(j->wreq, 500, "application/json",
                                     "{\"ok\":false}", 12);
    else rt_httpd_respond(j->wreq, 200, "application/json", "{\"ok\":true}", 11);
    j->wreq = NULL;
  }
}

static void ack_cb(void *ud, int status) {
  tg_job *j = ud;
  tg *t = j->t;
  if (status < 0 && t)
    rt_log(RT_LOG_WARN, "telegram-receive-failed", "ext_id=%s status=%d", j->ext, status);
  job_finish(j, status);
  if (t) {
    tg_job **pp = &t->awaiting;
    while (*pp && *pp != j) pp = &(*pp)->anext;
    if (*pp) *pp = j->anext;
  }
  job_free(j);
}

static void groups_close(tg *t, const char *chat, const char *except);

static void job_emit(tg_job *j) {
  tg *t = j->t;
  groups_close(t, j->chat, NULL);   /* an album of the chat still gathering goes first */
  char *extra = j->extra_text ? NULL
                : json_object_size(j->extra) ? json_dumps(j->extra, JSON_COMPACT) : NULL;
  j->ev.extra_json = extra ? extra : j->extra_text;
  j->ev.channel = t->ch.name;
  j->ev.ext_id = j->ext;
  j->ev.chat_id = j->chat;
  j->ev.user_id = j->user[0] ? j->user : NULL;
  j->ev.name = j->name;
  j->ev.text = j->text;
  j->anext = t->awaiting;
  t->awaiting = j;
  int rc = t->env->receive(t->env->host, &j->ev, ack_cb, j);
  free(extra);
  if (rc != RT_OK) {
    /* Refused outright (no chat): it can never be taken, so it is not
     * asked for again. */
    rt_log(RT_LOG_WARN, "telegram-event-refused", "ext_id=%s rc=%d", j->ext, rc);
    ack_cb(j, RT_OK);
  }
}

/* An update that makes no event: confirmed at once. */
static void job_skip(tg_job *j, const char *why) {
  rt_log(RT_LOG_DEBUG, "telegram-update-ignored", "ext_id=%s why=%s", j->ext, why);
  job_finish(j, RT_OK);
  job_free(j);
}

static char *name_of(const char *f, const char *l, const char *un) {
  if (f && l) return rt_xasprintf("%s %s", f, l);
  if (f) return rt_xstrdup(f);
  if (l) return rt_xstrdup(l);
  if (un) return rt_xasprintf("@%s", un);
  return NULL;
}

static char *display_name(const json_t *u) {
  return name_of(jstr(u, "first_name"), jstr(u, "last_name"), jstr(u, "username"));
}

/* /start <payload>: the deep link the customer came by (t.me/<bot>?start=...).
 * NULL when text is no /start, else the payload ("" for none). */
static const char *start_payload(const char *text) {
  if (strncmp(text, "/start", 6) != 0 || (text[6] != '\0' && text[6] != ' ' && text[6] != '@'))
    return NULL;
  const char *p = text + 6;
  if (*p == '@') while (*p && *p != ' ') p++;
  while (*p == ' ') p++;
  return p;
}

static void set_user(tg_job *j, const json_t *from) {
  int64_t id;
  if (jint(from, "id", &id)) snprintf(j->user, sizeof j->user, "%lld", (long long)id);
  j->name = display_name(from);
  if (jstr(from, "username")) json_object_set_new(j->extra, "username",
                                                  json_string(jstr(from, "username")));
}

/* The photo sizes to take: the largest one under the byte limit. */
static json_t *pick_photo(tg *t, const json_t *sizes) {
  for (size_t i = json_array_size(sizes); i-- > 0;) {
    json_t *p = json_array_get(sizes, i);
    int64_t sz = 0;
    if (!jstr(p, "file_id")) continue;
    if (jint(p, "file_size", &sz) && sz > t->photo_max) continue;
    return p;
  }
  return NULL;
}

static void add_photo(tg_job *j, const json_t *p, const char *mime) {
  json_t *o = json_object();
  json_object_set_new(o, "id", json_string(jstr(p, "file_id")));
  if (jstr(p, "file_unique_id"))
    json_object_set_new(o, "unique_id", json_string(jstr(p, "file_unique_id")));
  int64_t v;
  if (jint(p, "width", &v)) json_object_set_new(o, "width", json_integer(v));
  if (jint(p, "height", &v)) json_object_set_new(o, "height", json_integer(v));
  if (jint(p, "file_size", &v)) json_object_set_new(o, "size", json_integer(v));
  if (mime) json_object_set_new(o, "mime", json_string(mime));
  json_t *arr = json_object_get(j->extra, "photos");
  if (!arr) {
    arr = json_array();
    json_object_set_new(j->extra, "photos", arr);
  }
  json_array_append_new(arr, o);
  j->photos = arr;
}

static void set_text(tg_job *j, const char *s) {
  free(j->text);
  j->text = rt_xstrdup(s ? s : "");
}

/* A manager writes in the managers' group (README.md, managers). */
static void managers_message(tg_job *j, json_t *msg);

/* Fills the event from a message or edited message; false to skip it. */
static bool normalise_message(tg_job *j, json_t *msg, bool edited, const char **why) {
  tg *t = j->t;
  json_t *chat = json_object_get(msg, "chat"), *from = json_object_get(msg, "from");
  int64_t cid, mid = 0;
  if (!jint(chat, "id", &cid)) { *why = "no chat"; return false; }
  if (json_is_true(json_object_get(from, "is_bot"))) { *why = "from a bot"; return false; }
  const char *type = jstr(chat, "type");
  snprintf(j->chat, sizeof j->chat, "%lld", (long long)cid);
  if (type && strcmp(type, "private") != 0) {
    if (!is_managers(t, j->chat) || edited) { *why = "not a private chat"; return false; }
    managers_message(j, msg);
    *why = "managers";
    return false;
  }
  if (!type && cid < 0) { *why = "not a private chat"; return false; }
  set_user(j, from);
  jint(msg, "message_id", &mid);
  json_object_set_new(j->extra, "message_id", json_integer(mid));
  if (edited) json_object_set_new(j->extra, "edited", json_true());
  j->ev.kind = "text";
  const char *text = jstr(msg, "text");
  const char *caption = jstr(msg, "caption");
  json_t *photo = json_object_get(msg, "photo"), *doc = json_object_get(msg, "document");
  json_t *contact = json_object_get(msg, "contact");
  if (jstr(msg, "media_group_id"))
    json_object_set_new(j->extra, "media_group", json_string(jstr(msg, "media_group_id")));
  if (text) {
    set_text(j, text);
    const char *p = start_payload(text);
    if (p) {
      json_object_set_new(j->extra, "command", json_string("start"));
      if (*p) {
        json_object_set_new(j->extra, "start", json_string(p));
        json_object_set_new(j->extra, "source", json_string(p));
      }
    }
  } else if (json_array_size(photo)) {
    j->ev.kind = "photo";
    set_text(j, caption);
    json_t *p = pick_photo(t, photo);
    if (p) add_photo(j, p, "image/jpeg");
    else {
      json_t *big = json_array_get(photo, json_array_size(photo) - 1);
      json_t *o = json_pack("{s:s?, s:s}", "id", jstr(big, "file_id"), "error", "too_big");
      json_object_set_new(j->extra, "photos", json_pack("[o]", o));
    }
  } else if (json_is_object(doc) && jstr(doc, "mime_type") &&
             strncmp(jstr(doc, "mime_type"), "image/", 6) == 0) {
    /* A photo sent "as a file". */
    j->ev.kind = "photo";
    set_text(j, caption);
    int64_t sz = 0;
    if (jint(doc, "file_size", &sz) && sz > t->photo_max) {
      json_t *o = json_pack("{s:s?, s:s}", "id", jstr(doc, "file_id"), "error", "too_big");
      json_object_set_new(j->extra, "photos", json_pack("[o]", o));
    } else {
      add_photo(j, doc, jstr(doc, "mime_type"));
    }
  } else if (json_is_object(contact)) {
    j->ev.kind = "contact";
    const char *raw = jstr(contact, "phone_number");
    char *ph = rt_telegram_phone(raw);
    int64_t uid = 0, fid = 0;
    bool own = jint(contact, "user_id", &uid) && jint(from, "id", &fid) && uid == fid;
    json_t *c = json_pack("{s:s?, s:s?, s:s?, s:b}", "phone", ph ? ph : raw, "first_name",
                          jstr(contact, "first_name"), "last_name", jstr(contact, "last_name"),
                          "own", own);
    json_object_set_new(j->extra, "contact", c);
    /* Only the customer's own number is their phone; someone else's card
     * is just text the flow may read. */
    if (ph && own) json_object_set_new(j->extra, "phone", json_string(ph));
    set_text(j, ph ? ph : raw);
    free(ph);
  } else if (json_is_object(doc)) {
    set_text(j, caption);
    json_object_set_new(j->extra, "document",
                        json_pack("{s:s?, s:s?, s:s?}", "id", jstr(doc, "file_id"), "name",
                                  jstr(doc, "file_name"), "mime", jstr(doc, "mime_type")));
  } else {
    /* Voice, sticker, location...: the flow sees an empty text and what it was. */
    static const char *const kinds[] = {"voice", "audio", "video", "video_note", "sticker",
                                        "location", "venue", "animation", "poll", "dice"};
    const char *k = NULL;
    for (size_t i = 0; i < RT_ARRAY_LEN(kinds) && !k; i++)
      if (json_object_get(msg, kinds[i])) k = kinds[i];
    if (!k) { *why = "service message"; return false; }
    set_text(j, caption);
    json_object_set_new(j->extra, "unsupported", json_string(k));
  }
  return true;
}

static bool normalise_callback(tg_job *j, json_t *cq, const char **why) {
  tg *t = j->t;
  /* Always answered, at once: the customer's button spins until then. */
  if (jstr(cq, "id")) fire(t, "answerCallbackQuery", json_pack("{s:s}", "callback_query_id",
                                                               jstr(cq, "id")));
  json_t *from = json_object_get(cq, "from"), *msg = json_object_get(cq, "message");
  if (json_is_true(json_object_get(from, "is_bot"))) { *why = "from a bot"; return false; }
  json_t *chat = json_object_get(msg, "chat");
  int64_t cid = 0;
  if (!jint(chat, "id", &cid) && !jint(from, "id", &cid)) { *why = "no chat"; return false; }
  const char *type = jstr(chat, "type");
  if ((type && strcmp(type, "private") != 0) || cid < 0) { *why = "not a private chat"; return false; }
  snprintf(j->chat, sizeof j->chat, "%lld", (long long)cid);
  set_user(j, from);
  const char *data = jstr(cq, "data");
  if (!data) { *why = "no data"; return false; }
  j->ev.kind = "button";
  json_object_set_new(j->extra, "data", json_string(data));
  /* The text on the button, found in the message it was on: flows match
   * what the customer saw, like a reply-keyboard press. */
  const char *label = NULL;
  json_t *rows = json_object_get(json_object_get(msg, "reply_markup"), "inline_keyboard");
  size_t i, k;
  json_t *row, *b;
  json_array_foreach(rows, i, row) json_array_foreach(row, k, b) {
    if (!label && jstr(b, "callback_data") && strcmp(jstr(b, "callback_data"), data) == 0)
      label = jstr(b, "text");
  }
  set_text(j, label ? label : data);
  int64_t mid;
  if (jint(msg, "message_id", &mid)) json_object_set_new(j->extra, "message_id", json_integer(mid));
  return true;
}

static bool normalise_member(tg_job *j, json_t *mu, const char **why) {
  json_t *chat = json_object_get(mu, "chat");
  const char *st = jstr(json_object_get(mu, "new_chat_member"), "status");
  int64_t cid;
  if (!jint(chat, "id", &cid) || cid < 0 || !st) { *why = "not a private chat"; return false; }
  snprintf(j->chat, sizeof j->chat, "%lld", (long long)cid);
  bool blocked = strcmp(st, "kicked") == 0;
  rt_log(RT_LOG_INFO, blocked ? "telegram-blocked" : "telegram-unblocked", "chat=%s", j->chat);
  set_user(j, json_object_get(mu, "from"));
  if (!blocked && strcmp(st, "member") != 0) { *why = "chat member status"; return false; }
  /* A system event: the host marks the address blocked (campaigns skip
   * it) or reachable again; no step runs for it. */
  j->ev.kind = blocked ? "blocked" : "unblocked";
  set_text(j, "");
  return true;
}

/* ---- inbound: photo downloads ---- */

static void photo_next(tg_job *j);
static bool group_add(tg_job *j);

static void photo_fail(tg_job *j, const char *why) {
  json_t *p = json_array_get(j->photos, j->photo_i);
  json_object_set_new(p, "error", json_string(why));
  char *w = q(j->t, why);
  rt_log(RT_LOG_WARN, "telegram-photo-failed", "ext_id=%s err=%s", j->ext, w);
  free(w);
  j->photo_i++;
  photo_next(j);
}

static char *safe_name(const char *s) {
  char *o = rt_xstrdup(s ? s : "file");
  for (char *p = o; *p; p++)
    if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
          *p == '-' || *p == '_'))
      *p = '_';
  if (strlen(o) > 80) o[80] = '\0';
  return o;
}

static void got_file(rt_http_resp *r, void *ud) {
  tg_job *j = ud;
  tg *t = j->t;
  j->req = NULL;
  if (r->err != RT_OK || r->status != 200) {
    char why[320];
    if (r->err != RT_OK) {
      char *m = rt_telegram_mask(r->errmsg, t->token);
      snprintf(why, sizeof why, "download: %s", m);
      free(m);
    } else {
      snprintf(why, sizeof why, "download: HTTP %d", r->status);
    }
    photo_fail(j, why);
    return;
  }
  json_t *p = json_array_get(j->photos, j->photo_i);
  const char *path = jstr(p, "file_path");
  const char *dot = path ? strrchr(path, '.') : NULL;
  char *ext = dot && strlen(dot) <= 6 ? safe_name(dot + 1) : rt_xstrdup("jpg");
  char *base = safe_name(jstr(p, "unique_id") ? jstr(p, "unique_id") : jstr(p, "id"));
  char *dir = rt_xasprintf("%s/photos", t->env->data_dir ? t->env->data_dir : ".");
  mkdir(dir, 0750);
  char *file = rt_xasprintf("%s/%s.%s", dir, base, ext);
  char *tmp = rt_xasprintf("%s.tmp", file);
  bool ok = false;
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
  if (fd >= 0) {
    size_t off = 0;
    ok = true;
    while (off < r->body_len) {
      ssize_t w = write(fd, r->body + off, r->body_len - off);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) { ok = false; break; }
      off += (size_t)w;
    }
    /* The event that names the file is committed next: the file is on disk first. */
    if (ok && fsync(fd) != 0) ok = false;
    if (close(fd) != 0) ok = false;
    if (ok && rename(tmp, file) != 0) ok = false;
    if (!ok) unlink(tmp);
  }
  if (ok) {
    json_object_set_new(p, "path", json_string(file));
    json_object_set_new(p, "size", json_integer((json_int_t)r->body_len));
    json_object_del(p, "file_path");
    j->photo_i++;
    free(ext); free(base); free(dir); free(file); free(tmp);
    photo_next(j);
    return;
  }
  char why[300];
  snprintf(why, sizeof why, "cannot write the photo: %s", strerror(errno));
  free(ext); free(base); free(dir); free(file); free(tmp);
  photo_fail(j, why);
}

static void got_file_info(rt_http_resp *r, void *ud) {
  tg_job *j = ud;
  tg *t = j->t;
  j->req = NULL;
  tg_resp a;
  resp_read(t, r, &a);
  if (!a.ok || !jstr(a.result, "file_path")) {
    char why[320];
    snprintf(why, sizeof why, "getFile: %s", a.ok ? "no file_path" : a.desc);
    resp_free(&a);
    photo_fail(j, why);
    return;
  }
  int64_t sz = 0;
  int64_t limit = t->photo_max < TG_DOWNLOAD_MAX ? t->photo_max : TG_DOWNLOAD_MAX;
  if (jint(a.result, "file_size", &sz) && sz > limit) {
    resp_free(&a);
    photo_fail(j, "too_big");
    return;
  }
  json_t *p = json_array_get(j->photos, j->photo_i);
  json_object_set_new(p, "file_path", json_string(jstr(a.result, "file_path")));
  char *url = rt_xasprintf("%s%s", t->file_base, jstr(a.result, "file_path"));
  resp_free(&a);
  rt_http_opts o = {.url = url, .timeout_ms = 60000, .max_body = (size_t)limit};
  int rc = rt_http_request(t->env->http, &o, got_file, j, &j->req);
  free(url);
  if (rc != RT_OK) photo_fail(j, "download refused");
}

static void photo_next(tg_job *j) {
  tg *t = j->t;
  while (j->photo_i < json_array_size(j->photos)) {
    json_t *p = json_array_get(j->photos, j->photo_i);
    if (json_object_get(p, "error") || !jstr(p, "id") || !t->env->http) {
      j->photo_i++;
      continue;
    }
    if (call(t, "getFile", json_pack("{s:s}", "file_id", jstr(p, "id")), 30000, got_file_info,
             j, &j->req) != RT_OK) {
      photo_fail(j, "getFile refused");
      return;
    }
    return;
  }
  /* All photos tried: the event goes, with what could be fetched. */
  json_t *p;
  size_t i;
  json_array_foreach(j->photos, i, p) json_object_del(p, "file_path");
  t->busy = NULL;
  if (group_add(j)) {
    job_finish(j, RT_OK);     /* stored with its album: the update may be confirmed */
    job_free(j);
  } else {
    job_emit(j);
  }
  jobs_run(t);
}

/* ---- inbound: albums ----
 *
 * Telegram sends an album (several photos of one message, one
 * media_group_id) as one update per photo, possibly across getUpdates
 * answers. The flow gets it as ONE photo event with every ev.photos entry
 * in order: each member, once its photo is downloaded, is added to the
 * album's event, which is written to the plugin's values (kv
 * "mg:<chat>:<media_group_id>", listed in kv "albums") before the member's
 * update is confirmed -- so the offset moves on, and a kill -9 while the
 * album waits for the rest loses nothing: the next start reads it back and
 * hands it over. The album goes to the host media_group_wait_ms after its
 * last member came, or at once when anything else of that chat comes (so
 * the chat's order holds), with the ext_id of its first update; a
 * redelivered member is recognised by its update_id. If the value cannot
 * be written the member goes alone, as its own event. */

typedef struct tg_group {
  struct tg_group *next;
  tg *t;
  char key[128];             /* mg:<chat>:<media_group_id> */
  char chat[32], user[32], ext[48];
  json_t *doc;               /* {ext, chat, user, name, text, extra, ids}: what kv holds */
  int64_t close_at;          /* uv_now ms */
  bool emitted;              /* handed to the host, waiting for the commit */
} tg_group;

static void job_emit(tg_job *j);

static void albums_index(tg *t) {
  if (!t->env->kv_set) return;
  json_t *a = json_array();
  for (tg_group *g = t->groups; g; g = g->next) json_array_append_new(a, json_string(g->key));
  char *v = json_array_size(a) ? json_dumps(a, JSON_COMPACT) : NULL;
  t->env->kv_set(t->env->host, t->env->name, "albums", v);
  free(v);
  json_decref(a);
}

static void group_free(tg_group *g) {
  json_decref(g->doc);
  free(g);
}

static void group_unlink(tg *t, tg_group *g) {
  for (tg_group **pp = &t->groups; *pp; pp = &(*pp)->next)
    if (*pp == g) {
      *pp = g->next;
      return;
    }
}

static void group_timer_arm(tg *t);
static void group_emit(tg_group *g);

static void group_ack(void *ud, int status) {
  tg_group *g = ud;
  tg *t = g->t;
  if (!t) {                   /* the channel closed meanwhile: kv keeps it if not committed */
    group_free(g);
    return;
  }
  if (status < 0) {
    /* Not committed: it is still in kv; handed over again in a second. */
    rt_log(RT_LOG_WARN, "telegram-receive-failed", "ext_id=%s status=%d", g->ext, status);
    g->emitted = false;
    g->close_at = (int64_t)uv_now(t->env->loop) + 1000;
    group_timer_arm(t);
    return;
  }
  group_unlink(t, g);
  if (t->env->kv_set) t->env->kv_set(t->env->host, t->env->name, g->key, NULL);
  albums_index(t);
  group_free(g);
}

static void group_emit(tg_group *g) {
  tg *t = g->t;
  json_t *d = g->doc;
  char *extra = json_dumps(json_object_get(d, "extra"), JSON_COMPACT);
  rt_event_in ev = {.channel = t->ch.name, .ext_id = g->ext, .chat_id = g->chat,
                    .user_id = g->user[0] ? g->user : NULL, .kind = "photo",
                    .name = json_string_value(json_object_get(d, "name")),
                    .text = json_string_value(json_object_get(d, "text")), .extra_json = extra};
  g->emitted = true;
  rt_log(RT_LOG_DEBUG, "telegram-album", "ext_id=%s photos=%zu", g->ext,
         json_array_size(json_object_get(json_object_get(d, "extra"), "photos")));
  int rc = t->env->receive(t->env->host, &ev, group_ack, g);
  free(extra);
  if (rc != RT_OK) {
    rt_log(RT_LOG_WARN, "telegram-event-refused", "ext_id=%s rc=%d", g->ext, rc);
    group_ack(g, RT_OK);
  }
}

/* Hands over the albums of a chat still gathering (something else of the
 * chat came: it goes after them), or every album whose wait is over (chat
 * NULL). */
static void groups_close(tg *t, const char *chat, const char *except) {
  int64_t now = (int64_t)uv_now(t->env->loop);
  for (tg_group *g = t->groups, *n; g; g = n) {
    n = g->next;
    if (g->emitted || (except && strcmp(g->key, except) == 0)) continue;
    if (chat ? strcmp(g->chat, chat) == 0 : g->close_at <= now) group_emit(g);
  }
}

static void group_timer_cb(uv_timer_t *h) {
  tg *t = h->data;
  if (t->closing) return;
  groups_close(t, NULL, NULL);
  group_timer_arm(t);
}

static void group_timer_arm(tg *t) {
  if (!t->group_timer_open || t->closing) return;
  int64_t first = INT64_MAX;
  for (tg_group *g = t->groups; g; g = g->next)
    if (!g->emitted && g->close_at < first) first = g->close_at;
  if (first == INT64_MAX) {
    uv_timer_stop(&t->group_timer);
    return;
  }
  int64_t now = (int64_t)uv_now(t->env->loop);
  uv_timer_start(&t->group_timer, group_timer_cb, (uint64_t)(first > now ? first - now : 0), 0);
}

static tg_group *group_make(tg *t, const char *key, json_t *doc) {
  tg_group *g = rt_xcalloc(1, sizeof *g);
  g->t = t;
  snprintf(g->key, sizeof g->key, "%s", key);
  snprintf(g->ext, sizeof g->ext, "%s", jstr(doc, "ext") ? jstr(doc, "ext") : "");
  snprintf(g->chat, sizeof g->chat, "%s", jstr(doc, "chat") ? jstr(doc, "chat") : "");
  snprintf(g->user, sizeof g->user, "%s", jstr(doc, "user") ? jstr(doc, "user") : "");
  g->doc = doc;
  g->close_at = (int64_t)uv_now(t->env->loop) + t->group_wait_ms;
  g->next = t->groups;
  t->groups = g;
  return g;
}

/* An album member, its photos fetched: joins its album (true), or false
 * when it must go alone (the value could not be written). */
static bool group_add(tg_job *j) {
  tg *t = j->t;
  const char *gid = jstr(j->extra, "media_group");
  if (!gid || !t->env->kv_set || !t->group_timer_open) return false;
  char key[128];
  snprintf(key, sizeof key, "mg:%s:%.80s", j->chat, gid);
  /* The chat's other albums go first: this one started after them. */
  groups_close(t, j->chat, key);
  tg_group *g = NULL;
  for (tg_group *x = t->groups; x; x = x->next)
    if (!x->emitted && strcmp(x->key, key) == 0) g = x;
  int64_t uid = 0;
  jint(j->upd, "update_id", &uid);
  json_t *doc;
  if (g) {
    doc = json_deep_copy(g->doc);
    json_t *ids = json_object_get(doc, "ids"), *v;
    size_t i;
    json_array_foreach(ids, i, v) if (json_integer_value(v) == uid) {
      json_decref(doc);
      return true;            /* Telegram sent it again: it is in already */
    }
    json_array_append_new(ids, json_integer(uid));
    json_t *photos = json_object_get(json_object_get(doc, "extra"), "photos");
    json_array_extend(photos, json_object_get(j->extra, "photos"));
    const char *txt = json_string_value(json_object_get(doc, "text"));
    if ((!txt || !*txt) && j->text && *j->text)
      json_object_set_new(doc, "text", json_string(j->text));   /* the album's caption */
  } else {
    json_t *extra = json_deep_copy(j->extra);
    if (!json_object_get(extra, "photos")) json_object_set_new(extra, "photos", json_array());
    doc = json_pack("{s:s, s:s, s:s, s:s?, s:s, s:o, s:[I]}", "ext", j->ext, "chat", j->chat,
                    "user", j->user, "name", j->name, "text", j->text ? j->text : "", "extra",
                    extra, "ids", (json_int_t)uid);
  }
  char *v = json_dumps(doc, JSON_COMPACT);
  int rc = t->env->kv_set(t->env->host, t->env->name, key, v);
  free(v);
  if (rc != RT_OK) {
    json_decref(doc);
    rt_log(RT_LOG_WARN, "telegram-album-unsaved", "ext_id=%s", j->ext);
    return false;
  }
  if (g) {
    json_decref(g->doc);
    g->doc = doc;
    g->close_at = (int64_t)uv_now(t->env->loop) + t->group_wait_ms;
  } else {
    group_make(t, key, doc);
    albums_index(t);
  }
  group_timer_arm(t);
  return true;
}

/* At start: the albums a crash left gathering come back (and wait again,
 * for members Telegram sends once more). */
static void groups_load(tg *t) {
  char *idx = t->env->kv_get ? t->env->kv_get(t->env->host, t->env->name, "albums") : NULL;
  json_t *a = idx ? json_loads(idx, 0, NULL) : NULL;
  free(idx);
  size_t i;
  json_t *k;
  json_array_foreach(a, i, k) {
    const char *key = json_string_value(k);
    char *v = key ? t->env->kv_get(t->env->host, t->env->name, key) : NULL;
    json_t *doc = v ? json_loads(v, 0, NULL) : NULL;
    free(v);
    if (json_is_object(doc) && json_string_value(json_object_get(doc, "ext"))) {
      group_make(t, key, doc);
      rt_log(RT_LOG_INFO, "telegram-album-restored", "ext_id=%s",
             json_string_value(json_object_get(doc, "ext")));
    } else {
      json_decref(doc);
    }
  }
  json_decref(a);
  group_timer_arm(t);
}

/* ---- inbound: the queue of updates ---- */

static void typing_arm(tg *t, const char *chat);

static void job_start(tg_job *j) {
  tg *t = j->t;
  if (j->ready) {   /* a private text message, read by tgupd */
    typing_arm(t, j->chat);
    job_emit(j);
    return;
  }
  int64_t uid = 0;
  jint(j->upd, "update_id", &uid);
  snprintf(j->ext, sizeof j->ext, "tg:%lld", (long long)uid);
  j->extra = json_object();
  const char *why = "unknown update";
  bool ok = false;
  json_t *v;
  if ((v = json_object_get(j->upd, "message"))) ok = normalise_message(j, v, false, &why);
  else if ((v = json_object_get(j->upd, "edited_message"))) ok = normalise_message(j, v, true, &why);
  else if ((v = json_object_get(j->upd, "callback_query"))) ok = normalise_callback(j, v, &why);
  else if ((v = json_object_get(j->upd, "my_chat_member"))) ok = normalise_member(j, v, &why);
  if (!ok) {
    if (strcmp(why, "managers") != 0) job_skip(j, why);
    return;   /* a managers' message is received (or skipped) by managers_message */
  }
  if (strcmp(j->ev.kind, "blocked") != 0 && strcmp(j->ev.kind, "unblocked") != 0)
    typing_arm(t, j->chat);
  if (json_array_size(j->photos) && t->env->http) {
    t->busy = j;
    photo_next(j);
    return;
  }
  if (strcmp(j->ev.kind, "photo") == 0 && group_add(j)) {
    job_finish(j, RT_OK);
    job_free(j);
    return;
  }
  job_emit(j);
}

static void jobs_run(tg *t) {
  while (!t->busy && t->jobs && !t->closing) {
    tg_job *j = t->jobs;
    t->jobs = j->next;
    if (!t->jobs) t->jobs_tail = NULL;
    j->next = NULL;
    job_start(j);
  }
}

static void job_queue(tg *t, tg_job *j, tg_batch *b, rt_httpd_req *req) {
  j->t = t;
  j->batch = b;
  j->wreq = req;
  if (b) b->refs++;
  if (t->jobs_tail) t->jobs_tail->next = j;
  else t->jobs = j;
  t->jobs_tail = j;
}

static void job_add(tg *t, json_t *upd, tg_batch *b, rt_httpd_req *req) {
  tg_job *j = rt_xcalloc(1, sizeof *j);
  j->upd = json_incref(upd);
  job_queue(t, j, b, req);
}

/* The event normalise_message makes of a private text message, from the
 * fields tgupd read (the same ext_id, chat, user, name, text and extra,
 * keys in the same order). */
static void job_add_text(tg *t, const rt_tgupd *u, tg_batch *b) {
  tg_job *j = rt_xcalloc(1, sizeof *j);
  j->ready = true;
  snprintf(j->ext, sizeof j->ext, "tg:%lld", (long long)u->update_id);
  snprintf(j->chat, sizeof j->chat, "%lld", (long long)u->chat_id);
  if (u->has_from_id) snprintf(j->user, sizeof j->user, "%lld", (long long)u->from_id);
  j->name = name_of(u->first_name, u->last_name, u->username);
  j->ev.kind = "text";
  j->text = rt_xstrdup(u->text);
  rt_buf x = RT_BUF_INIT;
  rt_buf_addc(&x, '{');
  if (u->username) {
    rt_buf_adds(&x, "\"username\":");
    rt_lconv_add_string(&x, u->username, strlen(u->username));
    rt_buf_addc(&x, ',');
  }
  rt_buf_printf(&x, "\"message_id\":%lld", (long long)(u->has_message_id ? u->message_id : 0));
  if (u->media_group_id) {
    rt_buf_adds(&x, ",\"media_group\":");
    rt_lconv_add_string(&x, u->media_group_id, strlen(u->media_group_id));
  }
  const char *p = start_payload(u->text);
  if (p) {
    rt_buf_adds(&x, ",\"command\":\"start\"");
    if (*p) {
      rt_buf_adds(&x, ",\"start\":");
      rt_lconv_add_string(&x, p, strlen(p));
      rt_buf_adds(&x, ",\"source\":");
      rt_lconv_add_string(&x, p, strlen(p));
    }
  }
  rt_buf_addc(&x, '}');
  j->extra_text = rt_buf_take(&x, NULL);
  job_queue(t, j, b, NULL);
}

/* ---- the managers' group ---- */

/* "/cmd", "/cmd args" or "/cmd@bot". */
static bool is_command(const char *text, const char *cmd) {
  size_t n = strlen(cmd);
  return strncmp(text, cmd, n) == 0 && (text[n] == '\0' || text[n] == ' ' || text[n] == '@');
}

static void managers_message(tg_job *j, json_t *msg) {
  tg *t = j->t;
  json_t *from = json_object_get(msg, "from");
  const char *text = jstr(msg, "text") ? jstr(msg, "text") : jstr(msg, "caption");
  json_t *photo = json_object_get(msg, "photo");
  json_t *big = json_array_get(photo, json_array_size(photo) - 1);
  if (!text && jstr(big, "file_id")) text = "";
  json_t *reply = json_object_get(msg, "reply_to_message");
  int64_t rid = 0;
  const char *customer = NULL;
  char *cust = NULL;
  if (jint(reply, "message_id", &rid) && t->env->kv_get) {
    char key[80];
    snprintf(key, sizeof key, "card:%s:%lld", chat_target(t, j->chat), (long long)rid);
    cust = t->env->kv_get(t->env->host, t->env->name, key);
    customer = cust;
  }
  /* In a forum every message of a topic carries its message_thread_id
   * (a reply or not): a customer's topic (managers.topics) is as good as
   * a reply to their card. */
  int64_t tid = 0;
  bool in_topic = false;
  if (!customer && jint(msg, "message_thread_id", &tid) && tid > 0 && t->env->kv_get) {
    char key[80];
    snprintf(key, sizeof key, "thread:%s:%lld", chat_target(t, j->chat), (long long)tid);
    cust = t->env->kv_get(t->env->host, t->env->name, key);
    customer = cust;
    in_topic = customer != NULL;
  }
  if ((!customer || in_topic) && text && is_command(text, "/stats")) {
    free(cust);
    cust = NULL;
    /* Today's figures, for the group itself (no customer's chat). */
    int64_t uid = 0, mid = 0;
    jint(from, "id", &uid);
    jint(msg, "message_id", &mid);
    snprintf(j->user, sizeof j->user, "%lld", (long long)uid);
    j->name = display_name(from);
    j->ev.kind = "manager";
    set_text(j, "stats");
    json_object_set_new(j->extra, "by", json_string(j->name ? j->name : j->user));
    json_object_set_new(j->extra, "message_id", json_integer(mid));
    job_emit(j);
    return;
  }
  if (!customer || !text) {
    /* Nothing to relay: only replies to the bot's cards (or messages in a
     * customer's topic) reach customers. */
    free(cust);
    job_skip(j, "managers: not a reply to a customer's card");
    return;
  }
  int64_t uid = 0, mid = 0;
  jint(from, "id", &uid);
  jint(msg, "message_id", &mid);
  snprintf(j->user, sizeof j->user, "%lld", (long long)uid);
  snprintf(j->chat, sizeof j->chat, "%s", customer);
  free(cust);
  j->name = display_name(from);
  j->ev.kind = "manager";
  /* /bot gives the chat back to the bot; anything else is said to the
   * customer and takes the chat. */
  if (is_command(text, "/bot")) {
    set_text(j, "release");
  } else {
    set_text(j, "take");
    json_object_set_new(j->extra, "say", json_string(text));
    /* a photo the manager sends goes on by its file_id */
    if (jstr(big, "file_id")) json_object_set_new(j->extra, "say_photo", json_string(jstr(big, "file_id")));
  }
  json_object_set_new(j->extra, "by", json_string(j->name ? j->name : j->user));
  json_object_set_new(j->extra, "message_id", json_integer(mid));
  job_emit(j);
}

/* ---- polling ---- */

static void start_step(uv_timer_t *h);

/* Every retry goes through start_step: getMe until it worked, then the
 * webhook or the next poll. */
static void poll_schedule(tg *t, int64_t ms) {
  if (t->closing || !t->timer_open) return;
  uv_timer_start(&t->timer, start_step, (uint64_t)ms, 0);
}

static int64_t backoff(tg *t) {
  t->backoff_ms = t->backoff_ms ? t->backoff_ms * 2 : 500;
  if (t->backoff_ms > POLL_BACKOFF_MAX_MS) t->backoff_ms = POLL_BACKOFF_MAX_MS;
  return t->backoff_ms / 2 + (int64_t)(rnd(t) % (uint64_t)(t->backoff_ms / 2 + 1));
}

static void channel_stop(tg *t, const char *why) {
  t->stopped = true;
  char *w = q(t, why);
  tlog(t, RT_LOG_ERROR, "telegram-stopped", "err=%s", w);
  free(w);
  health(t, why);
}

/* A getUpdates answer read by tgupd: private text messages become events
 * without a jansson tree, the other updates are parsed alone. false when
 * tgupd gave up: polled reads the answer with jansson. */
static bool polled_fast(tg *t, const rt_http_resp *r) {
  rt_tgupd_batch ub = {0};
  if (rt_tgupd_read(r->body, r->body_len, &ub) != 0) return false;
  /* The updates left to jansson are parsed first: one it refuses sends
   * the whole answer down the jansson path, before any job exists. */
  json_t **slow = rt_xcalloc(ub.n ? ub.n : 1, sizeof *slow);
  for (size_t i = 0; i < ub.n; i++) {
    const rt_tgupd *u = &ub.u[i];
    if (!u->has_id || u->fast || (t->offset && u->update_id < t->offset)) continue;
    if (!(slow[i] = json_loadb(u->start, u->len, 0, NULL))) {
      for (size_t k = 0; k < i; k++) json_decref(slow[k]);
      free(slow);
      rt_tgupd_free(&ub);
      return false;
    }
  }
  tg_batch *b = batch_new(t);
  for (size_t i = 0; i < ub.n; i++) {
    const rt_tgupd *u = &ub.u[i];
    if (!u->has_id || !batch_takes(b, u->update_id)) continue;
    if (u->fast) job_add_text(t, u, b);
    else job_add(t, slow[i], b, NULL);
    json_decref(slow[i]);
  }
  free(slow);
  rt_tgupd_free(&ub);
  jobs_run(t);
  batch_unref(b);
  return true;
}

/* One update jansson refused (inside a whole answer it refused, or a
 * webhook's): read again with what jansson refuses replaced
 * (rt_tgupd_repair: U+FFFD for \u0000 and lone surrogates, a real for an
 * integer beyond int64), so the customer's message is kept; NULL when even
 * that is not JSON (logged: the caller skips the update). id is the
 * update's id read from its raw text, -1 if none, for the log. */
static json_t *update_read(tg *t, const char *s, size_t n, int64_t id) {
  json_error_t e;
  json_t *u = json_loadb(s, n, 0, &e);
  if (u) return u;
  rt_buf b = RT_BUF_INIT;
  size_t fixed = rt_tgupd_repair(s, n, &b);
  char *why = q(t, e.text);
  if (fixed && (u = json_loadb(rt_buf_str(&b), b.len, 0, NULL))) {
    t->upd_repaired++;
    rt_log(RT_LOG_WARN, "telegram-update-repaired", "update_id=%lld replaced=%zu err=%s",
           (long long)id, fixed, why);
  } else {
    t->upd_unreadable++;
    rt_log(RT_LOG_WARN, "telegram-update-unreadable", "update_id=%lld bytes=%zu err=%s",
           (long long)id, n, why);
  }
  free(why);
  rt_buf_free(&b);
  return u;
}

/* A getUpdates answer jansson refused whole: cut into its updates
 * (rt_tgupd_split), each read alone. One that cannot be read at all is
 * skipped -- logged with its id, counted, the offset moved past it -- so it
 * costs only itself: refusing the answer would ask for it again at the
 * same offset, forever, and nothing after it would ever be received.
 * false when the answer is not even that (cut short, not a Bot API
 * answer): the poll fails and is retried. */
static bool polled_split(tg *t, const rt_http_resp *r) {
  rt_tgupd_span *sp;
  size_t n;
  if (rt_tgupd_split(r->body, r->body_len, &sp, &n) != 0) return false;
  tg_batch *b = batch_new(t);
  for (size_t i = 0; i < n; i++) {
    int64_t raw_id, id;
    bool has_raw = rt_tgupd_id(sp[i].start, sp[i].len, &raw_id);
    if (has_raw && t->offset && raw_id < t->offset) {
      batch_takes(b, raw_id);   /* confirmed already: not read again */
      continue;
    }
    json_t *u = update_read(t, sp[i].start, sp[i].len, has_raw ? raw_id : -1);
    /* jansson's update_id when it read the update (as polled's), else the
     * raw text's: the offset moves past a skipped update too */
    if (u ? !jint(u, "update_id", &id) : !has_raw) {
      json_decref(u);
      continue;
    }
    if (!u) id = raw_id;
    if (batch_takes(b, id) && u) job_add(t, u, b, NULL);
    json_decref(u);
  }
  free(sp);
  jobs_run(t);
  batch_unref(b);
  return true;
}

/* A getUpdates answer over TG_BODY_MAX: fewer updates are asked for, half
 * as many each time, down to one; one update too big alone is skipped
 * (logged, counted), its id read from the answer's head (kept by the
 * client, keep_head), else, when the offset is known, the offset itself:
 * the answer's first update is the oldest unconfirmed, whose id is at
 * least the offset, so moving the offset by one never skips another.
 * false when neither is known: the poll fails as any other. */
static bool polled_too_big(tg *t, const rt_http_resp *r) {
  if (t->poll_limit > 1) {
    t->poll_limit /= 2;
    rt_log(RT_LOG_WARN, "telegram-poll-too-big", "max_bytes=%zu limit=%d", TG_BODY_MAX,
           t->poll_limit);
    poll_schedule(t, 0);
    return true;
  }
  int64_t id;
  bool from_head = rt_tgupd_first_id(r->body, r->body_len, &id);
  if (!from_head) {
    if (!t->offset) return false;
    id = t->offset;
  }
  if (t->offset && id < t->offset) return false;   /* not Telegram's order: not guessed */
  t->upd_too_big++;
  rt_log(RT_LOG_WARN, "telegram-update-too-big", "update_id=%lld max_bytes=%zu id_from=%s",
         (long long)id, TG_BODY_MAX, from_head ? "answer" : "offset");
  t->offset = id + 1;
  poll_schedule(t, 0);
  return true;
}

static void polled(rt_http_resp *r, void *ud) {
  tg *t = ud;
  t->poll_req = NULL;
  if (r->err == RT_OK && r->status == 200 && polled_fast(t, r)) return;
  if (r->err == RT_ELIMIT && polled_too_big(t, r)) return;
  tg_resp a;
  resp_read(t, r, &a);
  if (!a.doc && r->err == RT_OK && r->status == 200 && polled_split(t, r)) {
    resp_free(&a);
    return;
  }
  if (a.ok && json_is_array(a.result)) {
    tg_batch *b = batch_new(t);
    size_t i;
    json_t *u;
    json_array_foreach(a.result, i, u) {
      int64_t id;
      if (!jint(u, "update_id", &id) || !batch_takes(b, id)) continue;
      job_add(t, u, b, NULL);
    }
    resp_free(&a);
    jobs_run(t);
    batch_unref(b);
    return;
  }
  char *d = q(t, a.desc);
  if (a.code == 401 || a.code == 404) {
    channel_stop(t, a.code == 401
                 ? "Telegram rejected the bot token (401 Unauthorized): check "
                   "channels.telegram.token; the rest of the bot keeps running"
                 : "Telegram answered 404 to getUpdates: check channels.telegram.api_base "
                   "and the token");
  } else if (a.code == 409) {
    const char *what = a.desc && strstr(a.desc, "webhook")
        ? "Telegram refuses getUpdates because a webhook is set: call deleteWebhook, or "
          "set channels.telegram.webhook_url to run in webhook mode"
        : "another program polls Telegram with this bot token (409 Conflict): stop the "
          "other bot instance";
    tlog(t, RT_LOG_ERROR, "telegram-conflict", "err=%s todo=\"%s\"", d, what);
    health(t, what);
    poll_schedule(t, CONFLICT_RETRY_MS);
  } else if (a.code == 429 && a.retry_after >= 0) {
    poll_schedule(t, a.retry_after * 1000 + 100);
  } else {
    int64_t ms = backoff(t);
    tlog(t, RT_LOG_WARN, "telegram-poll-failed", "code=%d err=%s retry_ms=%lld", a.code, d,
         (long long)ms);
    if (t->backoff_ms >= 4000) {
      char msg[400];
      snprintf(msg, sizeof msg, "cannot reach Telegram: %s", a.desc);
      health(t, msg);
    }
    poll_schedule(t, ms);
  }
  free(d);
  resp_free(&a);
}

static void poll_start(tg *t) {
  if (t->poll_req || t->closing || t->stopped || t->webhook_mode) return;
  json_t *p = json_pack("{s:i, s:i, s:o}", "timeout", t->poll_timeout_s, "limit", t->poll_limit,
                        "allowed_updates", json_loads(ALLOWED_UPDATES, 0, NULL));
  if (t->offset) json_object_set_new(p, "offset", json_integer(t->offset));
  if (call_keep(t, "getUpdates", p, (long)(t->poll_timeout_s + 15) * 1000, true, polled, t,
                &t->poll_req) != RT_OK)
    poll_schedule(t, backoff(t));
}

/* ---- webhook ---- */

/* Compared in constant time: the secret is the webhook's only guard. */
static bool secret_eq(const char *got, const char *want) {
  size_t lg = strlen(got), lw = strlen(want);
  unsigned char d = 0;
  for (size_t i = 0; i < lw; i++) d |= (unsigned char)((i < lg ? got[i] : 0) ^ want[i]);
  return d == 0 && lg == lw;
}

static void webhook_req(void *ud, rt_httpd_req *req) {
  tg *t = ud;
  const char *got = rt_httpd_req_header(req, "X-Telegram-Bot-Api-Secret-Token");
  if (!got || !t->secret || !secret_eq(got, t->secret)) {
    rt_log(RT_LOG_WARN, "telegram-webhook-refused", "remote=%s why=%s len=%zu",
           rt_httpd_req_remote(req), got ? "wrong secret" : "no secret", got ? strlen(got) : 0);
    rt_httpd_respond(req, 401, "application/json", "{\"ok\":false}", 12);
    return;
  }
  size_t n;
  const unsigned char *body = rt_httpd_req_body(req, &n);
  int64_t raw_id = -1, id;
  bool has_raw = rt_tgupd_id((const char *)body, n, &raw_id);
  json_t *u = update_read(t, (const char *)body, n, raw_id);
  if (!u && has_raw) {
    /* Unreadable even repaired (logged): answered 200, or Telegram would
     * deliver it again and again, and nothing after it. */
    rt_httpd_respond(req, 200, "application/json", "{\"ok\":true}", 11);
    return;
  }
  if (!json_is_object(u) || !jint(u, "update_id", &id)) {
    json_decref(u);
    rt_httpd_respond(req, 400, "application/json", "{\"ok\":false}", 12);
    return;
  }
  if (t->closing) {
    json_decref(u);
    rt_httpd_respond(req, 503, "application/json", "{\"ok\":false}", 12);
    return;
  }
  job_add(t, u, NULL, req);
  json_decref(u);
  jobs_run(t);
}

static void webhook_set(rt_http_resp *r, void *ud) {
  tg *t = ud;
  t->ctl_req = NULL;
  tg_resp a;
  resp_read(t, r, &a);
  if (a.ok) {
    health(t, NULL);
    if (t->env->kv_set) t->env->kv_set(t->env->host, t->env->name, "webhook", t->webhook_url);
    char *u = q(t, t->webhook_url);
    tlog(t, RT_LOG_INFO, "telegram-webhook-set", "url=%s", u);
    free(u);
  } else if (a.code == 401) {
    channel_stop(t, "Telegram rejected the bot token (401 Unauthorized): check "
                    "channels.telegram.token; the rest of the bot keeps running");
  } else {
    char msg[400];
    snprintf(msg, sizeof msg, "setWebhook failed: %s", a.desc);
    char *d = q(t, a.desc);
    tlog(t, RT_LOG_ERROR, "telegram-webhook-failed", "code=%d err=%s", a.code, d);
    free(d);
    health(t, msg);
    poll_schedule(t, a.retry_after > 0 ? a.retry_after * 1000 : backoff(t));
  }
  resp_free(&a);
}

static void webhook_start(tg *t) {
  json_t *p = json_pack("{s:s, s:s, s:o}", "url", t->webhook_url, "secret_token", t->secret,
                        "allowed_updates", json_loads(ALLOWED_UPDATES, 0, NULL));
  if (call(t, "setWebhook", p, 30000, webhook_set, t, &t->ctl_req) != RT_OK)
    poll_schedule(t, backoff(t));
}

/* Polling after a webhook: Telegram refuses getUpdates until it is gone. */
static void webhook_deleted(rt_http_resp *r, void *ud) {
  tg *t = ud;
  t->ctl_req = NULL;
  tg_resp a;
  resp_read(t, r, &a);
  if (a.ok) {
    if (t->env->kv_set) t->env->kv_set(t->env->host, t->env->name, "webhook", NULL);
    rt_log(RT_LOG_INFO, "telegram-webhook-deleted", NULL);
    poll_start(t);
  } else if (a.code == 401) {
    channel_stop(t, "Telegram rejected the bot token (401 Unauthorized): check "
                    "channels.telegram.token; the rest of the bot keeps running");
  } else {
    poll_schedule(t, backoff(t));
  }
  resp_free(&a);
}

static void make_secret(tg *t) {
  if (t->webhook_secret_conf) {
    t->secret = rt_xstrdup(t->webhook_secret_conf);
    return;
  }
  char *s = t->env->kv_get ? t->env->kv_get(t->env->host, t->env->name, "webhook_secret") : NULL;
  if (s && *s) {
    t->secret = s;
    return;
  }
  free(s);
  static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";
  unsigned char raw[48];
  int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
  ssize_t n = fd >= 0 ? read(fd, raw, sizeof raw) : -1;
  if (fd >= 0) close(fd);
  char *o = rt_xmalloc(sizeof raw + 1);
  for (size_t i = 0; i < sizeof raw; i++)
    o[i] = abc[(n == (ssize_t)sizeof raw ? raw[i] : (unsigned char)rnd(t)) & 63];
  o[sizeof raw] = '\0';
  t->secret = o;
  if (t->env->kv_set) t->env->kv_set(t->env->host, t->env->name, "webhook_secret", o);
}

/* ---- start: getMe, then polling or the webhook ---- */

static void got_me(rt_http_resp *r, void *ud) {
  tg *t = ud;
  t->ctl_req = NULL;
  tg_resp a;
  resp_read(t, r, &a);
  if (!a.ok) {
    if (a.code == 401 || a.code == 404) {
      channel_stop(t, a.code == 401
                   ? "Telegram rejected the bot token (401 Unauthorized): check "
                     "channels.telegram.token; the rest of the bot keeps running"
                   : "Telegram answered 404 to getMe: check channels.telegram.api_base and "
                     "the token");
    } else {
      char *d = q(t, a.desc);
      int64_t ms = backoff(t);
      tlog(t, RT_LOG_WARN, "telegram-getme-failed", "code=%d err=%s retry_ms=%lld", a.code, d,
           (long long)ms);
      free(d);
      char msg[400];
      snprintf(msg, sizeof msg, "cannot reach Telegram: %s", a.desc);
      if (t->backoff_ms >= 4000) health(t, msg);
      poll_schedule(t, ms);
    }
    resp_free(&a);
    return;
  }
  t->started = true;
  t->backoff_ms = 0;
  health(t, NULL);
  jint(a.result, "id", &t->bot_id);
  free(t->bot_username);
  t->bot_username = jstr(a.result, "username") ? rt_xstrdup(jstr(a.result, "username")) : NULL;
  rt_log(RT_LOG_INFO, "telegram-started", "bot=%s mode=%s",
         t->bot_username ? t->bot_username : "?", t->webhook_mode ? "webhook" : "polling");
  resp_free(&a);
  if (t->webhook_mode) {
    webhook_start(t);
    return;
  }
  char *was = t->env->kv_get ? t->env->kv_get(t->env->host, t->env->name, "webhook") : NULL;
  if (was) {
    free(was);
    if (call(t, "deleteWebhook", json_object(), 30000, webhook_deleted, t, &t->ctl_req) == RT_OK)
      return;
  }
  poll_start(t);
}

static void start_step(uv_timer_t *h) {
  tg *t = h->data;
  if (t->closing || t->stopped) return;
  if (!t->started) {
    if (call(t, "getMe", json_object(), 30000, got_me, t, &t->ctl_req) != RT_OK)
      poll_schedule(t, backoff(t));
  } else if (t->webhook_mode) {
    webhook_start(t);
  } else {
    poll_start(t);
  }
}

/* ---- photos older than store.keep_days ---- */

/* The downloaded photos are files beside the shop's data, not rows: the
 * store's pruning does not see them, so they go here, at start and every
 * hour, once older (by their mtime, the download) than store.keep_days --
 * the age at which the inbox rows that name them are pruned. One readdir
 * and a stat per file on the loop: fine for the tens of thousands of
 * photos a shop gets in a month. */
void rt_telegram_prune_photos(const char *data_dir, int keep_days, int64_t now_s,
                              size_t *removed) {
  *removed = 0;
  if (!data_dir || keep_days <= 0) return;
  char *dir = rt_xasprintf("%s/photos", data_dir);
  DIR *d = opendir(dir);
  if (!d) {
    free(dir);
    return;
  }
  int64_t before = now_s - (int64_t)keep_days * 86400;
  struct dirent *de;
  while ((de = readdir(d))) {
    if (de->d_name[0] == '.') continue;
    char *f = rt_xasprintf("%s/%s", dir, de->d_name);
    struct stat st;
    if (lstat(f, &st) == 0 && S_ISREG(st.st_mode) && (int64_t)st.st_mtime < before &&
        unlink(f) == 0)
      (*removed)++;
    free(f);
  }
  closedir(d);
  free(dir);
}

static void prune_cb(uv_timer_t *h) {
  tg *t = h->data;
  size_t n;
  rt_telegram_prune_photos(t->env->data_dir, t->env->keep_days, (int64_t)time(NULL), &n);
  if (n) rt_log(RT_LOG_INFO, "telegram-photos-pruned", "files=%zu keep_days=%d", n,
                t->env->keep_days);
}

/* The /metrics block (plugin.h set_metrics): the updates read only by
 * repairing them, and those skipped (docs: polled_split, polled_too_big). */
static void tg_metrics(void *ud, rt_buf *b) {
  tg *t = ud;
  rt_buf_printf(b, "# HELP shopbot_telegram_updates_repaired_total Updates read after replacing what jansson refuses (U+FFFD, a real for a huge integer).\n"
                   "# TYPE shopbot_telegram_updates_repaired_total counter\n"
                   "shopbot_telegram_updates_repaired_total %llu\n"
                   "# HELP shopbot_telegram_updates_skipped_total Updates skipped (the offset moved past them) by why.\n"
                   "# TYPE shopbot_telegram_updates_skipped_total counter\n"
                   "shopbot_telegram_updates_skipped_total{why=\"unreadable\"} %llu\n"
                   "shopbot_telegram_updates_skipped_total{why=\"too_big\"} %llu\n",
                (unsigned long long)t->upd_repaired, (unsigned long long)t->upd_unreadable,
                (unsigned long long)t->upd_too_big);
}

static void tg_start(rt_channel *ch, const rt_plugin_env *env,
                     void (*done)(void *, int, const char *), void *ud) {
  tg *t = ch->impl;
  t->env = env;
  t->rnd = (uint64_t)uv_hrtime() | 1;
  if (env->kv_get) t->managers = env->kv_get(env->host, env->name, "managers_chat");
  if (!env->http) {
    done(ud, RT_EINVAL, "telegram: the host lent no HTTP client");
    return;
  }
  if (t->webhook_url) {
    if (!env->httpd) {
      done(ud, RT_EINVAL, "channels.telegram.webhook_url needs the HTTP server: set http.listen "
                          "(behind a reverse proxy that terminates TLS)");
      return;
    }
    make_secret(t);
    rt_httpd_route_opts ro = {.max_body = 1 << 20, .timeout_ms = 30000};
    rt_httpd_route_ex(env->httpd, "POST", t->webhook_path, &ro, webhook_req, t);
  }
  uv_timer_init(env->loop, &t->timer);
  t->timer.data = t;
  t->timer_open = true;
  t->handles_open++;
  uv_timer_init(env->loop, &t->group_timer);
  t->group_timer.data = t;
  t->group_timer_open = true;
  t->handles_open++;
  uv_timer_init(env->loop, &t->typing_timer);
  t->typing_timer.data = t;
  t->typing_timer_open = true;
  t->handles_open++;
  groups_load(t);
  if (env->set_metrics) env->set_metrics(env->host, env->name, tg_metrics, t);
  if (env->keep_days > 0) {
    uv_timer_init(env->loop, &t->prune);
    t->prune.data = t;
    t->prune_open = true;
    t->handles_open++;
    uv_timer_start(&t->prune, prune_cb, 0, PRUNE_EVERY_MS);
  }
  /* getMe answers later; the host does not wait for Telegram to start. */
  uv_timer_start(&t->timer, start_step, 0, 0);
  done(ud, RT_OK, NULL);
}

/* ---- typing ---- */

static void tg_free(tg *t);

static void typing_stop(tg *t, const char *chat) {
  free(rt_map_del(&t->typing, chat));
}

static void typing_tick(uv_timer_t *h);

/* The timer at the earliest due (stopped when no chat waits). */
static void typing_timer_arm(tg *t) {
  if (!t->typing_timer_open || t->closing) return;
  int64_t now = (int64_t)uv_now(t->env->loop), next = INT64_MAX;
  size_t it = 0;
  const char *k;
  void *v;
  while (rt_map_next(&t->typing, &it, &k, &v)) {
    tg_typing *ty = v;
    if (ty->due < next) next = ty->due;
  }
  if (next == INT64_MAX) uv_timer_stop(&t->typing_timer);
  else uv_timer_start(&t->typing_timer, typing_tick, (uint64_t)(next > now ? next - now : 0), 0);
}

static void typing_tick(uv_timer_t *h) {
  tg *t = h->data;
  if (t->closing) return;
  int64_t now = (int64_t)uv_now(t->env->loop);
  char over[64][32];
  size_t nover = 0, it = 0;
  const char *k;
  void *v;
  while (rt_map_next(&t->typing, &it, &k, &v)) {
    tg_typing *ty = v;
    if (now - ty->since > TYPING_FOR_MS) {
      /* removed after the walk, which a removal would upset; the rest at
       * the next tick */
      if (nover < RT_ARRAY_LEN(over)) snprintf(over[nover++], sizeof over[0], "%s", ty->chat);
      else ty->due = now;
      continue;
    }
    if (ty->due > now) continue;
    ty->due = now + TYPING_EVERY_MS;
    fire(t, "sendChatAction", json_pack("{s:s, s:s}", "chat_id", ty->chat, "action", "typing"));
  }
  for (size_t i = 0; i < nover; i++) typing_stop(t, over[i]);
  typing_timer_arm(t);
}

/* A customer's message came in: if the answer takes longer than
 * TYPING_AFTER_MS (a slow LLM or CRM call inside the step), the customer
 * sees "typing..." until it goes out. */
static void typing_arm(tg *t, const char *chat) {
  if (t->closing || !t->env->loop) return;
  tg_typing *ty = rt_map_get(&t->typing, chat);
  if (!ty) {
    ty = rt_xcalloc(1, sizeof *ty);
    snprintf(ty->chat, sizeof ty->chat, "%s", chat);
    rt_map_set(&t->typing, chat, ty);
  }
  ty->since = (int64_t)uv_now(t->env->loop);
  ty->due = ty->since + TYPING_AFTER_MS;
  /* The timer runs for the earliest due: this one, unless it is due sooner
   * (a repeat of another chat). */
  if (t->typing_timer_open && (!uv_is_active((uv_handle_t *)&t->typing_timer) ||
                               uv_timer_get_due_in(&t->typing_timer) > TYPING_AFTER_MS))
    uv_timer_start(&t->typing_timer, typing_tick, TYPING_AFTER_MS, 0);
}

/* ---- outbound ---- */

static tg_progress *progress_get(tg *t, int64_t row, bool make) {
  for (tg_progress *p = t->progress; p; p = p->next)
    if (p->row == row) return p;
  if (!make) return NULL;
  tg_progress *p = rt_xcalloc(1, sizeof *p);
  p->row = row;
  p->next = t->progress;
  t->progress = p;
  return p;
}

static void progress_drop(tg *t, int64_t row) {
  for (tg_progress **pp = &t->progress; *pp; pp = &(*pp)->next)
    if ((*pp)->row == row) {
      tg_progress *p = *pp;
      *pp = p->next;
      free(p);
      return;
    }
}

static void send_free(tg_send *s) {
  tg *t = s->t;
  if (s->prev) s->prev->next = s->next;
  else t->sends = s->next;
  if (s->next) s->next->prev = s->prev;
  free(s->chat);
  free(s->orig_chat);
  free(s->about_chat);
  rt_telegram_parts_free(s->parts, s->nparts);
  free(s->markup);
  free(s->media_ref);
  free(s->media_kind);
  free(s->caption);
  free(s->topic_name);
  free(s);
}

/* Whether a row is sent as more than one Telegram message. */
static bool send_multi(const tg_send *s) {
  return s->nparts + (s->media_ref ? 1 : 0) > 1;
}

static void progress_save(tg_send *s, const tg_progress *p) {
  tg *t = s->t;
  if (!send_multi(s) || !t->env->kv_set) return;
  char key[64], val[64];
  snprintf(key, sizeof key, "parts:%s", s->orig_chat);
  snprintf(val, sizeof val, "%lld:%zu:%d", (long long)s->row, p->parts_done, p->media_done ? 1 : 0);
  if (t->env->kv_set(t->env->host, t->env->name, key, val) != RT_OK)
    rt_log(RT_LOG_WARN, "telegram-progress-unsaved", "row=%lld", (long long)s->row);
}

/* The progress of a multi-message row after a restart. */
static void progress_load(tg_send *s) {
  tg *t = s->t;
  if (!send_multi(s) || !t->env->kv_get) return;
  char key[64];
  snprintf(key, sizeof key, "parts:%s", s->orig_chat);
  char *v = t->env->kv_get(t->env->host, t->env->name, key);
  long long row = 0;
  size_t done = 0;
  int media = 0;
  if (v && sscanf(v, "%lld:%zu:%d", &row, &done, &media) == 3 && row == s->row) {
    tg_progress *p = progress_get(t, s->row, true);
    p->parts_done = done;
    p->media_done = media != 0;
    rt_log(RT_LOG_INFO, "telegram-send-resumed", "row=%lld parts_done=%zu", row, done);
  }
  free(v);
}

static void send_answer(tg_send *s, const rt_send_result *r) {
  tg *t = s->t;
  if (r->verdict == RT_SEND_DELIVERED || r->verdict == RT_SEND_FAILED) progress_drop(t, s->row);
  rt_send_done done = s->done;
  void *ud = s->ud;
  send_free(s);
  done(ud, r);
}

static void send_step(tg_send *s);
static void topic_save(tg_send *s);

/* A card or a customer's message relayed to the managers: a reply to it
 * reaches that customer. */
static void remember_card(tg_send *s, const json_t *result) {
  tg *t = s->t;
  int64_t mid;
  if (!s->about || !t->env->kv_set || !jint(result, "message_id", &mid)) return;
  char key[80], val[32];
  snprintf(key, sizeof key, "card:%s:%lld", s->chat, (long long)mid);
  t->env->kv_set(t->env->host, t->env->name, key, s->about_chat);
  if (!s->reply_to && !s->thread) {
    /* The first note about a customer is their card: later ones (relayed
     * messages, reminders) answer it, so the dialog reads as one thread. */
    snprintf(key, sizeof key, "cardof:%s:%s", s->chat, s->about_chat);
    snprintf(val, sizeof val, "%lld", (long long)mid);
    t->env->kv_set(t->env->host, t->env->name, key, val);
  }
}

/* Telegram took one message of the row: the row is delivered, or its
 * next part goes. */
static void sent_one(tg_send *s) {
  tg *t = s->t;
  if (!send_multi(s)) {   /* one message: nothing to resume, nothing kept */
    s->part = s->nparts;
    s->media_done = true;
    progress_drop(t, s->row);
    send_answer(s, &(rt_send_result){.verdict = RT_SEND_DELIVERED});
    return;
  }
  tg_progress *p = progress_get(t, s->row, true);
  if (s->media_ref && !s->media_done) {
    s->media_done = p->media_done = true;
  } else {
    s->part++;
    p->parts_done = s->part;
  }
  progress_save(s, p);
  if (s->part < s->nparts) {
    /* The next part is another Telegram message: it waits for the chat's
     * rate like any row (the queue holds it until its bucket has a token),
     * and goes on from here (tg_progress). */
    char why[64];
    snprintf(why, sizeof why, "part %zu of %zu delivered", s->part, s->nparts);
    send_answer(s, &(rt_send_result){.verdict = RT_SEND_RETRY_LATER, .after_ms = 1,
                                     .text = why});
    return;
  }
  send_answer(s, &(rt_send_result){.verdict = RT_SEND_DELIVERED});
}

static void sent(rt_http_resp *r, void *ud) {
  tg_send *s = ud;
  tg *t = s->t;
  s->req = NULL;
  if (!s->about && answer_ok(r)) {
    sent_one(s);
    return;
  }
  tg_resp a;
  resp_read(t, r, &a);
  rt_send_result res = {.verdict = RT_SEND_RETRY_LATER, .text = a.desc};
  if (a.ok) {
    remember_card(s, a.result);
    resp_free(&a);
    sent_one(s);
    return;
  }
  if (s->thread && a.code == 400 && a.desc && strstr(a.desc, "thread not found")) {
    /* The customer's topic was deleted: it is forgotten (its name kept)
     * and the note tried again when the group's rate allows, which makes
     * a new topic first. */
    rt_log(RT_LOG_WARN, "telegram-topic-gone", "chat=%s thread=%lld about=%s", s->chat,
           (long long)s->thread, s->about_chat);
    s->thread = 0;
    topic_save(s);
    rt_send_done done = s->done;
    void *dud = s->ud;
    send_free(s);
    done(dud, &(rt_send_result){.verdict = RT_SEND_RETRY_LATER, .after_ms = 1,
                                .text = "the customer's topic was deleted"});
    resp_free(&a);
    return;
  }
  if (a.migrate_to && s->migrations < 2) {
    /* The group became a supergroup: its new id from now on, and this
     * message again, there. */
    s->migrations++;
    chat_migrate(t, s->orig_chat, a.migrate_to);
    free(s->chat);
    s->chat = rt_xasprintf("%lld", (long long)a.migrate_to);
    resp_free(&a);
    send_step(s);
    return;
  }
  if (a.err != RT_OK) {
    res.verdict = RT_SEND_RETRY_LATER;          /* timeout, connection: backoff */
  } else if (a.code == 429) {
    int64_t ms = (a.retry_after >= 0 ? a.retry_after : 1) * 1000;
    /* Private chats are kept at 1/s, under Telegram's per-chat limit, so a
     * 429 there is the bot's flood control: the whole channel waits. A
     * group's 429 is that group's 20/min. */
    res.verdict = s->chat[0] == '-' ? RT_SEND_RETRY_LATER : RT_SEND_PAUSE_CHANNEL;
    res.after_ms = ms;
  } else if (a.code >= 500) {
    res.verdict = RT_SEND_RETRY_LATER;
    if (a.retry_after > 0) res.after_ms = a.retry_after * 1000;
  } else if (a.code == 403) {
    res.verdict = RT_SEND_FAILED;
    res.reason = RT_FAIL_BLOCKED;
  } else if (a.code == 401) {
    health(t, "Telegram rejected the bot token (401 Unauthorized): check "
              "channels.telegram.token");
    res.verdict = RT_SEND_PAUSE_CHANNEL;
    res.after_ms = UNAUTHORIZED_PAUSE_MS;
  } else if (a.code == 400 && a.desc && strstr(a.desc, "chat not found")) {
    res.verdict = RT_SEND_FAILED;
    res.reason = RT_FAIL_CHAT_NOT_FOUND;
  } else if (a.code == 400 && a.desc && strstr(a.desc, "too long")) {
    res.verdict = RT_SEND_FAILED;
    res.reason = RT_FAIL_TOO_LONG;
  } else if (a.code >= 400 && a.code < 500 && a.code != 404 && a.code != 408) {
    res.verdict = RT_SEND_FAILED;
    res.reason = RT_FAIL_OTHER;
  }
  if (res.verdict != RT_SEND_DELIVERED) {
    char *d = q(t, a.desc);
    tlog(t, res.verdict == RT_SEND_FAILED ? RT_LOG_WARN : RT_LOG_INFO, "telegram-send-failed",
         "row=%lld chat=%s code=%d err=%s verdict=%d after_ms=%lld", (long long)s->row, s->chat,
         a.code, d, (int)res.verdict, (long long)res.after_ms);
    free(d);
  }
  /* res.text borrows from a: answer first, free after. */
  rt_send_done done = s->done;
  void *dud = s->ud;
  if (res.verdict == RT_SEND_FAILED) progress_drop(t, s->row);
  send_free(s);
  done(dud, &res);
  resp_free(&a);
}

/* Where a note about a customer goes in the managers' chat: into their
 * forum topic (managers.topics), else a reply to their card (photos too,
 * so they sit under it). */
static void add_place(tg_send *s, json_t *p) {
  if (s->thread) {
    /* In the customer's topic: the topic is the thread. */
    json_object_set_new(p, "message_thread_id", json_integer((json_int_t)s->thread));
    return;
  }
  if (s->reply_to)
    json_object_set_new(p, "reply_parameters", json_pack("{s:I, s:b}", "message_id",
                                                         (json_int_t)s->reply_to,
                                                         "allow_sending_without_reply", 1));
}

/* The same, for a request body written as text. */
static void place_text(tg_send *s, rt_buf *b) {
  if (s->thread) {
    rt_buf_printf(b, ",\"message_thread_id\":%lld", (long long)s->thread);
    return;
  }
  if (s->reply_to)
    rt_buf_printf(b, ",\"reply_parameters\":{\"message_id\":%lld,"
                     "\"allow_sending_without_reply\":true}", (long long)s->reply_to);
}

static bool in_dir(const char *path, const char *dir) {
  size_t n = dir ? strlen(dir) : 0;
  return n && strncmp(path, dir, n) == 0 && path[n] == '/' && !strstr(path, "/../");
}

/* multipart/form-data for an upload from the shop's data folder. */
static int upload(tg_send *s, const char *method, const char *field) {
  tg *t = s->t;
  FILE *f = fopen(s->media_ref, "rb");
  if (!f) return RT_ENOENT;
  rt_buf b = RT_BUF_INIT;
  char boundary[48];
  snprintf(boundary, sizeof boundary, "shopbot%016llx", (unsigned long long)rnd(t));
  rt_buf_printf(&b, "--%s\r\nContent-Disposition: form-data; name=\"chat_id\"\r\n\r\n%s\r\n",
                boundary, s->chat);
  if (s->caption && *s->caption)
    rt_buf_printf(&b, "--%s\r\nContent-Disposition: form-data; name=\"caption\"\r\n\r\n%s\r\n",
                  boundary, s->caption);
  if (s->markup && s->nparts == 0)
    rt_buf_printf(&b, "--%s\r\nContent-Disposition: form-data; name=\"reply_markup\"\r\n\r\n"
                      "%s\r\n", boundary, s->markup);
  json_t *place = json_object();
  add_place(s, place);
  const char *k;
  json_t *v;
  json_object_foreach(place, k, v) {
    char *vs = json_is_integer(v) ? rt_xasprintf("%lld", (long long)json_integer_value(v))
                                  : json_dumps(v, JSON_COMPACT);
    rt_buf_printf(&b, "--%s\r\nContent-Disposition: form-data; name=\"%s\"\r\n\r\n%s\r\n",
                  boundary, k, vs);
    free(vs);
  }
  json_decref(place);
  const char *slash = strrchr(s->media_ref, '/');
  char *fname = safe_name(slash ? slash + 1 : s->media_ref);
  const char *dot = strrchr(s->media_ref, '.');
  const char *ct = dot && (strcmp(dot, ".png") == 0) ? "image/png"
                   : dot && (strcmp(dot, ".jpg") == 0 || strcmp(dot, ".jpeg") == 0) ? "image/jpeg"
                   : "application/octet-stream";
  rt_buf_printf(&b, "--%s\r\nContent-Disposition: form-data; name=\"%s\"; filename=\"%s\"\r\n"
                    "Content-Type: %s\r\n\r\n", boundary, field, fname, ct);
  free(fname);
  char chunk[65536];
  size_t n;
  size_t total = 0;
  while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
    total += n;
    if (total > (50u << 20)) { fclose(f); rt_buf_free(&b); return RT_ELIMIT; }
    rt_buf_add(&b, chunk, n);
  }
  fclose(f);
  rt_buf_printf(&b, "\r\n--%s--\r\n", boundary);
  char *ctype = rt_xasprintf("Content-Type: multipart/form-data; boundary=%s", boundary);
  const char *hdr[] = {ctype, NULL};
  char *url = rt_xasprintf("%s%s", t->base, method);
  rt_http_opts o = {.method = "POST", .url = url, .body = rt_buf_str(&b), .body_len = b.len,
                    .headers = hdr, .timeout_ms = 120000};
  int rc = rt_http_request(t->env->http, &o, sent, s, &s->req);
  free(url);
  free(ctype);
  rt_buf_free(&b);
  return rc;
}

/* ---- forum topics (managers.topics) ----
 * kv "topic:<group>:<customer chat>" = "<message_thread_id>:<name>" (the
 * name to recreate a deleted topic under), "thread:<group>:<id>" = the
 * customer's chat (a manager's message in the topic reaches them). */

static void topic_save(tg_send *s) {
  tg *t = s->t;
  if (!t->env->kv_set) return;
  char key[96], val[48];
  char *v = rt_xasprintf("%lld:%s", (long long)s->thread, s->topic_name ? s->topic_name : "");
  snprintf(key, sizeof key, "topic:%s:%s", s->chat, s->about_chat);
  int rc = t->env->kv_set(t->env->host, t->env->name, key, v);
  free(v);
  snprintf(key, sizeof key, "thread:%s:%lld", s->chat, (long long)s->thread);
  snprintf(val, sizeof val, "%s", s->about_chat);
  if (rc == RT_OK && s->thread) rc = t->env->kv_set(t->env->host, t->env->name, key, val);
  if (rc != RT_OK)
    rt_log(RT_LOG_WARN, "telegram-topic-unsaved", "chat=%s thread=%lld", s->chat,
           (long long)s->thread);
}

/* The customer's topic as kept, if any. */
static void topic_load(tg_send *s) {
  tg *t = s->t;
  char key[96];
  snprintf(key, sizeof key, "topic:%s:%s", s->chat, s->about_chat);
  char *v = t->env->kv_get ? t->env->kv_get(t->env->host, t->env->name, key) : NULL;
  char *end = NULL;
  long long id = v ? strtoll(v, &end, 10) : 0;
  if (v && id >= 0 && end && *end == ':') {
    s->thread = id;   /* 0: deleted, to be made again under its name */
    if (end[1] && !s->topic_name) s->topic_name = rt_xstrdup(end + 1);
  }
  free(v);
}

/* Telegram takes 1-128 characters: a longer name is cut at a character. */
static char *topic_cut(const char *name) {
  size_t len = strlen(name), i = 0, n = 0;
  while (i < len && n < 128) {
    size_t cl;
    rt_utf8_decode(name + i, len - i, &cl);
    i += cl ? cl : 1;
    n++;
  }
  char *out = rt_xmalloc(i + 1);
  memcpy(out, name, i);
  out[i] = '\0';
  return out;
}

static void send_step(tg_send *s);

static void topic_created(rt_http_resp *r, void *ud) {
  tg_send *s = ud;
  tg *t = s->t;
  s->req = NULL;
  tg_resp a;
  resp_read(t, r, &a);
  int64_t id = 0;
  if (a.ok && jint(a.result, "message_thread_id", &id) && id > 0) {
    s->thread = id;
    s->want_topic = false;
    topic_save(s);
    rt_log(RT_LOG_INFO, "telegram-topic-created", "chat=%s thread=%lld about=%s", s->chat,
           (long long)id, s->about_chat);
    resp_free(&a);
    send_step(s);
    return;
  }
  if (a.err != RT_OK || a.code == 429 || a.code >= 500) {
    /* Telegram is busy or away: the note waits, and the topic is asked
     * for again with it. */
    int64_t ms = a.code == 429 && a.retry_after >= 0 ? a.retry_after * 1000 : 0;
    char *d = q(t, a.desc);
    tlog(t, RT_LOG_INFO, "telegram-topic-later", "chat=%s code=%d err=%s", s->chat, a.code, d);
    free(d);
    rt_send_done done = s->done;
    void *dud = s->ud;
    send_free(s);
    done(dud, &(rt_send_result){.verdict = RT_SEND_RETRY_LATER, .after_ms = ms,
                                .text = "createForumTopic failed, retried"});
    resp_free(&a);
    return;
  }
  /* Refused for good (not a forum, no right to manage topics): the notes
   * go to the group as cards, as without managers.topics, until the next
   * start. The note itself goes on now. */
  t->topics_off = true;
  char *d = q(t, a.desc);
  tlog(t, RT_LOG_WARN, "telegram-topics-unavailable",
       "chat=%s code=%d err=%s what=\"managers.topics is on but Telegram refused to create a "
       "topic: notes go to the group as cards; make the group a forum (topics on) and the bot "
       "an admin allowed to manage topics, then restart\"", s->chat, a.code, d);
  free(d);
  resp_free(&a);
  s->want_topic = false;
  s->thread = 0;
  send_step(s);
}

static void topic_create(tg_send *s) {
  tg *t = s->t;
  char *name = topic_cut(s->topic_name);
  json_t *p = json_pack("{s:s, s:s}", "chat_id", s->chat, "name", name);
  free(name);
  if (call(t, "createForumTopic", p, 30000, topic_created, s, &s->req) != RT_OK)
    send_answer(s, &(rt_send_result){.verdict = RT_SEND_RETRY_LATER, .text = "request refused"});
}

static void send_step(tg_send *s) {
  tg *t = s->t;
  int rc;
  if (s->want_topic && !s->thread && !t->topics_off) {
    topic_create(s);
    return;
  }
  rt_log(RT_LOG_DEBUG, "telegram-send", "row=%lld chat=%s part=%zu", (long long)s->row, s->chat,
         s->part);
  if (s->media_ref && !s->media_done) {
    bool doc = s->media_kind && strcmp(s->media_kind, "document") == 0;
    const char *method = doc ? "sendDocument" : "sendPhoto";
    const char *field = doc ? "document" : "photo";
    if (s->media_ref[0] == '/') {
      if (!in_dir(s->media_ref, t->env->data_dir)) {
        send_answer(s, &(rt_send_result){.verdict = RT_SEND_FAILED, .reason = RT_FAIL_OTHER,
                                         .text = "a file to upload must be in the shop's data folder"});
        return;
      }
      rc = upload(s, method, field);
      if (rc == RT_ENOENT || rc == RT_ELIMIT) {
        send_answer(s, &(rt_send_result){.verdict = RT_SEND_FAILED, .reason = RT_FAIL_OTHER,
                                         .text = rc == RT_ENOENT ? "the file to upload is missing"
                                                                 : "the file is over 50 MB"});
        return;
      }
    } else {
      json_t *p = json_pack("{s:s, s:s}", "chat_id", s->chat, field, s->media_ref);
      add_place(s, p);
      if (s->caption && *s->caption) json_object_set_new(p, "caption", json_string(s->caption));
      if (s->markup && s->nparts == 0)
        json_object_set_new(p, "reply_markup", json_loads(s->markup, 0, NULL));
      rc = call(t, method, p, 60000, sent, s, &s->req);
    }
  } else {
    /* Written directly (the text is the outbox's, valid UTF-8; the markup
     * is JSON of ours): no tree to build and dump per message. */
    rt_buf b = RT_BUF_INIT;
    rt_buf_adds(&b, "{\"chat_id\":");
    rt_lconv_add_string(&b, s->chat, strlen(s->chat));
    rt_buf_adds(&b, ",\"text\":");
    rt_lconv_add_string(&b, s->parts[s->part], strlen(s->parts[s->part]));
    place_text(s, &b);
    if (s->markup && s->part + 1 == s->nparts) {
      rt_buf_adds(&b, ",\"reply_markup\":");
      rt_buf_adds(&b, s->markup);
    }
    rt_buf_addc(&b, '}');
    rc = call_text(t, "sendMessage", rt_buf_str(&b), b.len, 30000, sent, s, &s->req);
    rt_buf_free(&b);
  }
  if (rc != RT_OK)
    send_answer(s, &(rt_send_result){.verdict = RT_SEND_RETRY_LATER, .text = "request refused"});
}

/* callback_data: the button's text when it fits in 64 bytes, else its
 * number (the label is read back from the message on a press). */
static char *markup_for(tg *t, const rt_out_msg *m) {
  if (!m->nbuttons) return NULL;
  json_t *rows = json_array(), *row = NULL;
  bool two = true;
  for (size_t i = 0; i < m->nbuttons; i++)
    if (rt_utf8_count(m->buttons[i], strlen(m->buttons[i])) > 18) two = false;
  for (size_t i = 0; i < m->nbuttons; i++) {
    if (!row || !two || json_array_size(row) == 2) {
      row = json_array();
      json_array_append_new(rows, row);
    }
    json_t *b = json_pack("{s:s}", "text", m->buttons[i]);
    if (t->inline_buttons) {
      char data[32];
      const char *d = m->buttons[i];
      if (strlen(d) > TG_CALLBACK_MAX || !*d) {
        snprintf(data, sizeof data, "#%zu", i + 1);
        d = data;
      }
      json_object_set_new(b, "callback_data", json_string(d));
    }
    json_array_append_new(row, b);
  }
  json_t *mk = t->inline_buttons
      ? json_pack("{s:o}", "inline_keyboard", rows)
      : json_pack("{s:o, s:b, s:b}", "keyboard", rows, "resize_keyboard", 1, "one_time_keyboard", 1);
  char *s = json_dumps(mk, JSON_COMPACT);
  json_decref(mk);
  return s;
}

static void tg_send_msg(rt_channel *ch, const rt_out_msg *m, rt_send_done done, void *ud) {
  tg *t = ch->impl;
  if (t->stopped || !t->env) {
    done(ud, &(rt_send_result){.verdict = RT_SEND_PAUSE_CHANNEL, .after_ms = UNAUTHORIZED_PAUSE_MS,
                               .text = "the Telegram channel is stopped (see /healthz)"});
    return;
  }
  if (m->kind == RT_MSG_TEMPLATE) {
    done(ud, &(rt_send_result){.verdict = RT_SEND_FAILED, .reason = RT_FAIL_UNSUPPORTED,
                               .text = "Telegram has no message templates"});
    return;
  }
  tg_send *s = rt_xcalloc(1, sizeof *s);
  s->t = t;
  s->done = done;
  s->ud = ud;
  s->row = m->id;
  s->orig_chat = rt_xstrdup(m->chat_id);
  s->chat = rt_xstrdup(chat_target(t, m->chat_id));
  s->about = m->about != NULL;
  if (s->about) {
    s->about_chat = rt_xstrdup(m->about);
    managers_learn(t, m->chat_id);
    char key[96];
    snprintf(key, sizeof key, "cardof:%s:%s", s->chat, m->about);
    char *v = t->env->kv_get ? t->env->kv_get(t->env->host, t->env->name, key) : NULL;
    if (v) s->reply_to = strtoll(v, NULL, 10);
    free(v);
    /* managers.topics: the host names the customer's topic on each note
     * (m->topic); the topic is made on the first and kept. A note without
     * a name (the host's own: taken, relayed messages) goes into the topic
     * when there is one. */
    if (m->topic && *m->topic) s->topic_name = rt_xstrdup(m->topic);
    topic_load(s);
    if (!s->thread && s->topic_name && !t->topics_off) s->want_topic = true;
  }
  s->markup = markup_for(t, m);
  const char *text = m->text ? m->text : "";
  if (m->kind == RT_MSG_MEDIA && m->media_ref) {
    s->media_ref = rt_xstrdup(m->media_ref);
    s->media_kind = rt_xstrdup(m->media_kind ? m->media_kind : "photo");
    size_t units = 0, i = 0, len = strlen(text);
    while (i < len) {
      size_t cl;
      uint32_t cp = rt_utf8_decode(text + i, len - i, &cl);
      units += cp == RT_UTF8_BAD ? 1 : u16_units(cp);
      i += cl;
    }
    if (units <= TG_CAPTION_MAX) {
      s->caption = rt_xstrdup(text);
      s->parts = rt_xcalloc(1, sizeof *s->parts);
      s->nparts = 0;
    } else {
      s->nparts = rt_telegram_split(text, RT_TG_TEXT_MAX, &s->parts);
    }
  } else {
    s->nparts = rt_telegram_split(text, RT_TG_TEXT_MAX, &s->parts);
  }
  tg_progress *p = progress_get(t, m->id, false);
  if (!p) {
    progress_load(s);
    p = progress_get(t, m->id, false);
  }
  if (p) {
    s->part = p->parts_done < s->nparts ? p->parts_done : s->nparts;
    s->media_done = p->media_done;
  }
  s->next = t->sends;
  if (t->sends) t->sends->prev = s;
  t->sends = s;
  if (!s->about) typing_stop(t, m->chat_id);
  if (s->part >= s->nparts && (!s->media_ref || s->media_done)) {
    send_answer(s, &(rt_send_result){.verdict = RT_SEND_DELIVERED});
    return;
  }
  send_step(s);
}

static bool tg_is_group(rt_channel *ch, const char *chat_id) {
  (void)ch;
  return chat_id && chat_id[0] == '-';
}

/* ---- close ---- */

static void tg_free(tg *t) {
  void (*done)(void *) = t->close_done;
  void *ud = t->close_ud;
  while (t->progress) progress_drop(t, t->progress->row);
  size_t it = 0;
  const char *k;
  void *v;
  while (rt_map_next(&t->migrated, &it, &k, &v)) free(v);
  rt_map_free(&t->migrated);
  rt_map_free(&t->typing);
  free(t->token); free(t->api_base); free(t->base); free(t->file_base);
  free(t->webhook_url); free(t->webhook_path); free(t->webhook_secret_conf); free(t->secret);
  free(t->managers); free(t->bot_username);
  free(t);
  if (done) done(ud);
}

static void handle_closed(uv_handle_t *h) {
  tg *t = h->data;
  if (--t->handles_open == 0) tg_free(t);
}

static void tg_close(rt_channel *ch, void (*done)(void *), void *ud) {
  tg *t = ch->impl;
  t->closing = true;
  t->close_done = done;
  t->close_ud = ud;
  if (!t->env) {   /* never started */
    tg_free(t);
    return;
  }
  if (t->poll_req) { rt_http_cancel(t->poll_req); t->poll_req = NULL; }
  if (t->ctl_req) { rt_http_cancel(t->ctl_req); t->ctl_req = NULL; }
  while (t->sends) {
    tg_send *s = t->sends;
    if (s->req) rt_http_cancel(s->req);
    s->req = NULL;
    send_answer(s, &(rt_send_result){.verdict = RT_SEND_RETRY_LATER, .text = "shutting down"});
  }
  /* Updates not yet handed over come again at the next start. */
  tg_job *all[2] = {t->jobs, t->busy};
  t->jobs = t->jobs_tail = NULL;
  t->busy = NULL;
  for (int k = 0; k < 2; k++) {
    for (tg_job *j = all[k], *n; j; j = n) {
      n = k == 0 ? j->next : NULL;
      if (j->req) rt_http_cancel(j->req);
      j->req = NULL;
      job_finish(j, RT_EIO);
      job_free(j);
    }
  }
  /* Received, not yet committed: the ack may still come, with nothing to
   * move; a webhook request is answered now (Telegram asks again). */
  for (tg_job *j = t->awaiting; j; j = j->anext) {
    j->t = NULL;
    if (j->batch) { j->batch->t = NULL; }
    if (j->wreq) {
      rt_httpd_respond(j->wreq, 503, "application/json", "{\"ok\":false}", 12);
      j->wreq = NULL;
    }
  }
  t->awaiting = NULL;
  /* The webhook's route needs no undoing: the host closes the HTTP server
   * before the plugins (plugins/README.md), so no request reaches it now. */
  size_t it = 0;
  const char *k;
  void *v;
  while (rt_map_next(&t->typing, &it, &k, &v)) free(v);
  rt_map_free(&t->typing);
  rt_map_init(&t->typing);
  if (t->typing_timer_open) {
    t->typing_timer_open = false;
    uv_close((uv_handle_t *)&t->typing_timer, handle_closed);
  }
  /* Albums still gathering stay in kv for the next start; those handed
   * over are freed by their ack. */
  for (tg_group *g = t->groups, *n; g; g = n) {
    n = g->next;
    if (g->emitted) g->t = NULL;
    else group_free(g);
  }
  t->groups = NULL;
  if (t->group_timer_open) {
    t->group_timer_open = false;
    uv_close((uv_handle_t *)&t->group_timer, handle_closed);
  }
  if (t->prune_open) {
    t->prune_open = false;
    uv_close((uv_handle_t *)&t->prune, handle_closed);
  }
  if (t->timer_open) {
    t->timer_open = false;
    uv_close((uv_handle_t *)&t->timer, handle_closed);
  } else if (t->handles_open == 0) {
    tg_free(t);
  }
}

/* ---- create ---- */

static const char *cstr(const json_t *c, const char *k) {
  const char *s = jstr(c, k);
  return s && *s ? s : NULL;
}

int rt_telegram_new(const json_t *conf, rt_channel **out, char **err) {
  const char *token = cstr(conf, "token");
  *out = NULL;
  if (!token) {
    *err = rt_xstrdup("channels.telegram.token is empty: set it (usually \"${TELEGRAM_TOKEN}\")");
    return RT_EINVAL;
  }
  for (const char *p = token; *p; p++)
    if (*p <= ' ' || *p == '/' || *p == '?' || *p == '#' || *p == '%' || (unsigned char)*p >= 0x7f) {
      *err = rt_xstrdup("channels.telegram.token has characters a bot token never has "
                        "(it looks like 123456:ABC-DEF...)");
      return RT_EINVAL;
    }
  const char *base = cstr(conf, "api_base") ? cstr(conf, "api_base") : "https://api.telegram.org";
  if (strncmp(base, "http://", 7) != 0 && strncmp(base, "https://", 8) != 0) {
    *err = rt_xstrdup("channels.telegram.api_base must start with https:// (or http:// for a "
                      "local Bot API server)");
    return RT_EINVAL;
  }
  const char *wh = cstr(conf, "webhook_url");
  const char *path = NULL;
  if (wh) {
    const char *h = strncmp(wh, "https://", 8) == 0 ? wh + 8
                    : strncmp(wh, "http://", 7) == 0 ? wh + 7 : NULL;
    path = h ? strchr(h, '/') : NULL;
    if (!h || !path) {
      *err = rt_xstrdup("channels.telegram.webhook_url must be a full https:// URL with a path, "
                        "like https://shop.example/telegram/hook");
      return RT_EINVAL;
    }
  }
  const char *sec = cstr(conf, "webhook_secret");
  if (sec) {
    size_t n = strlen(sec);
    bool okc = n <= 256;
    for (const char *p = sec; *p && okc; p++)
      okc = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            *p == '_' || *p == '-';
    if (!okc) {
      *err = rt_xstrdup("channels.telegram.webhook_secret: 1-256 characters A-Z a-z 0-9 _ -");
      return RT_EINVAL;
    }
  }
  tg *t = rt_xcalloc(1, sizeof *t);
  t->token = rt_xstrdup(token);
  size_t bl = strlen(base);
  while (bl > 0 && base[bl - 1] == '/') bl--;
  t->api_base = rt_xstrndup(base, bl);
  t->base = rt_xasprintf("%s/bot%s/", t->api_base, t->token);
  t->file_base = rt_xasprintf("%s/file/bot%s/", t->api_base, t->token);
  if (wh) {
    t->webhook_url = rt_xstrdup(wh);
    const char *qm = strchr(path, '?');
    t->webhook_path = qm ? rt_xstrndup(path, (size_t)(qm - path)) : rt_xstrdup(path);
    t->webhook_mode = true;
  }
  if (sec) t->webhook_secret_conf = rt_xstrdup(sec);
  int64_t v;
  t->poll_timeout_s = jint(conf, "poll_timeout_s", &v) ? (int)v : 25;
  if (t->poll_timeout_s < 0) t->poll_timeout_s = 0;
  if (t->poll_timeout_s > 50) t->poll_timeout_s = 50;   /* the server's cap */
  t->photo_max = jint(conf, "photo_max_bytes", &v) && v > 0 ? v : (int64_t)10 << 20;
  if (t->photo_max > TG_DOWNLOAD_MAX) t->photo_max = TG_DOWNLOAD_MAX;
  t->group_wait_ms = jint(conf, "media_group_wait_ms", &v) && v >= 0 ? v : 1000;
  t->poll_limit = POLL_LIMIT_MAX;
  const char *bt = cstr(conf, "buttons");
  t->inline_buttons = bt && strcmp(bt, "inline") == 0;
  rt_map_init(&t->migrated);
  rt_map_init(&t->typing);
  /* Telegram's limits (Bot FAQ): ~30 messages/s per bot, 1/s per chat
   * with short bursts let through (a two- or three-part answer goes at
   * once, then 1/s), 20/min per group; rates.* in the section may lower or
   * raise them (a test server has none). */
  json_t *rates = json_object_get(conf, "rates");
  double ps = 30, pc = 1, pg = 20.0 / 60.0;
  int pb = 3;
  json_t *x;
  if (json_is_number(x = json_object_get(rates, "per_sec"))) ps = json_number_value(x);
  if (json_is_number(x = json_object_get(rates, "per_chat"))) pc = json_number_value(x);
  if (json_is_integer(x = json_object_get(rates, "chat_burst"))) pb = (int)json_integer_value(x);
  if (json_is_number(x = json_object_get(rates, "per_group_min")))
    pg = json_number_value(x) / 60.0;
  t->ch = (rt_channel){
      .name = "telegram", .impl = t, .caps = RT_CH_BUTTONS | RT_CH_MEDIA,
      .limits = {.per_sec = ps, .per_chat = pc, .per_group = pg, .chat_burst = pb,
                 .in_flight = 128},
      .start = tg_start, .send = tg_send_msg, .is_group = tg_is_group, .close = tg_close};
  *out = &t->ch;
  return RT_OK;
}

/* ---- the plugin ---- */

static bool tg_wanted(const json_t *conf) { return cstr(conf, "token") != NULL; }

static int tg_create(const json_t *conf, rt_channel **ch, struct rt_provider **pv, char **err) {
  (void)pv;
  return rt_telegram_new(conf, ch, err);
}

#include "plugins/telegram_schema.h"

const rt_plugin rt_plugin_telegram = {
    .name = "telegram", .version = "0.1.0", .kind = RT_PLUGIN_CHANNEL,
    .schema_json = (const char *)rt_telegram_schema_json, .wanted = tg_wanted, .create = tg_create};
