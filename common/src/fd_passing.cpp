#include "shmarray/wire/fd_passing.hpp"

#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace shmarray::wire {
namespace {

Result<void> wait_for(int socket_fd, short events, Clock::time_point deadline) {
  for (;;) {
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now());
    // A deadline already past still looks once (poll with timeout 0): a zero timeout means
    // "whatever has arrived", not "fail".
    pollfd p{socket_fd, events, 0};
    const int rc = ::poll(&p, 1, static_cast<int>(std::clamp<long>(left.count(), 0, 1 << 30)));
    if (rc > 0) return {};
    if (rc < 0 && errno != EINTR) return std::unexpected(sys_error("poll", errno));
    if (left.count() <= 0) {
      return fail(ErrorCode::kDeadlineExceeded, "the broker did not answer in time");
    }
  }
}

}  // namespace

Result<Received> receive_some(int socket_fd, std::span<std::byte> buffer) {
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFdsPerMessage)];
  iovec iov{buffer.data(), buffer.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ssize_t n;
  do {
    n = ::recvmsg(socket_fd, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
  } while (n < 0 && errno == EINTR);
  Received out;
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      out.would_block = true;
      return out;
    }
    return std::unexpected(sys_error("recvmsg", errno));
  }
  out.bytes = static_cast<std::size_t>(n);
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    const std::size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (std::size_t i = 0; i < count; ++i) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
      out.fds.emplace_back(fd);  // owned at once, so every path below closes it
    }
  }
  if ((msg.msg_flags & MSG_CTRUNC) != 0) {
    return fail(ErrorCode::kProtocolError, "too many descriptors in one message (truncated)");
  }
  return out;
}

Result<std::size_t> send_some(int socket_fd, std::span<const std::byte> bytes, int pass_fd) {
  iovec iov{const_cast<std::byte*>(bytes.data()), bytes.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
  if (pass_fd >= 0) {
    std::memset(control, 0, sizeof control);
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(c), &pass_fd, sizeof pass_fd);
  }
  ssize_t n;
  do {
    n = ::sendmsg(socket_fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return std::size_t{0};
    return std::unexpected(sys_error("sendmsg", errno));
  }
  return static_cast<std::size_t>(n);
}

Result<void> wait_readable(int socket_fd, Clock::time_point deadline) {
  return wait_for(socket_fd, POLLIN, deadline);
}

Result<void> wait_writable(int socket_fd, Clock::time_point deadline) {
  return wait_for(socket_fd, POLLOUT, deadline);
}

Result<void> send_all(int socket_fd, std::span<const std::byte> bytes, int pass_fd,
                      Clock::time_point deadline) {
  std::size_t sent = 0;
  while (sent < bytes.size()) {
    auto n = send_some(socket_fd, bytes.subspan(sent), sent == 0 ? pass_fd : -1);
    if (!n) return std::unexpected(n.error());
    if (*n == 0) {
      if (auto w = wait_writable(socket_fd, deadline); !w) return w;
      continue;
    }
    sent += *n;
  }
  return {};
}

}  // namespace shmarray::wire
