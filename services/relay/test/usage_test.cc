// Usage extraction (responses and streams, interrupted streams), pricing and the budget ledger
// (reservations under concurrency, period windows).
#include <gtest/gtest.h>

#include <boost/json.hpp>

#include <atomic>
#include <limits>
#include <thread>

#include "atrium/core/fault_env.h"
#include "atrium/relay/budget.h"
#include "atrium/relay/usage.h"

namespace atrium::relay {
namespace {

TEST(UsageTest, ReadsAnthropicAndOpenAIResponses) {
  std::string stop;
  Usage a = UsageFromResponse(
      ApiFormat::kAnthropic,
      R"({"stop_reason":"end_turn","usage":{"input_tokens":10,"cache_creation_input_tokens":5,"cache_read_input_tokens":7,"output_tokens":3}})",
      &stop);
  EXPECT_EQ(a.input_tokens, 10);
  EXPECT_EQ(a.cache_write_tokens, 5);
  EXPECT_EQ(a.cache_read_tokens, 7);
  EXPECT_EQ(a.output_tokens, 3);
  EXPECT_EQ(stop, "end_turn");
  Usage o = UsageFromResponse(
      ApiFormat::kOpenAI,
      R"({"choices":[{"finish_reason":"length"}],"usage":{"prompt_tokens":20,"completion_tokens":4,"prompt_tokens_details":{"cached_tokens":8}}})",
      &stop);
  EXPECT_EQ(o.input_tokens, 12);
  EXPECT_EQ(o.cache_read_tokens, 8);
  EXPECT_EQ(o.output_tokens, 4);
  EXPECT_EQ(stop, "length");
}

TEST(UsageTest, StreamUsageComesFromTheStreamOrTheDeliveredText) {
  StreamUsageTracker t(ApiFormat::kAnthropic);
  t.OnEvent(
      {"message_start",
       R"({"type":"message_start","message":{"usage":{"input_tokens":25,"output_tokens":1}}})"});
  t.OnEvent(
      {"content_block_delta",
       R"({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"0123456789abcdef"}})"});
  // Events that carry nothing billable change nothing (and are not parsed).
  t.OnEvent({"ping", R"({"type": "ping"})"});
  t.OnEvent(
      {"content_block_start",
       R"({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}})"});
  t.OnEvent({"content_block_stop", R"({"type":"content_block_stop","index":0})"});
  // Interrupted here: output is estimated from 16 delivered characters.
  EXPECT_EQ(t.usage().input_tokens, 25);
  EXPECT_EQ(t.usage().output_tokens, 4);
  EXPECT_FALSE(t.completed());
  t.OnEvent(
      {"message_delta",
       R"({"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":9}})"});
  t.OnEvent({"message_stop", R"({"type":"message_stop"})"});
  EXPECT_EQ(t.usage().output_tokens, 9);
  EXPECT_EQ(t.stop_reason(), "end_turn");
  EXPECT_TRUE(t.completed());

  StreamUsageTracker o(ApiFormat::kOpenAI);
  o.OnEvent({"", R"({"choices":[{"delta":{"content":"abcdefgh"},"finish_reason":null}]})"});
  EXPECT_EQ(o.usage().output_tokens, 2);
  o.OnEvent({"", R"({"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":3}})"});
  o.OnEvent({"", "[DONE]"});
  EXPECT_EQ(o.usage().input_tokens, 5);
  EXPECT_EQ(o.usage().output_tokens, 3);
  EXPECT_TRUE(o.completed());
}

TEST(UsageTest, RecordRoundTripsThroughJson) {
  UsageRecord r;
  r.key_id = "key_1";
  r.usage = Usage{1, 2, 3, 4, true};
  r.cost = 0.5;
  r.streamed = true;
  r.stop_reason = "end_turn";
  auto back = UsageRecord::FromJson(r.ToJson());
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->key_id, "key_1");
  EXPECT_EQ(back->usage.cache_read_tokens, 4);
  EXPECT_DOUBLE_EQ(back->cost, 0.5);
  EXPECT_TRUE(back->streamed);
}

TEST(UsageTest, RecordJsonEscapesTextAndKeepsEveryNumberExactly) {
  UsageRecord r;
  r.time_micros = 1'765'000'000'123'456;
  r.request_id = "req\"1\\";
  r.error = "upstream said \"no\"\n\ttab \x01 \xC3\xA9";
  r.client_model = "claude-sonnet-4";
  r.usage = Usage{-1, 9'007'199'254'740'993, 0, 7, false};
  r.cost = 0.1 + 0.2;  // not the shortest decimal of 0.3
  r.status = 502;
  r.latency_ms = 12;
  r.ttfb_ms = -1;
  r.attempts = 3;
  std::string text = r.ToJson();
  // A JSON object any parser reads: quotes, backslashes and control characters escaped.
  boost::system::error_code ec;
  auto parsed = boost::json::parse(text, ec);
  ASSERT_FALSE(ec) << text;
  EXPECT_EQ(parsed.at("error").as_string(), "upstream said \"no\"\n\ttab \x01 \xC3\xA9");
  auto back = UsageRecord::FromJson(text);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->time_micros, r.time_micros);
  EXPECT_EQ(back->request_id, r.request_id);
  EXPECT_EQ(back->error, r.error);
  EXPECT_EQ(back->usage.input_tokens, -1);
  EXPECT_EQ(back->usage.output_tokens, 9'007'199'254'740'993);
  EXPECT_FALSE(back->usage.reported);
  EXPECT_EQ(back->cost, r.cost);  // exactly the same double
  EXPECT_EQ(back->status, 502);
  EXPECT_EQ(back->ttfb_ms, -1);
  EXPECT_EQ(back->attempts, 3);
  EXPECT_FALSE(back->streamed);
  // A cost that is not a number is written as 0 (JSON has no NaN).
  r.cost = std::numeric_limits<double>::quiet_NaN();
  EXPECT_EQ(UsageRecord::FromJson(r.ToJson())->cost, 0);
}

TEST(PricingTest, BundledTableMostSpecificPatternAndCachePrices) {
  auto t = PriceTable::FromJson(BundledPricingJson());
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ(t->Find("gpt-4o-mini-2024-07-18")->pattern, "gpt-4o-mini*");
  EXPECT_EQ(t->Find("gpt-4o")->pattern, "gpt-4o");
  // 1M input at $3, 1M output at $15, 1M cache writes at $3.75, 1M cache reads at $0.30.
  Usage u{1'000'000, 1'000'000, 1'000'000, 1'000'000, true};
  EXPECT_NEAR(t->Cost("claude-sonnet-4-5-20250929", u), 3 + 15 + 3.75 + 0.3, 1e-9);
  EXPECT_NEAR(t->Cost("claude-sonnet-4-5-20250929", u, 0.5), (3 + 15 + 3.75 + 0.3) / 2, 1e-9);
  EXPECT_EQ(t->Cost("unknown-model", u), 0);
  auto over = PriceTable::FromJson(R"({"models":{"claude-sonnet-4*":{"input":1,"output":1}}})");
  ASSERT_TRUE(over.ok());
  t->Merge(*over);
  EXPECT_NEAR(t->Cost("claude-sonnet-4-5", Usage{1'000'000, 0, 0, 0, true}), 1, 1e-9);
  EXPECT_FALSE(PriceTable::FromJson(R"({"models":{"x":{"input":-1}}})").ok());
}

TEST(PricingTest, MostSpecificMatchWinsWhateverTheOrderAndTiesGoToTheEarlierEntry) {
  auto t = PriceTable::FromJson(R"({"models":{
    "*":{"input":1},
    "claude-*":{"input":2},
    "claude-sonnet-?-5*":{"input":3},
    "claude-sonnet-4-5*":{"input":4},
    "claude-sonnet-4-5-20250929":{"input":5},
    "claude-haiku-4-5*":{"input":6},
    "claude-haiku-?-5*":{"input":7}}})");
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ(t->Find("claude-sonnet-4-5-20250929")->input, 5);  // exact
  EXPECT_EQ(t->Find("claude-sonnet-4-5-20260101")->input, 4);  // one wildcard, longer
  EXPECT_EQ(t->Find("claude-sonnet-5-5")->input, 2);           // fewer wildcards first, then length
  EXPECT_EQ(t->Find("claude-opus")->input, 2);
  EXPECT_EQ(t->Find("gpt-4o")->input, 1);
  EXPECT_EQ(t->Find("claude-haiku-4-5")->input, 6);  // fewer wildcards beats the same length
  // An override of an existing pattern keeps its place; a new, more specific one wins at once.
  t->Set(ModelPrice{.pattern = "claude-*", .input = 20});
  t->Set(ModelPrice{.pattern = "claude-opus*", .input = 30});
  EXPECT_EQ(t->Find("claude-haiku")->input, 20);
  EXPECT_EQ(t->Find("claude-opus-4")->input, 30);
  EXPECT_DOUBLE_EQ(PriceTable::CostAt(t->Find("claude-opus-4"), Usage{1'000'000, 0, 0, 0, true}),
                   30);
  EXPECT_EQ(PriceTable::CostAt(nullptr, Usage{1'000'000, 0, 0, 0, true}), 0);
}

TEST(PricingTest, RememberedAnswersFollowChangesAndCopiesAndManyNames) {
  auto t = PriceTable::FromJson(R"({"models":{"claude-*":{"input":2}}})");
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ(t->Find("gpt-4o"), nullptr);  // remembered as no match
  EXPECT_EQ(t->Find("claude-opus")->input, 2);
  PriceTable copy = *t;  // shares the remembered answers, which hold for its equal prices
  t->Set(ModelPrice{.pattern = "gpt-*", .input = 3});
  t->Set(ModelPrice{.pattern = "claude-opus", .input = 4});
  EXPECT_EQ(t->Find("gpt-4o")->input, 3);
  EXPECT_EQ(t->Find("claude-opus")->input, 4);
  EXPECT_EQ(copy.Find("gpt-4o"), nullptr);
  EXPECT_EQ(copy.Find("claude-opus")->input, 2);
  // The answer is the copy's own entry, not the original's.
  EXPECT_GE(copy.Find("claude-opus"), copy.prices().data());
  EXPECT_LT(copy.Find("claude-opus"), copy.prices().data() + copy.prices().size());
  // More names than are remembered: the answers stay right.
  for (int i = 0; i < 10'000; ++i) {
    std::string name = (i % 2 ? "claude-" : "other-") + std::to_string(i);
    const ModelPrice* p = t->Find(name);
    if (i % 2) {
      ASSERT_NE(p, nullptr) << name;
      EXPECT_EQ(p->input, 2);
    } else {
      EXPECT_EQ(p, nullptr) << name;
    }
  }
  EXPECT_EQ(t->Find("claude-opus")->input, 4);
}

TEST(BudgetTest, PeriodStartsAreUtcBoundaries) {
  // 2026-11-22T10:00:00Z is a Sunday.
  int64_t t = 1'795'341'600'000'000;
  EXPECT_EQ(BudgetLedger::DayStart(t), 1'795'305'600'000'000);
  EXPECT_EQ(BudgetLedger::WeekStart(t), 1'794'787'200'000'000);   // Monday 2026-11-16
  EXPECT_EQ(BudgetLedger::MonthStart(t), 1'793'491'200'000'000);  // 2026-11-01
  // Months at their edges: the last microsecond of a leap February, the first instant of
  // December and its last second, and a month before the epoch.
  EXPECT_EQ(BudgetLedger::MonthStart(1'835'481'599'999'999), 1'832'976'000'000'000);  // 2028-02-01
  EXPECT_EQ(BudgetLedger::MonthStart(1'796'083'200'000'000), 1'796'083'200'000'000);  // 2026-12-01
  EXPECT_EQ(BudgetLedger::MonthStart(1'798'761'599'000'000), 1'796'083'200'000'000);
  EXPECT_EQ(BudgetLedger::MonthStart(-43'200'000'000), -2'678'400'000'000);  // 1969-12-01
}

TEST(BudgetTest, ConcurrentRequestsNeverOverspendByMoreThanOneRequest) {
  FaultInjectionEnv env(Env::Default());
  BudgetLedger ledger(env, [](const std::string&, int64_t) { return Result<double>(0.0); });
  KeyBudget budget{.daily = 10.0};
  std::atomic<int> admitted{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 50; ++i) {
    threads.emplace_back([&] {
      auto r = ledger.Reserve("k", budget, 1.0);  // worst case 1.0, real cost 1.0
      if (!r.ok()) return;
      ++admitted;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
      ledger.Commit(*r, 1.0);
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_LE(ledger.SpentOf("k").daily, 10.0 + 1.0);
  EXPECT_GE(admitted.load(), 1);
  // Spent: the next request is refused with the budget named.
  while (ledger.SpentOf("k").daily < 10.0) {
    auto r = ledger.Reserve("k", budget, 1.0);
    ASSERT_TRUE(r.ok());
    ledger.Commit(*r, 1.0);
  }
  auto refused = ledger.Reserve("k", budget, 1.0);
  EXPECT_EQ(refused.status().code(), StatusCode::kResourceExhausted);
  EXPECT_NE(refused.status().message().find("daily budget"), std::string::npos);
}

TEST(BudgetTest, ConcurrencyLimitAndLoadedSpending) {
  FaultInjectionEnv env(Env::Default());
  BudgetLedger ledger(env, [](const std::string&, int64_t since) {
    return Result<double>(since == 0 ? 99.5 : 0.0);  // spent earlier, in total
  });
  KeyBudget budget{.total = 100.0, .max_concurrency = 2};
  auto a = ledger.Reserve("k", budget, 0.1);
  auto b = ledger.Reserve("k", budget, 0.1);
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(ledger.Reserve("k", budget, 0.1).status().code(), StatusCode::kResourceExhausted);
  ledger.Commit(*a, 0.1);
  ledger.Commit(*b, 0.5);
  EXPECT_NEAR(ledger.SpentOf("k").total, 100.1, 1e-9);
  EXPECT_FALSE(ledger.Reserve("k", budget, 0.1).ok());
}

}  // namespace
}  // namespace atrium::relay
