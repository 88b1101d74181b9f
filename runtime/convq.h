/* convq.h -- the per-chat event queues and the list of chats ready to run.
 *
 * Each chat has a FIFO of inbox events and at most one step running; a
 * chat is "ready" when it has an event waiting and nothing running. The
 * ready list is FIFO too, so chats take turns. A chat with nothing queued
 * and nothing running is dropped: idle chats cost no memory (their state
 * lives in the store). Plain data, no I/O, no loop. */
#ifndef RT_CONVQ_H
#define RT_CONVQ_H
#include "map.h"
#include "rt.h"

typedef struct {
  int64_t id;                  /* inbox row */
  char *payload;               /* owned; NULL = read from the inbox */
  bool wake;                   /* a wake-up (counts toward limits.wakeups_pending) */
  bool isolate;                /* pending at an unclean start: runs alone */
  bool marked;                 /* its attempt is counted in the store */
  int64_t attempts;            /* earlier attempts (when marked) */
  bool fresh;                  /* received in the transaction still open: runs now,
                                * and is dropped if that transaction rolls back */
  bool stored_done;            /* its inbox row was written as done already */
  int64_t timer_id;            /* a wake-up run in its timer's transaction with no
                                * inbox row (id 0): rt_inbox_add_wake writes one
                                * only if its step does not end done there */
} rt_convq_ev;

typedef struct rt_convq_chat {
  char *key, *channel, *chat_id;
  rt_convq_ev *evs;
  size_t head, len, cap;
  size_t nwake;                /* wake-ups among evs[head..len) */
  bool running, in_ready;
  struct rt_convq_chat *next_ready;
} rt_convq_chat;

typedef struct {
  rt_map chats;                /* key "channel\x1fchat" -> rt_convq_chat */
  rt_convq_chat *ready_head, *ready_tail;
} rt_convq;

void rt_convq_init(rt_convq *q);
void rt_convq_free(rt_convq *q);
/* Appends an event to its chat's queue (payload owned by the queue now)
 * and makes the chat ready if nothing runs in it. */
rt_convq_chat *rt_convq_push(rt_convq *q, const char *channel, const char *chat_id, int64_t id,
                             char *payload, bool wake, bool isolate);
/* An event for a chat with nothing queued and nothing running, started at
 * once: the chat is running it (not on the ready list). NULL, and nothing
 * done, when the chat is busy. payload is owned by the queue on success. */
rt_convq_chat *rt_convq_push_running(rt_convq *q, const char *channel, const char *chat_id,
                                     int64_t id, char *payload, bool wake);
/* True when the chat has nothing queued and nothing running. */
bool rt_convq_idle(rt_convq *q, const char *channel, const char *chat_id);
/* The queue of a chat by its key, or NULL. */
rt_convq_chat *rt_convq_get(rt_convq *q, const char *key);
/* Takes the next ready chat off the list, or NULL. It may be running by
 * now (the isolated recovery started it) or empty: rt_convq_skip then. */
rt_convq_chat *rt_convq_pop_ready(rt_convq *q);
bool rt_convq_any_ready(const rt_convq *q);
/* Chats with an event queued or running. */
size_t rt_convq_chats(const rt_convq *q);
/* A chat taken off the ready list that will not run now. */
void rt_convq_skip(rt_convq *q, rt_convq_chat *c);
/* The event at the head of c, or NULL. */
rt_convq_ev *rt_convq_head(rt_convq_chat *c);
/* Marks c running its head event; the head's payload moves to the caller. */
rt_convq_ev rt_convq_start(rt_convq_chat *c);
/* The head event's step is committed: the chat moves on (and may be
 * dropped; c is invalid then). */
void rt_convq_done(rt_convq *q, rt_convq_chat *c);
/* The head event's step was not kept (rollback): it runs again later, with
 * its payload given back. */
void rt_convq_retry(rt_convq *q, rt_convq_chat *c, char *payload);
/* The head event was never stored (its receive rolled back): it leaves the
 * queue as if it had never come (c may be dropped). */
void rt_convq_abort(rt_convq *q, rt_convq_chat *c);
#endif
