#include "process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <dirent.h>

#include <algorithm>
#include <fstream>
#include <string_view>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <thread>

extern char** environ;

namespace shmarray::test {

std::string ExitStatus::describe() const {
  if (timed_out) return "timed out (killed)";
  if (signal != 0) return std::string("killed by signal ") + strsignal(signal);
  return "exit code " + std::to_string(exit_code);
}

std::vector<std::string> segv_passthrough_env() {
  std::vector<std::string> env;
  for (const char* name : {"ASAN_OPTIONS", "TSAN_OPTIONS"}) {
    const char* current = std::getenv(name);
    env.push_back(std::string(name) + "=" +
                  (current != nullptr && *current != '\0' ? std::string(current) + ":" : "") +
                  "handle_segv=0");
  }
  return env;
}

ChildProcess ChildProcess::spawn(const std::vector<std::string>& argv,
                                 const std::vector<std::string>& extra_env) {
  int out[2];
  int in[2];
  if (::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(in, O_CLOEXEC) != 0) {
    throw std::runtime_error("pipe2 failed");
  }
  std::vector<std::string> env_strings;
  const auto name_of = [](std::string_view e) { return e.substr(0, e.find('=') + 1); };
  for (char** e = environ; *e != nullptr; ++e) {
    const bool replaced = std::any_of(extra_env.begin(), extra_env.end(), [&](const auto& x) {
      return name_of(x) == name_of(*e);
    });
    if (!replaced) env_strings.emplace_back(*e);
  }
  for (const auto& e : extra_env) env_strings.push_back(e);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  std::vector<char*> envp;
  for (auto& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);

  const pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    ::dup2(out[1], STDOUT_FILENO);
    ::dup2(in[0], STDIN_FILENO);
    ::execve(args[0], args.data(), envp.data());
    ::_exit(127);
  }
  ::close(out[1]);
  ::close(in[0]);
  ChildProcess child;
  child.pid_ = pid;
  child.stdout_.reset(out[0]);
  child.stdin_.reset(in[1]);
  return child;
}

ChildProcess::ChildProcess(ChildProcess&& o) noexcept
    : pid_(std::exchange(o.pid_, -1)),
      stdout_(std::move(o.stdout_)),
      stdin_(std::move(o.stdin_)),
      buffer_(std::move(o.buffer_)),
      reaped_(std::exchange(o.reaped_, true)) {}

ChildProcess& ChildProcess::operator=(ChildProcess&& o) noexcept {
  if (this != &o) {
    if (pid_ > 0 && !reaped_) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    pid_ = std::exchange(o.pid_, -1);
    stdout_ = std::move(o.stdout_);
    stdin_ = std::move(o.stdin_);
    buffer_ = std::move(o.buffer_);
    reaped_ = std::exchange(o.reaped_, true);
  }
  return *this;
}

ChildProcess::~ChildProcess() {
  if (pid_ > 0 && !reaped_) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
}

std::optional<std::string> ChildProcess::read_line(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (const auto nl = buffer_.find('\n'); nl != std::string::npos) {
      std::string line = buffer_.substr(0, nl);
      buffer_.erase(0, nl + 1);
      return line;
    }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0 || !stdout_) return std::nullopt;
    pollfd p{stdout_.get(), POLLIN, 0};
    const int rc = ::poll(&p, 1, static_cast<int>(left.count()));
    if (rc < 0 && errno == EINTR) continue;
    if (rc <= 0) return std::nullopt;
    char chunk[4096];
    const ssize_t n = ::read(stdout_.get(), chunk, sizeof chunk);
    if (n <= 0) {
      stdout_.reset();
      if (buffer_.empty()) return std::nullopt;
      std::string rest = std::move(buffer_);
      buffer_.clear();
      return rest;
    }
    buffer_.append(chunk, static_cast<std::size_t>(n));
  }
}

std::string ChildProcess::read_all(std::chrono::milliseconds timeout) {
  std::string all;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (auto line = read_line(std::chrono::duration_cast<std::chrono::milliseconds>(
             deadline - std::chrono::steady_clock::now()))) {
    all += *line;
    all += '\n';
  }
  return all;
}

void ChildProcess::close_stdin() { stdin_.reset(); }

bool ChildProcess::write_stdin(std::string_view text) {
  while (stdin_ && !text.empty()) {
    const ssize_t n = ::write(stdin_.get(), text.data(), text.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    text.remove_prefix(static_cast<std::size_t>(n));
  }
  return text.empty();
}

void ChildProcess::kill(int signo) {
  if (pid_ > 0 && !reaped_) ::kill(pid_, signo);
}

RunResult run_with_stderr(std::vector<std::string> argv, const std::vector<std::string>& extra_env,
                          std::chrono::milliseconds timeout) {
  argv.insert(argv.begin(), {"/bin/sh", "-c", "exec \"$@\" 2>&1", "sh"});
  return run(argv, timeout, extra_env);
}

ExitStatus wait_for_exit(pid_t pid, std::chrono::milliseconds timeout) {
  ExitStatus status;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  int raw = 0;
  for (;;) {
    const pid_t r = ::waitpid(pid, &raw, WNOHANG);
    if (r == pid) break;
    if (std::chrono::steady_clock::now() >= deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &raw, 0);
      status.timed_out = true;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  if (WIFEXITED(raw)) status.exit_code = WEXITSTATUS(raw);
  if (WIFSIGNALED(raw)) status.signal = WTERMSIG(raw);
  return status;
}

ExitStatus ChildProcess::wait(std::chrono::milliseconds timeout) {
  if (pid_ <= 0 || reaped_) return {};
  reaped_ = true;
  return wait_for_exit(pid_, timeout);
}

RunResult run(const std::vector<std::string>& argv, std::chrono::milliseconds timeout,
              const std::vector<std::string>& extra_env) {
  auto child = ChildProcess::spawn(argv, extra_env);
  child.close_stdin();
  RunResult result;
  result.out = child.read_all(timeout);
  result.status = child.wait(std::chrono::milliseconds(2000));
  return result;
}

long open_fds(pid_t pid) {
  long n = 0;
  const std::string dir = "/proc/" + std::to_string(pid) + "/fd";
  if (DIR* d = ::opendir(dir.c_str())) {
    while (const dirent* e = ::readdir(d)) {
      if (e->d_name[0] == '.') continue;
      // A broker's segment pool: nameless files, "/dev/shm/#<inode> (deleted)" (see process.hpp).
      char target[64];
      const ssize_t len = ::readlink((dir + "/" + e->d_name).c_str(), target, sizeof target);
      if (len >= 10 && std::string_view(target, 10) == "/dev/shm/#") continue;
      ++n;
    }
    ::closedir(d);
  }
  return n;
}

long rss_kib(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string key;
  while (status >> key) {
    if (key == "VmRSS:") {
      long kib = -1;
      status >> kib;
      return kib;
    }
    status.ignore(1 << 10, '\n');
  }
  return -1;
}

bool eventually(const std::function<bool()>& condition, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!condition()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return true;
}

}  // namespace shmarray::test
