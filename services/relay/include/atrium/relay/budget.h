// BudgetLedger: per-key spending limits (day / week / month / total, in dollars) and concurrency,
// enforced with reservations so that concurrent requests cannot overspend a budget by more than
// one request (docs/relay.md, "Budgets").
//
// Before a request, Reserve() adds the request's worst-case cost estimate (input bytes / 2 as
// tokens at the input price, plus max_tokens at the output price) to the key's reserved amount.
// A request is admitted when spent + reserved + estimate fits every budget; when it does not
// fit but nothing else of the key is in flight and spent < budget, it is admitted alone (the
// one request that may go over). After the request, Commit() replaces the estimate by the real
// cost. Spending of earlier periods is read through the SpentLoader (SQL aggregates) the first
// time a key or a new period is seen; afterwards the ledger counts in memory.
//
// Thread-safe. Per process: with several nodes each enforces its own view (documented limit).
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <utility>

#include "atrium/core/env.h"
#include "atrium/core/status.h"

namespace atrium::relay {

struct KeyBudget {
  double daily = 0, weekly = 0, monthly = 0, total = 0;  // 0: none
  int64_t max_concurrency = 0;                           // 0: unlimited
  bool any() const { return daily > 0 || weekly > 0 || monthly > 0 || total > 0; }
};

// What a key spent since `since_micros` (0 = ever), in dollars.
using SpentLoader = std::function<Result<double>(const std::string& key_id, int64_t since_micros)>;

class BudgetLedger {
 public:
  struct Reservation {
    std::string key_id;
    double estimate = 0;
    bool active = false;
  };
  // Spending of a key in its current periods (for dashboards and the 80 % / 100 % events).
  struct Spent {
    double daily = 0, weekly = 0, monthly = 0, total = 0;
    double reserved = 0;
    int in_flight = 0;
  };

  BudgetLedger(Env& env, SpentLoader loader) : env_(env), loader_(std::move(loader)) {}
  BudgetLedger(const BudgetLedger&) = delete;
  BudgetLedger& operator=(const BudgetLedger&) = delete;

  // Admits a request or fails: ResourceExhausted naming the budget ("daily budget of $5.00 is
  // spent") or the concurrency limit; Unavailable when the spending cannot be read.
  Result<Reservation> Reserve(const std::string& key_id, const KeyBudget& budget, double estimate);
  // Ends a reservation with the request's real cost (0 for a request that failed unbilled).
  void Commit(Reservation& reservation, double cost);
  Spent SpentOf(const std::string& key_id);
  // Whether Reserve would read the key's spending (a window not loaded or rolled over) first.
  bool NeedsLoad(const std::string& key_id, const KeyBudget& budget);

  // Period starts (UTC) for `now_micros`: midnight, Monday midnight, the 1st of the month.
  static int64_t DayStart(int64_t now_micros);
  static int64_t WeekStart(int64_t now_micros);
  static int64_t MonthStart(int64_t now_micros);

 private:
  struct Window {
    int64_t start = -1;  // -1: not loaded
    double spent = 0;
  };
  struct KeyState {
    Window day, week, month, total;
    double reserved = 0;
    int in_flight = 0;
  };
  // The key's windows, each with the start it must have at `now` (day, week, month, total).
  static std::array<std::pair<Window*, int64_t>, 4> WindowsAt(KeyState& s, int64_t now);
  // Loads or rolls the key's windows; under mu_.
  Status RefreshLocked(const std::string& key_id, KeyState& s, int64_t now);

  Env& env_;
  SpentLoader loader_;
  std::mutex mu_;
  std::map<std::string, KeyState> keys_;  // guarded by mu_
};

}  // namespace atrium::relay
