-- 020_outbox_lean.sql -- two fewer b-trees written per message.
--
-- Every message was written into five b-trees when queued (the table, the
-- unique idem_key index, outbox_chat, outbox_chat_pending,
-- outbox_prio_pending) and two of them were rewritten again when it was
-- sent. Two of those no longer earn their place:
--
-- * idem_key UNIQUE. The key is made from the conversation, its revision
--   and the message's place in the step (runtime/effects.c), and a step's
--   messages are stored in the same transaction as that revision: a second
--   row with the same key cannot be written. The key stays, as a column,
--   for the channels (an idempotency key for services that take one).
-- * outbox_chat_pending. The rows still pending in a chat are always the
--   newest ones of that chat (a chat's next message leaves only after the
--   previous one is sent or failed for good: runtime/deliver.c), so a
--   pending row is the chat's head exactly when the row before it in
--   outbox_chat is not pending (S_OUT_HEADS in runtime/store.c).
--
-- SQLite cannot drop a UNIQUE column constraint: the table is rebuilt,
-- with the same columns in the same order and the same rowids.
CREATE TABLE outbox_new (
  id          INTEGER PRIMARY KEY,
  conv_id     INTEGER,
  channel     TEXT NOT NULL,
  chat_id     TEXT NOT NULL,
  idem_key    TEXT NOT NULL,
  kind        TEXT NOT NULL DEFAULT 'text',
  payload     TEXT NOT NULL,            -- JSON: {text, buttons, photo, ...}
  status      TEXT NOT NULL DEFAULT 'pending', -- pending, sent, failed
  attempts    INTEGER NOT NULL DEFAULT 0,
  next_try_at INTEGER NOT NULL,
  created_at  INTEGER NOT NULL,
  sent_at     INTEGER,
  error       TEXT,
  priority    INTEGER NOT NULL DEFAULT 0, -- 0: replies and notes, 1: wake-ups and campaigns
  fail_reason TEXT                      -- blocked, chat_not_found, outside_window, ...
);
INSERT INTO outbox_new (id, conv_id, channel, chat_id, idem_key, kind, payload, status,
                        attempts, next_try_at, created_at, sent_at, error, priority, fail_reason)
  SELECT id, conv_id, channel, chat_id, idem_key, kind, payload, status, attempts,
         next_try_at, created_at, sent_at, error, priority, fail_reason FROM outbox;
DROP TABLE outbox;
ALTER TABLE outbox_new RENAME TO outbox;
CREATE INDEX outbox_prio_pending ON outbox (channel, priority, id) WHERE status = 'pending';
CREATE INDEX outbox_chat ON outbox (channel, chat_id, id);
