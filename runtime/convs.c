/* convs.c -- the conversation cache (see convs.h).
 *
 * A cached row is one allocation: its numbers, then its strings one after
 * another, each NUL-terminated, in the order of FIELDS (a bit of `set`
 * says which are not NULL). The first two are channel and chat_id, the
 * key, so the entry is its own key and its own hash node. The eleven
 * strings of a row in malloc chunks of their own, a key, a map slot and
 * an entry came to about 560 bytes a row for a check-in's short row, 5.5
 * MB at the default 10,000; packed, the same row takes about 180. */
#include "convs.h"
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

static const size_t FIELDS[] = {
  offsetof(rt_conv_row, channel), offsetof(rt_conv_row, chat_id),
  offsetof(rt_conv_row, user_id), offsetof(rt_conv_row, phone),
  offsetof(rt_conv_row, flow), offsetof(rt_conv_row, step),
  offsetof(rt_conv_row, state), offsetof(rt_conv_row, mode),
  offsetof(rt_conv_row, last_error), offsetof(rt_conv_row, owner),
  offsetof(rt_conv_row, owner_name),
};
#define NFIELDS (sizeof FIELDS / sizeof FIELDS[0])
#define FIELD(r, i) (*(char **)((char *)(r) + FIELDS[i]))
/* In entry.set beside the fields' bits: the phone is the one the store has
 * (rt_conv_row.phone_saved), kept as a bit rather than a second copy. */
#define PHONE_SAVED (1u << 31)
_Static_assert(NFIELDS < 31, "entry.set has a bit per field and PHONE_SAVED");

typedef struct entry {
  struct entry *prev, *next;   /* LRU: head is the most recent */
  struct entry *chain;         /* the next entry in its bucket */
  uint64_t hash;
  int64_t id, rev, created_at, updated_at, last_in_at;
  unsigned set;                /* bit i: FIELDS[i] is not NULL */
  char text[];                 /* the strings that are set, in FIELDS order */
} entry;

struct rt_convs {
  rt_store *store;
  size_t max, dropped;
  entry **buckets;             /* nbuckets (a power of two, or 0) chains */
  size_t nbuckets;
  entry *head, *tail;
  size_t n;
  rt_convs_stats st;
};

rt_convs *rt_convs_new(rt_store *s, size_t max) {
  rt_convs *cs = rt_xcalloc(1, sizeof *cs);
  cs->store = s;
  cs->max = max;
  return cs;
}

/* FNV-1a of channel, a unit separator, chat_id. */
static uint64_t key_hash(const char *channel, const char *chat_id) {
  uint64_t h = 1469598103934665603ULL;
  for (const char *p = channel; *p; p++) h = (h ^ (unsigned char)*p) * 1099511628211ULL;
  h = (h ^ 0x1f) * 1099511628211ULL;
  for (const char *p = chat_id; *p; p++) h = (h ^ (unsigned char)*p) * 1099511628211ULL;
  return h;
}

static entry **slot_of(rt_convs *cs, uint64_t h, const char *channel, const char *chat_id) {
  if (!cs->nbuckets) return NULL;
  entry **p = &cs->buckets[h & (cs->nbuckets - 1)];
  for (; *p; p = &(*p)->chain) {
    entry *en = *p;
    if (en->hash != h || strcmp(en->text, channel) != 0) continue;
    if (strcmp(en->text + strlen(en->text) + 1, chat_id) == 0) return p;
  }
  return p;
}

static void grow(rt_convs *cs) {
  size_t nb = cs->nbuckets ? cs->nbuckets * 2 : 64;
  entry **b = rt_xcalloc(nb, sizeof *b);
  for (size_t i = 0; i < cs->nbuckets; i++)
    for (entry *en = cs->buckets[i]; en;) {
      entry *next = en->chain;
      en->chain = b[en->hash & (nb - 1)];
      b[en->hash & (nb - 1)] = en;
      en = next;
    }
  free(cs->buckets);
  cs->buckets = b;
  cs->nbuckets = nb;
}

static void unlink_lru(rt_convs *cs, entry *en) {
  if (en->prev) en->prev->next = en->next;
  else cs->head = en->next;
  if (en->next) en->next->prev = en->prev;
  else cs->tail = en->prev;
  en->prev = en->next = NULL;
}

static void link_head(rt_convs *cs, entry *en) {
  en->prev = NULL;
  en->next = cs->head;
  if (cs->head) cs->head->prev = en;
  cs->head = en;
  if (!cs->tail) cs->tail = en;
}

/* Takes the entry at *slot out of the table and the LRU. */
static entry *take(rt_convs *cs, entry **slot) {
  entry *en = *slot;
  *slot = en->chain;
  unlink_lru(cs, en);
  cs->n--;
  return en;
}

static void drop(rt_convs *cs, entry *en) {
  entry **p = slot_of(cs, en->hash, en->text, en->text + strlen(en->text) + 1);
  free(take(cs, p));
  cs->dropped++;
}

void rt_convs_clear(rt_convs *cs) {
  while (cs->head) drop(cs, cs->head);
  /* Emptied to give memory back (engine.c): the table goes too. */
  free(cs->buckets);
  cs->buckets = NULL;
  cs->nbuckets = 0;
}

void rt_convs_free(rt_convs *cs) {
  if (!cs) return;
  rt_convs_clear(cs);
  free(cs);
}

int rt_convs_get(rt_convs *cs, const char *channel, const char *chat_id, int64_t now,
                 rt_conv_row *out) {
  uint64_t h = key_hash(channel, chat_id);
  entry **p = slot_of(cs, h, channel, chat_id);
  if (p && *p) {
    /* Taken out: a chat runs one step at a time, and its row comes back
     * with that step's commit (or is read again after a rollback). */
    cs->st.hits++;
    entry *en = take(cs, p);
    memset(out, 0, sizeof *out);
    out->id = en->id;
    out->rev = en->rev;
    out->created_at = en->created_at;
    out->updated_at = en->updated_at;
    out->last_in_at = en->last_in_at;
    const char *s = en->text;
    for (size_t i = 0; i < NFIELDS; i++) {
      if (!(en->set & (1u << i))) continue;
      size_t len = strlen(s);
      char *c = rt_xmalloc(len + 1);
      memcpy(c, s, len + 1);
      FIELD(out, i) = c;
      s += len + 1;
    }
    if ((en->set & PHONE_SAVED) && out->phone) out->phone_saved = rt_xstrdup(out->phone);
    free(en);
    return RT_OK;
  }
  cs->st.misses++;
  return rt_store_conv_get(cs->store, channel, chat_id, true, now, out);
}

void rt_convs_put(rt_convs *cs, rt_conv_row *r) {
  if (!cs->max || !r->channel || !r->chat_id) {
    rt_conv_row_clear(r);
    return;
  }
  size_t len[NFIELDS], total = 0;
  unsigned set = 0;
  for (size_t i = 0; i < NFIELDS; i++) {
    const char *v = FIELD(r, i);
    len[i] = v ? strlen(v) + 1 : 0;
    if (v) set |= 1u << i;
    total += len[i];
  }
  if (r->phone && r->phone_saved && strcmp(r->phone, r->phone_saved) == 0) set |= PHONE_SAVED;
  entry *en = rt_xmalloc(sizeof *en + total);
  en->prev = en->next = en->chain = NULL;
  en->hash = key_hash(r->channel, r->chat_id);
  en->id = r->id;
  en->rev = r->rev;
  en->created_at = r->created_at;
  en->updated_at = r->updated_at;
  en->last_in_at = r->last_in_at;
  en->set = set;
  char *at = en->text;
  for (size_t i = 0; i < NFIELDS; i++) {
    if (!len[i]) continue;
    memcpy(at, FIELD(r, i), len[i]);
    at += len[i];
  }
  entry **p = slot_of(cs, en->hash, r->channel, r->chat_id);
  if (p && *p) free(take(cs, p));
  rt_conv_row_clear(r);
  if (cs->n + 1 > cs->nbuckets) grow(cs);
  entry **b = &cs->buckets[en->hash & (cs->nbuckets - 1)];
  en->chain = *b;
  *b = en;
  link_head(cs, en);
  cs->n++;
  while (cs->n > cs->max) drop(cs, cs->tail);
}

void rt_convs_forget(rt_convs *cs, const char *channel, const char *chat_id) {
  entry **p = slot_of(cs, key_hash(channel, chat_id), channel, chat_id);
  if (p && *p) {
    free(take(cs, p));
    cs->dropped++;
  }
}

size_t rt_convs_count(const rt_convs *cs) { return cs->n; }

size_t rt_convs_take_dropped(rt_convs *cs) {
  size_t n = cs->dropped;
  cs->dropped = 0;
  return n;
}

const rt_convs_stats *rt_convs_get_stats(const rt_convs *cs) { return &cs->st; }
