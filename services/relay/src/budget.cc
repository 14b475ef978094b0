#include "atrium/relay/budget.h"

#include <algorithm>
#include <chrono>

#include <fmt/format.h>

namespace atrium::relay {

int64_t BudgetLedger::DayStart(int64_t now) {
  constexpr int64_t kDay = 86'400'000'000;
  return now - (now % kDay + kDay) % kDay;
}

int64_t BudgetLedger::WeekStart(int64_t now) {
  int64_t day = DayStart(now);
  int64_t days_since_epoch = day / 86'400'000'000;
  int64_t weekday = (days_since_epoch + 3) % 7;  // 1970-01-01 was a Thursday; Monday = 0
  return day - weekday * 86'400'000'000;
}

int64_t BudgetLedger::MonthStart(int64_t now) {
  // Calendar arithmetic: gmtime_r and timegm take the C library's time-zone lock, and this runs
  // twice per relayed request.
  using namespace std::chrono;
  const year_month_day date{floor<days>(sys_time<microseconds>(microseconds(now)))};
  const sys_days first{date.year() / date.month() / 1};
  return duration_cast<microseconds>(first.time_since_epoch()).count();
}

std::array<std::pair<BudgetLedger::Window*, int64_t>, 4> BudgetLedger::WindowsAt(KeyState& s,
                                                                                 int64_t now) {
  return {{{&s.day, DayStart(now)},
           {&s.week, WeekStart(now)},
           {&s.month, MonthStart(now)},
           {&s.total, 0}}};
}

Status BudgetLedger::RefreshLocked(const std::string& key_id, KeyState& s, int64_t now) {
  for (auto [w, start] : WindowsAt(s, now)) {
    if (w->start == start) continue;
    auto spent = loader_ ? loader_(key_id, start) : Result<double>(0.0);
    if (!spent.ok()) return Unavailable("key spending cannot be read: " + spent.status().message());
    w->start = start;
    w->spent = *spent;
  }
  return Status::Ok();
}

Result<BudgetLedger::Reservation> BudgetLedger::Reserve(const std::string& key_id,
                                                        const KeyBudget& budget, double estimate) {
  std::lock_guard lock(mu_);
  KeyState& s = keys_[key_id];
  if (budget.max_concurrency > 0 && s.in_flight >= budget.max_concurrency) {
    return ResourceExhausted(fmt::format("the key's concurrency limit of {} requests is reached",
                                         budget.max_concurrency));
  }
  if (budget.any()) {
    RETURN_IF_ERROR(RefreshLocked(key_id, s, env_.NowMicros()));
    struct Check {
      const char* name;
      double limit;
      double spent;
    } checks[] = {{"daily", budget.daily, s.day.spent},
                  {"weekly", budget.weekly, s.week.spent},
                  {"monthly", budget.monthly, s.month.spent},
                  {"total", budget.total, s.total.spent}};
    for (const auto& c : checks) {
      if (c.limit <= 0) continue;
      if (c.spent >= c.limit) {
        return ResourceExhausted(
            fmt::format("the key's {} budget of ${:.2f} is spent", c.name, c.limit));
      }
      if (c.spent + s.reserved + estimate > c.limit && s.in_flight > 0) {
        return ResourceExhausted(fmt::format(
            "the key's {} budget of ${:.2f} is reserved by requests in flight", c.name, c.limit));
      }
    }
  }
  s.reserved += estimate;
  ++s.in_flight;
  return Reservation{key_id, estimate, true};
}

void BudgetLedger::Commit(Reservation& r, double cost) {
  if (!r.active) return;
  r.active = false;
  std::lock_guard lock(mu_);
  KeyState& s = keys_[r.key_id];
  s.reserved -= r.estimate;
  if (s.reserved < 1e-12) s.reserved = 0;
  if (s.in_flight > 0) --s.in_flight;
  // Windows that rolled over meanwhile are reloaded on the next Reserve (the aggregates include
  // this cost by then or soon after).
  for (auto [w, start] : WindowsAt(s, env_.NowMicros())) {
    if (w->start == start) w->spent += cost;
  }
}

bool BudgetLedger::NeedsLoad(const std::string& key_id, const KeyBudget& budget) {
  if (!budget.any()) return false;
  int64_t now = env_.NowMicros();
  std::lock_guard lock(mu_);
  auto it = keys_.find(key_id);
  if (it == keys_.end()) return true;
  auto windows = WindowsAt(it->second, now);
  return std::any_of(windows.begin(), windows.end(),
                     [](const auto& w) { return w.first->start != w.second; });
}

BudgetLedger::Spent BudgetLedger::SpentOf(const std::string& key_id) {
  std::lock_guard lock(mu_);
  KeyState& s = keys_[key_id];
  (void)RefreshLocked(key_id, s, env_.NowMicros());
  return Spent{s.day.spent, s.week.spent, s.month.spent, s.total.spent, s.reserved, s.in_flight};
}

}  // namespace atrium::relay
