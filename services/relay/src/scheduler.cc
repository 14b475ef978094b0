#include "atrium/relay/scheduler.h"

#include <boost/container/small_vector.hpp>

#include <algorithm>
#include <cstdlib>
#include <limits>

#include "atrium/auth/crypto.h"

namespace atrium::relay {

bool Account::AllowsModel(std::string_view model) const {
  if (model_aliases.contains(std::string(model))) return true;
  if (models.empty()) return true;
  for (const auto& glob : models) {
    if (GlobMatch(glob, model)) return true;
  }
  return false;
}

std::string Account::UpstreamModel(std::string_view model) const {
  auto it = model_aliases.find(std::string(model));
  return it == model_aliases.end() ? std::string(model) : it->second;
}

bool Account::UsableAt(int64_t now) const {
  if (!schedulable || status == kStatusDisabled || status == kStatusUnauthorized) return false;
  if (status == kStatusActive) return true;
  return status_until != 0 && status_until <= now;  // timed statuses recover by themselves
}

Result<Strategy> ParseStrategy(std::string_view name) {
  if (name == "priority") return Strategy::kPriority;
  if (name == "weighted") return Strategy::kWeighted;
  if (name == "least_busy") return Strategy::kLeastBusy;
  if (name == "latency") return Strategy::kLatency;
  return InvalidArgument("relay.strategy must be priority, weighted, least_busy or latency");
}

AccountLease& AccountLease::operator=(AccountLease&& o) noexcept {
  if (this != &o) {
    Release();
    s_ = o.s_;
    account_ = std::move(o.account_);
    o.s_ = nullptr;
  }
  return *this;
}

void AccountLease::Release() {
  if (s_ != nullptr && account_ != nullptr) s_->Release(account_->id);
  s_ = nullptr;
  account_.reset();
}

Scheduler::Scheduler(Env& env, SchedulerOptions options, StatusListener listener, uint64_t seed)
    : env_(env),
      options_(options),
      listener_(std::move(listener)),
      rng_(seed != 0 ? seed : env.RandomU64()) {}

void Scheduler::SetAccounts(std::vector<Account> accounts) {
  std::lock_guard lock(mu_);
  std::map<std::string, std::shared_ptr<const Account>> next;
  for (auto& a : accounts) {
    std::string id = a.id;
    next[id] = std::make_shared<const Account>(std::move(a));
  }
  accounts_ = std::move(next);
  std::erase_if(runtime_, [this](const auto& kv) {
    return !accounts_.contains(kv.first) && kv.second.in_flight == 0;
  });
}

std::vector<std::shared_ptr<const Account>> Scheduler::accounts() const {
  std::lock_guard lock(mu_);
  std::vector<std::shared_ptr<const Account>> out;
  for (const auto& [id, a] : accounts_) out.push_back(a);
  return out;
}

std::shared_ptr<const Account> Scheduler::Find(const std::string& id) const {
  std::lock_guard lock(mu_);
  auto it = accounts_.find(id);
  return it == accounts_.end() ? nullptr : it->second;
}

Result<AccountLease> Scheduler::Pick(const PickRequest& req) {
  int64_t now = env_.NowMicros();
  StatusChange recovered;
  std::shared_ptr<const Account> chosen;
  {
    std::lock_guard lock(mu_);
    if (now >= next_sticky_sweep_) {
      std::erase_if(sticky_, [now](const auto& kv) { return kv.second.expires <= now; });
      next_sticky_sweep_ = now + 60'000'000;
    }
    // Counts and the free accounts, as pointers to accounts_'s entries (stable under mu_):
    // no vector and no reference count per account on the per-request path.
    size_t serving = 0, usable = 0;
    boost::container::small_vector<const std::shared_ptr<const Account>*, 8> free;
    for (const auto& [id, a] : accounts_) {
      if (std::find(req.providers.begin(), req.providers.end(), a->provider) ==
          req.providers.end()) {
        continue;
      }
      if (a->workspace_id != req.workspace_id) continue;
      if (!req.account_id.empty() && a->id != req.account_id) continue;
      if (!req.group.empty() &&
          std::find(a->groups.begin(), a->groups.end(), req.group) == a->groups.end()) {
        continue;
      }
      if (!a->AllowsModel(req.model)) continue;
      ++serving;
      if ((req.exclude != nullptr && req.exclude->contains(id)) || !a->UsableAt(now)) continue;
      ++usable;
      const Runtime& rt = runtime_[id];
      if (a->max_concurrency > 0 && rt.in_flight >= a->max_concurrency) continue;
      free.push_back(&a);
    }
    if (serving == 0) {
      return NotFound("no upstream account serves model '" + std::string(req.model) + "'");
    }
    if (usable == 0) {
      return Unavailable("every upstream account for model '" + std::string(req.model) +
                         "' is unavailable (rate-limited, overloaded or failing)");
    }
    if (free.empty()) {
      return ResourceExhausted("every upstream account for model '" + std::string(req.model) +
                               "' is at its concurrency limit");
    }
    if (!req.session_hash.empty()) {
      auto it = sticky_.find(req.session_hash);
      if (it != sticky_.end() && it->second.expires > now) {
        for (const auto* a : free) {
          if ((*a)->id == it->second.account_id) chosen = *a;
        }
      }
    }
    if (chosen == nullptr) {
      switch (options_.strategy) {
        case Strategy::kPriority:
          chosen = **std::min_element(free.begin(), free.end(), [this](auto* pa, auto* pb) {
            const Account &a = **pa, &b = **pb;
            if (a.priority != b.priority) return a.priority < b.priority;
            return runtime_[a.id].last_used < runtime_[b.id].last_used;
          });
          break;
        case Strategy::kWeighted: {
          int64_t total = 0;
          for (const auto* a : free) total += std::max(1, (*a)->weight);
          int64_t r = static_cast<int64_t>(rng_() % static_cast<uint64_t>(total));
          for (const auto* a : free) {
            r -= std::max(1, (*a)->weight);
            if (r < 0) {
              chosen = *a;
              break;
            }
          }
          break;
        }
        case Strategy::kLeastBusy:
          chosen = **std::min_element(free.begin(), free.end(), [this](auto* pa, auto* pb) {
            const Account &a = **pa, &b = **pb;
            int fa = runtime_[a.id].in_flight, fb = runtime_[b.id].in_flight;
            if (fa != fb) return fa < fb;
            if (a.priority != b.priority) return a.priority < b.priority;
            return runtime_[a.id].last_used < runtime_[b.id].last_used;
          });
          break;
        case Strategy::kLatency:
          chosen = **std::min_element(free.begin(), free.end(), [this](auto* pa, auto* pb) {
            const Account &a = **pa, &b = **pb;
            double la = runtime_[a.id].ewma_ttfb_ms, lb = runtime_[b.id].ewma_ttfb_ms;
            if (la != lb) return la < lb;  // untried (-1) first
            return a.priority < b.priority;
          });
          break;
      }
    }
    if (!req.session_hash.empty()) {
      Sticky sticky{chosen->id,
                    now + static_cast<int64_t>(options_.sticky_ttl.count()) * 1'000'000};
      if (auto it = sticky_.find(req.session_hash); it != sticky_.end()) {
        it->second = std::move(sticky);
      } else {
        sticky_.emplace(std::string(req.session_hash), std::move(sticky));
      }
    }
    Runtime& rt = runtime_[chosen->id];
    ++rt.in_flight;
    rt.last_used = now;
    if (chosen->status != kStatusActive) {
      // A timed status ran out: the account is active again.
      recovered = ChangeStatusLocked(chosen->id, std::string(kStatusActive), "recovered", 0);
      chosen = accounts_[chosen->id];
    }
  }
  if (!recovered.account_id.empty()) Notify(recovered);
  return AccountLease(this, chosen);
}

void Scheduler::Release(const std::string& id) {
  std::lock_guard lock(mu_);
  auto it = runtime_.find(id);
  if (it != runtime_.end() && it->second.in_flight > 0) --it->second.in_flight;
}

void Scheduler::ReportSuccess(const std::string& id, int64_t ttfb_ms) {
  std::lock_guard lock(mu_);
  Runtime& rt = runtime_[id];
  rt.recent_errors.clear();
  double sample = static_cast<double>(ttfb_ms);
  rt.ewma_ttfb_ms = rt.ewma_ttfb_ms < 0 ? sample
                                        : options_.latency_alpha * sample +
                                              (1 - options_.latency_alpha) * rt.ewma_ttfb_ms;
}

int64_t Scheduler::RateLimitResetMicros(const http::Headers& headers, int64_t now) {
  int64_t best = 0;
  auto consider = [&best](int64_t delta) {
    if (delta > best) best = delta;
  };
  if (auto ra = headers.Get("retry-after"); ra) {
    char* end = nullptr;
    std::string s(*ra);
    double secs = std::strtod(s.c_str(), &end);
    if (end != s.c_str() && secs > 0) consider(static_cast<int64_t>(secs * 1e6));
  }
  for (const auto& [name, value] : headers.fields()) {
    std::string lower(name);
    for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (lower.starts_with("anthropic-ratelimit-") && lower.ends_with("-reset")) {
      // Only windows that are used up matter: their "-remaining" is 0.
      std::string remaining_name = lower.substr(0, lower.size() - 6) + "-remaining";
      auto remaining = headers.Get(remaining_name);
      if (remaining && *remaining != "0") continue;
      auto t = auth::ParseRfc3339(value);
      if (t.ok() && *t > now) consider(*t - now);
    } else if (lower.starts_with("x-ratelimit-reset-")) {
      // OpenAI durations: "1s", "6m0s", "120ms".
      std::string_view v = value;
      double total = 0, num = 0;
      bool any = false;
      for (size_t i = 0; i < v.size();) {
        size_t j = i;
        while (j < v.size() && (std::isdigit(static_cast<unsigned char>(v[j])) || v[j] == '.')) ++j;
        if (j == i) break;
        num = std::strtod(std::string(v.substr(i, j - i)).c_str(), nullptr);
        if (v.substr(j).starts_with("ms"))
          total += num / 1000, j += 2;
        else if (v.substr(j).starts_with("h"))
          total += num * 3600, j += 1;
        else if (v.substr(j).starts_with("m"))
          total += num * 60, j += 1;
        else if (v.substr(j).starts_with("s"))
          total += num, j += 1;
        else
          total += num;
        any = true;
        i = j;
      }
      if (any) consider(static_cast<int64_t>(total * 1e6));
    }
  }
  return best;
}

void Scheduler::ReportHttpError(const std::string& id, int status, const http::Headers& headers) {
  int64_t now = env_.NowMicros();
  StatusChange change;
  {
    std::lock_guard lock(mu_);
    if (status == 429) {
      int64_t reset = RateLimitResetMicros(headers, now);
      if (reset == 0) reset = static_cast<int64_t>(options_.default_rate_limit.count()) * 1'000'000;
      std::string reason = reset < 60'000'000 ? "throttled" : "window exhausted";
      change = ChangeStatusLocked(id, std::string(kStatusRateLimited), reason, now + reset);
    } else if (status == 529) {
      change = ChangeStatusLocked(
          id, std::string(kStatusOverloaded), "upstream overloaded (529)",
          now + static_cast<int64_t>(options_.overloaded_for.count()) * 1'000'000);
    } else if (status == 401 || status == 403) {
      change = ChangeStatusLocked(id, std::string(kStatusUnauthorized),
                                  "upstream answered " + std::to_string(status), 0);
    } else if (status >= 500) {
      Runtime& rt = runtime_[id];
      rt.recent_errors.push_back(now);
      int64_t window = static_cast<int64_t>(options_.error_window.count()) * 1'000'000;
      std::erase_if(rt.recent_errors, [&](int64_t t) { return t < now - window; });
      if (static_cast<int>(rt.recent_errors.size()) >= options_.error_threshold) {
        rt.recent_errors.clear();
        change = ChangeStatusLocked(
            id, std::string(kStatusErrorCooldown),
            std::to_string(options_.error_threshold) + " upstream errors within " +
                std::to_string(options_.error_window.count()) + "s (last " +
                std::to_string(status) + ")",
            now + static_cast<int64_t>(options_.error_cooldown.count()) * 1'000'000);
      }
    }
  }
  if (!change.account_id.empty()) Notify(change);
}

void Scheduler::ReportTransportError(const std::string& id) {
  ReportHttpError(id, 599, http::Headers());
}

bool Scheduler::UpdateCredentials(const std::string& id,
                                  std::map<std::string, std::string> credentials) {
  std::lock_guard lock(mu_);
  auto it = accounts_.find(id);
  if (it == accounts_.end()) return false;
  auto copy = std::make_shared<Account>(*it->second);
  copy->credentials = std::move(credentials);
  it->second = std::move(copy);
  return true;
}

void Scheduler::SetStatus(const std::string& id, std::string status, std::string reason,
                          int64_t until) {
  StatusChange change;
  {
    std::lock_guard lock(mu_);
    change = ChangeStatusLocked(id, std::move(status), std::move(reason), until);
  }
  if (!change.account_id.empty()) Notify(change);
}

StatusChange Scheduler::ChangeStatusLocked(const std::string& id, std::string status,
                                           std::string reason, int64_t until) {
  auto it = accounts_.find(id);
  if (it == accounts_.end()) return {};
  const Account& old = *it->second;
  if (old.status == status && old.status_reason == reason && old.status_until == until) return {};
  auto copy = std::make_shared<Account>(old);
  copy->status = status;
  copy->status_reason = reason;
  copy->status_until = until;
  StatusChange change{id, old.status, status, reason, until};
  it->second = std::move(copy);
  if (status != kStatusActive) {
    // Sessions stuck to this account move on their next request.
    std::erase_if(sticky_, [&](const auto& kv) { return kv.second.account_id == id; });
  }
  return change;
}

void Scheduler::Notify(const StatusChange& change) {
  if (listener_) listener_(change);
}

int Scheduler::InFlight(const std::string& id) const {
  std::lock_guard lock(mu_);
  auto it = runtime_.find(id);
  return it == runtime_.end() ? 0 : it->second.in_flight;
}

double Scheduler::LatencyEwmaMs(const std::string& id) const {
  std::lock_guard lock(mu_);
  auto it = runtime_.find(id);
  return it == runtime_.end() ? -1 : it->second.ewma_ttfb_ms;
}

std::string Scheduler::StickyAccount(const std::string& hash) const {
  std::lock_guard lock(mu_);
  auto it = sticky_.find(hash);
  return it == sticky_.end() ? "" : it->second.account_id;
}

size_t Scheduler::sticky_sessions() const {
  std::lock_guard lock(mu_);
  return sticky_.size();
}

}  // namespace atrium::relay
