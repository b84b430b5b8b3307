// Who may connect to UCX's listeners (server/src/bridge/listener_admission.hpp): real sockets on
// loopback, the kernel applying the filter.
#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "bridge/listener_admission.hpp"
#include "bridge/source_ports.hpp"
#include "shmarray/unique_fd.hpp"

namespace shmarray::bridge {
namespace {

using namespace std::chrono_literals;

sockaddr_storage address(const char* text, std::uint16_t port = 0) {
  sockaddr_storage s{};
  if (std::strchr(text, ':') == nullptr) {
    auto& a = reinterpret_cast<sockaddr_in&>(s);
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    EXPECT_EQ(::inet_pton(AF_INET, text, &a.sin_addr), 1);
  } else {
    auto& a = reinterpret_cast<sockaddr_in6&>(s);
    a.sin6_family = AF_INET6;
    a.sin6_port = htons(port);
    EXPECT_EQ(::inet_pton(AF_INET6, text, &a.sin6_addr), 1);
  }
  return s;
}

socklen_t length_of(const sockaddr_storage& s) {
  return s.ss_family == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_in6);
}

IpAddress ip(const char* text) { return IpAddress::of(address(text)).value(); }

// Source ports this process may connect from (reserved, so no other socket has them).
const SourcePorts& reserved() {
  static const SourcePorts ports = SourcePorts::reserve(kMaxSourcePorts).value();
  return ports;
}
std::uint16_t source_port(std::size_t i) { return reserved().ports()[i]; }

// A listener on `at` (port chosen by the kernel) that admits `admitted`; its port in `port`.
UniqueFd filtered_listener(const char* at, const Admitted& admitted, std::uint16_t& port) {
  auto where = address(at);
  UniqueFd fd(::socket(where.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&where), length_of(where)) != 0) {
    return UniqueFd();
  }
  EXPECT_TRUE(admit_only(fd.get(), admitted, true).has_value());
  EXPECT_EQ(listen_unfiltered(fd.get(), 16), 0) << std::strerror(errno);
  sockaddr_storage bound{};
  socklen_t n = sizeof bound;
  ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&bound), &n);
  port = ntohs(bound.ss_family == AF_INET ? reinterpret_cast<sockaddr_in&>(bound).sin_port
                                          : reinterpret_cast<sockaddr_in6&>(bound).sin6_port);
  return fd;
}

// True if a connection from `from`:`from_port` (0: any) to `to`:`port` completes within
// `timeout`.
bool connects(const char* from, std::uint16_t from_port, const char* to, std::uint16_t port,
              std::chrono::milliseconds timeout) {
  auto local = address(from, from_port);
  auto remote = address(to, port);
  UniqueFd fd(::socket(local.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  const int one = 1;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);  // the reserved ports
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&local), length_of(local)) != 0) {
    ADD_FAILURE() << "bind " << from << ": " << std::strerror(errno);
    return false;
  }
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&remote), length_of(remote)) == 0) {
    return true;
  }
  pollfd p{fd.get(), POLLOUT, 0};
  if (::poll(&p, 1, static_cast<int>(timeout.count())) != 1) return false;
  int error = 0;
  socklen_t n = sizeof error;
  ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &error, &n);
  return error == 0;
}

bool has_ipv6_loopback() {
  UniqueFd fd(::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0));
  auto a = address("::1");
  return fd && ::bind(fd.get(), reinterpret_cast<const sockaddr*>(&a), length_of(a)) == 0;
}

TEST(ListenerAdmission, AnIpv4ListenerAcceptsOnlyTheAdmittedAddresses) {
  const auto p0 = source_port(0), p1 = source_port(1);
  std::uint16_t port = 0;
  auto l = filtered_listener("127.0.0.1", {{ip("127.0.0.1"), ip("127.0.0.5")}, {p0, p1}}, port);
  ASSERT_TRUE(l);
  EXPECT_TRUE(connects("127.0.0.1", p0, "127.0.0.1", port, 10s));
  EXPECT_TRUE(connects("127.0.0.5", p1, "127.0.0.1", port, 10s));
  // A SYN the filter drops is never answered: the connection stays pending.
  EXPECT_FALSE(connects("127.0.0.3", p0, "127.0.0.1", port, 500ms));
}

TEST(ListenerAdmission, AnAdmittedAddressGetsInOnlyFromAnAdmittedSourcePort) {
  // What another process on the peer's host could try while a link is being set up: the peer's
  // address, but not a port the peer reserved.
  const auto p0 = source_port(0), p2 = source_port(2);
  std::uint16_t port = 0;
  auto l = filtered_listener("127.0.0.1", {{ip("127.0.0.1")}, {p0}}, port);
  ASSERT_TRUE(l);
  EXPECT_FALSE(connects("127.0.0.1", 0, "127.0.0.1", port, 500ms));
  EXPECT_FALSE(connects("127.0.0.1", p2, "127.0.0.1", port, 500ms));
  EXPECT_TRUE(connects("127.0.0.1", p0, "127.0.0.1", port, 10s));
}

TEST(ListenerAdmission, AnEmptyListAdmitsNobody) {
  const auto p0 = source_port(0);
  std::uint16_t port = 0;
  auto nobody = filtered_listener("127.0.0.1", {}, port);
  ASSERT_TRUE(nobody);
  EXPECT_FALSE(connects("127.0.0.1", p0, "127.0.0.1", port, 500ms));
  std::uint16_t no_ports = 0;
  auto l = filtered_listener("127.0.0.1", {{ip("127.0.0.1")}, {}}, no_ports);
  ASSERT_TRUE(l);
  EXPECT_FALSE(connects("127.0.0.1", p0, "127.0.0.1", no_ports, 500ms));
  std::uint16_t no_addresses = 0;
  auto l2 = filtered_listener("127.0.0.1", {{}, {p0}}, no_addresses);
  ASSERT_TRUE(l2);
  EXPECT_FALSE(connects("127.0.0.1", p0, "127.0.0.1", no_addresses, 500ms));
}

TEST(ListenerAdmission, IPv6SourcesAreComparedWholeAndIpv4OnesOnADualStackListener) {
  if (!has_ipv6_loopback()) GTEST_SKIP() << "no IPv6 loopback here";
  const auto p0 = source_port(0), p1 = source_port(1);
  std::uint16_t port = 0;
  auto only_v6 = filtered_listener("::1", {{ip("::1")}, {p0}}, port);
  ASSERT_TRUE(only_v6);
  EXPECT_TRUE(connects("::1", p0, "::1", port, 10s));
  EXPECT_FALSE(connects("::1", p1, "::1", port, 500ms));
  // An address that differs from ::1 in the first word only: still not admitted.
  std::uint16_t other = 0;
  auto near_miss = filtered_listener("::1", {{ip("1::1")}, {p0}}, other);
  ASSERT_TRUE(near_miss);
  EXPECT_FALSE(connects("::1", p0, "::1", other, 500ms));
  // A dual-stack listener (::) sees IPv4 packets for IPv4 clients: the IPv4 list applies.
  std::uint16_t dual = 0;
  auto any = filtered_listener("::", {{ip("127.0.0.1")}, {p0}}, dual);
  ASSERT_TRUE(any);
  EXPECT_TRUE(connects("127.0.0.1", p0, "127.0.0.1", dual, 10s));
  EXPECT_FALSE(connects("127.0.0.3", p0, "127.0.0.1", dual, 500ms));
  EXPECT_FALSE(connects("::1", p0, "::1", dual, 500ms));
}

TEST(ListenerAdmission, ManyAddressesAndPortsStillReachThePortCheck) {
  // 63 IPv6 addresses before the admitted one: the jump to the port check spans more than the
  // 255 instructions a conditional BPF jump can.
  if (!has_ipv6_loopback()) GTEST_SKIP() << "no IPv6 loopback here";
  Admitted admitted;
  for (int i = 1; i < static_cast<int>(kMaxAdmitted); ++i) {
    admitted.addresses.push_back(ip(("2001:db8::" + std::to_string(i)).c_str()));
  }
  admitted.addresses.push_back(ip("::1"));
  for (std::size_t i = 0; i < kMaxAdmittedPorts; ++i) admitted.ports.push_back(source_port(i));
  std::uint16_t port = 0;
  auto l = filtered_listener("::1", admitted, port);
  ASSERT_TRUE(l);
  EXPECT_TRUE(connects("::1", source_port(kMaxAdmittedPorts - 1), "::1", port, 10s));
  EXPECT_FALSE(connects("::1", 0, "::1", port, 500ms));
}

TEST(ListenerAdmission, TheFilterIsLockedAndTheListIsBounded) {
  const auto p0 = source_port(0);
  std::uint16_t port = 0;
  auto l = filtered_listener("127.0.0.1", {{ip("127.0.0.1")}, {p0}}, port);
  ASSERT_TRUE(l);
  // Nobody in this process (UCX included) can swap or remove it afterwards.
  EXPECT_FALSE(admit_only(l.get(), {{ip("127.0.0.3")}, {p0}}, false).has_value());
  EXPECT_NE(::setsockopt(l.get(), SOL_SOCKET, SO_DETACH_FILTER, nullptr, 0), 0);
  EXPECT_FALSE(connects("127.0.0.3", p0, "127.0.0.1", port, 500ms));
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  auto error = admit_only(fd.get(), {std::vector<IpAddress>(kMaxAdmitted + 1, ip("127.0.0.1")),
                                     {p0}}, false);
  ASSERT_FALSE(error.has_value());
  EXPECT_EQ(error.error().code(), ErrorCode::kInvalidArgument);
  auto ports = admit_only(fd.get(), {{ip("127.0.0.1")},
                                     std::vector<std::uint16_t>(kMaxAdmittedPorts + 1, p0)}, false);
  ASSERT_FALSE(ports.has_value());
  EXPECT_EQ(ports.error().code(), ErrorCode::kInvalidArgument);
}

TEST(ListenerAdmission, ARemotePeerCannotGetLoopbackAdmitted) {
  const auto remote = admitted_for(ip("192.0.2.7"), {ip("127.0.0.1"), ip("::1"), ip("192.0.2.8"),
                                                     ip("192.0.2.7"), ip("2001:db8::7")});
  EXPECT_EQ(remote, (std::vector<IpAddress>{ip("192.0.2.7"), ip("192.0.2.8"), ip("2001:db8::7")}));
  // A peer on this host (it connected over loopback) keeps its loopback addresses.
  const auto local = admitted_for(ip("127.0.0.1"), {ip("::1"), ip("10.0.0.1")});
  EXPECT_EQ(local, (std::vector<IpAddress>{ip("127.0.0.1"), ip("::1"), ip("10.0.0.1")}));
  std::vector<IpAddress> many;
  for (int i = 0; i < 100; ++i) {
    many.push_back(ip(("10.0.1." + std::to_string(i)).c_str()));
  }
  EXPECT_EQ(admitted_for(ip("10.0.0.1"), many).size(), kMaxAdmitted);
}

TEST(ListenerAdmission, AScopeSetsWhatThisThreadsListensAdmit) {
  EXPECT_EQ(admission_of_this_thread(), nullptr);
  {
    ListenerAdmission outer({{ip("10.0.0.1")}, {1000}});
    ASSERT_EQ(admission_of_this_thread(), &outer);
    {
      ListenerAdmission inner({{ip("10.0.0.2"), ip("10.0.0.3")}, {1001, 1002}});
      EXPECT_EQ(admission_of_this_thread()->admitted().addresses.size(), 2u);
      EXPECT_EQ(admission_of_this_thread()->admitted().ports[1], 1002);
    }
    EXPECT_EQ(admission_of_this_thread()->admitted().addresses[0], ip("10.0.0.1"));
  }
  EXPECT_EQ(admission_of_this_thread(), nullptr);
  EXPECT_EQ(ip("::ffff:10.0.0.1"), ip("10.0.0.1"));
  EXPECT_EQ(ip("10.0.0.1").to_string(), "10.0.0.1");
  EXPECT_EQ(ip("2001:db8::7").to_string(), "2001:db8::7");
}

TEST(ListenerAdmission, ClosedListenersAdmitNobodyMoreButKeepTheirConnections) {
  auto where = address("127.0.0.1");
  UniqueFd l(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  ASSERT_EQ(::bind(l.get(), reinterpret_cast<const sockaddr*>(&where), length_of(where)), 0);
  const auto p0 = source_port(0), p1 = source_port(1);
  ASSERT_TRUE(admit_only(l.get(), {{ip("127.0.0.1")}, {p0, p1}}, false));
  ASSERT_EQ(listen_unfiltered(l.get(), 16), 0);
  sockaddr_in bound{};
  socklen_t n = sizeof bound;
  ::getsockname(l.get(), reinterpret_cast<sockaddr*>(&bound), &n);
  const std::uint16_t port = ntohs(bound.sin_port);
  // The peer's connection, made while the listener admitted it.
  auto peer = address("127.0.0.1", port);
  auto from = address("127.0.0.1", p0);
  UniqueFd c(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  const int one = 1;
  ASSERT_EQ(::setsockopt(c.get(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one), 0);
  ASSERT_EQ(::bind(c.get(), reinterpret_cast<const sockaddr*>(&from), sizeof(sockaddr_in)), 0);
  ASSERT_EQ(::connect(c.get(), reinterpret_cast<const sockaddr*>(&peer), sizeof(sockaddr_in)), 0);
  UniqueFd accepted(::accept(l.get(), nullptr, nullptr));
  ASSERT_TRUE(accepted);
  ASSERT_TRUE(close_listeners({l.get()}));
  EXPECT_FALSE(connects("127.0.0.1", p1, "127.0.0.1", port, 500ms));
  EXPECT_FALSE(admit_only(l.get(), {{ip("127.0.0.1")}, {p1}}, false).has_value())
      << "not locked";
  // The connection made before still carries bytes both ways.
  ASSERT_EQ(::send(c.get(), "x", 1, 0), 1);
  char got = 0;
  ASSERT_EQ(::recv(accepted.get(), &got, 1, 0), 1);
  EXPECT_EQ(got, 'x');
  ASSERT_EQ(::send(accepted.get(), "y", 1, 0), 1);
  ASSERT_EQ(::recv(c.get(), &got, 1, 0), 1);
  EXPECT_EQ(got, 'y');
}

}  // namespace
}  // namespace shmarray::bridge
