/* transcript.c -- the transcript test runner (see transcript.h). */
#include "transcript.h"
#include "buf.h"
#include "http_client.h"
#include "store_tools.h"
#include "campaign_cfg.h"
#include "config.h"
#include "engine.h"
#include "import.h"
#include "integration.h"
#include "jschema.h"
#include "llm/llm.h"
#include "log.h"
#include "ocr/ocr.h"
#include "plugin.h"
#include "paths.h"
#include "re.h"
#include "text.h"
#include "utf8.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct {
  char *channel, *chat, *text;
  bool consumed;
} captured;

typedef struct {
  char *method, *url, *body;
  int status;
  bool timeout, used;
} scripted_reply;

/* llm: RULE -> ANSWER (docs/transcripts.md). */
typedef struct {
  char *op;                   /* "chat", "extract" or "*" */
  char *schema;               /* extract: the schema's name, NULL = any */
  char *re;                   /* matched against the customer's words, NULL = any */
  bool image, every, used;
  char *answer;               /* the model's text (chat) or JSON (extract) */
  int status;                 /* error NNN: an HTTP error instead; -1: timeout */
} llm_rule;

/* ocr: TEXT -- what tesseract "printed" for the next photo read. */
typedef struct {
  char *text, *error;
  bool used;
} ocr_reading;

typedef struct tr tr;

/* The runner's own ocr provider: answers ocr.read from the ocr: lines. */
typedef struct {
  rt_provider p;
  tr *t;
} script_ocr;

struct rt_call {
  uv_timer_t timer;
  json_t *value;
  char *error, *detail;
  rt_call_done done;
  void *ud;
};

struct tr {
  const rt_transcript_opts *o;
  const char *file;
  char *dir;                  /* the transcript's folder: relative paths */
  char *tmp, *flows, *store_path;
  rt_config *cfg;
  rt_engine *e;
  uv_loop_t loop;
  rt_channel chans[5];
  captured *msgs;
  size_t nmsgs;
  scripted_reply *replies;
  size_t nreplies;
  json_t *requests;           /* every HTTP request made */
  char *channel, *chat;       /* the current chat (owned, any length) */
  unsigned long seq;          /* ids of the events the transcript sends */
  json_t *schema;             /* shop.schema.json, loaded by the first config: line */
  int64_t clock_ms;
  int64_t leads_seen;
  int line;
  int checks;
  bool failed;
  char *reload_err;
  rt_http *http;              /* the engine's, scripted (http_scripted) */
  /* providers lent to the flows when the file scripts them (llm:, ocr:) */
  bool want_llm, want_ocr;
  bool llm_retries_set;       /* a config: line set llm.retries */
  rt_plugin_host *host;       /* the llm's (plugin.h), when the file scripts it */
  bool host_started;
  char *files;                /* its data folders */
  rt_provider *llm;           /* the real llm plugin (plugins/llm) */
  char *llm_url;              /* where it posts: answered by llm: rules */
  bool in_all_call;           /* all_llm: the runner's own call is running */
  script_ocr ocr;
  rt_provider *pvs[2];
  size_t npvs;
  llm_rule *rules;
  size_t nrules;
  ocr_reading *readings;
  size_t nreadings;
  json_t *llm_calls;          /* what the LLM was asked: expect llm */
  int64_t ocr_calls;
  rt_transcript_stats st;
};

/* ---- reporting ---- */

static void fail(tr *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(tr *t, const char *fmt, ...) {
  if (t->failed) return;
  t->failed = true;
  fprintf(t->o->out, "FAIL %s:%d: ", t->file, t->line);
  va_list ap;
  va_start(ap, fmt);
  vfprintf(t->o->out, fmt, ap);
  va_end(ap);
  fputc('\n', t->o->out);
}

/* ---- capture channels ---- */

static void cap_send(rt_channel *ch, const rt_out_msg *m, rt_send_done done, void *ud) {
  tr *t = ch->impl;
  t->msgs = rt_xrealloc(t->msgs, (t->nmsgs + 1) * sizeof *t->msgs);
  t->msgs[t->nmsgs++] = (captured){rt_xstrdup(ch->name), rt_xstrdup(m->chat_id),
                                   rt_xstrdup(m->text), false};
  if (t->o->verbose) fprintf(t->o->out, "    [%s:%s] %s\n", ch->name, m->chat_id, m->text);
  done(ud, &(rt_send_result){.verdict = RT_SEND_DELIVERED});
}

/* ---- scripted HTTP ---- */

/* `*` is the only wildcard; every other byte stands for itself and the
 * whole text must match. Greedy with one resume point: with `*` alone,
 * taking the earliest place each literal run matches is never worse than a
 * later one, so on a mismatch only the last star needs to take one byte
 * more. That is O(len(p) * len(s)) at worst, without recursion (a
 * backtracking matcher is exponential in the stars: "*a*a*a*b" against a
 * long reply of a's). */
bool rt_transcript_glob(const char *p, const char *s) {
  if (!p || !s) return false;
  const char *star = NULL, *resume = NULL;
  while (*s) {
    if (*p == '*') {
      while (*p == '*') p++;
      if (!*p) return true;
      star = p;
      resume = s;
    } else if (*p && *p == *s) {
      p++;
      s++;
    } else if (star) {
      p = star;
      s = ++resume;
    } else {
      return false;
    }
  }
  while (*p == '*') p++;
  return !*p;
}

static bool re_matches(tr *t, const char *re, const char *text);

/* ---- scripted LLM ----
 *
 * The flows get the real llm provider (plugins/llm), whose HTTP client
 * answers from here: its chat-completions requests are matched against the
 * llm: rules, the rule's answer comes back as the model's message, with a
 * usage the size of the request: what an OpenAI tokenizer would count,
 * roughly, as the bytes of the messages and the schema sent, over 4 (the
 * JSON as sent, photos' data left out), plus 85 tokens a photo (the price
 * of a low-detail image part); the answer's bytes over 4 are the completion.
 * Russian text costs fewer tokens per byte than that, so the figure errs
 * on the dear side. */
#define IMAGE_TOKENS 85
#define TOKENS(bytes) ((int64_t)(((bytes) + 3) / 4))

/* What a request asks: op, schema, the customer's words (the text parts of
 * the last user message sent as parts, which is how the plugin sends the
 * customer's message: its repair turns are plain strings), photos, and the
 * prompt's size in tokens. Owned text in *words. */
static int64_t llm_request(json_t *body, const char **op, const char **schema, char **words,
                           int *images) {
  const json_t *rf = json_object_get(body, "response_format");
  *op = rf ? "extract" : "chat";
  *schema = json_string_value(json_object_get(json_object_get(rf, "json_schema"), "name"));
  *images = 0;
  *words = NULL;
  json_t *msgs = json_object_get(body, "messages");
  size_t i, k;
  json_t *m, *part;
  json_array_foreach(msgs, i, m) {
    json_t *content = json_object_get(m, "content");
    if (!json_is_array(content)) continue;
    const char *role = json_string_value(json_object_get(m, "role"));
    rt_buf w = RT_BUF_INIT;
    json_array_foreach(content, k, part) {
      const char *type = json_string_value(json_object_get(part, "type"));
      if (type && strcmp(type, "image_url") == 0) {
        (*images)++;
        json_object_set_new(json_object_get(part, "image_url"), "url", json_string(""));
      } else if (type && strcmp(type, "text") == 0) {
        if (w.len) rt_buf_addc(&w, ' ');
        rt_buf_adds(&w, json_string_value(json_object_get(part, "text")));
      }
    }
    if (role && strcmp(role, "user") == 0) {
      free(*words);
      *words = rt_buf_take(&w, NULL);
    } else {
      rt_buf_free(&w);
    }
  }
  char *sent = json_dumps(msgs, JSON_COMPACT);
  char *fmt = rf ? json_dumps(rf, JSON_COMPACT) : NULL;
  int64_t tokens = TOKENS((sent ? strlen(sent) : 0) + (fmt ? strlen(fmt) : 0)) +
                   (int64_t)*images * IMAGE_TOKENS;
  free(sent);
  free(fmt);
  if (!*words) *words = rt_xstrdup("");
  return tokens;
}

static bool llm_rule_fits(tr *t, const llm_rule *r, const char *op, const char *schema,
                          const char *words, int images) {
  if (r->used && !r->every) return false;
  if (strcmp(r->op, "*") != 0 && strcmp(r->op, op) != 0) return false;
  if (r->schema && (!schema || strcmp(r->schema, schema) != 0)) return false;
  if (r->image && images == 0) return false;
  return !r->re || re_matches(t, r->re, words);
}

/* The answer to a request for the LLM's URL; false for any other URL. */
static bool llm_scripted(tr *t, const rt_http_opts *o, rt_http_resp *resp) {
  if (!t->llm_url || strcmp(o->url, t->llm_url) != 0) return false;
  bool all = t->in_all_call;
  json_t *body = o->body ? json_loadb(o->body, o->body_len, 0, NULL) : NULL;
  const char *op, *schema;
  char *words;
  int images;
  int64_t prompt = llm_request(body, &op, &schema, &words, &images);
  const char *model = json_string_value(json_object_get(body, "model"));
  const llm_rule *rule = NULL;
  /* The file's rules answer the flows; the all_llm calls get the runner's
   * default answers, so they never use up a rule the flows need. */
  for (size_t i = 0; i < t->nrules && !rule && !all; i++)
    if (llm_rule_fits(t, &t->rules[i], op, schema, words, images)) {
      t->rules[i].used = true;
      rule = &t->rules[i];
    }
  const char *answer = rule ? rule->answer : NULL;
  if (all && t->o->llm_default)
    answer = json_string_value(json_object_get(t->o->llm_default, schema ? schema : op));
  json_t *rec = json_pack("{s:s, s:s?, s:s, s:i, s:b}", "op", op, "schema", schema, "text", words,
                          "images", images, "all", all);
  int64_t completion = 0;
  if (rule && rule->status != 0) {
    if (rule->status < 0) {
      resp->err = RT_ETIMEOUT;
      snprintf(resp->errmsg, sizeof resp->errmsg, "scripted timeout");
    } else {
      resp->status = rule->status;
      json_t *e = json_pack("{s:{s:s, s:s, s:n}}", "error", "message", "scripted error",
                            "type", rule->status == 429 ? "rate_limit_exceeded" : "server_error",
                            "code");
      resp->body = json_dumps(e, JSON_COMPACT);
      resp->body_len = strlen(resp->body);
      json_decref(e);
    }
    json_object_set_new(rec, "error", json_integer(rule->status));
    prompt = 0;
  } else if (answer) {
    completion = TOKENS(strlen(answer));
    json_t *r = json_pack("{s:s, s:s, s:i, s:s, s:[{s:i, s:{s:s, s:s}, s:s}], s:{s:I, s:I, s:I}}",
                          "id", "chatcmpl-transcript", "object", "chat.completion", "created", 0,
                          "model", model ? model : "model", "choices", "index", 0, "message",
                          "role", "assistant", "content", answer, "finish_reason", "stop",
                          "usage", "prompt_tokens", (json_int_t)prompt, "completion_tokens",
                          (json_int_t)completion, "total_tokens", (json_int_t)(prompt + completion));
    resp->status = 200;
    resp->body = json_dumps(r, JSON_COMPACT);
    resp->body_len = strlen(resp->body);
    json_decref(r);
  } else {
    resp->err = RT_ENET;
    snprintf(resp->errmsg, sizeof resp->errmsg, "no scripted LLM answer in the transcript (llm: lines)");
    json_object_set_new(rec, "error", json_string("no answer"));
    prompt = 0;
  }
  json_object_set_new(rec, "prompt_tokens", json_integer(prompt));
  json_object_set_new(rec, "completion_tokens", json_integer(completion));
  json_array_append_new(t->llm_calls, rec);
  rt_transcript_llm *st = all ? &t->st.all_llm : &t->st.flows;
  st->calls++;
  st->tokens_in += prompt;
  st->tokens_out += completion;
  if (images) st->photos++;
  free(words);
  json_decref(body);
  return true;
}

/* ---- scripted OCR: the runner's own provider ---- */

static void ocr_timer_closed(uv_handle_t *h) {
  rt_call *c = h->data;
  json_decref(c->value);
  free(c->error);
  free(c->detail);
  free(c);
}

static void ocr_answer(uv_timer_t *tm) {
  rt_call *c = tm->data;
  rt_call_result r;
  memset(&r, 0, sizeof r);
  r.status = c->error ? RT_EIO : RT_OK;
  r.value = c->value;
  r.error = c->error;
  r.detail = c->detail;
  c->done(c->ud, &r);
  uv_close((uv_handle_t *)&c->timer, ocr_timer_closed);
}

static const char *const script_ocr_ops[] = {"read", NULL};

/* ocr.read(photo): the next ocr: line, read for car ids with the same
 * helper the real provider uses (rt_ocr_cars). */
static int script_ocr_call(rt_provider *p, const char *op, const json_t *args, rt_call_done done,
                           void *ud, rt_call **out, char **err) {
  tr *t = ((script_ocr *)p)->t;
  if (strcmp(op, "read") != 0) {
    *err = rt_xasprintf("ocr has no operation \"%s\" (only read)", op);
    return RT_EINVAL;
  }
  const json_t *photo = json_object_get(args, "photo");
  if (!json_is_object(photo)) photo = args;
  if (!json_string_value(json_object_get(photo, "path"))) {
    *err = rt_xstrdup("ocr.read: the photo has no path (a file the channel saved)");
    return RT_EINVAL;
  }
  t->ocr_calls++;
  t->st.ocr_calls++;
  rt_call *c = rt_xcalloc(1, sizeof *c);
  c->done = done;
  c->ud = ud;
  ocr_reading *rd = NULL;
  for (size_t i = 0; i < t->nreadings && !rd; i++)
    if (!t->readings[i].used) rd = &t->readings[i];
  if (!rd) {
    c->error = rt_xstrdup("unavailable");
    c->detail = rt_xstrdup("no scripted OCR reading in the transcript (ocr: lines)");
  } else if (rd->error) {
    rd->used = true;
    c->error = rt_xstrdup(rd->error);
    c->detail = rt_xstrdup("scripted");
  } else {
    rd->used = true;
    rt_text_car cars[8];
    int n = rt_ocr_cars(rd->text, cars, 8);
    json_t *arr = json_array();
    for (int i = 0; i < n; i++)
      json_array_append_new(arr, json_pack("{s:s, s:s, s:b, s:b}", "kind",
                                           cars[i].kind == 'v' ? "vin" : "frame", "value",
                                           cars[i].value, "check_ok", cars[i].check_ok,
                                           "north_american", cars[i].north_american));
    c->value = json_pack("{s:s, s:s, s:i, s:o}", "text", rd->text, "lang", "eng", "ms", 0,
                         "cars", arr);
    if (n > 0) t->st.ocr_found++;
  }
  uv_timer_init(&t->loop, &c->timer);
  c->timer.data = c;
  uv_timer_start(&c->timer, ocr_answer, 0, 0);
  *out = c;
  return RT_OK;
}

static void script_ocr_cancel(rt_provider *p, rt_call *c) {
  (void)p;
  if (c && !uv_is_closing((uv_handle_t *)&c->timer)) {
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->timer, ocr_timer_closed);
  }
}

/* The transport behind the engine's HTTP client: every request is kept
 * for `expect http` and answered from the replies the transcript scripted,
 * later from the loop as the network would. */
static void http_scripted(void *ud, const rt_http_opts *o, rt_http_resp *resp) {
  tr *t = ud;
  const char *m = o->method ? o->method : "GET";
  json_t *req = json_pack("{s:s, s:s}", "method", m, "url", o->url);
  json_t *body = o->body ? json_stringn(o->body, o->body_len) : NULL;
  if (body) json_object_set_new(req, "body", body);
  json_array_append_new(t->requests, req);
  if (llm_scripted(t, o, resp)) return;
  for (size_t i = 0; i < t->nreplies; i++) {
    scripted_reply *s = &t->replies[i];
    if (s->used || strcmp(s->method, m) != 0 || !rt_transcript_glob(s->url, o->url)) continue;
    s->used = true;
    if (s->timeout) {
      resp->err = RT_ETIMEOUT;
      snprintf(resp->errmsg, sizeof resp->errmsg, "scripted timeout");
      return;
    }
    resp->status = s->status;
    resp->body = rt_xstrdup(s->body);
    resp->body_len = strlen(s->body);
    return;
  }
  resp->err = RT_ENET;
  snprintf(resp->errmsg, sizeof resp->errmsg, "no scripted reply in the transcript");
}

/* ---- engine lifetime ---- */

static void settle(tr *t) {
  for (int i = 0; i < 1000000; i++) {
    /* With providers a step may wait for a process (the llm scales a
     * photo with convert): wait for the loop's next event then, instead
     * of spinning through the budget before the process is done. */
    uv_run(&t->loop, t->npvs ? UV_RUN_ONCE : UV_RUN_NOWAIT);
    if (rt_engine_idle(t->e)) return;
  }
  fail(t, "the bot did not settle (a step waiting forever?)");
}

/* A tiny JPEG for the photos of files that script the LLM: the llm
 * plugin scales each photo with convert before it sends it. */
static const unsigned char TINY_JPEG[] = {
#include "transcript_jpeg.h"
};

static int host_receive(void *ud, const rt_event_in *ev, void (*ack)(void *, int), void *ack_ud) {
  (void)ud; (void)ev; (void)ack; (void)ack_ud;
  return RT_EINVAL;   /* the llm receives nothing */
}

static int64_t host_now(void *ud) { return ((tr *)ud)->clock_ms; }

/* The providers a file scripts, created once, before the first engine:
 * the real llm plugin through a plugin host of its own (as `shopbot run`
 * does, with the shop's llm section; a made-up base_url when it has none,
 * and no retries unless the file's config asks: backoff waits would be
 * real time), whose HTTP client (the flows' too) answers from the script;
 * and the runner's own ocr provider. */
static void providers_up(tr *t) {
  if (t->npvs || t->host || t->failed) return;
  if (t->want_llm) {
    json_t *root = rt_config_json(t->cfg);
    json_t *sec = json_object_get(root, "llm");
    if (!json_is_object(sec)) {
      sec = json_object();
      json_object_set_new(root, "llm", sec);
    }
    if (!json_string_value(json_object_get(sec, "base_url")))
      json_object_set_new(sec, "base_url", json_string("http://llm.transcript/v1"));
    /* the file scripts the LLM: it runs even where the shop has it off
     * (a new shop's "enabled": false, whose api_key was never filled in) */
    if (json_is_false(json_object_get(sec, "enabled"))) {
      json_object_set_new(sec, "enabled", json_true());
      json_object_set_new(sec, "api_key", json_string("sk-transcript"));
    }
    /* shop.json's own retries (or the default filled in at load, which
     * cannot be told from it) would be backoff waits in real time */
    if (!t->llm_retries_set) json_object_set_new(sec, "retries", json_integer(0));
    const char *base = json_string_value(json_object_get(sec, "base_url"));
    size_t bl = strlen(base);
    while (bl > 0 && base[bl - 1] == '/') bl--;
    t->llm_url = rt_xasprintf("%.*s/chat/completions", (int)bl, base);
    static const rt_plugin *const only_llm[] = {&rt_plugin_llm, NULL};
    t->files = rt_xasprintf("%s/files", t->tmp);
    rt_plugin_host_opts po = {.loop = &t->loop, .cfg = t->cfg, .plugins = only_llm,
                              .files_dir = t->files, .now_ms = host_now,
                              .receive = host_receive, .ud = t};
    t->host = rt_plugin_host_new(&po);
    if (rt_plugin_host_create(t->host, false) != 0) {
      bool ok;
      json_t *h = rt_plugin_host_health(t->host, &ok);
      char *txt = json_dumps(h, JSON_COMPACT);
      fail(t, "the llm provider cannot be created: %s", txt);
      free(txt);
      json_decref(h);
      return;
    }
    if (t->http) rt_http_close(t->http, NULL, NULL);
    t->http = rt_plugin_host_http(t->host);
    rt_http_set_transport(t->http, http_scripted, t);
    size_t n = 0;
    rt_provider *const *pv = rt_plugin_host_providers(t->host, &n);
    for (size_t i = 0; i < n && t->npvs < RT_ARRAY_LEN(t->pvs); i++) {
      if (strcmp(pv[i]->name, "llm") == 0) t->llm = pv[i];
      t->pvs[t->npvs++] = pv[i];
    }
  }
  if (t->want_ocr) {
    t->ocr.t = t;
    t->ocr.p = (rt_provider){.name = "ocr", .impl = &t->ocr, .ops = script_ocr_ops,
                             .call = script_ocr_call, .cancel = script_ocr_cancel};
    t->pvs[t->npvs++] = &t->ocr.p;
  }
}

static int engine_up(tr *t) {
  if (t->e) return RT_OK;
  char *err = NULL;
  providers_up(t);
  if (t->failed) return RT_EINVAL;
  /* The flows' HTTP client answers from the transcript's script. */
  if (!t->http) {
    t->http = rt_http_new(&t->loop);
    rt_http_set_transport(t->http, http_scripted, t);
  }
  rt_engine_opts eo = {.loop = &t->loop, .cfg = t->cfg, .store_path = t->store_path,
                       .test_mode = true, .clock_ms = t->clock_ms, .flows_dir = t->flows,
                       .http = t->http, .providers = t->pvs, .nproviders = t->npvs};
  int rc = rt_engine_new(&eo, &t->e, &err);
  if (rc != RT_OK) {
    fail(t, "the shop does not start: %s", err);
    free(err);
    return rc;
  }
  /* once: the llm's start is synchronous and needs no store of its own */
  if (t->host && !t->host_started) {
    rt_plugin_host_start(t->host, rt_engine_store(t->e), NULL);
    t->host_started = true;
  }
  static const char *names[] = {"console", "telegram", "whatsapp", "webchat", "test"};
  for (int i = 0; i < 5; i++) {
    t->chans[i] = (rt_channel){.name = names[i], .impl = t, .send = cap_send,
                               .caps = RT_CH_BUTTONS | RT_CH_MEDIA | RT_CH_TEMPLATES};
    rt_engine_add_channel(t->e, &t->chans[i]);
  }
  rt_engine_start(t->e);
  settle(t);
  return RT_OK;
}

static void engine_closed(void *ud) { *(bool *)ud = true; }

static void engine_down(tr *t) {
  if (!t->e) return;
  /* the store the plugins were lent closes with this engine */
  if (t->host) rt_plugin_host_stopping(t->host);
  t->clock_ms = rt_clock_now(rt_engine_clock(t->e));
  bool closed = false;
  rt_engine_close(t->e, engine_closed, &closed);
  while (!closed) uv_run(&t->loop, UV_RUN_ONCE);
  t->e = NULL;
}

/* ---- helpers ---- */

static char *trim(char *s) {
  while (*s == ' ' || *s == '\t') s++;
  size_t n = strlen(s);
  while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n')) s[--n] = '\0';
  return s;
}

/* Normalised glob: both sides lower-cased, ё as е, whitespace collapsed,
 * so a pattern need not copy a multi-line message's line breaks. */
static bool text_matches(const char *pattern, const char *text) {
  char *p = rt_text_norm(pattern), *s = rt_text_norm(text);
  bool ok = rt_transcript_glob(p, s);
  free(p);
  free(s);
  return ok;
}

/* A backtracking regular expression can be as slow as the old glob was, so
 * the match has a budget; running out of it fails the test with a clear
 * message instead of passing for a mismatch or stalling the runner. */
#define RE_MATCH_LIMIT 1000000
#define RE_DEPTH_LIMIT 100000

static bool re_matches(tr *t, const char *re, const char *text) {
  char *err = NULL;
  pcre2_code *c = rt_re_compile(re, PCRE2_ZERO_TERMINATED, PCRE2_CASELESS | PCRE2_DOTALL, &err);
  if (!c) {
    fail(t, "bad regular expression: %s", err);
    free(err);
    return false;
  }
  pcre2_match_context *mc = pcre2_match_context_create(NULL);
  pcre2_set_match_limit(mc, RE_MATCH_LIMIT);
  pcre2_set_depth_limit(mc, RE_DEPTH_LIMIT);
  pcre2_match_data *md = pcre2_match_data_create_from_pattern(c, NULL);
  int rc = pcre2_match(c, (PCRE2_SPTR)text, PCRE2_ZERO_TERMINATED, 0, 0, md, mc);
  pcre2_match_data_free(md);
  pcre2_match_context_free(mc);
  pcre2_code_free(c);
  if (rc < 0 && rc != PCRE2_ERROR_NOMATCH) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(rc, msg, sizeof msg);
    fail(t, "regular expression %s cannot be matched: %s (simplify it)", re, (char *)msg);
  }
  return rc >= 0;
}

static bool value_matches(tr *t, bool is_re, const char *pattern, const char *text) {
  return is_re ? re_matches(t, pattern, text) : text_matches(pattern, text);
}

/* Splits "head: rest" or "head ~ rest"; returns the operator or 0. */
static char split_op(char *s, char **head, char **rest) {
  char *c = strstr(s, ": "), *r = strstr(s, " ~ ");
  char *col = strchr(s, ':');
  if (col && col[1] == '\0') c = col;
  char *at = c;
  char op = ':';
  if (r && (!c || r < c)) { at = r; op = '~'; }
  if (!at) return 0;
  *at = '\0';
  *head = trim(s);
  *rest = trim(at + (op == '~' ? 3 : (at[1] == '\0' ? 1 : 2)));
  return op;
}

static captured *next_msg(tr *t, const char *channel, const char *chat) {
  for (size_t i = 0; i < t->nmsgs; i++) {
    captured *m = &t->msgs[i];
    if (m->consumed) continue;
    if ((!channel || strcmp(m->channel, channel) == 0) && strcmp(m->chat, chat) == 0) return m;
  }
  return NULL;
}

static void check_no_pending(tr *t) {
  captured *m = next_msg(t, t->channel, t->chat);
  if (m) fail(t, "unexpected bot message (no bot: line for it):\n  got: %s", m->text);
}

/* "ID" or "channel:ID" becomes the current chat. Neither part may be empty:
 * an empty chat would only show up later as a missing reply. */
static bool set_chat(tr *t, const char *line, const char *spec) {
  const char *colon = strchr(spec, ':');
  const char *id = colon ? colon + 1 : spec;
  if (colon == spec || !*id) {
    /* "user(): the chat ID is empty", "chat: ..." */
    bool paren = strcmp(line, "chat") != 0;
    fail(t, "%s%s%s%s: the chat %s is empty (use ID or channel:ID)", line, paren ? "(" : " ",
         spec, paren ? ")" : "", colon == spec ? "channel" : "ID");
    return false;
  }
  if (colon) {
    free(t->channel);
    t->channel = rt_xstrndup(spec, (size_t)(colon - spec));
  }
  free(t->chat);
  t->chat = rt_xstrdup(id);
  return true;
}

/* expect sql: the first column of the first row, "NULL" for NULL or none. */
static bool first_cell(void *ud, int ncols, const char *const *vals) {
  char **out = ud;
  free(*out);
  *out = rt_xstrdup(ncols > 0 && vals[0] ? vals[0] : "NULL");
  return false;
}

/* expect event: the newest event of the kind that matches the regex (any,
 * without one); keeps the newest for the message. */
typedef struct { tr *t; const char *re; bool found; char *last; } event_find;
static bool event_match(void *ud, const char *j) {
  event_find *f = ud;
  if (!f->last) f->last = rt_xstrdup(j);
  f->found = !f->re || re_matches(f->t, f->re, j);
  return !f->found;
}

static bool conv_row(tr *t, rt_conv_row *row) {
  return rt_store_conv_get(rt_engine_store(t->e), t->channel, t->chat, false, 0, row) == RT_OK;
}

/* Looks up a dotted path in the conversation's slots; owned text or NULL. */
static char *slot_text(tr *t, const char *path) {
  rt_conv_row row;
  if (!conv_row(t, &row)) return NULL;
  json_t *j = json_loads(row.state ? row.state : "{}", 0, NULL), *v = j;
  rt_conv_row_clear(&row);
  char *p = rt_xstrdup(path), *save = NULL;
  for (char *k = strtok_r(p, ".", &save); k && v; k = strtok_r(NULL, ".", &save))
    v = json_is_array(v) ? json_array_get(v, (size_t)atoi(k) - 1) : json_object_get(v, k);
  free(p);
  char *out = NULL;
  if (v && !json_is_null(v)) {
    if (json_is_string(v)) out = rt_xstrdup(json_string_value(v));
    else out = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
  }
  json_decref(j);
  return out;
}

/* The virtual clock stays within the years the date code can show
 * (rt_clock_format: 1..9999); 9999-12-31 23:59:59.999 UTC. */
#define CLOCK_MAX_MS INT64_C(253402300799999)
/* One move is at most 100 years, as a duration in shop.json may be. */
#define CLOCK_STEP_MAX_SEC (INT64_C(36500) * 86400)

/* `clock: +DURATION` or `clock: DATE` -> the target time in unix ms. Every
 * step is checked: a duration is at most CLOCK_STEP_MAX_SEC (100 years),
 * and the sum must stay below CLOCK_MAX_MS, so no value of the line can
 * overflow. False after fail(). */
static bool clock_target(tr *t, const char *rest, int64_t *target) {
  const char *tz = rt_config_str(t->cfg, "timezone", "Europe/Moscow");
  int64_t now = t->e ? rt_clock_now(rt_engine_clock(t->e)) : t->clock_ms;
  if (rest[0] == '+') {
    int64_t sec, ms;
    int rc = rt_parse_duration(rest + 1, &sec);
    if (rc == RT_ELIMIT || (rc == RT_OK && sec > CLOCK_STEP_MAX_SEC)) {
      fail(t, "clock: '%s' is too far (at most %lldd at a time)", rest + 1,
           (long long)(CLOCK_STEP_MAX_SEC / 86400));
      return false;
    }
    if (rc != RT_OK || sec < 0) {
      fail(t, "clock: bad duration '%s' (use +30m, +2h, +14d)", rest + 1);
      return false;
    }
    if (__builtin_mul_overflow(sec, 1000, &ms) || __builtin_add_overflow(now, ms, target) ||
        *target > CLOCK_MAX_MS) {
      fail(t, "clock: +%s goes past the year 9999", rest + 1);
      return false;
    }
    return true;
  }
  if (rt_clock_parse(rest, tz, target) != RT_OK) {
    fail(t, "clock: bad date '%s' (use 2026-03-02 10:00 or +14d)", rest);
    return false;
  }
  if (*target > CLOCK_MAX_MS) {
    fail(t, "clock: '%s' is past the year 9999", rest);
    return false;
  }
  return true;
}

/* Advances the virtual clock to target, firing every timer due on the way
 * in order, each at its own time. */
static void advance(tr *t, int64_t target) {
  for (int guard = 0; guard < 100000 && !t->failed; guard++) {
    if (!rt_engine_clock_step(t->e, target)) return;
    settle(t);
  }
  /* Stopped by the guard or a failure: the clock still ends at target. */
  if (target > rt_clock_now(rt_engine_clock(t->e))) rt_clock_set(rt_engine_clock(t->e), target);
}

/* Copies a regular file (a folder or a device named *.lua is refused, not
 * copied as an empty file). */
static int copy_file(const char *from, const char *to) {
  int in = open(from, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  struct stat st;
  if (in < 0) return RT_ENOENT;
  if (fstat(in, &st) != 0 || !S_ISREG(st.st_mode)) { close(in); return RT_EINVAL; }
  FILE *a = fdopen(in, "rb");
  if (!a) { close(in); return RT_EIO; }
  FILE *b = fopen(to, "wb");
  if (!b) { fclose(a); return RT_EIO; }
  char buf[8192];
  size_t n;
  int rc = RT_OK;
  while (rc == RT_OK && (n = fread(buf, 1, sizeof buf, a)) > 0)
    if (fwrite(buf, 1, n, b) != n) rc = RT_EIO;
  if (ferror(a)) rc = RT_EIO;
  fclose(a);
  if (fclose(b) != 0) rc = RT_EIO;
  return rc;
}

/* Copies *.lua files (and lib/) of from into to. */
static int copy_flows(const char *from, const char *to) {
  struct stat st;
  if (stat(from, &st) != 0) return RT_ENOENT;
  if (S_ISREG(st.st_mode)) {
    const char *base = strrchr(from, '/');
    char *dst = rt_xasprintf("%s/%s", to, base ? base + 1 : from);
    int rc = copy_file(from, dst);
    free(dst);
    return rc;
  }
  DIR *d = opendir(from);
  if (!d) return RT_ENOENT;
  mkdir(to, 0755);
  struct dirent *de;
  int rc = RT_OK;
  while ((de = readdir(d)) && rc == RT_OK) {
    if (de->d_name[0] == '.') continue;
    char *src = rt_xasprintf("%s/%s", from, de->d_name);
    char *dst = rt_xasprintf("%s/%s", to, de->d_name);
    size_t n = strlen(de->d_name);
    if (strcmp(de->d_name, "lib") == 0) rc = copy_flows(src, dst);
    else if (n > 4 && strcmp(de->d_name + n - 4, ".lua") == 0) rc = copy_file(src, dst);
    free(src);
    free(dst);
  }
  closedir(d);
  return rc;
}

static char *resolve(tr *t, const char *rel) {
  if (rel[0] == '/') return rt_xstrdup(rel);
  return rt_xasprintf("%s/%s", t->dir, rel);
}

static void rm_rf(const char *path) {
  DIR *d = opendir(path);
  if (d) {
    struct dirent *de;
    while ((de = readdir(d))) {
      if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
      char *p = rt_xasprintf("%s/%s", path, de->d_name);
      rm_rf(p);
      free(p);
    }
    closedir(d);
    rmdir(path);
  } else {
    unlink(path);
  }
}

static bool config_path_ok(const char *path) {
  if (!*path || *path == '.') return false;
  for (const char *p = path; *p; p++) {
    if (*p == '.' && (p[1] == '.' || p[1] == '\0')) return false;
    if (*p != '.' && *p != '_' && *p != '-' && !(*p >= '0' && *p <= '9') &&
        !(*p >= 'a' && *p <= 'z') && !(*p >= 'A' && *p <= 'Z'))
      return false;
  }
  return true;
}

/* Puts v (taken) at the dotted path under root: missing objects on the way
 * are made, a numeric segment indexes an existing array item (as
 * rt_config_get reads it). Returns false, with the failing prefix in
 * *where (owned), when the path runs into a value that is neither. */
static bool json_set_path(json_t *root, const char *path, json_t *v, char **where) {
  char *p = rt_xstrdup(path), *save = NULL;
  json_t *o = root;
  char *k = strtok_r(p, ".", &save), *next;
  bool ok = true;
  for (; (next = strtok_r(NULL, ".", &save)); k = next) {
    json_t *c = NULL;
    if (json_is_object(o)) {
      c = json_object_get(o, k);
      if (!c) { c = json_object(); json_object_set_new(o, k, c); }
    } else if (json_is_array(o)) {
      char *e;
      unsigned long i = strtoul(k, &e, 10);
      c = *e || !(*k >= '0' && *k <= '9') ? NULL : json_array_get(o, i);
    }
    if (!json_is_object(c) && !json_is_array(c)) {
      *where = rt_xstrndup(path, (size_t)(next - 1 - p));
      ok = false;
      break;
    }
    o = c;
  }
  if (ok && json_is_object(o)) {
    json_object_set_new(o, k, v);
    v = NULL;
  } else if (ok) {
    char *e;
    unsigned long i = strtoul(k, &e, 10);
    if (json_is_array(o) && !*e && *k >= '0' && *k <= '9' && i < json_array_size(o)) {
      json_array_set_new(o, i, v);
      v = NULL;
    } else {
      *where = rt_xstrdup(path);
      ok = false;
    }
  }
  json_decref(v);
  free(p);
  return ok;
}

/* `config: path = JSON`: the value must be JSON (text in quotes), and the
 * changed config must pass the shop schema, as shop.json itself must. A
 * line that did not would silently test a config no shop can have. */
static void config_set(tr *t, char *spec) {
  static const char usage[] = "config: expects path = JSON, e.g. persona.name = \"Oleg\"";
  char *eq = strchr(spec, '=');
  if (!eq) { fail(t, "%s", usage); return; }
  *eq = '\0';
  char *path = trim(spec), *val = trim(eq + 1);
  if (!config_path_ok(path)) {
    fail(t, "config: bad path '%s' (dotted keys: limits.step_timeout_ms); %s", path, usage);
    return;
  }
  json_error_t je;
  json_t *v = json_loads(val, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &je);
  if (!v) {
    fail(t, "config: %s: the value is not JSON (column %d: %s); text needs quotes: \"...\"",
         path, je.column, je.text);
    return;
  }
  if (!t->schema) {
    /* The shop schema with the plugins' sections, as shop.json is checked. */
    char *sp = rt_paths_schema("shop.schema.json"), *serr = NULL;
    if (rt_config_schema(sp, &t->schema, &serr) != RT_OK) {
      fail(t, "config: cannot read the shop schema: %s", serr);
      free(serr);
      free(sp);
      json_decref(v);
      return;
    }
    free(sp);
  }
  bool retries = strcmp(path, "llm.retries") == 0 ||
                 (strcmp(path, "llm") == 0 && json_object_get(v, "retries"));
  json_t *root = rt_config_json(t->cfg);
  char *where = NULL;
  if (!json_set_path(root, path, v, &where)) {
    fail(t, "config: %s: %s is not an object in shop.json", path, where);
    free(where);
    return;
  }
  rt_jschema_err errs[4];
  int n = rt_jschema_validate(t->schema, root, errs, (int)RT_ARRAY_LEN(errs));
  if (n > 0) {
    char msg[1024];
    size_t len = 0;
    for (int i = 0; i < n && len < sizeof msg; i++)
      len += (size_t)snprintf(msg + len, sizeof msg - len, "%s%s: %s", i ? "; " : "",
                              errs[i].path, errs[i].msg);
    fail(t, "config: %s: the result is not a valid shop.json: %s", path, msg);
    return;
  }
  /* A new section gets its inner defaults, as at load. */
  rt_jschema_apply_defaults(t->schema, root);
  if (retries) t->llm_retries_set = true;
}

/* ---- directives ---- */

static void all_done(void *ud, const rt_call_result *r) {
  (void)r;
  *(bool *)ud = true;
}

/* all_llm: the customer's message also goes to the model, as a shop
 * without rules would send it: a photo to photo_triage with the photo, a
 * reply in the retention flow to retention_reply, anything else to
 * parts_list. The answer is not used: the flows answer by their rules. */
static void all_llm_call(tr *t, const char *text, const char *photo) {
  rt_conv_row row;
  bool retention = false;
  if (conv_row(t, &row)) {
    retention = row.flow && strcmp(row.flow, "retention") == 0;
    rt_conv_row_clear(&row);
  }
  json_t *args = json_pack("{s:s, s:s}", "schema",
                           photo ? "photo_triage" : retention ? "retention_reply" : "parts_list",
                           "text", text && *text ? text
                                   : rt_config_str(t->cfg, "llm.texts.photo", ""));
  if (photo) json_object_set_new(args, "images", json_pack("[s]", photo));
  bool done = false;
  rt_call *c = NULL;
  char *err = NULL;
  t->in_all_call = true;
  if (t->llm->call(t->llm, "extract", args, all_done, &done, &c, &err) != RT_OK) {
    fail(t, "all_llm: %s", err ? err : "the call could not start");
    free(err);
    done = true;
  }
  json_decref(args);
  /* a photo is scaled by a convert process first: wait for it too */
  for (int i = 0; !done && i < 100000; i++) uv_run(&t->loop, UV_RUN_ONCE);
  if (!done) {
    t->llm->cancel(t->llm, c);
    fail(t, "all_llm: the LLM call did not finish");
  }
  t->in_all_call = false;
}

/* An event into the current chat (or who's): a customer's text or photo, or
 * a manager's action; say (NULL: none) is what a manager writes to the
 * customer, as a reply from the managers' chat carries it. */
static void do_user(tr *t, const char *head, const char *who, const char *text,
                    const char *kind, const char *say) {
  if (who && !set_chat(t, head, who)) return;
  check_no_pending(t);
  if (t->failed || engine_up(t) != RT_OK) return;
  char ext[64];
  snprintf(ext, sizeof ext, "t%lu", ++t->seq);
  char *extra = NULL, *path = NULL;
  if (strcmp(kind, "photo") == 0 && t->npvs) {
    /* a file the providers can be given, as a channel saves one */
    path = rt_xasprintf("%s/test-photo-%lu.jpg", t->tmp, t->seq);
    FILE *f = fopen(path, "wb");
    if (f) {
      fwrite(TINY_JPEG, 1, sizeof TINY_JPEG, f);
      fclose(f);
    }
    char id[48];
    snprintf(id, sizeof id, "test-photo-%lu", t->seq);
    json_t *x = json_pack("{s:[{s:s, s:s}]}", "photos", "id", id, "path", path);
    extra = json_dumps(x, JSON_COMPACT);
    json_decref(x);
  } else if (strcmp(kind, "photo") == 0) {
    extra = rt_xasprintf("{\"photos\":[{\"id\":\"test-photo-%lu\"}]}", t->seq);
  } else if (say) {
    json_t *x = json_pack("{s:s}", "say", say);
    extra = json_dumps(x, JSON_COMPACT);
    json_decref(x);
  }
  if (t->o->all_llm && t->llm && (strcmp(kind, "photo") == 0 || strcmp(kind, "text") == 0))
    all_llm_call(t, text, path);
  free(path);
  rt_event_in ev = {.channel = t->channel, .ext_id = ext, .chat_id = t->chat,
                    .user_id = t->chat, .kind = kind, .text = text, .extra_json = extra};
  if (t->o->verbose) fprintf(t->o->out, "    %s> %s\n", t->chat, text);
  int rc = rt_engine_receive(t->e, &ev, NULL, NULL);
  free(extra);
  if (rc != RT_OK) {
    fail(t, "the bot refused the message to chat %s:%s (error %d)", t->channel, t->chat, rc);
    return;
  }
  settle(t);
}

static void do_expect_bot(tr *t, const char *channel, const char *chat, bool is_re,
                          const char *pattern, const char *label) {
  if (engine_up(t) != RT_OK) return;
  t->checks++;
  captured *m = next_msg(t, channel, chat);
  if (!m) {
    fail(t, "expected %s %s %s\n  got: no message", label, is_re ? "~" : ":", pattern);
    return;
  }
  m->consumed = true;
  if (!value_matches(t, is_re, pattern, m->text))
    fail(t, "expected %s %s %s\n  got: %s", label, is_re ? "~" : ":", pattern, m->text);
}

/* manager: take / manager: release, or manager: TEXT: the manager writes
 * TEXT to the customer, as a reply from the managers' chat does (the chat
 * becomes the manager's); the line itself checks that TEXT reached the
 * customer, so no bot: line is written for it. */
static void do_manager(tr *t, const char *who, const char *text) {
  if (strcmp(text, "take") == 0 || strcmp(text, "release") == 0) {
    do_user(t, "manager", who, text, "manager", NULL);
    return;
  }
  if (!*text) { fail(t, "manager: take, release or the text the manager writes"); return; }
  do_user(t, "manager", who, "take", "manager", text);
  if (t->failed || engine_up(t) != RT_OK) return;
  t->checks++;
  captured *m = next_msg(t, t->channel, t->chat);
  if (!m) {
    fail(t, "the manager's message did not reach the customer: %s\n  got: no message", text);
    return;
  }
  m->consumed = true;
  if (strcmp(m->text, text) != 0)
    fail(t, "the manager's message did not reach the customer: %s\n  got: %s", text, m->text);
}

/* expect llm calls [=|<|>] N, expect llm tokens [=|<|>] N, expect llm ~ REGEX,
 * expect no llm [~ REGEX], expect ocr calls [=|<|>] N. The calls and tokens
 * are those of the flows (all_llm's own calls are not theirs). */
static void expect_provider(tr *t, const char *w, bool neg, char *rest) {
  bool llm = strcmp(w, "llm") == 0;
  int64_t calls = 0, tokens = 0;
  size_t i;
  json_t *c;
  json_array_foreach(t->llm_calls, i, c) {
    if (json_is_true(json_object_get(c, "all"))) continue;
    calls++;
    tokens += json_integer_value(json_object_get(c, "prompt_tokens")) +
              json_integer_value(json_object_get(c, "completion_tokens"));
  }
  if (!llm) calls = t->ocr_calls;
  if (rest[0] == '~' || (neg && !rest[0])) {
    if (!llm) { fail(t, "expect ocr calls N"); return; }
    const char *re = rest[0] == '~' ? trim(rest + 1) : NULL;
    char *hit = NULL;
    json_array_foreach(t->llm_calls, i, c) {
      if (json_is_true(json_object_get(c, "all"))) continue;
      char *j = json_dumps(c, JSON_COMPACT);
      if (!re || re_matches(t, re, j)) { hit = j; break; }
      free(j);
    }
    if (neg && hit) fail(t, "expected no LLM call%s%s\n  got: %s", re ? " ~ " : "", re ? re : "", hit);
    if (!neg && !hit) fail(t, "expected an LLM call ~ %s\n  got: %lld call(s)%s", re, (long long)calls,
                           calls ? " (-v prints them)" : "");
    if (t->o->verbose && !neg && !hit) {
      json_array_foreach(t->llm_calls, i, c) {
        char *j = json_dumps(c, JSON_COMPACT);
        fprintf(t->o->out, "    llm: %s\n", j);
        free(j);
      }
    }
    free(hit);
    return;
  }
  char *save = NULL;
  char *what = strtok_r(rest, " ", &save), *op = strtok_r(NULL, " ", &save), *num = strtok_r(NULL, " ", &save);
  if (op && !num) { num = op; op = (char *)"="; }
  bool is_calls = what && strcmp(what, "calls") == 0, is_tokens = what && strcmp(what, "tokens") == 0 && llm;
  char *end = NULL;
  long long n = num ? strtoll(num, &end, 10) : -1;
  if (neg || (!is_calls && !is_tokens) || !num || !end || *end || n < 0 ||
      (strcmp(op, "=") != 0 && strcmp(op, "<") != 0 && strcmp(op, ">") != 0)) {
    fail(t, "expect %s calls [=|<|>] N%s", w, llm ? " | expect llm tokens [=|<|>] N | expect llm ~ REGEX" : "");
    return;
  }
  long long got = is_calls ? (long long)calls : (long long)tokens;
  bool ok = op[0] == '=' ? got == n : op[0] == '<' ? got < n : got > n;
  if (!ok) fail(t, "expected %s %s %s %lld\n  got: %lld", w, what, op, n, got);
}

static void do_expect(tr *t, char *s) {
  if (engine_up(t) != RT_OK) return;
  t->checks++;
  char *w = strtok(s, " ");
  char *rest = strtok(NULL, "");
  rest = rest ? trim(rest) : (char *)"";
  bool neg = false;
  if (w && strcmp(w, "no") == 0) {
    neg = true;
    w = strtok(rest, " ");
    rest = strtok(NULL, "");
    rest = rest ? trim(rest) : (char *)"";
  }
  if (!w) { fail(t, "expect what?"); return; }
  rt_conv_row row;
  if (strcmp(w, "slot") == 0) {
    char *name = strtok(rest, " "), *op = strtok(NULL, " "), *val = strtok(NULL, "");
    char *got = name ? slot_text(t, name) : NULL;
    if (neg) {
      if (got) fail(t, "expected no slot %s\n  got: %s", name, got);
    } else if (!name || !op || !val) {
      fail(t, "expect slot NAME = VALUE | expect slot NAME ~ REGEX");
    } else if (!got) {
      fail(t, "expected slot %s %s %s\n  got: no such slot", name, op, val);
    } else if (strcmp(op, "=") == 0 ? strcmp(got, trim(val)) != 0 : !re_matches(t, trim(val), got)) {
      fail(t, "expected slot %s %s %s\n  got: %s", name, op, trim(val), got);
    }
    free(got);
  } else if (strcmp(w, "step") == 0 || strcmp(w, "mode") == 0) {
    if (!conv_row(t, &row)) { fail(t, "no conversation in chat %s", t->chat); return; }
    char *got = strcmp(w, "mode") == 0 ? rt_xstrdup(row.mode ? row.mode : "bot")
                                       : rt_xasprintf("%s.%s", row.flow ? row.flow : "-", row.step ? row.step : "-");
    if (strcmp(got, rest) != 0) fail(t, "expected %s %s\n  got: %s", w, rest, got);
    free(got);
    rt_conv_row_clear(&row);
  } else if (strcmp(w, "lead") == 0) {
    int64_t n = rt_store_leads_count(rt_engine_store(t->e));
    if (neg) {
      if (n > t->leads_seen) fail(t, "expected no new lead\n  got: %lld new", (long long)(n - t->leads_seen));
    } else if (n <= t->leads_seen) {
      fail(t, "expected a lead\n  got: none recorded");
    } else if (rest[0] == '~') {
      char *j = rt_store_lead_last_json(rt_engine_store(t->e));
      if (!re_matches(t, trim(rest + 1), j ? j : "")) fail(t, "expected lead ~ %s\n  got: %s", trim(rest + 1), j ? j : "");
      free(j);
    }
    t->leads_seen = n;
  } else if (strcmp(w, "timer") == 0) {
    char *name = strtok(rest, " "), *at = strtok(NULL, " "), *when = strtok(NULL, "");
    if (!name) { fail(t, "expect timer NAME [at DATE]"); return; }
    if (!conv_row(t, &row)) { fail(t, "no conversation in chat %s", t->chat); return; }
    int64_t due = 0;
    bool found = rt_store_timer_due(rt_engine_store(t->e), row.id, name, &due) == 1;
    const char *tz = rt_config_str(t->cfg, "timezone", "Europe/Moscow");
    if (neg && found) fail(t, "expected no timer %s\n  got: one due %lld", name, (long long)due);
    else if (!neg && !found) fail(t, "expected timer %s\n  got: none", name);
    else if (!neg && at && when) {
      char got[32];
      rt_clock_format(due, tz, got, sizeof got);
      if (strncmp(got, trim(when), strlen(trim(when))) != 0)
        fail(t, "expected timer %s at %s\n  got: at %s", name, trim(when), got);
    }
    rt_conv_row_clear(&row);
  } else if (strcmp(w, "event") == 0) {
    char *kind = strtok(rest, " "), *tilde = strtok(NULL, " "), *re = strtok(NULL, "");
    if (!kind) { fail(t, "expect event KIND [~ REGEX]"); return; }
    event_find f = {.t = t, .re = tilde && re ? trim(re) : NULL};
    rt_store_events_json(rt_engine_store(t->e), kind, event_match, &f);
    if (neg && f.found) fail(t, "expected no event %s\n  got: %s", kind, f.last);
    else if (!neg && !f.found) fail(t, "expected event %s%s%s\n  got: %s", kind, re ? " ~ " : "",
                                    re ? re : "", f.last ? f.last : "none");
    free(f.last);
  } else if (strcmp(w, "sql:") == 0) {
    char *eq = strrchr(rest, '=');
    if (!eq) { fail(t, "expect sql: SELECT ... = VALUE"); return; }
    *eq = '\0';
    char *got = NULL, *err = NULL;
    if (rt_store_query_text(rt_engine_store(t->e), trim(rest), NULL, 1, first_cell, &got, &err) != RT_OK) {
      fail(t, "bad SQL: %s", err);
      free(err);
      free(got);
      return;
    }
    if (strcmp(got ? got : "NULL", trim(eq + 1)) != 0)
      fail(t, "expected %s = %s\n  got: %s", trim(rest), trim(eq + 1), got ? got : "NULL");
    free(got);
  } else if (strcmp(w, "http") == 0) {
    char *m = strtok(rest, " "), *url = strtok(NULL, " "), *tilde = strtok(NULL, " "), *re = strtok(NULL, "");
    bool found = false;
    size_t i;
    json_t *r;
    json_array_foreach(t->requests, i, r) {
      if (!m || !url) break;
      if (strcmp(json_string_value(json_object_get(r, "method")), m) != 0) continue;
      if (!rt_transcript_glob(url, json_string_value(json_object_get(r, "url")))) continue;
      const char *body = json_string_value(json_object_get(r, "body"));
      if (tilde && re && !re_matches(t, trim(re), body ? body : "")) continue;
      found = true;
    }
    if (neg == found) fail(t, "expected %shttp request %s %s", neg ? "no " : "", m ? m : "?", url ? url : "?");
  } else if (strcmp(w, "llm") == 0 || strcmp(w, "ocr") == 0) {
    expect_provider(t, w, neg, rest);
  } else if (strcmp(w, "reload") == 0) {
    /* expect reload error ~ REGEX */
    const char *err = rt_engine_reload_error(t->e);
    char *re = strchr(rest, '~');
    if (!err) fail(t, "expected a reload error\n  got: the last reload succeeded");
    else if (re && !re_matches(t, trim(re + 1), err)) fail(t, "expected reload error ~ %s\n  got: %s", trim(re + 1), err);
  } else {
    fail(t, "unknown expectation '%s'", w);
  }
}

/* A reply body travels as a JSON string: it must be UTF-8 without NULs. */
static bool is_text(const char *s, size_t n) {
  size_t m;
  char *clean = rt_utf8_clean(s, n, &m);
  bool ok = m == n && memcmp(clean, s, n) == 0;
  free(clean);
  return ok;
}

/* Scripted bodies are test fixtures: a few KB of JSON. The cap keeps a wrong
 * path (a log, a disk image) from eating the runner's memory. */
#define BODY_FILE_MAX (8u << 20)

/* Reads a body file: a regular file (checked on the open descriptor, so
 * what is checked is what is read) of at most BODY_FILE_MAX bytes of UTF-8
 * text. Owned text, or NULL after fail() said why. O_NONBLOCK: opening a
 * FIFO must not wait for a writer; it is refused by the S_ISREG check. */
static char *read_body_file(tr *t, const char *shown, const char *path) {
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) != 0) {
    fail(t, "http: cannot read %s: %s", shown, strerror(errno));
    if (fd >= 0) close(fd);
    return NULL;
  }
  if (!S_ISREG(st.st_mode)) {
    fail(t, "http: cannot read %s: not a regular file", shown);
    close(fd);
    return NULL;
  }
  if (st.st_size > (off_t)BODY_FILE_MAX) {
    fail(t, "http: %s is too large (%lld bytes, at most %u)", shown, (long long)st.st_size,
         BODY_FILE_MAX);
    close(fd);
    return NULL;
  }
  size_t want = (size_t)st.st_size, len = 0;
  char *buf = rt_xmalloc(want + 1);
  while (len < want) {
    ssize_t n = read(fd, buf + len, want - len);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      fail(t, "http: cannot read %s: %s", shown, strerror(errno));
      free(buf);
      close(fd);
      return NULL;
    }
    if (n == 0) break;   /* the file shrank while we read it: keep what is there */
    len += (size_t)n;
  }
  close(fd);
  buf[len] = '\0';
  if (!is_text(buf, len)) {
    fail(t, "http: %s is not UTF-8 text", shown);
    free(buf);
    return NULL;
  }
  return buf;
}

static void do_http(tr *t, char *spec) {
  static const char usage[] = "http: METHOD URL -> STATUS BODY | http: METHOD URL -> timeout";
  char *arrow = strstr(spec, "->");
  if (!arrow) { fail(t, "%s", usage); return; }
  *arrow = '\0';
  char *save = NULL;
  char *m = strtok_r(spec, " \t", &save), *url = strtok_r(NULL, " \t", &save);
  char *extra = strtok_r(NULL, " \t", &save);
  char *res = trim(arrow + 2);
  if (!m || !url || extra) { fail(t, "%s", usage); return; }
  scripted_reply s = {NULL, NULL, NULL, 0, false, false};
  if (strcmp(res, "timeout") == 0) {
    s.timeout = true;
    s.body = rt_xstrdup("");
  } else {
    char *body = NULL;
    errno = 0;
    long status = strtol(res, &body, 10);
    if (body == res || errno || status < 100 || status > 599 || (*body && *body != ' ' && *body != '\t')) {
      fail(t, "http: the status must be a number from 100 to 599 or 'timeout' (%s)", usage);
      return;
    }
    s.status = (int)status;
    body = trim(body);
    if (body[0] == '@') {
      if (!body[1]) { fail(t, "http: @ needs a file name"); return; }
      char *path = resolve(t, body + 1);
      s.body = read_body_file(t, body + 1, path);
      free(path);
      if (!s.body) return;
    } else {
      s.body = rt_xstrdup(body);
    }
    if (!is_text(s.body, strlen(s.body))) {
      fail(t, "http: the reply body is not UTF-8 text");
      free(s.body);
      return;
    }
  }
  s.method = rt_xstrdup(m);
  s.url = rt_xstrdup(url);
  t->replies = rt_xrealloc(t->replies, (t->nreplies + 1) * sizeof *t->replies);
  t->replies[t->nreplies++] = s;
}

static const char LLM_USAGE[] =
    "llm: [every] chat|extract [SCHEMA]|* [image] [~ REGEX] -> ANSWER | -> error 500|429|timeout";

/* llm: RULE -> ANSWER */
static void do_llm(tr *t, char *spec) {
  char *arrow = strstr(spec, " -> ");
  if (!arrow) { fail(t, "%s", LLM_USAGE); return; }
  *arrow = '\0';
  char *answer = trim(arrow + 4);
  llm_rule r = {0};
  char *tilde = strstr(spec, "~");
  if (tilde) {
    *tilde = '\0';
    char *re = trim(tilde + 1);
    if (!*re) { fail(t, "llm: ~ needs a regular expression (%s)", LLM_USAGE); return; }
    /* a broken pattern fails here, at its line, not when a call comes */
    re_matches(t, re, "");
    if (t->failed) return;
    r.re = rt_xstrdup(re);
  }
  char *save = NULL;
  for (char *w = strtok_r(spec, " \t", &save); w; w = strtok_r(NULL, " \t", &save)) {
    if (!r.op && strcmp(w, "every") == 0 && !r.every) r.every = true;
    else if (!r.op && (strcmp(w, "chat") == 0 || strcmp(w, "extract") == 0 || strcmp(w, "*") == 0))
      r.op = rt_xstrdup(w);
    else if (r.op && strcmp(w, "image") == 0) r.image = true;
    else if (r.op && strcmp(r.op, "extract") == 0 && !r.schema && !r.image) r.schema = rt_xstrdup(w);
    else {
      fail(t, "llm: cannot read '%s' (%s)", w, LLM_USAGE);
      free(r.op); free(r.schema); free(r.re);
      return;
    }
  }
  if (!r.op) { fail(t, "%s", LLM_USAGE); free(r.re); return; }
  if (strncmp(answer, "error ", 6) == 0) {
    char *code = trim(answer + 6), *end = NULL;
    long st = strtol(code, &end, 10);
    if (strcmp(code, "timeout") == 0) r.status = -1;
    else if (end != code && !*end && st >= 400 && st <= 599) r.status = (int)st;
    else {
      fail(t, "llm: error takes an HTTP status from 400 to 599 or timeout (%s)", LLM_USAGE);
      free(r.op); free(r.schema); free(r.re);
      return;
    }
  } else if (!is_text(answer, strlen(answer))) {
    fail(t, "llm: the answer is not UTF-8 text");
    free(r.op); free(r.schema); free(r.re);
    return;
  }
  r.answer = rt_xstrdup(r.status ? "" : answer);
  t->rules = rt_xrealloc(t->rules, (t->nrules + 1) * sizeof *t->rules);
  t->rules[t->nrules++] = r;
}

/* ocr: TEXT | ocr: error CODE */
static void do_ocr(tr *t, char *spec) {
  ocr_reading r = {0};
  if (strncmp(spec, "error ", 6) == 0) {
    const char *code = trim(spec + 6);
    if (strcmp(code, "timeout") != 0 && strcmp(code, "unavailable") != 0 && strcmp(code, "limit") != 0) {
      fail(t, "ocr: error is timeout, unavailable or limit");
      return;
    }
    r.error = rt_xstrdup(code);
  } else if (!is_text(spec, strlen(spec))) {
    fail(t, "ocr: the text is not UTF-8");
    return;
  }
  /* \n in the text stands for a line break, as tesseract prints lines */
  rt_buf b = RT_BUF_INIT;
  for (const char *p = spec; *p; p++) {
    if (p[0] == '\\' && p[1] == 'n') { rt_buf_addc(&b, '\n'); p++; }
    else rt_buf_addc(&b, *p);
  }
  r.text = rt_buf_take(&b, NULL);
  t->readings = rt_xrealloc(t->readings, (t->nreadings + 1) * sizeof *t->readings);
  t->readings[t->nreadings++] = r;
}

static void do_line(tr *t, char *s) {
  s = trim(s);
  if (!*s || *s == '#') return;
  if (strcmp(s, "no reply") == 0) {
    if (engine_up(t) != RT_OK) return;
    t->checks++;
    check_no_pending(t);
    return;
  }
  if (strncmp(s, "expect ", 7) == 0) { do_expect(t, s + 7); return; }
  if (strcmp(s, "restart:") == 0 || strcmp(s, "restart") == 0) {
    engine_down(t);
    engine_up(t);
    return;
  }
  char *head, *rest;
  char op = split_op(s, &head, &rest);
  if (!op) { fail(t, "cannot read this line (expected 'name: value')"); return; }
  char *who = NULL, *paren = strchr(head, '(');
  if (paren && head[strlen(head) - 1] == ')') {
    *paren = '\0';
    who = paren + 1;
    who[strlen(who) - 1] = '\0';
  }
  if (strcmp(head, "user") == 0 || strcmp(head, "photo") == 0) {
    if (op == '~') { fail(t, "user lines take ':'"); return; }
    do_user(t, head, who, rest, strcmp(head, "photo") == 0 ? "photo" : "text", NULL);
  } else if (strcmp(head, "bot") == 0) {
    if (who && !set_chat(t, "bot", who)) return;
    do_expect_bot(t, t->channel, t->chat, op == '~', rest, "bot");
  } else if (strcmp(head, "managers") == 0) {
    do_expect_bot(t, rt_config_str(t->cfg, "managers.channel", "console"),
                  rt_config_str(t->cfg, "managers.chat_id", "managers"), op == '~', rest, "managers");
  } else if (strcmp(head, "to") == 0 && who) {
    const char *colon = strchr(who, ':');
    if (colon == who || !*(colon ? colon + 1 : who)) {
      fail(t, "to: the chat %s is empty in '%s' (use ID or channel:ID)",
           colon == who ? "channel" : "ID", who);
      return;
    }
    char *ch = colon ? rt_xstrndup(who, (size_t)(colon - who)) : NULL;
    do_expect_bot(t, ch, colon ? colon + 1 : who, op == '~', rest, "to");
    free(ch);
  } else if (strcmp(head, "chat") == 0) {
    set_chat(t, "chat", rest);
  } else if (strcmp(head, "manager") == 0) {
    if (op == '~') { fail(t, "manager lines take ':'"); return; }
    do_manager(t, who, rest);
  } else if (strcmp(head, "clock") == 0) {
    int64_t target;
    if (!clock_target(t, rest, &target)) return;
    if (!t->e) { t->clock_ms = target; return; }
    if (target < rt_clock_now(rt_engine_clock(t->e))) { fail(t, "clock: cannot go back in time"); return; }
    check_no_pending(t);
    advance(t, target);
  } else if (strcmp(head, "config") == 0) {
    if (t->e) { fail(t, "config: lines must come before the first message"); return; }
    config_set(t, rest);
  } else if (strcmp(head, "http") == 0) {
    do_http(t, rest);
  } else if (strcmp(head, "llm") == 0) {
    do_llm(t, rest);
  } else if (strcmp(head, "ocr") == 0) {
    do_ocr(t, rest);
  } else if (strcmp(head, "reload") == 0) {
    if (engine_up(t) != RT_OK) return;
    char *src = resolve(t, rest);
    if (copy_flows(src, t->flows) != RT_OK) { fail(t, "reload: cannot copy %s", src); free(src); return; }
    free(src);
    char *err = NULL;
    rt_engine_reload(t->e, &err);
    free(err);
  } else if (strcmp(head, "import") == 0) {
    if (engine_up(t) != RT_OK) return;
    char *path = resolve(t, rest), *err = NULL;
    rt_import_report rep;
    memset(&rep, 0, sizeof rep);
    int rc = rt_import_csv(rt_engine_store(t->e), path, rt_clock_now(rt_engine_clock(t->e)),
                           rt_config_str(t->cfg, "timezone", "Europe/Moscow"), &rep, &err);
    if (rc != RT_OK) fail(t, "import: %s", err ? err : "failed");
    free(err);
    free(path);
  } else if (strcmp(head, "campaign") == 0 && who) {
    /* One check-in for the imported customer whose phone is the chat's ID
     * (the studio saves its test customers' check-ins so). */
    if (!set_chat(t, "campaign", who)) return;
    check_no_pending(t);
    if (t->failed || engine_up(t) != RT_OK) return;
    char *err = NULL;
    int64_t now = rt_clock_now(rt_engine_clock(t->e));
    if (rt_campaign_checkin(rt_engine_store(t->e), rest, t->chat, t->channel, t->chat, now,
                            &err) != RT_OK)
      fail(t, "campaign(%s:%s): %s", t->channel, t->chat, err ? err : "failed");
    else
      advance(t, now);
    free(err);
  } else if (strcmp(head, "campaign") == 0) {
    if (engine_up(t) != RT_OK) return;
    char *err = NULL;
    rt_campaign_report rep;
    memset(&rep, 0, sizeof rep);
    rt_campaign_opts co;
    int rc = rt_campaign_opts_config(&co, t->cfg, rest, rt_clock_now(rt_engine_clock(t->e)), &err);
    /* Every channel is captured here, so every address can be used. */
    static const char *const captured[] = {"telegram", "whatsapp", "webchat", "test", NULL};
    co.channels = captured;
    if (rc == RT_OK) rc = rt_campaign_run(rt_engine_store(t->e), &co, &rep, &err);
    if (rc != RT_OK) fail(t, "campaign: %s", err ? err : "failed");
    free(err);
  } else {
    fail(t, "unknown line '%s'", head);
  }
}

int rt_transcript_run(const rt_transcript_opts *o, const char *file) {
  tr t;
  memset(&t, 0, sizeof t);
  t.o = o;
  t.file = file;
  FILE *f = fopen(file, "r");
  struct stat st;
  if (!f || fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
    /* A folder opens fine and reads as empty: it would pass with 0 checks. */
    fprintf(o->out, "FAIL %s: cannot open: %s\n", file, f ? "not a regular file" : strerror(errno));
    if (f) fclose(f);
    return RT_ENOENT;
  }
  char tmpl[] = "/tmp/shopbot-test-XXXXXX";
  if (!mkdtemp(tmpl)) {
    fprintf(o->out, "FAIL %s: cannot make a temporary folder: %s\n", file, strerror(errno));
    fclose(f);
    return RT_EIO;
  }
  t.tmp = rt_xstrdup(tmpl);
  t.channel = rt_xstrdup("console");
  t.chat = rt_xstrdup("customer");
  const char *slash = strrchr(file, '/');
  t.dir = slash ? rt_xstrndup(file, (size_t)(slash - file)) : rt_xstrdup(".");
  t.flows = rt_xasprintf("%s/flows", t.tmp);
  t.store_path = rt_xasprintf("%s/shop.db", t.tmp);
  t.requests = json_array();
  t.llm_calls = json_array();
  uv_loop_init(&t.loop);
  char *schema = rt_paths_schema("shop.schema.json"), *err = NULL;
  int rc = rt_config_load(o->shop_dir, schema, &t.cfg, &err);
  free(schema);
  if (rc != RT_OK) {
    fprintf(o->out, "FAIL %s: %s\n", file, err);
    free(err);
  } else {
    char *src = rt_paths_flows(rt_config_dir(t.cfg), rt_config_str(t.cfg, "flows.dir", "flows"));
    if (copy_flows(src, t.flows) != RT_OK) {
      fprintf(o->out, "FAIL %s: cannot copy flows from %s\n", file, src);
      rc = RT_ENOENT;
    }
    free(src);
    if (rt_clock_parse("2026-03-02 10:00", rt_config_str(t.cfg, "timezone", "Europe/Moscow"),
                       &t.clock_ms) != RT_OK)
      t.clock_ms = 1772434800000LL;
  }
  if (rc == RT_OK) {
    char *line = NULL;
    size_t cap = 0;
    /* A file that scripts the LLM or OCR (or expects them) is lent them
     * from its first message on; any other runs as the shop without them. */
    while (getline(&line, &cap, f) > 0) {
      char *l = trim(line);
      if (strncmp(l, "llm:", 4) == 0 || strncmp(l, "expect llm", 10) == 0 ||
          strncmp(l, "expect no llm", 13) == 0)
        t.want_llm = true;
      if (strncmp(l, "ocr:", 4) == 0 || strncmp(l, "expect ocr", 10) == 0) t.want_ocr = true;
    }
    if (o->all_llm) t.want_llm = true;
    rewind(f);
    while (!t.failed && getline(&line, &cap, f) > 0) {
      t.line++;
      do_line(&t, line);
    }
    free(line);
    t.line++;
    if (!t.failed && t.e) {
      settle(&t);
      check_no_pending(&t);
    }
    if (o->stats && t.e) {
      char *got = NULL, *err = NULL;
      t.st.leads = rt_store_leads_count(rt_engine_store(t.e));
      if (rt_store_query_text(rt_engine_store(t.e), "SELECT count(*) FROM events WHERE kind = 'contacted'",
                              NULL, 1, first_cell, &got, &err) == RT_OK && got)
        t.st.contacted = strtoll(got, NULL, 10);
      free(got);
      free(err);
    }
    if (!t.failed) fprintf(o->out, "PASS %s (%d checks)\n", file, t.checks);
  }
  fclose(f);
  engine_down(&t);
  if (t.host) {
    /* it closes its HTTP client, the flows' one too */
    bool closed = false;
    rt_plugin_host_close(t.host, engine_closed, &closed);
    while (!closed) uv_run(&t.loop, UV_RUN_ONCE);
    t.http = NULL;
  }
  if (t.http) rt_http_close(t.http, NULL, NULL);
  uv_run(&t.loop, UV_RUN_DEFAULT);
  uv_loop_close(&t.loop);
  rt_config_free(t.cfg);
  for (size_t i = 0; i < t.nmsgs; i++) {
    free(t.msgs[i].channel); free(t.msgs[i].chat); free(t.msgs[i].text);
  }
  free(t.msgs);
  for (size_t i = 0; i < t.nreplies; i++) {
    free(t.replies[i].method); free(t.replies[i].url); free(t.replies[i].body);
  }
  free(t.replies);
  for (size_t i = 0; i < t.nrules; i++) {
    free(t.rules[i].op); free(t.rules[i].schema); free(t.rules[i].re); free(t.rules[i].answer);
  }
  free(t.rules);
  for (size_t i = 0; i < t.nreadings; i++) { free(t.readings[i].text); free(t.readings[i].error); }
  free(t.readings);
  free(t.llm_url);
  free(t.files);
  json_decref(t.llm_calls);
  if (o->stats) *o->stats = t.st;
  json_decref(t.requests);
  rm_rf(t.tmp);
  json_decref(t.schema);
  free(t.channel); free(t.chat);
  free(t.tmp); free(t.flows); free(t.store_path); free(t.dir);
  if (rc != RT_OK) return rc;
  return t.failed ? 1 : 0;
}

/* ---- a shop's transcripts in a child process ---- */

struct rt_transcript_check {
  uv_process_t proc;
  uv_pipe_t out;               /* the child's stdout: its PASS/FAIL report */
  uv_timer_t timer;            /* the time limit */
  int open;                    /* handles not closed yet */
  bool exited, eof, timed_out, cancelled, finished;
  int64_t exit_status;
  int term_signal;
  int64_t timeout_ms;
  rt_transcript_check_done done;
  void *ud;
  void (*closed)(void *);
  void *closed_ud;
  char rbuf[4096];
  char line[1024];             /* the report line being read; longer ones are cut */
  size_t line_len;
  char *first_fail;            /* the first "FAIL ..." line */
  long passed, failed;
  bool summary;                /* "N passed, N failed" was seen */
};

static void check_handle_closed(uv_handle_t *h) {
  rt_transcript_check *c = h->data;
  if (--c->open > 0) return;
  void (*closed)(void *) = c->closed;
  void *ud = c->closed_ud;
  free(c->first_fail);
  free(c);
  if (closed) closed(ud);
}

static void check_close(rt_transcript_check *c) {
  uv_handle_t *hs[] = {(uv_handle_t *)&c->proc, (uv_handle_t *)&c->out, (uv_handle_t *)&c->timer};
  for (size_t i = 0; i < RT_ARRAY_LEN(hs); i++)
    if (!uv_is_closing(hs[i])) uv_close(hs[i], check_handle_closed);
}

/* "N passed, N failed", nothing else (no sscanf: %d on a huge number is
 * undefined behaviour). */
static bool summary_line(const char *s, long *passed, long *failed) {
  char *e;
  if (!(*s >= '0' && *s <= '9')) return false;
  *passed = strtol(s, &e, 10);
  if (strncmp(e, " passed, ", 9) != 0 || !(e[9] >= '0' && e[9] <= '9')) return false;
  *failed = strtol(e + 9, &e, 10);
  return strcmp(e, " failed") == 0;
}

static void check_line(rt_transcript_check *c) {
  c->line[c->line_len] = '\0';
  c->line_len = 0;
  long p, f;
  if (!c->first_fail && strncmp(c->line, "FAIL ", 5) == 0) {
    c->first_fail = rt_xstrdup(c->line);
  } else if (summary_line(c->line, &p, &f)) {
    c->summary = true;
    c->passed = p;
    c->failed = f;
  }
}

static void check_finish(rt_transcript_check *c) {
  if (c->finished || !c->exited || !(c->eof || c->timed_out || c->cancelled)) return;
  c->finished = true;
  uv_timer_stop(&c->timer);
  if (!c->cancelled) {
    if (c->line_len) check_line(c);
    char *msg = NULL;
    int rc;
    const char *ff = c->first_fail ? c->first_fail : "";
    if (c->timed_out) {
      rc = RT_ETIMEOUT;
      bool whole = c->timeout_ms % 1000 == 0;
      msg = rt_xasprintf("transcript tests on the new flows did not finish within %lld %s "
                         "(tests.reload_timeout_s); the test process was stopped%s%s",
                         (long long)(whole ? c->timeout_ms / 1000 : c->timeout_ms),
                         whole ? "s" : "ms", *ff ? "; first failure: " : "", ff);
    } else if (c->term_signal) {
      rc = RT_EIO;
      msg = rt_xasprintf("transcript tests on the new flows could not run: the test process "
                         "died of signal %d", c->term_signal);
    } else if (c->exit_status == 0) {
      rc = RT_OK;
    } else if (c->summary && c->failed > 0) {
      rc = RT_EINVAL;
      msg = rt_xasprintf("%ld of %ld transcript tests fail on the new flows: %s", c->failed,
                         c->passed + c->failed, ff);
    } else {
      rc = RT_EIO;
      msg = rt_xasprintf("transcript tests on the new flows could not run (exit status %lld)%s%s",
                         (long long)c->exit_status, *ff ? ": " : "", ff);
    }
    c->done(c->ud, rc, msg);
    free(msg);
  }
  check_close(c);
}

static void check_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b) {
  (void)suggested;
  rt_transcript_check *c = h->data;
  *b = uv_buf_init(c->rbuf, sizeof c->rbuf);
}

static void check_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
  rt_transcript_check *c = s->data;
  for (ssize_t i = 0; i < n; i++) {
    if (b->base[i] == '\n') check_line(c);
    else if (c->line_len < sizeof c->line - 1) c->line[c->line_len++] = b->base[i];
  }
  if (n < 0) {   /* UV_EOF, or the pipe broke: the report is complete either way */
    uv_read_stop(s);
    c->eof = true;
    check_finish(c);
  }
}

static void check_exit(uv_process_t *p, int64_t status, int sig) {
  rt_transcript_check *c = p->data;
  c->exited = true;
  c->exit_status = status;
  c->term_signal = sig;
  check_finish(c);
}

static void check_timeout(uv_timer_t *t) {
  rt_transcript_check *c = t->data;
  c->timed_out = true;
  /* Killed, the child is reaped by check_exit; if it had exited already,
   * something else holds its stdout open, and that is not waited for. */
  if (!c->exited) uv_process_kill(&c->proc, SIGKILL);
  check_finish(c);
}

int rt_transcript_check_start(uv_loop_t *loop, const char *shop_dir, const char *tests_dir,
                              int64_t timeout_ms, rt_transcript_check_done done, void *ud,
                              rt_transcript_check **out, char **err) {
  *out = NULL;
  char exe[4096];
  size_t len = sizeof exe;
  int r = uv_exepath(exe, &len);
  if (r != 0) {
    *err = rt_xasprintf("transcript tests on the new flows could not run: cannot find the "
                        "running program: %s", uv_strerror(r));
    return RT_EIO;
  }
  rt_transcript_check *c = rt_xcalloc(1, sizeof *c);
  c->done = done;
  c->ud = ud;
  c->timeout_ms = timeout_ms > 0 ? timeout_ms : 1;
  uv_pipe_init(loop, &c->out, 0);
  uv_timer_init(loop, &c->timer);
  c->out.data = c->timer.data = c->proc.data = c;
  c->open = 3;
  char *args[] = {exe, (char *)"test", (char *)shop_dir, (char *)tests_dir, NULL};
  uv_stdio_container_t io[3];
  io[0].flags = UV_IGNORE;
  io[1].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
  io[1].data.stream = (uv_stream_t *)&c->out;
  io[2].flags = UV_INHERIT_FD;   /* the child's own errors land in our log stream */
  io[2].data.fd = 2;
  uv_process_options_t po;
  memset(&po, 0, sizeof po);
  po.exit_cb = check_exit;
  po.file = exe;
  po.args = args;
  po.stdio = io;
  po.stdio_count = 3;
  r = uv_spawn(loop, &c->proc, &po);
  c->proc.data = c;
  if (r != 0) {
    *err = rt_xasprintf("transcript tests on the new flows could not run: cannot start %s: %s",
                        exe, uv_strerror(r));
    /* The handles were initialised and must be closed; nothing is called. */
    c->cancelled = c->finished = true;
    check_close(c);
    return RT_EIO;
  }
  uv_read_start((uv_stream_t *)&c->out, check_alloc, check_read);
  uv_timer_start(&c->timer, check_timeout, (uint64_t)c->timeout_ms, 0);
  *out = c;
  return RT_OK;
}

void rt_transcript_check_cancel(rt_transcript_check *c, void (*closed)(void *), void *ud) {
  c->cancelled = true;
  c->closed = closed;
  c->closed_ud = ud;
  uv_read_stop((uv_stream_t *)&c->out);
  uv_timer_stop(&c->timer);
  if (!c->exited) uv_process_kill(&c->proc, SIGKILL);
  /* Closed only once the child is reaped (check_exit): a process handle
   * closed before that leaves a zombie. */
  check_finish(c);
}
