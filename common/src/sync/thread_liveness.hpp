#pragma once
// Who is this thread, and is the thread with a given id still alive? The write lock
// (write_lock.cpp) records its owner's thread id in shared memory and asks this file, from outside
// shared memory, whether that owner still exists: nothing read from the segment is followed.
#include <sys/types.h>

namespace shmarray::detail {

// This thread's kernel thread id (gettid), cached per thread; correct in a fork()ed child too.
[[nodiscard]] pid_t current_tid() noexcept;
// How many fork()s separate this process from... itself: 0 in a process that was never forked
// from a shmarray user, +1 in every fork()ed child. A value saved before a fork differs from the
// one read in the child, never in the parent. No system call (unlike getpid).
[[nodiscard]] unsigned fork_generation() noexcept;

enum class Liveness : unsigned char {
  kAlive,  // a thread with this id exists and has not exited (or we cannot tell: see below)
  kGone,   // no thread has this id, or it has exited (a zombie counts as gone)
};

// Whether thread `tid` of this PID namespace is alive. Uses pidfd_open(tid, PIDFD_THREAD) and
// polls it (a thread that has exited, zombie included, is readable); on kernels without
// PIDFD_THREAD (< 6.9) it falls back to /proc/<tid>/stat's state letter. When in doubt (EPERM,
// EMFILE, /proc hidden) it answers kAlive: mistaking a dead owner for a live one costs a waiter its
// timeout, mistaking a live owner for a dead one would let two writers in.
// Caveat: a thread id reused by a new thread after the owner died reads as alive (waiters then time
// out); the processes sharing an array must share a PID namespace.
[[nodiscard]] Liveness thread_liveness(pid_t tid) noexcept;

}  // namespace shmarray::detail
