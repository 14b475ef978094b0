// Scheduler behaviour: candidate filtering, strategies, sticky sessions (TTL, moving off an
// unusable account), concurrency slots and health from upstream outcomes (injected clock).
#include "atrium/relay/scheduler.h"

#include <gtest/gtest.h>

#include <map>

#include "atrium/auth/crypto.h"
#include "atrium/core/fault_env.h"

namespace atrium::relay {
namespace {

constexpr int64_t kSecond = 1'000'000;

Account Make(std::string id, std::string provider, int priority = 50,
             std::vector<std::string> models = {}) {
  Account a;
  a.id = std::move(id);
  a.workspace_id = "ws";
  a.name = a.id;
  a.provider = std::move(provider);
  a.priority = priority;
  a.models = std::move(models);
  return a;
}

class SchedulerTest : public ::testing::Test {
 protected:
  SchedulerTest() : env_(Env::Default()) { env_.fake_now_micros = 1'800'000'000 * kSecond; }

  std::unique_ptr<Scheduler> Make(SchedulerOptions o = {}) {
    return std::make_unique<Scheduler>(
        env_, o, [this](const StatusChange& c) { changes_.push_back(c); }, 42);
  }
  // Views: the tests pass literals.
  PickRequest Req(std::string_view model = "claude-sonnet-4", std::string_view session = "") {
    static constexpr std::string_view kProviders[] = {"anthropic", "openai"};
    return PickRequest{
        .workspace_id = "ws", .providers = kProviders, .model = model, .session_hash = session};
  }

  FaultInjectionEnv env_;
  std::vector<StatusChange> changes_;
};

TEST_F(SchedulerTest, FiltersByProviderModelWorkspaceAndGroup) {
  auto s = Make();
  Account other_ws = relay::Make("c", "anthropic");
  other_ws.workspace_id = "other";
  Account grouped = relay::Make("d", "anthropic", 1);
  grouped.groups = {"vip"};
  s->SetAccounts({relay::Make("a", "anthropic", 50, {"claude-*"}), relay::Make("b", "gemini", 1),
                  other_ws, grouped});
  auto req = Req();
  req.group = "vip";
  auto l = s->Pick(req);
  ASSERT_TRUE(l.ok());
  EXPECT_EQ(l->account().id, "d");
  auto none = s->Pick(Req("gpt-4o"));
  ASSERT_TRUE(none.ok());  // d has no allow-list
  EXPECT_EQ(none->account().id, "d");
  s->SetAccounts({relay::Make("a", "anthropic", 50, {"claude-*"})});
  EXPECT_EQ(s->Pick(Req("gpt-4o")).status().code(), StatusCode::kNotFound);
}

TEST_F(SchedulerTest, ExcludedAccountsAreSkippedAndNamedUnavailableWhenNoneIsLeft) {
  auto s = Make();
  s->SetAccounts({relay::Make("first", "anthropic", 1), relay::Make("second", "anthropic", 2)});
  const std::set<std::string> tried_first = {"first"};
  auto req = Req();
  req.exclude = &tried_first;
  auto l = s->Pick(req);
  ASSERT_TRUE(l.ok());
  EXPECT_EQ(l->account().id, "second");
  l->Release();
  const std::set<std::string> tried_both = {"first", "second"};
  req.exclude = &tried_both;
  EXPECT_EQ(s->Pick(req).status().code(), StatusCode::kUnavailable);
  req.exclude = nullptr;
  EXPECT_EQ(s->Pick(req)->account().id, "first");
}

TEST_F(SchedulerTest, PriorityThenLeastRecentlyUsed) {
  auto s = Make();
  s->SetAccounts({relay::Make("low", "anthropic", 10), relay::Make("hi1", "anthropic", 1),
                  relay::Make("hi2", "anthropic", 1)});
  std::vector<std::string> picked;
  for (int i = 0; i < 4; ++i) {
    env_.AdvanceMicros(1000);
    auto l = s->Pick(Req());
    ASSERT_TRUE(l.ok());
    picked.push_back(l->account().id);
  }
  EXPECT_EQ(picked, (std::vector<std::string>{"hi1", "hi2", "hi1", "hi2"}));
}

TEST_F(SchedulerTest, WeightedSpreadsByWeight) {
  auto s = Make({.strategy = Strategy::kWeighted});
  Account a = relay::Make("a", "anthropic"), b = relay::Make("b", "anthropic");
  a.weight = 3;
  b.weight = 1;
  s->SetAccounts({a, b});
  std::map<std::string, int> n;
  for (int i = 0; i < 4000; ++i) n[s->Pick(Req())->account().id]++;
  EXPECT_NEAR(n["a"] / 4000.0, 0.75, 0.04);
}

TEST_F(SchedulerTest, LeastBusyAndLatency) {
  auto s = Make({.strategy = Strategy::kLeastBusy});
  s->SetAccounts({relay::Make("a", "anthropic", 1), relay::Make("b", "anthropic", 2)});
  auto first = s->Pick(Req());
  EXPECT_EQ(first->account().id, "a");
  auto second = s->Pick(Req());
  EXPECT_EQ(second->account().id, "b");  // a is busy
  auto lat = Make({.strategy = Strategy::kLatency});
  lat->SetAccounts({relay::Make("a", "anthropic", 1), relay::Make("b", "anthropic", 2)});
  lat->ReportSuccess("a", 300);
  lat->ReportSuccess("b", 50);
  EXPECT_EQ(lat->Pick(Req())->account().id, "b");
  lat->ReportSuccess("b", 2000);  // EWMA moves towards the new samples
  lat->ReportSuccess("b", 2000);
  EXPECT_EQ(lat->Pick(Req())->account().id, "a");
}

TEST_F(SchedulerTest, ConcurrencySlotsAreLeasedAndReturned) {
  auto s = Make();
  Account a = relay::Make("a", "anthropic");
  a.max_concurrency = 1;
  s->SetAccounts({a});
  {
    auto l = s->Pick(Req());
    ASSERT_TRUE(l.ok());
    EXPECT_EQ(s->InFlight("a"), 1);
    EXPECT_EQ(s->Pick(Req()).status().code(), StatusCode::kResourceExhausted);
  }
  EXPECT_EQ(s->InFlight("a"), 0);
  EXPECT_TRUE(s->Pick(Req()).ok());
}

TEST_F(SchedulerTest, StickySessionKeepsItsAccountUntilItBecomesUnusable) {
  auto s = Make({.sticky_ttl = std::chrono::seconds(3600)});
  s->SetAccounts({relay::Make("a", "anthropic", 1), relay::Make("b", "anthropic", 1)});
  std::string first = s->Pick(Req("claude-sonnet-4", "sess1"))->account().id;
  for (int i = 0; i < 5; ++i) {
    env_.AdvanceMicros(kSecond);
    EXPECT_EQ(s->Pick(Req("claude-sonnet-4", "sess1"))->account().id, first);
  }
  // The sticky account dies mid-session (529): the session moves and stays on the new one.
  s->ReportHttpError(first, 529, http::Headers());
  std::string moved = s->Pick(Req("claude-sonnet-4", "sess1"))->account().id;
  EXPECT_NE(moved, first);
  EXPECT_EQ(s->StickyAccount("sess1"), moved);
  // TTL: renewed on use, forgotten after an idle hour.
  env_.AdvanceMicros(3601 * kSecond);
  (void)s->Pick(Req("claude-sonnet-4", "other"));
  EXPECT_EQ(s->StickyAccount("sess1"), "");  // expired after an idle hour, swept
  EXPECT_TRUE(s->Pick(Req("claude-sonnet-4", "sess1")).ok());
}

TEST_F(SchedulerTest, RateLimitResetHeadersSetTheUntilTime) {
  auto s = Make();
  s->SetAccounts({relay::Make("a", "anthropic")});
  int64_t now = env_.NowMicros();
  http::Headers h;
  h.Set("anthropic-ratelimit-tokens-remaining", "0");
  h.Set("anthropic-ratelimit-tokens-reset", auth::FormatRfc3339(now + 120 * kSecond));
  h.Set("anthropic-ratelimit-requests-remaining", "10");
  h.Set("anthropic-ratelimit-requests-reset", auth::FormatRfc3339(now + 900 * kSecond));
  s->ReportHttpError("a", 429, h);
  ASSERT_EQ(changes_.size(), 1u);
  EXPECT_EQ(changes_[0].status, "rate_limited");
  EXPECT_EQ(changes_[0].reason, "window exhausted");
  EXPECT_NEAR(static_cast<double>(changes_[0].until_micros - now), 120.0 * kSecond, kSecond);
  EXPECT_EQ(s->Pick(Req()).status().code(), StatusCode::kUnavailable);
  env_.AdvanceMicros(121 * kSecond);
  auto l = s->Pick(Req());  // recovers by itself
  ASSERT_TRUE(l.ok());
  EXPECT_EQ(changes_.back().status, "active");

  http::Headers short_throttle;
  short_throttle.Set("retry-after", "7");
  s->ReportHttpError("a", 429, short_throttle);
  EXPECT_EQ(changes_.back().reason, "throttled");
  EXPECT_EQ(changes_.back().until_micros - env_.NowMicros(), 7 * kSecond);
  http::Headers openai;
  openai.Set("x-ratelimit-reset-requests", "6m0s");
  openai.Set("x-ratelimit-reset-tokens", "120ms");
  EXPECT_EQ(Scheduler::RateLimitResetMicros(openai, 0), 360 * kSecond);
}

TEST_F(SchedulerTest, OverloadedUnauthorizedAndRepeatedErrors) {
  auto s = Make({.overloaded_for = std::chrono::seconds(300),
                 .error_threshold = 3,
                 .error_window = std::chrono::seconds(60),
                 .error_cooldown = std::chrono::seconds(120)});
  s->SetAccounts({relay::Make("a", "anthropic"), relay::Make("b", "anthropic"),
                  relay::Make("c", "anthropic")});
  s->ReportHttpError("a", 529, http::Headers());
  EXPECT_EQ(changes_.back().status, "overloaded");
  EXPECT_EQ(changes_.back().until_micros - env_.NowMicros(), 300 * kSecond);
  s->ReportHttpError("b", 401, http::Headers());
  EXPECT_EQ(changes_.back().status, "unauthorized");
  EXPECT_EQ(changes_.back().until_micros, 0);
  s->ReportHttpError("c", 500, http::Headers());
  s->ReportTransportError("c");
  EXPECT_EQ(changes_.size(), 2u);  // below the threshold
  s->ReportHttpError("c", 503, http::Headers());
  EXPECT_EQ(changes_.back().status, "error_cooldown");
  EXPECT_EQ(s->Pick(Req()).status().code(), StatusCode::kUnavailable);
  env_.AdvanceMicros(301 * kSecond);
  auto l = s->Pick(Req());
  ASSERT_TRUE(l.ok());
  EXPECT_NE(l->account().id, "b");  // unauthorized needs an operator or a passing test
  s->SetStatus("b", "active", "test passed", 0);
  EXPECT_TRUE(s->Find("b")->UsableAt(env_.NowMicros()));
}

TEST(AccountTest, AliasesAndAllowList) {
  Account a;
  a.models = {"claude-3-5-*"};
  a.model_aliases = {{"sonnet", "claude-sonnet-4-5-20250929"}};
  EXPECT_TRUE(a.AllowsModel("claude-3-5-haiku"));
  EXPECT_TRUE(a.AllowsModel("sonnet"));
  EXPECT_FALSE(a.AllowsModel("gpt-4o"));
  EXPECT_EQ(a.UpstreamModel("sonnet"), "claude-sonnet-4-5-20250929");
  EXPECT_EQ(a.UpstreamModel("claude-3-5-haiku"), "claude-3-5-haiku");
}

}  // namespace
}  // namespace atrium::relay
