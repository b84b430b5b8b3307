#include "two_hosts.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <sstream>
#include <thread>

namespace shmarray::test {
namespace {

using namespace std::chrono_literals;

constexpr const char* kNamePrefix = "shmarray-h";

std::string find_tool(const std::string& name) {
  for (const char* dir : {"/usr/sbin/", "/usr/bin/", "/sbin/", "/bin/"}) {
    const std::string path = dir + name;
    if (::access(path.c_str(), X_OK) == 0) return path;
  }
  return {};
}

std::string ip_tool() {
  static const std::string path = find_tool("ip");
  return path;
}

std::string nsenter_tool() {
  static const std::string path = find_tool("nsenter");
  return path;
}

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

// Pids of the processes in network namespace `name` (empty when none or when it is gone).
std::vector<pid_t> netns_pids(const std::string& name) {
  const RunResult r = run_command({ip_tool(), "netns", "pids", name}, 5s);
  std::vector<pid_t> pids;
  std::istringstream in(r.out);
  for (long pid = 0; in >> pid;) {
    if (pid > 1 && pid != ::getpid()) pids.push_back(static_cast<pid_t>(pid));
  }
  return pids;
}

// SIGKILLs what runs in `name` until nothing does (5 s at most): a process that has exited
// (zombie or reaped) no longer holds the namespace. Killed again on every look, because a
// process started just before (still in `ip netns exec`) may join the namespace meanwhile.
void empty_netns(const std::string& name) {
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  for (;;) {
    const std::vector<pid_t> pids = netns_pids(name);
    if (pids.empty() || std::chrono::steady_clock::now() >= deadline) return;
    for (const pid_t pid : pids) ::kill(pid, SIGKILL);
    std::this_thread::sleep_for(20ms);
  }
}

// Waits (10 s at most) until `device` in each of `namespaces` says "state UP": the kernel turns
// a new or re-enabled veth's operstate up asynchronously (linkwatch, up to about a second), and
// UCX refuses a device that is not up yet ("network device 'veth0' is not available").
bool wait_operstate_up(const std::vector<std::string>& namespaces, const char* device) {
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  for (;;) {
    bool all_up = true;
    for (const auto& ns : namespaces) {
      const RunResult r = run_command({ip_tool(), "-n", ns, "-o", "link", "show", device}, 5s);
      all_up = all_up && r.out.find("state UP") != std::string::npos;
    }
    if (all_up) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(20ms);
  }
}

// Namespaces named after a test process that no longer exists (it died without its teardown).
void sweep_stale_namespaces() {
  DIR* d = ::opendir("/run/netns");
  if (d == nullptr) return;
  std::vector<std::string> stale;
  while (const dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    if (name.rfind(kNamePrefix, 0) != 0) continue;
    const long pid = std::atol(name.c_str() + std::char_traits<char>::length(kNamePrefix));
    if (pid > 0 && ::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) {
      stale.push_back(name);
    }
  }
  ::closedir(d);
  for (const auto& name : stale) {
    empty_netns(name);
    (void)run_command({ip_tool(), "netns", "del", name}, 5s);
  }
}

}  // namespace

RunResult run_command(const std::vector<std::string>& argv, std::chrono::milliseconds timeout) {
  std::vector<std::string> wrapped{"/bin/sh", "-c", "exec \"$0\" \"$@\" 2>&1"};
  wrapped.insert(wrapped.end(), argv.begin(), argv.end());
  return run(wrapped, timeout);
}

std::expected<std::unique_ptr<TwoHosts>, TwoHosts::Failure> TwoHosts::create(Options options) {
  std::unique_ptr<TwoHosts> hosts(new TwoHosts());
  if (auto built = hosts->build(options); !built) return std::unexpected(built.error());
  return hosts;
}

std::expected<void, TwoHosts::Failure> TwoHosts::build(Options options) {
  const auto skip = [](std::string why) {
    return std::unexpected(Failure{"cannot make two hosts here: " + std::move(why), true});
  };
  const auto fail = [](std::string why) {
    return std::unexpected(Failure{"two hosts: " + std::move(why), false});
  };
  if (::geteuid() != 0) return skip("network namespaces need root (run the tests as root)");
  if (ip_tool().empty()) return skip("no `ip` (apt-get install iproute2)");
  if (nsenter_tool().empty() || find_tool("unshare").empty()) {
    return skip("no `nsenter`/`unshare` (apt-get install util-linux)");
  }
  sweep_stale_namespaces();

  static std::atomic<int> counter{0};
  const int n = counter.fetch_add(1);
  const std::string stem =
      kNamePrefix + std::to_string(::getpid()) + "-" + std::to_string(n) + "-";
  loopback_ = options.loopback;
  netns_a_ = stem + "a";
  netns_b_ = loopback_ ? netns_a_ : stem + "b";
  const std::string ip = ip_tool();
  if (auto r = run_command({ip, "netns", "add", netns_a_}); !r.status.ok()) {
    return skip("`ip netns add` failed (needs CAP_SYS_ADMIN): " + trim(r.out));
  }
  created_a_ = true;
  if (!loopback_) {
    if (auto r = run_command({ip, "netns", "add", netns_b_}); !r.status.ok()) {
      return fail("`ip netns add " + netns_b_ + "`: " + trim(r.out));
    }
    created_b_ = true;
  }
  // 10.77.x.0/24: the namespaces are private, so only tidiness asks for x to differ per test.
  const int x = static_cast<int>((static_cast<unsigned>(::getpid()) * 7u + n) % 250u) + 1;
  address_a_ = loopback_ ? "127.0.0.1" : "10.77." + std::to_string(x) + ".1";
  address_b_ = loopback_ ? "127.0.0.1" : "10.77." + std::to_string(x) + ".2";
  std::vector<std::vector<std::string>> steps{{ip, "-n", netns_a_, "link", "set", "lo", "up"}};
  if (!loopback_) {
    const std::string dev = link_device();
    steps.push_back({ip, "-n", netns_b_, "link", "set", "lo", "up"});
    steps.push_back({ip, "-n", netns_a_, "link", "add", dev, "type", "veth", "peer", "name", dev,
                     "netns", netns_b_});
    steps.push_back({ip, "-n", netns_a_, "addr", "add", address_a_ + "/24", "dev", dev});
    steps.push_back({ip, "-n", netns_b_, "addr", "add", address_b_ + "/24", "dev", dev});
    steps.push_back({ip, "-n", netns_a_, "link", "set", dev, "up"});
    steps.push_back({ip, "-n", netns_b_, "link", "set", dev, "up"});
  }
  for (const auto& step : steps) {
    if (auto r = run_command(step); !r.status.ok()) {
      std::string line;
      for (const auto& a : step) line += (line.empty() ? "" : " ") + a;
      return fail("`" + line + "`: " + trim(r.out));
    }
  }
  if (!loopback_ && !wait_operstate_up({netns_a_, netns_b_}, link_device())) {
    return fail("the veth link did not come up within 10 s");
  }
  if (auto held = hold_private_dev_shm(); !held) return fail(held.error());
  return {};
}

std::expected<void, std::string> TwoHosts::hold_private_dev_shm() {
  // B's mount namespace: a private tmpfs on /dev/shm, held by `cat` (which exits when this
  // process closes its stdin or dies). "ready" on stdout once the tmpfs is mounted.
  // `ip netns exec` (not a bare nsenter --net) because it also mounts the namespace's own /sys:
  // UCX finds its network devices there (under nsenter --net it sees only the host's `lo`).
  holder_.emplace(ChildProcess::spawn(
      {ip_tool(), "netns", "exec", netns_b_, find_tool("unshare"), "-m",
       "--propagation", "private", "/bin/sh", "-c",
       "mount -t tmpfs -o mode=1777 shmarray-host-b /dev/shm && echo ready && exec cat"}));
  const auto ready = holder_->read_line(10s);
  if (!ready || *ready != "ready") {
    return std::unexpected("could not give host B a private /dev/shm (unshare -m + mount -t tmpfs): " +
                           std::string(ready ? *ready : "no answer within 10 s"));
  }
  return {};
}

TwoHosts::~TwoHosts() {
  // Everything in the namespaces first (brokers, bridges, helpers, the holder), then the names.
  if (created_b_) empty_netns(netns_b_);
  if (created_a_) empty_netns(netns_a_);
  holder_.reset();  // reaps the holder (already killed above when it ran in B's netns)
  if (created_b_) (void)run_command({ip_tool(), "netns", "del", netns_b_});
  if (created_a_) (void)run_command({ip_tool(), "netns", "del", netns_a_});
}

const std::string& TwoHosts::address(Host host) const {
  return host == Host::kA ? address_a_ : address_b_;
}

const std::string& TwoHosts::netns(Host host) const {
  return host == Host::kA ? netns_a_ : netns_b_;
}

std::vector<std::string> TwoHosts::prefix(Host host) const {
  // ip netns exec: A's network, its own /sys (see build()), this machine's /dev/shm.
  if (host == Host::kA) return {ip_tool(), "netns", "exec", netns_a_};
  return {nsenter_tool(), "-t", std::to_string(holder_->pid()), "-m", "-n", "--"};
}

ChildProcess TwoHosts::spawn(Host host, const std::vector<std::string>& argv,
                             const std::vector<std::string>& extra_env) const {
  std::vector<std::string> full = prefix(host);
  full.insert(full.end(), argv.begin(), argv.end());
  return ChildProcess::spawn(full, extra_env);
}

RunResult TwoHosts::run(Host host, const std::vector<std::string>& argv,
                        std::chrono::milliseconds timeout,
                        const std::vector<std::string>& extra_env) const {
  std::vector<std::string> full = prefix(host);
  full.insert(full.end(), argv.begin(), argv.end());
  return test::run(full, timeout, extra_env);
}

std::string TwoHosts::shm_dir(Host host) const {
  if (host == Host::kA) return "/dev/shm";
  return "/proc/" + std::to_string(holder_->pid()) + "/root/dev/shm";
}

std::expected<void, std::string> TwoHosts::enter(Host host) const {
  const std::string holder = "/proc/" + std::to_string(holder_->pid()) + "/ns/";
  const std::string net = host == Host::kA ? "/run/netns/" + netns_a_ : holder + "net";
  UniqueFd net_fd(::open(net.c_str(), O_RDONLY | O_CLOEXEC));
  UniqueFd mnt_fd;
  if (host == Host::kB) mnt_fd.reset(::open((holder + "mnt").c_str(), O_RDONLY | O_CLOEXEC));
  if (!net_fd || (host == Host::kB && !mnt_fd)) {
    return std::unexpected("cannot open the namespaces of host " +
                           std::string(host == Host::kA ? "A" : "B") + ": " + std::strerror(errno));
  }
  if (::setns(net_fd.get(), CLONE_NEWNET) != 0) {
    return std::unexpected(std::string("setns(network): ") + std::strerror(errno));
  }
  if (mnt_fd && ::setns(mnt_fd.get(), CLONE_NEWNS) != 0) {
    return std::unexpected(std::string("setns(mount): ") + std::strerror(errno));
  }
  return {};
}

std::expected<void, std::string> TwoHosts::set_link(const char* state) {
  if (loopback_) return {};
  for (const auto& ns : {netns_a_, netns_b_}) {
    const RunResult r = run_command({ip_tool(), "-n", ns, "link", "set", link_device(), state});
    if (!r.status.ok()) return std::unexpected("ip link set " + std::string(state) + ": " + r.out);
  }
  return {};
}

std::expected<void, std::string> TwoHosts::link_down() { return set_link("down"); }

std::expected<void, std::string> TwoHosts::link_up() {
  if (auto up = set_link("up"); !up) return up;
  if (!loopback_ && !wait_operstate_up({netns_a_, netns_b_}, link_device())) {
    return std::unexpected(std::string("the veth link did not come back up within 10 s"));
  }
  return {};
}

}  // namespace shmarray::test
