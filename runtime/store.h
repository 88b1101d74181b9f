/* store.h -- the shop's durable store: one SQLite file in WAL mode.
 *
 * Owns the sqlite3 handle and its prepared statements. Everything runs on
 * the loop thread; every statement is short. Migrations are the files
 * schema/sql/NNN_*.sql applied in order at open, tracked by PRAGMA
 * user_version. Writes happen between rt_store_begin and rt_store_commit;
 * the engine groups the work of one loop turn into one transaction. */
#ifndef RT_STORE_H
#define RT_STORE_H
#include "record.h"
#include "rt.h"
#include <jansson.h>

typedef struct rt_store rt_store;

typedef struct {
  const char *sql_dir;      /* folder with NNN_*.sql migrations */
  bool sync_full;           /* PRAGMA synchronous=FULL (default) or NORMAL */
  bool sync_off;            /* transcript tests: no fsync at all */
  long max_pages;           /* tests: PRAGMA max_page_count to simulate a full disk */
  int cache_mb;             /* page cache; 0 = 16 MB */
  int check_ms;             /* time budget of the quick_check at open; 0 = 3000 */
  bool no_busy_wait;        /* the serving loop: a locked store fails at once with
                               RT_EBUSY and the loop retries (engine.c) instead of
                               sleeping in SQLite's busy handler; tools wait */
  int busy_wait_ms;         /* how long a tool waits for another writer's lock;
                               0 = 10,000: a campaign chunk of another run can
                               hold it over 2 s on a slow machine */
  bool read_only;           /* never written: opened read-only, no migrations
                               (an older store is refused with the reason);
                               the studio reads a real shop's figures so */
  bool own_checkpoints;     /* the serving loop: SQLite's automatic checkpoint,
                               which runs inside the COMMIT that crosses 1,000
                               pages, is off; the caller runs
                               rt_store_checkpoint when it has time */
  bool sync_later;          /* with sync_full and own_checkpoints, on a file: the
                               COMMIT writes the WAL and returns; the caller syncs
                               it off the loop (rt_store_wal_fsync) and says so
                               (rt_store_synced). Until then the commit's outbox
                               rows are neither handed over nor seen by the
                               scans. A commit is as durable as with FULL once
                               synced; SQLite still syncs its checkpoints and a
                               WAL that starts again (synchronous=NORMAL). */
} rt_store_opts;

/* Opens (creating if needed) the store at path and applies migrations. On
 * failure returns RT_E* and an owned message in *err. */
int rt_store_open(const char *path, const rt_store_opts *o, rt_store **out, char **err);
void rt_store_close(rt_store *s);
/* Last error message of the store; borrowed, valid until the next call. */
const char *rt_store_errmsg(rt_store *s);
/* Maps the last SQLite failure to RT_EFULL, RT_EROFS or RT_EIO. */
int rt_store_errcode(rt_store *s);

int rt_store_begin(rt_store *s);
int rt_store_commit(rt_store *s);
void rt_store_rollback(rt_store *s);
/* Runs a statement with no results (used by tests and tools). */
int rt_store_exec(rt_store *s, const char *sql);
/* True inside a transaction (rt_store_begin's, or a tool's read). */
bool rt_store_in_txn(rt_store *s);
/* Gives the page cache's unused pages and the prepared statements back to
 * the allocator (the bot calls it once a burst is over; the pages are read
 * and the statements prepared again when needed). Outside a transaction. */
void rt_store_release_memory(rt_store *s);
/* With own_checkpoints: pages the WAL holds that are not yet copied into
 * the database file, as of the last commit. */
int64_t rt_store_wal_pages(rt_store *s);
/* With own_checkpoints: pages written to the WAL since the store opened
 * (what a workload costs in writes, for the benchmarks). */
int64_t rt_store_wal_written(rt_store *s);
/* The frames the WAL holds now, copied or not: its file is at least as
 * long (own_checkpoints). */
int64_t rt_store_wal_frames(rt_store *s);
/* Copies the WAL's committed pages into the database file and syncs it (a
 * passive checkpoint: it takes no lock a writer needs, and stops short of
 * pages a reader in another process still uses). Durability does not
 * depend on it: a commit is durable once its WAL frames are synced. Not
 * inside a transaction. RT_OK, or the store's code (a checkpoint of
 * another process holds the lock: try later). */
int rt_store_checkpoint(rt_store *s);
/* ---- commits synced apart (sync_later) ----
 * Every write transaction, autocommit statements included, is counted at
 * its commit. The caller syncs the WAL and reports which commits that
 * covered; one sync at a time. Without sync_later every commit counts as
 * synced at once. */
bool rt_store_sync_later(const rt_store *s);
/* The WAL file to sync (sync_later), borrowed. */
const char *rt_store_wal_path(const rt_store *s);
/* Commits wait for a sync. */
bool rt_store_sync_pending(const rt_store *s);
/* A sync starts now: returns the number of the last commit it covers. */
int64_t rt_store_sync_begin(rt_store *s);
/* The sync that rt_store_sync_begin numbered upto is done: the outbox rows
 * of those commits are handed over and seen by the scans. */
void rt_store_synced(rt_store *s, int64_t upto);
/* Commits counted since open; of them on disk. */
int64_t rt_store_commit_count(const rt_store *s);
int64_t rt_store_synced_commits(const rt_store *s);
/* fn(ud) after each commit (from inside the statement that committed: it
 * may only schedule work, not use the store). */
void rt_store_on_commit(rt_store *s, void (*fn)(void *ud), void *ud);
/* fdatasync of the file at wal_path: 0 or an errno. Touches no store, so
 * it may run on a worker thread while the loop goes on. */
int rt_store_wal_fsync(const char *wal_path);
/* A connection of its own for passive checkpoints on a worker thread
 * (sync_later stores; NULL otherwise), used by one thread at a time. run:
 * NULL, or SQLite's reason (the next one retries); log and copied as
 * rt_store_checkpointed takes them. */
typedef struct rt_store_ckpt rt_store_ckpt;
rt_store_ckpt *rt_store_ckpt_new(const rt_store *s);
const char *rt_store_ckpt_run(rt_store_ckpt *c, int *log, int *copied);
void rt_store_ckpt_free(rt_store_ckpt *c);
/* A checkpoint made by another connection (walsync.c) copied copied of
 * the log frames the WAL held: rt_store_wal_pages counts it. */
void rt_store_checkpointed(rt_store *s, int log, int copied);
/* Pages read from the file (or the OS's cache) since the store opened: the
 * misses of SQLite's page cache. */
int64_t rt_store_page_reads(rt_store *s);
/* Bytes the connection holds: page cache, schema, prepared statements. */
int64_t rt_store_mem_used(rt_store *s);

/* ---- inbox ---- */
/* Inserts a received event. Returns RT_OK and its id, or 1 when the chat
 * already has an event of that channel with that ext_id (a redelivery:
 * nothing to do; 023_chat_buckets.sql). */
int rt_store_inbox_add(rt_store *s, const char *channel, const char *ext_id,
                       const char *chat_id, const char *kind, const char *payload,
                       int64_t now, int64_t *id);
/* The same with the row's status: "new", or "done" for an event whose step
 * runs and is applied in this same transaction (one commit per event). */
int rt_store_inbox_add_as(rt_store *s, const char *channel, const char *ext_id,
                          const char *chat_id, const char *kind, const char *payload,
                          const char *status, int64_t now, int64_t *id);
/* Back to "new" (a step that was to finish in the transaction waits on
 * I/O instead: the event must be found again after a crash). */
int rt_store_inbox_reopen(rt_store *s, int64_t id);
typedef struct {
  int64_t id;
  const char *channel, *chat_id, *kind, *payload;   /* borrowed for the callback */
} rt_inbox_row;
/* Calls fn for every event not yet processed, oldest first. */
int rt_store_inbox_pending(rt_store *s, void (*fn)(void *ud, const rt_inbox_row *r), void *ud);
/* Loads one inbox row; *payload is owned by the caller. */
int rt_store_inbox_get(rt_store *s, int64_t id, char **payload);
int rt_store_inbox_finish(rt_store *s, int64_t id, const char *status, int64_t now);
/* Counts one more start of an event (crash recovery); *before is the count
 * before this one. RT_ENOENT when there is no such event. */
int rt_store_inbox_attempt(rt_store *s, int64_t id, int64_t *before);
/* Sets an event aside for good: status 'quarantined' and the reason. */
int rt_store_inbox_quarantine(rt_store *s, int64_t id, const char *reason, int64_t now);

/* ---- a chat's history (the web chat page after a reload, a second tab) ---- */
typedef struct {
  bool from_customer;        /* an inbox text/photo; else a message sent to the chat */
  int64_t at;                /* received, or queued by the step that wrote it (ms) */
  int64_t id;                /* the inbox or outbox row */
  const char *ext_id;        /* the customer's: the channel's id of it; else NULL */
  const char *payload;       /* the stored JSON (the event; {text, buttons, media}) */
} rt_history_row;
/* The newest `limit` messages of one chat both ways, oldest first: what the
 * customer sent (inbox rows of kind text or photo) and what was sent to the
 * chat (outbox rows delivered), of a channel that keeps history (below).
 * Rows are borrowed during fn. */
int rt_store_chat_history(rt_store *s, const char *channel, const char *chat_id, int limit,
                          void (*fn)(void *ud, const rt_history_row *r), void *ud);
/* The rows of `channel` stored from now on are kept for the history
 * (024_history_kept.sql): the host calls it for each channel that declares
 * RT_CH_HISTORY, before the channel's first message. Other channels' rows
 * are not, and cost no write in the history's b-trees. */
void rt_store_keep_history(rt_store *s, const char *channel);

/* ---- meta (small runtime facts, e.g. whether the last run stopped cleanly) ---- */
/* *value is owned, NULL when the key is not set. */
int rt_store_meta_get(rt_store *s, const char *key, char **value);
int rt_store_meta_set(rt_store *s, const char *key, const char *value);

/* Conversations in a mode now (e.g. "handoff": hand-offs no manager has
 * taken yet); -1 on a store error. */
int64_t rt_store_convs_in_mode(rt_store *s, const char *mode);

/* ---- conversations ---- */
typedef struct {
  int64_t id;
  char *channel, *chat_id, *user_id, *phone, *flow, *step, *state, *mode, *last_error;
  int64_t rev, created_at, updated_at, last_in_at;
  char *owner, *owner_name;  /* the manager who has the chat (mode manager), or NULL */
  /* The phone as the store has it (read with the row, or written by
   * rt_store_conv_save), or NULL when not known: a save writes the phone
   * only when it differs. */
  char *phone_saved;
} rt_conv_row;
void rt_conv_row_clear(rt_conv_row *r);
/* Loads the conversation of a chat, creating it when create is set.
 * Returns RT_ENOENT when it does not exist and create is not set. */
int rt_store_conv_get(rt_store *s, const char *channel, const char *chat_id,
                      bool create, int64_t now, rt_conv_row *out);
/* Creates the conversation row of a chat if there is none. */
int rt_store_conv_ensure(rt_store *s, const char *channel, const char *chat_id, int64_t now);
int rt_store_conv_by_id(rt_store *s, int64_t id, rt_conv_row *out);
/* Writes flow, step, state, mode, phone (a NULL keeps the stored one: a
 * tool may have linked the chat to a customer; the same as phone_saved is
 * not written again, one statement less), user_id, last_in_at, last_error
 * and bumps rev. */
int rt_store_conv_save(rt_store *s, rt_conv_row *r, int64_t now);

/* ---- outbox ---- */
int rt_store_outbox_add(rt_store *s, int64_t conv_id, const char *channel,
                        const char *chat_id, const char *idem_key, const char *kind,
                        const char *payload, int64_t now, int64_t *id);
/* priority: 0 = a reply to a customer (or a note to the managers), 1 = a
 * message nobody is waiting for (wake-ups, campaigns); lower goes first
 * across chats, never within one. rt_store_outbox_add queues priority 0. */
int rt_store_outbox_add_prio(rt_store *s, int64_t conv_id, const char *channel,
                             const char *chat_id, const char *idem_key, const char *kind,
                             const char *payload, int priority, int64_t now, int64_t *id);
typedef struct {
  int64_t id, conv_id, attempts;
  const char *channel, *chat_id, *kind, *payload, *idem_key;
  int priority;
  int64_t next_try_at;       /* rows handed over in memory; 0 (due) from the scans */
  bool open;                 /* written 'sent' above its channel's mark (below) */
} rt_outbox_row;
/* The rows this process inserts, handed to the deliveries after their
 * commit so that they need not be read back (deliver.c). max > 0 keeps up
 * to max committed rows until taken; 0 stops keeping them. */
void rt_store_outbox_track(rt_store *s, size_t max);
/* The rows committed since the last call, oldest first, in *n; each is one
 * allocation (free() it, strings included). *overflow: more were committed
 * than max since the last call, and those were not kept. */
rt_outbox_row **rt_store_outbox_take(rt_store *s, size_t *n, bool *overflow);
/* A copy of r in one allocation (free() it). */
rt_outbox_row *rt_outbox_row_dup(const rt_outbox_row *r);
/* Pending rows of a channel, due or not. */
int64_t rt_store_outbox_pending(rt_store *s, const char *channel);
/* Calls fn for up to limit pending rows of channel due at or before now,
 * oldest first. */
int rt_store_outbox_due(rt_store *s, const char *channel, int64_t now, int limit,
                        void (*fn)(void *ud, const rt_outbox_row *r), void *ud);
/* The deliveries' scan: for each chat of channel, its oldest pending row
 * if it is due at now (a chat whose first row waits hides the rest), by
 * priority then id, up to limit; fn returns false to stop. */
int rt_store_outbox_heads(rt_store *s, const char *channel, int64_t now, int limit,
                          bool (*fn)(void *ud, const rt_outbox_row *r), void *ud);
/* A channel's mark (025_outbox_mark.sql). While a channel has one, its
 * rows are written "open": 'sent' at once, with no sent_at and no key in
 * the pending indexes, and those at or above the mark are still to send
 * (rt_outbox_row.open). The deliveries start a mark when every pending row
 * of the channel is in their memory, move it past the rows they settled,
 * in the commit that saves the answers, and stop it when they go back to
 * reading the outbox.
 * mark_start: outside a transaction (RT_EBUSY inside one), in one of its
 * own; *next is the mark, above every row there is. RT_EINVAL for a
 * channel that keeps a history (rt_store_keep_history), whose reader
 * takes 'sent' for sent. */
int rt_store_outbox_mark_start(rt_store *s, const char *channel, int64_t *next);
/* Moves the mark to next (never back), in the caller's transaction. */
int rt_store_outbox_mark_set(rt_store *s, const char *channel, int64_t next);
/* The channel's open rows set 'pending', its mark removed; no row of it
 * is written open from now on. In a transaction of its own, or the
 * caller's. */
int rt_store_outbox_mark_stop(rt_store *s, const char *channel);
/* Every mark stopped: what the deliveries do at start, since a process
 * killed with open rows in flight left them so. */
int rt_store_outbox_recover(rt_store *s);
int rt_store_outbox_sent(rt_store *s, int64_t id, int64_t now);
/* Rows first..last, every one of them sent (the caller knows each id in
 * between is one of its sent rows): one statement that walks neighbouring
 * rows instead of a look-up per row. */
int rt_store_outbox_sent_range(rt_store *s, int64_t first, int64_t last, int64_t now);
int rt_store_outbox_retry(rt_store *s, int64_t id, int64_t next_try, const char *err);
int rt_store_outbox_failed(rt_store *s, int64_t id, const char *err, int64_t now);
/* Failed for good, with the reason code (blocked, chat_not_found, ...). */
int rt_store_outbox_failed_why(rt_store *s, int64_t id, const char *reason, const char *err,
                               int64_t now);

/* ---- timers ---- */
int rt_store_timer_set(rt_store *s, int64_t conv_id, const char *name, int64_t due_at,
                       const char *step, const char *data, int64_t now);
int rt_store_timer_cancel(rt_store *s, int64_t conv_id, const char *name);
/* Every timer of a conversation, the flows' and the system's (a chat
 * started over). */
int rt_store_timers_cancel_all(rt_store *s, int64_t conv_id);
/* Earliest due time, or -1 when no timer is pending. */
int64_t rt_store_timer_next(rt_store *s);
typedef struct {
  int64_t id, conv_id, due_at;
  const char *name, *step, *data;
  rt_conv_row *conv;         /* its conversation as stored, NULL when that is
                              * gone; fn may take it (leaving it cleared) */
} rt_timer_row;
/* Calls fn for the first limit timers due at now, in (due_at, id) order,
 * with their conversation read in the same query. fn may change the
 * timers table (rt_store_timer_delete of the row it got, a step's
 * wake-ups): the query goes on from where it was. */
int rt_store_timers_due(rt_store *s, int64_t now, int limit,
                        void (*fn)(void *ud, const rt_timer_row *r), void *ud);
int rt_store_timer_delete(rt_store *s, int64_t id);
/* Wake-ups of a conversation set by flows (names not starting with _), or
 * -1 on a store error. */
int64_t rt_store_timer_count(rt_store *s, int64_t conv_id);
/* 1 when the conversation has a timer of that name, 0 when not, -1 on error. */
int rt_store_timer_exists(rt_store *s, int64_t conv_id, const char *name);

/* ---- events and leads ---- */
int rt_store_event_add(rt_store *s, int64_t at, int64_t conv_id, const char *flow,
                       const char *campaign, const char *kind, const char *data);
typedef struct {
  int64_t conv_id, at;
  const char *flow, *channel, *campaign, *car, *car_kind, *parts, *name, *phone, *data;
} rt_lead_in;
int rt_store_lead_add(rt_store *s, const rt_lead_in *l, int64_t *id);

/* Deletes inbox rows processed and outbox rows sent or failed before
 * `before` (ms), at most limit rows of each per call; returns how many. */
int64_t rt_store_prune(rt_store *s, int64_t before, int limit);

/* ---- figures for /metrics ---- */
typedef struct {
  int64_t conversations, outbox_pending, timers_pending, inbox_pending, leads;
} rt_store_counts;
int rt_store_counts_get(rt_store *s, rt_store_counts *c);

/* ---- customers and their addresses (read by flows, written by import) ----
 *
 * A customer is keyed by E.164 phone. Their addresses on channels are rows
 * (channel, address) -> phone in customer_addresses (007): a Telegram chat
 * id, WhatsApp's digits, any later channel's chat id. The console's chat id
 * is the phone itself and needs no row. An address is reachable or blocked
 * (the channel said for good that the chat cannot be written to). */

/* The customer by phone, else by the chat's address on its channel (or the
 * console's phone chat): a new JSON object {phone, name, bonus_balance,
 * last_purchase (s), timezone, car, opted_out, blocked, addresses:
 * {channel: address, ...}} (reachable addresses, the newest per channel),
 * or NULL. When the phone and the address are different customers', the
 * lowest phone wins. Every path is an index lookup. */
json_t *rt_store_customer_json(rt_store *s, const char *phone, const char *channel,
                               const char *chat_id);
/* The same record handed to k field by field (record.h: the fields above,
 * then the map "addresses" unless k->map_begin is NULL: a reader that
 * wants them later asks rt_store_customer_addresses), without a tree
 * between; k may be NULL to ask only whether there is one. 1 found, 0 not,
 * or a store error code. */
int rt_store_customer_read(rt_store *s, const char *phone, const char *channel,
                           const char *chat_id, const rt_record_sink *k);
/* The customer's map "addresses" alone, handed to k (map_begin, then an
 * entry per channel). RT_OK or a store error code. */
int rt_store_customer_addresses(rt_store *s, const char *phone, const rt_record_sink *k);
/* The same, by phone only. */
json_t *rt_store_customer_by_phone(rt_store *s, const char *phone);
/* The phone of the customer who has (channel, address), owned in *phone;
 * RT_ENOENT when nobody has it. */
int rt_store_customer_by_address(rt_store *s, const char *channel, const char *address,
                                 char **phone);
/* Gives (channel, address) to the customer phone (taking it from whoever
 * had it) as their newest address on that channel; a known address keeps
 * its status. RT_EINVAL on empty values. */
int rt_store_address_set(rt_store *s, const char *phone, const char *channel,
                         const char *address, int64_t now);
/* Sets an address's status ("blocked", or "reachable" again) with the
 * reason and time. An address not known yet is added for the customer of
 * the chat's conversation, if it has a phone; otherwise nothing is done. */
int rt_store_address_mark(rt_store *s, const char *channel, const char *address,
                          const char *status, const char *reason, int64_t now);
/* Called when a delivery failed for good: reasons about the chat itself
 * (blocked, chat_not_found) mark the address of that outbox row blocked;
 * others change nothing. */
int rt_store_address_failed(rt_store *s, int64_t outbox_id, const char *reason, int64_t now);
int rt_store_customer_optout(rt_store *s, const char *phone, const char *channel,
                             const char *chat_id, int64_t now);
/* Records a campaign outcome on the newest contact row of that phone. */
int rt_store_campaign_outcome(rt_store *s, const char *campaign, const char *phone,
                              const char *outcome);

/* ---- plugin values (rt_plugin_env.kv_get/kv_set, 009_plugin_values.sql) ---- */
/* *value is owned, NULL when the plugin has no such key. */
int rt_store_plugin_get(rt_store *s, const char *plugin, const char *key, char **value);
/* Sets (value NULL: deletes) a plugin's value. Outside a transaction it is
 * its own, durable when RT_OK returns; inside one it commits with it. */
int rt_store_plugin_set(rt_store *s, const char *plugin, const char *key, const char *value,
                        int64_t now);
#endif
