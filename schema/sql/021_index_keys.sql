-- 021_index_keys.sql -- index keys whose first column tells rows apart.
--
-- Each message received or sent is written into index b-trees, and each
-- write compares its key with some fifteen keys on the way down. SQLite
-- compares the first column on a fast path (one text or one integer);
-- only when the first columns are equal does it go on, column by column,
-- through its general record comparison. The old keys all began with the
-- channel, which is equal in nearly every comparison (a shop has one or
-- two), and outbox_prio_pending went on to the priority, equal too: each
-- comparison took the slow path. Measured with callgrind over bench_core
-- (tests/bench/), these keys cost 11 % of the instructions of an event.
--
-- * The chat comes first in the inbox's key and in outbox_chat. The
--   queries are the same: they name both columns with "=".
-- * outbox_prio_pending is keyed by the order it gives, priority then id,
--   as one integer (priorities are 0 and 1, ids stay far below 10^15),
--   then the channel. A delivery scan reads it in that order and skips
--   other channels' rows on the index; a shop has one or two channels, and
--   the scan runs only while the deliveries' rows are not all in memory
--   (runtime/deliver.c). The queries order by the same expression.
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
DROP INDEX outbox_prio_pending;
CREATE INDEX outbox_prio_pending ON outbox (priority * 1000000000000000 + id, channel)
  WHERE status = 'pending';
