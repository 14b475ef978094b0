#include "read_deadline.h"

#include <boost/asio/steady_timer.hpp>

#include <utility>

namespace atrium::http::internal {

namespace net = boost::asio;

struct ReadDeadline::State {
  State(const net::any_io_executor& executor, std::function<void()> action)
      : timer(executor), on_expiry(std::move(action)) {}

  net::steady_timer timer;
  std::function<void()> on_expiry;
  Clock::time_point deadline = Clock::time_point::max();  // max: disarmed
  bool waiting = false;                                   // the timer waits, until its expiry()
  bool expired = false;
  uint64_t generation = 0;  // of the wait in progress; a cancelled wait's handler is older
};

namespace {

void Wait(const std::shared_ptr<ReadDeadline::State>& state);

void OnTimer(const std::weak_ptr<ReadDeadline::State>& weak, uint64_t generation) {
  std::shared_ptr<ReadDeadline::State> state = weak.lock();
  if (state == nullptr || generation != state->generation) return;  // gone, or moved earlier
  state->waiting = false;
  if (state->deadline == ReadDeadline::Clock::time_point::max()) return;  // read ended
  if (ReadDeadline::Clock::now() < state->deadline) {
    Wait(state);  // the deadline moved later while the timer waited
    return;
  }
  state->deadline = ReadDeadline::Clock::time_point::max();
  state->expired = true;
  state->on_expiry();
}

void Wait(const std::shared_ptr<ReadDeadline::State>& state) {
  state->waiting = true;
  state->timer.expires_at(state->deadline);  // cancels a wait in progress (an older generation)
  state->timer.async_wait([weak = std::weak_ptr(state), generation = ++state->generation](
                              const boost::system::error_code&) { OnTimer(weak, generation); });
}

}  // namespace

ReadDeadline::ReadDeadline(const net::any_io_executor& executor, std::function<void()> on_expiry)
    : state_(std::make_shared<State>(executor, std::move(on_expiry))) {}

// The timer's destruction cancels its wait; the handler then finds the state gone.
ReadDeadline::~ReadDeadline() = default;

void ReadDeadline::Arm(Clock::time_point deadline) {
  state_->deadline = deadline;
  state_->expired = false;
  if (!state_->waiting || deadline < state_->timer.expiry()) Wait(state_);
}

void ReadDeadline::Disarm() { state_->deadline = Clock::time_point::max(); }

bool ReadDeadline::expired() const { return state_->expired; }

}  // namespace atrium::http::internal
