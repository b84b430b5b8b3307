#pragma once
// The source ports a link's UCX connections leave from.
//
// A link's UCX listeners admit only the authenticated peer's addresses (listener_admission.hpp).
// Every other process on the peer's host has those addresses too, and could reach UCX's new port
// while the link is being set up. So, before anything of UCX exists, each side reserves a few
// ports (sockets bound to them on every address with SO_REUSEPORT: the kernel then refuses these
// ports to every socket of another user, and to this user's sockets without SO_REUSEPORT), and
// tells the peer which (PeerAddresses). Its UCX then connects only from them: while a
// ConnectsFrom is alive, every TCP connect() of this thread first binds the socket to the next
// reserved port (connect_interposer.cpp, in the bridge's executable). The peer's listeners admit
// those ports only. A process of another user on the peer's host can neither bind them nor get a
// connection from any other port through.
#include <cstdint>
#include <span>
#include <vector>

#include <sys/socket.h>

#include "shmarray/error.hpp"
#include "shmarray/unique_fd.hpp"

namespace shmarray::bridge {

// At most this many ports per link and side (PeerAddresses carries them).
inline constexpr std::size_t kMaxSourcePorts = 8;

class SourcePorts {
 public:
  // Reserves `count` (1 to kMaxSourcePorts) ports, chosen by the kernel among its ephemeral ones,
  // on every IPv4 and IPv6 address of this host. kUnavailable if the kernel has none left.
  [[nodiscard]] static Result<SourcePorts> reserve(std::size_t count);

  [[nodiscard]] std::span<const std::uint16_t> ports() const noexcept { return ports_; }

  // Binds TCP socket `fd` (IPv4 or IPv6, not yet bound) to the next reserved port not given out
  // yet, with SO_REUSEPORT. kUnavailable once every port has been given out.
  [[nodiscard]] Result<std::uint16_t> bind_next(int fd);

 private:
  std::vector<UniqueFd> holders_;  // one bound socket per port: the reservation
  std::vector<std::uint16_t> ports_;
  std::size_t next_ = 0;
};

// While alive, every connect() this thread makes on an unbound TCP socket binds it first to the
// next of `ports` (connect_interposer.cpp); when they are all given out, connect() fails with
// EADDRNOTAVAIL (the peer would drop the connection anyway).
class ConnectsFrom {
 public:
  explicit ConnectsFrom(SourcePorts& ports);
  ~ConnectsFrom();
  ConnectsFrom(const ConnectsFrom&) = delete;
  ConnectsFrom& operator=(const ConnectsFrom&) = delete;

  [[nodiscard]] SourcePorts& ports() noexcept { return ports_; }

 private:
  SourcePorts& ports_;
  ConnectsFrom* outer_;
};

// The innermost ConnectsFrom of this thread, or nullptr.
[[nodiscard]] ConnectsFrom* connects_from_of_this_thread() noexcept;

// True if `fd` is an IPv4 or IPv6 stream socket not bound to a port yet.
[[nodiscard]] bool is_unbound_tcp(int fd) noexcept;

// connect(2) itself, whatever this thread's ConnectsFrom.
[[nodiscard]] int connect_direct(int fd, const sockaddr* address, socklen_t length) noexcept;

}  // namespace shmarray::bridge
