-- 021_chat_keys.sql -- the chat first in the keys every message writes.
--
-- Each message received or sent is written into index b-trees keyed by
-- its channel and chat. With the channel first, every comparison on the
-- way down such a b-tree found the channel equal (a shop has one or two)
-- and went on to SQLite's general record comparison for the next column.
-- With the chat first, most comparisons end on the first column, on
-- SQLite's fast path for a text key. The queries are the same: they name
-- both columns with "=".
--
-- The inbox also loses one of its two indexes. A redelivered update is
-- one with the same channel, chat and channel's own id (a channel's update
-- ids are unique, and a redelivery carries the same chat), so the unique
-- key (chat_id, channel, ext_id) refuses it as (channel, ext_id) did, and
-- it also finds a chat's rows: the chat history (rt_store_chat_history)
-- and the time to a lead (shopbot stats) read them from it, and sort them.
-- The history of a chat then costs in proportion to its length: 7 ms for
-- a chat of 10,000 messages, read when a web chat page is opened.
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
  UNIQUE (chat_id, channel, ext_id)
);
INSERT INTO inbox_new (id, channel, ext_id, chat_id, kind, payload, received_at, status,
                       done_at, attempts, reason)
  SELECT id, channel, ext_id, chat_id, kind, payload, received_at, status, done_at,
         attempts, reason FROM inbox;
DROP TABLE inbox;
ALTER TABLE inbox_new RENAME TO inbox;
CREATE INDEX inbox_pending ON inbox (status) WHERE status = 'new';

DROP INDEX outbox_chat;
CREATE INDEX outbox_chat ON outbox (chat_id, channel, id);
