/* import.h -- customers and orders from the shop's 1C/CSV export.
 *
 * One call reads a whole file and upserts it into the store: the customer's
 * E.164 phone is the key, so importing the same export again (or a newer one)
 * updates rows and never duplicates them. The reader copes with what 1C and
 * Excel actually write: Russian column names, ';' or ',' or tab, RFC 4180
 * quoting, UTF-8 with or without BOM or Windows-1251 (decided per file from
 * all its lines), CRLF. A row with a bad phone or date is reported with its
 * physical line number and skipped; the good rows around it are kept. See docs/import.md for the format. */
#ifndef RT_IMPORT_H
#define RT_IMPORT_H
#include "rt.h"
#include "store.h"

#define RT_IMPORT_MAX_PROBLEMS 100

typedef struct {
  int line;        /* physical line in the file, 1-based; the header is line 1 */
  char msg[200];   /* without the "line N: " prefix, e.g. `bad phone "12345"` */
} rt_import_problem;

typedef struct {
  int64_t rows;                 /* data records read (blank lines not counted) */
  int64_t customers_inserted, customers_updated;
  int64_t orders_inserted, orders_updated;
  int64_t skipped;              /* records not imported at all */
  int64_t problems_total;       /* problems and notes, also those past the list */
  int nproblems;                /* entries used in problems[] */
  rt_import_problem problems[RT_IMPORT_MAX_PROBLEMS];
  char encoding[8];             /* "utf-8" or "cp1251" */
  char delimiter;               /* ';', ',' or '\t' */
} rt_import_report;

/* Imports file into s. now_ms stamps customers.updated_at; default_tz is the
 * zone for dates of customers without a valid timezone cell. Returns RT_OK
 * when the file was read (problems, if any, are in rep), or RT_ENOENT/RT_EIO
 * (unreadable file), RT_EINVAL (empty, no header, no phone column, UTF-16,
 * not a regular file),
 * or the store's error, with an owned message in *err. Rows committed before
 * a store failure stay imported (one transaction per 10,000 rows). */
int rt_import_csv(rt_store *s, const char *file, int64_t now_ms, const char *default_tz,
                  rt_import_report *rep, char **err);

/* Parses a date cell: DD.MM.YYYY, DD.MM.YY, YYYY-MM-DD, optionally followed
 * by a time H:MM[:SS] that is ignored. Returns false on anything else,
 * including impossible days (31.02.2025). */
bool rt_import_parse_date(const char *s, int *y, int *m, int *d);
/* Parses "1 250,50", "1250.5", "-3" (spaces, NBSP as thousands separators). */
bool rt_import_parse_number(const char *s, double *out);
/* Writes the UTF-8 form of a Windows-1251 string (len bytes) into out, which
 * must hold 3 * len + 1 bytes. Returns the output length. */
size_t rt_import_cp1251_to_utf8(const char *in, size_t len, char *out);

#endif
