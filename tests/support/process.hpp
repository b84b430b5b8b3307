#pragma once
// Child processes for tests: fork/exec of a real binary with its stdout captured, and waits that
// always end (a child past its deadline is killed with SIGKILL and reported as timed out).
#include <sys/types.h>

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "shmarray/unique_fd.hpp"

namespace shmarray::test {

struct ExitStatus {
  bool timed_out = false;
  int exit_code = -1;  // when the child exited
  int signal = 0;      // when a signal killed it
  [[nodiscard]] bool ok() const { return !timed_out && signal == 0 && exit_code == 0; }
  [[nodiscard]] std::string describe() const;
};

// Reaps `pid` (a child of this process); SIGKILLs it when `timeout` passes (reported as timed out).
ExitStatus wait_for_exit(pid_t pid, std::chrono::milliseconds timeout);

class ChildProcess {
 public:
  // Starts argv[0] with arguments; stdout is a pipe read by read_line/read_all; stderr is
  // inherited (so test logs show it). stdin is a pipe that close_stdin() closes (helpers use
  // its EOF as "you may exit now"). `extra_env` entries ("NAME=value") replace variables of the
  // same name in this process's environment.
  [[nodiscard]] static ChildProcess spawn(const std::vector<std::string>& argv,
                                          const std::vector<std::string>& extra_env = {});

  ChildProcess(ChildProcess&&) noexcept;
  ChildProcess& operator=(ChildProcess&&) noexcept;
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  ~ChildProcess();  // kills (SIGKILL) and reaps a child still running

  [[nodiscard]] pid_t pid() const noexcept { return pid_; }
  // One line of stdout (without '\n'), or nullopt at EOF or deadline.
  [[nodiscard]] std::optional<std::string> read_line(std::chrono::milliseconds timeout);
  void close_stdin();
  // Writes `text` to the child's stdin (false if it is closed or the child is gone).
  bool write_stdin(std::string_view text);
  void kill(int signo);
  // Waits for exit; SIGKILLs the child when `timeout` passes.
  ExitStatus wait(std::chrono::milliseconds timeout);
  // Everything left on stdout, until EOF or the deadline.
  [[nodiscard]] std::string read_all(std::chrono::milliseconds timeout);

 private:
  ChildProcess() = default;
  pid_t pid_ = -1;
  UniqueFd stdout_;
  UniqueFd stdin_;
  std::string buffer_;
  bool reaped_ = false;
};

// Runs a child to completion (with a timeout) and returns its status and stdout.
struct RunResult {
  ExitStatus status;
  std::string out;
};
[[nodiscard]] RunResult run(const std::vector<std::string>& argv,
                            std::chrono::milliseconds timeout = std::chrono::seconds(30),
                            const std::vector<std::string>& extra_env = {});
// run() of `sh -c 'exec "$@" 2>&1'`: argv with its stderr folded into the captured stdout.
[[nodiscard]] RunResult run_with_stderr(std::vector<std::string> argv,
                                        const std::vector<std::string>& extra_env = {},
                                        std::chrono::milliseconds timeout = std::chrono::seconds(20));

// Environment for children that are meant to die of SIGSEGV (writes through read-only grants):
// ASAN_OPTIONS and TSAN_OPTIONS as this process has them, plus handle_segv=0, so that a
// sanitizer build does not catch the signal and exit with its own code instead.
[[nodiscard]] std::vector<std::string> segv_passthrough_env();

// A process seen from outside, through /proc.
// Open descriptors of `pid` (entries of /proc/PID/fd; 0 if unreadable), less those of a broker's
// segment pool (nameless /dev/shm files: a bounded number that varies as the pool refills, tested
// by SegmentPool.*), so that leak checks count connections and segments only.
[[nodiscard]] long open_fds(pid_t pid);
// Resident memory of `pid` in KiB (VmRSS), -1 if unknown.
[[nodiscard]] long rss_kib(pid_t pid);

// Polls `condition` every 10 ms until it holds (true) or `timeout` passes (false).
[[nodiscard]] bool eventually(const std::function<bool()>& condition,
                              std::chrono::milliseconds timeout = std::chrono::seconds(10));

}  // namespace shmarray::test
