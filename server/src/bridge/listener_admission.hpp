#pragma once
// Who may connect to UCX's own listening sockets.
//
// UCX 1.13's TCP transport listens on ports of its own (one per interface it may use) and carries
// out what a connected peer sends there, PUT requests at any address included, before shmarray's
// handshake has run (docs/security.md, "Across hosts"). So the bridge authenticates a peer first,
// over a plain TCP connection (peer_control.hpp), and only then creates the UCX worker of that
// link; every listening socket UCX opens meanwhile gets a socket filter that drops every packet
// (the SYN included) whose source address is not one of that peer's, or whose source port is not
// one of the ports the peer reserved for its UCX connections (source_ports.hpp: no process of
// another user on the peer's host can use them). The kernel applies it before the connection
// exists, and the accepted connections inherit it.
//
// The filter is attached inside listen() (listen_interposer.cpp, in the bridge's executable): a
// listener never accepts a connection unfiltered. A listen() outside a ListenerAdmission scope
// admits nobody (fails closed); the bridge's own --peer-listen socket uses listen_unfiltered.
#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include <sys/socket.h>

#include "shmarray/error.hpp"

namespace shmarray::bridge {

// An IPv4 or IPv6 address; IPv4 held as IPv4-mapped IPv6 (::ffff:a.b.c.d).
struct IpAddress {
  std::array<std::uint8_t, 16> bytes{};

  // The address of an AF_INET or AF_INET6 socket address; kInvalidArgument for other families.
  [[nodiscard]] static Result<IpAddress> of(const sockaddr_storage& address);
  [[nodiscard]] bool is_v4() const noexcept;
  [[nodiscard]] bool is_loopback() const noexcept;
  [[nodiscard]] std::string to_string() const;
  friend auto operator<=>(const IpAddress&, const IpAddress&) = default;
};

// At most this many addresses per filter (a peer's addresses are bounded by it too).
inline constexpr std::size_t kMaxAdmitted = 64;
// At most this many source ports per filter (source_ports.hpp's kMaxSourcePorts).
inline constexpr std::size_t kMaxAdmittedPorts = 8;

// Who may connect: from one of `addresses` and one of `ports` (TCP source ports). Empty lists
// admit nobody.
struct Admitted {
  std::vector<IpAddress> addresses;
  std::vector<std::uint16_t> ports;
};

// Attaches a filter to socket `fd` that passes only packets from `admitted`, and with `lock` locks
// it (SO_LOCK_FILTER: it can no longer be changed or removed). kInvalidArgument above
// kMaxAdmitted addresses or kMaxAdmittedPorts ports, else the errno of setsockopt.
[[nodiscard]] Result<void> admit_only(int fd, const Admitted& admitted, bool lock);

// While alive, every listen() this thread makes admits exactly `admitted`, unlocked, and is
// recorded: once the link is up, close_listeners() admits nobody more (and locks), so that even
// from the peer's addresses and ports nobody can open another connection to this link's UCX.
class ListenerAdmission {
 public:
  explicit ListenerAdmission(Admitted admitted);
  ~ListenerAdmission();
  ListenerAdmission(const ListenerAdmission&) = delete;
  ListenerAdmission& operator=(const ListenerAdmission&) = delete;

  [[nodiscard]] const Admitted& admitted() const noexcept { return admitted_; }
  // The listening sockets made in this scope.
  [[nodiscard]] const std::vector<int>& listeners() const noexcept { return listeners_; }
  void note_listener(int fd) { listeners_.push_back(fd); }

 private:
  Admitted admitted_;
  std::vector<int> listeners_;
  ListenerAdmission* outer_;
};

// The innermost ListenerAdmission of this thread, or nullptr (listen_interposer.cpp).
[[nodiscard]] ListenerAdmission* admission_of_this_thread() noexcept;

// Admits nobody more on each of `listeners` (a link's, once it is up), locked.
[[nodiscard]] Result<void> close_listeners(const std::vector<int>& listeners);

// listen(2) itself, without a filter: the bridge's own --peer-listen socket.
[[nodiscard]] int listen_unfiltered(int fd, int backlog) noexcept;

// Every address of this host's interfaces (getifaddrs), loopback ones only if `with_loopback`;
// at most kMaxAdmitted.
[[nodiscard]] std::vector<IpAddress> local_addresses(bool with_loopback);

// What one link's UCX listeners admit: `connected` (the address the authenticated peer's TCP
// connection came from) and the addresses the peer reported (PeerAddresses), each once; the
// reported loopback addresses only if `connected` is one (a remote peer naming 127.0.0.1 would
// admit this host's own users). At most kMaxAdmitted.
[[nodiscard]] std::vector<IpAddress> admitted_for(const IpAddress& connected,
                                                  const std::vector<IpAddress>& reported);

}  // namespace shmarray::bridge
