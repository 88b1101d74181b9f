/* ocr.c -- see ocr.h and README.md.
 *
 * One call reads one photo: `convert` enlarges a small photo and makes it
 * grey, `tesseract` reads it, both in one sh pipeline under an address-space
 * limit, in a process group killed at the deadline (runtime/subproc.h). The
 * first reading is in `lang` (eng: measured on this machine, tesseract 5.3
 * reads a VIN right with eng and returns Cyrillic look-alikes and digit
 * confusions for the same VIN with rus+eng); only when it finds no car id,
 * a second reading in `retry_lang` gives the Russian words of a part label.
 * At most max_in_flight processes run at once (the machine's cores are the
 * bots' too); further calls wait in a FIFO of max_queue, then "limit". */
#include "ocr.h"
#include "plugins/ocr_schema.h" /* generated from schema.json (CMakeLists.txt) */
#include "buf.h"
#include "log.h"
#include "rt.h"
#include "subproc.h"
#include "utf8.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct ocr ocr;

struct rt_call {
  ocr *o;
  rt_call *prev, *next;     /* in o->queue or o->running */
  bool running;
  char *path;
  int stage;                /* 0: lang, 1: retry_lang */
  rt_subproc *sp;
  rt_call_done done;
  void *ud;
  double ms;
  char *first_text;         /* the first reading, when a second one runs */
};

typedef struct {
  rt_call *head, *tail;
  size_t n;
} call_list;

struct ocr {
  rt_provider p;
  const rt_plugin_env *env;
  char *lang, *retry_lang, *tesseract, *convert;
  long timeout_ms, memory_kb, scale_to;
  size_t max_in_flight, max_queue;
  long long max_file;
  call_list queue, running;
  bool ok;                  /* tesseract and the languages are there */
  char *problem;
  uint64_t reads, found, failed;
};

/* ---- car ids in OCR text --------------------------------------------- */

/* What OCR prints for a character of a VIN, upper-cased Latin: Cyrillic
 * look-alikes (rus readings), З and б for 3 and 6. ' ' separates words that
 * may still be one id, '.' ends it. */
static char ocr_class(uint32_t cp) {
  if (cp >= '0' && cp <= '9') return (char)cp;
  if (cp >= 'a' && cp <= 'z') return (char)(cp - 32);
  if (cp >= 'A' && cp <= 'Z') return (char)cp;
  if (cp == 0x431) return '6';                 /* б */
  if (cp >= 0x430 && cp <= 0x44F) cp -= 0x20;
  switch (cp) {
  case 0x410: return 'A';
  case 0x412: return 'B';
  case 0x415: return 'E';
  case 0x417: return '3';                      /* З */
  case 0x41A: return 'K';
  case 0x41C: return 'M';
  case 0x41D: return 'H';
  case 0x41E: return 'O';
  case 0x420: return 'P';
  case 0x421: return 'C';
  case 0x422: return 'T';
  case 0x423: return 'Y';
  case 0x425: return 'X';
  default: break;
  }
  if (cp == ' ' || cp == '\t' || cp == '-') return ' ';
  return '.';
}

static bool alnum(char c) { return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z'); }
static bool digit(char c) { return c >= '0' && c <= '9'; }

/* The digit OCR may have read as a letter; 0 when none. */
static char as_digit(char c) {
  switch (c) {
  case 'O': case 'Q': case 'D': case 'U': return '0';
  case 'I': case 'L': case 'J': return '1';
  case 'Z': return '2';
  case 'A': return '4';
  case 'S': return '5';
  case 'G': case 'b': return '6';
  case 'T': return '7';
  case 'B': return '8';
  default: return digit(c) ? c : 0;
  }
}

/* The other reading of a character OCR confuses both ways. */
static char twin(char c) {
  switch (c) {
  case 'B': return '8';
  case '8': return 'B';
  case 'S': return '5';
  case '5': return 'S';
  case 'Z': return '2';
  case '2': return 'Z';
  case 'G': return '6';
  case '6': return 'G';
  case 'O': return '0';
  case '0': return 'O';
  case 'D': return '0';
  case 'I': return '1';
  case '1': return 'I';
  default: return 0;
  }
}

/* A 17-character candidate made a VIN by the text helper's rules, after the
 * serial's last four are forced to digits and, for a North American VIN
 * (where the check digit is mandatory), one confused character is swapped
 * when exactly one swap makes the check digit right. */
static bool fix17(const char *in, rt_text_car *car) {
  char v[18];
  memcpy(v, in, 17);
  v[17] = '\0';
  /* OCR confuses a character or two, it does not make a serial out of a
   * word: "PERUCTPAUMOHHBIN" (Регистрационный read as eng) is no VIN. */
  int digits = 0, tail = 0;
  for (int i = 0; i < 17; i++) digits += digit(v[i]);
  for (int i = 13; i < 17; i++) tail += digit(v[i]);
  if (digits < 5 || tail < 3) return false;
  for (int i = 13; i < 17; i++) {
    char d = as_digit(v[i]);
    if (!d) return false;
    v[i] = d;
  }
  for (int i = 0; i < 17; i++) {
    if (v[i] == 'O' || v[i] == 'Q') v[i] = '0';
    else if (v[i] == 'I') v[i] = '1';
  }
  /* OCR also reads a leading 1 as L ("LHGYF..." for "1HGYF..."): that
   * swap is tried too, and a variant counts only if it is North American. */
  if (!rt_text_vin_check(v) && ((v[0] >= '1' && v[0] <= '5') || v[0] == 'L')) {
    int hits = 0, at = -1;
    char to = 0;
    for (int i = 0; i < 13; i++) {
      char t = i == 0 && v[0] == 'L' ? '1' : twin(v[i]);
      if (!t || t == 'O' || t == 'I') continue;
      char keep = v[i];
      v[i] = t;
      if (v[0] >= '1' && v[0] <= '5' && rt_text_vin_check(v)) { hits++; at = i; to = t; }
      v[i] = keep;
    }
    if (hits == 1) v[at] = to;
  }
  rt_text_car found[2];
  if (rt_text_cars(v, found, 2) != 1 || found[0].kind != 'v') return false;
  *car = found[0];
  return true;
}

/* An 18-character candidate: OCR read one character twice ("Z2", "G6",
 * "o0"). Drop either half of each such pair; a variant whose check digit
 * verifies wins, otherwise the one that kept the digit. */
static bool fix18(const char *in, rt_text_car *car) {
  int best = -1;
  for (int i = 0; i + 1 < 18; i++) {
    char a = in[i], b = in[i + 1];
    if (twin(a) != b && twin(b) != a && !(a == b && twin(a))) continue;
    for (int drop = 0; drop < 2; drop++) {
      char v[18];
      int o = 0;
      for (int k = 0; k < 18; k++)
        if (k != i + drop) v[o++] = in[k];
      rt_text_car c;
      if (!fix17(v, &c)) continue;
      int score = (c.check_ok ? 2 : 0) + (digit(drop == 0 ? b : a) ? 1 : 0);
      if (score > best) {
        best = score;
        *car = c;
      }
    }
  }
  return best >= 0;
}

static bool add_unique(rt_text_car *out, int *n, int max, const rt_text_car *c) {
  for (int i = 0; i < *n; i++)
    if (out[i].kind == c->kind && strcmp(out[i].value, c->value) == 0) return true;
  if (*n >= max) return false;
  out[(*n)++] = *c;
  return true;
}

typedef struct { size_t a, b; } tok;

/* One line of OCR output. */
static void line_cars(const char *m, size_t n, rt_text_car *out, int *cnt, int max) {
  tok t[64];
  size_t nt = 0;
  for (size_t i = 0; i < n && nt < RT_ARRAY_LEN(t);) {
    if (!alnum(m[i])) { i++; continue; }
    size_t b = i;
    while (b < n && alnum(m[b])) b++;
    t[nt++] = (tok){i, b};
    i = b;
  }
  bool used[64] = {false};
  for (int want = 17; want <= 18; want++) {
    for (size_t k = 0; k < nt; k++) {
      if (used[k]) continue;
      size_t len = t[k].b - t[k].a, j = k;
      while (len < (size_t)want && j + 1 < nt && !used[j + 1]) {
        size_t gap = t[j + 1].a - t[j].b;
        bool spaces = gap >= 1 && gap <= 3;
        for (size_t g = t[j].b; spaces && g < t[j + 1].a; g++) spaces = m[g] == ' ';
        if (!spaces) break;
        j++;
        len += t[j].b - t[j].a;
      }
      if (len != (size_t)want) continue;
      char v[19];
      size_t o = 0;
      for (size_t x = k; x <= j; x++)
        for (size_t p = t[x].a; p < t[x].b; p++) v[o++] = m[p];
      v[o] = '\0';
      rt_text_car c;
      if (!(want == 17 ? fix17(v, &c) : fix18(v, &c))) continue;
      if (!add_unique(out, cnt, max, &c)) return;
      for (size_t x = k; x <= j; x++) used[x] = true;
      k = j;
    }
  }
}

int rt_ocr_cars(const char *text, rt_text_car *out, int max) {
  if (!text || !out || max <= 0) return 0;
  int cnt = 0;
  size_t n = strlen(text);
  char *m = rt_xmalloc(n + 1);
  size_t mn = 0;
  for (size_t i = 0; i <= n;) {
    if (i == n || text[i] == '\n' || text[i] == '\r' || text[i] == '\f') {
      line_cars(m, mn, out, &cnt, max);
      mn = 0;
      i++;
      continue;
    }
    size_t len;
    uint32_t cp = rt_utf8_decode(text + i, n - i, &len);
    m[mn++] = ocr_class(cp);
    i += len;
  }
  free(m);
  /* Frame numbers (GX110-6012345) as the text helper reads them. */
  rt_text_car more[8];
  int k = rt_text_cars(text, more, (int)RT_ARRAY_LEN(more));
  for (int i = 0; i < k; i++)
    if (more[i].kind == 'f' && !add_unique(out, &cnt, max, &more[i])) break;
  return cnt;
}

/* ---- the calls --------------------------------------------------------- */

static void list_push(call_list *l, rt_call *c) {
  c->prev = l->tail;
  c->next = NULL;
  if (l->tail) l->tail->next = c;
  else l->head = c;
  l->tail = c;
  l->n++;
}

static void list_del(call_list *l, rt_call *c) {
  if (c->prev) c->prev->next = c->next;
  else l->head = c->next;
  if (c->next) c->next->prev = c->prev;
  else l->tail = c->prev;
  c->prev = c->next = NULL;
  l->n--;
}

static void call_free(rt_call *c) {
  free(c->path);
  free(c->first_text);
  free(c);
}

static void pump(ocr *o);
static int run(rt_call *c, char *errmsg);

static void finish(rt_call *c, const rt_call_result *r) {
  ocr *o = c->o;
  list_del(&o->running, c);
  rt_call_done done = c->done;
  void *ud = c->ud;
  call_free(c);
  done(ud, r);
  pump(o);
}

static void fail(rt_call *c, const char *code, const char *detail) {
  c->o->failed++;
  rt_log(RT_LOG_WARN, "ocr-failed", "error=%s detail=\"%.120s\"", code, detail);
  rt_call_result r;
  memset(&r, 0, sizeof r);
  r.status = RT_EIO;
  r.error = code;
  r.detail = detail;
  finish(c, &r);
}

/* The last non-empty line of tesseract's or convert's stderr. */
static void last_line(const char *s, char *out, size_t n) {
  const char *end = s + strlen(s);
  while (end > s && (end[-1] == '\n' || end[-1] == '\r' || end[-1] == ' ')) end--;
  const char *b = end;
  while (b > s && b[-1] != '\n') b--;
  snprintf(out, n, "%.*s", (int)(end - b), b);
}

static void on_read_done(rt_subproc_result *sr, void *ud) {
  rt_call *c = ud;
  ocr *o = c->o;
  c->sp = NULL;
  c->ms += sr->ms;
  if (sr->err != RT_OK || sr->exit_status != 0 || sr->term_signal) {
    char why[200];
    if (sr->err == RT_ETIMEOUT) {
      fail(c, "timeout", sr->errmsg);
      return;
    }
    if (sr->err != RT_OK) snprintf(why, sizeof why, "%s", sr->errmsg);
    else if (sr->term_signal) snprintf(why, sizeof why, "killed by signal %d (memory_mb?)", sr->term_signal);
    else last_line(sr->errout, why, sizeof why);
    fail(c, sr->err == RT_ELIMIT ? "limit" : "unavailable", why[0] ? why : "tesseract failed");
    return;
  }
  rt_text_car cars[8];
  int n = rt_ocr_cars(sr->out, cars, (int)RT_ARRAY_LEN(cars));
  if (n == 0 && c->stage == 0 && o->retry_lang[0]) {
    c->stage = 1;
    c->first_text = sr->out;
    sr->out = NULL;
    char errmsg[160];
    if (run(c, errmsg) == RT_OK) return;
    fail(c, "unavailable", errmsg);
    return;
  }
  o->reads++;
  if (n > 0) o->found++;
  json_t *v = json_object();
  json_object_set_new(v, "text", json_string(sr->out));
  if (c->first_text) json_object_set_new(v, "text_first", json_string(c->first_text));
  json_object_set_new(v, "lang", json_string(c->stage ? o->retry_lang : o->lang));
  json_t *arr = json_array();
  for (int i = 0; i < n; i++) {
    json_t *car = json_object();
    json_object_set_new(car, "kind", json_string(cars[i].kind == 'v' ? "vin" : "frame"));
    json_object_set_new(car, "value", json_string(cars[i].value));
    json_object_set_new(car, "check_ok", json_boolean(cars[i].check_ok));
    json_object_set_new(car, "north_american", json_boolean(cars[i].north_american));
    json_array_append_new(arr, car);
  }
  json_object_set_new(v, "cars", arr);
  json_object_set_new(v, "ms", json_integer((json_int_t)(c->ms + 0.5)));
  rt_call_result r;
  memset(&r, 0, sizeof r);
  r.status = RT_OK;
  r.value = v;
  finish(c, &r);
  json_decref(v);
}

/* sh -c SCRIPT ocr PATH LANG KB SCALE CONVERT TESSERACT: nothing from the
 * call is parsed by the shell. Both programs run on one core each
 * (OMP_THREAD_LIMIT, MAGICK_THREAD_LIMIT): max_in_flight readings share the
 * machine with the bot, and OpenMP threads that spin-wait for each other
 * on a busy machine made convert four times slower (measured: 4.1 s instead
 * of 0.9 s with four other busy processes on two cores), which pushed
 * readings past timeout_ms. The enlarged picture goes to tesseract as PNG
 * without compression (-quality 1: zlib level 0): compressing a noisy
 * 2000 px photo cost 0.97 s, more than tesseract's reading; stored it takes
 * 0.25 s with the same pixels. */
static const char OCR_SCRIPT[] =
    "ulimit -v \"$3\" || exit 126\n"
    "if [ \"$4\" -gt 0 ]; then\n"
    "  MAGICK_THREAD_LIMIT=1 \"$5\" \"$1\" -auto-orient -colorspace gray -resize \"${4}x${4}<\" -quality 1 png:- |"
    " OMP_THREAD_LIMIT=1 \"$6\" stdin stdout -l \"$2\"\n"
    "else\n"
    "  OMP_THREAD_LIMIT=1 \"$6\" \"$1\" stdout -l \"$2\"\n"
    "fi\n";

static int run(rt_call *c, char *errmsg) {
  ocr *o = c->o;
  char kb[32], scale[32];
  snprintf(kb, sizeof kb, "%ld", o->memory_kb);
  snprintf(scale, sizeof scale, "%ld", o->scale_to);
  const char *argv[] = {"/bin/sh", "-c", OCR_SCRIPT, "ocr", c->path,
                        c->stage ? o->retry_lang : o->lang, kb, scale, o->convert, o->tesseract,
                        NULL};
  rt_subproc_opts so = {.argv = argv, .timeout_ms = o->timeout_ms, .max_out = (size_t)1 << 20};
  return rt_subproc_start(o->env->loop, &so, on_read_done, c, &c->sp, errmsg);
}

/* Starts queued calls while there is room. A call that cannot start fails
 * from here, which is always a loop callback (never inside call). */
static void pump(ocr *o) {
  while (o->queue.head && o->running.n < o->max_in_flight) {
    rt_call *c = o->queue.head;
    list_del(&o->queue, c);
    list_push(&o->running, c);
    c->running = true;
    char errmsg[160];
    if (run(c, errmsg) != RT_OK) fail(c, "unavailable", errmsg);
  }
}

static void on_idle_pump(uv_timer_t *t) {
  ocr *o = t->data;
  uv_close((uv_handle_t *)t, (uv_close_cb)free);
  pump(o);
}

/* The flow API (integration.h: it.luacheck reads this table). */
static const char *const ocr_ops[] = {"read", NULL};

static int ocr_call(rt_provider *p, const char *op, const json_t *args, rt_call_done done,
                    void *ud, rt_call **out, char **err) {
  ocr *o = p->impl;
  if (strcmp(op, ocr_ops[0]) != 0) {
    *err = rt_xasprintf("ocr has no operation \"%s\" (only read)", op);
    return RT_EINVAL;
  }
  const json_t *photo = json_object_get(args, "photo");
  if (!json_is_object(photo)) photo = args;
  const char *path = json_string_value(json_object_get(photo, "path"));
  if (!path) path = json_string_value(json_object_get(photo, "file"));
  if (!path) {
    *err = rt_xstrdup("ocr.read: the photo has no path (a file the channel saved)");
    return RT_EINVAL;
  }
  if (!rt_subproc_plain_file(path)) {
    *err = rt_xstrdup("ocr.read: the photo's path has characters a file name of ours never has");
    return RT_EINVAL;
  }
  struct stat st;
  if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
    *err = rt_xasprintf("ocr.read: no such photo file %s", path);
    return RT_EINVAL;
  }
  if ((long long)st.st_size > o->max_file) {
    *err = rt_xasprintf("ocr.read: the photo is over %lld MB", o->max_file >> 20);
    return RT_ELIMIT;
  }
  if (!o->ok) {
    *err = rt_xasprintf("ocr is not available: %s", o->problem ? o->problem : "not started");
    return RT_EIO;
  }
  if (o->queue.n >= o->max_queue) {
    *err = rt_xasprintf("ocr.read: %zu photos already wait to be read", o->queue.n);
    return RT_ELIMIT;
  }
  rt_call *c = rt_xcalloc(1, sizeof *c);
  c->o = o;
  c->path = path[0] == '/' ? rt_xstrdup(path) : rt_xasprintf("./%s", path);
  c->done = done;
  c->ud = ud;
  list_push(&o->queue, c);
  /* done must come from the loop, later: start the queue on the next tick. */
  uv_timer_t *t = rt_xcalloc(1, sizeof *t);
  uv_timer_init(o->env->loop, t);
  t->data = o;
  uv_timer_start(t, on_idle_pump, 0, 0);
  *out = c;
  return RT_OK;
}

static void ocr_cancel(rt_provider *p, rt_call *c) {
  ocr *o = p->impl;
  if (!c) return;
  if (c->running) {
    if (c->sp) rt_subproc_cancel(c->sp);
    list_del(&o->running, c);
  } else {
    list_del(&o->queue, c);
  }
  call_free(c);
  pump(o);
}

/* ---- start: is tesseract there, with the languages? ------------------- */

typedef struct {
  ocr *o;
  void (*done)(void *ud, int status, const char *err);
  void *ud;
} start_ctx;

static void set_problem(ocr *o, const char *problem) {
  free(o->problem);
  o->problem = problem ? rt_xstrdup(problem) : NULL;
  o->ok = problem == NULL;
  if (o->env->set_health) o->env->set_health(o->env->host, o->env->name, problem);
  if (problem) rt_log(RT_LOG_WARN, "ocr-unavailable", "problem=\"%s\"", problem);
}

static bool has_lang(const char *list, const char *langs, char *missing, size_t n) {
  char buf[128];
  snprintf(buf, sizeof buf, "%s", langs);
  for (char *tokp, *l = strtok_r(buf, "+", &tokp); l; l = strtok_r(NULL, "+", &tokp)) {
    bool found = false;
    for (const char *s = list; *s;) {
      const char *e = strchr(s, '\n');
      size_t len = e ? (size_t)(e - s) : strlen(s);
      if (len == strlen(l) && memcmp(s, l, len) == 0) found = true;
      s += len + (e ? 1 : 0);
    }
    if (!found) {
      snprintf(missing, n, "%s", l);
      return false;
    }
  }
  return true;
}

static void on_langs(rt_subproc_result *sr, void *ud) {
  start_ctx *sc = ud;
  ocr *o = sc->o;
  char missing[64], problem[256];
  if (sr->err != RT_OK || sr->exit_status != 0) {
    snprintf(problem, sizeof problem,
             "%s does not run (%s): apt-get install tesseract-ocr tesseract-ocr-eng "
             "tesseract-ocr-rus imagemagick",
             o->tesseract, sr->errmsg[0] ? sr->errmsg : "exit status");
    set_problem(o, problem);
  } else if (!has_lang(sr->out, o->lang, missing, sizeof missing) ||
             !has_lang(sr->out, o->retry_lang, missing, sizeof missing)) {
    snprintf(problem, sizeof problem,
             "tesseract has no language \"%s\": apt-get install tesseract-ocr-%s", missing,
             missing);
    set_problem(o, problem);
  } else {
    set_problem(o, NULL);
  }
  sc->done(sc->ud, RT_OK, NULL);
  free(sc);
}

/* The /metrics block (plugin.h set_metrics). */
static void ocr_metrics(void *ud, rt_buf *b) {
  ocr *o = ud;
  rt_buf_printf(b, "# HELP shopbot_ocr_reads_total Photos read, and those a car id was found in.\n"
                   "# TYPE shopbot_ocr_reads_total counter\n"
                   "shopbot_ocr_reads_total{found=\"car\"} %llu\n"
                   "shopbot_ocr_reads_total{found=\"none\"} %llu\n"
                   "# HELP shopbot_ocr_failed_total Readings that failed (timeout, limit, tesseract error).\n"
                   "# TYPE shopbot_ocr_failed_total counter\n"
                   "shopbot_ocr_failed_total %llu\n"
                   "# HELP shopbot_ocr_running Readings running now.\n"
                   "# TYPE shopbot_ocr_running gauge\n"
                   "shopbot_ocr_running %zu\n"
                   "# HELP shopbot_ocr_queued Photos waiting for a reader.\n"
                   "# TYPE shopbot_ocr_queued gauge\n"
                   "shopbot_ocr_queued %zu\n",
                (unsigned long long)o->found, (unsigned long long)(o->reads - o->found),
                (unsigned long long)o->failed, o->running.n, o->queue.n);
}

static void ocr_start(rt_provider *p, const rt_plugin_env *env,
                      void (*done)(void *ud, int status, const char *err), void *ud) {
  ocr *o = p->impl;
  o->env = env;
  if (env->set_metrics) env->set_metrics(env->host, env->name, ocr_metrics, o);
  start_ctx *sc = rt_xcalloc(1, sizeof *sc);
  sc->o = o;
  sc->done = done;
  sc->ud = ud;
  /* --list-langs prints to stdout in 5.x. A missing tesseract is a health
   * problem, not a failed start: the bot runs, flows get "unavailable". */
  const char *argv[] = {o->tesseract, "--list-langs", NULL};
  rt_subproc_opts so = {.argv = argv, .timeout_ms = 10000};
  char errmsg[160];
  if (rt_subproc_start(env->loop, &so, on_langs, sc, NULL, errmsg) != RT_OK) {
    char problem[256];
    snprintf(problem, sizeof problem, "%s: apt-get install tesseract-ocr", errmsg);
    set_problem(o, problem);
    free(sc);
    done(ud, RT_OK, NULL);
  }
}

static void ocr_close(rt_provider *p, void (*done)(void *ud), void *ud) {
  ocr *o = p->impl;
  while (o->queue.head) ocr_cancel(p, o->queue.head);
  while (o->running.head) ocr_cancel(p, o->running.head);
  rt_log(RT_LOG_INFO, "ocr-closed", "reads=%llu found=%llu failed=%llu",
         (unsigned long long)o->reads, (unsigned long long)o->found,
         (unsigned long long)o->failed);
  free(o->lang);
  free(o->retry_lang);
  free(o->tesseract);
  free(o->convert);
  free(o->problem);
  free(o);
  if (done) done(ud);
}

static const char *str_or(const json_t *conf, const char *key, const char *def) {
  const char *s = json_string_value(json_object_get(conf, key));
  return s ? s : def;
}

static long int_or(const json_t *conf, const char *key, long def) {
  const json_t *v = json_object_get(conf, key);
  return json_is_integer(v) ? (long)json_integer_value(v) : def;
}

int rt_ocr_new(const json_t *conf, rt_provider **out, char **err) {
  ocr *o = rt_xcalloc(1, sizeof *o);
  o->lang = rt_xstrdup(str_or(conf, "lang", "eng"));
  o->retry_lang = rt_xstrdup(str_or(conf, "retry_lang", "rus+eng"));
  o->tesseract = rt_xstrdup(str_or(conf, "tesseract", "tesseract"));
  o->convert = rt_xstrdup(str_or(conf, "convert", "convert"));
  o->timeout_ms = int_or(conf, "timeout_ms", 15000);
  o->memory_kb = int_or(conf, "memory_mb", 1024) * 1024;
  o->scale_to = int_or(conf, "scale_to", 2000);
  o->max_in_flight = (size_t)int_or(conf, "max_in_flight", 2);
  o->max_queue = (size_t)int_or(conf, "max_queue", 200);
  o->max_file = (long long)int_or(conf, "max_file_mb", 20) << 20;
  if (o->max_in_flight == 0) o->max_in_flight = 1;
  o->p.name = "ocr";
  o->p.impl = o;
  o->p.start = ocr_start;
  o->p.call = ocr_call;
  o->p.cancel = ocr_cancel;
  o->p.ops = ocr_ops;
  o->p.close = ocr_close;
  *out = &o->p;
  (void)err;
  return RT_OK;
}

static bool ocr_wanted(const json_t *conf) {
  return json_is_true(json_object_get(conf, "enabled"));
}

static int ocr_create(const json_t *conf, struct rt_channel **ch, struct rt_provider **pv,
                      char **err) {
  (void)ch;
  return rt_ocr_new(conf, pv, err);
}

const rt_plugin rt_plugin_ocr = {
    .name = "ocr",
    .version = "1.0.0",
    .kind = RT_PLUGIN_PROVIDER,
    .schema_json = (const char *)rt_ocr_schema_json,
    .no_http = true,
    .wanted = ocr_wanted,
    .create = ocr_create,
};
