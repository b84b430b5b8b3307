// The bridge's listen() and connect() (server/src/bridge/listen_interposer.cpp,
// connect_interposer.cpp), linked into this test executable as into shmarray-bridge: every
// listen() and connect() below goes through them, on real sockets.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "bridge/listener_admission.hpp"
#include "bridge/source_ports.hpp"
#include "shmarray/unique_fd.hpp"

namespace shmarray::bridge {
namespace {

using namespace std::chrono_literals;

sockaddr_in loopback(std::uint16_t port = 0) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return a;
}

std::uint16_t port_of(int fd) {
  sockaddr_in a{};
  socklen_t n = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &n);
  return ntohs(a.sin_port);
}

// A socket bound to 127.0.0.1 (port of the kernel's choosing), not listening yet.
UniqueFd bound_socket() {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  const auto at = loopback();
  EXPECT_EQ(::bind(fd.get(), reinterpret_cast<const sockaddr*>(&at), sizeof at), 0);
  return fd;
}

// Connects a new non-blocking socket to 127.0.0.1:`port` through connect() (this thread's
// ConnectsFrom applies). The socket if the connection completed within `timeout`, else an empty
// one; the errno of connect() in `error`.
UniqueFd connect_to(std::uint16_t port, std::chrono::milliseconds timeout, int& error) {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  const auto to = loopback(port);
  error = 0;
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&to), sizeof to) == 0) return fd;
  error = errno;
  if (error != EINPROGRESS) return UniqueFd();
  pollfd p{fd.get(), POLLOUT, 0};
  if (::poll(&p, 1, static_cast<int>(timeout.count())) != 1) return UniqueFd();
  int result = 0;
  socklen_t n = sizeof result;
  ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &result, &n);
  return result == 0 ? std::move(fd) : UniqueFd();
}

IpAddress localhost() {
  sockaddr_storage s{};
  const auto a = loopback();
  std::memcpy(&s, &a, sizeof a);
  return IpAddress::of(s).value();
}

TEST(BridgeInterposers, AListenOutsideALinksSetupAdmitsNobody) {
  auto l = bound_socket();
  ASSERT_EQ(::listen(l.get(), 4), 0) << std::strerror(errno);
  int error = 0;
  EXPECT_FALSE(connect_to(port_of(l.get()), 500ms, error));
  // And it is locked: nothing in the process can open it up afterwards.
  EXPECT_NE(::setsockopt(l.get(), SOL_SOCKET, SO_DETACH_FILTER, nullptr, 0), 0);
}

TEST(BridgeInterposers, UcxConnectsFromTheReservedPortsWhichThePeersListenerAdmits) {
  auto reserved = SourcePorts::reserve(2);
  ASSERT_TRUE(reserved.has_value()) << reserved.error().message();
  const std::vector<std::uint16_t> ports(reserved->ports().begin(), reserved->ports().end());
  auto l = bound_socket();
  {
    ListenerAdmission admission({{localhost()}, ports});
    ASSERT_EQ(::listen(l.get(), 8), 0) << std::strerror(errno);
    ASSERT_EQ(admission.listeners(), std::vector<int>{l.get()});
  }
  const auto port = port_of(l.get());
  int error = 0;
  // The same address, connecting the usual way (an ephemeral port): dropped.
  EXPECT_FALSE(connect_to(port, 500ms, error));
  {
    ConnectsFrom scope(*reserved);
    for (const auto expected : ports) {
      auto c = connect_to(port, 10s, error);
      ASSERT_TRUE(c) << std::strerror(error);
      EXPECT_EQ(port_of(c.get()), expected);
      sockaddr_in peer{};
      socklen_t n = sizeof peer;
      UniqueFd accepted(::accept(l.get(), reinterpret_cast<sockaddr*>(&peer), &n));
      ASSERT_TRUE(accepted);
      EXPECT_EQ(ntohs(peer.sin_port), expected);
    }
    // Every reserved port given out: connect() fails rather than leave from another.
    EXPECT_FALSE(connect_to(port, 500ms, error));
    EXPECT_EQ(error, EADDRNOTAVAIL);
    // A Unix socket in the same scope is left alone.
    UniqueFd server(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un un{};
    un.sun_family = AF_UNIX;
    const std::string name = "shmarray-interposer-test-" + std::to_string(::getpid());
    std::memcpy(un.sun_path + 1, name.data(), name.size());  // abstract: nothing on disk
    const auto length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
    ASSERT_EQ(::bind(server.get(), reinterpret_cast<const sockaddr*>(&un), length), 0);
    ASSERT_EQ(listen_unfiltered(server.get(), 1), 0);
    UniqueFd client(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    EXPECT_EQ(::connect(client.get(), reinterpret_cast<const sockaddr*>(&un), length), 0)
        << std::strerror(errno);
  }
  // Outside the scope connect() is the kernel's: an ephemeral port, which the listener drops.
  EXPECT_FALSE(connect_to(port, 500ms, error));
  EXPECT_EQ(error, EINPROGRESS);
}

}  // namespace
}  // namespace shmarray::bridge
