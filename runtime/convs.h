/* convs.h -- the conversations the bot talks in, kept in memory.
 *
 * The bot is the only writer of a conversation's state (the shop lock:
 * one bot per shop), so the row it last committed is the row on disk and
 * need not be read again for the chat's next event. This is a bounded LRU
 * of those rows; a miss reads the store (inside the caller's transaction,
 * so the read takes no lock of its own) and creates the row of a new chat.
 * What another process may change (a campaign links a chat to a customer's
 * phone and sets a wake-up) is re-read: firing a wake-up reads the row
 * with its timer and puts it here (timers.c).
 * Entries are put back only after their commit, so a rolled-back step
 * never leaves its row here. Borrowed: the store. */
#ifndef RT_CONVS_H
#define RT_CONVS_H
#include "store.h"

typedef struct rt_convs rt_convs;

/* max: conversations kept (store.conv_cache); 0 keeps none. */
rt_convs *rt_convs_new(rt_store *s, size_t max);
void rt_convs_free(rt_convs *cs);
/* The conversation of a chat, owned by the caller: taken out of memory
 * (it comes back with rt_convs_put after the step's commit), else read
 * from the store (created when the chat has none). */
int rt_convs_get(rt_convs *cs, const char *channel, const char *chat_id, int64_t now,
                 rt_conv_row *out);
/* r is what the store holds now (committed): kept, moved in (r is left
 * cleared). The least recently used rows beyond max are dropped. */
void rt_convs_put(rt_convs *cs, rt_conv_row *r);
/* Drops a chat's row: it may have changed outside the bot. */
void rt_convs_forget(rt_convs *cs, const char *channel, const char *chat_id);
void rt_convs_clear(rt_convs *cs);
size_t rt_convs_count(const rt_convs *cs);
/* Rows dropped since the last call (to give memory back when it grows). */
size_t rt_convs_take_dropped(rt_convs *cs);

typedef struct {
  uint64_t hits, misses;
} rt_convs_stats;
const rt_convs_stats *rt_convs_get_stats(const rt_convs *cs);
#endif
