-- 009_plugin_values.sql -- durable values a plugin keeps for itself (a
-- webhook secret it generated, a group id a migration moved, the offset of
-- a long-poll): rt_plugin_env.kv_get/kv_set, one namespace per plugin.
CREATE TABLE IF NOT EXISTS plugin_values (
  plugin     TEXT NOT NULL,
  key        TEXT NOT NULL,
  value      TEXT NOT NULL,
  updated_at INTEGER NOT NULL,
  PRIMARY KEY (plugin, key)
) WITHOUT ROWID;
