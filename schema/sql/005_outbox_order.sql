-- 005_outbox_order.sql -- deliveries (runtime/deliver.c) send the first
-- pending row of each chat only, replies before campaign messages.
-- priority: 0 = a reply or a note to the managers, 1 = wake-ups and
-- campaigns. fail_reason: why a row failed for good (blocked,
-- chat_not_found, outside_window, too_long, unsupported, other).
ALTER TABLE outbox ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;
ALTER TABLE outbox ADD COLUMN fail_reason TEXT;
CREATE INDEX outbox_chat_pending ON outbox (channel, chat_id, id) WHERE status = 'pending';
CREATE INDEX outbox_prio_pending ON outbox (channel, priority, id) WHERE status = 'pending';
