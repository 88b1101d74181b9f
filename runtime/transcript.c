/* transcript.c -- the transcript test runner (see transcript.h). */
#include "transcript.h"
#include "campaign_cfg.h"
#include "config.h"
#include "engine.h"
#include "import.h"
#include "log.h"
#include "paths.h"
#include "text.h"
#define PCRE2_CODE_UNIT_WIDTH 8
#include <dirent.h>
#include <errno.h>
#include <pcre2.h>
#include <sqlite3.h>
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

typedef struct tr {
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
  char channel[64], chat[128];
  int64_t clock_ms;
  int64_t leads_seen;
  int line;
  int checks;
  bool failed;
  char *reload_err;
} tr;

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

static void cap_send(rt_channel *ch, const char *chat_id, const char *kind, const char *payload,
                     const char *idem, rt_send_done done, void *ud) {
  tr *t = ch->impl;
  json_t *p = json_loads(payload, 0, NULL);
  const char *text = json_string_value(json_object_get(p, "text"));
  t->msgs = rt_xrealloc(t->msgs, (t->nmsgs + 1) * sizeof *t->msgs);
  t->msgs[t->nmsgs++] = (captured){rt_xstrdup(ch->name), rt_xstrdup(chat_id),
                                   rt_xstrdup(text ? text : ""), false};
  if (t->o->verbose) fprintf(t->o->out, "    [%s:%s] %s\n", ch->name, chat_id, text ? text : "");
  json_decref(p);
  done(ud, RT_OK, NULL, 0);
}

/* ---- scripted HTTP ---- */

static bool glob(const char *p, const char *s) {
  if (!*p) return !*s;
  if (*p == '*') {
    for (;; s++) {
      if (glob(p + 1, s)) return true;
      if (!*s) return false;
    }
  }
  return *s && *p == *s && glob(p + 1, s + 1);
}

static json_t *http_scripted(void *ud, json_t *req) {
  tr *t = ud;
  json_array_append(t->requests, req);
  const char *m = json_string_value(json_object_get(req, "method"));
  const char *u = json_string_value(json_object_get(req, "url"));
  for (size_t i = 0; i < t->nreplies; i++) {
    scripted_reply *s = &t->replies[i];
    if (s->used || strcmp(s->method, m) != 0 || !glob(s->url, u)) continue;
    s->used = true;
    if (s->timeout) return json_pack("{s:s, s:s}", "error", "timeout", "detail", "scripted timeout");
    return json_pack("{s:i, s:s}", "status", s->status, "body", s->body);
  }
  return json_pack("{s:s, s:s}", "error", "network", "detail", "no scripted reply in the transcript");
}

/* ---- engine lifetime ---- */

static void settle(tr *t) {
  for (int i = 0; i < 1000000; i++) {
    uv_run(&t->loop, UV_RUN_NOWAIT);
    if (rt_engine_idle(t->e)) return;
  }
  fail(t, "the bot did not settle (a step waiting forever?)");
}

static int engine_up(tr *t) {
  if (t->e) return RT_OK;
  char *err = NULL;
  rt_engine_opts eo = {.loop = &t->loop, .cfg = t->cfg, .store_path = t->store_path,
                       .test_mode = true, .clock_ms = t->clock_ms, .flows_dir = t->flows};
  int rc = rt_engine_new(&eo, &t->e, &err);
  if (rc != RT_OK) {
    fail(t, "the shop does not start: %s", err);
    free(err);
    return rc;
  }
  static const char *names[] = {"console", "telegram", "whatsapp", "webchat", "test"};
  for (int i = 0; i < 5; i++) {
    t->chans[i] = (rt_channel){.name = names[i], .impl = t, .send = cap_send};
    rt_engine_add_channel(t->e, &t->chans[i]);
  }
  rt_engine_set_http_script(t->e, http_scripted, t);
  rt_engine_start(t->e);
  settle(t);
  return RT_OK;
}

static void engine_closed(void *ud) { *(bool *)ud = true; }

static void engine_down(tr *t) {
  if (!t->e) return;
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
  bool ok = glob(p, s);
  free(p);
  free(s);
  return ok;
}

static bool re_matches(tr *t, const char *re, const char *text) {
  int ec;
  PCRE2_SIZE eo;
  pcre2_code *c = pcre2_compile((PCRE2_SPTR)re, PCRE2_ZERO_TERMINATED,
                                PCRE2_UTF | PCRE2_UCP | PCRE2_CASELESS | PCRE2_DOTALL, &ec, &eo, NULL);
  if (!c) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(ec, msg, sizeof msg);
    fail(t, "bad regular expression at offset %zu: %s", (size_t)eo, (char *)msg);
    return false;
  }
  pcre2_match_data *md = pcre2_match_data_create_from_pattern(c, NULL);
  int rc = pcre2_match(c, (PCRE2_SPTR)text, PCRE2_ZERO_TERMINATED, 0, 0, md, NULL);
  pcre2_match_data_free(md);
  pcre2_code_free(c);
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

static void set_chat(tr *t, const char *spec) {
  const char *colon = strchr(spec, ':');
  if (colon) {
    snprintf(t->channel, sizeof t->channel, "%.*s", (int)(colon - spec), spec);
    snprintf(t->chat, sizeof t->chat, "%s", colon + 1);
  } else {
    snprintf(t->chat, sizeof t->chat, "%s", spec);
  }
}

static int64_t q_int(tr *t, const char *sql, const char *arg) {
  sqlite3_stmt *st;
  int64_t v = -1;
  if (sqlite3_prepare_v2(rt_store_db(rt_engine_store(t->e)), sql, -1, &st, NULL) != SQLITE_OK) return -1;
  if (arg) sqlite3_bind_text(st, 1, arg, -1, SQLITE_TRANSIENT);
  if (sqlite3_step(st) == SQLITE_ROW) v = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  return v;
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

static int64_t parse_delta(const char *s) {
  int64_t sec;
  if (rt_parse_duration(s, &sec) != RT_OK) return -1;
  return sec * 1000;
}

/* Advances the virtual clock to target, firing every timer due on the way
 * in order, each at its own time. */
static void advance(tr *t, int64_t target) {
  rt_clock *c = rt_engine_clock(t->e);
  for (int guard = 0; guard < 100000 && !t->failed; guard++) {
    int64_t next = rt_store_timer_next(rt_engine_store(t->e));
    if (next < 0 || next > target) break;
    if (next > rt_clock_now(c)) rt_clock_set(c, next);
    rt_engine_fire_timers(t->e);
    settle(t);
  }
  if (target > rt_clock_now(c)) rt_clock_set(c, target);
}

static int copy_file(const char *from, const char *to) {
  FILE *a = fopen(from, "rb");
  if (!a) return RT_ENOENT;
  FILE *b = fopen(to, "wb");
  if (!b) { fclose(a); return RT_EIO; }
  char buf[8192];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, a)) > 0) fwrite(buf, 1, n, b);
  fclose(a);
  fclose(b);
  return RT_OK;
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

/* Sets a dotted path in the config to a JSON value ("persona.name = \"Олег\""). */
static void config_set(tr *t, char *spec) {
  char *eq = strchr(spec, '=');
  if (!eq) { fail(t, "config: expects path = json"); return; }
  *eq = '\0';
  char *path = trim(spec), *val = trim(eq + 1);
  json_t *v = json_loads(val, JSON_DECODE_ANY, NULL);
  if (!v) v = json_string(val);
  json_t *o = rt_config_json(t->cfg);
  char *p = rt_xstrdup(path), *save = NULL, *k = strtok_r(p, ".", &save), *next;
  while ((next = strtok_r(NULL, ".", &save))) {
    json_t *c = json_object_get(o, k);
    if (!json_is_object(c)) { c = json_object(); json_object_set_new(o, k, c); }
    o = c;
    k = next;
  }
  json_object_set_new(o, k, v);
  free(p);
}

/* ---- directives ---- */

static void do_user(tr *t, const char *who, const char *text, const char *kind) {
  if (who) set_chat(t, who);
  check_no_pending(t);
  if (t->failed || engine_up(t) != RT_OK) return;
  char ext[64];
  static unsigned long seq;
  snprintf(ext, sizeof ext, "t%lu", ++seq);
  char *extra = NULL;
  if (strcmp(kind, "photo") == 0)
    extra = rt_xasprintf("{\"photos\":[{\"id\":\"test-photo-%lu\"}]}", seq);
  rt_event_in ev = {.channel = t->channel, .ext_id = ext, .chat_id = t->chat,
                    .user_id = t->chat, .kind = kind, .text = text, .extra_json = extra};
  if (t->o->verbose) fprintf(t->o->out, "    %s> %s\n", t->chat, text);
  rt_engine_receive(t->e, &ev, NULL, NULL);
  free(extra);
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
    int64_t n = q_int(t, "SELECT COUNT(*) FROM leads", NULL);
    if (neg) {
      if (n > t->leads_seen) fail(t, "expected no new lead\n  got: %lld new", (long long)(n - t->leads_seen));
    } else if (n <= t->leads_seen) {
      fail(t, "expected a lead\n  got: none recorded");
    } else if (rest[0] == '~') {
      sqlite3_stmt *st;
      sqlite3_prepare_v2(rt_store_db(rt_engine_store(t->e)),
                         "SELECT json_object('car', car, 'car_kind', car_kind, 'parts', json(parts), "
                         "'name', name, 'phone', phone, 'flow', flow, 'channel', channel, "
                         "'campaign', campaign, 'data', json(data)) FROM leads ORDER BY id DESC LIMIT 1",
                         -1, &st, NULL);
      const char *j = sqlite3_step(st) == SQLITE_ROW ? (const char *)sqlite3_column_text(st, 0) : "";
      if (!re_matches(t, trim(rest + 1), j)) fail(t, "expected lead ~ %s\n  got: %s", trim(rest + 1), j);
      sqlite3_finalize(st);
    }
    t->leads_seen = n;
  } else if (strcmp(w, "timer") == 0) {
    char *name = strtok(rest, " "), *at = strtok(NULL, " "), *when = strtok(NULL, "");
    if (!name) { fail(t, "expect timer NAME [at DATE]"); return; }
    if (!conv_row(t, &row)) { fail(t, "no conversation in chat %s", t->chat); return; }
    char q[64];
    snprintf(q, sizeof q, "%lld", (long long)row.id);
    sqlite3_stmt *st;
    sqlite3_prepare_v2(rt_store_db(rt_engine_store(t->e)),
                       "SELECT due_at FROM timers WHERE conv_id = ?1 AND name = ?2", -1, &st, NULL);
    sqlite3_bind_int64(st, 1, row.id);
    sqlite3_bind_text(st, 2, name, -1, SQLITE_TRANSIENT);
    bool found = sqlite3_step(st) == SQLITE_ROW;
    int64_t due = found ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_finalize(st);
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
    sqlite3_stmt *st;
    sqlite3_prepare_v2(rt_store_db(rt_engine_store(t->e)),
                       "SELECT json_object('kind', kind, 'campaign', campaign, 'flow', flow, "
                       "'data', json(data)) FROM events WHERE kind = ?1 ORDER BY id DESC", -1, &st, NULL);
    sqlite3_bind_text(st, 1, kind, -1, SQLITE_TRANSIENT);
    bool found = false;
    char *last = NULL;
    while (!found && sqlite3_step(st) == SQLITE_ROW) {
      const char *j = (const char *)sqlite3_column_text(st, 0);
      if (!last) last = rt_xstrdup(j);
      found = !(tilde && re) || re_matches(t, trim(re), j);
    }
    sqlite3_finalize(st);
    if (neg && found) fail(t, "expected no event %s\n  got: %s", kind, last);
    else if (!neg && !found) fail(t, "expected event %s%s%s\n  got: %s", kind, re ? " ~ " : "",
                                  re ? re : "", last ? last : "none");
    free(last);
  } else if (strcmp(w, "sql:") == 0) {
    char *eq = strrchr(rest, '=');
    if (!eq) { fail(t, "expect sql: SELECT ... = VALUE"); return; }
    *eq = '\0';
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(rt_store_db(rt_engine_store(t->e)), trim(rest), -1, &st, NULL) != SQLITE_OK) {
      fail(t, "bad SQL: %s", sqlite3_errmsg(rt_store_db(rt_engine_store(t->e))));
      return;
    }
    const char *got = sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0)
                          ? (const char *)sqlite3_column_text(st, 0) : "NULL";
    if (strcmp(got, trim(eq + 1)) != 0) fail(t, "expected %s = %s\n  got: %s", trim(rest), trim(eq + 1), got);
    sqlite3_finalize(st);
  } else if (strcmp(w, "http") == 0) {
    char *m = strtok(rest, " "), *url = strtok(NULL, " "), *tilde = strtok(NULL, " "), *re = strtok(NULL, "");
    bool found = false;
    size_t i;
    json_t *r;
    json_array_foreach(t->requests, i, r) {
      if (!m || !url) break;
      if (strcmp(json_string_value(json_object_get(r, "method")), m) != 0) continue;
      if (!glob(url, json_string_value(json_object_get(r, "url")))) continue;
      const char *body = json_string_value(json_object_get(r, "body"));
      if (tilde && re && !re_matches(t, trim(re), body ? body : "")) continue;
      found = true;
    }
    if (neg == found) fail(t, "expected %shttp request %s %s", neg ? "no " : "", m ? m : "?", url ? url : "?");
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

static void do_http(tr *t, char *spec) {
  /* METHOD URL -> STATUS BODY | METHOD URL -> timeout */
  char *arrow = strstr(spec, "->");
  if (!arrow) { fail(t, "http: METHOD URL -> STATUS BODY"); return; }
  *arrow = '\0';
  char *m = strtok(spec, " "), *url = strtok(NULL, " ");
  char *res = trim(arrow + 2);
  if (!m || !url) { fail(t, "http: METHOD URL -> STATUS BODY"); return; }
  scripted_reply s = {rt_xstrdup(m), rt_xstrdup(url), NULL, 0, false, false};
  if (strncmp(res, "timeout", 7) == 0) {
    s.timeout = true;
    s.body = rt_xstrdup("");
  } else {
    char *body = NULL;
    s.status = (int)strtol(res, &body, 10);
    body = trim(body);
    if (body[0] == '@') {
      char *path = resolve(t, body + 1);
      FILE *f = fopen(path, "rb");
      if (!f) { fail(t, "http: cannot read %s", path); free(path); free(s.method); free(s.url); return; }
      fseek(f, 0, SEEK_END);
      long n = ftell(f);
      fseek(f, 0, SEEK_SET);
      s.body = rt_xmalloc((size_t)n + 1);
      s.body[fread(s.body, 1, (size_t)n, f)] = '\0';
      fclose(f);
      free(path);
    } else {
      s.body = rt_xstrdup(body);
    }
  }
  t->replies = rt_xrealloc(t->replies, (t->nreplies + 1) * sizeof *t->replies);
  t->replies[t->nreplies++] = s;
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
    do_user(t, who, rest, strcmp(head, "photo") == 0 ? "photo" : "text");
  } else if (strcmp(head, "bot") == 0) {
    if (who) set_chat(t, who);
    do_expect_bot(t, t->channel, t->chat, op == '~', rest, "bot");
  } else if (strcmp(head, "managers") == 0) {
    do_expect_bot(t, rt_config_str(t->cfg, "managers.channel", "console"),
                  rt_config_str(t->cfg, "managers.chat_id", "managers"), op == '~', rest, "managers");
  } else if (strcmp(head, "to") == 0 && who) {
    const char *colon = strchr(who, ':');
    char ch[64] = "";
    if (colon) snprintf(ch, sizeof ch, "%.*s", (int)(colon - who), who);
    do_expect_bot(t, colon ? ch : NULL, colon ? colon + 1 : who, op == '~', rest, "to");
  } else if (strcmp(head, "chat") == 0) {
    set_chat(t, rest);
  } else if (strcmp(head, "manager") == 0) {
    do_user(t, who, rest, "manager");
  } else if (strcmp(head, "clock") == 0) {
    const char *tz = rt_config_str(t->cfg, "timezone", "Europe/Moscow");
    int64_t target;
    if (rest[0] == '+') {
      int64_t d = parse_delta(rest + 1);
      if (d < 0) { fail(t, "clock: bad duration '%s' (use +30m, +2h, +14d)", rest + 1); return; }
      target = (t->e ? rt_clock_now(rt_engine_clock(t->e)) : t->clock_ms) + d;
    } else if (rt_clock_parse(rest, tz, &target) != RT_OK) {
      fail(t, "clock: bad date '%s' (use 2026-03-02 10:00 or +14d)", rest);
      return;
    }
    if (!t->e) { t->clock_ms = target; return; }
    if (target < rt_clock_now(rt_engine_clock(t->e))) { fail(t, "clock: cannot go back in time"); return; }
    check_no_pending(t);
    advance(t, target);
  } else if (strcmp(head, "config") == 0) {
    if (t->e) { fail(t, "config: lines must come before the first message"); return; }
    config_set(t, rest);
  } else if (strcmp(head, "http") == 0) {
    do_http(t, rest);
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
  } else if (strcmp(head, "campaign") == 0) {
    if (engine_up(t) != RT_OK) return;
    char *err = NULL;
    rt_campaign_report rep;
    memset(&rep, 0, sizeof rep);
    rt_campaign_opts co;
    int rc = rt_campaign_opts_config(&co, t->cfg, rest, rt_clock_now(rt_engine_clock(t->e)), &err);
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
  snprintf(t.channel, sizeof t.channel, "console");
  snprintf(t.chat, sizeof t.chat, "customer");
  FILE *f = fopen(file, "r");
  if (!f) {
    fprintf(o->out, "FAIL %s: cannot open: %s\n", file, strerror(errno));
    return RT_ENOENT;
  }
  const char *slash = strrchr(file, '/');
  t.dir = slash ? rt_xstrndup(file, (size_t)(slash - file)) : rt_xstrdup(".");
  char tmpl[] = "/tmp/shopbot-test-XXXXXX";
  t.tmp = rt_xstrdup(mkdtemp(tmpl) ? tmpl : "/tmp");
  t.flows = rt_xasprintf("%s/flows", t.tmp);
  t.store_path = rt_xasprintf("%s/shop.db", t.tmp);
  t.requests = json_array();
  uv_loop_init(&t.loop);
  char *schema = rt_paths_schema("shop.schema.json"), *err = NULL;
  int rc = rt_config_load(o->shop_dir, schema, &t.cfg, &err);
  free(schema);
  if (rc != RT_OK) {
    fprintf(o->out, "FAIL %s: %s\n", file, err);
    free(err);
  } else {
    char *src = rt_config_path(t.cfg, rt_config_str(t.cfg, "flows.dir", "flows"));
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
    if (!t.failed) fprintf(o->out, "PASS %s (%d checks)\n", file, t.checks);
  }
  fclose(f);
  engine_down(&t);
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
  json_decref(t.requests);
  rm_rf(t.tmp);
  free(t.tmp); free(t.flows); free(t.store_path); free(t.dir);
  if (rc != RT_OK) return rc;
  return t.failed ? 1 : 0;
}
