#include "host_broker.hpp"

#include <dirent.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <stop_token>

#include "shmarray/socket_path.hpp"

namespace shmarray::test {
namespace {

using namespace std::chrono_literals;
constexpr auto kReadyTimeout = 20s;

// The service manager's end of NOTIFY_SOCKET: a datagram socket bound at `path` (invalid on error).
UniqueFd bind_notify_socket(const std::string& path) {
  UniqueFd fd(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (!fd || path.size() >= sizeof addr.sun_path) return {};
  std::memcpy(addr.sun_path, path.data(), path.size());
  ::unlink(path.c_str());
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) return {};
  return fd;
}

// The next datagram on `fd`, or nullopt after `timeout`.
std::optional<std::string> next_datagram(int fd, std::chrono::milliseconds timeout) {
  pollfd p{fd, POLLIN, 0};
  if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0) return std::nullopt;
  char buf[4096];
  const ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
  if (n < 0) return std::nullopt;
  return std::string(buf, static_cast<std::size_t>(n));
}

// True while `pid` exists and has not exited (a zombie has).
bool alive(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return false;
  const auto close_paren = line.rfind(')');
  return close_paren != std::string::npos && close_paren + 2 < line.size() &&
         line[close_paren + 2] != 'Z';
}

}  // namespace

std::expected<std::unique_ptr<HostBroker>, std::string> HostBroker::start(
    const TwoHosts& hosts, Host host, Options options, std::string shmarrayd) {
  std::unique_ptr<HostBroker> broker(new HostBroker(hosts, host));
  broker->options_ = std::move(options);
  broker->shmarrayd_ = shmarrayd.empty() ? std::string(SHMARRAYD_PATH) : std::move(shmarrayd);
  char tmpl[] = "/tmp/shmarray-host-XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) return std::unexpected(std::string("mkdtemp failed"));
  broker->dir_ = tmpl;
  broker->socket_path_ = broker->dir_ + "/s.sock";
  if (auto launched = broker->launch(); !launched) return std::unexpected(launched.error());
  return broker;
}

std::expected<void, std::string> HostBroker::launch() {
  if (!notify_) {
    notify_ = bind_notify_socket(dir_ + "/notify");
    if (!notify_) return std::unexpected("cannot bind the notify socket in " + dir_);
  }
  while (next_datagram(notify_.get(), 0ms)) {
  }
  std::vector<std::string> argv{shmarrayd_, "--socket", socket_path_, "--log-level",
                                options_.log_level};
  argv.insert(argv.end(), options_.args.begin(), options_.args.end());
  std::vector<std::string> env = options_.env;
  env.push_back("NOTIFY_SOCKET=" + dir_ + "/notify");
  child_.emplace(hosts_.spawn(host_, argv, env));
  const auto deadline = std::chrono::steady_clock::now() + kReadyTimeout;
  const char* where = host_ == Host::kA ? "host A" : "host B";
  while (std::chrono::steady_clock::now() < deadline) {
    // Short slices only to notice a broker that exited instead of saying READY=1.
    if (auto message = next_datagram(notify_.get(), 100ms)) {
      if (message->find("READY=1") != std::string::npos) {
        start_draining();
        return {};
      }
      continue;
    }
    if (!alive(child_->pid())) {
      const ExitStatus status = child_->wait(1s);
      child_.reset();
      return std::unexpected(std::string("shmarrayd on ") + where + " exited before READY=1 (" +
                             status.describe() + "); its stderr is above");
    }
  }
  child_.reset();  // SIGKILLs and reaps it
  return std::unexpected(std::string("shmarrayd on ") + where + " sent no READY=1 within 20 s");
}

// The broker keeps sending STATUS= (and STOPPING=1) with a blocking sendto: read and drop them
// until it has exited, so its queue never fills (and it never warns that nobody listens).
// The thread only polls and receives into its stack: forking while it runs is safe.
void HostBroker::start_draining() {
  drain_ = std::jthread([fd = notify_.get()](std::stop_token stop) {
    while (!stop.stop_requested()) (void)next_datagram(fd, 100ms);
  });
}

HostBroker::~HostBroker() {
  if (child_) stop(SIGKILL);
  for (const auto& name : segments()) {
    std::error_code ignored;
    std::filesystem::remove(hosts_.shm_dir(host_) + "/" + name, ignored);
  }
  std::error_code ignored;
  std::filesystem::remove_all(dir_, ignored);
}

Result<Client> HostBroker::connect() const { return Client::connect({.socket_path = socket_path_}); }

ExitStatus HostBroker::stop(int signo) {
  if (!child_) return {};
  child_->kill(signo);
  const ExitStatus status = child_->wait(10s);
  child_.reset();
  drain_ = {};  // requests stop and joins
  return status;
}

std::expected<void, std::string> HostBroker::restart() {
  if (child_) stop(SIGTERM);
  return launch();
}

std::vector<std::string> HostBroker::segments() const {
  const std::string prefix = segment_prefix(socket_path_).substr(1);
  std::vector<std::string> out;
  if (DIR* d = ::opendir(hosts_.shm_dir(host_).c_str())) {
    while (const dirent* e = ::readdir(d)) {
      if (std::string(e->d_name).rfind(prefix, 0) == 0) out.emplace_back(e->d_name);
    }
    ::closedir(d);
  }
  return out;
}

}  // namespace shmarray::test
