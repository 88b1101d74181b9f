-- 006_customer_lookup.sql -- c:customer() and the opt-out find a customer
-- by phone, or by the chat's Telegram or WhatsApp id. Without these the OR
-- in that lookup could use no index and read the whole customers table on
-- every call (1M customers: about 0.1 s per retention check-in). Partial:
-- most customers have neither id, and an import then maintains only the
-- rows that carry one (the lookups compare with =, which implies NOT NULL,
-- so SQLite uses them).
CREATE INDEX IF NOT EXISTS customers_telegram ON customers (telegram_id)
  WHERE telegram_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS customers_whatsapp ON customers (whatsapp)
  WHERE whatsapp IS NOT NULL;
