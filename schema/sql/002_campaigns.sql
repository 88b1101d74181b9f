-- 002_campaigns.sql -- indexes for campaigns and stats.

-- Gift follow-ups still to schedule: the gifts campaign reads only these.
CREATE INDEX IF NOT EXISTS orders_gift_due ON orders (date)
  WHERE gift = 1 AND followup_at IS NULL;

-- Time to lead: the first message of a chat after a given moment.
CREATE INDEX IF NOT EXISTS inbox_chat ON inbox (channel, chat_id, received_at);

-- Leads by conversation (the previous lead of a conversation) and by time.
CREATE INDEX IF NOT EXISTS leads_conv ON leads (conv_id, at);
CREATE INDEX IF NOT EXISTS leads_at ON leads (at);

-- customers_last_purchase (001) is dropped: the retention campaign scans
-- customers in phone order (sequential pages, and lookups in phone order in
-- campaign_contacts and conversations), which at a million customers is
-- faster than walking this index and fetching rows at random; and keeping it
-- up to date cost the CSV import two thirds of its speed (70,000 against
-- 250,000 rows/s), because every batch touched one index page per distinct
-- purchase date.
DROP INDEX IF EXISTS customers_last_purchase;
