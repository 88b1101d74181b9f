/* llm.h -- the "llm" provider: an OpenAI-compatible chat-completions
 * client on the process's rt_http (plugins/llm/README.md). */
#ifndef RT_LLM_H
#define RT_LLM_H
#include "integration.h"

extern const rt_plugin rt_plugin_llm;

/* Creates the provider from its validated "llm" section (defaults filled). */
int rt_llm_new(const json_t *conf, rt_provider **out, char **err);

/* The price-claim guard: NULL when text states no price, stock or delivery
 * date that facts (an object: "price", "stock", "delivery", may be NULL)
 * does not carry, else a static name of the claim ("price", "stock",
 * "delivery"). Exported for tests. */
const char *rt_llm_claim(rt_provider *p, const char *text, const json_t *facts);

/* What the provider counted since start (figures and tests). */
typedef struct {
  uint64_t calls, ok, failed, attempts, retries, repairs, fast_failed;
  int64_t tokens_in, tokens_out, tokens_cached, cost_micro;
  size_t in_flight, max_in_flight_seen;
  bool breaker_open;
  /* the client's own time per call: wall time minus the server's answer
   * time and backoff waits (calls without photos), last 8192 calls */
  double overhead_ms_p50, overhead_ms_p99, overhead_ms_max;
} rt_llm_stats;
void rt_llm_get_stats(rt_provider *p, rt_llm_stats *out);

/* Appends the /metrics block (the one set_metrics exports) to out. */
struct rt_buf;
void rt_llm_metrics(rt_provider *p, struct rt_buf *out);
#endif
