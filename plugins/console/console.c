/* console.c -- see console.h. */
#include "console.h"
#include "plugins/console_schema.h" /* generated from schema.json (CMakeLists.txt) */
#include "buf.h"
#include "log.h"
#include "utf8.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CHUNK_SIZE 65536

struct rt_console {
  rt_channel ch;
  uv_loop_t *loop;
  const rt_plugin_env *env;  /* the host's, lent at start */
  char *user;
  bool fresh;                 /* chat --fresh: start the chat over at start */
  /* The mode asked for by a line typed here (/manager take: "manager";
   * release, /new: "bot"), which the store shows only once that event is
   * processed: until it does, lines typed after it (a pipe is quick) are
   * judged by this one. NULL: the store's. */
  const char *expect;
  union { uv_tty_t tty; uv_pipe_t pipe; } in;
  bool in_open;
  uv_timer_t first_tick;      /* the look at the chat once the engine runs */
  bool tick_open;
  int closing;                /* handles still closing */
  rt_buf in_line;             /* input after the last newline */
  char *chunk;                /* read buffer, made at the first read: the data is
                               * copied out at once */
  uint64_t seq;
  void (*on_eof)(void *);
  void *eof_ud;
  void (*close_done)(void *);
  void *close_ud;
};

/* ---- output ----
 *
 * Everything printed here came from outside: customers' words, flow output
 * quoting them, lead fields, chat ids. On a terminal a control character is
 * a command (ESC [2J clears the screen, ESC ]0; sets the title, CR and BS
 * overwrite what the operator sees), so none reaches stdout raw:
 *   - C0 controls and DEL become their visible pictures (ESC -> U+241B "␛",
 *     CR -> U+240D "␍", BEL -> U+2407 "␇"), so the operator sees that
 *     something was there and what;
 *   - C1 controls (U+0080-U+009F, which some terminals obey as CSI and OSC),
 *     bidi overrides and isolates (which reorder what follows them on the
 *     line, so "[to managers]" text can look like something else) and bytes
 *     that are not UTF-8 become U+FFFD;
 *   - a newline in a message body stays a line break, indented by two spaces
 *     as the channel always did, so a continuation can never look like a
 *     line of its own; in one-line fields (chat id, button) it is "␤";
 *   - tab stays. */

static bool is_bidi_control(uint32_t c) {
  return c == 0x061C || c == 0x200E || c == 0x200F || (c >= 0x202A && c <= 0x202E) ||
         (c >= 0x2066 && c <= 0x2069);
}

static void put_cp(FILE *f, uint32_t c) {
  char u[4];
  fwrite(u, 1, rt_utf8_encode(c, u), f);
}

/* Writes text to f made safe for a terminal (see above). */
static void put_safe(FILE *f, const char *text, bool multiline) {
  size_t n;
  char *clean = rt_utf8_clean(text, strlen(text), &n); /* valid UTF-8 from here on */
  const unsigned char *p = (const unsigned char *)clean, *end = p + n;
  while (p < end) {
    unsigned char b = *p;
    if (b == '\n') {
      if (multiline) fputs("\n  ", f);
      else put_cp(f, 0x2424);
      p++;
    } else if (b == '\t') {
      fputc('\t', f);
      p++;
    } else if (b < 0x20) {
      put_cp(f, 0x2400 + b);
      p++;
    } else if (b == 0x7F) {
      put_cp(f, 0x2421);
      p++;
    } else if (b < 0x80) {
      fputc(b, f);
      p++;
    } else {
      size_t len;
      uint32_t c = rt_utf8_decode((const char *)p, (size_t)(end - p), &len); /* valid here */
      if ((c >= 0x80 && c <= 0x9F) || is_bidi_control(c)) put_cp(f, 0xFFFD);
      else fwrite(p, 1, len, f);
      p += len;
    }
  }
  free(clean);
}

static void print_msg(const char *to, const char *text) {
  if (to) {
    fputs("[to ", stdout);
    put_safe(stdout, to, false);
    fputs("] ", stdout);
  }
  put_safe(stdout, text, true);
  fputc('\n', stdout);
  fflush(stdout);
}

static void console_send(rt_channel *ch, const rt_out_msg *m, rt_send_done done, void *ud) {
  rt_console *c = ch->impl;
  print_msg(strcmp(m->chat_id, c->user) == 0 ? NULL : m->chat_id, m->text);
  if (m->nbuttons) {
    fputs("  [", stdout);
    for (size_t i = 0; i < m->nbuttons; i++) {
      if (i) fputs("] [", stdout);
      put_safe(stdout, m->buttons[i], false);
    }
    fputs("]\n", stdout);
    fflush(stdout);
  }
  done(ud, &(rt_send_result){.verdict = RT_SEND_DELIVERED});
}

/* ---- customer ids ---- */

#define STR_(x) #x
#define STR(x) STR_(x)

const char *rt_console_user_problem(const char *user) {
  size_t n = user ? strlen(user) : 0;
  if (n == 0) return "--user needs an ID";
  if (n > RT_CONSOLE_USER_MAX)
    return "--user ID is too long (at most " STR(RT_CONSOLE_USER_MAX) " characters)";
  for (const char *p = user; *p; p++) {
    char ch = *p;
    if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
          ch == '.' || ch == '_' || ch == '-' || ch == '+' || ch == '@'))
      return "--user ID may only contain letters A-Z a-z, digits and . _ - + @";
  }
  return NULL;
}

/* ---- who talks in the chat ----
 *
 * A chat handed to a manager stays so across runs (the store is the
 * shop's), and then the bot answers nothing: the operator at the terminal
 * is told so, at start and with each line typed while it lasts, with the
 * way out. These are the terminal tool's own lines (stderr, "-- ", like
 * the reload lines), not the bot's words. */

static char *mode_now(rt_console *c) {
  return c->env && c->env->conv_mode ? c->env->conv_mode(c->env->host, c->user) : NULL;
}

static bool is_bot(const char *mode) { return !mode || strcmp(mode, "bot") == 0; }

/* The terminal's lines are the shop's (channels.console.texts, defaults
 * in schema.json): {who}, {why} filled here. */
static const char *text_of(rt_console *c, const char *key) {
  const json_t *t = c->env ? json_object_get(c->env->conf, "texts") : NULL;
  const char *s = json_string_value(json_object_get(t, key));
  return s ? s : "";
}

static const char *who_has_it(rt_console *c, const char *mode) {
  return text_of(c, strcmp(mode, "manager") == 0 ? "manager" : "handoff");
}

static void tell(rt_console *c, const char *key, const char *who, const char *why) {
  static const char *const names[] = {"who", "why"};
  const char *values[] = {who, why};
  rt_buf b = RT_BUF_INIT;
  rt_buf_fill(&b, text_of(c, key), names, values, 2);
  if (b.len) {
    fputs("-- ", stderr);
    put_safe(stderr, rt_buf_str(&b), true);
    fputc('\n', stderr);
    fflush(stderr);
  }
  rt_buf_free(&b);
}

/* ---- input ---- */

/* Queues one event of this chat; RT_OK or the host's refusal. */
static int post(rt_console *c, const char *kind, const char *text) {
  /* The whole user id is in the event id, however long: a truncated id
   * would make every later line a "duplicate" of the first. */
  char *ext = rt_xasprintf("console:%s:%llu:%llu", c->user,
                           (unsigned long long)uv_hrtime(), (unsigned long long)++c->seq);
  rt_event_in ev = {.channel = "console", .ext_id = ext, .chat_id = c->user,
                    .user_id = c->user, .kind = kind, .text = text};
  int rc = c->env->receive(c->env->host, &ev, NULL, NULL);
  if (rc != RT_OK) rt_log(RT_LOG_WARN, "console-line-dropped", "kind=%s", kind);
  free(ext);
  return rc;
}

/* The chat starts over: a "reset" event (handoff.h), in line with the
 * others, so what was typed before it is processed before it. */
static void start_over(rt_console *c, const char *why) {
  if (post(c, "reset", "") != RT_OK) return;
  c->expect = "bot";
  tell(c, "new_chat", NULL, why);
}

/* A customer's line while the chat is with a manager: say so. */
static void tell_if_manager(rt_console *c) {
  char *stored = mode_now(c);
  const char *mode = stored ? stored : "bot";
  if (c->expect && strcmp(mode, c->expect) != 0) mode = c->expect;
  else c->expect = NULL;
  if (!is_bot(mode))
    tell(c, "silent_line", who_has_it(c, mode), NULL);
  free(stored);
}

/* Once the engine runs: --fresh starts the chat over; otherwise a chat
 * left with a manager (or just unfinished) is named, with the way out. */
static void first_look(uv_timer_t *t) {
  rt_console *c = t->data;
  char *mode = mode_now(c);
  if (mode && c->fresh) {
    start_over(c, text_of(c, "fresh"));
  } else if (!is_bot(mode)) {
    tell(c, "silent_start", who_has_it(c, mode), NULL);
  } else if (mode) {
    tell(c, "resumed", NULL, NULL);
  }
  free(mode);
}

static void line(rt_console *c, char *s) {
  size_t n = strlen(s);
  while (n && (s[n - 1] == '\r' || s[n - 1] == '\n')) s[--n] = '\0';
  if (strncmp(s, "/manager ", 9) == 0) {
    if (post(c, "manager", s + 9) == RT_OK) {
      if (strcmp(s + 9, "release") == 0) c->expect = "bot";
      else if (strcmp(s + 9, "take") == 0) c->expect = "manager";
    }
  } else if (strcmp(s, "/new") == 0) {
    start_over(c, "");
  } else if (strcmp(s, "/reload") == 0) {
    char *err = NULL;
    if (c->env->command(c->env->host, "reload", &err) != RT_OK) {
      fputs("reload failed: ", stderr);
      put_safe(stderr, err ? err : "?", true);
      fputc('\n', stderr);
    }
    free(err);
  } else {
    tell_if_manager(c);
    post(c, "text", s);
  }
}

static void feed(rt_console *c, const char *data, size_t n) {
  rt_buf *b = &c->in_line;
  rt_buf_add(b, data, n);
  if (!b->s) return;
  char *start = b->s, *nl;
  while ((nl = memchr(start, '\n', b->len - (size_t)(start - b->s)))) {
    *nl = '\0';
    line(c, start);
    start = nl + 1;
  }
  rt_buf_consume(b, (size_t)(start - b->s));
}

static void finish_input(rt_console *c) {
  if (c->in_line.len) {
    line(c, c->in_line.s);
    rt_buf_reset(&c->in_line);
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
  if (!c->chunk) c->chunk = rt_xmalloc(CHUNK_SIZE);
  *b = uv_buf_init(c->chunk, CHUNK_SIZE);
}

static void read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
  rt_console *c = s->data;
  if (n > 0) feed(c, b->base, (size_t)n);
  else if (n < 0) {
    uv_read_stop(s);
    finish_input(c);
  }
}

/* Reads stdin in `chat` (on_eof given); `run` only prints. */
static int console_read(rt_console *c, char **err) {
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

static void console_start(rt_channel *ch, const rt_plugin_env *env,
                          void (*done)(void *, int, const char *), void *ud) {
  rt_console *c = ch->impl;
  c->env = env;
  c->loop = env->loop;
  char *err = NULL;
  int rc = c->on_eof ? console_read(c, &err) : RT_OK;
  /* The engine starts after the plugins: the look at the chat waits for
   * the loop's first turn, before any line read. */
  if (rc == RT_OK && c->on_eof && uv_timer_init(c->loop, &c->first_tick) == 0) {
    c->tick_open = true;
    c->first_tick.data = c;
    uv_timer_start(&c->first_tick, first_look, 0, 0);
  }
  done(ud, rc, err);
  free(err);
}

static void console_close(rt_channel *ch, void (*done)(void *), void *ud);

rt_console *rt_console_new(const char *user, bool fresh, void (*on_eof)(void *), void *ud) {
  rt_console *c = rt_xcalloc(1, sizeof *c);
  c->user = rt_xstrdup(user);
  c->fresh = fresh;
  c->on_eof = on_eof;
  c->eof_ud = ud;
  /* A terminal shows buttons as [text]; nothing is rate-limited. */
  c->ch = (rt_channel){.name = "console", .impl = c, .caps = RT_CH_BUTTONS,
                       .start = console_start, .send = console_send, .close = console_close};
  return c;
}

rt_channel *rt_console_channel(rt_console *c) { return &c->ch; }

static void console_free(rt_console *c) {
  void (*done)(void *) = c->close_done;
  void *ud = c->close_ud;
  rt_buf_free(&c->in_line);
  free(c->chunk);
  free(c->user);
  free(c);
  if (done) done(ud);
}

static void closed(uv_handle_t *h) {
  rt_console *c = h->data;
  if (--c->closing == 0) console_free(c);
}

static void console_close(rt_channel *ch, void (*done)(void *), void *ud) {
  rt_console *c = ch->impl;
  c->close_done = done;
  c->close_ud = ud;
  c->closing = 1;   /* held until both handles are asked to close */
  if (c->in_open) {
    c->closing++;
    c->in.pipe.data = c;
    uv_close((uv_handle_t *)&c->in.pipe, closed);
  }
  if (c->tick_open) {
    c->closing++;
    c->first_tick.data = c;
    uv_close((uv_handle_t *)&c->first_tick, closed);
  }
  if (--c->closing == 0) console_free(c);
}

/* ---- the plugin (plugins/plugins.c) ----
 *
 * In `shopbot run` the registry creates the console from its section when
 * channels.console.enabled is true: it only prints what the bot sends to
 * stdout. `shopbot chat` makes its own with rt_console_new (the customer at
 * the terminal, stdin read) and lends it to the host in place of this one. */

static bool console_wanted(const json_t *conf) {
  return !json_is_false(json_object_get(conf, "enabled"));
}

static int console_create(const json_t *conf, rt_channel **ch, rt_provider **pv, char **err) {
  (void)conf;
  (void)pv;
  (void)err;
  *ch = rt_console_channel(rt_console_new("-", false, NULL, NULL));
  return RT_OK;
}

const rt_plugin rt_plugin_console = {
  .name = "console",
  .version = "1.0.0",
  .kind = RT_PLUGIN_CHANNEL,
  .schema_json = (const char *)rt_console_schema_json,
  .no_http = true,
  .wanted = console_wanted,
  .create = console_create,
};
