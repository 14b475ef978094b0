// Unit tests of the connection read deadline (libs/http/src/read_deadline.h): one timer per
// connection that fires when an armed deadline passes, follows deadlines that move, and stays
// quiet once a read ended.
#include "read_deadline.h"

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <optional>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

namespace atrium::http::internal {
namespace {

namespace net = boost::asio;
using namespace std::chrono_literals;
using Clock = ReadDeadline::Clock;

// Calls `fn` on `ioc`'s thread `after` from now.
template <typename Fn>
std::shared_ptr<net::steady_timer> At(net::io_context& ioc, std::chrono::milliseconds after,
                                      Fn fn) {
  auto timer = std::make_shared<net::steady_timer>(ioc, after);
  timer->async_wait([timer, fn](const boost::system::error_code&) { fn(); });
  return timer;
}

// An io_context, a deadline on it, and what the deadline's expiry action saw.
class ReadDeadlineTest : public ::testing::Test {
 protected:
  // Runs the io_context until it has no work or `limit` passed.
  void RunFor(std::chrono::milliseconds limit) {
    ioc_.run_for(limit);
    ioc_.restart();
  }

  net::io_context ioc_;
  const Clock::time_point start_ = Clock::now();
  int expiries_ = 0;
  std::optional<Clock::time_point> fired_;  // when the action last ran
  ReadDeadline deadline_{ioc_.get_executor(), [this] {
                           ++expiries_;
                           fired_ = Clock::now();
                         }};
};

TEST_F(ReadDeadlineTest, AnArmedDeadlineThatPassesRunsTheActionOnce) {
  deadline_.Arm(start_ + 50ms);
  EXPECT_FALSE(deadline_.expired());
  RunFor(500ms);
  EXPECT_EQ(expiries_, 1);
  EXPECT_TRUE(deadline_.expired());
  ASSERT_TRUE(fired_.has_value());
  EXPECT_GE(*fired_ - start_, 50ms);
  deadline_.Arm(Clock::now() + 1h);  // a new read clears expired()
  EXPECT_FALSE(deadline_.expired());
}

TEST_F(ReadDeadlineTest, ADisarmedDeadlineNeverFires) {
  deadline_.Arm(Clock::now() + 50ms);
  auto t = At(ioc_, 10ms, [&] { deadline_.Disarm(); });
  RunFor(300ms);
  EXPECT_EQ(expiries_, 0);
  EXPECT_FALSE(deadline_.expired());
}

TEST_F(ReadDeadlineTest, ADeadlineMovedLaterIsFollowedWithoutFiringEarly) {
  // Reads of a busy connection: each arms a deadline later than the timer's; the timer wakes at
  // the first, sees the later one, and waits again.
  deadline_.Arm(start_ + 100ms);
  auto a = At(ioc_, 20ms, [&] {
    deadline_.Disarm();
    deadline_.Arm(start_ + 150ms);
  });
  auto b = At(ioc_, 60ms, [&] {
    deadline_.Disarm();
    deadline_.Arm(start_ + 200ms);
  });
  RunFor(1s);
  ASSERT_TRUE(fired_.has_value());
  EXPECT_GE(*fired_ - start_, 200ms);
  EXPECT_LT(*fired_ - start_, 900ms);
}

TEST_F(ReadDeadlineTest, ADeadlineMovedEarlierFiresAtTheEarlierTime) {
  // A pooled connection used first with a long read timeout, then with a short one.
  deadline_.Arm(start_ + 1h);
  deadline_.Disarm();
  deadline_.Arm(start_ + 50ms);
  RunFor(2s);
  ASSERT_TRUE(fired_.has_value());
  EXPECT_GE(*fired_ - start_, 50ms);
  EXPECT_LT(*fired_ - start_, 1s);
}

TEST_F(ReadDeadlineTest, DestroyedWhileWaitingItNeverRunsTheAction) {
  int expiries = 0;
  auto deadline = std::make_unique<ReadDeadline>(ioc_.get_executor(), [&] { ++expiries; });
  deadline->Arm(Clock::now() + 30ms);
  auto t = At(ioc_, 5ms, [&] { deadline.reset(); });
  RunFor(200ms);
  EXPECT_EQ(expiries, 0);
  EXPECT_EQ(deadline, nullptr);
}

}  // namespace
}  // namespace atrium::http::internal
