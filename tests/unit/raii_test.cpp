// UniqueFd closes its descriptor exactly once through every ownership path; Mapping unmaps its
// range exactly once. Checked against the kernel: /proc/self/fd counts, fcntl and msync.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "shmarray/mapping.hpp"
#include "shmarray/unique_fd.hpp"
#include "unit_support.hpp"

namespace shmarray {
namespace {

int open_dev_null() { return ::open("/dev/null", O_RDONLY | O_CLOEXEC); }
bool is_open(int fd) { return ::fcntl(fd, F_GETFD) != -1; }
// msync fails with ENOMEM when any part of the range is not mapped.
bool is_mapped(void* addr, std::size_t length) {
  return ::msync(addr, length, MS_ASYNC) == 0 || errno != ENOMEM;
}

// --- UniqueFd ---------------------------------------------------------------------------------

TEST(UniqueFd, DefaultIsInvalidAndClosesNothing) {
  const int baseline = test::open_fd_count();
  {
    UniqueFd fd;
    EXPECT_FALSE(fd.valid());
    EXPECT_FALSE(static_cast<bool>(fd));
    EXPECT_EQ(fd.get(), -1);
  }
  EXPECT_EQ(test::open_fd_count(), baseline);
}

TEST(UniqueFd, DestructorClosesTheDescriptor) {
  const int baseline = test::open_fd_count();
  int raw = -1;
  {
    UniqueFd fd(open_dev_null());
    raw = fd.get();
    ASSERT_TRUE(fd.valid());
    EXPECT_EQ(test::open_fd_count(), baseline + 1);
  }
  EXPECT_EQ(test::open_fd_count(), baseline);
  EXPECT_FALSE(is_open(raw));
}

TEST(UniqueFd, MoveConstructTransfersOwnershipAndClosesExactlyOnce) {
  const int baseline = test::open_fd_count();
  UniqueFd source(open_dev_null());
  const int raw = source.get();
  {
    UniqueFd target(std::move(source));
    EXPECT_EQ(target.get(), raw);
    EXPECT_FALSE(source.valid());  // NOLINT(bugprone-use-after-move): checking the moved-from
    EXPECT_EQ(test::open_fd_count(), baseline + 1);
  }
  EXPECT_FALSE(is_open(raw));
  // The lowest free number is reused; a second close by `source` would close the sentinel.
  UniqueFd sentinel(open_dev_null());
  ASSERT_EQ(sentinel.get(), raw);
  source = UniqueFd();  // destroys source's (empty) state
  source.reset();
  EXPECT_TRUE(is_open(sentinel.get()));
  sentinel.reset();
  EXPECT_EQ(test::open_fd_count(), baseline);
}

TEST(UniqueFd, MoveAssignClosesTheOldDescriptorAndTakesTheNew) {
  const int baseline = test::open_fd_count();
  UniqueFd first(open_dev_null());
  UniqueFd second(open_dev_null());
  const int first_raw = first.get();
  const int second_raw = second.get();
  ASSERT_EQ(test::open_fd_count(), baseline + 2);
  second = std::move(first);
  EXPECT_EQ(second.get(), first_raw);
  EXPECT_FALSE(first.valid());  // NOLINT(bugprone-use-after-move): checking the moved-from
  EXPECT_FALSE(is_open(second_raw));
  EXPECT_TRUE(is_open(first_raw));
  EXPECT_EQ(test::open_fd_count(), baseline + 1);
  second = UniqueFd();
  EXPECT_EQ(test::open_fd_count(), baseline);
}

TEST(UniqueFd, SelfMoveAssignKeepsTheDescriptorOpen) {
  UniqueFd fd(open_dev_null());
  const int raw = fd.get();
  UniqueFd& alias = fd;
  fd = std::move(alias);
  EXPECT_EQ(fd.get(), raw);
  EXPECT_TRUE(is_open(raw));
}

TEST(UniqueFd, ReleaseGivesUpOwnershipWithoutClosing) {
  const int baseline = test::open_fd_count();
  int raw = -1;
  {
    UniqueFd fd(open_dev_null());
    raw = fd.release();
    EXPECT_FALSE(fd.valid());
  }
  ASSERT_TRUE(is_open(raw));
  EXPECT_EQ(test::open_fd_count(), baseline + 1);
  ::close(raw);
  EXPECT_EQ(test::open_fd_count(), baseline);
}

TEST(UniqueFd, ResetClosesTheOldAndOwnsTheNew) {
  const int baseline = test::open_fd_count();
  UniqueFd fd(open_dev_null());
  const int old_raw = fd.get();
  const int new_raw = open_dev_null();
  fd.reset(new_raw);
  EXPECT_FALSE(is_open(old_raw));
  EXPECT_EQ(fd.get(), new_raw);
  EXPECT_EQ(test::open_fd_count(), baseline + 1);
  fd.reset();
  EXPECT_FALSE(fd.valid());
  EXPECT_FALSE(is_open(new_raw));
  EXPECT_EQ(test::open_fd_count(), baseline);
}

TEST(UniqueFd, ResetToTheSameDescriptorDoesNotCloseIt) {
  UniqueFd fd(open_dev_null());
  const int raw = fd.get();
  fd.reset(raw);
  EXPECT_TRUE(is_open(raw));
  EXPECT_EQ(fd.get(), raw);
}

// --- Mapping ----------------------------------------------------------------------------------

TEST(Mapping, MapsTheFileSharedAndUnmapsOnDestruction) {
  auto memfd = test::make_memfd(3 * 4096);
  ASSERT_TRUE(memfd.has_value());
  void* addr = nullptr;
  {
    auto mapping = Mapping::map(memfd->get(), 3 * 4096, Mapping::Protection::kReadWrite);
    ASSERT_TRUE(mapping.has_value()) << mapping.error().to_string();
    EXPECT_EQ(mapping->size(), 3u * 4096);
    EXPECT_TRUE(mapping->writable());
    EXPECT_EQ(mapping->bytes().size(), 3u * 4096);
    addr = mapping->data();
    ASSERT_TRUE(is_mapped(addr, 3 * 4096));
    std::memcpy(mapping->data() + 4096, "shared", 6);
  }
  EXPECT_FALSE(is_mapped(addr, 3 * 4096));
  // MAP_SHARED: the write reached the file.
  char buf[6] = {};
  ASSERT_EQ(::pread(memfd->get(), buf, sizeof buf, 4096), 6);
  EXPECT_EQ(std::memcmp(buf, "shared", 6), 0);
}

TEST(Mapping, SurvivesClosingTheDescriptor) {
  auto memfd = test::make_memfd(4096);
  ASSERT_TRUE(memfd.has_value());
  auto mapping = Mapping::map(memfd->get(), 4096, Mapping::Protection::kReadWrite);
  ASSERT_TRUE(mapping.has_value());
  memfd->reset();
  mapping->data()[10] = std::byte{42};
  EXPECT_EQ(mapping->data()[10], std::byte{42});
}

TEST(Mapping, ReadOnlyMappingIsNotWritable) {
  auto memfd = test::make_memfd(4096);
  ASSERT_TRUE(memfd.has_value());
  ASSERT_EQ(::pwrite(memfd->get(), "ro", 2, 0), 2);
  auto mapping = Mapping::map(memfd->get(), 4096, Mapping::Protection::kRead);
  ASSERT_TRUE(mapping.has_value());
  EXPECT_FALSE(mapping->writable());
  EXPECT_EQ(mapping->data()[1], std::byte{'o'});
}

TEST(Mapping, MoveConstructTransfersTheRangeAndUnmapsOnce) {
  auto memfd = test::make_memfd(4096);
  ASSERT_TRUE(memfd.has_value());
  auto mapping = Mapping::map(memfd->get(), 4096, Mapping::Protection::kReadWrite);
  ASSERT_TRUE(mapping.has_value());
  std::byte* addr = mapping->data();
  {
    Mapping moved(std::move(*mapping));
    EXPECT_EQ(moved.data(), addr);
    EXPECT_EQ(moved.size(), 4096u);
    EXPECT_EQ(mapping->data(), nullptr);  // NOLINT(bugprone-use-after-move): moved-from state
    EXPECT_EQ(mapping->size(), 0u);
  }
  EXPECT_FALSE(is_mapped(addr, 4096));
}

TEST(Mapping, MoveAssignUnmapsTheTargetsOldRange) {
  auto memfd = test::make_memfd(2 * 4096);
  ASSERT_TRUE(memfd.has_value());
  auto a = Mapping::map(memfd->get(), 4096, Mapping::Protection::kReadWrite);
  auto b = Mapping::map(memfd->get(), 2 * 4096, Mapping::Protection::kRead);
  ASSERT_TRUE(a.has_value() && b.has_value());
  std::byte* a_addr = a->data();
  std::byte* b_addr = b->data();
  *b = std::move(*a);
  EXPECT_FALSE(is_mapped(b_addr, 2 * 4096));
  EXPECT_TRUE(is_mapped(a_addr, 4096));
  EXPECT_EQ(b->data(), a_addr);
  EXPECT_EQ(b->size(), 4096u);
  EXPECT_TRUE(b->writable());
  EXPECT_EQ(a->data(), nullptr);  // NOLINT(bugprone-use-after-move): moved-from state
  *b = Mapping();
  EXPECT_FALSE(is_mapped(a_addr, 4096));
}

TEST(Mapping, PopulateForWriteFromAnOffsetMapsEverything) {
  auto memfd = test::make_memfd(4 * 4096);
  ASSERT_TRUE(memfd.has_value());
  auto mapping = Mapping::map(memfd->get(), 4 * 4096, Mapping::Protection::kReadWrite,
                              Mapping::Populate::kWrite, 4096 + 17);
  ASSERT_TRUE(mapping.has_value()) << mapping.error().to_string();
  mapping->data()[4 * 4096 - 1] = std::byte{1};
  auto read = Mapping::map(memfd->get(), 4 * 4096, Mapping::Protection::kRead,
                           Mapping::Populate::kRead);
  ASSERT_TRUE(read.has_value()) << read.error().to_string();
  EXPECT_EQ(read->data()[4 * 4096 - 1], std::byte{1});
}

TEST(Mapping, ZeroLengthIsInvalidArgument) {
  auto memfd = test::make_memfd(4096);
  ASSERT_TRUE(memfd.has_value());
  auto mapping = Mapping::map(memfd->get(), 0, Mapping::Protection::kRead);
  ASSERT_FALSE(mapping.has_value());
  EXPECT_EQ(mapping.error().code(), ErrorCode::kInvalidArgument);
}

TEST(Mapping, BadDescriptorFailsWithTheErrno) {
  auto mapping = Mapping::map(-1, 4096, Mapping::Protection::kRead);
  ASSERT_FALSE(mapping.has_value());
  EXPECT_EQ(mapping.error().sys_errno(), EBADF);
  EXPECT_THAT(mapping.error().message(), ::testing::HasSubstr("mmap"));
}

TEST(Mapping, ReadWriteMappingOfAReadOnlyDescriptorIsPermissionDenied) {
  auto memfd = test::make_memfd(4096);
  ASSERT_TRUE(memfd.has_value());
  const std::string path = "/proc/self/fd/" + std::to_string(memfd->get());
  UniqueFd read_only(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  ASSERT_TRUE(read_only.valid());
  auto mapping = Mapping::map(read_only.get(), 4096, Mapping::Protection::kReadWrite);
  ASSERT_FALSE(mapping.has_value());
  EXPECT_EQ(mapping.error().code(), ErrorCode::kPermissionDenied);
}

}  // namespace
}  // namespace shmarray
