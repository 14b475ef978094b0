#include "atrium/embed/scheduler.h"

#include <gtest/gtest.h>

#include <future>
#include <thread>

#include "atrium/core/metrics.h"
#include "fake_model.h"

namespace atrium::embed {
namespace {

using namespace std::chrono_literals;
using testing::FakeModel;

std::vector<int32_t> Seq(size_t len, int32_t seed = 5) {
  std::vector<int32_t> ids;
  for (size_t i = 0; i < len; ++i) ids.push_back(5 + (seed + static_cast<int32_t>(i)) % 20);
  return ids;
}

// A job whose outcome lands in a future.
struct Pending {
  std::shared_ptr<std::promise<Result<std::vector<CachedVector>>>> promise =
      std::make_shared<std::promise<Result<std::vector<CachedVector>>>>();
  std::future<Result<std::vector<CachedVector>>> future = promise->get_future();
};

EmbedJob Job(std::vector<std::vector<int32_t>> inputs, Pending& p,
             Priority priority = Priority::kNormal) {
  EmbedJob job;
  job.inputs = std::move(inputs);
  job.pooling = infer::Pooling::kMean;
  job.priority = priority;
  job.done = [promise = p.promise](Result<std::vector<CachedVector>> r) {
    promise->set_value(std::move(r));
  };
  return job;
}

TEST(SchedulerTest, ReturnsEachInputsVectorInOrder) {
  FakeModel model;
  ModelScheduler scheduler("fake", model, {}, nullptr, nullptr);
  Pending p;
  std::vector<std::vector<int32_t>> inputs = {Seq(3, 1), Seq(9, 2), Seq(1, 3)};
  ASSERT_TRUE(scheduler.Submit(Job(inputs, p)).ok());
  auto r = p.future.get();
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(*(*r)[i], model.Expected(inputs[i], infer::Pooling::kMean)) << i;
  }
}

TEST(SchedulerTest, ALoneRequestOnAnIdleEngineDoesNotWaitForTheWindow) {
  FakeModel model;
  ModelScheduler scheduler("fake", model, {.max_wait = 5s}, nullptr, nullptr);
  for (int i = 0; i < 3; ++i) {
    Pending p;
    ASSERT_TRUE(scheduler.Submit(Job({Seq(4)}, p)).ok());
    // Far less than the 5 s window, even on a loaded machine.
    ASSERT_EQ(p.future.wait_for(2s), std::future_status::ready) << i;
    // Let the worker go idle again before the next one.
    std::this_thread::sleep_for(20ms);
  }
}

TEST(SchedulerTest, ARequestReachingAnIdleEngineWakesItsThreadsEarly) {
  FakeModel model;
  ModelScheduler scheduler("fake", model, {}, nullptr, nullptr);
  Pending p;
  ASSERT_TRUE(scheduler.Submit(Job({Seq(4)}, p)).ok());
  ASSERT_TRUE(p.future.get().ok());
  EXPECT_EQ(model.prewarms(), 1);
}

TEST(SchedulerTest, SplitsAnOverLargeClientBatch) {
  FakeModel model;
  ModelScheduler scheduler("fake", model, {.max_batch_requests = 4}, nullptr, nullptr);
  Pending p;
  std::vector<std::vector<int32_t>> inputs;
  for (int i = 0; i < 10; ++i) inputs.push_back(Seq(2 + i % 5, i));
  ASSERT_TRUE(scheduler.Submit(Job(inputs, p)).ok());
  auto r = p.future.get();
  ASSERT_TRUE(r.ok());
  for (size_t i = 0; i < inputs.size(); ++i) {
    EXPECT_EQ(*(*r)[i], model.Expected(inputs[i], infer::Pooling::kMean));
  }
  size_t total = 0;
  for (size_t n : model.calls()) {
    EXPECT_LE(n, 4u);
    total += n;
  }
  EXPECT_EQ(total, 10u);
}

TEST(SchedulerTest, BatchesStayWithinTheTokenBudget) {
  FakeModel model;
  ModelScheduler scheduler("fake", model, {.max_batch_tokens = 20}, nullptr, nullptr);
  Pending p;
  std::vector<std::vector<int32_t>> inputs(6, Seq(8));
  ASSERT_TRUE(scheduler.Submit(Job(inputs, p)).ok());
  ASSERT_TRUE(p.future.get().ok());
  for (size_t n : model.calls()) EXPECT_LE(n * 8, 20u);
}

TEST(SchedulerTest, AFullQueueRefusesWithResourceExhausted) {
  FakeModel model;
  MetricsRegistry metrics;
  ModelScheduler scheduler("fake", model, {.max_concurrent_requests = 2}, nullptr, &metrics);
  model.Pause();
  Pending a, b, c;
  ASSERT_TRUE(scheduler.Submit(Job({Seq(3)}, a)).ok());
  model.WaitRunning();
  ASSERT_TRUE(scheduler.Submit(Job({Seq(3)}, b)).ok());
  Status refused = scheduler.Submit(Job({Seq(3)}, c));
  EXPECT_EQ(refused.code(), StatusCode::kResourceExhausted);
  EXPECT_NE(refused.message().find("full"), std::string::npos);
  model.Resume();
  EXPECT_TRUE(a.future.get().ok());
  EXPECT_TRUE(b.future.get().ok());
  EXPECT_NE(metrics.ExpositionText().find("embed_rejected_total{model=\"fake\"} 1"),
            std::string::npos);
}

TEST(SchedulerTest, HigherPriorityAndTierGoFirst) {
  FakeModel model;
  ModelScheduler scheduler("fake", model, {.max_batch_requests = 1, .ageing_per_second = 0},
                           nullptr, nullptr);
  model.Pause();
  Pending blocker;
  ASSERT_TRUE(scheduler.Submit(Job({Seq(2)}, blocker)).ok());
  model.WaitRunning();
  std::mutex mu;
  std::vector<std::string> order;
  auto tracked = [&](const std::string& name, Priority priority, double tier) {
    EmbedJob job;
    job.inputs = {Seq(2)};
    job.priority = priority;
    job.tier_weight = tier;
    job.done = [&, name](Result<std::vector<CachedVector>>) {
      std::lock_guard lock(mu);
      order.push_back(name);
    };
    return job;
  };
  ASSERT_TRUE(scheduler.Submit(tracked("low", Priority::kLow, 1.0)).ok());
  ASSERT_TRUE(scheduler.Submit(tracked("normal-free", Priority::kNormal, 1.0)).ok());
  ASSERT_TRUE(scheduler.Submit(tracked("normal-enterprise", Priority::kNormal, 3.0)).ok());
  ASSERT_TRUE(scheduler.Submit(tracked("critical", Priority::kCritical, 1.0)).ok());
  model.Resume();
  EXPECT_TRUE(blocker.future.get().ok());
  for (int i = 0; i < 200 && scheduler.jobs_in_flight() > 0; ++i) std::this_thread::sleep_for(10ms);
  std::lock_guard lock(mu);
  EXPECT_EQ(order,
            (std::vector<std::string>{"critical", "normal-enterprise", "normal-free", "low"}));
}

TEST(SchedulerTest, AgeingLetsOldLowPriorityWorkOvertake) {
  FakeModel model;
  ModelScheduler scheduler("fake", model, {.max_batch_requests = 1, .ageing_per_second = 1000},
                           nullptr, nullptr);
  model.Pause();
  Pending blocker, old_low, new_high;
  ASSERT_TRUE(scheduler.Submit(Job({Seq(2)}, blocker)).ok());
  model.WaitRunning();
  ASSERT_TRUE(scheduler.Submit(Job({Seq(2)}, old_low, Priority::kLow)).ok());
  std::this_thread::sleep_for(100ms);  // +100 points of age: beats high's 4
  ASSERT_TRUE(scheduler.Submit(Job({Seq(2)}, new_high, Priority::kHigh)).ok());
  model.Resume();
  ASSERT_TRUE(old_low.future.get().ok());
  EXPECT_EQ(new_high.future.wait_for(0s), std::future_status::timeout)
      << "the high-priority job should still be queued or running";
  EXPECT_TRUE(new_high.future.get().ok());
}

TEST(SchedulerTest, AJobPastItsDeadlineFailsWithDeadlineExceeded) {
  FakeModel model;
  MetricsRegistry metrics;
  ModelScheduler scheduler("fake", model, {}, nullptr, &metrics);
  model.Pause();
  Pending blocker, late;
  ASSERT_TRUE(scheduler.Submit(Job({Seq(2)}, blocker)).ok());
  model.WaitRunning();
  EmbedJob job = Job({Seq(2)}, late);
  job.deadline = Clock::now() + 10ms;
  ASSERT_TRUE(scheduler.Submit(std::move(job)).ok());
  std::this_thread::sleep_for(50ms);
  model.Resume();
  EXPECT_TRUE(blocker.future.get().ok());
  EXPECT_EQ(late.future.get().status().code(), StatusCode::kDeadlineExceeded);
  EXPECT_EQ(model.calls().size(), 1u);  // the late job never reached the engine
}

TEST(SchedulerTest, AnAbandonedJobIsDropped) {
  FakeModel model;
  ModelScheduler scheduler("fake", model, {}, nullptr, nullptr);
  model.Pause();
  Pending blocker, gone;
  ASSERT_TRUE(scheduler.Submit(Job({Seq(2)}, blocker)).ok());
  model.WaitRunning();
  EmbedJob job = Job({Seq(2)}, gone);
  job.abandoned = [] { return true; };
  ASSERT_TRUE(scheduler.Submit(std::move(job)).ok());
  model.Resume();
  EXPECT_EQ(gone.future.get().status().code(), StatusCode::kCancelled);
}

TEST(SchedulerTest, CachedInputsSkipTheEngine) {
  FakeModel model;
  ResultCache cache(CachePolicy::kLru, 1 << 20);
  ModelScheduler scheduler("fake", model, {}, &cache, nullptr);
  Pending first, second;
  ASSERT_TRUE(scheduler.Submit(Job({Seq(5, 1), Seq(6, 2)}, first)).ok());
  ASSERT_TRUE(first.future.get().ok());
  size_t calls = model.calls().size();
  ASSERT_TRUE(scheduler.Submit(Job({Seq(6, 2), Seq(5, 1)}, second)).ok());
  auto r = second.future.get();
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(model.calls().size(), calls);
  EXPECT_EQ(*(*r)[0], model.Expected(Seq(6, 2), infer::Pooling::kMean));
  EXPECT_EQ(cache.stats().hits, 2u);
}

TEST(SchedulerTest, AnEngineFailureFailsTheJob) {
  FakeModel model;
  ModelScheduler scheduler("fake", model, {}, nullptr, nullptr);
  model.FailNext(true);
  Pending p;
  ASSERT_TRUE(scheduler.Submit(Job({Seq(2)}, p)).ok());
  EXPECT_EQ(p.future.get().status().code(), StatusCode::kInternal);
  model.FailNext(false);
  Pending q;
  ASSERT_TRUE(scheduler.Submit(Job({Seq(2)}, q)).ok());
  EXPECT_TRUE(q.future.get().ok());
  EXPECT_EQ(scheduler.jobs_in_flight(), 0u);
}

TEST(SchedulerTest, EmptyInputsAreRefused) {
  FakeModel model;
  ModelScheduler scheduler("fake", model, {}, nullptr, nullptr);
  Pending p;
  EXPECT_EQ(scheduler.Submit(Job({}, p)).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(scheduler.Submit(Job({{}}, p)).code(), StatusCode::kInvalidArgument);
}

TEST(SchedulerTest, ShutdownFailsQueuedJobsWithUnavailable) {
  FakeModel model;
  auto scheduler =
      std::make_unique<ModelScheduler>("fake", model, SchedulerOptions{}, nullptr, nullptr);
  model.Pause();
  Pending running, queued;
  ASSERT_TRUE(scheduler->Submit(Job({Seq(2)}, running)).ok());
  model.WaitRunning();
  ASSERT_TRUE(scheduler->Submit(Job({Seq(2)}, queued)).ok());
  std::thread stopper([&] { scheduler.reset(); });
  std::this_thread::sleep_for(20ms);
  model.Resume();
  stopper.join();
  EXPECT_TRUE(running.future.get().ok());
  EXPECT_EQ(queued.future.get().status().code(), StatusCode::kUnavailable);
}

TEST(SchedulerTest, ParsesPrioritiesAndTiers) {
  EXPECT_EQ(*ParsePriority("critical"), Priority::kCritical);
  EXPECT_EQ(*ParsePriority("low"), Priority::kLow);
  EXPECT_EQ(ParsePriority("urgent").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(TierWeight("free"), 1.0);
  EXPECT_EQ(TierWeight("basic"), 1.5);
  EXPECT_EQ(TierWeight("pro"), 2.0);
  EXPECT_EQ(TierWeight("enterprise"), 3.0);
  EXPECT_EQ(TierWeight(""), 1.0);
}

}  // namespace
}  // namespace atrium::embed
