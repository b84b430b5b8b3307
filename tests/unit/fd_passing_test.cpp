// Byte and descriptor I/O over a real AF_UNIX socketpair: descriptors arrive owned and
// close-on-exec, too many descriptors is a protocol error that leaks nothing, and every wait is
// bounded by its deadline.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <vector>

#include "shmarray/wire/fd_passing.hpp"
#include "unit_support.hpp"

namespace shmarray::wire {
namespace {

using namespace std::chrono_literals;

// sendmsg of `bytes` with `fds` (possibly more than the receiver accepts) in one SCM_RIGHTS.
bool send_with_fds(int socket_fd, std::string_view bytes, const std::vector<int>& fds) {
  iovec iov{const_cast<char*>(bytes.data()), bytes.size()};
  std::vector<char> control(CMSG_SPACE(sizeof(int) * fds.size()));
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control.data();
  msg.msg_controllen = control.size();
  cmsghdr* c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
  std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
  return ::sendmsg(socket_fd, &msg, MSG_NOSIGNAL) == static_cast<ssize_t>(bytes.size());
}

ino_t inode_of(int fd) {
  struct stat st{};
  return ::fstat(fd, &st) == 0 ? st.st_ino : 0;
}

TEST(FdPassing, TooManyDescriptorsIsProtocolErrorAndLeaksNone) {
  auto pair = test::make_socket_pair();
  ASSERT_TRUE(pair.has_value());
  auto memfd = test::make_memfd(4096);
  ASSERT_TRUE(memfd.has_value());
  const int baseline = test::open_fd_count();
  const std::vector<int> fds(kMaxFdsPerMessage + 2, memfd->get());
  ASSERT_TRUE(send_with_fds(pair->a.get(), "x", fds));
  std::vector<std::byte> buffer(16);
  auto got = receive_some(pair->b.get(), buffer);
  ASSERT_FALSE(got.has_value()) << "accepted " << got->fds.size() << " descriptors";
  EXPECT_EQ(got.error().code(), ErrorCode::kProtocolError);
  EXPECT_THAT(got.error().message(), ::testing::HasSubstr("descriptors"));
  EXPECT_EQ(test::open_fd_count(), baseline);
}

TEST(FdPassing, MaximumNumberOfDescriptorsArrivesOwnedAndCloseOnExec) {
  auto pair = test::make_socket_pair();
  ASSERT_TRUE(pair.has_value());
  auto memfd = test::make_memfd(4096);
  ASSERT_TRUE(memfd.has_value());
  const int baseline = test::open_fd_count();
  {
    const std::vector<int> fds(kMaxFdsPerMessage, memfd->get());
    ASSERT_TRUE(send_with_fds(pair->a.get(), "abc", fds));
    std::vector<std::byte> buffer(16);
    auto got = receive_some(pair->b.get(), buffer);
    ASSERT_TRUE(got.has_value()) << got.error().to_string();
    EXPECT_EQ(got->bytes, 3u);
    EXPECT_FALSE(got->would_block);
    ASSERT_EQ(got->fds.size(), kMaxFdsPerMessage);
    for (const auto& fd : got->fds) {
      EXPECT_EQ(inode_of(fd.get()), inode_of(memfd->get()));
      EXPECT_NE(::fcntl(fd.get(), F_GETFD) & FD_CLOEXEC, 0);
    }
    EXPECT_EQ(test::open_fd_count(), baseline + static_cast<int>(kMaxFdsPerMessage));
  }
  EXPECT_EQ(test::open_fd_count(), baseline);
}

TEST(FdPassing, SendSomeAttachesTheDescriptorToTheFirstByte) {
  auto pair = test::make_socket_pair();
  ASSERT_TRUE(pair.has_value());
  auto memfd = test::make_memfd(4096);
  ASSERT_TRUE(memfd.has_value());
  const std::vector<std::byte> bytes(10, std::byte{7});
  auto sent = send_some(pair->a.get(), bytes, memfd->get());
  ASSERT_TRUE(sent.has_value());
  EXPECT_EQ(*sent, 10u);
  auto plain = send_some(pair->a.get(), bytes, -1);
  ASSERT_TRUE(plain.has_value());
  // A reader taking one byte gets the descriptor with it and none later.
  std::vector<std::byte> one(1);
  auto first = receive_some(pair->b.get(), one);
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->bytes, 1u);
  ASSERT_EQ(first->fds.size(), 1u);
  EXPECT_EQ(inode_of(first->fds[0].get()), inode_of(memfd->get()));
  std::size_t rest_bytes = 0;
  std::vector<std::byte> rest(100);
  while (rest_bytes < 19) {
    auto more = receive_some(pair->b.get(), rest);
    ASSERT_TRUE(more.has_value());
    ASSERT_FALSE(more->would_block) << "only " << rest_bytes << " of 19 bytes arrived";
    EXPECT_TRUE(more->fds.empty());
    rest_bytes += more->bytes;
  }
  EXPECT_EQ(rest_bytes, 19u);
}

TEST(FdPassing, EmptySocketReportsWouldBlock) {
  auto pair = test::make_socket_pair();
  ASSERT_TRUE(pair.has_value());
  std::vector<std::byte> buffer(16);
  auto got = receive_some(pair->b.get(), buffer);
  ASSERT_TRUE(got.has_value());
  EXPECT_TRUE(got->would_block);
  EXPECT_EQ(got->bytes, 0u);
}

TEST(FdPassing, ClosedPeerReadsAsZeroBytes) {
  auto pair = test::make_socket_pair();
  ASSERT_TRUE(pair.has_value());
  pair->a.reset();
  std::vector<std::byte> buffer(16);
  auto got = receive_some(pair->b.get(), buffer);
  ASSERT_TRUE(got.has_value());
  EXPECT_FALSE(got->would_block);
  EXPECT_EQ(got->bytes, 0u);
}

TEST(FdPassing, SendingToAClosedPeerIsUnavailableWithoutSigpipe) {
  auto pair = test::make_socket_pair();
  ASSERT_TRUE(pair.has_value());
  pair->b.reset();
  const std::vector<std::byte> bytes(8);
  auto sent = send_some(pair->a.get(), bytes, -1);  // SIGPIPE would kill the test binary
  ASSERT_FALSE(sent.has_value());
  EXPECT_EQ(sent.error().code(), ErrorCode::kUnavailable);
  EXPECT_EQ(sent.error().sys_errno(), EPIPE);
  auto all = send_all(pair->a.get(), bytes, -1, test::deadline_in(1s));
  ASSERT_FALSE(all.has_value());
  EXPECT_EQ(all.error().code(), ErrorCode::kUnavailable);
}

TEST(FdPassing, WaitReadableTimesOutAtTheDeadline) {
  auto pair = test::make_socket_pair();
  ASSERT_TRUE(pair.has_value());
  const auto start = Clock::now();
  auto ready = wait_readable(pair->b.get(), start + 30ms);
  const auto waited = Clock::now() - start;
  ASSERT_FALSE(ready.has_value());
  EXPECT_EQ(ready.error().code(), ErrorCode::kDeadlineExceeded);
  EXPECT_GE(waited, 30ms);
  EXPECT_LT(waited, 2s);
}

TEST(FdPassing, WaitReadableReturnsOnceDataIsThere) {
  auto pair = test::make_socket_pair();
  ASSERT_TRUE(pair.has_value());
  ASSERT_EQ(::write(pair->a.get(), "x", 1), 1);
  EXPECT_TRUE(wait_readable(pair->b.get(), test::deadline_in(1s)).has_value());
  EXPECT_TRUE(wait_writable(pair->a.get(), test::deadline_in(1s)).has_value());
}

TEST(FdPassing, DeadlineInThePastFailsAtOnceUnlessTheSocketIsReadyNow) {
  auto pair = test::make_socket_pair();
  ASSERT_TRUE(pair.has_value());
  const auto start = Clock::now();
  auto ready = wait_readable(pair->b.get(), Clock::now() - 1s);
  ASSERT_FALSE(ready.has_value());
  EXPECT_EQ(ready.error().code(), ErrorCode::kDeadlineExceeded);
  EXPECT_LT(Clock::now() - start, 1s);
  // A past deadline still looks once: what has arrived is reported (Watcher::next(0ms)).
  ASSERT_EQ(::write(pair->a.get(), "x", 1), 1);
  EXPECT_TRUE(wait_readable(pair->b.get(), Clock::now() - 1s).has_value());
}

TEST(FdPassing, SendAllToAPeerThatNeverReadsHitsTheDeadline) {
  auto pair = test::make_socket_pair();
  ASSERT_TRUE(pair.has_value());
  const int small = 4096;
  ::setsockopt(pair->a.get(), SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
  const std::vector<std::byte> bytes(8u << 20);
  const auto start = Clock::now();
  auto sent = send_all(pair->a.get(), bytes, -1, start + 50ms);
  ASSERT_FALSE(sent.has_value());
  EXPECT_EQ(sent.error().code(), ErrorCode::kDeadlineExceeded);
  EXPECT_LT(Clock::now() - start, 2s);
}

TEST(FdPassing, ReceiveOnANonSocketIsAnError) {
  UniqueFd not_socket(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  ASSERT_TRUE(not_socket.valid());
  std::vector<std::byte> buffer(4);
  auto got = receive_some(not_socket.get(), buffer);
  ASSERT_FALSE(got.has_value());
  EXPECT_EQ(got.error().sys_errno(), ENOTSOCK);
}

}  // namespace
}  // namespace shmarray::wire
