#include "cpu/thread_pool.h"

#include <algorithm>
#include <chrono>

#include "atrium/core/spin.h"
#include "atrium/core/thread_name.h"

namespace atrium::infer::cpu {
namespace {

// How long a thread polls before blocking on a condition variable. The encoder issues parallel
// loops back to back (a few dozen per forward pass); waking a blocked thread costs tens of
// microseconds, which would dominate the latency of a single short request.
constexpr auto kSpin = std::chrono::microseconds(20);

// Polls `done` for kSpin, or until `until` when that is later (then the caller blocks).
template <typename Done>
void SpinBriefly(Done done, int64_t until = 0) {
  const auto now = std::chrono::steady_clock::now();
  const auto prewarmed =
      std::chrono::steady_clock::time_point(std::chrono::steady_clock::duration(until));
  (void)SpinUntil(done, std::max(now + kSpin, prewarmed));
}

}  // namespace

ThreadPool::ThreadPool(int threads) {
  for (int i = 1; i < threads; ++i) {
    workers_.emplace_back([this, i] {
      SetThreadName("infer-pool-" + std::to_string(i));
      WorkerLoop();
    });
  }
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
    generation_.fetch_add(1, std::memory_order_release);
  }
  wake_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::RunTasks() {
  for (;;) {
    size_t i = next_.fetch_add(1, std::memory_order_relaxed);
    if (i >= n_) return;
    (*fn_)(i);
  }
}

void ThreadPool::WorkerLoop() {
  uint64_t seen = 0;
  auto job_posted = [&] { return generation_.load(std::memory_order_acquire) != seen; };
  for (;;) {
    // Poll briefly, or through a Prewarm window (also one that opened while polling).
    int64_t until = poll_until_.load(std::memory_order_relaxed);
    for (;;) {
      SpinBriefly(job_posted, until);
      const int64_t latest = poll_until_.load(std::memory_order_relaxed);
      if (job_posted() || latest == until ||
          std::chrono::steady_clock::now().time_since_epoch().count() >= latest) {
        break;
      }
      until = latest;
    }
    {
      // Taken even after a successful spin: the lock orders fn_ and n_ before their use, and a
      // worker joins a job only while it is open.
      std::unique_lock<std::mutex> lock(mu_);
      sleeping_.fetch_add(1, std::memory_order_relaxed);
      wake_.wait(lock, [&] { return generation_.load(std::memory_order_relaxed) != seen; });
      sleeping_.fetch_sub(1, std::memory_order_relaxed);
      if (stop_) return;
      seen = generation_.load(std::memory_order_relaxed);
      if (!open_) continue;  // woke too late: the caller finished the job without it
      active_.fetch_add(1, std::memory_order_relaxed);
    }
    RunTasks();
    if (active_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      std::lock_guard<std::mutex> lock(mu_);  // pairs with the caller's predicate check
      done_.notify_one();
    }
  }
}

void ThreadPool::Prewarm(std::chrono::microseconds window) {
  if (workers_.empty()) return;
  const auto until = std::chrono::steady_clock::now() + window;
  poll_until_.store(until.time_since_epoch().count(), std::memory_order_relaxed);
  if (sleeping_.load(std::memory_order_relaxed) == 0) return;  // awake: they see the new window
  {
    // A step without a job (open_ stays false): a sleeping worker wakes, finds nothing to join and
    // polls until `until`. A worker of a job that is running joins it, which is harmless.
    std::lock_guard<std::mutex> lock(mu_);
    generation_.fetch_add(1, std::memory_order_release);
  }
  wake_.notify_all();
}

void ThreadPool::ParallelFor(size_t n, const std::function<void(size_t)>& fn) {
  if (n == 0) return;
  if (workers_.empty() || n == 1) {
    for (size_t i = 0; i < n; ++i) fn(i);
    return;
  }
  std::lock_guard<std::mutex> job(job_mu_);
  {
    std::lock_guard<std::mutex> lock(mu_);
    fn_ = &fn;
    n_ = n;
    next_.store(0, std::memory_order_relaxed);
    open_ = true;
    generation_.fetch_add(1, std::memory_order_release);
  }
  wake_.notify_all();
  RunTasks();
  // Every task is taken. The job waits only for the workers that joined it: one still waking up
  // (on a core the hypervisor parked, that takes far longer than the loop) finds it closed.
  SpinBriefly([&] { return active_.load(std::memory_order_acquire) == 0; });
  std::unique_lock<std::mutex> lock(mu_);
  open_ = false;
  done_.wait(lock, [&] { return active_.load(std::memory_order_acquire) == 0; });
  fn_ = nullptr;
}

}  // namespace atrium::infer::cpu
