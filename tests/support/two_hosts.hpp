#pragma once
// Two "hosts" on one machine, for tests and benchmarks of mirrors across hosts (issue 15).
//
// Host A: a network namespace. Host B: a second network namespace joined to A by a veth pair
// (A = 10.77.x.1/24, B = 10.77.x.2/24, both called `veth0` inside their namespace), plus its own
// mount namespace with a private tmpfs on /dev/shm, so that nothing on B (the mirror broker, its
// bridge) can open A's segments by name. The B mount namespace is held by a small holder process
// (`cat`, child of this one, killed at teardown); every process "on B" enters the holder's
// network and mount namespaces with nsenter; processes "on A" start with `ip netns exec`, which
// also mounts the namespace's own /sys (UCX lists network devices there). Both exec the program
// in the same process, so its pid and signals are the program's own.
//
// With Options::loopback, B shares A's network namespace (both reach each other on 127.0.0.1) but
// keeps its private /dev/shm: the loopback baseline of the benchmark.
//
// Teardown (the destructor, also when a test fails): every process left in either namespace is
// SIGKILLed (by pid, from `ip netns pids`: the brokers, their bridges, helpers) and reaped when it
// is ours, then both namespaces are deleted (the veth pair goes with them, B's tmpfs with its last
// process). Namespaces of a test process that died without teardown are deleted by the next
// create() (their names carry the dead pid).
//
// Needs root (CAP_SYS_ADMIN + CAP_NET_ADMIN), iproute2 (`ip`) and util-linux (`nsenter`,
// `unshare`). create() says plainly which is missing; tests skip with that reason.
//
// Thread safety: none; one test thread uses it. Nothing here depends on GoogleTest, so the
// benchmark links it too.
#include <sys/types.h>

#include <chrono>
#include <expected>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "process.hpp"

namespace shmarray::test {

enum class Host { kA, kB };

class TwoHosts {
 public:
  struct Options {
    bool loopback = false;  // B in A's network namespace (127.0.0.1), private /dev/shm still
  };

  // Makes the namespaces, the link and B's /dev/shm. Error: a sentence saying what failed and
  // why (not root, no `ip`, ...); `skippable` is true when the machine cannot make namespaces at
  // all (a test should skip), false for a failure after namespaces worked (a test should fail).
  struct Failure {
    std::string reason;
    bool skippable = false;
  };
  [[nodiscard]] static std::expected<std::unique_ptr<TwoHosts>, Failure> create(Options options);
  [[nodiscard]] static std::expected<std::unique_ptr<TwoHosts>, Failure> create() {
    return create(Options{});
  }

  ~TwoHosts();
  TwoHosts(const TwoHosts&) = delete;
  TwoHosts& operator=(const TwoHosts&) = delete;

  // The address other hosts reach `host` at ("10.77.x.1", or "127.0.0.1" with loopback).
  [[nodiscard]] const std::string& address(Host host) const;
  // The network namespace's name (under /run/netns).
  [[nodiscard]] const std::string& netns(Host host) const;
  // The link's device name inside each namespace ("veth0").
  [[nodiscard]] static const char* link_device() { return "veth0"; }
  // Command prefix that runs a program on `host` (ip netns exec A / nsenter -t HOLDER -m -n --).
  [[nodiscard]] std::vector<std::string> prefix(Host host) const;
  // argv run on `host`, stdout captured (see ChildProcess). argv[0] is an absolute path.
  [[nodiscard]] ChildProcess spawn(Host host, const std::vector<std::string>& argv,
                                   const std::vector<std::string>& extra_env = {}) const;
  [[nodiscard]] RunResult run(Host host, const std::vector<std::string>& argv,
                              std::chrono::milliseconds timeout = std::chrono::seconds(30),
                              const std::vector<std::string>& extra_env = {}) const;
  // Moves the calling process into `host`'s namespaces (network; for B also the mount namespace
  // with its /dev/shm). For a child just forked (single-threaded) that then runs code "on" the
  // host: the harness test's echo server, the benchmark's TCP floor. Error: the failed setns.
  [[nodiscard]] std::expected<void, std::string> enter(Host host) const;
  // Where `host`'s /dev/shm is seen from this process ("/dev/shm" for A; B's private tmpfs
  // through /proc/<holder>/root/dev/shm).
  [[nodiscard]] std::string shm_dir(Host host) const;

  // Takes the veth link down / up (both ends); link_up() and create() return once both ends
  // say "state UP" (UCX refuses a device that is not up yet). Error: ip's message, or the link
  // not up within 10 s. No-ops with loopback.
  [[nodiscard]] std::expected<void, std::string> link_down();
  [[nodiscard]] std::expected<void, std::string> link_up();

 private:
  TwoHosts() = default;
  [[nodiscard]] std::expected<void, Failure> build(Options options);
  [[nodiscard]] std::expected<void, std::string> hold_private_dev_shm();
  [[nodiscard]] std::expected<void, std::string> set_link(const char* state);
  void kill_namespace_processes();

  bool loopback_ = false;
  std::string netns_a_;
  std::string netns_b_;
  std::string address_a_;
  std::string address_b_;
  bool created_a_ = false;
  bool created_b_ = false;
  std::optional<ChildProcess> holder_;  // keeps B's mount namespace (and tmpfs) alive
};

// Runs a command (absolute argv[0]) and returns its exit status and everything it printed on
// stdout and stderr, with a timeout. For setup commands of the harness (`ip ...`).
[[nodiscard]] RunResult run_command(const std::vector<std::string>& argv,
                                    std::chrono::milliseconds timeout = std::chrono::seconds(10));

}  // namespace shmarray::test
