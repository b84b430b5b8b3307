#include "shmarray/sync/write_lock.hpp"

#include <pthread.h>

#include <cerrno>
#include <ctime>
#include <string>

#include "sync_detail.hpp"

namespace shmarray {
namespace {

// After EOWNERDEAD we own the mutex but the data may be half-written. Mark it, and close a write
// the dead owner left open in the seqlock: an odd write_seq would make every read_consistent spin
// until its timeout, forever. The flag, not the seqlock, now tells readers the data may be torn.
// We hold the lock, so we are the only writer of write_seq.
void recover_after_owner_death(LiveFields& live) noexcept {
  live.flags.fetch_or(kFlagPossiblyTorn, std::memory_order_release);
  const std::uint64_t seq = live.write_seq.load(std::memory_order_relaxed);
  if ((seq & 1u) != 0) live.write_seq.store(seq + 1, std::memory_order_release);
}

[[nodiscard]] timespec to_timespec(std::chrono::nanoseconds since_epoch) noexcept {
  const auto ns = since_epoch.count();
  return timespec{static_cast<time_t>(ns / 1'000'000'000), static_cast<long>(ns % 1'000'000'000)};
}

// Blocks on the mutex until `deadline`; returns the pthread result.
[[nodiscard]] int lock_until(pthread_mutex_t& mutex,
                             std::chrono::steady_clock::time_point deadline) noexcept {
  if (deadline == std::chrono::steady_clock::time_point::max()) return ::pthread_mutex_lock(&mutex);
#if defined(__SANITIZE_THREAD__)
  // g++ 12's ThreadSanitizer does not intercept pthread_mutex_clocklock, so it would miss the
  // acquisition (false "unlock of an unlocked mutex" and race reports), and its timedlock
  // interceptor ignores EOWNERDEAD. TSan builds therefore try first (that interceptor knows
  // EOWNERDEAD), then use the CLOCK_REALTIME timedlock with the same remaining time.
  if (const int rc = ::pthread_mutex_trylock(&mutex); rc != EBUSY) return rc;
  const auto remaining = deadline - std::chrono::steady_clock::now();
  const timespec abs = to_timespec(std::chrono::duration_cast<std::chrono::nanoseconds>(
      std::chrono::system_clock::now().time_since_epoch() + remaining));
  return ::pthread_mutex_timedlock(&mutex, &abs);
#else
  // clocklock on CLOCK_MONOTONIC (glibc >= 2.30): immune to wall-clock jumps, unlike
  // pthread_mutex_timedlock's CLOCK_REALTIME.
  const timespec abs = to_timespec(deadline.time_since_epoch());
  return ::pthread_mutex_clocklock(&mutex, CLOCK_MONOTONIC, &abs);
#endif
}

// The kDeadlineExceeded message; built only on failure (acquire must not allocate).
[[nodiscard]] std::string busy_message(const std::chrono::nanoseconds* timeout) {
  if (timeout == nullptr) {
    return "write lock is held by another writer (try_acquire does not wait): retry later, or "
           "use acquire with a timeout";
  }
  return "write lock is held by another writer; not released within " +
         detail::format_ms(*timeout) + ": retry later or wait longer";
}

// Interprets a pthread lock/trylock result: true = locked and the previous owner had died (now
// recovered), false = locked normally, or the Error. `timeout` is null for try_acquire.
[[nodiscard]] Result<bool> interpret_lock_result(LiveFields& live, int rc,
                                                 const std::chrono::nanoseconds* timeout) {
  switch (rc) {
    case 0: return false;
    case EOWNERDEAD: {
      const int consistent_rc = ::pthread_mutex_consistent(&live.write_lock);
      if (consistent_rc != 0) {  // only if the mutex is not robust: not ours to fix
        ::pthread_mutex_unlock(&live.write_lock);
        return fail(ErrorCode::kInternal,
                    "write lock: marking it consistent after its owner died failed: " +
                        sys_error("pthread_mutex_consistent", consistent_rc).message(),
                    consistent_rc);
      }
      recover_after_owner_death(live);
      return true;
    }
    case ETIMEDOUT:
    case EBUSY: return fail(ErrorCode::kDeadlineExceeded, busy_message(timeout));
    case EDEADLK:
      return fail(ErrorCode::kFailedPrecondition,
                  "write lock is already held by this thread: release it before locking again", rc);
    case ENOTRECOVERABLE:
      return fail(ErrorCode::kFailedPrecondition,
                  "write lock is unrecoverable (a writer died and the lock was released without "
                  "being made consistent): recreate the array",
                  rc);
    default:
      return fail(ErrorCode::kInternal,
                  "write lock: " + sys_error("pthread_mutex_lock", rc).message() +
                      " (was the segment initialised with init_live_fields?)",
                  rc);
  }
}

}  // namespace

Result<WriteLock> WriteLock::acquire(LiveFields& live, std::chrono::nanoseconds timeout) {
  int rc = 0;
  if (timeout <= std::chrono::nanoseconds::zero()) {
    rc = ::pthread_mutex_trylock(&live.write_lock);
  } else {
    rc = lock_until(live.write_lock,
                    detail::deadline_after(std::chrono::steady_clock::now(), timeout));
  }
  auto died = interpret_lock_result(live, rc, &timeout);
  if (!died) return std::unexpected(std::move(died.error()));
  return WriteLock(&live, *died);
}

Result<WriteLock> WriteLock::try_acquire(LiveFields& live) {
  const int rc = ::pthread_mutex_trylock(&live.write_lock);
  auto died = interpret_lock_result(live, rc, nullptr);
  if (!died) return std::unexpected(std::move(died.error()));
  return WriteLock(&live, *died);
}

WriteLock& WriteLock::operator=(WriteLock&& other) noexcept {
  if (this != &other) {
    unlock();
    live_ = std::exchange(other.live_, nullptr);
    previous_owner_died_ = std::exchange(other.previous_owner_died_, false);
  }
  return *this;
}

void WriteLock::unlock() noexcept {
  if (live_ == nullptr) return;
  // Error-checking mutex: an unlock from a thread that does not own it (a forked child's copy,
  // another thread) returns EPERM and leaves the lock alone. Nothing useful to do with that here.
  (void)::pthread_mutex_unlock(&live_->write_lock);
  live_ = nullptr;
}

bool possibly_torn(const LiveFields& live) noexcept {
  return (live.flags.load(std::memory_order_acquire) & kFlagPossiblyTorn) != 0;
}

}  // namespace shmarray
