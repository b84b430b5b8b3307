// The source ports a link's UCX connects from (server/src/bridge/source_ports.hpp): real sockets,
// the kernel keeping the reservation.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <set>
#include <thread>

#include "bridge/source_ports.hpp"
#include "shmarray/unique_fd.hpp"

namespace shmarray::bridge {
namespace {

using namespace std::chrono_literals;

// errno of binding a new TCP socket of `family` to `port` on `at`, with the options given; 0 if it
// bound.
int bind_error(int family, const char* at, std::uint16_t port, bool reuse_port,
               bool reuse_address) {
  UniqueFd fd(::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return errno;
  const int one = 1;
  if (reuse_port) ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  if (reuse_address) ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_storage s{};
  if (family == AF_INET) {
    auto& a = reinterpret_cast<sockaddr_in&>(s);
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    ::inet_pton(AF_INET, at, &a.sin_addr);
  } else {
    auto& a = reinterpret_cast<sockaddr_in6&>(s);
    a.sin6_family = AF_INET6;
    a.sin6_port = htons(port);
    ::inet_pton(AF_INET6, at, &a.sin6_addr);
  }
  const socklen_t n = family == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_in6);
  return ::bind(fd.get(), reinterpret_cast<const sockaddr*>(&s), n) == 0 ? 0 : errno;
}

bool has_ipv6() {
  return bind_error(AF_INET6, "::1", 0, false, false) == 0;
}

TEST(SourcePorts, ReservedPortsAreDistinctAndNoOtherSocketCanBindThem) {
  auto reserved = SourcePorts::reserve(3);
  ASSERT_TRUE(reserved.has_value()) << reserved.error().message();
  const auto ports = reserved->ports();
  ASSERT_EQ(ports.size(), 3u);
  EXPECT_EQ(std::set<std::uint16_t>(ports.begin(), ports.end()).size(), 3u);
  for (const auto port : ports) {
    EXPECT_NE(port, 0);
    // Without SO_REUSEPORT nobody gets them, SO_REUSEADDR or not, on any address or family.
    EXPECT_EQ(bind_error(AF_INET, "0.0.0.0", port, false, false), EADDRINUSE) << port;
    EXPECT_EQ(bind_error(AF_INET, "127.0.0.1", port, false, true), EADDRINUSE) << port;
    if (has_ipv6()) {
      EXPECT_EQ(bind_error(AF_INET6, "::1", port, false, true), EADDRINUSE) << port;
    }
  }
}

TEST(SourcePorts, AnotherUserCannotBindThemEvenWithReusePort) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root, to run a process as another user";
  auto reserved = SourcePorts::reserve(1);
  ASSERT_TRUE(reserved.has_value()) << reserved.error().message();
  const std::uint16_t port = reserved->ports()[0];
  // This user (the bridge's) may share them, with SO_REUSEPORT: that is how UCX's socket binds.
  EXPECT_EQ(bind_error(AF_INET, "127.0.0.1", port, true, false), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    if (::setresgid(65534, 65534, 65534) != 0 || ::setresuid(65534, 65534, 65534) != 0) _exit(2);
    const int v4 = bind_error(AF_INET, "127.0.0.1", port, true, true);
    const int any = bind_error(AF_INET, "0.0.0.0", port, true, false);
    const int v6 = has_ipv6() ? bind_error(AF_INET6, "::", port, true, true) : EADDRINUSE;
    _exit(v4 == EADDRINUSE && any == EADDRINUSE && v6 == EADDRINUSE ? 0 : 1);
  }
  int status = 0;
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  pid_t done = 0;
  while ((done = ::waitpid(child, &status, WNOHANG)) == 0 &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(5ms);
  }
  if (done == 0) {
    ::kill(child, SIGKILL);
    ::waitpid(child, &status, 0);
    FAIL() << "the child did not finish";
  }
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "1: another user bound a reserved port; 2: setresuid failed";
}

TEST(SourcePorts, EachPortIsGivenOutOnceAndConnectsFromIt) {
  auto reserved = SourcePorts::reserve(2);
  ASSERT_TRUE(reserved.has_value()) << reserved.error().message();
  UniqueFd listener(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in at{};
  at.sin_family = AF_INET;
  at.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(listener.get(), reinterpret_cast<const sockaddr*>(&at), sizeof at), 0);
  ASSERT_EQ(::listen(listener.get(), 4), 0);
  socklen_t n = sizeof at;
  ::getsockname(listener.get(), reinterpret_cast<sockaddr*>(&at), &n);
  for (std::size_t i = 0; i < 2; ++i) {
    UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    ASSERT_TRUE(is_unbound_tcp(fd.get()));
    auto port = reserved->bind_next(fd.get());
    ASSERT_TRUE(port.has_value()) << port.error().message();
    EXPECT_EQ(*port, reserved->ports()[i]);
    EXPECT_FALSE(is_unbound_tcp(fd.get()));
    ASSERT_EQ(connect_direct(fd.get(), reinterpret_cast<const sockaddr*>(&at), sizeof at), 0)
        << std::strerror(errno);
    sockaddr_in peer{};
    n = sizeof peer;
    UniqueFd accepted(::accept(listener.get(), reinterpret_cast<sockaddr*>(&peer), &n));
    ASSERT_TRUE(accepted);
    EXPECT_EQ(ntohs(peer.sin_port), *port);  // what the peer's filter sees
  }
  UniqueFd third(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  auto none = reserved->bind_next(third.get());
  ASSERT_FALSE(none.has_value());
  EXPECT_EQ(none.error().code(), ErrorCode::kUnavailable);
  EXPECT_EQ(SourcePorts::reserve(0).error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(SourcePorts::reserve(kMaxSourcePorts + 1).error().code(),
            ErrorCode::kInvalidArgument);
}

TEST(SourcePorts, OnlyUnboundTcpSocketsAreBoundAndTheScopeIsPerThread) {
  UniqueFd udp(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  UniqueFd local(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  EXPECT_FALSE(is_unbound_tcp(udp.get()));
  EXPECT_FALSE(is_unbound_tcp(local.get()));
  EXPECT_FALSE(is_unbound_tcp(-1));
  auto reserved = SourcePorts::reserve(1);
  ASSERT_TRUE(reserved.has_value());
  EXPECT_EQ(connects_from_of_this_thread(), nullptr);
  {
    ConnectsFrom outer(*reserved);
    EXPECT_EQ(connects_from_of_this_thread(), &outer);
    std::thread([] { EXPECT_EQ(connects_from_of_this_thread(), nullptr); }).join();
    {
      ConnectsFrom inner(*reserved);
      EXPECT_EQ(connects_from_of_this_thread(), &inner);
    }
    EXPECT_EQ(connects_from_of_this_thread(), &outer);
  }
  EXPECT_EQ(connects_from_of_this_thread(), nullptr);
}

}  // namespace
}  // namespace shmarray::bridge
