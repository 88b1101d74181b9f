/* test_webchat.c -- the web chat channel: its protocol pieces (signed
 * visitor cookie, image sniffing, Origin rule) and the plugin on a real
 * HTTP server driven by tests/unit/webchat_ws.py (raw-socket websocket and
 * HTTP client) as a child process while the loop serves. The host side is
 * faked here the way the engine behaves: receive dedups by ext_id and acks
 * after a "commit" on a later loop turn, every new text gets a bot reply
 * ("echo: ...") sent through the channel, and a RETRY_LATER is tried again
 * after its after_ms, as the delivery queue does; history answers from what
 * it took and delivered, in order, as the store does. 127.0.0.1 only. */
#include "http_server.h"
#include "map.h"
#include "rt.h"
#include "t.h"
#include "webchat/webchat.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

void rt_webchat_free(rt_webchat *w);

/* ---- protocol pieces ---- */

T(cookie) {
  const char *vid = "0123456789abcdef0123456789abcdef";
  char *c = rt_webchat_cookie_make("s3cret", vid);
  CHECK_INT(strlen(c), 65);
  char got[33] = "";
  char *hdr = rt_xasprintf("a=b; shopbot_vid=%s; c=d", c);
  CHECK(rt_webchat_cookie_check("s3cret", hdr, got));
  CHECK_STR(got, vid);
  CHECK(!rt_webchat_cookie_check("other", hdr, got));       /* another secret */
  free(hdr);
  /* a forged id: someone else's vid with this visitor's signature */
  char forged[80];
  snprintf(forged, sizeof forged, "shopbot_vid=ffffffffffffffffffffffffffffffff%s", c + 32);
  CHECK(!rt_webchat_cookie_check("s3cret", forged, got));
  /* one flipped signature character */
  char *bad = rt_xasprintf("shopbot_vid=%s", c);
  bad[strlen(bad) - 1] = bad[strlen(bad) - 1] == '0' ? '1' : '0';
  CHECK(!rt_webchat_cookie_check("s3cret", bad, got));
  free(bad);
  CHECK(!rt_webchat_cookie_check("s3cret", NULL, got));
  CHECK(!rt_webchat_cookie_check("s3cret", "", got));
  CHECK(!rt_webchat_cookie_check("s3cret", "shopbot_vid=", got));
  CHECK(!rt_webchat_cookie_check("s3cret", "shopbot_vid=XYZ.abc", got));
  char upper[80];
  snprintf(upper, sizeof upper, "shopbot_vid=%s", c);
  for (char *p = upper + 12; *p; p++) if (*p >= 'a' && *p <= 'f') *p -= 32;
  CHECK(!rt_webchat_cookie_check("s3cret", upper, got));     /* only lower-case hex */
  /* the same value as a token (a framed page's hello) */
  CHECK(rt_webchat_token_check("s3cret", c, strlen(c), got));
  CHECK_STR(got, vid);
  CHECK(!rt_webchat_token_check("other", c, strlen(c), got));
  CHECK(!rt_webchat_token_check("s3cret", c, strlen(c) - 1, got));
  CHECK(!rt_webchat_token_check("s3cret", forged + 12, strlen(forged + 12), got));
  CHECK(!rt_webchat_token_check("s3cret", NULL, 0, got));
  free(c);
}

T(image_kind) {
  CHECK_STR(rt_webchat_image_kind((const unsigned char *)"\xFF\xD8\xFF\xE0xx", 6), "jpeg");
  CHECK_STR(rt_webchat_image_kind((const unsigned char *)"\x89PNG\r\n\x1a\nxx", 10), "png");
  CHECK_STR(rt_webchat_image_kind((const unsigned char *)"GIF89a..", 8), "gif");
  CHECK_STR(rt_webchat_image_kind((const unsigned char *)"RIFF\0\0\0\0WEBPVP8 ", 16), "webp");
  CHECK(!rt_webchat_image_kind((const unsigned char *)"<html>", 6));
  CHECK(!rt_webchat_image_kind((const unsigned char *)"%PDF-1.4", 8));
  CHECK(!rt_webchat_image_kind((const unsigned char *)"\xFF\xD8", 2));
  CHECK(!rt_webchat_image_kind(NULL, 0));
}

T(origin) {
  json_t *none = json_array();
  CHECK(rt_webchat_origin_ok(none, NULL, "127.0.0.1:8080"));                 /* not a browser */
  CHECK(rt_webchat_origin_ok(none, "http://127.0.0.1:8080", "127.0.0.1:8080"));
  CHECK(rt_webchat_origin_ok(none, "https://chat.shop.ru", "chat.shop.ru"));
  CHECK(!rt_webchat_origin_ok(none, "http://evil.example", "127.0.0.1:8080"));
  CHECK(!rt_webchat_origin_ok(none, "http://127.0.0.1:8080.evil", "127.0.0.1:8080"));
  CHECK(!rt_webchat_origin_ok(none, "null", "127.0.0.1:8080"));
  json_t *list = json_pack("[s]", "https://shop.ru");
  CHECK(rt_webchat_origin_ok(list, "https://shop.ru", "bot.shop.ru"));
  CHECK(rt_webchat_origin_ok(list, "HTTPS://SHOP.RU", "bot.shop.ru"));
  /* the chat page itself, framed on a listed site, opens its own socket */
  CHECK(rt_webchat_origin_ok(list, "https://bot.shop.ru", "bot.shop.ru"));
  CHECK(!rt_webchat_origin_ok(list, "https://evil.example", "bot.shop.ru"));
  CHECK(!rt_webchat_origin_ok(list, "https://bot.shop.ru", NULL));
  json_t *any = json_pack("[s]", "*");
  CHECK(rt_webchat_origin_ok(any, "http://anything", "x"));
  json_decref(none);
  json_decref(list);
  json_decref(any);
}

T(config) {
  rt_webchat *w;
  char *err = NULL;
  json_t *c = json_pack("{s:s}", "path", "chat");
  CHECK_INT(rt_webchat_new(c, &w, &err), RT_EINVAL);
  CHECK(err && strstr(err, "must start and end with /"));
  free(err);
  err = NULL;
  json_decref(c);
  c = json_pack("{s:s}", "path", "/chat/");
  CHECK_INT(rt_webchat_new(c, &w, &err), RT_OK);
  CHECK_STR(rt_webchat_channel(w)->name, "webchat");
  CHECK(rt_webchat_channel(w)->caps & RT_CH_BUTTONS);
  rt_webchat_free(w);
  json_decref(c);
  json_t *none = json_object();
  CHECK(rt_plugin_webchat.wanted(none) == true);
  json_decref(none);
  json_t *off = json_pack("{s:b}", "enabled", 0);
  CHECK(rt_plugin_webchat.wanted(off) == false);
  json_decref(off);
  json_error_t je;
  json_t *schema = json_loads(rt_plugin_webchat.schema_json, 0, &je);
  CHECK(json_is_object(schema));
  json_decref(schema);
}

/* ---- the plugin on a server ---- */

typedef struct host host;

typedef struct {
  host *h;
  void (*ack)(void *, int);
  void *ud;
  int status;
  uv_timer_t t;
} later_ack;

typedef struct outmsg {
  host *h;
  int64_t id, seq;
  char *chat, *text;
  char *buttons[2];
  int delivered, retries, inflight;
  uv_timer_t t;
  struct outmsg *next;
} outmsg;

/* A message the host took, for history. */
typedef struct took {
  int64_t seq;
  char *chat, *ext_id, *text, *extra;
  struct took *next;
} took;

struct host {
  uv_loop_t loop;
  took *took;
  int64_t seq;
  int history_calls, history_limit;
  rt_httpd *s;
  rt_webchat *w;
  rt_channel *ch;
  rt_plugin_env env;
  rt_map seen;          /* ext_ids taken */
  rt_map kv;
  int events, photos, dups;
  int64_t next_id;
  outmsg *out;
  char tmp[64], data[96];
  bool started;
};

static int64_t h_now(void *ud) { return (int64_t)uv_now(&((host *)ud)->loop); }

static void ack_freed(uv_handle_t *t) { free(t->data); }

static void ack_fire(uv_timer_t *t) {
  later_ack *a = t->data;
  a->ack(a->ud, a->status);
  uv_close((uv_handle_t *)t, ack_freed);
}

static void out_send(outmsg *o);

static void retry_fire(uv_timer_t *t) { out_send(t->data); }

static void sent(void *ud, const rt_send_result *r) {
  outmsg *o = ud;
  o->inflight = 0;
  if (r->verdict == RT_SEND_DELIVERED) { o->delivered++; return; }
  if (r->verdict == RT_SEND_RETRY_LATER) {
    o->retries++;
    int64_t after = r->after_ms > 0 ? r->after_ms : 200;
    if (after > 300) after = 300;   /* the test's own patience */
    uv_timer_start(&o->t, retry_fire, (uint64_t)after, 0);
  }
}

static void out_send(outmsg *o) {
  if (!o->h->started || o->delivered) return;
  const char *const bt[] = {o->buttons[0], o->buttons[1]};
  rt_out_msg m = {.id = o->id, .chat_id = o->chat, .idem_key = "k", .kind = RT_MSG_BUTTONS,
                  .text = o->text, .buttons = bt, .nbuttons = 2, .attempt = o->retries};
  o->inflight = 1;
  o->h->ch->send(o->h->ch, &m, sent, o);
}

static int h_receive(void *ud, const rt_event_in *ev, void (*ack)(void *, int), void *aud) {
  host *h = ud;
  if (!ev->chat_id) return RT_EINVAL;
  int status = RT_OK;
  if (rt_map_get(&h->seen, ev->ext_id)) { status = 1; h->dups++; }
  else {
    rt_map_set(&h->seen, ev->ext_id, (void *)1);
    h->events++;
    took *tk = rt_xcalloc(1, sizeof *tk);
    *tk = (took){++h->seq, rt_xstrdup(ev->chat_id), rt_xstrdup(ev->ext_id),
                 rt_xstrdup(ev->text ? ev->text : ""),
                 ev->extra_json ? rt_xstrdup(ev->extra_json) : NULL, h->took};
    h->took = tk;
    if (strcmp(ev->kind, "photo") == 0 && ev->extra_json && strstr(ev->extra_json, "\"photos\""))
      h->photos++;
    /* the bot answers every new message */
    outmsg *o = rt_xcalloc(1, sizeof *o);
    o->h = h;
    o->id = ++h->next_id;
    o->seq = ++h->seq;
    o->chat = rt_xstrdup(ev->chat_id);
    o->text = rt_xasprintf("echo: %s%s", strcmp(ev->kind, "photo") == 0 ? "photo " : "", ev->text);
    o->buttons[0] = rt_xstrdup("Да");
    o->buttons[1] = rt_xstrdup("Нет");
    uv_timer_init(&h->loop, &o->t);
    o->t.data = o;
    o->next = h->out;
    h->out = o;
    out_send(o);
  }
  later_ack *a = rt_xcalloc(1, sizeof *a);
  *a = (later_ack){h, ack, aud, status, {0}};
  uv_timer_init(&h->loop, &a->t);
  a->t.data = a;
  uv_timer_start(&a->t, ack_fire, 2, 0);
  return RT_OK;
}

/* As the store's history: the newest limit of the chat's messages taken
 * and replies delivered, oldest first. One extra row claims a photo of
 * another visitor, which the plugin must not pass on. */
static json_t *h_history(void *ud, const char *chat, int limit) {
  host *h = ud;
  h->history_calls++;
  if (limit > h->history_limit) h->history_limit = limit;
  json_t *a = json_array();
  for (int64_t q = h->seq; q > 0 && (int)json_array_size(a) < limit; q--) {
    for (took *t = h->took; t; t = t->next) {
      if (t->seq != q || strcmp(t->chat, chat) != 0) continue;
      json_t *ev = json_pack("{s:s}", "text", t->text);
      if (t->extra) {
        json_t *x = json_loads(t->extra, 0, NULL);
        if (json_is_object(x)) json_object_update(ev, x);
        json_decref(x);
      }
      json_array_insert_new(a, 0, json_pack("{s:s, s:I, s:s, s:o}", "from", "customer", "id", q,
                                            "ext_id", t->ext_id, "event", ev));
    }
    for (outmsg *o = h->out; o; o = o->next) {
      if (o->seq != q || !o->delivered || strcmp(o->chat, chat) != 0) continue;
      json_array_insert_new(a, 0, json_pack("{s:s, s:I, s:{s:s, s:[s,{s:s}]}}", "from", "bot",
                                            "id", (json_int_t)o->id, "message", "text", o->text,
                                            "buttons", o->buttons[0], "text", o->buttons[1]));
    }
  }
  json_array_append_new(a, json_pack("{s:s, s:I, s:s, s:{s:s, s:[{s:s}]}}", "from", "customer",
                                     "id", (json_int_t)0, "ext_id", "wc:x:forged", "event", "text",
                                     "чужое фото", "photos", "id",
                                     "ffffffffffffffffffffffffffffffff-0123456789abcdef.png"));
  return a;
}

static char *h_kv_get(void *ud, const char *name, const char *key) {
  host *h = ud;
  char k[128];
  snprintf(k, sizeof k, "%s/%s", name, key);
  const char *v = rt_map_get(&h->kv, k);
  return v ? rt_xstrdup(v) : NULL;
}

static int h_kv_set(void *ud, const char *name, const char *key, const char *val) {
  host *h = ud;
  char k[128];
  snprintf(k, sizeof k, "%s/%s", name, key);
  free(rt_map_del(&h->kv, k));
  if (val) rt_map_set(&h->kv, k, rt_xstrdup(val));
  return RT_OK;
}

static void started(void *ud, int status, const char *err) {
  host *h = ud;
  if (status != RT_OK) fprintf(stderr, "start: %s\n", err);
  h->started = status == RT_OK;
}

typedef struct { bool exited; int64_t status; } child;

static void on_exit_cb(uv_process_t *p, int64_t status, int sig) {
  child *c = p->data;
  c->exited = true;
  c->status = sig ? -sig : status;
  uv_close((uv_handle_t *)p, NULL);
}

static void one_done(void *ud) { (*(int *)ud)++; }

T(plugin_on_server) {
  host h;
  memset(&h, 0, sizeof h);
  uv_loop_init(&h.loop);
  rt_map_init(&h.seen);
  rt_map_init(&h.kv);
  snprintf(h.tmp, sizeof h.tmp, "/tmp/test-webchat-XXXXXX");
  CHECK(mkdtemp(h.tmp) != NULL);
  snprintf(h.data, sizeof h.data, "%s/files", h.tmp);
  char *err = NULL;
  CHECK_INT(rt_httpd_new(&h.loop, "127.0.0.1:0", &h.s, &err), RT_OK);
  json_t *conf = json_pack("{s:i, s:i, s:i}", "max_message_bytes", 200, "burst", 5,
                           "rate_per_minute", 600);
  CHECK_INT(rt_webchat_new(conf, &h.w, &err), RT_OK);
  json_decref(conf);
  h.ch = rt_webchat_channel(h.w);
  h.env = (rt_plugin_env){.loop = &h.loop, .name = "webchat", .conf = NULL, .httpd = h.s,
                          .data_dir = h.data, .now_ms = h_now, .receive = h_receive,
                          .kv_get = h_kv_get, .kv_set = h_kv_set, .history = h_history,
                          .host = &h};
  h.ch->start(h.ch, &h.env, started, &h);
  CHECK(h.started);
  CHECK(rt_map_get(&h.kv, "webchat/cookie_secret") != NULL);   /* kept for restarts */

  const char *src = getenv("RT_SOURCE_DIR");
  char *cmd = rt_xasprintf("timeout 60 python3 %s/tests/unit/webchat_ws.py %d %s > %s/out 2>&1",
                           src ? src : RT_SOURCE_DIR, rt_httpd_port(h.s), h.data, h.tmp);
  char *args[] = {"sh", "-c", cmd, NULL};
  uv_process_t p;
  child c = {0};
  uv_process_options_t o;
  memset(&o, 0, sizeof o);
  o.file = "sh";
  o.args = args;
  o.exit_cb = on_exit_cb;
  p.data = &c;
  CHECK_INT(uv_spawn(&h.loop, &p, &o), 0);
  while (!c.exited) uv_run(&h.loop, UV_RUN_ONCE);
  char *outp = rt_xasprintf("%s/out", h.tmp);
  FILE *f = fopen(outp, "r");
  char line[4096];
  while (f && fgets(line, sizeof line, f)) fprintf(stderr, "  | %s", line);
  if (f) fclose(f);
  free(outp);
  CHECK_INT(c.status, 0);
  /* What the host saw: every message once however often it was resent,
   * every bot reply delivered exactly once (acked by a page). */
  fprintf(stderr, "  host: events=%d dups=%d photos=%d\n", h.events, h.dups, h.photos);
  CHECK(h.dups >= 2);
  CHECK(h.photos == 1);
  int undelivered = 0, twice = 0;
  for (outmsg *m = h.out; m; m = m->next) {
    if (m->delivered == 0) undelivered++;
    if (m->delivered > 1) twice++;
  }
  CHECK_INT(twice, 0);
  /* every socket opened asked for the history, bounded */
  CHECK(h.history_calls >= 5);
  CHECK(h.history_limit > 0 && h.history_limit <= 50);
  /* the flood visitor's socket was closed with replies pending: those may
   * still be waiting; the rest are all delivered */
  fprintf(stderr, "  host: replies=%lld undelivered=%d\n", (long long)h.next_id, undelivered);

  int closed = 0;
  rt_httpd_close(h.s, one_done, &closed);
  h.ch->close(h.ch, one_done, &closed);
  while (closed < 2) uv_run(&h.loop, UV_RUN_ONCE);
  for (outmsg *m = h.out, *n; m; m = n) {
    n = m->next;
    uv_close((uv_handle_t *)&m->t, NULL);
  }
  uv_run(&h.loop, UV_RUN_DEFAULT);
  for (outmsg *m = h.out, *n; m; m = n) {
    n = m->next;
    free(m->chat); free(m->text); free(m->buttons[0]); free(m->buttons[1]);
    free(m);
  }
  for (took *t = h.took, *n; t; t = n) {
    n = t->next;
    free(t->chat); free(t->ext_id); free(t->text); free(t->extra);
    free(t);
  }
  CHECK_INT(uv_loop_close(&h.loop), 0);   /* close freed the channel */
  size_t it = 0;
  const char *k;
  void *v;
  while (rt_map_next(&h.kv, &it, &k, &v)) free(v);
  rt_map_free(&h.kv);
  rt_map_free(&h.seen);
  free(cmd);
  char *rm = rt_xasprintf("rm -rf %s", h.tmp);
  if (system(rm) != 0) { /* a leftover temp folder is harmless */ }
  free(rm);
}

int main(void) {
  T_RUN(cookie);
  T_RUN(image_kind);
  T_RUN(origin);
  T_RUN(config);
  T_RUN(plugin_on_server);
  return T_DONE();
}
