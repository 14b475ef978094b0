#include "reply_slot.h"

namespace atrium::http {
namespace internal {

void ReplyState::Complete(Response response) {
  std::function<void()> waker;
  {
    std::lock_guard lock(mu_);
    if (done_) return;
    done_ = true;
    response_ = std::move(response);
    waker = std::move(waker_);
    waker_ = nullptr;
  }
  if (waker) waker();
}

bool ReplyState::SetWaker(std::function<void()> waker) {
  std::lock_guard lock(mu_);
  if (done_) return false;
  waker_ = std::move(waker);
  return true;
}

bool ReplyState::done() const {
  std::lock_guard lock(mu_);
  return done_;
}

std::optional<Response> ReplyState::Take() {
  std::lock_guard lock(mu_);
  waker_ = nullptr;
  return std::exchange(response_, std::nullopt);
}

void ReplyState::Abandon() {
  std::lock_guard lock(mu_);
  abandoned_ = true;
  done_ = true;
  waker_ = nullptr;
}

bool ReplyState::abandoned() const {
  std::lock_guard lock(mu_);
  return abandoned_;
}

ReplySlot::~ReplySlot() {
  if (!state_->done()) {
    state_->Complete(Response::FromStatus(Internal("handler finished without a response")));
  }
}

}  // namespace internal

void Responder::Send(Response response) const { slot_->state().Complete(std::move(response)); }

bool Responder::Abandoned() const { return slot_->state().abandoned(); }

}  // namespace atrium::http
