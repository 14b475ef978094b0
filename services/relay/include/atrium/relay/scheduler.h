// Scheduler: picks the upstream account for each relay request (docs/relay.md, "Scheduling").
//
// Candidates are the accounts whose provider can serve the request, whose allow-list admits the
// model, whose status is usable now (rate_limited / overloaded / error_cooldown end at their
// until-time; unauthorized and disabled need an operator or a successful test), that are
// schedulable, in the key's bound group/account if any, not excluded (already tried by this
// request), and that have a free concurrency slot. Among them:
//   - a sticky session (hash of the conversation) keeps its account while it is a candidate; the
//     mapping lives `sticky_ttl`, renewed on use, and moves when the account becomes unusable;
//   - otherwise the strategy decides: priority (lowest priority value, then least recently used;
//     the default), weighted (random by weight), least_busy (fewest requests in flight, then
//     priority), latency (lowest EWMA of time to first byte; untried accounts first).
// Health: Report*() turn upstream outcomes into statuses: 429 → rate_limited until the reset time
// from retry-after / anthropic-ratelimit-*-reset / x-ratelimit-reset-* (reason "throttled" when
// under a minute, "window exhausted" otherwise), 529 → overloaded for `overloaded_for`, 401/403 →
// unauthorized, `error_threshold` 5xx/connect errors within `error_window` → error_cooldown.
// Every status change goes to the StatusListener (persistence, webhooks).
//
// Thread-safe (one mutex; picks are short). State is per process: several nodes each keep their
// own sticky table and health view (statuses are persisted and re-read on reload).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "atrium/core/env.h"
#include "atrium/core/status.h"
#include "atrium/http/headers.h"
#include "atrium/relay/types.h"

namespace atrium::relay {

enum class Strategy { kPriority, kWeighted, kLeastBusy, kLatency };
Result<Strategy> ParseStrategy(std::string_view name);

struct SchedulerOptions {
  Strategy strategy = Strategy::kPriority;
  std::chrono::seconds sticky_ttl{3600};
  std::chrono::seconds overloaded_for{300};
  std::chrono::seconds default_rate_limit{60};  // 429 without reset headers
  int error_threshold = 3;
  std::chrono::seconds error_window{60};
  std::chrono::seconds error_cooldown{300};
  double latency_alpha = 0.3;  // EWMA weight of the newest sample
};

// What Pick looks for. Views of the caller's strings: Pick keeps none of them.
struct PickRequest {
  std::string_view workspace_id;                   // only accounts of this workspace
  std::span<const std::string_view> providers;     // acceptable providers
  std::string_view model;                          // the client's model name
  std::string_view session_hash;                   // empty: no stickiness
  std::string_view group;                          // non-empty: only accounts in this group
  std::string_view account_id;                     // non-empty: only this account (key binding)
  const std::set<std::string>* exclude = nullptr;  // accounts already tried by this request
};

// A status change for the listener.
struct StatusChange {
  std::string account_id;
  std::string old_status;
  std::string status;
  std::string reason;
  int64_t until_micros = 0;
};
using StatusListener = std::function<void(const StatusChange&)>;

class Scheduler;

// A picked account holding one concurrency slot until destroyed. Move-only.
class AccountLease {
 public:
  AccountLease() = default;
  AccountLease(Scheduler* s, std::shared_ptr<const Account> a) : s_(s), account_(std::move(a)) {}
  AccountLease(AccountLease&& o) noexcept { *this = std::move(o); }
  AccountLease& operator=(AccountLease&& o) noexcept;
  ~AccountLease() { Release(); }
  const Account& account() const { return *account_; }
  std::shared_ptr<const Account> shared() const { return account_; }
  explicit operator bool() const { return account_ != nullptr; }
  void Release();

 private:
  Scheduler* s_ = nullptr;
  std::shared_ptr<const Account> account_;
};

class Scheduler {
 public:
  // `env` is the clock; `listener` may be null.
  Scheduler(Env& env, SchedulerOptions options, StatusListener listener = nullptr,
            uint64_t seed = 0);
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Replaces the account set (after admin changes or a reload). Runtime state (in-flight counts,
  // latency, recent errors) of accounts that stay is kept.
  void SetAccounts(std::vector<Account> accounts);
  std::vector<std::shared_ptr<const Account>> accounts() const;
  std::shared_ptr<const Account> Find(const std::string& id) const;

  // Picks an account. NotFound: no account serves this provider/model at all; Unavailable: all
  // such accounts are unusable now (rate-limited, overloaded, ...); ResourceExhausted: usable
  // ones exist but every concurrency slot is taken.
  Result<AccountLease> Pick(const PickRequest& request);

  // Outcomes reported by the relay.
  void ReportSuccess(const std::string& account_id, int64_t ttfb_ms);
  // An HTTP error status from the upstream (with its headers for rate-limit resets).
  void ReportHttpError(const std::string& account_id, int status, const http::Headers& headers);
  // A transport failure (connect refused, reset, timeout) before a response.
  void ReportTransportError(const std::string& account_id);
  // Sets a status by hand (admin API, account test); until 0 = open-ended.
  void SetStatus(const std::string& account_id, std::string status, std::string reason,
                 int64_t until_micros);

  // Replaces the credentials of one account in memory (after an OAuth refresh); false when the
  // account is gone.
  bool UpdateCredentials(const std::string& account_id,
                         std::map<std::string, std::string> credentials);

  // For dashboards and tests.
  int InFlight(const std::string& account_id) const;
  double LatencyEwmaMs(const std::string& account_id) const;
  std::string StickyAccount(const std::string& session_hash) const;
  size_t sticky_sessions() const;

  // Reset time in micros after `now` from rate-limit headers; 0 when none is present.
  static int64_t RateLimitResetMicros(const http::Headers& headers, int64_t now_micros);

 private:
  friend class AccountLease;
  struct Runtime {
    int in_flight = 0;
    int64_t last_used = 0;
    double ewma_ttfb_ms = -1;  // < 0: no sample yet
    std::vector<int64_t> recent_errors;
  };
  struct Sticky {
    std::string account_id;
    int64_t expires = 0;
  };

  void Release(const std::string& account_id);
  // Applies a status under mu_; returns the change to report (empty account_id: none).
  StatusChange ChangeStatusLocked(const std::string& id, std::string status, std::string reason,
                                  int64_t until);
  void Notify(const StatusChange& change);

  Env& env_;
  const SchedulerOptions options_;
  StatusListener listener_;
  mutable std::mutex mu_;
  std::map<std::string, std::shared_ptr<const Account>> accounts_;  // guarded by mu_
  std::map<std::string, Runtime> runtime_;                          // guarded by mu_
  std::map<std::string, Sticky, std::less<>> sticky_;               // guarded by mu_
  std::mt19937_64 rng_;                                             // guarded by mu_
  int64_t next_sticky_sweep_ = 0;                                   // guarded by mu_
};

}  // namespace atrium::relay
