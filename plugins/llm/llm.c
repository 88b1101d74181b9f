/* llm.c -- see llm.h and README.md.
 *
 * A call is a small state machine on the loop:
 *   images (each photo scaled down by a `convert` process, base64'd) ->
 *   attempt (POST {base_url}/chat/completions on env->http) ->
 *   answer: done | repair (show the model its error, once) |
 *           retry (backoff or Retry-After, inside the call's deadline) |
 *           fail.
 * The circuit breaker counts failed attempts of every call: after
 * breaker_failures in a row it opens for breaker_open_ms, calls fail at
 * once ("unavailable"), then one probe call decides. Health follows it.
 * What every attempt cost is summed into the call's usage, a failed call's
 * too: a dialog's cost is what was paid, not what worked. */
#include "llm.h"
#include "plugins/llm_schema.h" /* generated from schema.json (CMakeLists.txt) */
#include "buf.h"
#include "http_client.h"
#include "jschema.h"
#include "log.h"
#include "paths.h"
#include "re.h"
#include "rt.h"
#include "subproc.h"
#include "text.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

enum { OP_CHAT, OP_EXTRACT };
#define MAX_IMAGES 4
#define MAX_HISTORY 20

typedef struct llm llm;

/* /metrics: the error codes a call ends with (README.md) and the buckets,
 * in seconds, of a call's whole time as the customer waits for it. */
static const char *const ERROR_CODES[] = {"timeout", "unavailable", "limit", "bad_request",
                                          "invalid", "refused", NULL};
static const double LATENCY_BUCKETS[] = {0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 45};
#define NBUCKETS (sizeof LATENCY_BUCKETS / sizeof LATENCY_BUCKETS[0])

typedef struct {
  char *name;
  json_t *schema;     /* loaded from schema/llm/<name>.json */
  struct timespec mtime;
} schema_ent;

struct rt_call {
  llm *l;
  rt_call *prev, *next;
  int op;
  json_t *messages;         /* owned: what is sent */
  json_t *schema;           /* extract: a reference */
  char *schema_name;
  json_t *facts;            /* chat: the facts the flow supplied */
  json_t *images;           /* paths still to scale */
  size_t img_i;
  json_t *parts;            /* the user message's content parts, images added */
  rt_subproc *sp;
  rt_http_req *req;
  uv_timer_t *timer;
  int attempts, repairs;
  bool json_object, probe;
  uint64_t deadline;        /* uv_now */
  uint64_t sent_ns, called_ns;
  double http_ms, wait_ms;  /* the server's time and backoff: not ours */
  rt_call_done done;
  void *ud;
  rt_call_usage usage;
  int64_t cached;
  char model[64];
  const char *fail_code;    /* deferred failure (breaker, limit) */
  char fail_detail[320];
};

struct llm {
  rt_provider p;
  const rt_plugin_env *env;
  char *url, *auth, *model, *token_param, *prompt_path, *image_detail;
  long timeout_ms, deadline_ms, max_tokens, retries, backoff_ms, image_px;
  double temperature, price_prompt, price_completion, price_cached;
  size_t max_in_flight;
  long breaker_failures, breaker_open_ms;
  bool no_json_schema;      /* the server refused json_schema once */
  char *convert;
  /* persona prompt, reloaded when the file changes */
  char *prompt;
  struct timespec prompt_mtime;
  schema_ent *schemas;
  size_t nschemas;
  /* the breaker */
  long fails;
  uint64_t open_until;
  bool open, probing;
  char last_error[256];
  /* the guard: NULL when the shop turned one off (llm.guard) */
  pcre2_code *re_price, *re_stock, *re_delivery, *re_number;
  json_t *texts;            /* llm.texts: the words the bot itself writes to the model */
  pcre2_match_data *md;
  rt_call *head;
  rt_llm_stats st;
  /* the client's own time per call (wall minus the server's and the
   * backoff), the last OVERHEAD_N samples */
  double *overhead;
  size_t noverhead;
  /* /metrics */
  uint64_t errors[sizeof ERROR_CODES / sizeof ERROR_CODES[0]];   /* last: other */
  uint64_t latency[NBUCKETS + 1];   /* per bucket, not cumulative; last: +Inf */
  double latency_sum;
};

#define OVERHEAD_N 8192


static uint64_t now_ms(llm *l) { return uv_now(l->env->loop); }

/* ---- small helpers ------------------------------------------------------ */

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static void base64(rt_buf *b, const unsigned char *s, size_t n) {
  char *o = rt_buf_reserve(b, (n + 2) / 3 * 4 + 1);
  size_t k = 0;
  for (size_t i = 0; i < n; i += 3) {
    unsigned v = (unsigned)s[i] << 16 | (i + 1 < n ? (unsigned)s[i + 1] << 8 : 0) |
                 (i + 2 < n ? s[i + 2] : 0);
    o[k++] = B64[v >> 18 & 63];
    o[k++] = B64[v >> 12 & 63];
    o[k++] = i + 1 < n ? B64[v >> 6 & 63] : '=';
    o[k++] = i + 2 < n ? B64[v & 63] : '=';
  }
  rt_buf_commit(b, k);
}


/* A file's text when it changed since *mtime (NULL when it did not, or is
 * not there: keep what was loaded). */
static char *reload(const char *path, struct timespec *mtime) {
  struct stat st;
  if (!path || stat(path, &st) != 0) return NULL;
  if (st.st_mtim.tv_sec == mtime->tv_sec && st.st_mtim.tv_nsec == mtime->tv_nsec) return NULL;
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  rt_buf b = RT_BUF_INIT;
  char chunk[8192];
  size_t n;
  while ((n = fread(chunk, 1, sizeof chunk, f)) > 0 && b.len < ((size_t)1 << 20)) rt_buf_add(&b, chunk, n);
  fclose(f);
  *mtime = st.st_mtim;
  return rt_buf_take(&b, NULL);
}

/* Never let the key reach a log or a flow: the server's own message may
 * quote it ("Incorrect API key provided: sk-abc***xyz"). */
static void scrub(llm *l, char *s) {
  char *p = strstr(s, "API key provided");
  if (p) {
    p += strlen("API key provided");
    snprintf(p, strlen(p) + 1, "%s", strlen(p) > 0 ? " (hidden)." : "");
  }
  const char *key = l->auth ? l->auth + strlen("Authorization: Bearer ") : NULL;
  if (key && strlen(key) >= 4) {
    char *k;
    while ((k = strstr(s, key)) != NULL) memset(k, '*', strlen(key));
  }
}

/* ---- schemas and the persona prompt ------------------------------------ */

static json_t *get_schema(llm *l, const char *name, char **err) {
  for (const char *s = name; *s; s++)
    if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_')) {
      *err = rt_xasprintf("llm.extract: schema names are a-z, 0-9 and _ (got \"%.40s\")", name);
      return NULL;
    }
  if (!name[0] || strlen(name) > 64) {
    *err = rt_xstrdup("llm.extract: a schema name is needed");
    return NULL;
  }
  schema_ent *e = NULL;
  for (size_t i = 0; i < l->nschemas; i++)
    if (strcmp(l->schemas[i].name, name) == 0) e = &l->schemas[i];
  char rel[128];
  snprintf(rel, sizeof rel, "llm/%s.json", name);
  char *path = rt_paths_schema(rel);
  if (!e) {
    struct stat st;
    if (stat(path, &st) != 0) {
      *err = rt_xasprintf("llm.extract: no schema %s", path);
      free(path);
      return NULL;
    }
    l->schemas = rt_xrealloc(l->schemas, (l->nschemas + 1) * sizeof *l->schemas);
    e = &l->schemas[l->nschemas++];
    memset(e, 0, sizeof *e);
    e->name = rt_xstrdup(name);
  }
  char *text = reload(path, &e->mtime);
  if (text) {
    json_error_t je;
    json_t *s = json_loads(text, 0, &je);
    free(text);
    if (!json_is_object(s)) {
      json_decref(s);
      if (!e->schema) {
        *err = rt_xasprintf("llm.extract: %s is not a JSON Schema (line %d: %s)", path, je.line, je.text);
        free(path);
        return NULL;
      }
      rt_log(RT_LOG_WARN, "llm-schema-broken", "path=%s keeping=previous", path);
    } else {
      json_decref(e->schema);
      e->schema = s;
    }
  }
  free(path);
  return e->schema;
}

/* prompt.md is the marketer's: notes to the reader between <!-- and -->
 * (what each {name} becomes, what not to remove) are not the model's to
 * read, nor to be paid for on every call. Cut in place, with the blank
 * lines a cut leaves at the start; an unclosed note runs to the end. */
static void strip_notes(char *s) {
  char *w = s;
  const char *r = s;
  while (*r) {
    if (strncmp(r, "<!--", 4) == 0) {
      const char *e = strstr(r + 4, "-->");
      r = e ? e + 3 : r + strlen(r);
      /* the note's own line end goes with it */
      if (*r == '\n') r++;
      continue;
    }
    *w++ = *r++;
  }
  *w = '\0';
  size_t lead = strspn(s, "\n");
  if (lead) memmove(s, s + lead, strlen(s + lead) + 1);
}

/* The persona prompt with {name}s filled from vars (the flow passes the
 * shop's facts); unknown names stay as they are. */
static char *persona(llm *l, const json_t *vars) {
  char *text = reload(l->prompt_path, &l->prompt_mtime);
  if (text) {
    strip_notes(text);
    free(l->prompt);
    l->prompt = text;
  }
  const char *p = l->prompt ? l->prompt : "";
  rt_buf b = RT_BUF_INIT;
  while (*p) {
    const char *o = strchr(p, '{');
    if (!o) { rt_buf_adds(&b, p); break; }
    rt_buf_add(&b, p, (size_t)(o - p));
    const char *c = strchr(o, '}');
    char key[64];
    size_t kl = c ? (size_t)(c - o - 1) : 0;
    if (c && kl > 0 && kl < sizeof key) {
      memcpy(key, o + 1, kl);
      key[kl] = '\0';
      const json_t *v = json_object_get(vars, key);
      if (json_is_string(v)) { rt_buf_adds(&b, json_string_value(v)); p = c + 1; continue; }
      if (json_is_number(v)) { rt_buf_printf(&b, "%g", json_number_value(v)); p = c + 1; continue; }
    }
    rt_buf_addc(&b, '{');
    p = o + 1;
  }
  return rt_buf_take(&b, NULL);
}

/* ---- the guard ------------------------------------------------------------ */

static pcre2_code *re(const char *pat) {
  pcre2_code *c = rt_re_compile(pat, PCRE2_ZERO_TERMINATED, PCRE2_CASELESS, NULL);
  if (!c) abort(); /* the patterns are ours */
  return c;
}

/* A guard pattern of the shop (llm.guard.<key>); NULL for "" (that check
 * is off), or false with the reason. shopbot check has compiled it the
 * same way (format "regex" in schema.json). */
static bool re_conf(const json_t *conf, const char *key, pcre2_code **out, char **err) {
  const char *pat = json_string_value(json_object_get(json_object_get(conf, "guard"), key));
  *out = NULL;
  if (!pat || !*pat) return true;
  char *why = NULL;
  *out = rt_re_compile(pat, PCRE2_ZERO_TERMINATED, PCRE2_CASELESS, &why);
  if (*out) return true;
  *err = rt_xasprintf("llm.guard.%s: not a valid regular expression: %s", key, why);
  free(why);
  return false;
}

/* One of llm.texts ("" when the section lacks it). */
static const char *text_of(llm *l, const char *key) {
  const char *t = json_string_value(json_object_get(l->texts, key));
  return t ? t : "";
}

/* One of llm.texts with its {names} filled, appended to b. */
static void add_text(llm *l, rt_buf *b, const char *key, const char *const *names,
                     const char *const *values, size_t n) {
  rt_buf_fill(b, text_of(l, key), names, values, n);
}

static bool match(llm *l, pcre2_code *c, const char *s, size_t off, size_t *b, size_t *e) {
  if (!c) return false;
  int rc = pcre2_match(c, (PCRE2_SPTR)s, strlen(s), off, 0, l->md, NULL);
  if (rc < 0) return false;
  PCRE2_SIZE *ov = pcre2_get_ovector_pointer(l->md);
  *b = ov[0];
  *e = ov[1];
  return true;
}

/* Every number in s[b..e) must be in the fact's text. */
static bool numbers_in(llm *l, const char *s, size_t b, size_t e, const char *fact) {
  char *part = rt_xstrndup(s + b, e - b);
  size_t nb, ne, off = 0;
  bool ok = true;
  char *f = rt_xstrdup(fact);
  /* "1 200" and "1200" are the same price */
  size_t w = 0;
  for (size_t i = 0; f[i]; i++) if (f[i] != ' ') f[w++] = f[i];
  f[w] = '\0';
  while (ok && match(l, l->re_number, part, off, &nb, &ne)) {
    char num[64];
    size_t k = 0;
    for (size_t i = nb; i < ne && k + 1 < sizeof num; i++) if (part[i] != ' ') num[k++] = part[i];
    num[k] = '\0';
    if (!strstr(f, num)) ok = false;
    off = ne;
  }
  free(f);
  free(part);
  return ok;
}

const char *rt_llm_claim(rt_provider *p, const char *text, const json_t *facts) {
  llm *l = p->impl;
  char *n = rt_text_norm(text ? text : "");
  const char *claim = NULL;
  size_t b, e;
  const char *price = json_string_value(json_object_get(facts, "price"));
  if (match(l, l->re_price, n, 0, &b, &e) && !(price && numbers_in(l, n, b, e, price)))
    claim = "price";
  else if (match(l, l->re_stock, n, 0, &b, &e) && !json_object_get(facts, "stock"))
    claim = "stock";
  else if (match(l, l->re_delivery, n, 0, &b, &e) && !json_object_get(facts, "delivery"))
    claim = "delivery";
  free(n);
  return claim;
}

/* ---- the breaker ------------------------------------------------------------ */

static void health(llm *l) {
  char problem[400];
  if (l->open) {
    snprintf(problem, sizeof problem, "the LLM server fails (%s): calls stopped for %ld s, "
             "the flows answer by rules", l->last_error, l->breaker_open_ms / 1000);
    l->env->set_health(l->env->host, l->env->name, problem);
  } else {
    l->env->set_health(l->env->host, l->env->name, NULL);
  }
}

static void attempt_failed(llm *l, const char *detail) {
  snprintf(l->last_error, sizeof l->last_error, "%s", detail);
  l->fails++;
  if ((!l->open && l->fails >= l->breaker_failures) || l->probing) {
    bool was = l->open;
    l->open = true;
    l->probing = false;
    l->open_until = now_ms(l) + (uint64_t)l->breaker_open_ms;
    l->st.breaker_open = true;
    if (!was) rt_log(RT_LOG_WARN, "llm-breaker-open", "fails=%ld error=\"%s\"", l->fails, detail);
    health(l);
  }
}

static void attempt_ok(llm *l) {
  l->fails = 0;
  if (l->open || l->probing) {
    l->open = l->probing = false;
    l->st.breaker_open = false;
    rt_log(RT_LOG_INFO, "llm-breaker-closed", NULL);
    health(l);
  }
}

/* Whether a new call may go out now; marks the probe of a half-open breaker. */
static bool breaker_allows(llm *l, rt_call *c) {
  if (!l->open) return true;
  if (now_ms(l) < l->open_until || l->probing) return false;
  l->probing = true;
  c->probe = true;
  return true;
}

/* ---- finishing ------------------------------------------------------------- */

static void timer_free(uv_handle_t *h) { free(h); }

static void call_free(rt_call *c) {
  llm *l = c->l;
  if (c->prev) c->prev->next = c->next;
  else l->head = c->next;
  if (c->next) c->next->prev = c->prev;
  l->st.in_flight--;
  if (c->req) rt_http_cancel(c->req);
  if (c->sp) rt_subproc_cancel(c->sp);
  if (c->probe && l->probing) l->probing = false;
  uv_close((uv_handle_t *)c->timer, timer_free);
  json_decref(c->messages);
  json_decref(c->schema);
  json_decref(c->facts);
  json_decref(c->images);
  json_decref(c->parts);
  free(c->schema_name);
  free(c);
}

static void finish(rt_call *c, const json_t *value, const char *code, const char *detail) {
  llm *l = c->l;
  if (c->http_ms > 0 && json_array_size(c->images) == 0) {
    double own = (double)(uv_hrtime() - c->called_ns) / 1e6 - c->http_ms - c->wait_ms;
    if (!l->overhead) l->overhead = rt_xcalloc(OVERHEAD_N, sizeof *l->overhead);
    l->overhead[l->noverhead++ % OVERHEAD_N] = own < 0 ? 0 : own;
  }
  /* detail and the model may live in the call, which is freed before done */
  char why[512], model[64];
  snprintf(why, sizeof why, "%s", detail ? detail : "");
  snprintf(model, sizeof model, "%s", c->model);
  rt_call_result r;
  memset(&r, 0, sizeof r);
  r.status = code ? RT_EIO : RT_OK;
  r.value = value;
  r.error = code;
  r.detail = detail ? why : NULL;
  r.usage = c->usage;
  r.usage.model = model[0] ? model : NULL;
  double secs = (double)(uv_hrtime() - c->called_ns) / 1e9;
  size_t bi = 0;
  while (bi < NBUCKETS && secs > LATENCY_BUCKETS[bi]) bi++;
  l->latency[bi]++;
  l->latency_sum += secs;
  if (code) {
    size_t ei = 0;
    while (ERROR_CODES[ei] && strcmp(ERROR_CODES[ei], code) != 0) ei++;
    l->errors[ei]++;
    l->st.failed++;
    rt_log(RT_LOG_WARN, "llm-call-failed", "error=%s attempts=%d detail=\"%.160s\"", code,
           c->attempts, why);
  } else {
    l->st.ok++;
  }
  rt_call_done done = c->done;
  void *ud = c->ud;
  call_free(c);
  done(ud, &r);
}

/* ---- the request --------------------------------------------------------------- */

static void send_attempt(rt_call *c);

static void on_timer(uv_timer_t *t) {
  rt_call *c = t->data;
  if (c->fail_code) {
    finish(c, NULL, c->fail_code, c->fail_detail);
    return;
  }
  send_attempt(c);
}

static void fail_later(rt_call *c, const char *code, const char *fmt, const char *arg) {
  c->fail_code = code;
  snprintf(c->fail_detail, sizeof c->fail_detail, fmt, arg);
  uv_timer_start(c->timer, on_timer, 0, 0);
}

static long remaining(rt_call *c) {
  uint64_t now = now_ms(c->l);
  return now >= c->deadline ? 0 : (long)(c->deadline - now);
}

/* A transient failure: another attempt after a backoff with jitter (or the
 * server's Retry-After), if the deadline and the breaker allow. */
static void retry_or_fail(rt_call *c, const char *code, const char *detail, long after_ms) {
  llm *l = c->l;
  attempt_failed(l, detail);
  if (l->open && !c->probe) {
    finish(c, NULL, "unavailable", detail);
    return;
  }
  if (c->probe) {
    finish(c, NULL, code, detail);
    return;
  }
  if (c->attempts > l->retries) {
    finish(c, NULL, code, detail);
    return;
  }
  long wait = after_ms;
  if (wait < 0) {
    double base = (double)l->backoff_ms * pow(2.0, c->attempts - 1);
    wait = (long)(base * (0.5 + (double)(rand() % 1000) / 1000.0));
  }
  if (wait + 50 >= remaining(c)) {
    finish(c, NULL, strcmp(code, "limit") == 0 ? "limit" : code, detail);
    return;
  }
  l->st.retries++;
  c->wait_ms += (double)wait;
  uv_timer_start(c->timer, on_timer, (uint64_t)wait, 0);
}

/* The answer's text as JSON: fences (```json ... ```) a model may add are
 * dropped. */
static json_t *parse_content(const char *s, char *why, size_t n) {
  while (*s == ' ' || *s == '\n' || *s == '\r' || *s == '\t') s++;
  size_t len = strlen(s);
  if (strncmp(s, "```", 3) == 0) {
    const char *nl = strchr(s, '\n');
    const char *end = len >= 3 ? s + len : s;
    while (end > s && (end[-1] == '\n' || end[-1] == ' ' || end[-1] == '\r')) end--;
    if (nl && end - nl >= 3 && strncmp(end - 3, "```", 3) == 0) {
      s = nl + 1;
      len = (size_t)(end - 3 - s);
    }
  }
  json_error_t je;
  json_t *j = json_loadb(s, len, 0, &je);
  if (!j) snprintf(why, n, "not JSON: %s (at character %d)", je.text, je.position);
  else if (!json_is_object(j)) {
    snprintf(why, n, "not a JSON object");
    json_decref(j);
    j = NULL;
  }
  return j;
}

/* One more turn that shows the model what was wrong with its answer. */
static bool repair(rt_call *c, const char *content, const char *problem) {
  llm *l = c->l;
  if (c->repairs >= 1 || remaining(c) < 200) return false;
  c->repairs++;
  l->st.repairs++;
  json_array_append_new(c->messages, json_pack("{s:s,s:s}", "role", "assistant", "content", content));
  static const char *const names[] = {"problem", "schema"};
  const char *values[] = {problem, c->schema_name};
  rt_buf msg = RT_BUF_INIT;
  add_text(l, &msg, c->op == OP_EXTRACT ? "repair_extract" : "repair_chat", names, values, 2);
  json_array_append_new(c->messages, json_pack("{s:s,s:s}", "role", "user", "content",
                                               rt_buf_str(&msg)));
  rt_buf_free(&msg);
  send_attempt(c);
  return true;
}

static void add_usage(rt_call *c, const json_t *resp) {
  llm *l = c->l;
  const json_t *u = json_object_get(resp, "usage");
  if (!json_is_object(u)) return;
  int64_t pt = json_integer_value(json_object_get(u, "prompt_tokens"));
  int64_t ct = json_integer_value(json_object_get(u, "completion_tokens"));
  int64_t cached = json_integer_value(
      json_object_get(json_object_get(u, "prompt_tokens_details"), "cached_tokens"));
  if (cached > pt) cached = pt;
  double cost = ((double)(pt - cached) * l->price_prompt + (double)cached * l->price_cached +
                 (double)ct * l->price_completion) / 1000.0;
  c->usage.tokens_in += pt;
  c->usage.tokens_out += ct;
  c->cached += cached;
  c->usage.cost_micro += (int64_t)llround(cost * 1e6);
  l->st.tokens_in += pt;
  l->st.tokens_out += ct;
  l->st.tokens_cached += cached;
  l->st.cost_micro += (int64_t)llround(cost * 1e6);
  const char *m = json_string_value(json_object_get(resp, "model"));
  if (m) snprintf(c->model, sizeof c->model, "%s", m);
}

/* The error's message in any of the envelopes: OpenAI's {"error": {...}},
 * llama.cpp's (code an integer), vLLM's legacy top-level object. */
static void error_of(const json_t *body, char *msg, size_t n, const char **code) {
  const json_t *e = json_object_get(body, "error");
  if (!json_is_object(e)) e = body;
  const char *m = json_string_value(json_object_get(e, "message"));
  snprintf(msg, n, "%s", m ? m : "no message");
  *code = json_string_value(json_object_get(e, "code"));
  if (!*code) *code = json_string_value(json_object_get(e, "type"));
}

static void on_answer(rt_call *c, const json_t *resp) {
  llm *l = c->l;
  const json_t *ch = json_array_get(json_object_get(resp, "choices"), 0);
  const json_t *msg = json_object_get(ch, "message");
  if (!json_is_object(msg)) {
    retry_or_fail(c, "unavailable", "the server's answer has no choices[0].message", -1);
    return;
  }
  attempt_ok(l);
  const char *refusal = json_string_value(json_object_get(msg, "refusal"));
  const char *content = json_string_value(json_object_get(msg, "content"));
  const char *fr = json_string_value(json_object_get(ch, "finish_reason"));
  if (refusal || !content) {
    finish(c, NULL, "refused", refusal ? refusal : "the model gave no text");
    return;
  }
  bool cut = fr && strcmp(fr, "length") == 0;
  if (c->op == OP_CHAT) {
    const char *claim = rt_llm_claim(&l->p, content, c->facts);
    if (cut) {
      if (!repair(c, content, text_of(l, "cut")))
        finish(c, NULL, "invalid", "the answer was cut at max_tokens");
      return;
    }
    if (claim) {
      /* claim is "price", "stock" or "delivery": a key of llm.texts too */
      static const char *const names[] = {"what"};
      const char *values[] = {text_of(l, claim)};
      rt_buf problem = RT_BUF_INIT;
      add_text(l, &problem, "claimed", names, values, 1);
      bool again = repair(c, content, rt_buf_str(&problem));
      rt_buf_free(&problem);
      if (!again) {
        char d[128];
        snprintf(d, sizeof d, "the model stated a %s the flow did not supply", claim);
        finish(c, NULL, "refused", d);
      }
      return;
    }
    json_t *v = json_pack("{s:s}", "text", content);
    finish(c, v, NULL, NULL);
    json_decref(v);
    return;
  }
  char why[300];
  json_t *v = cut ? NULL : parse_content(content, why, sizeof why);
  if (cut) snprintf(why, sizeof why, "the answer was cut at max_tokens (finish_reason length)");
  if (v) {
    rt_jschema_err errs[4];
    int ne = rt_jschema_validate(c->schema, v, errs, 4);
    if (ne > 0) {
      size_t o = 0;
      for (int i = 0; i < ne && o < sizeof why - 1; i++)
        o += (size_t)snprintf(why + o, sizeof why - o, "%s%s: %s", i ? "; " : "", errs[i].path, errs[i].msg);
      json_decref(v);
      v = NULL;
    }
  }
  if (!v) {
    if (!repair(c, content, why)) finish(c, NULL, "invalid", why);
    return;
  }
  finish(c, v, NULL, NULL);
  json_decref(v);
}

static void on_http(rt_http_resp *resp, void *ud) {
  rt_call *c = ud;
  llm *l = c->l;
  c->req = NULL;
  c->http_ms += resp->total_ms;
  if (resp->err != RT_OK) {
    char d[300];
    snprintf(d, sizeof d, "%s", resp->errmsg);
    retry_or_fail(c, resp->err == RT_ETIMEOUT ? "timeout" : "unavailable", d, -1);
    return;
  }
  json_error_t je;
  json_t *body = json_loadb(resp->body, resp->body_len, 0, &je);
  int st = resp->status;
  if (st == 200) {
    if (!json_is_object(body)) {
      json_decref(body);
      retry_or_fail(c, "unavailable", "the server's answer is not JSON (truncated or not an API)", -1);
      return;
    }
    add_usage(c, body);
    on_answer(c, body);
    json_decref(body);
    return;
  }
  char msg[300];
  const char *code = NULL;
  error_of(body, msg, sizeof msg, &code);
  scrub(l, msg);
  char d[360];
  snprintf(d, sizeof d, "HTTP %d: %s", st, msg);
  if (st == 429 && code && strcmp(code, "insufficient_quota") == 0) {
    attempt_failed(l, d);
    finish(c, NULL, "limit", d);
  } else if (st == 429) {
    retry_or_fail(c, "limit", d, resp->retry_after >= 0 ? resp->retry_after * 1000 : -1);
  } else if (st == 400 && c->op == OP_EXTRACT && !c->json_object &&
             (strstr(msg, "json_schema") || strstr(msg, "response_format"))) {
    /* The server does not do structured outputs: JSON mode, and the
     * schema checked here only. Remembered for the next calls. */
    if (!l->no_json_schema)
      rt_log(RT_LOG_WARN, "llm-no-json-schema", "detail=\"%.160s\" using=json_object", msg);
    l->no_json_schema = true;
    c->json_object = true;
    c->attempts--;
    send_attempt(c);
  } else if (st == 408 || st == 409 || st >= 500) {
    retry_or_fail(c, "unavailable", d, resp->retry_after >= 0 ? resp->retry_after * 1000 : -1);
  } else {
    if (st == 401 || st == 403 || st == 404) {
      /* the key or the model is wrong: nothing a retry mends */
      attempt_failed(l, d);
      char problem[480];
      snprintf(problem, sizeof problem, "the LLM server refuses the calls (%s): check llm.api_key and llm.model", d);
      l->env->set_health(l->env->host, l->env->name, problem);
    }
    finish(c, NULL, st == 400 || st == 413 || st == 422 ? "bad_request" : "unavailable", d);
  }
  json_decref(body);
}

static json_t *response_format(rt_call *c) {
  llm *l = c->l;
  if (c->op != OP_EXTRACT) return NULL;
  if (c->json_object || l->no_json_schema) return json_pack("{s:s}", "type", "json_object");
  return json_pack("{s:s,s:{s:s,s:b,s:O}}", "type", "json_schema", "json_schema", "name",
                   c->schema_name, "strict", 1, "schema", c->schema);
}

static void send_attempt(rt_call *c) {
  llm *l = c->l;
  long left = remaining(c);
  if (left < 50) {
    finish(c, NULL, "timeout", "the call's deadline passed");
    return;
  }
  if (l->open && !c->probe) {
    finish(c, NULL, "unavailable", l->last_error);
    return;
  }
  c->attempts++;
  l->st.attempts++;
  json_t *body = json_pack("{s:s,s:O,s:f}", "model", l->model, "messages", c->messages,
                           "temperature", l->temperature);
  json_object_set_new(body, l->token_param, json_integer(l->max_tokens));
  json_t *rf = response_format(c);
  if (rf) json_object_set_new(body, "response_format", rf);
  if (c->json_object || l->no_json_schema) {
    /* JSON mode knows no schema: it goes into the system message */
    json_t *sys = json_array_get(c->messages, 0);
    const char *s = json_string_value(json_object_get(sys, "content"));
    if (s && !strstr(s, "JSON Schema:")) {
      char *st = json_dumps(c->schema, JSON_COMPACT | JSON_ENSURE_ASCII);
      char *ns = rt_xasprintf("%s\nJSON Schema: %s", s, st);
      json_object_set_new(sys, "content", json_string(ns));
      free(ns);
      free(st);
      json_object_set(body, "messages", c->messages);
    }
  }
  char *txt = json_dumps(body, JSON_COMPACT);
  json_decref(body);
  /* "Expect:" stops curl waiting for a 100 Continue on bodies over 1 KiB */
  const char *headers[] = {"Content-Type: application/json", "Expect:", l->auth, NULL};
  rt_http_opts o = {.method = "POST", .url = l->url, .body = txt, .body_len = strlen(txt),
                    .headers = headers, .timeout_ms = left < l->timeout_ms ? left : l->timeout_ms,
                    .max_body = (size_t)4 << 20};
  c->sent_ns = uv_hrtime();
  int rc = rt_http_request(l->env->http, &o, on_http, c, &c->req);
  free(txt);
  if (rc != RT_OK) {
    c->req = NULL;
    fail_later(c, "unavailable", "%s", "the HTTP client refused the request");
  }
}

/* ---- images -------------------------------------------------------------------- */

static void next_image(rt_call *c);

static void on_scaled(rt_subproc_result *r, void *ud) {
  rt_call *c = ud;
  c->sp = NULL;
  if (r->err != RT_OK || r->exit_status != 0 || r->out_len < 4) {
    char d[200];
    snprintf(d, sizeof d, "the photo could not be prepared: %.120s", r->errmsg[0] ? r->errmsg : r->errout);
    finish(c, NULL, "bad_request", d);
    return;
  }
  rt_buf b = RT_BUF_INIT;
  rt_buf_adds(&b, "data:image/jpeg;base64,");
  base64(&b, (const unsigned char *)r->out, r->out_len);
  json_array_append_new(c->parts, json_pack("{s:s,s:{s:s,s:s}}", "type", "image_url", "image_url",
                                            "url", rt_buf_str(&b), "detail", c->l->image_detail));
  rt_buf_free(&b);
  c->img_i++;
  next_image(c);
}

static void next_image(rt_call *c) {
  llm *l = c->l;
  if (c->img_i >= json_array_size(c->images)) {
    send_attempt(c);
    return;
  }
  const char *path = json_string_value(json_array_get(c->images, c->img_i));
  char size[48];
  snprintf(size, sizeof size, "%ldx%ld>", l->image_px, l->image_px);
  const char *argv[] = {l->convert, path, "-auto-orient", "-resize", size, "-strip",
                        "-quality", "85", "jpeg:-", NULL};
  rt_subproc_opts so = {.argv = argv, .timeout_ms = 15000, .mem_kb = 1024 * 1024,
                      .max_out = (size_t)8 << 20};
  char errmsg[160];
  if (rt_subproc_start(l->env->loop, &so, on_scaled, c, &c->sp, errmsg) != RT_OK)
    fail_later(c, "unavailable", "%s", errmsg);
}

/* ---- call ------------------------------------------------------------------------ */

static int bad(char **err, const char *fmt, const char *arg) {
  *err = rt_xasprintf(fmt, arg);
  return RT_EINVAL;
}

/* The flow API (integration.h: it.luacheck reads this table). */
static const char *const llm_ops[] = {"chat", "extract", NULL};

static int llm_call(rt_provider *p, const char *opname, const json_t *args, rt_call_done done,
                    void *ud, rt_call **out, char **err) {
  llm *l = p->impl;
  int op;
  if (strcmp(opname, "chat") == 0) op = OP_CHAT;
  else if (strcmp(opname, "extract") == 0) op = OP_EXTRACT;
  else return bad(err, "llm has no operation \"%s\" (chat, extract)", opname);
  const char *text = json_string_value(json_object_get(args, "text"));
  if (!text) return bad(err, "llm.%s: text (the customer's words) is needed", opname);
  json_t *schema = NULL;
  const char *sname = NULL;
  if (op == OP_EXTRACT) {
    sname = json_string_value(json_object_get(args, "schema"));
    if (!sname) return bad(err, "llm.extract: schema (a name from schema/llm/) is needed%s", "");
    if (!(schema = get_schema(l, sname, err))) return RT_EINVAL;
  }
  /* images: photo tables with a path, or paths */
  json_t *images = json_array();
  const json_t *im = json_object_get(args, "images");
  size_t i;
  const json_t *v;
  json_array_foreach(im, i, v) {
    const char *path = json_is_string(v) ? json_string_value(v)
                                         : json_string_value(json_object_get(v, "path"));
    if (!rt_subproc_plain_file(path) || i >= MAX_IMAGES) {
      json_decref(images);
      return bad(err, "llm.%s: images are at most 4 photos with a path a channel saved", opname);
    }
    json_array_append_new(images, path[0] == '/' ? json_string(path)
                                                 : json_sprintf("./%s", path));
  }

  rt_call *c = rt_xcalloc(1, sizeof *c);
  c->called_ns = uv_hrtime();
  c->l = l;
  c->op = op;
  c->done = done;
  c->ud = ud;
  c->images = images;
  c->parts = json_array();
  c->timer = rt_xmalloc(sizeof *c->timer);
  uv_timer_init(l->env->loop, c->timer);
  c->timer->data = c;
  c->deadline = now_ms(l) + (uint64_t)l->deadline_ms;
  c->next = l->head;
  if (l->head) l->head->prev = c;
  l->head = c;
  l->st.calls++;
  l->st.in_flight++;
  if (l->st.in_flight > l->st.max_in_flight_seen) l->st.max_in_flight_seen = l->st.in_flight;
  *out = c;

  /* the messages */
  c->messages = json_array();
  rt_buf sys = RT_BUF_INIT;
  const json_t *vars = json_object_get(args, "vars");
  if (op == OP_CHAT) {
    char *pp = persona(l, vars);
    rt_buf_adds(&sys, pp);
    free(pp);
    const json_t *facts = json_object_get(args, "facts");
    c->facts = json_is_object(facts) ? json_deep_copy(facts) : json_object();
    if (json_object_size(c->facts)) {
      rt_buf_adds(&sys, "\n\n");
      add_text(l, &sys, "facts", NULL, NULL, 0);
      rt_buf_addc(&sys, '\n');
      const char *k;
      json_object_foreach((json_t *)c->facts, k, v) {
        if (json_is_string(v)) rt_buf_printf(&sys, "- %s: %s\n", k, json_string_value(v));
      }
    }
  } else {
    c->schema = json_incref(schema);
    c->schema_name = rt_xstrdup(sname);
    const char *desc = json_string_value(json_object_get(schema, "description"));
    static const char *const names[] = {"schema", "description"};
    const char *values[] = {sname, desc ? desc : ""};
    add_text(l, &sys, "extract", names, values, 2);
  }
  const char *extra = json_string_value(json_object_get(args, "instructions"));
  if (extra) rt_buf_printf(&sys, "\n\n%s", extra);
  json_array_append_new(c->messages, json_pack("{s:s,s:s}", "role", "system", "content", rt_buf_str(&sys)));
  rt_buf_free(&sys);
  const json_t *hist = json_object_get(args, "history");
  size_t hn = json_array_size(hist), from = hn > MAX_HISTORY ? hn - MAX_HISTORY : 0;
  for (i = from; i < hn; i++) {
    const json_t *h = json_array_get(hist, i);
    const char *role = json_string_value(json_object_get(h, "role"));
    const char *content = json_string_value(json_object_get(h, "content"));
    if (!role || !content || (strcmp(role, "user") != 0 && strcmp(role, "assistant") != 0)) continue;
    json_array_append_new(c->messages, json_pack("{s:s,s:s}", "role", role, "content", content));
  }
  json_array_append_new(c->parts, json_pack("{s:s,s:s}", "type", "text", "text", text));
  json_array_append_new(c->messages, json_pack("{s:s,s:O}", "role", "user", "content", c->parts));

  if (l->st.in_flight > l->max_in_flight) {
    fail_later(c, "limit", "%s", "llm.max_in_flight calls are already waiting for the server");
  } else if (!breaker_allows(l, c)) {
    fail_later(c, "unavailable", "circuit open: %s", l->last_error);
    l->st.fast_failed++;
  } else if (json_array_size(images)) {
    next_image(c);
  } else {
    /* done must come later, from the loop: the request's own callback */
    send_attempt(c);
  }
  return RT_OK;
}

static void llm_cancel(rt_provider *p, rt_call *c) {
  (void)p;
  if (c) call_free(c);
}

/* The /metrics block (plugin.h set_metrics). */
static void llm_metrics(void *ud, rt_buf *b) {
  llm *l = ud;
  rt_buf_printf(b, "# HELP shopbot_llm_calls_total LLM calls by how they ended.\n"
                   "# TYPE shopbot_llm_calls_total counter\n"
                   "shopbot_llm_calls_total{result=\"ok\"} %llu\n"
                   "shopbot_llm_calls_total{result=\"failed\"} %llu\n",
                (unsigned long long)l->st.ok, (unsigned long long)l->st.failed);
  rt_buf_adds(b, "# HELP shopbot_llm_errors_total Failed LLM calls by the error the flow got.\n"
                 "# TYPE shopbot_llm_errors_total counter\n");
  for (size_t i = 0; i < sizeof ERROR_CODES / sizeof ERROR_CODES[0]; i++)
    rt_buf_printf(b, "shopbot_llm_errors_total{error=\"%s\"} %llu\n",
                  ERROR_CODES[i] ? ERROR_CODES[i] : "other", (unsigned long long)l->errors[i]);
  rt_buf_printf(b, "# HELP shopbot_llm_attempts_total Requests sent to the server (retries and repair turns included).\n"
                   "# TYPE shopbot_llm_attempts_total counter\n"
                   "shopbot_llm_attempts_total %llu\n"
                   "# HELP shopbot_llm_retries_total Attempts repeated after a timeout, 5xx or 429.\n"
                   "# TYPE shopbot_llm_retries_total counter\n"
                   "shopbot_llm_retries_total %llu\n"
                   "# HELP shopbot_llm_fast_failed_total Calls refused at once while the breaker was open.\n"
                   "# TYPE shopbot_llm_fast_failed_total counter\n"
                   "shopbot_llm_fast_failed_total %llu\n"
                   "# HELP shopbot_llm_tokens_total Tokens the server reported.\n"
                   "# TYPE shopbot_llm_tokens_total counter\n"
                   "shopbot_llm_tokens_total{kind=\"prompt\"} %lld\n"
                   "shopbot_llm_tokens_total{kind=\"completion\"} %lld\n"
                   "shopbot_llm_tokens_total{kind=\"cached\"} %lld\n"
                   "# HELP shopbot_llm_cost_total What the calls cost, in the shop's currency.\n"
                   "# TYPE shopbot_llm_cost_total counter\n"
                   "shopbot_llm_cost_total %.6f\n"
                   "# HELP shopbot_llm_in_flight Calls waiting for the server now.\n"
                   "# TYPE shopbot_llm_in_flight gauge\n"
                   "shopbot_llm_in_flight %zu\n"
                   "# HELP shopbot_llm_in_flight_max The most calls waiting for the server at once since start.\n"
                   "# TYPE shopbot_llm_in_flight_max gauge\n"
                   "shopbot_llm_in_flight_max %zu\n"
                   "# HELP shopbot_llm_breaker_open 1 while the circuit breaker stops calls.\n"
                   "# TYPE shopbot_llm_breaker_open gauge\n"
                   "shopbot_llm_breaker_open %d\n",
                (unsigned long long)l->st.attempts, (unsigned long long)l->st.retries,
                (unsigned long long)l->st.fast_failed, (long long)l->st.tokens_in,
                (long long)l->st.tokens_out, (long long)l->st.tokens_cached,
                (double)l->st.cost_micro / 1e6, l->st.in_flight, l->st.max_in_flight_seen,
                l->open ? 1 : 0);
  rt_buf_adds(b, "# HELP shopbot_llm_call_seconds A call's whole time, retries and photos included.\n"
                 "# TYPE shopbot_llm_call_seconds histogram\n");
  uint64_t cum = 0;
  for (size_t i = 0; i < NBUCKETS; i++) {
    cum += l->latency[i];
    rt_buf_printf(b, "shopbot_llm_call_seconds_bucket{le=\"%g\"} %llu\n", LATENCY_BUCKETS[i],
                  (unsigned long long)cum);
  }
  cum += l->latency[NBUCKETS];
  rt_buf_printf(b, "shopbot_llm_call_seconds_bucket{le=\"+Inf\"} %llu\n"
                   "shopbot_llm_call_seconds_sum %.6f\n"
                   "shopbot_llm_call_seconds_count %llu\n",
                (unsigned long long)cum, l->latency_sum, (unsigned long long)cum);
}

void rt_llm_metrics(rt_provider *p, rt_buf *out) { llm_metrics(p->impl, out); }

static void llm_start(rt_provider *p, const rt_plugin_env *env,
                      void (*done)(void *ud, int status, const char *err), void *ud) {
  llm *l = p->impl;
  l->env = env;
  if (!env->http) {
    done(ud, RT_EINVAL, "llm needs the HTTP client");
    return;
  }
  /* prompt.md is the shop's: relative to its folder */
  if (l->prompt_path[0] != '/' && env->shop_dir) {
    char *abs = rt_xasprintf("%s/%s", env->shop_dir, l->prompt_path);
    free(l->prompt_path);
    l->prompt_path = abs;
  }
  env->set_health(env->host, env->name, NULL);
  if (env->set_metrics) env->set_metrics(env->host, env->name, llm_metrics, l);
  done(ud, RT_OK, NULL);
}

static void llm_close(rt_provider *p, void (*done)(void *ud), void *ud) {
  llm *l = p->impl;
  while (l->head) call_free(l->head);
  rt_log(RT_LOG_INFO, "llm-closed",
         "calls=%llu ok=%llu failed=%llu attempts=%llu tokens_in=%lld tokens_out=%lld",
         (unsigned long long)l->st.calls, (unsigned long long)l->st.ok,
         (unsigned long long)l->st.failed, (unsigned long long)l->st.attempts,
         (long long)l->st.tokens_in, (long long)l->st.tokens_out);
  for (size_t i = 0; i < l->nschemas; i++) {
    free(l->schemas[i].name);
    json_decref(l->schemas[i].schema);
  }
  free(l->schemas);
  free(l->overhead);
  pcre2_code_free(l->re_price);
  pcre2_code_free(l->re_stock);
  pcre2_code_free(l->re_delivery);
  pcre2_code_free(l->re_number);
  pcre2_match_data_free(l->md);
  json_decref(l->texts);
  free(l->url);
  free(l->auth);
  free(l->model);
  free(l->token_param);
  free(l->prompt_path);
  free(l->prompt);
  free(l->image_detail);
  free(l->convert);
  free(l);
  if (done) done(ud);
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

void rt_llm_get_stats(rt_provider *p, rt_llm_stats *out) {
  llm *l = p->impl;
  *out = l->st;
  size_t n = l->noverhead < OVERHEAD_N ? l->noverhead : OVERHEAD_N;
  if (n == 0) return;
  double *v = rt_xmalloc(n * sizeof *v);
  memcpy(v, l->overhead, n * sizeof *v);
  qsort(v, n, sizeof *v, cmp_double);
  out->overhead_ms_p50 = v[n / 2];
  out->overhead_ms_p99 = v[(size_t)((double)(n - 1) * 0.99)];
  out->overhead_ms_max = v[n - 1];
  free(v);
}

static const char *str_or(const json_t *conf, const char *key, const char *def) {
  const char *s = json_string_value(json_object_get(conf, key));
  return s ? s : def;
}

static double num_or(const json_t *conf, const char *key, double def) {
  const json_t *v = json_object_get(conf, key);
  return json_is_number(v) ? json_number_value(v) : def;
}

static int llm_new(const json_t *conf, rt_provider **out, char **err);

/* The section with the schema's defaults filled in, as the host's config
 * loader fills them: the words (llm.texts) and the guard (llm.guard) are
 * there also for a caller that builds its section by hand. */
int rt_llm_new(const json_t *conf, rt_provider **out, char **err) {
  json_t *schema = json_loads((const char *)rt_llm_schema_json, 0, NULL);
  json_t *full = json_deep_copy(conf);
  if (!full) full = json_object();
  if (schema) rt_jschema_apply_defaults(schema, full);
  json_decref(schema);
  int rc = llm_new(full, out, err);
  json_decref(full);
  return rc;
}

static int llm_new(const json_t *conf, rt_provider **out, char **err) {
  const char *base = json_string_value(json_object_get(conf, "base_url"));
  if (!base || (strncmp(base, "http://", 7) != 0 && strncmp(base, "https://", 8) != 0)) {
    *err = rt_xstrdup("llm.base_url: an http:// or https:// URL of the API root with its version "
                      "(http://127.0.0.1:8000/v1) is needed");
    return RT_EINVAL;
  }
  /* The shop's guard patterns first: a bad one is refused before anything
   * is allocated. */
  static const char *const keys[] = {"price", "stock", "delivery"};
  pcre2_code *guard[RT_ARRAY_LEN(keys)];
  for (size_t i = 0; i < RT_ARRAY_LEN(keys); i++) {
    if (re_conf(conf, keys[i], &guard[i], err)) continue;
    while (i > 0) pcre2_code_free(guard[--i]);
    return RT_EINVAL;
  }
  llm *l = rt_xcalloc(1, sizeof *l);
  l->re_price = guard[0];
  l->re_stock = guard[1];
  l->re_delivery = guard[2];
  size_t bl = strlen(base);
  while (bl > 0 && base[bl - 1] == '/') bl--;
  l->url = rt_xasprintf("%.*s/chat/completions", (int)bl, base);
  const char *key = str_or(conf, "api_key", "");
  l->auth = key[0] ? rt_xasprintf("Authorization: Bearer %s", key) : NULL;
  l->model = rt_xstrdup(str_or(conf, "model", "gpt-4o-mini"));
  l->token_param = rt_xstrdup(str_or(conf, "token_param", "max_tokens"));
  l->prompt_path = rt_xstrdup(str_or(conf, "prompt", "prompt.md"));
  l->image_detail = rt_xstrdup(str_or(conf, "image_detail", "low"));
  l->convert = rt_xstrdup(str_or(conf, "convert", "convert"));
  l->timeout_ms = (long)num_or(conf, "timeout_ms", 20000);
  l->deadline_ms = (long)num_or(conf, "deadline_ms", 45000);
  l->max_tokens = (long)num_or(conf, "max_tokens", 400);
  l->temperature = num_or(conf, "temperature", 0.5);
  l->retries = (long)num_or(conf, "retries", 2);
  l->backoff_ms = (long)num_or(conf, "backoff_ms", 300);
  l->image_px = (long)num_or(conf, "image_max_px", 1568);
  l->price_prompt = num_or(conf, "price_per_1k_prompt", 0);
  l->price_completion = num_or(conf, "price_per_1k_completion", 0);
  l->price_cached = num_or(conf, "price_per_1k_cached", l->price_prompt);
  l->max_in_flight = (size_t)num_or(conf, "max_in_flight", 1000);
  l->breaker_failures = (long)num_or(conf, "breaker_failures", 5);
  l->breaker_open_ms = (long)num_or(conf, "breaker_open_ms", 30000);
  /* The guard (compiled above) reads the normal form (lower case, ё as е);
   * its words are the shop's (llm.guard, defaults in schema.json). */
  const json_t *texts = json_object_get(conf, "texts");
  l->texts = json_is_object(texts) ? json_deep_copy(texts) : json_object();
  l->re_number = re("\\d[\\d ]*(?:[.,]\\d+)?");
  l->md = pcre2_match_data_create(4, NULL);
  l->p.name = "llm";
  l->p.impl = l;
  l->p.start = llm_start;
  l->p.call = llm_call;
  l->p.ops = llm_ops;
  l->p.cancel = llm_cancel;
  l->p.close = llm_close;
  *out = &l->p;
  return RT_OK;
}

/* A base_url asks for the plugin; "enabled": false keeps a filled-in
 * section (as `shopbot new` writes it) switched off. */
static bool llm_wanted(const json_t *conf) {
  return json_string_value(json_object_get(conf, "base_url")) != NULL &&
         !json_is_false(json_object_get(conf, "enabled"));
}

static int llm_create(const json_t *conf, struct rt_channel **ch, struct rt_provider **pv,
                      char **err) {
  (void)ch;
  return rt_llm_new(conf, pv, err);
}

const rt_plugin rt_plugin_llm = {
    .name = "llm",
    .version = "1.0.0",
    .kind = RT_PLUGIN_PROVIDER,
    .schema_json = (const char *)rt_llm_schema_json,
    .wanted = llm_wanted,
    .create = llm_create,
};
