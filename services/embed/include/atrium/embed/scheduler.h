// The embed service's scheduler: one bounded priority queue and one batching worker per model.
//
// A job is one client request: any number of token sequences (over-large client batches are not
// rejected; their sequences are spread over as many engine batches as needed). Jobs are ordered
// by score = class weight (critical 8, high 4, normal 2, low 1) x the API key's tier weight
// (free 1.0, basic 1.5, pro 2.0, enterprise 3.0) + ageing (points per second waited), so higher
// classes go first and nothing starves. The worker fills a batch with the best jobs' sequences
// up to `max_batch_tokens` tokens and `max_batch_requests` sequences, then sorts it by length.
// When the engine is idle a new job runs at once; only right after a batch, with less than half
// a batch queued, does the worker wait up to `max_wait` (from the oldest queued job's arrival)
// for more work. Jobs past their deadline fail with DeadlineExceeded (HTTP 504) before their
// remaining sequences run; jobs whose client went away are dropped the same way (Cancelled).
// Cached sequences (ResultCache) never reach the queue.
//
// Thread-safe: Submit may be called from any thread; callbacks run on the model's worker thread
// (or on the submitting thread when everything was cached or the job was refused).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "atrium/core/status.h"
#include "atrium/embed/result_cache.h"
#include "atrium/infer/embedding_model.h"

namespace atrium {
class MetricsRegistry;
class Counter;
class Gauge;
class Histogram;
}  // namespace atrium

namespace atrium::embed {

enum class Priority { kCritical, kHigh, kNormal, kLow };

// "critical", "high", "normal", "low"; InvalidArgument otherwise.
Result<Priority> ParsePriority(std::string_view name);
double PriorityWeight(Priority priority);
// Tier weight of an API key's tier; unknown or empty tiers count as "free" (1.0).
double TierWeight(std::string_view tier);

struct SchedulerOptions {
  size_t max_concurrent_requests = 512;  // jobs queued or running; beyond → ResourceExhausted
  size_t max_batch_tokens = 16384;
  size_t max_batch_requests = 256;  // sequences per engine batch
  std::chrono::microseconds max_wait{2000};
  double ageing_per_second = 2.0;  // score added per second a job waits
};

using Clock = std::chrono::steady_clock;

struct EmbedJob {
  std::vector<std::vector<int32_t>> inputs;  // token ids of each sequence, special tokens included
  infer::Pooling pooling = infer::Pooling::kCls;
  Priority priority = Priority::kNormal;
  double tier_weight = 1.0;
  Clock::time_point deadline = Clock::time_point::max();
  // Polled before each batch: true once the client is gone (the job is then dropped).
  std::function<bool()> abandoned;
  // Called once: the pooled, unnormalized vectors in input order, or the error.
  std::function<void(Result<std::vector<CachedVector>>)> done;
};

class ModelScheduler {
 public:
  // `model` and `cache` (may be null) must outlive the scheduler; `metrics` may be null.
  ModelScheduler(std::string model_name, const infer::EmbeddingModel& model,
                 SchedulerOptions options, ResultCache* cache, MetricsRegistry* metrics);
  // Stops the worker; queued jobs fail with Unavailable.
  ~ModelScheduler();
  ModelScheduler(const ModelScheduler&) = delete;
  ModelScheduler& operator=(const ModelScheduler&) = delete;

  // Queues `job`. ResourceExhausted (job.done not called) when max_concurrent_requests jobs are
  // already queued or running; InvalidArgument for a job without inputs or with an empty input.
  Status Submit(EmbedJob job);

  size_t jobs_in_flight() const;
  const std::string& model_name() const { return name_; }
  const SchedulerOptions& options() const { return options_; }

  // Cache key of one sequence of this model.
  std::string CacheKey(std::span<const int32_t> ids, infer::Pooling pooling) const;

 private:
  struct JobState;
  struct Item {
    std::shared_ptr<JobState> job;
    size_t index;
  };

  void Run();
  // Picks the next batch (mu_ held); fails expired/abandoned jobs into `failed`.
  std::vector<Item> PickBatch(Clock::time_point now,
                              std::vector<std::shared_ptr<JobState>>& failed);
  void RunBatch(std::vector<Item>& batch);
  double Score(const JobState& job, Clock::time_point now) const;

  const std::string name_;
  const infer::EmbeddingModel& model_;
  const SchedulerOptions options_;
  ResultCache* const cache_;
  const size_t hidden_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<JobState>> pending_;  // guarded by mu_; jobs with sequences left
  size_t in_flight_ = 0;                           // guarded by mu_
  size_t pending_tokens_ = 0;                      // guarded by mu_
  bool stopping_ = false;                          // guarded by mu_
  bool busy_ = false;                              // guarded by mu_: a batch just ran

  Counter* tokens_total_ = nullptr;
  Counter* sequences_total_ = nullptr;
  Counter* rejected_total_ = nullptr;
  Counter* expired_total_ = nullptr;
  Histogram* batch_sequences_ = nullptr;
  Histogram* batch_tokens_ = nullptr;
  Histogram* inference_seconds_ = nullptr;
  Histogram* queue_seconds_ = nullptr;
  Gauge* queue_depth_ = nullptr;

  std::thread worker_;
};

}  // namespace atrium::embed
