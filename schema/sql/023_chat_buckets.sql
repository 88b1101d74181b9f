-- 023_chat_buckets.sql -- a chat's rows found without a b-tree ordered by
-- chat.
--
-- Since 021 the inbox's unique key and outbox_chat began with the chat.
-- A commit of a busy bot holds the messages of thousands of chats, so each
-- of these two b-trees took an insert on nearly every one of its leaf
-- pages: half the pages a commit wrote to the WAL, each written again by
-- the checkpoint (bench_core, 100,000 events over 10,000 chats: 0.23 of
-- 0.46 pages an event; the floor program writes 0.15 in all). A b-tree
-- whose new keys are near one another takes them on a few pages.
--
-- * The inbox's unique key starts with the channel's own id, which differs
--   from one event to the next (SQLite's fast first-column comparison,
--   021) and grows for most channels (Telegram's update ids, our own
--   counters), so new keys land at the end. Its columns are the same: a
--   redelivery is still refused, the same channel id in another chat is
--   still that chat's own event.
-- * A chat's rows are found by buckets of 4,096 ids: inbox_chat and
--   outbox_chat are keyed by (id >> 12, chat, channel), then the rowid as
--   every index is, so a chat's rows in a bucket come in order. The keys a
--   commit adds fall in the newest bucket or two, a few dozen pages. The
--   history of a chat (rt_store_chat_history) reads the buckets newest
--   first, one index probe each, until it has what it needs: about 250
--   probes for a million rows.
-- * A chat's head in the deliveries' scan (S_OUT_HEADS: no earlier pending
--   row in the chat) is read off outbox_chat_pending, which holds only the
--   pending rows: a few pages, written as rows are queued and sent.
--
-- SQLite cannot drop a UNIQUE table constraint: the inbox is rebuilt with
-- the same columns in the same order and the same rowids.
CREATE TABLE inbox_new (
  id          INTEGER PRIMARY KEY,
  channel     TEXT NOT NULL,
  ext_id      TEXT NOT NULL,
  chat_id     TEXT NOT NULL,
  kind        TEXT NOT NULL,            -- text, photo, contact, button, wake, start
  payload     TEXT NOT NULL,            -- normalised event as JSON
  received_at INTEGER NOT NULL,
  status      TEXT NOT NULL DEFAULT 'new', -- new, done, failed, skipped, quarantined
  done_at     INTEGER,
  attempts    INTEGER NOT NULL DEFAULT 0,
  reason      TEXT,
  UNIQUE (ext_id, channel, chat_id)
);
INSERT INTO inbox_new (id, channel, ext_id, chat_id, kind, payload, received_at, status,
                       done_at, attempts, reason)
  SELECT id, channel, ext_id, chat_id, kind, payload, received_at, status, done_at,
         attempts, reason FROM inbox;
DROP TABLE inbox;
ALTER TABLE inbox_new RENAME TO inbox;
CREATE INDEX inbox_pending ON inbox (status) WHERE status = 'new';
CREATE INDEX inbox_chat ON inbox ((id >> 12), chat_id, channel);

DROP INDEX outbox_chat;
CREATE INDEX outbox_chat ON outbox ((id >> 12), chat_id, channel);
CREATE INDEX outbox_chat_pending ON outbox (chat_id, channel) WHERE status = 'pending';
