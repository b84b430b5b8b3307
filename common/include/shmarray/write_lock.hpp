#pragma once
// The writer lock of a segment: LiveFields::lock_word, a plain 32-bit word holding the owner's
// thread id (0 when free) and a "waiters" bit, which is also the futex word sleepers wait on.
//
// Nothing to follow. Every writer of an array can write any byte of its segment, so the lock keeps
// no pointer, list or count in shared memory that another process would trust (a glibc robust
// mutex does: the kernel and glibc follow its list pointers, so a co-writer could make another
// process write where it chose). Whatever a co-writer writes into the lock word, another process
// at worst waits until its timeout (kDeadlineExceeded) or finds the lock "taken over" and the
// array possibly torn; it never writes outside the segment, crashes, or waits past its timeout.
//
// Crash safety. A writer that dies holding the lock (crash, SIGKILL) does not wedge the array: a
// waiter that has not been woken within a few milliseconds asks the kernel, outside shared memory,
// whether the owner thread still exists (pidfd_open + poll; /proc on kernels before 6.9), and if it
// does not, takes the lock over. That acquirer's previous_owner_died() is true, and the segment
// is flagged kFlagPossiblyTorn (see possibly_torn) until someone publishes: the dead writer may
// have left the data half-written. A write it left open in the seqlock is closed. The processes
// sharing an array must share a PID namespace (thread ids name the owner); a thread id reused by a
// new thread after its owner died reads as alive, which costs waiters their timeout, never safety.
//
// Usage:
//   auto lock = WriteLock::acquire(live, 100ms);
//   if (!lock) return std::unexpected(lock.error());
//   if (lock->previous_owner_died()) { /* rewrite everything: the data may be torn */ }
//   ... write the array ...
//   publish(live);
//   // unlocked when `lock` goes out of scope
//
// Ownership and threads. A WriteLock keeps its segment mapped (the `keep_alive` handle passed to
// acquire, e.g. the Array's mapping), so it can outlive the Array it came from. It belongs to the
// thread that acquired it: unlock() from another thread fails with kFailedPrecondition and leaves
// the lock held; the destructor run on another thread of the same process releases it anyway and
// reports that on stderr (a lock nobody can release would make every later writer time out); in a
// fork()ed child neither touches the parent's lock. Writing the data without the lock is not
// prevented, only unguarded.
#include <sys/types.h>

#include <chrono>
#include <memory>
#include <utility>

#include "shmarray/error.hpp"

namespace shmarray {

struct LiveFields;  // the segment's synchronisation words (internal)

class WriteLock {
 public:
  // Locks `live.lock_word`, waiting at most `timeout` (CLOCK_MONOTONIC; nanoseconds::max() waits
  // forever; zero or negative only tries, including the owner-death check). Spins briefly, then
  // sleeps on the futex word. `keep_alive` is held until the lock is released: pass whatever keeps
  // `live`'s mapping alive. Needs a writable mapping. Errors:
  //   kDeadlineExceeded   still held by a live owner (its thread id is in the message) when the
  //                       timeout elapsed;
  //   kFailedPrecondition this thread already holds it (error-checking: no self-deadlock).
  [[nodiscard]] static Result<WriteLock> acquire(LiveFields& live, std::chrono::nanoseconds timeout,
                                                 std::shared_ptr<const void> keep_alive = {});

  // Locks only if free right now (or its owner is dead). A busy lock gives kDeadlineExceeded,
  // exactly as acquire with a zero timeout would; the message says the lock is held.
  [[nodiscard]] static Result<WriteLock> try_acquire(LiveFields& live,
                                                     std::shared_ptr<const void> keep_alive = {});

  WriteLock() noexcept = default;  // holds nothing
  WriteLock(const WriteLock&) = delete;
  WriteLock& operator=(const WriteLock&) = delete;
  WriteLock(WriteLock&& other) noexcept
      : live_(std::exchange(other.live_, nullptr)),
        keep_alive_(std::move(other.keep_alive_)),
        owner_tid_(std::exchange(other.owner_tid_, 0)),
        fork_generation_(std::exchange(other.fork_generation_, 0)),
        previous_owner_died_(std::exchange(other.previous_owner_died_, false)) {}
  // Releases what this object held (as the destructor does), then takes `other`'s lock.
  WriteLock& operator=(WriteLock&& other) noexcept;
  // Releases the lock if held; see "Ownership and threads" above for another thread or a child.
  ~WriteLock();

  // True until unlock() (or a move out of this object).
  [[nodiscard]] bool held() const noexcept { return live_ != nullptr; }
  // True when this acquisition found the previous owner dead (the data may be torn).
  [[nodiscard]] bool previous_owner_died() const noexcept { return previous_owner_died_; }
  // The thread id recorded as owner (0 when not held).
  [[nodiscard]] pid_t owner_tid() const noexcept { return owner_tid_; }

  // Releases the lock and the segment; no-op (success) when not held. Errors:
  //   kFailedPrecondition called on another thread than the acquiring one (the lock stays held:
  //                       unlock it there), or in a fork()ed child (the child never held it; this
  //                       object lets go without touching the parent's lock);
  //   kDataLoss           the lock word no longer named this thread: a co-writer overwrote it, or
  //                       took the lock over believing this process dead. The lock word is left
  //                       as found, this object lets go, and the array is flagged possibly torn.
  [[nodiscard]] Result<void> unlock();

 private:
  WriteLock(LiveFields* live, std::shared_ptr<const void> keep_alive, pid_t tid,
            unsigned fork_generation, bool previous_owner_died) noexcept
      : live_(live),
        keep_alive_(std::move(keep_alive)),
        owner_tid_(tid),
        fork_generation_(fork_generation),
        previous_owner_died_(previous_owner_died) {}
  // acquire and try_acquire: `timeout` is null for try_acquire (its messages say so).
  [[nodiscard]] static Result<WriteLock> lock(LiveFields& live,
                                              std::chrono::steady_clock::time_point deadline,
                                              const std::chrono::nanoseconds* timeout,
                                              std::shared_ptr<const void> keep_alive);
  // The destructor's release: from any thread of the owning process; reports failures on stderr.
  void release_on_destruction() noexcept;
  // Clears the lock word if it still names owner_tid_, and forgets everything.
  [[nodiscard]] Result<void> release();

  LiveFields* live_ = nullptr;
  std::shared_ptr<const void> keep_alive_;
  pid_t owner_tid_ = 0;
  unsigned fork_generation_ = 0;  // detail::fork_generation() at acquisition: differs in a child
  bool previous_owner_died_ = false;
};

}  // namespace shmarray
