/* metrics.h -- /metrics (Prometheus text) and /healthz (JSON) from the
 * facts the engine gathers. No state: formatting only. */
#ifndef RT_METRICS_H
#define RT_METRICS_H
#include "store.h"
#include <jansson.h>

typedef struct {
  uint64_t events, steps_failed, reloads_ok, reloads_failed, sent;
  rt_store_counts counts;
  size_t lua_mem;
  uint64_t long_steps;        /* rt_lvm_long_steps */
} rt_metrics_in;

typedef struct {
  bool ok;
  const char *flows_version, *reload_error, *store_error;
  int flows;
  uint64_t events, running;
} rt_health_in;

/* Owned text. */
char *rt_metrics_text(const rt_metrics_in *m);
/* New reference. */
json_t *rt_metrics_health(const rt_health_in *h);
#endif
