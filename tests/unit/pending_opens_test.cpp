// PendingOpens: parked opens found by name, by deadline and by connection, within their caps.
#include "pending_opens.hpp"

#include <gtest/gtest.h>

namespace shmarray::server {
namespace {

using Clock = PendingOpens::Clock;
using namespace std::chrono_literals;

PendingOpens::Parked parked(std::string name, SessionId session, std::uint64_t request,
                            Clock::time_point deadline) {
  return PendingOpens::Parked{std::move(name), session, request, Access::kReadOnly, 1000,
                              deadline};
}

TEST(PendingOpens, TakeNamedReturnsOnlyThatNameInParkingOrder) {
  PendingOpens p({});
  const auto t = Clock::now() + 1h;
  p.park(parked("a", 1, 10, t));
  p.park(parked("b", 1, 11, t));
  p.park(parked("a", 2, 12, t - 1s));
  p.park(parked("a", 1, 13, t));
  const auto woken = p.take_named("a");
  ASSERT_EQ(woken.size(), 3u);
  EXPECT_EQ(woken[0].request_id, 10u);
  EXPECT_EQ(woken[1].request_id, 12u);
  EXPECT_EQ(woken[2].request_id, 13u);
  EXPECT_EQ(woken[1].session, 2u);
  EXPECT_EQ(woken[0].name, "a");
  EXPECT_EQ(p.size(), 1u);
  EXPECT_EQ(p.count_of(1), 1u);
  EXPECT_EQ(p.count_of(2), 0u);
  EXPECT_TRUE(p.take_named("a").empty());
  EXPECT_EQ(p.next_deadline(), t);
}

TEST(PendingOpens, TakeExpiredReturnsThoseDueInDeadlineOrder) {
  PendingOpens p({});
  const auto t = Clock::now();
  p.park(parked("late", 1, 1, t + 10s));
  p.park(parked("soon", 1, 2, t + 1s));
  p.park(parked("sooner", 2, 3, t + 1s));  // an equal deadline is kept apart
  p.park(parked("now", 3, 4, t));
  EXPECT_EQ(p.next_deadline(), t);
  const auto due = p.take_expired(t + 1s);
  ASSERT_EQ(due.size(), 3u);
  EXPECT_EQ(due[0].name, "now");
  EXPECT_EQ(due[1].name, "soon");
  EXPECT_EQ(due[2].name, "sooner");
  EXPECT_EQ(p.next_deadline(), t + 10s);
  EXPECT_EQ(p.size(), 1u);
  EXPECT_TRUE(p.take_named("soon").empty());
}

TEST(PendingOpens, DropSessionForgetsOnlyThatConnectionsOpensInEveryIndex) {
  PendingOpens p({});
  const auto t = Clock::now();
  for (int i = 0; i < 100; ++i) p.park(parked("n" + std::to_string(i % 7), 1, i, t + 1s));
  p.park(parked("n0", 2, 500, t + 2s));
  EXPECT_EQ(p.drop_session(1), 100u);
  EXPECT_EQ(p.drop_session(1), 0u);
  EXPECT_EQ(p.size(), 1u);
  EXPECT_EQ(p.count_of(1), 0u);
  EXPECT_EQ(p.next_deadline(), t + 2s);
  const auto woken = p.take_named("n0");
  ASSERT_EQ(woken.size(), 1u);
  EXPECT_EQ(woken[0].session, 2u);
  EXPECT_FALSE(p.next_deadline());
}

TEST(PendingOpens, CapacityPerConnectionAndInTotalNamesTheOption) {
  PendingOpens p(PendingOpens::Limits{.max_total = 3, .max_per_connection = 2});
  const auto t = Clock::now() + 1h;
  ASSERT_TRUE(p.check_capacity(1));
  p.park(parked("a", 1, 1, t));
  p.park(parked("b", 1, 2, t));
  auto mine = p.check_capacity(1);
  ASSERT_FALSE(mine);
  EXPECT_EQ(mine.error().code(), ErrorCode::kResourceExhausted);
  EXPECT_NE(mine.error().message().find("--max-parked-opens-per-connection"), std::string::npos);
  ASSERT_TRUE(p.check_capacity(2));
  p.park(parked("c", 2, 3, t));
  auto all = p.check_capacity(3);
  ASSERT_FALSE(all);
  EXPECT_NE(all.error().message().find("--max-parked-opens"), std::string::npos);
  EXPECT_EQ(all.error().message().find("per-connection"), std::string::npos);
  (void)p.take_named("a");
  EXPECT_TRUE(p.check_capacity(1));
  EXPECT_EQ(p.take_all().size(), 2u);
  EXPECT_EQ(p.size(), 0u);
  EXPECT_TRUE(p.check_capacity(1));
}

}  // namespace
}  // namespace shmarray::server
