-- 022_events_conv.sql -- a conversation's events found by its id.
--
-- `shopbot stats` finds the outcome each dialog ended with: for every
-- 'outcome' event, the last one of the same conversation and campaign.
-- With no index on conv_id that subquery went through events_campaign, all
-- of a campaign's outcomes for each of them: 25 s for 20,000 outcomes, and
-- the time grew with their square (a retention campaign of a shop with a
-- million customers has hundreds of thousands). The studio's list of a
-- conversation's events read the whole table. events_conv serves both.
--
-- events_campaign goes: no query starts from the campaign alone (the
-- stats filter by kind and time first, on events_kind), and each event
-- written compared its key, whose first columns are equal from one event to
-- the next, on SQLite's slow path (021_index_keys.sql says why). The new
-- key starts with the conversation, which differs from one chat to the next.
DROP INDEX IF EXISTS events_campaign;
CREATE INDEX events_conv ON events (conv_id, id);
