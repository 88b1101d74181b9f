/* integration.h -- providers: services a step calls and waits for (the
 * LLM, a CRM look-up), the Prosody "provider" of the plugin contract.
 *
 * A flow calls a provider through its Lua module (llm.chat{...},
 * crm.find{...}: the module is the provider's name, any field of it is an
 * op; lapi_provider.c); the call starts a request here and yields the step
 * (OpenResty's cosocket shape); other conversations go on. The answer
 * resumes the step with the value as Lua data, or (nil, error, detail).
 * When the step dies first (its deadline, the process stopping, a reload
 * that drops it), the host calls cancel exactly once and the provider must
 * never call done for that request afterwards. The flows are lent the
 * providers once they are created, before their start has finished (the
 * engine loads the flows first): a call that comes before the provider is
 * ready is the provider's to answer, with "unavailable". What a call cost
 * (usage) is added up per step and recorded per conversation as a "usage"
 * event ({calls, tokens_in, tokens_out, cost_micro}).
 *
 * Durable writes to a service (a deal into the CRM) are not calls: they go
 * through the delivery queue like messages (deliver.h), and a provider
 * that does them also registers a channel-like target for them. */
#ifndef RT_INTEGRATION_H
#define RT_INTEGRATION_H
#include "plugin.h"

typedef struct rt_provider rt_provider;
typedef struct rt_call rt_call;            /* the provider's in-flight request */

/* What a call cost, recorded per conversation (stats: tokens and money per
 * dialog). All 0 when the provider does not meter. */
typedef struct {
  int64_t tokens_in, tokens_out;
  int64_t cost_micro;        /* in millionths of the shop's currency unit */
  const char *model;         /* borrowed for the done call, may be NULL */
} rt_call_usage;

/* How a call ended. status RT_OK: value is the answer (borrowed for the
 * done call; the host copies it into Lua). Otherwise error is a short code
 * ("timeout", "unavailable", "refused", "limit", "bad_request") and detail
 * the service's words; the flow gets (nil, error, detail). */
typedef struct {
  int status;
  const json_t *value;
  const char *error, *detail;
  rt_call_usage usage;
} rt_call_result;

typedef void (*rt_call_done)(void *ud, const rt_call_result *r);

struct rt_provider {
  const char *name;          /* "llm", "crm": the Lua module's name */
  void *impl;
  /* The ops it knows, NULL-terminated: the functions of its Lua module
   * (llm.chat, llm.extract). Keep the table as `static const char *const
   * <name>_ops[] = {...}` in the plugin's .c: .luacheckrc lists the same
   * names and it.luacheck compares the two. */
  const char *const *ops;
  /* Optional, like a channel's: called once at start in order. */
  void (*start)(rt_provider *p, const rt_plugin_env *env,
                void (*done)(void *ud, int status, const char *err), void *ud);
  /* Starts op ("chat", "find"...) with args (borrowed for the call: the
   * flow's table, written out by lconv.h's rules). On RT_OK done is called
   * exactly once, later, from the loop, unless cancel(*out) came first. On
   * error (unknown op, bad args) nothing is called and err gets an owned
   * message the flow sees as (nil, "bad_request", err). */
  int (*call)(rt_provider *p, const char *op, const json_t *args, rt_call_done done, void *ud,
              rt_call **out, char **err);
  /* Stops a call; done is never called for it afterwards. */
  void (*cancel)(rt_provider *p, rt_call *c);
  /* Optional: at shutdown, in reverse order; cancels what is in flight. */
  void (*close)(rt_provider *p, void (*done)(void *ud), void *ud);
};
#endif
