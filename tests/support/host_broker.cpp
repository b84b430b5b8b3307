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

#include "shmarray/socket_path.hpp"

namespace shmarray::test {
namespace {

using namespace std::chrono_literals;
constexpr auto kReadyTimeout = 20s;

// The service manager's end of NOTIFY_SOCKET: a datagram socket bound at `path`.
class NotifyListener {
 public:
  explicit NotifyListener(const std::string& path) {
    fd_.reset(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (!fd_ || path.size() >= sizeof addr.sun_path) return;
    std::memcpy(addr.sun_path, path.data(), path.size());
    ::unlink(path.c_str());
    bound_ = ::bind(fd_.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0;
  }
  [[nodiscard]] bool bound() const { return bound_; }
  // The next datagram, or nullopt after `timeout`.
  [[nodiscard]] std::optional<std::string> next(std::chrono::milliseconds timeout) {
    pollfd p{fd_.get(), POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0) return std::nullopt;
    char buf[4096];
    const ssize_t n = ::recv(fd_.get(), buf, sizeof buf, 0);
    if (n < 0) return std::nullopt;
    return std::string(buf, static_cast<std::size_t>(n));
  }

 private:
  UniqueFd fd_;
  bool bound_ = false;
};

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
  const std::string notify_path = dir_ + "/notify";
  NotifyListener listener(notify_path);
  if (!listener.bound()) return std::unexpected("cannot bind the notify socket " + notify_path);
  std::vector<std::string> argv{shmarrayd_, "--socket", socket_path_, "--log-level",
                                options_.log_level};
  argv.insert(argv.end(), options_.args.begin(), options_.args.end());
  std::vector<std::string> env = options_.env;
  env.push_back("NOTIFY_SOCKET=" + notify_path);
  child_.emplace(hosts_.spawn(host_, argv, env));
  const auto deadline = std::chrono::steady_clock::now() + kReadyTimeout;
  const char* where = host_ == Host::kA ? "host A" : "host B";
  while (std::chrono::steady_clock::now() < deadline) {
    // Short slices only to notice a broker that exited instead of saying READY=1.
    if (auto message = listener.next(100ms)) {
      if (message->find("READY=1") != std::string::npos) {
        ::unlink(notify_path.c_str());
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
