-- 007_customer_addresses.sql -- a customer's addresses on channels, one row
-- each, instead of a column per messenger: a new channel (webchat, VK,
-- ...) needs no migration and no edit in the importer, the lookup behind
-- c:customer() or the campaigns.
--
-- (channel, address) is the chat id on that channel (a Telegram chat id,
-- WhatsApp's digits without '+'); it belongs to one customer. status is
-- 'reachable' or 'blocked': a channel said for good that the chat cannot be
-- written to (reason: blocked, chat_not_found, ...; status_at: when), so
-- campaigns skip it and use another address of the customer, if any. The
-- console's chat id is the customer's phone, so it needs no row.
CREATE TABLE customer_addresses (
  channel     TEXT NOT NULL,
  address     TEXT NOT NULL,
  phone       TEXT NOT NULL,               -- the customer (customers.phone)
  status      TEXT NOT NULL DEFAULT 'reachable',
  reason      TEXT,
  status_at   INTEGER,
  updated_at  INTEGER NOT NULL,
  PRIMARY KEY (channel, address)
) WITHOUT ROWID;
CREATE INDEX customer_addresses_phone ON customer_addresses (phone);

-- The old columns' values; when two customers had the same id, the lowest
-- phone keeps it (the lookup found that one before).
INSERT INTO customer_addresses (channel, address, phone, updated_at)
  SELECT 'telegram', telegram_id, phone, updated_at FROM customers
  WHERE telegram_id IS NOT NULL AND telegram_id <> '' ORDER BY phone
  ON CONFLICT DO NOTHING;
INSERT INTO customer_addresses (channel, address, phone, updated_at)
  SELECT 'whatsapp', whatsapp, phone, updated_at FROM customers
  WHERE whatsapp IS NOT NULL AND whatsapp <> '' ORDER BY phone
  ON CONFLICT DO NOTHING;
DROP INDEX IF EXISTS customers_telegram;
DROP INDEX IF EXISTS customers_whatsapp;
ALTER TABLE customers DROP COLUMN telegram_id;
ALTER TABLE customers DROP COLUMN whatsapp;

-- Which channel and chat each campaign check-in went out on, beside its
-- outcome.
ALTER TABLE campaign_contacts ADD COLUMN channel TEXT;
ALTER TABLE campaign_contacts ADD COLUMN address TEXT;
