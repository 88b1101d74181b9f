/* stats.h -- campaign funnels, lead times and LLM spend, from the store.
 *
 * Everything is computed from the events and leads tables (plus inbox and
 * conversations for the time to lead); nothing is kept in memory between
 * runs, so `shopbot stats` can read a live store next to a running bot. */
#ifndef RT_STATS_H
#define RT_STATS_H
#include "rt.h"
#include "store.h"
#include <jansson.h>

/* Collects figures for events and leads at or after since_ms (0: all) into
 * a new object *out:
 *   {"since": ms,
 *    "campaigns": {"retention": {"contacted": N,
 *        "outcomes": {"silent": {"count": n, "share": 0.25}, "need": ..., "later": ...,
 *                     "declined": ..., "optout": ..., "ok": ..., "problem": ...},
 *        "later_kept": n, "offers": n, "offers_accepted": n, "offers_expired": n,
 *        "leads": n}, "gifts": {...}},
 *    "flows": {"lead": {"leads": n, "median_time_to_lead_s": x or null,
 *                       "conversations": n}},
 *    "events": {"handoff": n, "step_error": n},
 *    "llm": {"calls": n, "dialogs": n, "tokens": n, "cost": x,
 *            "per_dialog": {"tokens": x, "cost": x},
 *            "per_lead": {"tokens": x, "cost": x},
 *            "saved": {"ocr": {"calls": n, "tokens": n}, "rules": {...}},
 *            "per_outcome": {"retention": {"later": {"dialogs": n, "tokens": n, "cost": x,
 *                            "tokens_per_dialog": x, "cost_per_dialog": x}}}}}
 * share = count / contacted (0 when nothing was contacted). retention and
 * gifts are always present. Time to lead: from the first inbox message of
 * the conversation after its previous lead (or, with none, from the later of
 * conversations.created_at and that previous lead) to the lead. per_dialog
 * divides by the conversations that used the LLM, per_lead by all leads.
 * saved: the calls OCR and the rules made unneeded ('llm_saved' events the
 * flows record with the tokens such a call costs), per_outcome: what the
 * dialogs that ended with each campaign outcome cost.
 * Returns RT_OK or RT_EIO with an owned *err. */
int rt_stats_collect(rt_store *s, int64_t since_ms, json_t **out, char **err);

/* Adds "leads_per_day": [{"day": "2026-12-02", "leads": n}, ...] to
 * stats: the leads at or after since_ms counted by local day in tz (the
 * shop's zone), oldest day first, days without leads left out. RT_OK or
 * RT_EIO with an owned *err. */
int rt_stats_leads_per_day(rt_store *s, int64_t since_ms, const char *tz, json_t *stats,
                           char **err);
/* The same figures as an aligned text table (owned string), in the words
 * of texts: shop.json's stats.texts with its defaults filled in. */
char *rt_stats_table(json_t *stats, const json_t *texts);

#endif
