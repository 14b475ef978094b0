// A small persistent thread pool for the CPU engine: `threads - 1` workers plus the calling
// thread run the tasks of one parallel loop. Jobs are serialised (one ParallelFor at a time per
// pool), so a pool never runs more threads than it was built with: no oversubscription, and no
// OpenMP underneath. Idle threads poll for ~20 µs before blocking, so back-to-back loops (a
// forward pass issues dozens) do not pay a wake-up each. A loop waits only for the workers that
// joined it: when the caller has taken every task, a worker that is still waking up is not
// waited for (it finds the job closed).
//
// Thread safety: ParallelFor may be called from any thread; concurrent calls run one after the
// other. It must not be called from inside a task of the same pool.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace atrium::infer::cpu {

class ThreadPool {
 public:
  // `threads` >= 1 is the number of threads a job runs on, the caller included.
  explicit ThreadPool(int threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return static_cast<int>(workers_.size()) + 1; }

  // Runs fn(task) for every task in [0, n), spread over the pool's threads, and returns when all
  // are done. Tasks are handed out in increasing order.
  void ParallelFor(size_t n, const std::function<void(size_t)>& fn);

  // Wakes the workers now and has them poll for the next job for up to `window` before they block
  // again: a caller that knows work is coming (a request has just arrived) hides their wake-up
  // behind its own preparation. Cheap when the workers are already awake.
  void Prewarm(std::chrono::microseconds window);

 private:
  void WorkerLoop();
  void RunTasks();

  std::vector<std::thread> workers_;
  std::mutex job_mu_;  // serialises ParallelFor calls

  std::mutex mu_;
  std::condition_variable wake_;
  std::condition_variable done_;
  // Written under mu_ (generation_ also read without it while spinning):
  std::atomic<uint64_t> generation_{0};  // one step per job (and at shutdown)
  bool stop_ = false;
  const std::function<void(size_t)>* fn_ = nullptr;
  size_t n_ = 0;
  bool open_ = false;  // the current job still admits workers

  // Until when (steady_clock ticks) idle workers poll instead of blocking; set by Prewarm.
  std::atomic<int64_t> poll_until_{0};
  std::atomic<int> sleeping_{0};  // workers blocked on wake_ (or about to block)

  std::atomic<int> active_{0};  // workers that joined the current job and are still in it
  std::atomic<size_t> next_{0};
};

}  // namespace atrium::infer::cpu
