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
#endif
