/* console.c -- see console.h. */
#include "console.h"
#include "engine.h"
#include "log.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct rt_console {
  rt_channel ch;
  uv_loop_t *loop;
  rt_engine *e;
  char *user;
  union { uv_tty_t tty; uv_pipe_t pipe; } in;
  bool in_open, is_file;
  char *buf;
  size_t len, cap;
  char chunk[65536];          /* read buffer: the data is copied out at once */
  uint64_t seq;
  void (*on_eof)(void *);
  void *eof_ud;
  void (*close_done)(void *);
  void *close_ud;
};

/* ---- output ---- */

static void print_msg(const char *prefix, const char *text) {
  if (prefix) fputs(prefix, stdout);
  for (const char *p = text; *p; p++) {
    fputc(*p, stdout);
    if (*p == '\n') fputs("  ", stdout);
  }
  fputc('\n', stdout);
  fflush(stdout);
}

static void console_send(rt_channel *ch, const char *chat_id, const char *kind,
                         const char *payload, const char *idem, rt_send_done done, void *ud) {
  rt_console *c = ch->impl;
  json_t *p = json_loads(payload, 0, NULL);
  const char *text = json_string_value(json_object_get(p, "text"));
  if (!text) text = "";
  if (strcmp(chat_id, c->user) == 0) {
    print_msg(NULL, text);
  } else {
    char prefix[300];
    snprintf(prefix, sizeof prefix, "[to %s] ", chat_id);
    print_msg(prefix, text);
  }
  json_t *buttons = json_object_get(p, "buttons");
  if (json_array_size(buttons)) {
    size_t i;
    json_t *b;
    fputs("  [", stdout);
    json_array_foreach(buttons, i, b) {
      const char *t = json_is_string(b) ? json_string_value(b)
                                        : json_string_value(json_object_get(b, "text"));
      printf("%s%s", i ? "] [" : "", t ? t : "?");
    }
    fputs("]\n", stdout);
    fflush(stdout);
  }
  json_decref(p);
  done(ud, RT_OK, NULL, 0);
}

/* ---- input ---- */

static void line(rt_console *c, char *s) {
  size_t n = strlen(s);
  while (n && (s[n - 1] == '\r' || s[n - 1] == '\n')) s[--n] = '\0';
  char ext[96];
  snprintf(ext, sizeof ext, "console:%s:%llu:%llu", c->user,
           (unsigned long long)uv_hrtime(), (unsigned long long)++c->seq);
  rt_event_in ev = {.channel = "console", .ext_id = ext, .chat_id = c->user,
                    .user_id = c->user, .kind = "text", .text = s};
  if (strncmp(s, "/manager ", 9) == 0) {
    ev.kind = "manager";
    ev.text = s + 9;
  } else if (strcmp(s, "/reload") == 0) {
    char *err = NULL;
    if (rt_engine_reload(c->e, &err) != RT_OK) fprintf(stderr, "reload failed: %s\n", err);
    free(err);
    return;
  }
  rt_engine_receive(c->e, &ev, NULL, NULL);
}

static void feed(rt_console *c, const char *data, size_t n) {
  if (c->len + n + 1 > c->cap) {
    c->cap = (c->len + n + 1) * 2;
    c->buf = rt_xrealloc(c->buf, c->cap);
  }
  memcpy(c->buf + c->len, data, n);
  c->len += n;
  c->buf[c->len] = '\0';
  char *start = c->buf, *nl;
  while ((nl = memchr(start, '\n', c->len - (size_t)(start - c->buf)))) {
    *nl = '\0';
    line(c, start);
    start = nl + 1;
  }
  c->len -= (size_t)(start - c->buf);
  memmove(c->buf, start, c->len);
}

static void finish_input(rt_console *c) {
  if (c->len) {
    c->buf[c->len] = '\0';
    line(c, c->buf);
    c->len = 0;
  }
  if (c->on_eof) {
    void (*cb)(void *) = c->on_eof;
    c->on_eof = NULL;
    cb(c->eof_ud);
  }
}

static void alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *b) {
  (void)hint;
  rt_console *c = h->data;
  *b = uv_buf_init(c->chunk, sizeof c->chunk);
}

static void read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
  rt_console *c = s->data;
  if (n > 0) feed(c, b->base, (size_t)n);
  else if (n < 0) {
    uv_read_stop(s);
    finish_input(c);
  }
}

int rt_console_start(rt_console *c, rt_engine *e, void (*on_eof)(void *), void *ud, char **err) {
  c->e = e;
  c->on_eof = on_eof;
  c->eof_ud = ud;
  uv_handle_type t = uv_guess_handle(0);
  int rc;
  if (t == UV_TTY) {
    rc = uv_tty_init(c->loop, &c->in.tty, 0, 1);
  } else if (t == UV_NAMED_PIPE || t == UV_TCP) {
    rc = uv_pipe_init(c->loop, &c->in.pipe, 0);
    if (rc == 0) {
      c->in_open = true;
      rc = uv_pipe_open(&c->in.pipe, 0);
    }
  } else {
    /* A regular file (or /dev/null): read it whole; it cannot block. */
    c->is_file = true;
    char chunk[65536];
    ssize_t n;
    while ((n = read(0, chunk, sizeof chunk)) > 0) feed(c, chunk, (size_t)n);
    finish_input(c);
    return RT_OK;
  }
  if (rc == 0) {
    c->in_open = true;
    c->in.pipe.data = c;
    rc = uv_read_start((uv_stream_t *)&c->in.pipe, alloc_cb, read_cb);
  }
  if (rc != 0) {
    *err = rt_xasprintf("cannot read stdin: %s", uv_strerror(rc));
    return RT_EIO;
  }
  return RT_OK;
}

rt_console *rt_console_new(uv_loop_t *loop, const char *user) {
  rt_console *c = rt_xcalloc(1, sizeof *c);
  c->loop = loop;
  c->user = rt_xstrdup(user);
  c->ch = (rt_channel){.name = "console", .impl = c, .send = console_send};
  return c;
}

rt_channel *rt_console_channel(rt_console *c) { return &c->ch; }

static void console_free(rt_console *c) {
  void (*done)(void *) = c->close_done;
  void *ud = c->close_ud;
  free(c->buf);
  free(c->user);
  free(c);
  if (done) done(ud);
}

static void closed(uv_handle_t *h) { console_free(h->data); }

void rt_console_close(rt_console *c, void (*done)(void *), void *ud) {
  c->close_done = done;
  c->close_ud = ud;
  if (c->in_open) {
    c->in.pipe.data = c;
    uv_close((uv_handle_t *)&c->in.pipe, closed);
  } else {
    console_free(c);
  }
}
