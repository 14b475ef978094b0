// A deadline for a connection's reads that costs two stores per read.
//
// Beast's basic_stream schedules a timer when each operation starts and cancels it when the
// operation ends: a heap insertion and removal under the reactor's lock, and the cancelled wait's
// completion is one more handler for the I/O thread to run. For a relay that reads twice per
// request this was ~6 % of its throughput. Here one timer per connection stays waiting, and is
// moved only when a read's deadline comes earlier than the time it waits for; reads with the same
// timeout move their deadline later, so the timer fires about once per timeout. When it fires it
// looks at the deadline: past, the expiry action runs (it cancels the connection's socket, and the
// read completes with operation_aborted); later, it waits again; none (the read ended), it stops
// until the next Arm.
//
// Single-threaded: every call, and the expiry action, on the connection's executor.
#pragma once

#include <boost/asio/any_io_executor.hpp>

#include <chrono>
#include <functional>
#include <memory>

namespace atrium::http::internal {

class ReadDeadline {
 public:
  using Clock = std::chrono::steady_clock;

  // `on_expiry` runs on `executor` when an armed deadline passes; never after destruction.
  ReadDeadline(const boost::asio::any_io_executor& executor, std::function<void()> on_expiry);
  ~ReadDeadline();
  ReadDeadline(const ReadDeadline&) = delete;
  ReadDeadline& operator=(const ReadDeadline&) = delete;

  // The read about to start must end by `deadline`. Clears expired().
  void Arm(Clock::time_point deadline);
  // The read ended: no expiry until the next Arm.
  void Disarm();
  // Whether the expiry action ran since the last Arm: a read that failed with operation_aborted
  // then timed out.
  bool expired() const;

  struct State;  // the timer and the deadline (read_deadline.cc)

 private:
  std::shared_ptr<State> state_;  // shared only so that the timer's handler can see it is gone
};

}  // namespace atrium::http::internal
