// Bounded spinning before a thread blocks.
//
// For waits that usually end within microseconds (the next batch of a steady publisher, the next
// parallel loop of a forward pass), a futex sleep and wake-up cost more than the wait itself.
// SpinUntil polls instead, pausing the core between looks, and gives up at a deadline so that an
// idle thread never spins for long: the caller then blocks as usual.
#pragma once

#include <chrono>

namespace atrium {

// Tells the core this thread is in a spin loop (x86 `pause`, Arm `yield`).
inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

// Polls `done` until it returns true (then true) or `deadline` passes (then false). The clock is
// read once every 16 looks.
template <typename Done>
bool SpinUntil(Done&& done, std::chrono::steady_clock::time_point deadline) {
  for (int i = 0;; ++i) {
    if (done()) return true;
    CpuRelax();
    if ((i & 15) == 15 && std::chrono::steady_clock::now() >= deadline) return false;
  }
}

}  // namespace atrium
