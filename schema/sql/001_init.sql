-- 001_init.sql -- the shop's durable store. Applied once at start; the
-- schema version lives in PRAGMA user_version. All times are unix
-- milliseconds from the runtime clock (virtual in transcript tests).

-- Received channel events. (channel, ext_id) is the channel's own id, so a
-- redelivered update is inserted once and processed once.
CREATE TABLE inbox (
  id          INTEGER PRIMARY KEY,
  channel     TEXT NOT NULL,
  ext_id      TEXT NOT NULL,
  chat_id     TEXT NOT NULL,
  kind        TEXT NOT NULL,            -- text, photo, contact, button, wake, start
  payload     TEXT NOT NULL,            -- normalised event as JSON
  received_at INTEGER NOT NULL,
  status      TEXT NOT NULL DEFAULT 'new', -- new, done, failed, skipped
  done_at     INTEGER,
  UNIQUE (channel, ext_id)
);
CREATE INDEX inbox_pending ON inbox (status) WHERE status = 'new';

-- One row per chat. state is the flow's slots as JSON: plain data only.
CREATE TABLE conversations (
  id          INTEGER PRIMARY KEY,
  channel     TEXT NOT NULL,
  chat_id     TEXT NOT NULL,
  user_id     TEXT,
  phone       TEXT,                     -- E.164 once known; links to customers
  flow        TEXT,
  step        TEXT,
  state       TEXT NOT NULL DEFAULT '{}',
  mode        TEXT NOT NULL DEFAULT 'bot', -- bot, human (handed off), blocked
  rev         INTEGER NOT NULL DEFAULT 0,
  created_at  INTEGER NOT NULL,
  updated_at  INTEGER NOT NULL,
  last_in_at  INTEGER,                  -- last customer message
  last_error  TEXT,                     -- JSON {code,msg,flow,step,source,line}
  UNIQUE (channel, chat_id)
);
CREATE INDEX conversations_phone ON conversations (phone);

-- Messages to send. Only committed rows are ever sent; idem_key is
-- conv:rev:seq, so a re-run step after a crash cannot queue a second copy.
CREATE TABLE outbox (
  id          INTEGER PRIMARY KEY,
  conv_id     INTEGER,
  channel     TEXT NOT NULL,
  chat_id     TEXT NOT NULL,
  idem_key    TEXT NOT NULL UNIQUE,
  kind        TEXT NOT NULL DEFAULT 'text',
  payload     TEXT NOT NULL,            -- JSON: {text, buttons, photo, ...}
  status      TEXT NOT NULL DEFAULT 'pending', -- pending, sent, failed
  attempts    INTEGER NOT NULL DEFAULT 0,
  next_try_at INTEGER NOT NULL,
  created_at  INTEGER NOT NULL,
  sent_at     INTEGER,
  error       TEXT
);
CREATE INDEX outbox_pending ON outbox (next_try_at) WHERE status = 'pending';

-- Durable wake-ups. A conversation has at most one timer per name; setting
-- it again moves it.
CREATE TABLE timers (
  id          INTEGER PRIMARY KEY,
  conv_id     INTEGER NOT NULL,
  name        TEXT NOT NULL,
  due_at      INTEGER NOT NULL,
  step        TEXT NOT NULL,            -- "flow.step" or "step" in the current flow
  data        TEXT NOT NULL DEFAULT '{}',
  created_at  INTEGER NOT NULL,
  UNIQUE (conv_id, name)
);
CREATE INDEX timers_due ON timers (due_at);

-- Statistics: one row per thing that happened (lead, handoff, outcome,
-- error, contacted, ...). Campaign funnels are computed from here.
CREATE TABLE events (
  id          INTEGER PRIMARY KEY,
  at          INTEGER NOT NULL,
  conv_id     INTEGER,
  flow        TEXT,
  campaign    TEXT,
  kind        TEXT NOT NULL,
  data        TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX events_kind ON events (kind, at);
CREATE INDEX events_campaign ON events (campaign, kind);

CREATE TABLE leads (
  id          INTEGER PRIMARY KEY,
  conv_id     INTEGER NOT NULL,
  at          INTEGER NOT NULL,
  flow        TEXT,
  channel     TEXT,
  campaign    TEXT,
  car         TEXT,
  car_kind    TEXT,                     -- vin, frame
  parts       TEXT NOT NULL DEFAULT '[]', -- JSON array of strings
  name        TEXT,
  phone       TEXT,
  data        TEXT NOT NULL DEFAULT '{}', -- discount, photos, ...
  crm_status  TEXT NOT NULL DEFAULT 'new'
);

-- Imported from the shop's 1C/CSV export; phone (E.164) is the key.
CREATE TABLE customers (
  phone         TEXT PRIMARY KEY,
  name          TEXT,
  last_purchase INTEGER,                -- unix ms, local midnight
  bonus_balance REAL,
  telegram_id   TEXT,
  whatsapp      TEXT,
  timezone      TEXT,
  car           TEXT,
  opted_out     INTEGER NOT NULL DEFAULT 0,
  blocked       INTEGER NOT NULL DEFAULT 0,
  updated_at    INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX customers_last_purchase ON customers (last_purchase);

CREATE TABLE orders (
  order_id        TEXT PRIMARY KEY,
  phone           TEXT NOT NULL,
  date            INTEGER,
  product         TEXT,
  category        TEXT,
  gift            INTEGER NOT NULL DEFAULT 0,
  recipient_name  TEXT,
  recipient_phone TEXT,
  followup_at     INTEGER                -- set when the gift follow-up is scheduled
) WITHOUT ROWID;
CREATE INDEX orders_phone ON orders (phone);

-- Who a campaign contacted and when, so a second run skips them.
CREATE TABLE campaign_contacts (
  campaign    TEXT NOT NULL,
  phone       TEXT NOT NULL,
  ref         TEXT NOT NULL DEFAULT '',   -- order id for gifts
  at          INTEGER NOT NULL,           -- scheduled send time
  conv_id     INTEGER,
  outcome     TEXT,                       -- silent, need, later, declined, ...
  PRIMARY KEY (campaign, phone, ref, at)
);
CREATE INDEX campaign_contacts_phone ON campaign_contacts (phone, campaign, at);

CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT) WITHOUT ROWID;
