/* effects.h -- a finished step's effects as rows of the apply transaction.
 *
 * For each turn the pump applies, inside its open transaction: the limits
 * on what a step may ask (checked before anything is written: a step over
 * one fails and keeps nothing), then the step's result (state, outbox
 * rows, timers, leads, events, ops), or its failure (the chat goes to a
 * manager, the managers hear why), or the hand-off policy for an event the
 * bot did not run, then the conversation row and the inbox mark. Nothing
 * here commits. Borrowed: the store and the hand-off policy. */
#ifndef RT_EFFECTS_H
#define RT_EFFECTS_H
#include "handoff.h"
#include "store.h"
#include "turn.h"

typedef struct rt_effects rt_effects;

/* Today's figures for the managers' /stats (a new JSON object, NULL on a
 * store error): {"leads": n, "waiting": n, "campaigns": [{"name", "contacted",
 * "leads", "outcomes": {...}}]}. The app computes them as `shopbot stats`
 * does (tools/stats.h), since the shop's local midnight. */
typedef json_t *(*rt_figures_fn)(void *ud, rt_store *s, int64_t now);

typedef struct {
  rt_store *store;
  rt_figures_fn figures;           /* NULL: /stats answers with no figures */
  void *figures_ud;
  rt_handoff *handoff;
  const char *start_flow;          /* copied */
  const char *mgr_channel, *mgr_chat;   /* where notes to the managers go; copied */
  int64_t wakeups_per_step, wakeups_pending;   /* limits.* */
  int64_t message_max, step_output_max;       /* bytes */
} rt_effects_opts;

typedef struct {
  uint64_t steps_failed;
} rt_effects_stats;

rt_effects *rt_effects_new(const rt_effects_opts *o);
void rt_effects_free(rt_effects *fx);
/* Writes what turn t did (see above) in the open transaction. */
int rt_effects_apply(rt_effects *fx, rt_turn *t, int64_t now);
/* Since the last call: did an applied turn queue messages / touch timers? */
bool rt_effects_take_outbox(rt_effects *fx);
bool rt_effects_take_timers(rt_effects *fx);
const rt_effects_stats *rt_effects_get_stats(const rt_effects *fx);
#endif
