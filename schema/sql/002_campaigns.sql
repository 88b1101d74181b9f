-- 002_campaigns.sql -- indexes for campaigns and stats.

-- Gift follow-ups still to schedule: the gifts campaign reads only these.
CREATE INDEX IF NOT EXISTS orders_gift_due ON orders (date)
  WHERE gift = 1 AND followup_at IS NULL;

-- Time to lead: the first message of a chat after a given moment.
CREATE INDEX IF NOT EXISTS inbox_chat ON inbox (channel, chat_id, received_at);

-- Leads by conversation (the previous lead of a conversation) and by time.
CREATE INDEX IF NOT EXISTS leads_conv ON leads (conv_id, at);
CREATE INDEX IF NOT EXISTS leads_at ON leads (at);
