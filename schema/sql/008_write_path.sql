-- 008_write_path.sql -- fewer index writes per message. Every outbox row
-- was kept in four partial indexes while pending and taken out of them
-- when sent. Two of them no query needs any more: deliveries
-- (runtime/deliver.c) read the head row of each chat through
-- outbox_chat_pending and outbox_prio_pending (005), and nothing scans
-- pending rows by due time alone or by channel and id alone.
DROP INDEX IF EXISTS outbox_pending;
DROP INDEX IF EXISTS outbox_channel_pending;
