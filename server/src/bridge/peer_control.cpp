#include "peer_control.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "listener_admission.hpp"
#include "ucx_worker.hpp"  // g_stopping

namespace shmarray::bridge {
namespace {

using Clock = std::chrono::steady_clock;

std::string os_error(const std::string& what) { return what + ": " + std::strerror(errno); }

// Waits until `fd` has one of `events`, the deadline passes or the bridge stops: true, or false
// for a timeout; kCancelled when stopping.
Result<bool> ready(int fd, short events, Clock::time_point deadline) {
  for (;;) {
    if (g_stopping.load()) return fail(ErrorCode::kCancelled, "the bridge is stopping");
    const auto now = Clock::now();
    if (now >= deadline) return false;
    const auto left =
        std::min<std::int64_t>(100, std::chrono::duration_cast<std::chrono::milliseconds>(
                                        deadline - now).count() + 1);
    pollfd p{fd, events, 0};
    const int n = ::poll(&p, 1, static_cast<int>(left));
    if (n > 0) return true;
    if (n < 0 && errno != EINTR) return fail(ErrorCode::kInternal, os_error("poll"));
  }
}

}  // namespace

TcpLink::TcpLink(UniqueFd fd) : fd_(std::move(fd)) {
  const int one = 1;
  ::setsockopt(fd_.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  socklen_t n = sizeof peer_;
  ::getpeername(fd_.get(), reinterpret_cast<sockaddr*>(&peer_), &n);
  n = sizeof local_;
  ::getsockname(fd_.get(), reinterpret_cast<sockaddr*>(&local_), &n);
}

Result<TcpLink> TcpLink::connect(const std::string& address, std::chrono::milliseconds timeout) {
  auto resolved = resolve_address(address);
  if (!resolved) return std::unexpected(resolved.error());
  UniqueFd fd(::socket(resolved->storage.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
                       0));
  if (!fd) return fail(ErrorCode::kInternal, os_error("socket"));
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&resolved->storage),
                resolved->length) != 0 &&
      errno != EINPROGRESS) {
    return fail(ErrorCode::kUnavailable, os_error("cannot connect to peer " + address));
  }
  auto ok = ready(fd.get(), POLLOUT, Clock::now() + timeout);
  if (!ok) return std::unexpected(ok.error());
  if (!*ok) {
    return fail(ErrorCode::kDeadlineExceeded, "cannot connect to peer " + address + ": no answer in " +
                                                  std::to_string(timeout.count()) + " ms");
  }
  int error = 0;
  socklen_t n = sizeof error;
  ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &error, &n);
  if (error != 0) {
    errno = error;
    return fail(ErrorCode::kUnavailable, os_error("cannot connect to peer " + address));
  }
  return TcpLink(std::move(fd));
}

Result<void> TcpLink::wait_for(short events, Clock::time_point deadline,
                               std::chrono::milliseconds timeout, const char* what) {
  auto ok = ready(fd_.get(), events, deadline);
  if (ok && *ok) return {};
  broken_ = true;
  if (!ok) return std::unexpected(ok.error());
  return fail(ErrorCode::kDeadlineExceeded, std::string(what) + ": nothing from the peer for " +
                                                std::to_string(timeout.count()) +
                                                " ms (link down?)");
}

Result<void> TcpLink::send(std::span<const std::byte> bytes, std::chrono::milliseconds timeout) {
  if (broken_) return fail(ErrorCode::kUnavailable, "peer connection already failed");
  const auto deadline = Clock::now() + timeout;
  while (!bytes.empty()) {
    const ssize_t n = ::send(fd_.get(), bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n > 0) {
      bytes = bytes.subspan(static_cast<std::size_t>(n));
    } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      if (auto ok = wait_for(POLLOUT, deadline, timeout, "send to peer"); !ok) return ok;
    } else {
      broken_ = true;
      return fail(ErrorCode::kUnavailable, os_error("send to peer"));
    }
  }
  return {};
}

Result<void> TcpLink::recv(std::span<std::byte> bytes, std::chrono::milliseconds timeout,
                             Arrival /*arrival: a handshake's few bytes, always waited for*/) {
  if (broken_) return fail(ErrorCode::kUnavailable, "peer connection already failed");
  const auto deadline = Clock::now() + timeout;
  while (!bytes.empty()) {
    const ssize_t n = ::recv(fd_.get(), bytes.data(), bytes.size(), 0);
    if (n > 0) {
      bytes = bytes.subspan(static_cast<std::size_t>(n));
    } else if (n == 0) {
      broken_ = true;
      return fail(ErrorCode::kUnavailable, "receive from peer: the peer closed the connection");
    } else if (errno == EAGAIN || errno == EINTR) {
      if (auto ok = wait_for(POLLIN, deadline, timeout, "receive from peer"); !ok) return ok;
    } else {
      broken_ = true;
      return fail(ErrorCode::kUnavailable, os_error("receive from peer"));
    }
  }
  return {};
}

Result<TcpListener> TcpListener::listen(const std::string& address) {
  auto resolved = resolve_address(address, true);
  if (!resolved) return std::unexpected(resolved.error());
  UniqueFd fd(::socket(resolved->storage.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
                       0));
  if (!fd) return fail(ErrorCode::kInternal, os_error("socket"));
  // A restarted bridge listens again at once, although the last one's connections linger in
  // TIME_WAIT.
  const int one = 1;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&resolved->storage), resolved->length) !=
          0 ||
      listen_unfiltered(fd.get(), 64) != 0) {
    return fail(errno == EADDRINUSE ? ErrorCode::kAlreadyExists : ErrorCode::kUnavailable,
                os_error("cannot listen for peers on " + address + " (--peer-listen)"));
  }
  sockaddr_storage bound{};
  socklen_t n = sizeof bound;
  ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&bound), &n);
  return TcpListener(std::move(fd), to_string(bound));
}

std::optional<TcpLink> TcpListener::take(std::chrono::milliseconds timeout) {
  pollfd p{fd_.get(), POLLIN, 0};
  if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0) return std::nullopt;
  UniqueFd fd(::accept4(fd_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
  if (!fd) return std::nullopt;
  return TcpLink(std::move(fd));
}

}  // namespace shmarray::bridge
