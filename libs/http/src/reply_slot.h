// Private: the shared state between a Responder and the connection waiting for its response.
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <optional>

#include "atrium/http/handler.h"

namespace atrium::http::internal {

// Where the response of one request lands. Thread-safe.
class ReplyState {
 public:
  // `request` is kept alive as long as a Responder or the connection holds this state, so a
  // handler still running after a route timeout never sees a dangling Request.
  explicit ReplyState(std::shared_ptr<const void> request) : request_(std::move(request)) {}

  // Stores the first response; later ones are dropped. Wakes the waiting connection.
  void Complete(Response response);
  // Installs the waker; returns false (and installs nothing) when already complete.
  bool SetWaker(std::function<void()> waker);
  bool done() const;
  std::optional<Response> Take();
  void Abandon();
  bool abandoned() const;

 private:
  std::shared_ptr<const void> request_;
  mutable std::mutex mu_;
  std::optional<Response> response_;  // guarded by mu_
  bool done_ = false;                 // guarded by mu_
  bool abandoned_ = false;            // guarded by mu_
  std::function<void()> waker_;       // guarded by mu_
};

// What Responders share: completes the request with a 500 if all copies die without Send.
class ReplySlot {
 public:
  explicit ReplySlot(std::shared_ptr<ReplyState> state) : state_(std::move(state)) {}
  ~ReplySlot();
  ReplySlot(const ReplySlot&) = delete;
  ReplySlot& operator=(const ReplySlot&) = delete;
  ReplyState& state() { return *state_; }

 private:
  std::shared_ptr<ReplyState> state_;
};

}  // namespace atrium::http::internal
