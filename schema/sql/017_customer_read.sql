-- 017_customer_read.sql -- c:customer() reads a customer's addresses in
-- the order it needs them (by channel, newest first) straight from an
-- index: with the phone-only index every call sorted them in a temporary
-- b-tree. status is in the index so the read never visits the table.
-- The phone-only index is dropped: this one serves every lookup by phone.
CREATE INDEX customer_addresses_by_phone
  ON customer_addresses (phone, channel, updated_at DESC, address, status);
DROP INDEX IF EXISTS customer_addresses_phone;
