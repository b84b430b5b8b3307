// The two-hosts harness itself (tests/support/two_hosts.*): TCP crosses the veth link between
// the namespaces, and fails while the link is down; host B's /dev/shm is private; a broker on B
// keeps its segments there; teardown leaves no namespace and no process. Skipped, with the
// reason, where namespaces cannot be made (not root, no CAP_SYS_ADMIN, no iproute2).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "forked_child.hpp"
#include "shmarray/socket_path.hpp"
#include "host_broker.hpp"
#include "tcp_socket.hpp"
#include "two_hosts.hpp"

namespace shmarray::test {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

#define MAKE_TWO_HOSTS(var, options)                                        \
  auto var##_made = TwoHosts::create(options);                              \
  if (!var##_made) {                                                        \
    if (var##_made.error().skippable) GTEST_SKIP() << var##_made.error().reason; \
    FAIL() << var##_made.error().reason;                                    \
  }                                                                         \
  TwoHosts& var = **var##_made

// A forked child enters host B's mount namespace, which setns() refuses to a multi-threaded
// process (EINVAL); under TSan the runtime's own thread makes every forked child one. The harness
// these tests check is the same in the plain and ASan builds, where they run.
#if defined(__SANITIZE_THREAD__)
#define SKIP_FORKED_ENTRY_UNDER_TSAN()                                                        \
  GTEST_SKIP() << "under TSan a forked child is multi-threaded, and setns(CLONE_NEWNS) refuses " \
                  "that: this test runs in the plain and ASan builds"
#else
#define SKIP_FORKED_ENTRY_UNDER_TSAN() (void)0
#endif

// An echo server on `host`: tells its port through `port_pipe`, then echoes every connection
// until the peer closes it, accepting for 60 s at most. The parent kills it at the end.
ForkedChild start_echo_server(const TwoHosts& hosts, Host host, int port_pipe) {
  auto child = ForkedChild::start([&hosts, host, port_pipe]() -> int {
    if (auto entered = hosts.enter(host); !entered) {
      std::fprintf(stderr, "cannot enter the host: %s\n", entered.error().c_str());
      return 2;
    }
    auto listener = tcp_listen(hosts.address(host));
    if (!listener) return 3;
    const std::uint16_t port = local_port(listener->get());
    if (::write(port_pipe, &port, sizeof port) != sizeof port) return 4;
    for (;;) {
      auto conn = tcp_accept(listener->get(), 60s);
      if (!conn) return 5;
      char byte = 0;
      while (recv_all(conn->get(), &byte, 1, 60s) && send_all(conn->get(), &byte, 1, 10s)) {
      }
    }
  });
  if (!child) throw std::runtime_error(child.error());
  return std::move(*child);
}

// Connects from `from` to the echo server and checks "ping" comes back. 0 = echoed.
int echo_from(const TwoHosts& hosts, Host from, const std::string& to, std::uint16_t port,
              std::chrono::milliseconds connect_timeout) {
  auto child = ForkedChild::start([&]() -> int {
    if (auto entered = hosts.enter(from); !entered) {
      std::fprintf(stderr, "cannot enter the host: %s\n", entered.error().c_str());
      return 2;
    }
    auto conn = tcp_connect(to, port, connect_timeout);
    if (!conn) return 10;  // could not connect
    const std::string ping = "ping";
    std::array<char, 4> back{};
    if (!send_all(conn->get(), ping.data(), ping.size(), 5s)) return 11;
    if (!recv_all(conn->get(), back.data(), back.size(), 5s)) return 12;
    return std::string(back.data(), back.size()) == ping ? 0 : 13;
  });
  if (!child) return -1;
  const ExitStatus status = child->wait(30s);
  return status.timed_out || status.signal != 0 ? -2 : status.exit_code;
}

TEST(TwoHosts, TcpEchoCrossesTheLinkAndFailsWhileItIsDown) {
  SKIP_FORKED_ENTRY_UNDER_TSAN();
  MAKE_TWO_HOSTS(hosts, TwoHosts::Options{});
  int fds[2];
  ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0);
  auto server = start_echo_server(hosts, Host::kB, fds[1]);
  ::close(fds[1]);
  std::uint16_t port = 0;
  pollfd p{fds[0], POLLIN, 0};
  ASSERT_EQ(::poll(&p, 1, 10000), 1) << "the echo server on B did not report its port in 10 s";
  ASSERT_EQ(::read(fds[0], &port, sizeof port), static_cast<ssize_t>(sizeof port));
  ::close(fds[0]);
  const std::string b = hosts.address(Host::kB);

  EXPECT_EQ(echo_from(hosts, Host::kA, b, port, 10s), 0) << "A -> " << b << " echo";

  ASSERT_TRUE(hosts.link_down());
  EXPECT_EQ(echo_from(hosts, Host::kA, b, port, 2s), 10)
      << "A reached B with the link down (0 = echoed)";

  ASSERT_TRUE(hosts.link_up());
  EXPECT_EQ(echo_from(hosts, Host::kA, b, port, 10s), 0) << "no echo after link_up()";
}

TEST(TwoHosts, HostBDevShmIsPrivate) {
  MAKE_TWO_HOSTS(hosts, TwoHosts::Options{});
  const std::string name = "shmarray-two-hosts-" + std::to_string(::getpid());
  auto made = hosts.run(Host::kB, {"/bin/sh", "-c", "echo b > /dev/shm/" + name});
  ASSERT_TRUE(made.status.ok()) << made.status.describe();
  EXPECT_TRUE(fs::exists(hosts.shm_dir(Host::kB) + "/" + name)) << "not in B's /dev/shm";
  EXPECT_FALSE(fs::exists("/dev/shm/" + name)) << "a file made on B appeared in /dev/shm here";

  // And B does not see this machine's /dev/shm (where A's broker keeps its segments).
  { std::ofstream("/dev/shm/" + name + "-a") << "a"; }
  auto seen = hosts.run(Host::kB, {"/bin/sh", "-c", "test -e /dev/shm/" + name + "-a"});
  EXPECT_EQ(seen.status.exit_code, 1) << "B sees a file of the host's /dev/shm";
  fs::remove("/dev/shm/" + name + "-a");
  // Host A is this machine's /dev/shm.
  EXPECT_EQ(hosts.shm_dir(Host::kA), "/dev/shm");
}

TEST(TwoHosts, BrokerOnBKeepsItsSegmentsInBsDevShm) {
  MAKE_TWO_HOSTS(hosts, TwoHosts::Options{});
  auto broker = HostBroker::start(hosts, Host::kB, {});
  ASSERT_TRUE(broker) << broker.error();
  auto client = (*broker)->connect();
  ASSERT_TRUE(client) << client.error().message();
  {
    auto array = client->create("hosts/b", ArraySpec{.dtype = "<u4", .shape = {1024}});
    ASSERT_TRUE(array) << array.error().message();
    (*array->as<std::uint32_t>())[7] = 77;  // this process maps B's pages through the passed fd
    ASSERT_EQ((*broker)->segments().size(), 1u) << "the segment is not in B's /dev/shm";
    const std::string prefix = segment_prefix((*broker)->socket_path()).substr(1);
    for (const auto& e : fs::directory_iterator("/dev/shm")) {
      EXPECT_NE(e.path().filename().string().rfind(prefix, 0), 0u)
          << "B's segment is visible in this machine's /dev/shm: " << e.path();
    }
  }
  ASSERT_TRUE(client->remove("hosts/b"));
  const ExitStatus stopped = (*broker)->stop(SIGTERM);
  EXPECT_TRUE(stopped.ok()) << stopped.describe();
  EXPECT_TRUE((*broker)->segments().empty());
}

// A process that has exited (reaped or zombie) no longer runs.
bool runs(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return false;
  return line.substr(line.rfind(')') + 2, 1) != "Z";
}

TEST(TwoHosts, TeardownKillsEverythingInsideAndDeletesTheNamespaces) {
  std::optional<ChildProcess> on_a;
  std::optional<ChildProcess> on_b;
  std::string netns_a;
  std::string netns_b;
  {
    MAKE_TWO_HOSTS(hosts, TwoHosts::Options{});
    netns_a = hosts.netns(Host::kA);
    netns_b = hosts.netns(Host::kB);
    on_a.emplace(hosts.spawn(Host::kA, {"/bin/cat"}));
    on_b.emplace(hosts.spawn(Host::kB, {"/bin/cat"}));
    ASSERT_TRUE(fs::exists("/run/netns/" + netns_a));
    ASSERT_TRUE(runs(on_a->pid()));
    ASSERT_TRUE(runs(on_b->pid()));
  }  // TwoHosts destroyed here
  EXPECT_FALSE(runs(on_a->pid())) << "a process on A outlived the harness";
  EXPECT_FALSE(runs(on_b->pid())) << "a process on B outlived the harness";
  EXPECT_FALSE(fs::exists("/run/netns/" + netns_a));
  EXPECT_FALSE(fs::exists("/run/netns/" + netns_b));
}

TEST(TwoHosts, LoopbackVariantSharesOneNetworkButKeepsBsDevShmPrivate) {
  SKIP_FORKED_ENTRY_UNDER_TSAN();
  MAKE_TWO_HOSTS(hosts, TwoHosts::Options{.loopback = true});
  EXPECT_EQ(hosts.address(Host::kA), "127.0.0.1");
  EXPECT_EQ(hosts.netns(Host::kA), hosts.netns(Host::kB));
  int fds[2];
  ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0);
  auto server = start_echo_server(hosts, Host::kB, fds[1]);
  ::close(fds[1]);
  std::uint16_t port = 0;
  pollfd p{fds[0], POLLIN, 0};
  ASSERT_EQ(::poll(&p, 1, 10000), 1);
  ASSERT_EQ(::read(fds[0], &port, sizeof port), static_cast<ssize_t>(sizeof port));
  ::close(fds[0]);
  EXPECT_EQ(echo_from(hosts, Host::kA, "127.0.0.1", port, 10s), 0);
  EXPECT_NE(hosts.shm_dir(Host::kB), "/dev/shm");
}

}  // namespace
}  // namespace shmarray::test
