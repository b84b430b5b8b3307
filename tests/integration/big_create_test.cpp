// Creates of big arrays reserve their pages off the broker's event loop (server/src/
// segment_reserver.hpp): other clients are served meanwhile, the name is taken at once, and a
// client that hangs up (or a broker that stops) during the reservation leaves no segment behind.
// Readiness: the segment appearing in /dev/shm says the worker has started on it. The arrays are
// 4 GiB (~0.8 s of page reservation on the dev VM) so the reservation is still under way when the
// other requests are made; the pages are released when each test ends.
#include <gtest/gtest.h>
#include <sys/statvfs.h>

#include <chrono>
#include <string>

#include "broker_process.hpp"
#include "process.hpp"
#include "raw_client.hpp"

namespace shmarray::test {
namespace {

using namespace std::chrono_literals;

constexpr std::uint64_t kBigBytes = 4ull << 30;

class BigCreateTest : public BrokerTest {
 protected:
  void SetUp() override {
    struct statvfs fs {};
    if (::statvfs("/dev/shm", &fs) != 0 || fs.f_bavail * fs.f_frsize < 2 * kBigBytes) {
      GTEST_SKIP() << "/dev/shm has less than 8 GiB free: these tests reserve a 4 GiB array";
    }
    BrokerTest::SetUp();
  }

  // Sends a create of a 4 GiB array on `raw` and waits until its segment exists (the worker is
  // reserving its pages).
  void start_big_create(RawClient& raw, const std::string& name) {
    const auto before = broker_->segments().size();
    ASSERT_NE(raw.send(wire::CreateRequest{name, ArraySpec{.dtype = "|u1", .shape = {kBigBytes}}}),
              0u);
    ASSERT_TRUE(eventually([&] { return broker_->segments().size() == before + 1; }, 30s))
        << "the big create never started";
  }
};

TEST_F(BigCreateTest, OtherClientsAreServedWhileABigCreateReservesItsPages) {
  auto client = broker_->client();
  ASSERT_TRUE(client.create("small", ArraySpec{.shape = {4}}));
  auto raw = RawClient::connect(broker_->socket_path());
  ASSERT_TRUE(raw);
  start_big_create(*raw, "big");

  auto stat = client.stat("small");
  ASSERT_TRUE(stat) << stat.error().message();
  auto created = client.create("small2", ArraySpec{.shape = {4}});
  ASSERT_TRUE(created) << created.error().message();
  // Had the reservation run on the event loop, its reply would have been sent before these.
  EXPECT_FALSE(raw->receive(0ms)) << "the big create finished before the small requests";

  auto reply = raw->receive(60s);
  ASSERT_TRUE(reply) << "no reply to the big create";
  ASSERT_EQ(reply->code(), ErrorCode::kOk);
  EXPECT_EQ(reply->header.type, wire::MessageType::kCreateReply);
  EXPECT_EQ(reply->fds.size(), 1u);
  auto big = client.stat("big");
  ASSERT_TRUE(big) << big.error().message();
  EXPECT_EQ(big->nbytes, kBigBytes);
  for (const char* name : {"big", "small", "small2"}) EXPECT_TRUE(client.remove(name)) << name;
}

TEST_F(BigCreateTest, TheNameIsTakenWhileThePagesAreReserved) {
  auto raw = RawClient::connect(broker_->socket_path());
  ASSERT_TRUE(raw);
  start_big_create(*raw, "big");
  auto client = broker_->client();
  auto second = client.create("big", ArraySpec{.shape = {4}});
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().code(), ErrorCode::kAlreadyExists) << second.error().message();
  auto reply = raw->receive(60s);
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->code(), ErrorCode::kOk);
  ASSERT_TRUE(client.remove("big"));
}

TEST_F(BigCreateTest, AClientThatHangsUpDuringTheReservationLeavesNothing) {
  {
    auto raw = RawClient::connect(broker_->socket_path());
    ASSERT_TRUE(raw);
    start_big_create(*raw, "big");
  }  // hung up before the reply
  EXPECT_TRUE(eventually([&] { return broker_->segments().empty(); }, 60s))
      << "the segment of an unanswered create was left behind";
  auto client = broker_->client();
  auto stat = client.stat("big");
  ASSERT_FALSE(stat);
  EXPECT_EQ(stat.error().code(), ErrorCode::kNotFound);
  EXPECT_TRUE(client.create("big", ArraySpec{.shape = {4}})) << "the name is free again";
  ASSERT_TRUE(client.remove("big"));
}

TEST_F(BigCreateTest, ABrokerStoppedDuringTheReservationLeavesNoSegment) {
  auto raw = RawClient::connect(broker_->socket_path());
  ASSERT_TRUE(raw);
  start_big_create(*raw, "big");
  const auto status = broker_->stop(SIGTERM);
  EXPECT_TRUE(status.ok()) << status.describe();
  EXPECT_TRUE(broker_->segments().empty()) << "a segment outlived the broker unrecorded";
  broker_->restart();
  auto client = broker_->client();
  auto stat = client.stat("big");
  ASSERT_FALSE(stat);
  EXPECT_EQ(stat.error().code(), ErrorCode::kNotFound);
}

}  // namespace
}  // namespace shmarray::test
