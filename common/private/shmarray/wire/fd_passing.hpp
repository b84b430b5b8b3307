#pragma once
// Byte I/O on a Unix stream socket with descriptor passing (SCM_RIGHTS). Raw syscalls on the
// socket's native handle: the broker drives them from Asio readiness callbacks, the client with
// poll() and a deadline.
#include <chrono>
#include <cstddef>
#include <span>
#include <vector>

#include "shmarray/error.hpp"
#include "shmarray/unique_fd.hpp"

namespace shmarray::wire {

using Clock = std::chrono::steady_clock;

// Most descriptors accepted in one recvmsg; more is a protocol error (each one is closed).
inline constexpr std::size_t kMaxFdsPerMessage = 4;

struct Received {
  std::size_t bytes = 0;        // 0 means the peer closed the connection
  std::vector<UniqueFd> fds;    // received with MSG_CMSG_CLOEXEC
  bool would_block = false;     // non-blocking socket had nothing to read
};

// One recvmsg into `buffer`. Descriptors arriving with the bytes are returned owned; truncated
// control data (MSG_CTRUNC) is kProtocolError (any that did arrive are closed).
[[nodiscard]] Result<Received> receive_some(int socket_fd, std::span<std::byte> buffer);

// One sendmsg of `bytes`, attaching `pass_fd` when it is >= 0 (it then goes with the first byte
// sent). Returns the number of bytes sent, 0 if the socket would block. MSG_NOSIGNAL: a closed
// peer is kUnavailable, never SIGPIPE.
[[nodiscard]] Result<std::size_t> send_some(int socket_fd, std::span<const std::byte> bytes,
                                            int pass_fd);

// Waits until `socket_fd` is readable (or writable) or `deadline` passes (kDeadlineExceeded).
// A deadline already past still looks once without waiting (Watcher::next(0ms): the events that
// have arrived), and fails at once if the socket is not ready.
[[nodiscard]] Result<void> wait_readable(int socket_fd, Clock::time_point deadline);
[[nodiscard]] Result<void> wait_writable(int socket_fd, Clock::time_point deadline);

// Sends all of `bytes` (with `pass_fd` on the first byte when >= 0) before `deadline`.
[[nodiscard]] Result<void> send_all(int socket_fd, std::span<const std::byte> bytes, int pass_fd,
                                    Clock::time_point deadline);

}  // namespace shmarray::wire
