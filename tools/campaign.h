/* campaign.h -- outbound campaigns: who to write to, and when.
 *
 * A campaign run does not send anything. It picks customers (retention) or
 * gift orders (gifts), finds or creates their conversation and schedules a
 * durable timer whose step ("retention.checkin", "gifts.checkin") the flow
 * runs when it fires. Due times fall inside working hours in each customer's
 * own time zone and are spread so that at most rate_per_minute check-ins are
 * due in any minute, across all customers and campaigns. Every contact is
 * recorded in campaign_contacts, so a second run contacts nobody twice.
 *
 * Selection and scheduling happen in chunks of a few thousand candidates,
 * each one BEGIN IMMEDIATE transaction that checks its candidates afresh
 * (also against contacts that another run committed since) and writes
 * them: two runs at once interleave chunk by chunk and contact nobody
 * twice, a kill -9 leaves whole chunks only (each contact with its
 * conversation, timer and campaign_contacts row; a later run goes on from
 * there), and a running bot never waits for the write lock longer than one
 * chunk (tens of ms) -- one transaction for 300,000 contacts held it for
 * 6 s. A chunk's begin waits up to the store's busy timeout, then fails
 * with RT_EBUSY. The rate per minute also holds against a run going on at
 * the same time: each chunk first counts the contact rows others added.
 * Retention takes customers in phone order (a sequential scan; see
 * 002_campaigns.sql), gifts in order date order; earlier ones get earlier
 * slots. Schedules may run weeks ahead for a large, slow campaign: the
 * check-in step should look at the customer afresh when it fires.
 *
 * "Open conversation" (retention and gifts skip these; they are picked up by
 * a later run): a conversation linked to the customer -- conversations.phone
 * is the customer's phone, or its chat is one of the customer's addresses --
 * that is with a human (mode human, handoff or manager), or had a customer
 * message or a flow step other than "done" in the last 3 days, or has any
 * pending timer. A linked conversation in mode "blocked" counts as blocked.
 *
 * Where a contact is written: the first reachable address of the customer
 * on the campaign's channels (o->channels, in order), else the phone itself
 * on phone_channel. Blocked addresses (a channel said the chat is gone for
 * good) are skipped; a customer with none left is "unreachable", counted
 * by reason. The channel and address are recorded on the contact row. */
#ifndef RT_CAMPAIGN_H
#define RT_CAMPAIGN_H
#include "rt.h"
#include "store.h"

typedef struct {
  const char *name;          /* "retention" or "gifts" */
  int64_t now_ms;
  bool dry_run;              /* compute and report, write nothing */
  const char *tz;            /* zone of customers without one; NULL: Europe/Moscow */
  unsigned days_mask;        /* working days: bit d for d = 1 (Monday) .. 7 (Sunday) */
  int from_min, to_min;      /* working window, minutes after local midnight (to <= 1440) */
  int idle_days;             /* retention: no purchase for this long */
  int cooldown_days;         /* retention: not contacted by it for this long */
  int rate_per_minute;       /* at most this many check-ins due in any minute */
  int after_days;            /* gifts: days after the order date */
  int max_age_days;          /* gifts: older orders are left alone; 0 means 60 */
  const char *phone_channel; /* channel for a contact known only by phone:
                                "console" (default) or "whatsapp" */
  const char *const *channels; /* channels an address may be used on, most
                                  preferred first, NULL-terminated; NULL:
                                  telegram, whatsapp */
  const char *channel_list[9]; /* room for channels (rt_campaign_opts_config) */
} rt_campaign_opts;

/* Defaults of shop.schema.json: Mon-Sat 09:00-19:00 Moscow, 90 idle days,
 * 30 cooldown days, 20 per minute, gifts after 3 days. */
void rt_campaign_opts_default(rt_campaign_opts *o, const char *name, int64_t now_ms);

#define RT_CAMPAIGN_MAX_REASONS 8
#define RT_CAMPAIGN_MAX_UNREACHABLE 20

typedef struct {
  char campaign[16];
  bool dry_run;
  int64_t candidates;        /* idle customers, or gift orders due */
  int64_t selected;          /* candidates that passed every rule */
  int64_t scheduled;         /* timers written (0 in a dry run) */
  struct {
    int64_t opted_out, blocked, open_conversation, cooldown, no_channel;
    int64_t unreachable;     /* no reachable address on the campaign's channels */
  } skipped;
  /* unreachable by reason (blocked, chat_not_found, ...), and the first
   * customers so counted */
  struct { char reason[32]; int64_t count; } reasons[RT_CAMPAIGN_MAX_REASONS];
  int nreasons;
  struct { char phone[24], reason[32]; } unreachable[RT_CAMPAIGN_MAX_UNREACHABLE];
  int nunreachable;
  int64_t first_at, last_at; /* earliest and latest due time, ms; 0 if none */
  char tz[64];               /* zone used to print times */
} rt_campaign_report;

/* Runs the campaign o->name. Returns RT_OK, RT_EINVAL (unknown campaign,
 * no working days, bad zone) or the store's error with an owned *err; then
 * rep->scheduled counts the contacts of the chunks committed before it. */
int rt_campaign_run(rt_store *s, const rt_campaign_opts *o, rt_campaign_report *rep,
                    char **err);

/* One check-in of campaign name ("retention" or "gifts") for the imported
 * customer phone (E.164), written to channel:chat and due at now, whatever
 * the selection rules say: the studio's test customers, and a transcript's
 * `campaign(CHAT): NAME`. The contact is recorded as a real run's (its
 * conversation linked to the phone, its timer, its campaign_contacts row),
 * so the flow and the figures see a check-in. A gifts check-in names the
 * order "test-<phone>". Returns RT_OK; RT_ENOENT for a phone not in the
 * store, RT_EINVAL for an unknown campaign, or the store's error, each with
 * an owned *err. The caller fires the timer (rt_engine_fire_timers). */
int rt_campaign_checkin(rt_store *s, const char *name, const char *phone, const char *channel,
                        const char *chat, int64_t now, char **err);

/* Owned JSON text: {"campaign": "retention", "candidates": N, "selected": N,
 * "scheduled": N, "skipped": {"opted_out": N, ..., "unreachable": N},
 * "unreachable": {"reasons": {"blocked": N, ...}, "customers": [{"phone":
 * P, "reason": R}, ... the first 20]}, "first_at": ISO or null, "last_at":
 * ISO or null, "dry_run": false}. Times are ISO 8601 with the
 * offset of rep->tz. */
char *rt_campaign_report_json(const rt_campaign_report *rep);

/* Writes ms as ISO 8601 local time in tz with its offset
 * ("2025-03-10T09:00:00+03:00"). */
void rt_campaign_iso(int64_t ms, const char *tz, char *out, size_t n);

#endif
