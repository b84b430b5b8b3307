// SegmentPool (server/src/segment_pool.hpp): what it hands out is nameless, zero-filled, of the
// exact size asked, mode 0600 and owned by us; it stays within its budget whatever sizes are
// asked; drain() gives everything back; link() names a taken segment, once.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <thread>
#include <vector>

#include "segment_pool.hpp"

namespace shmarray::server {
namespace {

using namespace std::chrono_literals;

// Polls `done` until it holds or 10 s pass (the refill thread's progress is what is awaited).
template <class Done>
bool eventually(Done&& done) {
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

class SegmentPoolTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("segment_pool_test." + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::filesystem::path dir_;
};

TEST_F(SegmentPoolTest, NoBudgetMeansNoPool) {
  EXPECT_EQ(SegmentPool::start(dir_, 0), nullptr);
  EXPECT_EQ(SegmentPool::start(dir_, SegmentPool::kClasses * 4096), nullptr);  // < 2 pages each
}

TEST_F(SegmentPoolTest, TakesAreNamelessZeroExactSizeMode0600AndNamedOnlyByLink) {
  auto pool = SegmentPool::start(dir_, 4u << 20);
  ASSERT_NE(pool, nullptr);
  constexpr std::uint64_t kBytes = 3 * 4096;
  EXPECT_FALSE(pool->take(kBytes)) << "nothing is made before a size is asked for";
  // One segment for a new size; each take that finds one doubles what is kept, up to the most.
  for (std::size_t target = 1; target < SegmentPool::kMaxPerClass; target *= 2) {
    ASSERT_TRUE(eventually([&] { return pool->held().segments == target; })) << target;
    ASSERT_TRUE(pool->take(kBytes));
  }
  ASSERT_TRUE(eventually([&] { return pool->held().segments == SegmentPool::kMaxPerClass; }));
  EXPECT_EQ(pool->held().bytes, SegmentPool::kMaxPerClass * kBytes);
  EXPECT_TRUE(std::filesystem::is_empty(dir_)) << "a pooled segment has a name";

  UniqueFd fd = pool->take(kBytes);
  ASSERT_TRUE(fd);
  struct stat st{};
  ASSERT_EQ(::fstat(fd.get(), &st), 0);
  EXPECT_EQ(static_cast<std::uint64_t>(st.st_size), kBytes);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  EXPECT_EQ(st.st_uid, ::geteuid());
  EXPECT_EQ(st.st_nlink, 0u);
  EXPECT_GE(static_cast<std::uint64_t>(st.st_blocks) * 512, kBytes) << "pages not reserved";
  std::vector<char> bytes(kBytes, 1);
  ASSERT_EQ(::pread(fd.get(), bytes.data(), bytes.size(), 0), static_cast<ssize_t>(kBytes));
  EXPECT_EQ(std::count(bytes.begin(), bytes.end(), 0), static_cast<long>(kBytes));

  const std::string path = (dir_ / "named").string();
  ASSERT_TRUE(SegmentPool::link(fd.get(), path));
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_nlink, 1u);
  auto again = SegmentPool::link(fd.get(), path);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code(), ErrorCode::kAlreadyExists);
  // Never reused: another take is another file.
  UniqueFd other = pool->take(kBytes);
  ASSERT_TRUE(other);
  struct stat other_st{};
  ASSERT_EQ(::fstat(other.get(), &other_st), 0);
  EXPECT_NE(other_st.st_ino, st.st_ino);
}

TEST_F(SegmentPoolTest, StaysWithinItsBudgetWhateverSizesAreAskedAndDrainEmptiesIt) {
  constexpr std::uint64_t kBudget = 1u << 20;  // 256 KiB per size
  auto pool = SegmentPool::start(dir_, kBudget);
  ASSERT_NE(pool, nullptr);
  EXPECT_EQ(pool->max_segment_bytes(), kBudget / SegmentPool::kClasses);
  EXPECT_FALSE(pool->take(kBudget / SegmentPool::kClasses + 4096)) << "too big to pool";
  // Eight sizes asked once: only the four most recent are kept, one segment each.
  constexpr std::uint64_t kStep = 16u << 10;
  for (std::uint64_t i = 1; i <= 8; ++i) (void)pool->take(i * kStep);
  ASSERT_TRUE(eventually([&] { return pool->held().segments == 4; }));
  EXPECT_EQ(pool->held().bytes, (5 + 6 + 7 + 8) * kStep);
  // Taken again and again, a size grows to what a quarter of the budget holds: two of 128 KiB.
  for (int i = 0; i < 4; ++i) {
    ASSERT_TRUE(eventually([&] { return pool->take(8 * kStep).get() >= 0; }));
  }
  ASSERT_TRUE(eventually([&] { return pool->held().segments == 3 + 2; }));
  EXPECT_LE(pool->held().bytes, kBudget);
  EXPECT_FALSE(pool->take(kStep)) << "an evicted size is made again, not kept";

  pool->drain();
  EXPECT_EQ(pool->held().segments, 0u);
  EXPECT_EQ(pool->held().bytes, 0u);
  // The next take asks again.
  (void)pool->take(8 * kStep);
  EXPECT_TRUE(eventually([&] { return pool->held().segments > 0; }));
}

}  // namespace
}  // namespace shmarray::server
