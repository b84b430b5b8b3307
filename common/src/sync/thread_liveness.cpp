#include "thread_liveness.hpp"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "shmarray/unique_fd.hpp"

#ifndef PIDFD_THREAD
#define PIDFD_THREAD O_EXCL  // linux/pidfd.h, Linux 6.9
#endif

namespace shmarray::detail {
namespace {

// Bumped in every fork()ed child, so a thread's cached id is refreshed there (the child's only
// thread is a copy of the forking one, with a new id).
std::atomic<unsigned> g_fork_generation{0};

void on_fork_child() noexcept { g_fork_generation.fetch_add(1, std::memory_order_relaxed); }


// /proc/<tid>/stat: "pid (comm) S ...": the state letter follows the last ')'.
[[nodiscard]] Liveness liveness_from_proc(pid_t tid) noexcept {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/stat", static_cast<int>(tid));
  UniqueFd fd(::open(path, O_RDONLY | O_CLOEXEC));
  if (!fd) return errno == ENOENT || errno == ESRCH ? Liveness::kGone : Liveness::kAlive;
  char buf[512];
  const ssize_t n = ::read(fd.get(), buf, sizeof buf - 1);
  if (n <= 0) return n == 0 || errno == ESRCH ? Liveness::kGone : Liveness::kAlive;
  buf[n] = '\0';
  const char* paren = std::strrchr(buf, ')');
  if (paren == nullptr || paren[1] != ' ') return Liveness::kAlive;
  const char state = paren[2];
  return (state == 'Z' || state == 'X' || state == 'x') ? Liveness::kGone : Liveness::kAlive;
}

}  // namespace

pid_t current_tid() noexcept {
  thread_local pid_t tid = 0;
  thread_local unsigned generation = 0;
  const unsigned now = fork_generation();
  if (tid == 0 || generation != now) {
    tid = static_cast<pid_t>(::syscall(SYS_gettid));
    generation = now;
  }
  return tid;
}

unsigned fork_generation() noexcept {
  static const bool registered = [] {
    ::pthread_atfork(nullptr, nullptr, on_fork_child);
    return true;
  }();
  (void)registered;
  return g_fork_generation.load(std::memory_order_relaxed);
}

Liveness thread_liveness(pid_t tid) noexcept {
  if (tid <= 0) return Liveness::kGone;
  const long raw = ::syscall(SYS_pidfd_open, tid, PIDFD_THREAD);
  if (raw < 0) {
    if (errno == ESRCH) return Liveness::kGone;
    if (errno == EINVAL) return liveness_from_proc(tid);  // no PIDFD_THREAD on this kernel
    return Liveness::kAlive;                               // EMFILE, ENOMEM...: cannot tell
  }
  UniqueFd pidfd(static_cast<int>(raw));
  pollfd p{pidfd.get(), POLLIN, 0};
  const int ready = ::poll(&p, 1, 0);
  if (ready == 1 && (p.revents & (POLLIN | POLLHUP)) != 0) return Liveness::kGone;  // exited
  return Liveness::kAlive;
}

}  // namespace shmarray::detail
