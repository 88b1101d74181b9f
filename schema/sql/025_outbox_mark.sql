-- 025_outbox_mark.sql -- a sent message marked by its channel's mark, not
-- by a write of its own.
--
-- Each sent row cost an UPDATE (its record rewritten, and two keys taken
-- out of outbox_prio_pending and outbox_chat_pending), and each new row
-- two keys put into them: together a fifth of an event's time in
-- bench_core. Yet while a channel's rows are all in the deliveries'
-- memory (deliver.c, "synced"), those indexes are never read.
--
-- So for such a channel a row is written 'sent' at once, with no sent_at
-- and no key in the pending indexes: an "open" row. The channel's mark,
-- `next`, says which of them are not settled yet: every row of the channel
-- at or above it that is 'sent' with no sent_at. Below the mark a row is
-- what its status says. The deliveries move the mark past the rows
-- answered, in the commit that saves the answers (one UPDATE here for a
-- whole batch); a row answered while an older one of its channel still
-- waits gets its own sent_at, as before. A row that must wait (a retry, a
-- pause) is set 'pending' and waits in the indexes like any other.
--
-- The mark's row exists only while its channel is synced. When the
-- channel stops being synced (a backlog, a shutdown), and at every start
-- of the deliveries (after kill -9), its open rows are set 'pending' and
-- the row is removed: rt_store_outbox_mark_stop, rt_store_outbox_recover.
CREATE TABLE outbox_mark (
  channel TEXT PRIMARY KEY,
  next    INTEGER NOT NULL
);
