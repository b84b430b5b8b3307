// The segment pool (server/src/segment_pool.hpp) against a real broker: a create served from the
// pool gets a segment indistinguishable from a fresh one (zero bytes, size, owner, mode, a name
// only its array has); pool segments never appear in /dev/shm and none survives a stop, a crash
// and restart, or --gc; quotas count arrays exactly as without a pool; a full /dev/shm drains the
// pool before a create is refused. Which segment came from the pool is proven by inode: the
// pool's nameless files are the broker's descriptors that /proc shows as "/dev/shm/#<ino>".
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <set>
#include <thread>

#include "broker_process.hpp"
#include "private_dev_shm.hpp"
#include "shmarray/socket_path.hpp"

namespace shmarray::test {
namespace {

using namespace std::chrono_literals;

// Inodes of the nameless tmpfs files the broker `pid` holds: its pool.
std::set<ino_t> pool_inodes(pid_t pid) {
  std::set<ino_t> inodes;
  const std::string fd_dir = "/proc/" + std::to_string(pid) + "/fd";
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(fd_dir, ec)) {
    std::error_code link_ec;
    const std::string target = std::filesystem::read_symlink(entry.path(), link_ec).string();
    if (link_ec || target.rfind("/dev/shm/#", 0) != 0) continue;
    struct stat st{};
    if (::stat(entry.path().c_str(), &st) == 0 && st.st_nlink == 0) inodes.insert(st.st_ino);
  }
  return inodes;
}

// Waits (10 s at most) until the broker's pool holds at least `n` segments.
std::set<ino_t> await_pool(pid_t pid, std::size_t n) {
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  for (;;) {
    auto inodes = pool_inodes(pid);
    if (inodes.size() >= n || std::chrono::steady_clock::now() > deadline) return inodes;
    std::this_thread::sleep_for(2ms);
  }
}

std::string segment_path(const BrokerProcess& broker, const ArrayInfo& info) {
  return "/dev/shm" + segment_prefix(broker.socket_path()) + info.id;
}

// Inodes of every file in /dev/shm now.
std::set<ino_t> dev_shm_inodes() {
  std::set<ino_t> inodes;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/dev/shm", ec)) {
    struct stat st{};
    if (::stat(entry.path().c_str(), &st) == 0) inodes.insert(st.st_ino);
  }
  return inodes;
}

void stop_cleanly(BrokerProcess& broker) {
  const ExitStatus status = broker.stop(SIGTERM);
  EXPECT_TRUE(status.ok()) << "shmarrayd on SIGTERM: " << status.describe();
  EXPECT_TRUE(broker.segments().empty()) << broker.segments().size() << " segment(s) left";
}

TEST(SegmentPool, APooledCreateIsZeroSizedOwnedAndNamedLikeAFreshOne) {
  BrokerProcess broker;
  auto client = broker.client();
  const ArraySpec spec{.dtype = "<f8", .shape = {1024}};  // 8 KiB of data: a 12 KiB segment
  auto fresh = client.create("fresh", spec);  // the pool learns the size from this one
  ASSERT_TRUE(fresh) << fresh.error().message();
  const auto pool = await_pool(broker.pid(), 1);
  ASSERT_FALSE(pool.empty()) << "the pool made nothing within 10 s";
  EXPECT_EQ(broker.segments().size(), 1u) << "a pooled segment has a name in /dev/shm";

  auto pooled = client.create("pooled", spec);
  ASSERT_TRUE(pooled) << pooled.error().message();
  struct stat fresh_st{}, pooled_st{};
  ASSERT_EQ(::stat(segment_path(broker, fresh->info()).c_str(), &fresh_st), 0);
  ASSERT_EQ(::stat(segment_path(broker, pooled->info()).c_str(), &pooled_st), 0);
  EXPECT_TRUE(pool.contains(pooled_st.st_ino)) << "the create did not take a pooled segment";
  EXPECT_FALSE(pool.contains(fresh_st.st_ino));
  EXPECT_NE(pooled->info().id, fresh->info().id);
  // Indistinguishable from the fresh one: type, mode, owner, group, size, reserved pages, one name.
  EXPECT_EQ(pooled_st.st_mode, fresh_st.st_mode);
  EXPECT_EQ(pooled_st.st_mode & 07777, 0600u);
  EXPECT_EQ(pooled_st.st_uid, fresh_st.st_uid);
  EXPECT_EQ(pooled_st.st_gid, fresh_st.st_gid);
  EXPECT_EQ(pooled_st.st_size, fresh_st.st_size);
  EXPECT_EQ(static_cast<std::uint64_t>(pooled_st.st_size), pooled->info().segment_bytes);
  EXPECT_EQ(pooled_st.st_blocks, fresh_st.st_blocks);
  EXPECT_EQ(pooled_st.st_nlink, 1u);
  // Zero bytes, through the creator's mapping and through another process's open.
  const auto bytes = pooled->bytes();
  EXPECT_EQ(std::count(bytes.begin(), bytes.end(), std::byte{0}),
            static_cast<long>(bytes.size()));
  auto reader = broker.client();
  auto opened = reader.open("pooled", Access::kReadOnly);
  ASSERT_TRUE(opened) << opened.error().message();
  EXPECT_EQ(opened->info().id, pooled->info().id);
  EXPECT_EQ(opened->info().version, 0u);
  // The creator's descriptor is the segment's name, as for a fresh one (tools show the array).
  (*pooled->as<double>())[0] = 2.5;
  EXPECT_EQ((*opened->as<const double>())[0], 2.5);
  const auto stat = client.stat("pooled");
  ASSERT_TRUE(stat);
  EXPECT_EQ(stat->owner_uid, ::geteuid());
  EXPECT_EQ(stat->mode, fresh->info().mode);
  ASSERT_TRUE(client.remove("fresh"));
  ASSERT_TRUE(client.remove("pooled"));
  stop_cleanly(broker);
}

TEST(SegmentPool, NoPoolSegmentIsLeftAfterAStopACrashAndRestartOrGc) {
  BrokerProcess broker;
  {
    auto client = broker.client();
    ASSERT_TRUE(client.create("kept", ArraySpec{.shape = {16}}));
    ASSERT_EQ(await_pool(broker.pid(), 1).size(), 1u);
    // Served from the pool, which then keeps two of that size.
    ASSERT_TRUE(client.create("eph", ArraySpec{.shape = {16}, .ephemeral = true}));
    const auto pool = await_pool(broker.pid(), 2);
    ASSERT_GE(pool.size(), 2u);
    EXPECT_EQ(broker.segments().size(), 2u);
    broker.stop(SIGKILL);  // a crash: nothing of the broker's runs after this
    const auto left = dev_shm_inodes();
    for (const ino_t ino : pool) EXPECT_FALSE(left.contains(ino)) << "pool inode " << ino << " left";
  }
  EXPECT_EQ(broker.segments().size(), 2u) << "the arrays, and nothing else";
  broker.restart();
  std::set<ino_t> pool;
  {
    auto client = broker.client();
    auto listed = client.list();
    ASSERT_TRUE(listed);
    ASSERT_EQ(listed->size(), 1u) << "recovery adopted something that is not an array";
    ASSERT_TRUE(client.create("again", ArraySpec{.shape = {16}}));
    pool = await_pool(broker.pid(), 1);
    ASSERT_FALSE(pool.empty());
    EXPECT_EQ(broker.segments().size(), 2u);
  }
  const ExitStatus status = broker.stop(SIGTERM);
  EXPECT_TRUE(status.ok()) << status.describe();
  const auto left = dev_shm_inodes();
  for (const ino_t ino : pool) EXPECT_FALSE(left.contains(ino)) << "pool inode " << ino << " left";
  EXPECT_EQ(broker.segments().size(), 2u);
  const RunResult gc = run({SHMARRAYD_PATH, "--gc", "--socket", broker.socket_path(),
                            "--log-level", "warn"}, 30s);
  EXPECT_TRUE(gc.status.ok()) << gc.status.describe();
  EXPECT_NE(gc.out.find("removed 0 segment(s), 2 valid array(s) kept, 0 left alone"),
            std::string::npos) << gc.out;
  broker.restart();
  {
    auto client = broker.client();
    ASSERT_TRUE(client.remove("kept"));
    ASSERT_TRUE(client.remove("again"));
  }
  stop_cleanly(broker);
}

// --max-bytes-per-user of exactly three small arrays: three creates fit (from the pool, which
// meanwhile holds more segments than the quota allows), the fourth is refused, and a remove makes
// room for exactly one more. The same with the pool turned off.
TEST(SegmentPool, QuotasCountTheArraysOnlyWithOrWithoutThePool) {
  const ArraySpec spec{.dtype = "|u1", .shape = {4096}};  // an 8 KiB segment
  for (const char* pool_bytes : {"4M", "0"}) {
    SCOPED_TRACE(std::string("--segment-pool-bytes ") + pool_bytes);
    BrokerProcess broker({"--max-bytes-per-user", std::to_string(3 * 8192), "--segment-pool-bytes",
                          pool_bytes});
    const bool pooling = std::string(pool_bytes) != "0";
    auto client = broker.client();
    ASSERT_TRUE(client.create("q0", spec));
    if (pooling) {
      // Each create the pool serves doubles what it keeps of the size (1, 2, 4, 8).
      for (std::size_t held = 1; held <= 4; held *= 2) {
        ASSERT_GE(await_pool(broker.pid(), held).size(), held);
        ASSERT_TRUE(client.create("warm", spec));
        ASSERT_TRUE(client.remove("warm"));
      }
      EXPECT_GE(await_pool(broker.pid(), 4).size(), 4u) << "the pool holds more than the quota";
    } else {
      EXPECT_TRUE(pool_inodes(broker.pid()).empty()) << "--segment-pool-bytes 0 still pools";
    }
    ASSERT_TRUE(client.create("q1", spec));
    ASSERT_TRUE(client.create("q2", spec));
    auto refused = client.create("q3", spec);
    ASSERT_FALSE(refused);
    EXPECT_EQ(refused.error().code(), ErrorCode::kResourceExhausted);
    EXPECT_NE(refused.error().message().find("--max-bytes-per-user"), std::string::npos)
        << refused.error().message();
    EXPECT_EQ(broker.segments().size(), 3u);
    ASSERT_TRUE(client.remove("q1"));
    ASSERT_TRUE(client.create("q3", spec));
    EXPECT_FALSE(client.create("q4", spec));
    for (const char* name : {"q0", "q2", "q3"}) ASSERT_TRUE(client.remove(name));
    stop_cleanly(broker);
  }
}

// In a 16 MiB /dev/shm of its own, the broker's pool holds 2 MiB (two 1 MiB segments) beside a
// 1 MiB array; a 13.5 MiB create fits only in what the pool gives back, and succeeds.
TEST(SegmentPool, AFullDevShmDrainsThePoolBeforeACreateIsRefused) {
  const auto in_small_shm = private_dev_shm("16m");
  if (!in_small_shm) GTEST_SKIP() << in_small_shm.error();
  BrokerProcess broker({"--max-bytes", std::to_string(1ull << 30), "--segment-pool-bytes", "8M"},
                       {}, *in_small_shm);
  auto client = broker.client();
  const ArraySpec small{.dtype = "|u1", .shape = {(1u << 20) - 4096}};  // a 1 MiB segment
  ASSERT_TRUE(client.create("small", small));
  ASSERT_EQ(await_pool(broker.pid(), 1).size(), 1u) << "the pool made nothing";
  ASSERT_TRUE(client.create("warm", small));  // from the pool, which then keeps two
  ASSERT_TRUE(client.remove("warm"));
  ASSERT_EQ(await_pool(broker.pid(), 2).size(), 2u) << "the pool did not fill";
  // 16 MiB - 1 MiB (small) - 2 MiB (pool) = 13 MiB free: this needs the pool's pages back.
  const ArraySpec big{.dtype = "|u1", .shape = {(27u << 19) - 4096}};  // 13.5 MiB segment
  auto created = client.create("big", big);
  ASSERT_TRUE(created) << created.error().message();
  (*created->as<std::uint8_t>())[0] = 1;
  ASSERT_TRUE(client.remove("big"));
  ASSERT_TRUE(client.remove("small"));
  stop_cleanly(broker);
}

}  // namespace
}  // namespace shmarray::test
