// The relay's tables (versions 500-599; docs/relay.md, "Storage").
#include "atrium/relay/relay_service.h"

namespace atrium::relay {

std::vector<store::Migration> RelayMigrations() {
  return {
      store::Migration{500, "relay_accounts",
                       "CREATE TABLE relay_accounts ("
                       "id TEXT PRIMARY KEY, "
                       "workspace_id TEXT NOT NULL, "
                       "name TEXT NOT NULL, "
                       "provider TEXT NOT NULL, "
                       "base_url TEXT NOT NULL DEFAULT '', "
                       "proxy TEXT NOT NULL DEFAULT '', "
                       "priority INTEGER NOT NULL DEFAULT 50, "
                       "weight INTEGER NOT NULL DEFAULT 1, "
                       "max_concurrency INTEGER NOT NULL DEFAULT 0, "
                       "models TEXT NOT NULL DEFAULT '[]', "
                       "model_aliases TEXT NOT NULL DEFAULT '{}', "
                       "groups_json TEXT NOT NULL DEFAULT '[]', "
                       "schedulable INTEGER NOT NULL DEFAULT 1, "
                       "status TEXT NOT NULL DEFAULT 'active', "
                       "status_reason TEXT NOT NULL DEFAULT '', "
                       "status_until BIGINT NOT NULL DEFAULT 0, "
                       "credentials TEXT NOT NULL DEFAULT '', "
                       "created_at BIGINT NOT NULL, "
                       "updated_at BIGINT NOT NULL, "
                       "UNIQUE (workspace_id, name));"
                       "CREATE TABLE relay_key_settings ("
                       "key_id TEXT PRIMARY KEY, "
                       "workspace_id TEXT NOT NULL, "
                       "cost_multiplier DOUBLE PRECISION NOT NULL DEFAULT 1, "
                       "account_group TEXT NOT NULL DEFAULT '', "
                       "account_id TEXT NOT NULL DEFAULT '', "
                       "updated_at BIGINT NOT NULL);"
                       "CREATE TABLE relay_pricing ("
                       "pattern TEXT PRIMARY KEY, "
                       "input DOUBLE PRECISION NOT NULL, "
                       "output DOUBLE PRECISION NOT NULL, "
                       "cache_write DOUBLE PRECISION NOT NULL, "
                       "cache_read DOUBLE PRECISION NOT NULL, "
                       "updated_at BIGINT NOT NULL);",
                       ""},
      store::Migration{501, "relay_usage",
                       "CREATE TABLE relay_usage_hourly ("
                       "bucket BIGINT NOT NULL, "
                       "workspace_id TEXT NOT NULL, "
                       "key_id TEXT NOT NULL, "
                       "account_id TEXT NOT NULL, "
                       "model TEXT NOT NULL, "
                       "requests BIGINT NOT NULL DEFAULT 0, "
                       "errors BIGINT NOT NULL DEFAULT 0, "
                       "input_tokens BIGINT NOT NULL DEFAULT 0, "
                       "output_tokens BIGINT NOT NULL DEFAULT 0, "
                       "cache_write_tokens BIGINT NOT NULL DEFAULT 0, "
                       "cache_read_tokens BIGINT NOT NULL DEFAULT 0, "
                       "cost DOUBLE PRECISION NOT NULL DEFAULT 0, "
                       "latency_ms_sum BIGINT NOT NULL DEFAULT 0, "
                       "PRIMARY KEY (bucket, key_id, account_id, model));"
                       "CREATE INDEX relay_usage_hourly_ws ON relay_usage_hourly "
                       "(workspace_id, bucket);"
                       "CREATE INDEX relay_usage_hourly_key ON relay_usage_hourly "
                       "(key_id, bucket);"
                       "CREATE TABLE relay_usage_cursor ("
                       "consumer TEXT PRIMARY KEY, "
                       "next_offset BIGINT NOT NULL);",
                       ""},
      store::Migration{502, "relay_webhooks",
                       "CREATE TABLE relay_webhooks ("
                       "id TEXT PRIMARY KEY, "
                       "workspace_id TEXT NOT NULL, "
                       "url TEXT NOT NULL, "
                       "secret TEXT NOT NULL, "
                       "format TEXT NOT NULL DEFAULT 'json', "
                       "events TEXT NOT NULL DEFAULT '[]', "
                       "created_at BIGINT NOT NULL);"
                       "CREATE INDEX relay_webhooks_ws ON relay_webhooks (workspace_id);"
                       "CREATE TABLE relay_webhook_deliveries ("
                       "id TEXT PRIMARY KEY, "
                       "webhook_id TEXT NOT NULL, "
                       "event_id TEXT NOT NULL, "
                       "event_type TEXT NOT NULL, "
                       "attempt INTEGER NOT NULL, "
                       "ok INTEGER NOT NULL, "
                       "status_code INTEGER NOT NULL, "
                       "error TEXT NOT NULL, "
                       "created_at BIGINT NOT NULL);"
                       "CREATE INDEX relay_webhook_deliveries_hook ON relay_webhook_deliveries "
                       "(webhook_id, created_at);",
                       ""},
      // Events fired once per key (key.expired), whichever node inserts the marker first.
      store::Migration{503, "relay_key_events",
                       "CREATE TABLE relay_key_events ("
                       "key_id TEXT NOT NULL, "
                       "event TEXT NOT NULL, "
                       "created_at BIGINT NOT NULL, "
                       "PRIMARY KEY (key_id, event));",
                       ""},
      // Webhooks can be paused and edited in place (PATCH); a delivery keeps its latency.
      store::Migration{504, "relay_webhooks_enabled",
                       "ALTER TABLE relay_webhooks ADD COLUMN enabled INTEGER NOT NULL DEFAULT 1;"
                       "ALTER TABLE relay_webhooks ADD COLUMN updated_at BIGINT NOT NULL DEFAULT 0;"
                       "ALTER TABLE relay_webhook_deliveries ADD COLUMN latency_ms BIGINT NOT NULL "
                       "DEFAULT 0;",
                       ""},
  };
}

}  // namespace atrium::relay
