-- 003_outbox.sql -- the sender asks per channel, so rows waiting for a
-- channel that is not running (say, telegram while `shopbot chat` runs)
-- never hide the rows of one that is.
CREATE INDEX outbox_channel_pending ON outbox (channel, id) WHERE status = 'pending';
