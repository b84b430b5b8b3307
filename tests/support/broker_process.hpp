#pragma once
// A real shmarrayd on a socket in a fresh temporary directory, for integration tests.
// Readiness is polled with a deadline; stop() and the destructor never hang; leftover segments of
// this broker in /dev/shm are reported (a leak is a test failure) and removed.
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

#include "process.hpp"
#include "shmarray/shmarray.hpp"

namespace shmarray::test {

class BrokerProcess {
 public:
  // Starts shmarrayd with `extra_args` on <new temp dir>/s.sock (or on `socket_path`).
  // `command_prefix` (optional) runs first, e.g. a wrapper that gives shmarrayd its own mount
  // namespace; it must exec shmarrayd (its path and arguments follow) in the same process, so
  // that pid() and the signals stop() sends reach the broker itself.
  explicit BrokerProcess(std::vector<std::string> extra_args = {}, std::string socket_path = {},
                         std::vector<std::string> command_prefix = {});
  ~BrokerProcess();
  BrokerProcess(const BrokerProcess&) = delete;
  BrokerProcess& operator=(const BrokerProcess&) = delete;

  [[nodiscard]] const std::string& socket_path() const { return socket_path_; }
  [[nodiscard]] const std::string& dir() const { return dir_; }
  [[nodiscard]] pid_t pid() const { return child_ ? child_->pid() : -1; }
  [[nodiscard]] bool running() const { return child_.has_value(); }
  // A connected client (fails the test if it cannot connect).
  [[nodiscard]] Client client() const;
  // As client(), but it never reconnects: once the broker closes its connection every call
  // fails. For the well-behaved client of "others are still served" checks, which a reconnecting
  // client would pass even if the broker had wrongly closed it.
  [[nodiscard]] Client steady_client() const;
  // Sends `signo` and waits (10 s at most) for the broker to exit.
  ExitStatus stop(int signo = SIGTERM);
  // Starts it again on the same socket, with the same arguments.
  void restart();
  // Names (in /dev/shm) of this broker's segments that exist now.
  [[nodiscard]] std::vector<std::string> segments() const;

 private:
  void start();
  std::vector<std::string> args_;
  std::vector<std::string> prefix_;
  std::string dir_;
  std::string socket_path_;
  std::optional<ChildProcess> child_;
};

// Runs the test helper binary with arguments; returns its status and stdout.
[[nodiscard]] RunResult run_helper(const std::vector<std::string>& args,
                                   std::chrono::milliseconds timeout = std::chrono::seconds(30));
[[nodiscard]] ChildProcess spawn_helper(const std::vector<std::string>& args);

// Base fixture: a fresh broker per test; at teardown the broker is stopped with SIGTERM (must exit
// 0) and none of its segments may remain.
class BrokerTest : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;
  std::unique_ptr<BrokerProcess> broker_;
};

}  // namespace shmarray::test
