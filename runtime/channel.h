/* channel.h -- the interface every messenger plugin implements.
 *
 * A channel turns the outside world's messages into normalised inbound
 * events (rt_engine_receive) and delivers committed outbox rows (send).
 * console, the transcript test channel, and later telegram, whatsapp and
 * webchat all sit behind this one struct. Everything runs on the loop. */
#ifndef RT_CHANNEL_H
#define RT_CHANNEL_H
#include "rt.h"

typedef struct rt_engine rt_engine;
typedef struct rt_channel rt_channel;

/* Result of one send. RT_OK: delivered. RT_ENET/RT_ETIMEOUT: transient, the
 * outbox retries with backoff (or after retry_after_ms when the service
 * said so). RT_EINVAL: permanent (blocked by the user, chat not found): the
 * row is marked failed and never retried. */
typedef void (*rt_send_done)(void *ud, int status, const char *err, int64_t retry_after_ms);

struct rt_channel {
  const char *name;          /* "console", "telegram", ... */
  void *impl;
  int (*start)(rt_channel *ch, rt_engine *e, char **err);
  void (*stop)(rt_channel *ch);
  /* Sends one committed outbox message; payload is JSON {"text": ...,
   * "buttons": [...]} . Calls done exactly once, possibly before returning. */
  void (*send)(rt_channel *ch, const char *chat_id, const char *kind,
               const char *payload, const char *idem_key, rt_send_done done, void *ud);
  void (*free)(rt_channel *ch);
};

/* A normalised inbound event. Strings are borrowed for the call. */
typedef struct {
  const char *channel;
  const char *ext_id;        /* the channel's own id: dedup key; NULL = generated */
  const char *chat_id;
  const char *user_id;
  const char *kind;          /* text, photo, contact, button, manager */
  const char *text;
  const char *name;          /* the user's display name, if known */
  const char *extra_json;    /* optional JSON object merged into the event */
} rt_event_in;
#endif
