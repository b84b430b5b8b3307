#pragma once
// The writer lock of a segment: LiveFields::write_lock, a robust, process-shared pthread mutex.
//
// Robust means a writer that dies holding it (crash, SIGKILL) does not wedge the array: the kernel
// marks the lock, and the next acquirer gets it together with the news. That acquirer's
// WriteLock::previous_owner_died() is true, and the segment is flagged kFlagPossiblyTorn (see
// possibly_torn) until someone publishes: the dead writer may have left the data half-written.
//
// Usage:
//   auto lock = WriteLock::acquire(live, 100ms);
//   if (!lock) return std::unexpected(lock.error());
//   if (lock->previous_owner_died()) { /* rewrite everything: the data may be torn */ }
//   ... write the array ...
//   publish(live);
//   // unlocked when `lock` goes out of scope
//
// The lock belongs to the thread that acquired it (pthread semantics): unlock it from that thread,
// and keep the segment mapped while it is held (an unmapped lock cannot be released by the kernel
// when the process dies). Writing the data without the lock is not prevented, only unguarded.
#include <chrono>
#include <utility>

#include "shmarray/error.hpp"
#include "shmarray/segment_layout.hpp"

namespace shmarray {

class WriteLock {
 public:
  // Locks `live.write_lock`, waiting at most `timeout` (CLOCK_MONOTONIC; nanoseconds::max() waits
  // forever; zero or negative only tries). If the previous owner died holding it, the lock is
  // made consistent, kFlagPossiblyTorn is set, a write left half-done in the seqlock (odd
  // write_seq) is closed so readers are not stuck, and previous_owner_died() is true.
  // Needs a writable mapping. Errors:
  //   kDeadlineExceeded   still held by another writer when the timeout elapsed;
  //   kFailedPrecondition this thread already holds it (EDEADLK), or it is unrecoverable
  //                       (ENOTRECOVERABLE: someone released it after an owner died without
  //                       making it consistent; only recreating the array helps);
  //   kInternal           the mutex was not initialised as init_live_fields does (EINVAL...).
  [[nodiscard]] static Result<WriteLock> acquire(LiveFields& live,
                                                 std::chrono::nanoseconds timeout);

  // Locks only if free right now. A busy lock gives kDeadlineExceeded, exactly as acquire with a
  // zero timeout would (one code for "not obtained in the time allowed", which callers already
  // treat as "retry later"); the message says the lock is held. Other errors as acquire.
  [[nodiscard]] static Result<WriteLock> try_acquire(LiveFields& live);

  WriteLock() noexcept = default;  // holds nothing
  WriteLock(const WriteLock&) = delete;
  WriteLock& operator=(const WriteLock&) = delete;
  WriteLock(WriteLock&& other) noexcept
      : live_(std::exchange(other.live_, nullptr)),
        previous_owner_died_(std::exchange(other.previous_owner_died_, false)) {}
  WriteLock& operator=(WriteLock&& other) noexcept;
  ~WriteLock() { unlock(); }

  // True until unlock() (or a move out of this object).
  [[nodiscard]] bool held() const noexcept { return live_ != nullptr; }
  // True when this acquisition found the previous owner dead (the data may be torn).
  [[nodiscard]] bool previous_owner_died() const noexcept { return previous_owner_died_; }
  // Releases the lock; no-op when not held. Call from the acquiring thread.
  void unlock() noexcept;

 private:
  WriteLock(LiveFields* live, bool previous_owner_died) noexcept
      : live_(live), previous_owner_died_(previous_owner_died) {}

  LiveFields* live_ = nullptr;
  bool previous_owner_died_ = false;
};

// True from the moment a WriteLock acquisition found the previous owner dead until the next
// publish(). Acquire load; read-only mappings may call it.
[[nodiscard]] bool possibly_torn(const LiveFields& live) noexcept;

}  // namespace shmarray
