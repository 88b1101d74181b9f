-- 014_chat_history.sql -- the messages sent to one chat, newest first
-- (rt_store_chat_history: the web chat's page shows the conversation's
-- recent history after a reload). The customer's side has inbox_chat (002).
CREATE INDEX IF NOT EXISTS outbox_chat ON outbox (channel, chat_id, id);
