/* store_tools.h -- the store's queries for the offline tools (tools/:
 * import, campaign, stats, the transcript runner).
 *
 * Part of the store layer: the SQL of the tools lives here, beside
 * store.c, so no raw SQLite handle leaves the store and a schema change is
 * made in one place. The serving path never includes this header
 * (tests/integration/style.sh). Rows of a query reach the tool through a
 * callback with a borrowed row, read with rt_store_row_*. */
#ifndef RT_STORE_TOOLS_H
#define RT_STORE_TOOLS_H
#include "rt.h"
#include "store.h"

/* ---- rows ---- */
typedef struct rt_store_row rt_store_row;   /* borrowed, valid during the callback */
int64_t rt_store_row_int(const rt_store_row *r, int col);
double rt_store_row_double(const rt_store_row *r, int col);
/* NULL for SQL NULL. */
const char *rt_store_row_text(const rt_store_row *r, int col);
bool rt_store_row_null(const rt_store_row *r, int col);
/* Called per row; return false to stop. */
typedef bool (*rt_store_row_fn)(void *ud, const rt_store_row *r);

/* A read transaction (BEGIN DEFERRED): the figures of several queries
 * describe one moment; a writer is not kept waiting (WAL). */
int rt_store_read_begin(rt_store *s);
void rt_store_read_end(rt_store *s);

/* ---- the transcript runner ---- */
/* Runs sql, which must only read (anything else is refused with RT_EINVAL),
 * and gives each row's columns as text (NULL as NULL) to fn, up to limit
 * rows (0: all). arg, when given, is bound to ?1 as text. Errors return
 * RT_E* with an owned *err. */
int rt_store_query_text(rt_store *s, const char *sql, const char *arg, int limit,
                        bool (*fn)(void *ud, int ncols, const char *const *vals), void *ud,
                        char **err);
/* The number of leads, or -1 on a store error. */
int64_t rt_store_leads_count(rt_store *s);
/* The newest lead as owned JSON text {car, car_kind, parts, name, phone,
 * flow, channel, campaign, data}, or NULL when there is none. */
char *rt_store_lead_last_json(rt_store *s);
/* Events of kind, newest first, each as JSON text {kind, campaign, flow,
 * data}; fn returns false to stop. */
int rt_store_events_json(rt_store *s, const char *kind, bool (*fn)(void *ud, const char *json),
                         void *ud);
/* The due time of the conversation's timer name: 1 and *due, 0 when there
 * is none, -1 on a store error. */
int rt_store_timer_due(rt_store *s, int64_t conv_id, const char *name, int64_t *due);

/* ---- the studio (tools/studio.c): one conversation's state ---- */
/* Pending wake-ups of a conversation, earliest first: name, due_at, step. */
int rt_store_conv_timers(rt_store *s, int64_t conv_id, rt_store_row_fn fn, void *ud);
/* A conversation's newest statistics events, newest first, up to limit:
 * at, kind, flow, campaign, data. */
int rt_store_conv_events(rt_store *s, int64_t conv_id, int limit, rt_store_row_fn fn, void *ud);
/* The number of leads of a conversation, or -1 on a store error. */
int64_t rt_store_conv_leads(rt_store *s, int64_t conv_id);
/* Customers in phone order, up to limit: phone, name, car, last_purchase
 * (NULL when unknown), bonus_balance. */
int rt_store_customers_list(rt_store *s, int limit, rt_store_row_fn fn, void *ud);
/* 1 when the customer phone (E.164) is in the store, 0 when not, -1 on a
 * store error. */
int rt_store_customer_known(rt_store *s, const char *phone);

/* ---- import ---- */
typedef struct rt_store_import rt_store_import;
typedef struct {
  const char *phone, *name, *timezone, *car;      /* NULL: keep what is there */
  int64_t last_purchase;                          /* ms; only moves forward */
  double bonus;
  bool has_last_purchase, has_bonus;
} rt_import_customer;
typedef struct {
  const char *order_id, *phone, *product, *category, *recipient_name, *recipient_phone;
  int64_t date;
  bool has_date;
  int gift;                                       /* 0, 1; -1: keep (new rows: 0) */
} rt_import_order;
/* Prepares the import's statements. The caller opens and commits the
 * write transactions (rt_store_begin / rt_store_commit) in batches, then
 * calls rt_store_import_finish. The secondary indexes of tables that are
 * empty now (a first import) are dropped here and built by finish: one
 * sort instead of a random index page per row. Meanwhile lookups in those
 * tables by other columns read the table. */
int rt_store_import_new(rt_store *s, rt_store_import **out, char **err);
/* Builds the indexes dropped for the load (also after a failed import). */
int rt_store_import_finish(rt_store_import *w);
void rt_store_import_free(rt_store_import *w);
/* Rebuilds indexes an import dropped and never built (it was killed);
 * rt_store_open calls it. */
int rt_store_import_restore_indexes(rt_store *s);
/* Upserts a customer; *inserted tells a new row from an updated one. */
int rt_store_import_customer(rt_store_import *w, const rt_import_customer *c, int64_t now,
                             bool *inserted);
int rt_store_import_order(rt_store_import *w, const rt_import_order *o, bool *inserted);
/* Gives the customer the address, as rt_store_address_set, and makes it
 * the customer's newest on that channel (the one campaigns use). */
int rt_store_import_address(rt_store_import *w, const char *phone, const char *channel,
                            const char *address, int64_t now);

/* ---- campaigns ---- */
typedef struct rt_store_campaign rt_store_campaign;
int rt_store_campaign_new(rt_store *s, rt_store_campaign **out, char **err);
void rt_store_campaign_free(rt_store_campaign *c);
/* Contact rows written since *seen (the newest rowid already counted, 0 at
 * first) and due at or after from_ms: fn(ud, at) for each; then *seen
 * moves to the newest row. Contact rows are never deleted. */
int rt_store_campaign_seed(rt_store_campaign *c, int64_t from_ms, int64_t *seen,
                           void (*fn)(void *ud, int64_t at), void *ud);
/* *seen = the newest contact row. */
int rt_store_campaign_mark(rt_store_campaign *c, int64_t *seen);

/* What a candidate's row says about them, before any address is picked. */
enum { RT_CAND_FREE, RT_CAND_OPTED_OUT, RT_CAND_BLOCKED, RT_CAND_COOLDOWN, RT_CAND_OPEN };
/* The columns of a retention candidate's row. */
enum { RT_RET_PHONE, RT_RET_TZ, RT_RET_STATE };
/* Retention candidates: customers whose last purchase is at or before
 * idle_before, after the phone after_phone, in phone order, up to limit.
 * RT_RET_STATE is RT_CAND_*: cooldown is a retention contact after
 * contacted_after; open is a linked conversation with a manager, active
 * after recent_after or with a pending timer; blocked is the customer's
 * flag or a conversation with the phone in mode blocked (the conversations
 * of the customers' addresses come with rt_store_campaign_addresses). */
int rt_store_campaign_retention(rt_store_campaign *c, int64_t idle_before,
                                int64_t contacted_after, int64_t recent_after,
                                const char *after_phone, int limit, rt_store_row_fn fn,
                                void *ud);
/* The columns of an address row of rt_store_campaign_addresses: SEV is the
 * severity of the address's conversation (2 blocked, 1 open, 0 none), SEEN
 * 1 when the channel has seen the chat (rt_store_addr.seen). */
enum { RT_RA_PHONE, RT_RA_CHANNEL, RT_RA_ADDRESS, RT_RA_STATUS, RT_RA_REASON, RT_RA_UPDATED,
       RT_RA_SEV, RT_RA_SEEN };
/* The addresses of the customers with after_phone < phone <= last_phone
 * (a chunk of retention candidates), in phone order. */
int rt_store_campaign_addresses(rt_store_campaign *c, const char *after_phone,
                                const char *last_phone, int64_t recent_after,
                                rt_store_row_fn fn, void *ud);
/* The columns of a gift order's row: the order, then the buyer (B) and the
 * recipient (R) as customers (NULL, 0 when unknown), then whether a gifts
 * contact for this order exists, and the order date. */
enum { RT_GIFT_ORDER, RT_GIFT_BUYER, RT_GIFT_PRODUCT, RT_GIFT_CATEGORY, RT_GIFT_RNAME,
       RT_GIFT_RPHONE, RT_GIFT_B_ADDRS, RT_GIFT_B_TZ, RT_GIFT_B_OPT, RT_GIFT_B_BLK,
       RT_GIFT_R_ADDRS, RT_GIFT_R_TZ, RT_GIFT_R_OPT, RT_GIFT_R_BLK, RT_GIFT_DONE, RT_GIFT_DATE };
/* Gift orders not followed up, dated in [oldest, newest], after (date,
 * order id) = (after_date, after_order) (after_order NULL: from the start),
 * in that order, up to limit. */
int rt_store_campaign_gifts(rt_store_campaign *c, int64_t newest, int64_t oldest,
                            int64_t after_date, const char *after_order, int limit,
                            rt_store_row_fn fn, void *ud);
/* The linked conversations of a phone: 2 one is blocked, 1 one is open
 * (see rt_store_campaign_retention), 0 neither. */
int rt_store_campaign_severity(rt_store_campaign *c, const char *phone, int64_t recent_after,
                               int *sev);
/* One scheduled contact. */
typedef struct {
  const char *campaign, *channel, *address, *phone, *ref;   /* ref: "" or the order id */
  int64_t due, now;
  const char *timer, *step, *data;                          /* the wake-up */
} rt_campaign_contact;
/* Writes it: the conversation (created if new; a known phone is kept), its
 * timer and the campaign_contacts row with the channel and address. */
int rt_store_campaign_schedule(rt_store_campaign *c, const rt_campaign_contact *k);
/* Marks a gift order followed up at due. */
int rt_store_campaign_order_done(rt_store_campaign *c, const char *order_id, int64_t due);

/* A customer's addresses as the campaign queries pack them. */
typedef struct {
  const char *channel, *address, *status, *reason;
  int64_t updated_at;      /* the newest of a channel is the one to use */
  bool seen;               /* the customer wrote from it, or the channel said
                            * something of it (blocked, unblocked) */
} rt_store_addr;
/* Splits packed (modified in place) into up to max addresses; returns how
 * many. packed may be NULL. */
int rt_store_addrs_split(char *packed, rt_store_addr *out, int max);

/* ---- stats ---- */
/* Each runs one query over rows at or after since_ms and calls fn per row.
 * Columns:
 *   outcomes:      campaign, kind, outcome (NULL unless kind = outcome), count
 *   campaign_leads: campaign, count
 *   flow_convs:    flow, conversations
 *   lead_times:    flow ('' when unknown), ms from the conversation's first
 *                  message after its previous lead to the lead (NULL when
 *                  unknown), ordered by flow
 *   llm:           calls, dialogs, tokens, cost, leads (one row)
 *   event_counts:  kind (handoff, step_error), count */
int rt_store_stats_outcomes(rt_store *s, int64_t since_ms, rt_store_row_fn fn, void *ud);
int rt_store_stats_campaign_leads(rt_store *s, int64_t since_ms, rt_store_row_fn fn, void *ud);
int rt_store_stats_flow_convs(rt_store *s, int64_t since_ms, rt_store_row_fn fn, void *ud);
int rt_store_stats_lead_times(rt_store *s, int64_t since_ms, rt_store_row_fn fn, void *ud);
int rt_store_stats_llm(rt_store *s, int64_t since_ms, rt_store_row_fn fn, void *ud);
/* (by "ocr"|"rules", count, tokens) of 'llm_saved' events: the calls OCR
 * and the rules made unneeded, with their estimated tokens. */
int rt_store_stats_llm_saved(rt_store *s, int64_t since_ms, rt_store_row_fn fn, void *ud);
/* (campaign, outcome, dialogs, tokens, cost) per campaign outcome: each
 * conversation under the last outcome it got in the campaign, with what its
 * turns in that campaign cost ('usage' events). */
int rt_store_stats_llm_outcomes(rt_store *s, int64_t since_ms, rt_store_row_fn fn, void *ud);
int rt_store_stats_event_counts(rt_store *s, int64_t since_ms, rt_store_row_fn fn, void *ud);
/* Every lead's time (at) since since_ms, oldest first: for leads per day,
 * counted in the shop's zone by the caller. */
int rt_store_stats_lead_times_at(rt_store *s, int64_t since_ms, rt_store_row_fn fn, void *ud);
#endif
