#include "bridge_supervisor.hpp"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <spdlog/fmt/ranges.h>
#include <spdlog/spdlog.h>
#include <thread>

namespace shmarray::server {

std::string default_bridge_program() {
  if (const char* env = std::getenv("SHMARRAY_BRIDGE"); env != nullptr && *env != '\0') return env;
  char self[4096];
  const ssize_t n = ::readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) return "shmarray-bridge";
  std::string path(self, static_cast<std::size_t>(n));
  return path.substr(0, path.rfind('/') + 1) + "shmarray-bridge";
}

BridgeSupervisor::BridgeSupervisor(boost::asio::io_context& io, std::string program)
    : io_(io), program_(std::move(program)), pidfd_(io), restart_timer_(io), kill_timer_(io) {}

BridgeSupervisor::~BridgeSupervisor() {
  stopped_ = true;
  kill_and_reap();
}

void BridgeSupervisor::run(std::vector<std::string> args) {
  if (stopped_) return;
  if (args.empty()) {  // nothing to serve or mirror any more
    args_.clear();
    restart_timer_.cancel();
    terminate();
    return;
  }
  if (args == args_ && (pid_ > 0 || restart_pending_)) return;
  args_ = std::move(args);
  backoff_ = std::chrono::milliseconds(200);
  if (pid_ > 0) {
    // Asynchronous: the old bridge may be waiting for this broker's answer right now.
    spdlog::info("bridge: restarting pid {} with the new configuration", pid_);
    restart_pending_ = true;
    terminate();
    return;
  }
  spawn();
}

void BridgeSupervisor::spawn() {
  restart_timer_.cancel();
  restart_pending_ = false;
  // argv is built before fork: the child only makes async-signal-safe calls before exec.
  std::vector<std::string> all{program_};
  all.insert(all.end(), args_.begin(), args_.end());
  std::vector<char*> argv;
  for (auto& a : all) argv.push_back(a.data());
  argv.push_back(nullptr);
  const pid_t parent = ::getpid();
  // Before the child exists: every connection it makes is accepted later (Broker::is_bridge).
  started_ = std::chrono::steady_clock::now();
  const pid_t child = ::fork();
  if (child < 0) {
    spdlog::error("bridge: cannot fork: {}", std::strerror(errno));
    pid_ = -1;
    reap_and_restart();
    return;
  }
  if (child == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (::getppid() != parent) ::_exit(0);  // the broker died before prctl took effect
    ::dup2(STDERR_FILENO, STDOUT_FILENO);  // anything printed goes where the broker logs
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::execv(program_.c_str(), argv.data());
    ::_exit(127);
  }
  pid_ = child;
  spdlog::info("bridge: started {} (pid {})", program_, pid_);
  spdlog::debug("bridge arguments: {}", fmt::join(args_, " "));
  watch();
}

void BridgeSupervisor::watch() {
  const int fd = static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0));
  if (fd < 0) {
    spdlog::warn("bridge: pidfd_open: {}; its death will not be noticed", std::strerror(errno));
    return;
  }
  boost::system::error_code ec;
  pidfd_.close(ec);
  pidfd_.assign(fd, ec);
  pidfd_.async_wait(boost::asio::posix::stream_descriptor::wait_read,
                    [this, watched = pid_](boost::system::error_code e) {
                      if (e || watched != pid_) return;
                      reap_and_restart();
                    });
}

void BridgeSupervisor::reap_and_restart() {
  if (pid_ > 0) {
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      if (terminating_) {
        spdlog::info("bridge: pid {} stopped", pid_);
      } else if (WIFSIGNALED(status)) {
        spdlog::warn("bridge: pid {} was killed by signal {}", pid_, WTERMSIG(status));
      } else {
        spdlog::warn("bridge: pid {} exited with status {}", pid_, WEXITSTATUS(status));
      }
    }
    pid_ = -1;
  }
  terminating_ = false;
  kill_timer_.cancel();
  boost::system::error_code ec;
  pidfd_.close(ec);
  if (stopped_ || args_.empty()) return;
  if (restart_pending_) return spawn();
  if (std::chrono::steady_clock::now() - started_ > std::chrono::seconds(30)) {
    backoff_ = std::chrono::milliseconds(200);
  }
  spdlog::info("bridge: restarting in {} ms", backoff_.count());
  restart_timer_.expires_after(backoff_);
  backoff_ = std::min(backoff_ * 2, std::chrono::milliseconds(10'000));
  restart_timer_.async_wait([this](boost::system::error_code e) {
    if (!e && !stopped_ && pid_ < 0) spawn();
  });
}

void BridgeSupervisor::terminate() {
  if (pid_ <= 0 || terminating_) return;
  terminating_ = true;
  ::kill(pid_, SIGTERM);
  kill_timer_.expires_after(std::chrono::seconds(2));
  kill_timer_.async_wait([this, victim = pid_](boost::system::error_code e) {
    if (e || victim != pid_) return;
    spdlog::warn("bridge: pid {} did not stop within 2 s of SIGTERM: SIGKILL", victim);
    ::kill(victim, SIGKILL);
  });
}

void BridgeSupervisor::kill_and_reap() {
  if (pid_ <= 0) return;
  boost::system::error_code ec;
  pidfd_.close(ec);
  kill_timer_.cancel();
  ::kill(pid_, SIGTERM);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  int status = 0;
  while (::waitpid(pid_, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() >= deadline) {
      spdlog::warn("bridge: pid {} did not stop within 2 s of SIGTERM: SIGKILL", pid_);
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, &status, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  pid_ = -1;
}

void BridgeSupervisor::stop() {
  if (stopped_) return;
  stopped_ = true;
  restart_timer_.cancel();
  terminate();  // reaped by the pidfd handler, or at the latest by the destructor
}

}  // namespace shmarray::server
