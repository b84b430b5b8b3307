#pragma once
// A forked copy of this process running one function (no exec), killed (SIGKILL) and reaped by
// the destructor if still running. For code that must run in another namespace without a helper
// binary: TwoHosts::enter() in the child, then the body (an echo server, the TCP floor's ends).
// Fork only while this process has a single thread (the child gets only the caller's thread).
#include <sys/types.h>

#include <chrono>
#include <expected>
#include <functional>
#include <string>

#include "process.hpp"

namespace shmarray::test {

class ForkedChild {
 public:
  // Forks; the child runs `body` and _exits with its return value (127 if it throws).
  [[nodiscard]] static std::expected<ForkedChild, std::string> start(
      const std::function<int()>& body);
  ForkedChild(ForkedChild&& other) noexcept;
  ForkedChild& operator=(ForkedChild&& other) noexcept;
  ForkedChild(const ForkedChild&) = delete;
  ForkedChild& operator=(const ForkedChild&) = delete;
  ~ForkedChild();

  [[nodiscard]] pid_t pid() const noexcept { return pid_; }
  // Waits for the exit; SIGKILLs the child when `timeout` passes (reported as timed out).
  ExitStatus wait(std::chrono::milliseconds timeout);

 private:
  explicit ForkedChild(pid_t pid) : pid_(pid) {}
  pid_t pid_ = -1;
};

}  // namespace shmarray::test
