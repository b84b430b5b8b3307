#include "forked_child.hpp"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <thread>
#include <utility>

namespace shmarray::test {

std::expected<ForkedChild, std::string> ForkedChild::start(const std::function<int()>& body) {
  const pid_t pid = ::fork();
  if (pid < 0) return std::unexpected(std::string("fork: ") + std::strerror(errno));
  if (pid == 0) {
    int rc = 127;
    try {
      rc = body();
    } catch (...) {
    }
    ::_exit(rc);
  }
  return ForkedChild(pid);
}

ForkedChild::ForkedChild(ForkedChild&& other) noexcept : pid_(std::exchange(other.pid_, -1)) {}

ForkedChild& ForkedChild::operator=(ForkedChild&& other) noexcept {
  if (this != &other) {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    pid_ = std::exchange(other.pid_, -1);
  }
  return *this;
}

ForkedChild::~ForkedChild() {
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
}

ExitStatus ForkedChild::wait(std::chrono::milliseconds timeout) {
  if (pid_ <= 0) return {};
  const pid_t pid = pid_;
  pid_ = -1;
  return wait_for_exit(pid, timeout);
}

}  // namespace shmarray::test
