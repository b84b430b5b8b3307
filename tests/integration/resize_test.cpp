// Segments resized by a writer (docs/security.md, "Sizes"): any process granted write access
// holds a descriptor it may ftruncate. The broker never maps a segment and checks its size at
// every touch: grown segments are cut back, shrunk ones make their array damaged (kDataLoss),
// never a signal in the broker or in a client. The attacks here run as root in the test process
// (security_test.cpp repeats them as another user with a read-write grant).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <numeric>
#include <vector>

#include "broker_process.hpp"
#include "shmarray/socket_path.hpp"
#include "shmarray/unique_fd.hpp"

namespace shmarray::test {
namespace {

using namespace std::chrono_literals;

class ResizeTest : public BrokerTest {
 protected:
  // /dev/shm path of array `id`'s segment.
  std::string segment_path(const std::string& id) const {
    return "/dev/shm" + segment_prefix(broker_->socket_path()) + id;
  }
  // What a writer holding a descriptor can do: ftruncate the segment to `bytes`.
  void resize(const std::string& id, std::uint64_t bytes) const {
    UniqueFd fd(::shm_open((segment_prefix(broker_->socket_path()) + id).c_str(),
                           O_RDWR | O_CLOEXEC, 0));
    ASSERT_TRUE(fd) << id;
    ASSERT_EQ(::ftruncate(fd.get(), static_cast<off_t>(bytes)), 0);
  }
  std::uint64_t size_of(const std::string& id) const {
    return std::filesystem::file_size(segment_path(id));
  }
  // The CLI, stdout and stderr together; its exit status (a signal would show as 128+N).
  RunResult cli(const std::string& args) const {
    return run({"/bin/sh", "-c",
                std::string(SHMARRAY_CLI_PATH) + " --socket " + broker_->socket_path() + " " +
                    args + " 2>&1"},
               20s);
  }
};

class TruncatedTest : public ResizeTest, public ::testing::WithParamInterface<std::uint64_t> {};

TEST_P(TruncatedTest, ArrayIsDamagedEverywhereAndTheBrokerKeepsServing) {
  auto client = broker_->client();
  auto victim = client.create("victim", ArraySpec{.shape = {1024}, .mode = 0666});
  ASSERT_TRUE(victim);
  const std::string id = victim->info().id;
  ASSERT_TRUE(client.create("other", ArraySpec{.shape = {16}}));
  resize(id, GetParam());

  // chmod used to map the header page and write it: SIGBUS in the broker.
  ASSERT_TRUE(client.chmod("victim", 0644));
  auto info = client.stat("victim");
  ASSERT_TRUE(info) << info.error().message();
  EXPECT_EQ(info->mode, 0644u);
  EXPECT_NE(info->damaged.find("a writer truncated the segment of array 'victim'"),
            std::string::npos)
      << info->damaged;
  EXPECT_NE(info->damaged.find("shmarray rm victim"), std::string::npos) << info->damaged;
  for (Access access : {Access::kReadOnly, Access::kReadWrite}) {
    auto opened = client.open("victim", access);
    ASSERT_FALSE(opened);
    EXPECT_EQ(opened.error().code(), ErrorCode::kDataLoss) << opened.error().message();
  }
  // The CLI: errors with a message, no signal.
  const RunResult dump = cli("dump victim");
  EXPECT_EQ(dump.status.exit_code, 1) << dump.status.describe() << "\n" << dump.out;
  EXPECT_NE(dump.out.find("truncated"), std::string::npos) << dump.out;
  const RunResult ls = cli("ls");
  EXPECT_TRUE(ls.status.ok()) << ls.status.describe();
  EXPECT_NE(ls.out.find("DAMAGED"), std::string::npos) << ls.out;
  const RunResult json = cli("stat victim --json");
  EXPECT_TRUE(json.status.ok()) << json.status.describe();
  EXPECT_NE(json.out.find("\"damaged\": \"a writer truncated"), std::string::npos) << json.out;
  // Others are served; the broker did not restart.
  const pid_t pid = broker_->pid();
  EXPECT_TRUE(client.open("other", Access::kReadWrite));
  EXPECT_EQ(broker_->pid(), pid);
  EXPECT_EQ(::kill(pid, 0), 0);

  // A restarted broker finds the same: damaged, listed, not opened; others opened.
  broker_->stop(SIGTERM);
  broker_->restart();
  auto after = broker_->client();
  auto listed = after.list();
  ASSERT_TRUE(listed);
  ASSERT_EQ(listed->size(), 2u);
  EXPECT_EQ((*listed)[1].name, "victim");
  EXPECT_FALSE((*listed)[1].damaged.empty());
  auto reopened = after.open("victim", Access::kReadOnly);
  ASSERT_FALSE(reopened);
  EXPECT_EQ(reopened.error().code(), ErrorCode::kDataLoss);
  EXPECT_TRUE(after.open("other", Access::kReadOnly));
  ASSERT_TRUE(after.remove("victim"));
  ASSERT_TRUE(after.remove("other"));
}

INSTANTIATE_TEST_SUITE_P(ToZeroAndToOnePage, TruncatedTest, ::testing::Values(0u, 4096u));

TEST_F(ResizeTest, ReadCheckedReturnsDataLossWhenTheSegmentShrinksUnderAMapping) {
  auto client = broker_->client();
  auto writer = client.create("shrinks", ArraySpec{.dtype = "<u8", .shape = {2048}});
  ASSERT_TRUE(writer);
  const std::string id = writer->info().id;
  auto values = writer->as<std::uint64_t>();
  ASSERT_TRUE(values);
  std::iota(values->begin(), values->end(), 0u);
  ASSERT_TRUE(writer->publish());
  auto reader = client.open("shrinks", Access::kReadOnly);
  ASSERT_TRUE(reader);

  std::vector<std::byte> copy(reader->info().nbytes);
  auto read = reader->read_checked(copy);
  ASSERT_TRUE(read) << read.error().message();
  EXPECT_EQ(*read, 1u);
  EXPECT_EQ(std::memcmp(copy.data(), values->data(), copy.size()), 0);
  std::vector<std::byte> small(8);
  EXPECT_EQ(reader->read_checked(small).error().code(), ErrorCode::kInvalidArgument);

  // Data pages gone (header page kept), then everything gone: kDataLoss, no SIGBUS. Direct
  // access through bytes() would fault now; neither Array touches its mapping from here on.
  for (std::uint64_t size : {std::uint64_t{4096}, std::uint64_t{0}}) {
    resize(id, size);
    auto lost = reader->read_checked(copy);
    ASSERT_FALSE(lost) << "size " << size;
    EXPECT_EQ(lost.error().code(), ErrorCode::kDataLoss) << lost.error().message();
    EXPECT_NE(lost.error().message().find("'shrinks'"), std::string::npos);
  }
  ASSERT_TRUE(client.remove("shrinks"));
}

TEST_F(ResizeTest, GrownSegmentIsCutBackAtEveryRequestThatTouchesIt) {
  auto client = broker_->client();
  auto array = client.create("grows", ArraySpec{.shape = {1024}, .mode = 0600});
  ASSERT_TRUE(array);
  const std::string id = array->info().id;
  const std::uint64_t recorded = array->info().segment_bytes;
  const std::uint64_t grown = std::uint64_t{1} << 30;  // sparse: no page is used

  resize(id, grown);
  auto info = client.stat("grows");
  ASSERT_TRUE(info);
  EXPECT_EQ(info->segment_bytes, recorded);
  EXPECT_TRUE(info->damaged.empty());
  EXPECT_EQ(size_of(id), recorded);

  resize(id, grown);
  auto opened = client.open("grows", Access::kReadOnly);  // cut back before the fd is sent
  ASSERT_TRUE(opened) << opened.error().message();
  EXPECT_EQ(size_of(id), recorded);

  resize(id, grown);
  ASSERT_TRUE(client.list());
  EXPECT_EQ(size_of(id), recorded);

  resize(id, grown);
  ASSERT_TRUE(client.chmod("grows", 0640));
  EXPECT_EQ(size_of(id), recorded);

  // A restart cuts it back too, and serves the array.
  resize(id, grown);
  broker_->stop(SIGTERM);
  broker_->restart();
  EXPECT_EQ(size_of(id), recorded);
  auto after = broker_->client();
  EXPECT_TRUE(after.open("grows", Access::kReadWrite));
  ASSERT_TRUE(after.remove("grows"));
}

}  // namespace
}  // namespace shmarray::test
