#include "cpu/thread_pool.h"

#include <chrono>

#include "atrium/core/spin.h"

namespace atrium::infer::cpu {
namespace {

// How long a thread polls before blocking on a condition variable. The encoder issues parallel
// loops back to back (a few dozen per forward pass); waking a blocked thread costs tens of
// microseconds, which would dominate the latency of a single short request.
constexpr auto kSpin = std::chrono::microseconds(20);

// Polls `done` for kSpin (then the caller blocks).
template <typename Done>
void SpinBriefly(Done done) {
  (void)SpinUntil(done, std::chrono::steady_clock::now() + kSpin);
}

}  // namespace

ThreadPool::ThreadPool(int threads) {
  for (int i = 1; i < threads; ++i) workers_.emplace_back([this] { WorkerLoop(); });
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
  for (;;) {
    SpinBriefly([&] { return generation_.load(std::memory_order_acquire) != seen; });
    {
      // Taken even after a successful spin: the lock orders fn_ and n_ before their use, and a
      // worker joins a job only while it is open.
      std::unique_lock<std::mutex> lock(mu_);
      wake_.wait(lock, [&] { return generation_.load(std::memory_order_relaxed) != seen; });
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
