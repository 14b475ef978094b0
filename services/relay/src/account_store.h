// AccountStore: the relay's SQL repository — upstream accounts (credentials sealed with
// AES-256-GCM, the account id as associated data), per-key relay settings, pricing overrides and
// usage aggregates. Blocking (database calls); thread-safe like the Database.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "atrium/auth/crypto.h"
#include "atrium/core/env.h"
#include "atrium/relay/usage.h"
#include "atrium/store/database.h"

namespace atrium::relay {

struct KeySettings {
  std::string key_id;
  std::string workspace_id;
  double cost_multiplier = 1;
  std::string account_group;  // non-empty: the key's requests only use this group
  std::string account_id;     // non-empty: the key's requests only use this account
};

struct UsageQuery {
  std::string workspace_id;
  std::string group_by;      // key, account, model, or "" (totals)
  std::string bucket;        // hour or day
  int64_t from = 0, to = 0;  // micros; to 0 = now
  std::string key_id;        // optional filters
  std::string account_id;
};

struct UsageRow {
  int64_t bucket = 0;
  std::string group;  // the key, account or model
  int64_t requests = 0, errors = 0, input_tokens = 0, output_tokens = 0, cache_write_tokens = 0,
          cache_read_tokens = 0, latency_ms_sum = 0;
  double cost = 0;
};

class AccountStore {
 public:
  AccountStore(store::Database& db, Env& env, auth::SecretBox box)
      : db_(db), env_(env), box_(std::move(box)) {}

  Status Insert(const Account& account);
  // Replaces the stored account (credentials re-sealed). NotFound when absent.
  Status Update(const Account& account);
  Status Delete(const std::string& workspace_id, const std::string& id);
  Result<Account> Get(const std::string& workspace_id, const std::string& id);
  // Every account of every workspace (the scheduler's set), credentials opened.
  Result<std::vector<Account>> All();
  // Replaces the account's credentials (sealed again), nothing else. NotFound when absent.
  Status SetCredentials(const Account& account);
  Status SetStatus(const std::string& id, const std::string& status, const std::string& reason,
                   int64_t until);

  Result<std::optional<KeySettings>> GetKeySettings(const std::string& key_id);
  Status PutKeySettings(const KeySettings& settings);

  Result<std::vector<ModelPrice>> PricingOverrides();
  Status PutPricing(const ModelPrice& price);
  Status DeletePricing(const std::string& pattern);

  // Adds records to the hourly aggregates and moves the consumer's cursor, in one transaction;
  // records at offsets below the stored cursor are skipped (redeliveries).
  Status Aggregate(const std::string& consumer, uint64_t offset, const UsageRecord& record);
  // The same for a batch of records in offset order, in one transaction (rows of the same hour,
  // key, account and model summed first).
  Status AggregateBatch(const std::string& consumer,
                        const std::vector<std::pair<uint64_t, UsageRecord>>& records);
  Result<uint64_t> Cursor(const std::string& consumer);
  Result<double> SpentSince(const std::string& key_id, int64_t since_micros);
  Result<std::vector<UsageRow>> QueryUsage(const UsageQuery& q);
  // The key ring sealing credentials (also webhook secrets).
  const auth::SecretBox& box() const { return box_; }

 private:
  Result<Account> FromRow(const store::Row& row);
  Result<std::string> SealCredentials(const Account& a);

  store::Database& db_;
  Env& env_;
  auth::SecretBox box_;
};

}  // namespace atrium::relay
