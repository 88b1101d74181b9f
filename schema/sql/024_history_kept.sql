-- 024_history_kept.sql -- a chat's history kept only for the channels that
-- show it.
--
-- inbox_chat and outbox_chat (023) serve rt_store_chat_history alone,
-- which a channel reads when it shows a chat's past messages (the web
-- chat, on a page's load). Telegram, WhatsApp and the console never do,
-- and each of their messages still paid for a key in one of the two
-- b-trees (bench_core: 80,000 events/s without them, 71,000 with). A
-- row's `history` is 1 when its channel declares RT_CH_HISTORY
-- (runtime/channel.h, rt_store_keep_history), and the two indexes hold
-- those rows only. The rows already stored keep theirs: 1.
ALTER TABLE inbox ADD COLUMN history INTEGER NOT NULL DEFAULT 1;
ALTER TABLE outbox ADD COLUMN history INTEGER NOT NULL DEFAULT 1;
DROP INDEX inbox_chat;
CREATE INDEX inbox_chat ON inbox ((id >> 12), chat_id, channel) WHERE history = 1;
DROP INDEX outbox_chat;
CREATE INDEX outbox_chat ON outbox ((id >> 12), chat_id, channel) WHERE history = 1;
