#include "tcp_socket.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace shmarray::test {
namespace {

using Clock = std::chrono::steady_clock;

std::string errno_text(const std::string& what) { return what + ": " + std::strerror(errno); }

std::expected<sockaddr_in, std::string> make_address(const std::string& address,
                                                     std::uint16_t port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  if (::inet_pton(AF_INET, address.c_str(), &addr.sin_addr) != 1) {
    return std::unexpected("not an IPv4 address: '" + address + "'");
  }
  return addr;
}

// Waits until `fd` is ready for `events` or the deadline passes.
bool wait_for(int fd, short events, Clock::time_point deadline) {
  for (;;) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return false;
    pollfd p{fd, events, 0};
    const int rc = ::poll(&p, 1, static_cast<int>(left));
    if (rc > 0) return true;
    if (rc < 0 && errno != EINTR) return false;
  }
}

}  // namespace

std::expected<UniqueFd, std::string> tcp_listen(const std::string& address, std::uint16_t port) {
  auto addr = make_address(address, port);
  if (!addr) return std::unexpected(addr.error());
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return std::unexpected(errno_text("socket"));
  const int one = 1;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&*addr), sizeof *addr) != 0) {
    return std::unexpected(errno_text("bind " + address + ":" + std::to_string(port)));
  }
  if (::listen(fd.get(), 16) != 0) return std::unexpected(errno_text("listen " + address));
  return fd;
}

std::uint16_t local_port(int fd) {
  sockaddr_in addr{};
  socklen_t len = sizeof addr;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return 0;
  return ntohs(addr.sin_port);
}

std::expected<UniqueFd, std::string> tcp_accept(int listen_fd, std::chrono::milliseconds timeout) {
  if (!wait_for(listen_fd, POLLIN, Clock::now() + timeout)) {
    return std::unexpected("no connection within " + std::to_string(timeout.count()) + " ms");
  }
  UniqueFd fd(::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC));
  if (!fd) return std::unexpected(errno_text("accept"));
  const int one = 1;
  ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

std::expected<UniqueFd, std::string> tcp_connect(const std::string& address, std::uint16_t port,
                                                 std::chrono::milliseconds timeout) {
  auto addr = make_address(address, port);
  if (!addr) return std::unexpected(addr.error());
  const std::string where = address + ":" + std::to_string(port);
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) return std::unexpected(errno_text("socket"));
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&*addr), sizeof *addr) != 0) {
    if (errno != EINPROGRESS) return std::unexpected(errno_text("connect " + where));
    if (!wait_for(fd.get(), POLLOUT, Clock::now() + timeout)) {
      return std::unexpected("connect " + where + ": no answer within " +
                             std::to_string(timeout.count()) + " ms");
    }
    int err = 0;
    socklen_t len = sizeof err;
    ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) {
      errno = err;
      return std::unexpected(errno_text("connect " + where));
    }
  }
  ::fcntl(fd.get(), F_SETFL, ::fcntl(fd.get(), F_GETFL) & ~O_NONBLOCK);
  const int one = 1;
  ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

std::expected<void, std::string> send_all(int fd, const void* data, std::size_t size,
                                          std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  const auto* p = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t n = ::send(fd, p, size, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      p += n;
      size -= static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno != EAGAIN) return std::unexpected(errno_text("send"));
    if (!wait_for(fd, POLLOUT, deadline)) return std::unexpected(std::string("send: timed out"));
  }
  return {};
}

std::expected<void, std::string> recv_all(int fd, void* data, std::size_t size,
                                          std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  auto* p = static_cast<char*>(data);
  while (size > 0) {
    const ssize_t n = ::recv(fd, p, size, MSG_DONTWAIT);
    if (n > 0) {
      p += n;
      size -= static_cast<std::size_t>(n);
      continue;
    }
    if (n == 0) return std::unexpected(std::string("recv: the peer closed the connection"));
    if (errno == EINTR) continue;
    if (errno != EAGAIN) return std::unexpected(errno_text("recv"));
    if (!wait_for(fd, POLLIN, deadline)) return std::unexpected(std::string("recv: timed out"));
  }
  return {};
}

}  // namespace shmarray::test
