/* metrics.c -- Prometheus text and /healthz (see metrics.h). */
#include "metrics.h"

char *rt_metrics_text(const rt_metrics_in *m) {
  return rt_xasprintf(
      "# HELP shopbot_events_processed_total Inbound events applied.\n"
      "# TYPE shopbot_events_processed_total counter\n"
      "shopbot_events_processed_total %llu\n"
      "# HELP shopbot_steps_failed_total Steps that raised, looped or ran out of memory.\n"
      "# TYPE shopbot_steps_failed_total counter\n"
      "shopbot_steps_failed_total %llu\n"
      "# HELP shopbot_reloads_total Flow reloads by result.\n"
      "# TYPE shopbot_reloads_total counter\n"
      "shopbot_reloads_total{result=\"ok\"} %llu\n"
      "shopbot_reloads_total{result=\"failed\"} %llu\n"
      "# HELP shopbot_messages_sent_total Outbox messages delivered.\n"
      "# TYPE shopbot_messages_sent_total counter\n"
      "shopbot_messages_sent_total %llu\n"
      "# HELP shopbot_conversations Stored conversations.\n"
      "# TYPE shopbot_conversations gauge\n"
      "shopbot_conversations %lld\n"
      "# HELP shopbot_outbox_depth Messages waiting to be sent.\n"
      "# TYPE shopbot_outbox_depth gauge\n"
      "shopbot_outbox_depth %lld\n"
      "# HELP shopbot_timers_pending Durable wake-ups scheduled.\n"
      "# TYPE shopbot_timers_pending gauge\n"
      "shopbot_timers_pending %lld\n"
      "# HELP shopbot_inbox_pending Received events not yet applied.\n"
      "# TYPE shopbot_inbox_pending gauge\n"
      "shopbot_inbox_pending %lld\n"
      "# HELP shopbot_lua_memory_bytes Memory used by the current flows' Lua state.\n"
      "# TYPE shopbot_lua_memory_bytes gauge\n"
      "shopbot_lua_memory_bytes %zu\n"
      "# HELP shopbot_lua_long_steps_total Steps that ran 5 ms of CPU or more.\n"
      "# TYPE shopbot_lua_long_steps_total counter\n"
      "shopbot_lua_long_steps_total %llu\n",
      (unsigned long long)m->events, (unsigned long long)m->steps_failed,
      (unsigned long long)m->reloads_ok, (unsigned long long)m->reloads_failed,
      (unsigned long long)m->sent, (long long)m->counts.conversations,
      (long long)m->counts.outbox_pending,
      (long long)m->counts.timers_pending, (long long)m->counts.inbox_pending, m->lua_mem,
      (unsigned long long)m->long_steps);
}

json_t *rt_metrics_health(const rt_health_in *h) {
  return json_pack("{s:b, s:s, s:i, s:s?, s:s?, s:I, s:I}",
                   "ok", h->ok,
                   "flows_version", h->flows_version,
                   "flows", h->flows,
                   "last_reload_error", h->reload_error,
                   "store_error", h->store_error,
                   "events_processed", (json_int_t)h->events,
                   "running", (json_int_t)h->running);
}
