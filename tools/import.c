/* import.c -- CSV import of customers and orders (see import.h).
 *
 * The file is read through a 1 MiB buffer; each record is parsed into a
 * reused field buffer and its cells into a compact staging arena (no
 * allocation per row). Up to 64 MiB of staged rows are then sorted by phone
 * and written with prepared statements, 10,000 rows per transaction, so a
 * running bot gets the write lock between batches. Sorting is what keeps the
 * import above 200,000 rows/s on a million customers: see "staging" below.
 * A larger file is imported in several such chunks. */
#include "import.h"
#include "store_tools.h"
#include "text.h"
#include "tz.h"
#include "utf8.h"
#include <errno.h>
#include <fcntl.h>
#include <iconv.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define BATCH_ROWS 10000
#define MAX_CH_COLS 4      /* "<channel> id" columns beyond telegram and whatsapp */
#define BUF_INIT (1u << 20)

/* ---- columns and their names ---- */

enum {
  C_PHONE, C_NAME, C_LAST_PURCHASE, C_BONUS, C_TELEGRAM, C_WHATSAPP, C_TZ, C_CAR,
  C_ORDER_ID, C_DATE, C_PRODUCT, C_CATEGORY, C_GIFT, C_RCPT_NAME, C_RCPT_PHONE,
  C_COUNT
};

static const char *col_key[C_COUNT] = {
  "phone", "name", "last_purchase", "bonus_balance", "telegram_id", "whatsapp",
  "timezone", "car", "order_id", "date", "product", "category", "gift",
  "recipient_name", "recipient_phone",
};

/* Synonyms in normalised form (see norm_name: lower case, ё as е, '_' and
 * '-' as spaces, one space between words, no quotes or trailing dot/colon).
 * Keep in step with schema/import.schema.json and docs/import.md. */
static const char *const col_syn[C_COUNT][16] = {
  [C_PHONE] = {"phone", "phone number", "mobile", "телефон", "тел", "мобильный телефон",
               "номер телефона", "телефон клиента", "телефон покупателя", "сотовый", NULL},
  [C_NAME] = {"name", "customer", "client", "фио", "имя", "клиент", "контрагент",
              "покупатель", "наименование контрагента", "фио клиента", NULL},
  [C_LAST_PURCHASE] = {"last purchase", "last purchase date", "дата последней покупки",
                       "последняя покупка", "дата последней продажи", "последняя продажа", NULL},
  [C_BONUS] = {"bonus balance", "bonus", "bonuses", "бонусы", "бонусный баланс", "баллы",
               "бонусные баллы", "остаток бонусов", "баланс бонусов", NULL},
  [C_TELEGRAM] = {"telegram id", "telegram", "tg", "телеграм", "телеграмм", "telegram chat id", NULL},
  [C_WHATSAPP] = {"whatsapp", "whats app", "ватсап", "вотсап", "вацап", NULL},
  [C_TZ] = {"timezone", "time zone", "tz", "часовой пояс", NULL},
  [C_CAR] = {"car", "vin", "автомобиль", "номер кузова", "авто", "vin код", "машина", NULL},
  [C_ORDER_ID] = {"order id", "order", "order number", "номер заказа", "заказ", "документ",
                  "номер документа", "№ заказа", "заказ покупателя", NULL},
  [C_DATE] = {"date", "order date", "дата", "дата заказа", "дата документа", "дата продажи", NULL},
  [C_PRODUCT] = {"product", "item", "товар", "номенклатура", NULL},
  [C_CATEGORY] = {"category", "категория", "группа", "группа номенклатуры",
                  "вид номенклатуры", "категория товара", NULL},
  [C_GIFT] = {"gift", "подарок", "в подарок", NULL},
  [C_RCPT_NAME] = {"recipient name", "recipient", "получатель", "имя получателя", NULL},
  [C_RCPT_PHONE] = {"recipient phone", "телефон получателя", NULL},
};

/* ---- UTF-8 and Windows-1251 ---- */

/* Windows-1251 to UTF-8 through iconv(3); a byte iconv rejects (0x98 is
 * unassigned in Windows-1251) becomes U+FFFD. out holds 3 * len + 1 bytes:
 * every cp1251 byte is at most 3 bytes of UTF-8. */
static size_t cp1251_conv(iconv_t cd, const char *in, size_t len, char *out) {
  char *ip = (char *)in, *op = out;
  size_t il = len, ol = 3 * len;
  iconv(cd, NULL, NULL, NULL, NULL);
  while (il > 0) {
    if (iconv(cd, &ip, &il, &op, &ol) != (size_t)-1) break;
    if (errno == E2BIG || ol < 3) break;   /* cannot happen with 3 * len */
    memcpy(op, "\xEF\xBF\xBD", 3);
    op += 3;
    ol -= 3;
    ip++;
    il--;
  }
  *op = '\0';
  return (size_t)(op - out);
}

size_t rt_import_cp1251_to_utf8(const char *in, size_t len, char *out) {
  iconv_t cd = iconv_open("UTF-8", "CP1251");
  if (cd == (iconv_t)-1) { out[0] = '\0'; return 0; }
  size_t n = cp1251_conv(cd, in, len, out);
  iconv_close(cd);
  return n;
}

/* Normalises a column name or a yes/no word for comparison: lower case
 * (Latin and Cyrillic), ё as е, '_' and '-' as spaces, whitespace runs as one
 * space, quotes and '*' dropped, trailing '.' and ':' dropped. */
static void norm_name(const char *s, char *out, size_t n) {
  size_t o = 0, len = strlen(s);
  bool space = false;
  for (size_t i = 0; i < len && o + 4 < n;) {
    size_t l;
    uint32_t cp = rt_utf8_decode(s + i, len - i, &l);
    i += l;
    if (cp == RT_UTF8_BAD) cp = 0xFFFD;
    if (cp >= 'A' && cp <= 'Z') cp += 32;
    else if (cp >= 0x410 && cp <= 0x42F) cp += 0x20;
    if (cp == 0x401 || cp == 0x451) cp = 0x435;
    if (cp == '"' || cp == '\'' || cp == '*' || cp == 0xAB || cp == 0xBB) continue;
    if (cp == '_' || cp == '-' || cp == ' ' || cp == '\t' || cp == 0xA0 || cp == 0x202F ||
        cp == '\r' || cp == '\n') {
      space = o > 0;
      continue;
    }
    if (space) { out[o++] = ' '; space = false; }
    o += rt_utf8_encode(cp, out + o);
  }
  while (o > 0 && (out[o - 1] == '.' || out[o - 1] == ':' || out[o - 1] == ' ')) o--;
  out[o] = '\0';
}

/* ---- the CSV reader ---- */

typedef struct {
  int fd;
  char *buf;
  size_t cap, len, pos;
  bool eof;
  int enc;             /* 1 UTF-8 (or ASCII), 2 cp1251: see scan_encoding */
  iconv_t cd;          /* cp1251 to UTF-8, opened when first needed */
  size_t raw_from;     /* quotes at or past pos + raw_from are text (SIZE_MAX: none) */
  char delim;
  int line;            /* physical line at pos */
  /* the current record */
  int rec_line, nf, nfcap;
  int quote_line;      /* line of a quote that is never closed, or 0 */
  int quote_close;     /* line of the quote that closed it wrongly, or 0 (at the end) */
  int span_line;       /* line of the first quoted cell spanning lines, or 0 */
  bool rec_cp1251;     /* a field of this UTF-8 record was read as Windows-1251 */
  char *fld;           /* field bytes, each NUL-terminated */
  size_t fcap;
  size_t *foff;
  char *conv;          /* fields converted to UTF-8 when needed */
  size_t ccap;
  char **val;          /* nf pointers to the fields as UTF-8 */
  int vcap;
} csv_reader;

/* What the encoding scan found, per physical line. */
typedef struct {
  int64_t utf8_lines;   /* lines with non-ASCII bytes, all valid UTF-8 */
  int64_t bad_lines;    /* lines that are not valid UTF-8 */
} enc_scan;

/* Reads the whole file once and sorts its lines with non-ASCII bytes into
 * valid UTF-8 and not. The encoding is a property of the file, so it is
 * decided from all of it: a sample (the first buffer, the first non-ASCII
 * line) lets one odd row decide for a million good ones. Leaves the file
 * offset at 0. Returns 0, or -1 with errno. */
static int scan_encoding(int fd, enc_scan *out) {
  memset(out, 0, sizeof *out);
  enum { BUF = 1 << 16 };
  unsigned char *buf = rt_xmalloc(BUF);
  int need = 0;                       /* continuation bytes still expected */
  unsigned char lo = 0x80, hi = 0xBF; /* range of the next continuation byte */
  bool high = false, bad = false;     /* of the current line */
  ssize_t n;
  for (;;) {
    do n = read(fd, buf, BUF);
    while (n < 0 && errno == EINTR);
    if (n <= 0) break;
    for (ssize_t i = 0; i < n; i++) {
      unsigned char c = buf[i];
      if (need) {
        if (c >= lo && c <= hi) { need--; lo = 0x80; hi = 0xBF; continue; }
        bad = true;
        need = 0;
        lo = 0x80; hi = 0xBF;
        /* c starts afresh below */
      }
      if (c < 0x80) {
        if (c == '\n') {
          if (bad) out->bad_lines++;
          else if (high) out->utf8_lines++;
          high = bad = false;
        }
        continue;
      }
      high = true;
      if (c >= 0xC2 && c <= 0xDF) need = 1;
      else if (c == 0xE0) { need = 2; lo = 0xA0; }
      else if (c == 0xED) { need = 2; hi = 0x9F; }
      else if (c >= 0xE1 && c <= 0xEF) need = 2;
      else if (c == 0xF0) { need = 3; lo = 0x90; }
      else if (c >= 0xF1 && c <= 0xF3) need = 3;
      else if (c == 0xF4) { need = 3; hi = 0x8F; }
      else bad = true;
    }
  }
  free(buf);
  if (n < 0) return -1;
  if (need) bad = true;
  if (bad) out->bad_lines++;
  else if (high) out->utf8_lines++;
  return lseek(fd, 0, SEEK_SET) < 0 ? -1 : 0;
}

/* Reads more input; returns 0, or -1 with errno on a read error. */
static int read_more(csv_reader *r) {
  if (r->pos > 0) {
    memmove(r->buf, r->buf + r->pos, r->len - r->pos);
    r->len -= r->pos;
    r->pos = 0;
  }
  if (r->len == r->cap) {
    r->cap *= 2;
    r->buf = rt_xrealloc(r->buf, r->cap);
  }
  ssize_t n;
  do n = read(r->fd, r->buf + r->len, r->cap - r->len);
  while (n < 0 && errno == EINTR);
  if (n < 0) return -1;
  if (n == 0) r->eof = true;
  r->len += (size_t)n;
  return 0;
}

static int parse_record(csv_reader *r);

/* A quote at the start of a cell (at buffer offset q, on line qline) is
 * never closed: it reaches the end of the file, or its "closing" quote,
 * lines later, is followed by more text -- the opening quote of a cell of
 * a later row. Reading on would swallow every row up to there into one
 * cell. Instead the record is parsed again with that quote and every one
 * after it on the line as plain text, so the record ends at its own line
 * end and the rows after it are read as rows; the caller reports the quote
 * and skips this record. close_line is the line of the quote that closed it
 * wrongly, or 0 at the end of the file. */
static int quote_fallback(csv_reader *r, size_t q, int qline, int close_line) {
  r->raw_from = q - r->pos;
  int rc = parse_record(r);
  r->raw_from = SIZE_MAX;
  if (rc == 1) {
    r->quote_line = qline;
    r->quote_close = close_line;
  }
  return rc;
}

/* Parses one record at pos. Returns 1 when a record is ready, 0 when the
 * buffer ends inside it (read more and call again), -1 at end of input. */
static int parse_record(csv_reader *r) {
  size_t p = r->pos, end = r->len;
  if (p == end) return r->eof ? -1 : 0;
  int span = 0;
  /* Unquoting only shrinks, and each field adds one NUL per delimiter or
   * end: twice the remaining input always fits. */
  size_t need = 2 * (end - p) + 2;
  if (r->fcap < need) {
    r->fcap = need;
    free(r->fld);
    r->fld = rt_xmalloc(r->fcap);
  }
  const char *b = r->buf;
  char *o = r->fld, dl = r->delim;
  size_t ol = 0;
  int nf = 0, nl = 0;
  for (;;) {
    if (nf == r->nfcap) {
      r->nfcap = r->nfcap ? r->nfcap * 2 : 32;
      r->foff = rt_xrealloc(r->foff, r->nfcap * sizeof *r->foff);
    }
    r->foff[nf++] = ol;
    if (p < end && b[p] == '"' && p - r->pos < r->raw_from) {
      size_t q = p;
      int qline = r->line + nl, nl0 = nl;
      p++;
      for (;;) {
        if (p >= end) {
          if (!r->eof) return 0;
          return quote_fallback(r, q, qline, 0);
        }
        char c = b[p];
        if (c == '"') {
          if (p + 1 >= end && !r->eof) return 0;
          if (p + 1 < end && b[p + 1] == '"') { o[ol++] = '"'; p += 2; continue; }
          p++;
          break;
        }
        if (c == '\n') nl++;
        o[ol++] = c;
        p++;
      }
      if (nl > nl0) {
        if (p < end && b[p] != dl && b[p] != '\n' && b[p] != '\r')
          return quote_fallback(r, q, qline, r->line + nl);
        if (!span) span = qline;
      }
    }
    /* Unquoted text, or what follows a closing quote (kept, leniently). A
     * quote inside an unquoted field (ООО "Ромашка") is an ordinary char. */
    while (p < end) {
      char c = b[p];
      if (c == dl || c == '\n' || c == '\r') break;
      o[ol++] = c;
      p++;
    }
    o[ol++] = '\0';
    if (p >= end) {
      if (!r->eof) return 0;
      break;
    }
    char c = b[p];
    if (c == dl) { p++; continue; }
    if (c == '\r') {
      if (p + 1 >= end && !r->eof) return 0;
      p++;
      if (p < end && b[p] == '\n') p++;
    } else {
      p++;
    }
    nl++;
    break;
  }
  r->pos = p;
  r->nf = nf;
  r->rec_line = r->line;
  r->line += nl;
  r->span_line = span;
  if (r->raw_from == SIZE_MAX) r->quote_line = r->quote_close = 0;
  return 1;
}

/* Trims spaces, tabs and NBSP in place; returns the start. */
static char *trim(char *s) {
  unsigned char *p = (unsigned char *)s;
  for (;;) {
    if (*p == ' ' || *p == '\t') p++;
    else if (p[0] == 0xC2 && p[1] == 0xA0) p += 2;
    else break;
  }
  size_t n = strlen((char *)p);
  for (;;) {
    if (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t')) n--;
    else if (n > 1 && p[n - 2] == 0xC2 && p[n - 1] == 0xA0) n -= 2;
    else break;
  }
  p[n] = '\0';
  return (char *)p;
}

/* Makes val[i] point at each field as trimmed UTF-8, converting from
 * Windows-1251 where the file needs it -- or, in a UTF-8 file with a few
 * rows that are not, the fields of those rows that are not valid UTF-8
 * (rec_cp1251 tells the caller, who notes the line). */
static void record_values(csv_reader *r) {
  if (r->vcap < r->nf) {
    r->vcap = r->nfcap;
    r->val = rt_xrealloc(r->val, (size_t)r->vcap * sizeof *r->val);
  }
  size_t total = r->foff[r->nf - 1] + strlen(r->fld + r->foff[r->nf - 1]) + 1;
  size_t co = 0;
  r->rec_cp1251 = false;
  for (int i = 0; i < r->nf; i++) {
    char *f = r->fld + r->foff[i];
    size_t n = (i + 1 < r->nf ? r->foff[i + 1] - 1 : total - 1) - r->foff[i];
    bool high = false;
    for (size_t k = 0; k < n; k++)
      if ((unsigned char)f[k] >= 0x80) { high = true; break; }
    if (high && (r->enc == 2 || !rt_utf8_valid(f, n))) {
      /* Each byte becomes at most 3: the whole record fits in 3 * total. */
      if (r->ccap < 3 * total + 1) {
        r->ccap = 3 * total + 1;
        free(r->conv);
        r->conv = rt_xmalloc(r->ccap);
        co = 0;
        i = -1;   /* fields converted so far pointed into the old buffer */
        continue;
      }
      size_t m = cp1251_conv(r->cd, f, n, r->conv + co);
      if (r->enc == 1) r->rec_cp1251 = true;
      r->val[i] = trim(r->conv + co);
      co += m + 1;
    } else {
      r->val[i] = trim(f);
    }
  }
}

/* Picks the delimiter from the header line: the most frequent of ';', tab
 * and ',' outside quotes; ';' wins ties, as 1C writes it. */
static char sniff_delim(const char *b, size_t n) {
  int sc = 0, tab = 0, com = 0;
  bool q = false;
  for (size_t i = 0; i < n && (q || (b[i] != '\n' && b[i] != '\r')); i++) {
    if (b[i] == '"') q = !q;
    else if (!q && b[i] == ';') sc++;
    else if (!q && b[i] == '\t') tab++;
    else if (!q && b[i] == ',') com++;
  }
  if (sc >= tab && sc >= com && sc > 0) return ';';
  if (tab >= com && tab > 0) return '\t';
  if (com > 0) return ',';
  return ';';
}

/* ---- cells ---- */

static int digits(const char **pp, int max, int *v) {
  const char *p = *pp;
  int n = 0, x = 0;
  while (n < max && *p >= '0' && *p <= '9') { x = x * 10 + (*p++ - '0'); n++; }
  *pp = p;
  *v = x;
  return n;
}

bool rt_import_parse_date(const char *s, int *y, int *m, int *d) {
  const char *p = s;
  while (*p == ' ') p++;
  int a, b, c, na, nb, nc;
  na = digits(&p, 4, &a);
  if (na == 4 && *p == '-') {           /* YYYY-MM-DD */
    p++;
    nb = digits(&p, 2, &b);
    if (!nb || *p++ != '-') return false;
    nc = digits(&p, 2, &c);
    if (!nc) return false;
    *y = a; *m = b; *d = c;
  } else if ((na == 1 || na == 2) && (*p == '.' || *p == '/')) {   /* DD.MM.YY[YY] */
    char sep = *p++;
    nb = digits(&p, 2, &b);
    if (!nb || *p++ != sep) return false;
    nc = digits(&p, 4, &c);
    if (nc == 2) c += c < 70 ? 2000 : 1900;
    else if (nc != 4) return false;
    *y = c; *m = b; *d = a;
  } else {
    return false;
  }
  if (*p == ' ' || *p == 'T') {         /* an optional time, ignored */
    while (*p == ' ' || *p == 'T') p++;
    int h, mi, sec;
    if (!digits(&p, 2, &h) || *p++ != ':' || digits(&p, 2, &mi) != 2 || h > 23 || mi > 59)
      return false;
    if (*p == ':' && (p++, digits(&p, 2, &sec) != 2 || sec > 60)) return false;
    if (*p == '.') { p++; while (*p >= '0' && *p <= '9') p++; }
  }
  while (*p == ' ') p++;
  if (*p) return false;
  if (*y < 1900 || *y > 2200 || *m < 1 || *m > 12 || *d < 1 || *d > rt_tz_days_in_month(*y, *m))
    return false;
  return true;
}

bool rt_import_parse_number(const char *s, double *out) {
  char tmp[64];
  size_t o = 0;
  const unsigned char *p = (const unsigned char *)s;
  while (*p) {
    if (*p == ' ' || *p == '\'' || *p == '\t') { p++; continue; }
    if (p[0] == 0xC2 && p[1] == 0xA0) { p += 2; continue; }
    if (p[0] == 0xE2 && p[1] == 0x80 && p[2] == 0xAF) { p += 3; continue; }
    if (o + 1 >= sizeof tmp) return false;
    char c = (char)*p++;
    if (c == ',') c = '.';
    if (!((c >= '0' && c <= '9') || c == '.' || c == '-' || c == '+')) return false;
    tmp[o++] = c;
  }
  tmp[o] = '\0';
  if (!o) return false;
  char *e;
  double v = strtod(tmp, &e);
  if (*e || e == tmp) return false;
  *out = v;
  return true;
}

/* 1 yes, 0 no, -1 not a yes/no word. */
static int parse_bool(const char *s) {
  char w[32];
  norm_name(s, w, sizeof w);
  static const char *yes[] = {"да", "yes", "y", "1", "true", "+", "истина", "д", "x", "х"};
  static const char *no[] = {"нет", "no", "n", "0", "false", "-", "ложь", "н"};
  for (size_t i = 0; i < RT_ARRAY_LEN(yes); i++)
    if (strcmp(w, yes[i]) == 0) return 1;
  for (size_t i = 0; i < RT_ARRAY_LEN(no); i++)
    if (strcmp(w, no[i]) == 0) return 0;
  if (!w[0] && s[0] == '-') return 0;   /* "-" normalises to "" */
  return -1;
}

/* ---- the import ---- */

#define TZ_CACHE 32
#define DAY_CACHE 4096

/* ---- staging ----
 *
 * Rows are not written as they are read. An export lists customers by name
 * or code, so their phones -- the primary key -- arrive in random order, and
 * inserting them so touches a random b-tree page per row: each 10,000-row
 * transaction then rewrites most of the table into the WAL (measured: 27,000
 * rows/s at a million rows). Instead a chunk of rows is parsed into a compact
 * arena, sorted by phone and written in key order, so a transaction touches
 * a few hundred neighbouring pages; orders are then written sorted by
 * order id. Stable order (seq) keeps the file's order among rows of one key,
 * so the last row of a phone still wins. */

#define CHUNK_BYTES (64u << 20)   /* arena size that triggers a write-out */
#define BLOCK_BYTES (4u << 20)

enum { S_PHONE, S_NAME, S_TG, S_WA, S_TZ, S_CAR, S_ORDER, S_PRODUCT, S_CATEGORY,
       S_RNAME, S_RPHONE, S_CH0, S_COUNT = S_CH0 + MAX_CH_COLS };

typedef struct {
  int64_t lp, odate;
  double bonus;
  uint32_t line;
  uint8_t has_lp, has_odate, has_bonus;
  int8_t gift;               /* -1: not given */
  uint16_t present;          /* bit per S_*: a NUL-terminated string follows */
} stage_rec;

typedef struct {
  uint64_t key;              /* the phone's digits as a number */
  uint32_t seq;
  stage_rec *r;
} stage_ix;

typedef struct ablock {
  struct ablock *next;
  size_t used, cap;
  char data[];
} ablock;

typedef struct {
  ablock *head;              /* newest first */
  size_t total;
} arena;

static void *arena_alloc(arena *a, size_t n) {
  n = (n + 7) & ~(size_t)7;
  ablock *b = a->head;
  if (!b || b->cap - b->used < n) {
    size_t cap = n > BLOCK_BYTES ? n : BLOCK_BYTES;
    b = rt_xmalloc(sizeof *b + cap);
    b->next = a->head;
    b->used = 0;
    b->cap = cap;
    a->head = b;
    a->total += cap;
  }
  void *p = b->data + b->used;
  b->used += n;
  return p;
}

static void arena_reset(arena *a) {
  for (ablock *b = a->head, *n; b; b = n) {
    n = b->next;
    free(b);
  }
  a->head = NULL;
  a->total = 0;
}

typedef struct {
  rt_store *s;
  rt_store_import *w;
  rt_import_report *rep;
  const char *default_tz;
  int64_t now;
  int col[C_COUNT];          /* field index of each column, or -1 */
  int ncols;                 /* fields in the header */
  /* "<channel> id" columns: the channel's name and the field index */
  struct { char name[32]; int field; } ch[MAX_CH_COLS];
  int nch;
  bool has_orders;
  struct { char name[64]; bool valid; } tz[TZ_CACHE];
  int ntz;
  struct { int tzi; int32_t day; int64_t ms; } days[DAY_CACHE];
  /* staged rows of the current chunk */
  arena ar;
  stage_ix *ix;
  size_t nix, ixcap;
  uint32_t seq;
  int batch;                 /* rows written in the open transaction */
  bool in_tx;
} importer;

static void problem(importer *im, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void problem(importer *im, int line, const char *fmt, ...) {
  rt_import_report *rep = im->rep;
  rep->problems_total++;
  if (rep->nproblems >= RT_IMPORT_MAX_PROBLEMS) return;
  rt_import_problem *p = &rep->problems[rep->nproblems++];
  p->line = line;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(p->msg, sizeof p->msg, fmt, ap);
  va_end(ap);
}

/* A cell quoted for a message: at most 60 bytes, not cut inside a UTF-8
 * sequence. */
static const char *clip(const char *s, char *buf, size_t n) {
  size_t len = strlen(s);
  if (len < n) return s;
  size_t k = rt_utf8_floor(s, len, n - 4);
  memcpy(buf, s, k);
  memcpy(buf + k, "...", 4);
  return buf;
}

/* Index (1-based) of a valid zone in the cache, 0 if invalid, -1 when it
 * is valid but not cached (too many distinct zones). */
static int tz_lookup(importer *im, const char *tz) {
  for (int i = 0; i < im->ntz; i++)
    if (strcmp(im->tz[i].name, tz) == 0) return im->tz[i].valid ? i + 1 : 0;
  bool ok = rt_tz_valid(tz);
  if (im->ntz < TZ_CACHE && strlen(tz) < sizeof im->tz[0].name) {
    strcpy(im->tz[im->ntz].name, tz);
    im->tz[im->ntz++].valid = ok;
    return ok ? im->ntz : 0;
  }
  return ok ? -1 : 0;
}

/* Local midnight of y-m-d in tz, in unix ms. Zone offsets change rarely, so
 * a small cache keyed by (zone, day) saves the zone lookup on most rows. */
static int64_t local_midnight(importer *im, const char *tz, int tzi, int y, int m, int d) {
  int32_t day = (int32_t)rt_tz_days_from_civil(y, m, d);
  if (tzi < 0) return rt_tz_make(tz, y, m, d, 0, 0) * 1000;
  unsigned h = ((unsigned)day * 31u + (unsigned)tzi * 7919u) & (DAY_CACHE - 1);
  if (im->days[h].tzi == tzi + 1 && im->days[h].day == day) return im->days[h].ms;
  int64_t ms = rt_tz_make(tz, y, m, d, 0, 0) * 1000;
  im->days[h].tzi = tzi + 1;
  im->days[h].day = day;
  im->days[h].ms = ms;
  return ms;
}

/* A column "<channel> id" (normalised: "vk id", "webchat id", "viber
 * chat id") holds the customer's address on that channel: a new channel
 * needs no change here. The name is lower-case Latin letters and digits.
 * Returns true when the column was taken as one. */
static bool channel_column(const char *nm, importer *im, int field) {
  size_t n = strlen(nm);
  size_t k = n >= 8 && strcmp(nm + n - 8, " chat id") == 0 ? n - 8
           : n >= 3 && strcmp(nm + n - 3, " id") == 0 ? n - 3 : 0;
  if (k == 0 || k >= sizeof im->ch[0].name) return false;
  for (size_t i = 0; i < k; i++)
    if (!((nm[i] >= 'a' && nm[i] <= 'z') || (nm[i] >= '0' && nm[i] <= '9'))) return false;
  for (int i = 0; i < im->nch; i++)
    if (strncmp(im->ch[i].name, nm, k) == 0 && im->ch[i].name[k] == '\0') {
      problem(im, 1, "column \"%s\" repeats the %s address, ignored", nm, im->ch[i].name);
      return true;
    }
  if (im->nch == MAX_CH_COLS) {
    problem(im, 1, "column \"%s\" ignored: at most %d channel columns", nm, MAX_CH_COLS);
    return true;
  }
  memcpy(im->ch[im->nch].name, nm, k);
  im->ch[im->nch].name[k] = '\0';
  im->ch[im->nch++].field = field;
  return true;
}

/* Maps the header fields to columns; unknown names become notes. */
static int map_header(importer *im, csv_reader *r, char **err) {
  for (int c = 0; c < C_COUNT; c++) im->col[c] = -1;
  im->ncols = r->nf;
  for (int i = 0; i < r->nf; i++) {
    char nm[128], cbuf[64];
    norm_name(r->val[i], nm, sizeof nm);
    if (!nm[0]) continue;
    int found = -1;
    for (int c = 0; c < C_COUNT && found < 0; c++)
      for (int k = 0; col_syn[c][k]; k++)
        if (strcmp(nm, col_syn[c][k]) == 0) { found = c; break; }
    if (found < 0 && channel_column(nm, im, i)) continue;
    if (found < 0) {
      problem(im, 1, "unknown column \"%s\" ignored", clip(r->val[i], cbuf, sizeof cbuf));
    } else if (im->col[found] >= 0) {
      problem(im, 1, "column \"%s\" repeats %s, ignored", clip(r->val[i], cbuf, sizeof cbuf),
              col_key[found]);
    } else {
      im->col[found] = i;
    }
  }
  if (im->col[C_PHONE] < 0) {
    *err = rt_xstrdup("no phone column in the header (expected phone or Телефон)");
    return RT_EINVAL;
  }
  im->has_orders = im->col[C_ORDER_ID] >= 0;
  return RT_OK;
}

static const char *cell(importer *im, csv_reader *r, int c) {
  int i = im->col[c];
  if (i < 0 || i >= r->nf) return NULL;
  const char *v = r->val[i];
  return *v ? v : NULL;
}

/* Parses one data record into the stage. Bad rows are reported and
 * counted here; nothing touches the store yet. */
static void stage_row(importer *im, csv_reader *r) {
  rt_import_report *rep = im->rep;
  int line = r->rec_line;
  char cbuf[64];
  if (r->nf != im->ncols) {
    bool extra_empty = r->nf > im->ncols;
    for (int i = im->ncols; extra_empty && i < r->nf; i++)
      if (r->val[i][0]) extra_empty = false;
    if (!extra_empty) {
      if (r->span_line)
        problem(im, line, "wrong number of fields (%d, header has %d); its quoted cell from "
                "line %d runs over line ends: check the quotes", r->nf, im->ncols, r->span_line);
      else
        problem(im, line, "wrong number of fields (%d, header has %d)", r->nf, im->ncols);
      rep->skipped++;
      return;
    }
  }
  const char *v, *sv[S_COUNT] = {0};
  char phone[20];
  if (!(v = cell(im, r, C_PHONE))) {
    problem(im, line, "no phone");
    rep->skipped++;
    return;
  }
  char phone_rest[256];
  if (!rt_text_phone_field(v, phone, phone_rest, sizeof phone_rest)) {
    problem(im, line, "bad phone \"%s\"", clip(v, cbuf, sizeof cbuf));
    rep->skipped++;
    return;
  }
  if (phone_rest[0])   /* "8 912 ... (Ольга)": the number taken, the rest noted */
    problem(im, line, "phone %s taken, \"%s\" kept as a note", phone,
            clip(phone_rest, cbuf, sizeof cbuf));
  sv[S_PHONE] = phone;
  const char *tz = cell(im, r, C_TZ);
  int tzi = 0;
  if (tz) {
    tzi = tz_lookup(im, tz);
    if (tzi == 0) {
      problem(im, line, "unknown time zone \"%s\", %s used", clip(tz, cbuf, sizeof cbuf),
              im->default_tz);
      tz = NULL;
    }
  }
  const char *ztz = tz ? tz : im->default_tz;
  int ztzi = tz ? tzi : 0;
  stage_rec h = {.line = (uint32_t)line, .gift = -1};
  int y, mo, d;
  if ((v = cell(im, r, C_LAST_PURCHASE))) {
    if (!rt_import_parse_date(v, &y, &mo, &d)) {
      problem(im, line, "bad date \"%s\"", clip(v, cbuf, sizeof cbuf));
      rep->skipped++;
      return;
    }
    h.lp = local_midnight(im, ztz, ztzi, y, mo, d);
    h.has_lp = 1;
  }
  if ((v = cell(im, r, C_DATE))) {
    if (!rt_import_parse_date(v, &y, &mo, &d)) {
      problem(im, line, "bad date \"%s\"", clip(v, cbuf, sizeof cbuf));
      rep->skipped++;
      return;
    }
    h.odate = local_midnight(im, ztz, ztzi, y, mo, d);
    h.has_odate = 1;
    /* The customer's last purchase is at least this order (or, without an
     * order column, this lone date column is the purchase date). */
    if (!h.has_lp || h.odate > h.lp) { h.lp = h.odate; h.has_lp = 1; }
  }
  if ((v = cell(im, r, C_BONUS))) {
    if (rt_import_parse_number(v, &h.bonus)) h.has_bonus = 1;
    else problem(im, line, "bad number \"%s\" in bonus_balance, left empty", clip(v, cbuf, sizeof cbuf));
  }
  /* WhatsApp chat ids are the phone's digits without '+'. A yes/no cell
   * means "this phone has WhatsApp". */
  char wa[20];
  const char *whatsapp = cell(im, r, C_WHATSAPP);
  if (whatsapp) {
    int yn;
    if (rt_text_phone_norm(whatsapp, wa)) {
      memmove(wa, wa + (wa[0] == '+'), strlen(wa + (wa[0] == '+')) + 1);
      whatsapp = wa;
    } else if ((yn = parse_bool(whatsapp)) >= 0) {
      if (yn) {
        strcpy(wa, phone + (phone[0] == '+'));
        whatsapp = wa;
      } else {
        whatsapp = NULL;
      }
    }
  }
  for (int k = 0; k < im->nch; k++) {
    int f = im->ch[k].field;
    sv[S_CH0 + k] = f < r->nf && r->val[f][0] ? r->val[f] : NULL;
  }
  sv[S_NAME] = cell(im, r, C_NAME);
  sv[S_TG] = cell(im, r, C_TELEGRAM);
  sv[S_WA] = whatsapp;
  sv[S_TZ] = tz;
  sv[S_CAR] = cell(im, r, C_CAR);
  char rphone[20];
  if (im->has_orders && (sv[S_ORDER] = cell(im, r, C_ORDER_ID))) {
    if ((v = cell(im, r, C_GIFT))) {
      int g = parse_bool(v);
      if (g < 0) problem(im, line, "bad gift value \"%s\", left as it was", clip(v, cbuf, sizeof cbuf));
      h.gift = (int8_t)g;
    }
    const char *rp = cell(im, r, C_RCPT_PHONE);
    if (rp && !rt_text_phone_norm(rp, rphone))
      problem(im, line, "bad recipient phone \"%s\", left empty", clip(rp, cbuf, sizeof cbuf));
    else if (rp)
      sv[S_RPHONE] = rphone;
    sv[S_PRODUCT] = cell(im, r, C_PRODUCT);
    sv[S_CATEGORY] = cell(im, r, C_CATEGORY);
    sv[S_RNAME] = cell(im, r, C_RCPT_NAME);
  }
  size_t need = sizeof h, len[S_COUNT];
  for (int k = 0; k < S_COUNT; k++) {
    if (!sv[k]) continue;
    h.present |= (uint16_t)(1u << k);
    len[k] = strlen(sv[k]) + 1;
    need += len[k];
  }
  stage_rec *rec = arena_alloc(&im->ar, need);
  memcpy(rec, &h, sizeof h);
  char *o = (char *)(rec + 1);
  for (int k = 0; k < S_COUNT; k++)
    if (sv[k]) { memcpy(o, sv[k], len[k]); o += len[k]; }
  if (im->nix == im->ixcap) {
    im->ixcap = im->ixcap ? im->ixcap * 2 : 65536;
    im->ix = rt_xrealloc(im->ix, im->ixcap * sizeof *im->ix);
  }
  uint64_t key = 0;
  for (const char *p = phone; *p; p++)
    if (*p >= '0' && *p <= '9') key = key * 10 + (uint64_t)(*p - '0');
  im->ix[im->nix++] = (stage_ix){key, im->seq++, rec};
}

/* The strings of a staged row, NULL where absent. */
static void rec_strings(const stage_rec *rec, const char *sv[S_COUNT]) {
  const char *p = (const char *)(rec + 1);
  for (int k = 0; k < S_COUNT; k++) {
    if (rec->present & (1u << k)) {
      sv[k] = p;
      p += strlen(p) + 1;
    } else {
      sv[k] = NULL;
    }
  }
}

static int cmp_phone(const void *a, const void *b) {
  const stage_ix *x = a, *y = b;
  if (x->key != y->key) return x->key < y->key ? -1 : 1;
  return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static int cmp_order(const void *a, const void *b) {
  const stage_ix *x = a, *y = b;
  const char *sx[S_COUNT], *sy[S_COUNT];
  rec_strings(x->r, sx);
  rec_strings(y->r, sy);
  int c = strcmp(sx[S_ORDER], sy[S_ORDER]);
  if (c) return c;
  return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Opens the write transaction before a row when none is open. */
static int batch_open(importer *im) {
  if (im->in_tx) return RT_OK;
  int rc = rt_store_begin(im->s);
  if (rc == RT_OK) {
    im->in_tx = true;
    im->batch = 0;
  }
  return rc;
}

/* Commits after every BATCH_ROWS rows, so a running bot gets the write
 * lock between batches. */
static int batch_done(importer *im) {
  if (++im->batch < BATCH_ROWS) return RT_OK;
  im->in_tx = false;
  return rt_store_commit(im->s);
}

/* A staged row's customer. */
static int write_customer(importer *im, const stage_rec *rec, const char **sv, bool *inserted) {
  rt_import_customer c = {.phone = sv[S_PHONE], .name = sv[S_NAME], .timezone = sv[S_TZ],
                          .car = sv[S_CAR], .last_purchase = rec->lp, .bonus = rec->bonus,
                          .has_last_purchase = rec->has_lp, .has_bonus = rec->has_bonus};
  return rt_store_import_customer(im->w, &c, im->now, inserted);
}

/* The addresses of a chunk, written after its customers in (channel,
 * address) order: that is the key of customer_addresses, so a transaction
 * touches neighbouring pages instead of one random page per address (the
 * ids have nothing to do with the phone order of the customers). seq keeps
 * the file's order among rows of one address: the last row wins. */
typedef struct {
  const char *channel, *address, *phone;
  uint32_t seq, line;
} addr_ix;

static int cmp_addr(const void *a, const void *b) {
  const addr_ix *x = a, *y = b;
  int c = strcmp(x->channel, y->channel);
  if (!c) c = strcmp(x->address, y->address);
  if (c) return c;
  return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Adds the addresses of a staged row to a (growing) list. */
static void collect_addresses(importer *im, const stage_rec *rec, const char **sv, uint32_t seq,
                              addr_ix **a, size_t *n, size_t *cap) {
  for (int k = -2; k < im->nch; k++) {
    const char *v = k == -2 ? sv[S_TG] : k == -1 ? sv[S_WA] : sv[S_CH0 + k];
    if (!v) continue;
    if (*n == *cap) {
      *cap = *cap ? *cap * 2 : 4096;
      *a = rt_xrealloc(*a, *cap * sizeof **a);
    }
    (*a)[(*n)++] = (addr_ix){k == -2 ? "telegram" : k == -1 ? "whatsapp" : im->ch[k].name, v,
                             sv[S_PHONE], seq, rec->line};
  }
}

static int write_addresses(importer *im, addr_ix *a, size_t n, uint32_t *line) {
  if (n) qsort(a, n, sizeof *a, cmp_addr);
  int rc = RT_OK;
  for (size_t i = 0; i < n && rc == RT_OK; i++) {
    *line = a[i].line;
    if ((rc = batch_open(im)) != RT_OK) break;
    if ((rc = rt_store_import_address(im->w, a[i].phone, a[i].channel, a[i].address, im->now)) != RT_OK)
      break;
    rc = batch_done(im);
  }
  return rc;
}

static int write_order(importer *im, const stage_rec *rec, const char **sv, bool *inserted) {
  rt_import_order o = {.order_id = sv[S_ORDER], .phone = sv[S_PHONE], .product = sv[S_PRODUCT],
                       .category = sv[S_CATEGORY], .recipient_name = sv[S_RNAME],
                       .recipient_phone = sv[S_RPHONE], .date = rec->odate,
                       .has_date = rec->has_odate, .gift = rec->gift};
  return rt_store_import_order(im->w, &o, inserted);
}

/* Writes the staged chunk: customers in phone order, then orders in order
 * id order. Returns RT_OK or an RT_E* code with *err set. */
static int flush_stage(importer *im, const char *file, char **err) {
  rt_import_report *rep = im->rep;
  int rc = RT_OK;
  const stage_rec *rec = NULL;
  const char *what = "store";
  if (im->nix) qsort(im->ix, im->nix, sizeof *im->ix, cmp_phone);
  addr_ix *addrs = NULL;
  size_t naddr = 0, capaddr = 0;
  for (size_t i = 0; i < im->nix && rc == RT_OK; i++) {
    rec = im->ix[i].r;
    const char *sv[S_COUNT];
    rec_strings(rec, sv);
    collect_addresses(im, rec, sv, im->ix[i].seq, &addrs, &naddr, &capaddr);
    if ((rc = batch_open(im)) != RT_OK) break;
    bool ins;
    if ((rc = write_customer(im, rec, sv, &ins)) != RT_OK) { what = "customers"; break; }
    if (ins) rep->customers_inserted++;
    else rep->customers_updated++;
    rc = batch_done(im);
  }
  uint32_t aline = 0;
  if (rc == RT_OK && (rc = write_addresses(im, addrs, naddr, &aline)) != RT_OK) {
    what = "addresses";
    if (!*err) *err = rt_xasprintf("%s: line %u: addresses: %s", file, aline, rt_store_errmsg(im->s));
  }
  free(addrs);
  if (rc == RT_OK && im->has_orders) {
    /* Rows with an order id, in place at the front of the index. */
    size_t n = 0;
    for (size_t i = 0; i < im->nix; i++)
      if (im->ix[i].r->present & (1u << S_ORDER)) im->ix[n++] = im->ix[i];
    if (n) qsort(im->ix, n, sizeof *im->ix, cmp_order);
    for (size_t i = 0; i < n && rc == RT_OK; i++) {
      rec = im->ix[i].r;
      const char *sv[S_COUNT];
      rec_strings(rec, sv);
      if ((rc = batch_open(im)) != RT_OK) break;
      bool ins;
      if ((rc = write_order(im, rec, sv, &ins)) != RT_OK) { what = "orders"; break; }
      if (ins) rep->orders_inserted++;
      else rep->orders_updated++;
      rc = batch_done(im);
    }
  }
  if (rc == RT_OK && im->in_tx) {
    im->in_tx = false;
    rc = rt_store_commit(im->s);
  }
  if (rc != RT_OK && !*err) {
    if (rec)
      *err = rt_xasprintf("%s: line %u: %s: %s", file, rec->line, what, rt_store_errmsg(im->s));
    else
      *err = rt_xasprintf("%s: %s: %s", file, what, rt_store_errmsg(im->s));
  }
  im->nix = 0;
  arena_reset(&im->ar);
  return rc;
}

static void reader_free(csv_reader *r) {
  if (r->fd >= 0) close(r->fd);
  free(r->buf);
  free(r->fld);
  free(r->foff);
  free(r->conv);
  free(r->val);
  if (r->cd != (iconv_t)-1) iconv_close(r->cd);
}

/* Notes on the record just read that are not about its cells. Returns
 * false when the record must be skipped. */
static bool record_notes(importer *im, csv_reader *r) {
  if (r->rec_cp1251)
    problem(im, r->rec_line, "not valid UTF-8 (the rest of the file is), read as Windows-1251");
  if (!r->quote_line) return true;
  if (r->quote_close)
    problem(im, r->quote_line, "the quote opened here is never closed (the quote on line %d "
            "that would close it starts a cell of a later row)", r->quote_close);
  else
    problem(im, r->quote_line, "the quote opened here is never closed");
  return false;
}

/* Reads the next record into r->val. 1 record, 0 end, -1 read error. */
static int next_record(csv_reader *r) {
  for (;;) {
    int rc = parse_record(r);
    if (rc == 1) { record_values(r); return 1; }
    if (rc < 0) return 0;
    if (read_more(r) < 0) return -1;
  }
}

static bool blank_record(csv_reader *r) {
  for (int i = 0; i < r->nf; i++)
    if (r->val[i][0]) return false;
  return true;
}

int rt_import_csv(rt_store *s, const char *file, int64_t now_ms, const char *default_tz,
                  rt_import_report *rep, char **err) {
  memset(rep, 0, sizeof *rep);
  *err = NULL;
  if (!default_tz || !*default_tz) default_tz = "Europe/Moscow";
  csv_reader r = {.fd = -1, .line = 1, .raw_from = SIZE_MAX, .cd = (iconv_t)-1};
  r.fd = open(file, O_RDONLY | O_CLOEXEC);
  if (r.fd < 0) {
    *err = rt_xasprintf("%s: %s", file, strerror(errno));
    return errno == ENOENT ? RT_ENOENT : RT_EIO;
  }
  /* The encoding scan reads the file twice; a pipe or a device (/dev/zero)
   * cannot be, and would not end. */
  struct stat sb;
  if (fstat(r.fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
    *err = rt_xasprintf("%s: not a regular file", file);
    close(r.fd);
    return RT_EINVAL;
  }
  enc_scan es;
  if (scan_encoding(r.fd, &es) < 0) {
    *err = rt_xasprintf("%s: %s", file, strerror(errno));
    close(r.fd);
    return RT_EIO;
  }
  /* UTF-8 unless most lines with non-ASCII text are not UTF-8. A UTF-8
   * file's odd rows are read as Windows-1251 one by one, each with a note
   * (record_notes); Windows-1251 text is almost never valid UTF-8 by
   * chance, so a line that is valid UTF-8 is taken as UTF-8. */
  r.enc = es.bad_lines > es.utf8_lines ? 2 : 1;
  r.cd = iconv_open("UTF-8", "CP1251");
  if (r.cd == (iconv_t)-1) {
    *err = rt_xasprintf("%s: no Windows-1251 converter in iconv: %s", file, strerror(errno));
    close(r.fd);
    return RT_EIO;
  }
  r.cap = BUF_INIT;
  r.buf = rt_xmalloc(r.cap);
  importer *im = rt_xcalloc(1, sizeof *im);
  im->s = s;
  im->rep = rep;
  im->default_tz = default_tz;
  im->now = now_ms;
  int ret = RT_OK;

  /* Fill the buffer until it holds the first line (or the whole file). */
  do {
    if (read_more(&r) < 0) goto read_error;
  } while (!r.eof && !memchr(r.buf, '\n', r.len));
  const unsigned char *u = (const unsigned char *)r.buf;
  if (r.len >= 2 && ((u[0] == 0xFF && u[1] == 0xFE) || (u[0] == 0xFE && u[1] == 0xFF))) {
    *err = rt_xasprintf("%s: UTF-16 text; save it as CSV in UTF-8 or Windows-1251", file);
    ret = RT_EINVAL;
    goto out;
  }
  if (r.len >= 3 && u[0] == 0xEF && u[1] == 0xBB && u[2] == 0xBF) {
    r.pos = 3;
    r.enc = 1;   /* the BOM says so, whatever the lines say */
  }
  r.delim = sniff_delim(r.buf + r.pos, r.len - r.pos);
  rep->delimiter = r.delim;
  int got = next_record(&r);
  if (got < 0) goto read_error;
  if (got == 0 || blank_record(&r)) {
    *err = rt_xasprintf("%s: empty file, expected a header row", file);
    ret = RT_EINVAL;
    goto out;
  }
  record_notes(im, &r);
  if ((ret = map_header(im, &r, err)) != RT_OK) {
    char *m = rt_xasprintf("%s: %s", file, *err);
    free(*err);
    *err = m;
    goto out;
  }
  if ((ret = rt_store_import_new(s, &im->w, err)) != RT_OK) goto out;
  for (;;) {
    got = next_record(&r);
    if (got < 0) goto read_error;
    if (got == 0) break;
    if (blank_record(&r)) continue;
    rep->rows++;
    if (!record_notes(im, &r)) { rep->skipped++; continue; }
    stage_row(im, &r);
    if (im->ar.total >= CHUNK_BYTES && (ret = flush_stage(im, file, err)) != RT_OK) goto out;
  }
  ret = flush_stage(im, file, err);
  goto out;

read_error:
  *err = rt_xasprintf("%s: %s", file, strerror(errno));
  ret = RT_EIO;
out:
  if (im->in_tx) rt_store_rollback(s);
  snprintf(rep->encoding, sizeof rep->encoding, "%s", r.enc == 2 ? "cp1251" : "utf-8");
  /* The indexes dropped for a first import are built even when it failed
   * half way: what was committed stays, and must be found. */
  if (im->w && rt_store_import_finish(im->w) != RT_OK && ret == RT_OK) {
    *err = rt_xasprintf("%s: indexes: %s", file, rt_store_errmsg(s));
    ret = rt_store_errcode(s) ? rt_store_errcode(s) : RT_EIO;
  }
  rt_store_import_free(im->w);
  arena_reset(&im->ar);
  free(im->ix);
  free(im);
  reader_free(&r);
  return ret;
}
