/* tgupd.h -- a getUpdates answer read without a jansson tree.
 *
 * Nearly every update a shop's bot receives is a customer's private text
 * message. Reading the whole answer into a jansson tree (a node, a hash
 * table and a key for every field of every update) and freeing it again
 * took a tenth of the bot's CPU per message in tests/bench/telegram. This
 * reader walks the answer once, without allocating per field: for each
 * update it records where its bytes are and, when it is a private text
 * message, the few fields the channel reads from it (telegram.c
 * normalise_message with a text). Every other update is parsed by jansson
 * from its own bytes, as before.
 *
 * The reader accepts only what jansson would accept and read the same way
 * (valid UTF-8, no NUL, escapes that jansson decodes, integers within
 * int64, no duplicate keys among the fields it takes, nesting under 64);
 * anything it is not sure of makes it give up (-1) or leave that update to
 * jansson (fast = false), never guess. */
#ifndef RT_TGUPD_H
#define RT_TGUPD_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
  const char *start;      /* the update's text inside the answer */
  size_t len;
  bool fast;              /* a private text message, its fields below */
  bool has_id;            /* update_id is an integer */
  int64_t update_id;
  /* fast only; strings are decoded, NUL-terminated, NULL when absent (or
   * not a string, where the channel reads them as absent) */
  int64_t chat_id;
  bool has_from_id, has_message_id;
  int64_t from_id, message_id;
  const char *text, *first_name, *last_name, *username, *media_group_id;
} rt_tgupd;

typedef struct {
  rt_tgupd *u;            /* owned */
  size_t n, cap;
  char *arena;            /* owned: the decoded strings */
} rt_tgupd_batch;

/* Reads {"ok":true,"result":[...]} from s[0..n). 0 and b filled (b's
 * strings point into b->arena, the updates' text into s); -1 when the
 * text is not such an answer or the reader is unsure: then the caller
 * parses it with jansson. b is reset either way; rt_tgupd_free after. */
int rt_tgupd_read(const char *s, size_t n, rt_tgupd_batch *b);
void rt_tgupd_free(rt_tgupd_batch *b);

/* True when s[0..n) is one JSON value as jansson would read it (the
 * reader's checks above, no tree, no allocation), with only whitespace
 * after it: a send's answer is taken as delivered only then, never on its
 * first bytes alone (a body cut short may not have been sent whole). */
bool rt_tgupd_whole(const char *s, size_t n);

/* ---- an answer jansson refuses ----
 *
 * One update jansson cannot read (a lone surrogate or \u0000 in a text, an
 * integer beyond int64 anywhere) must not make the whole answer unreadable:
 * the offset would never move past it. These read the raw text loosely,
 * tracking only strings, escapes and the nesting, so the answer can be cut
 * into its updates and each read (or skipped) alone. */

typedef struct {
  const char *start;      /* one element of the answer's result array */
  size_t len;
} rt_tgupd_span;

/* The elements of the result array of {"ok":true,"result":[...]} in
 * s[0..n): 0 and *out (owned, free()) with *count of them; -1 when the
 * text is not such an answer, or not whole (cut short: nothing of it is
 * taken, the poll is retried). */
int rt_tgupd_split(const char *s, size_t n, rt_tgupd_span **out, size_t *count);

/* The update_id of one update's raw text (a key of its outer object),
 * read even when the rest of it is broken or cut short; false when there
 * is none before the text ends or breaks. */
bool rt_tgupd_id(const char *s, size_t n, int64_t *id);

/* The update_id of the first update of an answer's first n bytes
 * ({"ok":true,"result":[{"update_id":N ...), the rest of it possibly cut
 * off: the head of an answer over the size cap. */
bool rt_tgupd_first_id(const char *s, size_t n, int64_t *id);

/* Writes to out (appended) a copy of one update's raw text that jansson
 * reads, and returns how many things were replaced: a \u0000 or a lone
 * surrogate escape becomes \ufffd (U+FFFD, so the customer's message is
 * kept, the character that cannot be shown marked), broken UTF-8 and raw
 * control bytes in a string U+FFFD and \u00XX, an integer beyond int64 a
 * real (jansson refuses the integer; the channel reads ids with jint, which
 * takes no real, so an id can never be read rounded). The copy has the
 * same structure; what is still not JSON stays (jansson refuses it then). */
struct rt_buf;
size_t rt_tgupd_repair(const char *s, size_t n, struct rt_buf *out);
#endif
