/* channel.h -- the interface every messenger plugin implements.
 *
 * A channel turns the outside world's messages into normalised inbound
 * events (handed to the host through rt_plugin_env.receive) and delivers
 * committed outbox rows (send). console, the transcript test channel, and
 * later telegram, whatsapp and webchat all sit behind this one struct. A
 * plugin includes this header, never the engine's: the host lends it what
 * it needs in rt_plugin_env (plugin.h). Everything runs on the loop.
 *
 * The delivery side is driven by runtime/deliver.c, which keeps per-chat
 * order, the rate limits declared here and the channel pauses; a channel
 * only sends one message and says how it went (plugins/README.md). */
#ifndef RT_CHANNEL_H
#define RT_CHANNEL_H
#include "plugin.h"

typedef struct rt_channel rt_channel;

/* Inbound events (rt_event_in) and what the host lends at start
 * (rt_plugin_env) are in plugin.h: they are the same for every plugin. */

/* ---- outbound ---- */

typedef enum {
  RT_MSG_TEXT,               /* text only */
  RT_MSG_BUTTONS,            /* text with reply buttons */
  RT_MSG_MEDIA,              /* a photo or document by reference, text as caption */
  RT_MSG_TEMPLATE,           /* a pre-approved template (WhatsApp outside the window) */
} rt_msg_kind;

/* One committed outbox row, typed. Everything is borrowed for the send
 * call only: a channel that answers later copies what it keeps. */
typedef struct {
  int64_t id;                /* outbox row */
  const char *chat_id;
  const char *idem_key;      /* the same on every attempt of this row */
  const char *about;         /* a message to a manager: the customer's chat, or NULL */
  const char *topic;         /* with about, when managers.topics is on: the name of the
                              * customer's forum topic (the persona's words), or NULL */
  rt_msg_kind kind;
  const char *text;          /* "" when there is none (media without caption) */
  const char *const *buttons;
  size_t nbuttons;
  const char *media_ref;     /* RT_MSG_MEDIA: a URL or the channel's file id */
  const char *media_kind;    /* "photo", "document" */
  const char *template_name; /* RT_MSG_TEMPLATE */
  const char *const *template_params;
  size_t ntemplate_params;
  int attempt;               /* 0 on the first try */
} rt_out_msg;

/* How a send went. */
typedef enum {
  RT_SEND_DELIVERED,         /* the service took it */
  RT_SEND_RETRY_LATER,       /* transient: again after after_ms, or backoff with jitter if 0 */
  RT_SEND_PAUSE_CHANNEL,     /* the service throttles the whole bot: nothing to this
                              * channel before until_ms (or now + after_ms); this row
                              * is retried then */
  RT_SEND_FAILED,            /* for good: recorded on the row with reason and text */
} rt_send_verdict;

typedef enum {
  RT_FAIL_OTHER,
  RT_FAIL_BLOCKED,           /* the user blocked the bot */
  RT_FAIL_CHAT_NOT_FOUND,
  RT_FAIL_OUTSIDE_WINDOW,    /* needs a template (WhatsApp's 24 h window) */
  RT_FAIL_TOO_LONG,
  RT_FAIL_UNSUPPORTED,       /* the channel lacks the capability the message needs */
} rt_fail_reason;

typedef struct {
  rt_send_verdict verdict;
  int64_t after_ms;          /* RETRY_LATER, PAUSE_CHANNEL */
  int64_t until_ms;          /* PAUSE_CHANNEL: unix ms on the host's clock; 0 = use after_ms */
  rt_fail_reason reason;     /* FAILED */
  const char *text;          /* the service's words (any verdict), may be NULL; borrowed */
} rt_send_result;

/* Called exactly once per send, possibly before send returns. */
typedef void (*rt_send_done)(void *ud, const rt_send_result *r);

/* Capabilities. */
#define RT_CH_BUTTONS   0x1u
#define RT_CH_MEDIA     0x2u
#define RT_CH_TEMPLATES 0x4u
#define RT_CH_EDITS     0x8u
/* The channel shows a chat's past messages (rt_plugin_env.history): the
 * store keeps its chats' history (rt_store_keep_history). */
#define RT_CH_HISTORY   0x10u

/* Limits the service imposes; 0 = none. Rates are messages per second,
 * enforced by token buckets holding at most one second of tokens (at least
 * one), except chat_burst: a private chat's bucket holds that many (a
 * service that lets a few messages to one chat pass at once, then keeps
 * per_chat sustained: Telegram). per_group applies instead of per_chat to
 * chats is_group says are groups (their bucket stays one second's worth).
 * in_flight bounds the sends awaiting an answer (0 = 64). */
typedef struct {
  double per_sec, per_chat, per_group;
  int chat_burst;            /* 0 = one second's worth, as the others */
  int in_flight;
} rt_channel_limits;

const char *rt_fail_reason_name(rt_fail_reason r);   /* "blocked", ... (deliver.c) */

struct rt_channel {
  const char *name;          /* "console", "telegram", ...: the outbox's channel column */
  void *impl;
  unsigned caps;             /* RT_CH_* */
  rt_channel_limits limits;
  /* Optional. Called once by the host before any send, in registration
   * order; done(ud, RT_OK or an error, message) when ready, possibly before
   * returning. env is borrowed until close's done. */
  void (*start)(rt_channel *ch, const rt_plugin_env *env,
                void (*done)(void *ud, int status, const char *err), void *ud);
  /* Sends one message; calls done exactly once. */
  void (*send)(rt_channel *ch, const rt_out_msg *m, rt_send_done done, void *ud);
  /* Optional: true when chat_id is a group (per_group applies). */
  bool (*is_group)(rt_channel *ch, const char *chat_id);
  /* Optional. Called by the host at shutdown, in reverse order, after the
   * deliveries stopped; the channel answers every send still in flight
   * (RETRY_LATER if it cannot finish it), closes its handles and calls
   * done(ud) once; it may free itself there. */
  void (*close)(rt_channel *ch, void (*done)(void *ud), void *ud);
};
#endif
