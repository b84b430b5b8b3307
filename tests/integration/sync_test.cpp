// Synchronisation across real processes: publish/wait ping-pong, a writer killed holding the
// lock, and seqlock reads racing a writer.
#include <gtest/gtest.h>

#include <chrono>
#include <csignal>

#include "broker_process.hpp"

namespace shmarray::test {
namespace {

using namespace std::chrono_literals;

class SyncTest : public BrokerTest {};

TEST_F(SyncTest, TenThousandPingPongRoundTripsSeeEveryVersionInOrder) {
  auto client = broker_->client();
  ASSERT_TRUE(client.create("pp", ArraySpec{.shape = {1}}));
  auto even = spawn_helper({"pingpong", broker_->socket_path(), "pp", "10000", "even"});
  auto odd = spawn_helper({"pingpong", broker_->socket_path(), "pp", "10000", "odd"});
  const ExitStatus a = odd.wait(100s);
  const ExitStatus b = even.wait(100s);
  EXPECT_TRUE(a.ok()) << a.describe();
  EXPECT_TRUE(b.ok()) << b.describe();
  EXPECT_EQ(client.stat("pp")->version, 20000u);
  ASSERT_TRUE(client.remove("pp"));
}

TEST_F(SyncTest, WriterKilledHoldingTheLockIsReportedToTheNextLocker) {
  auto client = broker_->client();
  auto a = client.create("locked", ArraySpec{.dtype = "|u1", .shape = {4096}});
  ASSERT_TRUE(a);
  ASSERT_TRUE(a->publish());
  auto writer = spawn_helper({"lock-and-hang", broker_->socket_path(), "locked"});
  ASSERT_EQ(writer.read_line(10s), std::optional<std::string>("locked"));
  EXPECT_EQ(a->try_lock().error().code(), ErrorCode::kDeadlineExceeded);
  writer.kill(SIGKILL);
  writer.wait(5s);

  auto lock = a->lock(5s);
  ASSERT_TRUE(lock) << lock.error().message();
  EXPECT_TRUE(lock->previous_owner_died());
  EXPECT_TRUE(a->possibly_torn());
  auto reader = client.open("locked", Access::kReadOnly);
  EXPECT_TRUE(reader->possibly_torn());  // readers can tell too
  ASSERT_TRUE(a->publish());  // the new owner rewrote it
  EXPECT_FALSE(reader->possibly_torn());
  ASSERT_TRUE(lock->unlock());
  auto next = a->lock(1s);
  ASSERT_TRUE(next);
  EXPECT_FALSE(next->previous_owner_died());
  ASSERT_TRUE(next->unlock());
  ASSERT_TRUE(client.remove("locked"));
}

TEST_F(SyncTest, ConsistentReadsNeverSeeAHalfWrittenMegabyte) {
  auto client = broker_->client();
  ASSERT_TRUE(client.create("seq", ArraySpec{.dtype = "<u8", .shape = {131072}}));  // 1 MiB
  auto writer = spawn_helper({"seq-writer", broker_->socket_path(), "seq", "2000", "100"});
  auto r1 = spawn_helper({"seq-reader", broker_->socket_path(), "seq", "2000"});
  auto r2 = spawn_helper({"seq-reader", broker_->socket_path(), "seq", "2000"});
  for (auto* child : {&writer, &r1, &r2}) {
    const std::string out = child->read_all(30s);
    const ExitStatus st = child->wait(10s);
    EXPECT_TRUE(st.ok()) << st.describe() << " " << out;
    EXPECT_NE(out.find("torn=0"), std::string::npos) << out;
    std::printf("%s", out.c_str());
  }
  ASSERT_TRUE(client.remove("seq"));
}

TEST_F(SyncTest, WaitTimesOutCloseToTheRequestedTime) {
  auto client = broker_->client();
  auto a = client.create("quiet", ArraySpec{.shape = {1}});
  ASSERT_TRUE(a);
  const auto start = std::chrono::steady_clock::now();
  auto r = a->wait_newer_than(0, 200ms);
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(r.error().code(), ErrorCode::kDeadlineExceeded);
  EXPECT_GE(took, 200ms);
  EXPECT_LT(took, 5s);  // not a deadline ignored; a generous margin for TSan on 2 vCPUs
  ASSERT_TRUE(client.remove("quiet"));
}

}  // namespace
}  // namespace shmarray::test
