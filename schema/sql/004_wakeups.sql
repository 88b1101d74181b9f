-- 004_wakeups.sql -- wake-ups with an identity that is never reused, and
-- the crash bookkeeping of inbox events.

-- A fired wake-up enters the inbox as "wake:<timer id>", and the inbox key
-- is unique. Plain rowids are reused once the table empties (every timer
-- fired), so a later timer could get the id of one already fired and be
-- taken for its duplicate. AUTOINCREMENT never hands out an id twice.
-- (Keys written before this migration were "timer:<id>:<due>", so the new
-- ones cannot meet them.)
CREATE TABLE timers_v4 (
  id          INTEGER PRIMARY KEY AUTOINCREMENT,
  conv_id     INTEGER NOT NULL,
  name        TEXT NOT NULL,
  due_at      INTEGER NOT NULL,
  step        TEXT NOT NULL,            -- "flow.step" or "step" in the current flow
  data        TEXT NOT NULL DEFAULT '{}',
  created_at  INTEGER NOT NULL,
  UNIQUE (conv_id, name)
);
INSERT INTO timers_v4 (id, conv_id, name, due_at, step, data, created_at)
  SELECT id, conv_id, name, due_at, step, data, created_at FROM timers;
DROP TABLE timers;
ALTER TABLE timers_v4 RENAME TO timers;
CREATE INDEX timers_due ON timers (due_at);

-- After an unclean stop the events that were pending run one at a time,
-- each counted here (committed) before it runs: an event that was running
-- alone when the process died twice is set aside (status 'quarantined',
-- reason) instead of taking the bot down again at every start.
ALTER TABLE inbox ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE inbox ADD COLUMN reason TEXT;
