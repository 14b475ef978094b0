#include "atrium/embed/scheduler.h"

#include <algorithm>
#include <cstring>

#include "atrium/core/metrics.h"
#include "atrium/core/thread_name.h"

namespace atrium::embed {

namespace {

// How long the engine's pool threads poll for the batch of a request that reached an idle engine
// (the scheduler thread's wake-up plus a lone request's preparation fit well within it).
constexpr auto kPrewarmWindow = std::chrono::microseconds(1000);

}  // namespace

// One job's progress. Fields after `job` are guarded by the scheduler's mu_ until the job
// completes; the worker fills `results` outside the lock only for items it owns.
struct ModelScheduler::JobState {
  EmbedJob job;
  Clock::time_point enqueued;
  std::vector<CachedVector> results;
  std::vector<size_t> todo;  // indexes of inputs still to run, in order
  size_t next = 0;           // next position in todo to hand to a batch
  size_t outstanding = 0;    // inputs handed out or not yet run
  size_t tokens_left = 0;    // tokens of todo[next...]
  bool finished = false;     // done was called (failure, or all results in)
};

Result<Priority> ParsePriority(std::string_view name) {
  if (name == "critical") return Priority::kCritical;
  if (name == "high") return Priority::kHigh;
  if (name == "normal") return Priority::kNormal;
  if (name == "low") return Priority::kLow;
  return InvalidArgument("priority: expected critical, high, normal or low, got '" +
                         std::string(name) + "'");
}

double PriorityWeight(Priority priority) {
  switch (priority) {
    case Priority::kCritical:
      return 8;
    case Priority::kHigh:
      return 4;
    case Priority::kNormal:
      return 2;
    case Priority::kLow:
      return 1;
  }
  return 2;
}

double TierWeight(std::string_view tier) {
  if (tier == "basic") return 1.5;
  if (tier == "pro") return 2.0;
  if (tier == "enterprise") return 3.0;
  return 1.0;
}

ModelScheduler::ModelScheduler(std::string model_name, const infer::EmbeddingModel& model,
                               SchedulerOptions options, ResultCache* cache,
                               MetricsRegistry* metrics)
    : name_(std::move(model_name)),
      model_(model),
      options_(options),
      cache_(cache),
      hidden_(static_cast<size_t>(model.info().hidden_size)) {
  if (metrics != nullptr) {
    auto label = std::initializer_list<std::string_view>{name_};
    tokens_total_ =
        &metrics->Counter("embed_tokens_total", "Tokens run through the encoder", {"model"})
             .WithLabels(label);
    sequences_total_ =
        &metrics->Counter("embed_sequences_total", "Sequences run through the encoder", {"model"})
             .WithLabels(label);
    rejected_total_ = &metrics
                           ->Counter("embed_rejected_total",
                                     "Requests refused because the queue was full", {"model"})
                           .WithLabels(label);
    expired_total_ = &metrics
                          ->Counter("embed_expired_total",
                                    "Requests dropped past their deadline or abandoned", {"model"})
                          .WithLabels(label);
    batch_sequences_ = &metrics
                            ->Histogram("embed_batch_size", "Sequences per engine batch", {"model"},
                                        {1, 2, 4, 8, 16, 32, 64, 128, 256, 512})
                            .WithLabels(label);
    batch_tokens_ = &metrics
                         ->Histogram("embed_batch_tokens", "Tokens per engine batch", {"model"},
                                     {16, 64, 256, 1024, 2048, 4096, 8192, 16384, 32768})
                         .WithLabels(label);
    inference_seconds_ =
        &metrics->Histogram("embed_inference_seconds", "Encoder time per batch", {"model"})
             .WithLabels(label);
    queue_seconds_ =
        &metrics
             ->Histogram("embed_queue_seconds",
                         "Time from submission to the start of a job's first batch", {"model"})
             .WithLabels(label);
    queue_depth_ =
        &metrics->Gauge("embed_queue_depth", "Requests queued or running per model", {"model"})
             .WithLabels(label);
  }
  worker_ = std::thread([this] {
    SetThreadName("embed-batcher");
    Run();
  });
}

ModelScheduler::~ModelScheduler() {
  std::deque<std::shared_ptr<JobState>> left;
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  worker_.join();
  {
    std::lock_guard lock(mu_);
    left.swap(pending_);
  }
  for (auto& job : left) {
    if (!job->finished) {
      job->finished = true;
      job->job.done(Unavailable("the embedding model " + name_ + " is shutting down"));
    }
  }
}

std::string ModelScheduler::CacheKey(std::span<const int32_t> ids, infer::Pooling pooling) const {
  std::string key;
  key.reserve(name_.size() + 2 + ids.size() * sizeof(int32_t));
  key.append(name_);
  key.push_back('\0');
  key.push_back(static_cast<char>(pooling));
  key.append(reinterpret_cast<const char*>(ids.data()), ids.size() * sizeof(int32_t));
  return key;
}

size_t ModelScheduler::jobs_in_flight() const {
  std::lock_guard lock(mu_);
  return in_flight_;
}

Status ModelScheduler::Submit(EmbedJob job) {
  if (job.inputs.empty()) return InvalidArgument("input: at least one input is required");
  for (const auto& ids : job.inputs) {
    if (ids.empty()) return InvalidArgument("input: empty inputs cannot be embedded");
  }
  auto state = std::make_shared<JobState>();
  state->results.resize(job.inputs.size());
  std::vector<size_t> misses;
  std::vector<std::string> miss_keys;
  for (size_t i = 0; i < job.inputs.size(); ++i) {
    if (cache_ != nullptr && cache_->enabled()) {
      std::string key = CacheKey(job.inputs[i], job.pooling);
      if (auto hit = cache_->Get(key)) {
        state->results[i] = std::move(hit);
        continue;
      }
      if (cache_->second_tier() != nullptr) miss_keys.push_back(std::move(key));
    }
    misses.push_back(i);
  }
  if (!miss_keys.empty()) {
    // One round trip to the shared tier for everything the local cache lacked.
    std::vector<CachedVector> found = cache_->second_tier()->GetMany(miss_keys);
    for (size_t m = 0; m < misses.size(); ++m) {
      if (m < found.size() && found[m] != nullptr && found[m]->size() == hidden_) {
        cache_->Put(miss_keys[m], found[m]);
        state->results[misses[m]] = std::move(found[m]);
      }
    }
  }
  for (size_t i : misses) {
    if (state->results[i] != nullptr) continue;
    state->todo.push_back(i);
    state->tokens_left += job.inputs[i].size();
  }
  state->outstanding = state->todo.size();
  if (state->todo.empty()) {
    job.done(std::move(state->results));
    return Status::Ok();
  }
  state->job = std::move(job);
  bool idle = false;
  {
    std::lock_guard lock(mu_);
    if (stopping_) return Unavailable("the embedding model " + name_ + " is shutting down");
    if (in_flight_ >= options_.max_concurrent_requests) {
      if (rejected_total_ != nullptr) rejected_total_->Inc();
      return ResourceExhausted("the embedding queue of model " + name_ + " is full (" +
                               std::to_string(options_.max_concurrent_requests) +
                               " requests); retry later");
    }
    state->enqueued = Clock::now();
    ++in_flight_;
    if (queue_depth_ != nullptr) queue_depth_->Inc();
    pending_tokens_ += state->tokens_left;
    pending_.push_back(std::move(state));
    idle = !busy_ && pending_.size() == 1;
  }
  cv_.notify_one();
  // A request reaching an idle engine: its pool threads wake now, alongside the scheduler thread,
  // rather than one after the other (each wake-up of a parked vCPU costs up to a millisecond).
  if (idle) model_.Prewarm(kPrewarmWindow);
  return Status::Ok();
}

double ModelScheduler::Score(const JobState& job, Clock::time_point now) const {
  double waited = std::chrono::duration<double>(now - job.enqueued).count();
  return PriorityWeight(job.job.priority) * job.job.tier_weight +
         waited * options_.ageing_per_second;
}

std::vector<ModelScheduler::Item> ModelScheduler::PickBatch(
    Clock::time_point now, std::vector<std::shared_ptr<JobState>>& failed) {
  // Drop what can no longer be answered usefully.
  for (auto it = pending_.begin(); it != pending_.end();) {
    JobState& job = **it;
    bool expired = now >= job.job.deadline;
    bool gone = job.job.abandoned && job.job.abandoned();
    if (expired || gone) {
      pending_tokens_ -= job.tokens_left;
      job.tokens_left = 0;
      failed.push_back(*it);
      it = pending_.erase(it);
    } else {
      ++it;
    }
  }
  // Best jobs first; equal scores keep arrival order.
  std::vector<std::shared_ptr<JobState>> order(pending_.begin(), pending_.end());
  std::stable_sort(order.begin(), order.end(),
                   [&](const auto& a, const auto& b) { return Score(*a, now) > Score(*b, now); });
  std::vector<Item> batch;
  size_t tokens = 0;
  for (auto& job : order) {
    // One pooling per engine call: the best job's.
    if (!batch.empty() && job->job.pooling != batch.front().job->job.pooling) continue;
    while (job->next < job->todo.size() && batch.size() < options_.max_batch_requests) {
      size_t index = job->todo[job->next];
      size_t len = job->job.inputs[index].size();
      // A sequence longer than the budget still runs, alone.
      if (!batch.empty() && tokens + len > options_.max_batch_tokens) break;
      if (job->next == 0 && queue_seconds_ != nullptr) {
        queue_seconds_->Observe(std::chrono::duration<double>(now - job->enqueued).count());
      }
      batch.push_back(Item{job, index});
      tokens += len;
      job->tokens_left -= len;
      pending_tokens_ -= len;
      ++job->next;
    }
    if (batch.size() >= options_.max_batch_requests || tokens >= options_.max_batch_tokens) break;
    if (job->next < job->todo.size()) break;  // the budget is used up
  }
  // Jobs with nothing left to hand out leave the queue (they stay in flight until done).
  std::erase_if(pending_, [](const auto& job) { return job->next >= job->todo.size(); });
  std::sort(batch.begin(), batch.end(), [](const Item& a, const Item& b) {
    return a.job->job.inputs[a.index].size() < b.job->job.inputs[b.index].size();
  });
  return batch;
}

void ModelScheduler::Run() {
  std::unique_lock lock(mu_);
  while (true) {
    cv_.wait(lock, [this] { return stopping_ || !pending_.empty(); });
    if (stopping_) return;
    if (busy_ && pending_tokens_ < options_.max_batch_tokens / 2) {
      // Right after a batch, with little queued: give other requests a short window to join.
      Clock::time_point oldest = Clock::time_point::max();
      for (const auto& job : pending_) oldest = std::min(oldest, job->enqueued);
      cv_.wait_until(lock, oldest + options_.max_wait, [this] {
        return stopping_ || pending_tokens_ >= options_.max_batch_tokens / 2;
      });
      if (stopping_) return;
    }
    std::vector<std::shared_ptr<JobState>> failed;
    std::vector<Item> batch = PickBatch(Clock::now(), failed);
    for (auto& job : failed) {
      if (job->finished) continue;
      job->finished = true;
      --in_flight_;
      if (queue_depth_ != nullptr) queue_depth_->Dec();
      if (expired_total_ != nullptr) expired_total_->Inc();
      bool expired = Clock::now() >= job->job.deadline;
      lock.unlock();
      job->job.done(expired ? DeadlineExceeded("the request's deadline passed before the "
                                               "embedding finished")
                            : Cancelled("the client went away"));
      lock.lock();
    }
    if (batch.empty()) {
      busy_ = false;
      continue;
    }
    lock.unlock();
    RunBatch(batch);
    lock.lock();
    // Only work that arrived while the engine ran waits for the batching window.
    busy_ = !pending_.empty();
  }
}

void ModelScheduler::RunBatch(std::vector<Item>& batch) {
  std::vector<infer::TokenSequence> seqs;
  seqs.reserve(batch.size());
  size_t tokens = 0;
  for (const Item& item : batch) {
    const auto& ids = item.job->job.inputs[item.index];
    seqs.push_back(infer::TokenSequence{.ids = ids, .type_ids = {}});
    tokens += ids.size();
  }
  std::vector<float> out(batch.size() * hidden_);
  auto start = Clock::now();
  Status status = model_.Embed(seqs, batch.front().job->job.pooling, out);
  double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  if (inference_seconds_ != nullptr) {
    inference_seconds_->Observe(seconds);
    batch_sequences_->Observe(static_cast<double>(batch.size()));
    batch_tokens_->Observe(static_cast<double>(tokens));
    tokens_total_->Inc(tokens);
    sequences_total_->Inc(batch.size());
  }

  std::vector<std::shared_ptr<JobState>> completed;
  {
    std::lock_guard lock(mu_);
    for (size_t i = 0; i < batch.size(); ++i) {
      JobState& job = *batch[i].job;
      if (job.finished) continue;
      if (!status.ok()) {
        job.finished = true;
        --in_flight_;
        if (queue_depth_ != nullptr) queue_depth_->Dec();
        pending_tokens_ -= job.tokens_left;
        job.tokens_left = 0;
        std::erase_if(pending_, [&](const auto& j) { return j.get() == &job; });
        completed.push_back(batch[i].job);
        continue;
      }
      auto vec = std::make_shared<std::vector<float>>(out.begin() + i * hidden_,
                                                      out.begin() + (i + 1) * hidden_);
      job.results[batch[i].index] = vec;
      if (--job.outstanding == 0) {
        job.finished = true;
        --in_flight_;
        if (queue_depth_ != nullptr) queue_depth_->Dec();
        completed.push_back(batch[i].job);
      }
    }
  }
  if (status.ok() && cache_ != nullptr && cache_->enabled()) {
    std::vector<std::string> keys;
    std::vector<CachedVector> values;
    for (const Item& item : batch) {
      const auto& result = item.job->results[item.index];
      if (!result) continue;
      keys.push_back(CacheKey(item.job->job.inputs[item.index], item.job->job.pooling));
      values.push_back(result);
      cache_->Put(keys.back(), result);
    }
    if (cache_->second_tier() != nullptr) cache_->second_tier()->PutMany(keys, values);
  }
  for (auto& job : completed) {
    if (status.ok()) {
      job->job.done(std::move(job->results));
    } else {
      job->job.done(status);
    }
  }
}

}  // namespace atrium::embed
