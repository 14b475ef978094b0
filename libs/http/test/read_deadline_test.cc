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

// Runs `ioc` until it has no work or `limit` passed.
void RunFor(net::io_context& ioc, std::chrono::milliseconds limit) {
  ioc.run_for(limit);
  ioc.restart();
}

// Calls `fn` on `ioc`'s thread `after` from now.
template <typename Fn>
std::shared_ptr<net::steady_timer> At(net::io_context& ioc, std::chrono::milliseconds after,
                                      Fn fn) {
  auto timer = std::make_shared<net::steady_timer>(ioc, after);
  timer->async_wait([timer, fn](const boost::system::error_code&) { fn(); });
  return timer;
}

TEST(ReadDeadlineTest, AnArmedDeadlineThatPassesRunsTheActionOnce) {
  net::io_context ioc;
  int expiries = 0;
  Clock::time_point fired;
  ReadDeadline deadline(ioc.get_executor(), [&] {
    ++expiries;
    fired = Clock::now();
  });
  auto start = Clock::now();
  deadline.Arm(start + 50ms);
  EXPECT_FALSE(deadline.expired());
  RunFor(ioc, 500ms);
  EXPECT_EQ(expiries, 1);
  EXPECT_TRUE(deadline.expired());
  EXPECT_GE(fired - start, 50ms);
  deadline.Arm(Clock::now() + 1h);  // a new read clears expired()
  EXPECT_FALSE(deadline.expired());
}

TEST(ReadDeadlineTest, ADisarmedDeadlineNeverFires) {
  net::io_context ioc;
  int expiries = 0;
  ReadDeadline deadline(ioc.get_executor(), [&] { ++expiries; });
  deadline.Arm(Clock::now() + 50ms);
  auto t = At(ioc, 10ms, [&] { deadline.Disarm(); });
  RunFor(ioc, 300ms);
  EXPECT_EQ(expiries, 0);
  EXPECT_FALSE(deadline.expired());
}

TEST(ReadDeadlineTest, ADeadlineMovedLaterIsFollowedWithoutFiringEarly) {
  // Reads of a busy connection: each arms a deadline later than the timer's; the timer wakes at
  // the first, sees the later one, and waits again.
  net::io_context ioc;
  std::optional<Clock::time_point> fired;
  ReadDeadline deadline(ioc.get_executor(), [&] { fired = Clock::now(); });
  auto start = Clock::now();
  deadline.Arm(start + 100ms);
  auto a = At(ioc, 20ms, [&] {
    deadline.Disarm();
    deadline.Arm(start + 150ms);
  });
  auto b = At(ioc, 60ms, [&] {
    deadline.Disarm();
    deadline.Arm(start + 200ms);
  });
  RunFor(ioc, 1s);
  ASSERT_TRUE(fired.has_value());
  EXPECT_GE(*fired - start, 200ms);
  EXPECT_LT(*fired - start, 900ms);
}

TEST(ReadDeadlineTest, ADeadlineMovedEarlierFiresAtTheEarlierTime) {
  // A pooled connection used first with a long read timeout, then with a short one.
  net::io_context ioc;
  std::optional<Clock::time_point> fired;
  ReadDeadline deadline(ioc.get_executor(), [&] { fired = Clock::now(); });
  auto start = Clock::now();
  deadline.Arm(start + 1h);
  deadline.Disarm();
  deadline.Arm(start + 50ms);
  RunFor(ioc, 2s);
  ASSERT_TRUE(fired.has_value());
  EXPECT_GE(*fired - start, 50ms);
  EXPECT_LT(*fired - start, 1s);
}

TEST(ReadDeadlineTest, DestroyedWhileWaitingItNeverRunsTheAction) {
  net::io_context ioc;
  int expiries = 0;
  auto deadline = std::make_unique<ReadDeadline>(ioc.get_executor(), [&] { ++expiries; });
  deadline->Arm(Clock::now() + 30ms);
  auto t = At(ioc, 5ms, [&] { deadline.reset(); });
  RunFor(ioc, 200ms);
  EXPECT_EQ(expiries, 0);
  EXPECT_EQ(deadline, nullptr);
}

}  // namespace
}  // namespace atrium::http::internal
