#include "shmarray/sync/write_lock.hpp"

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "shmarray/sync/futex.hpp"
#include "sync_detail.hpp"
#include "thread_liveness.hpp"

// The lock word is the classic futex mutex (Drepper, "Futexes Are Tricky", mutex 2) with the
// owner's thread id instead of a bare "locked" state:
//   0                       free
//   tid                     held by thread `tid`, nobody asleep
//   tid | kLockWaitersBit   held, and someone may be asleep in FUTEX_WAIT: unlock must wake
// Acquire is one CAS 0 -> tid on the fast path; unlock is one CAS tid -> 0, plus a FUTEX_WAKE only
// when the waiters bit is set. A waiter that has slept acquires with the waiters bit set (others
// may still sleep), so no wake-up is lost between honest processes.
//
// Owner death is not announced by the kernel (that would need a robust list, i.e. pointers in
// shared memory that the kernel follows). Instead a sleeper wakes every kLivenessSlice and, if
// the lock has not changed hands, asks thread_liveness() about the owner. So a waiter finds a dead
// owner within ~kLivenessSlice, and an honest handoff (unlock -> FUTEX_WAKE) costs no extra work.
//
// A co-writer may store anything in the word at any time. Each case, at worst:
//   a live thread's id (its own, say)     waiters time out (kDeadlineExceeded)
//   a dead or made-up id                  the next waiter takes over, sets possibly_torn
//   0 while an honest writer holds it     two writers: the data may be torn (as if it wrote them)
//   flipping values fast                  waiters loop without sleeping until their deadline
// and the honest holder's unlock then finds a word that is not its own: it reports kDataLoss and
// leaves the word alone. Nothing read from the word is used as an address or a size.

namespace shmarray {
namespace {

constexpr int kSpinIterations = 100;  // ~1-5 us: a short critical section ends within it
constexpr std::chrono::milliseconds kLivenessSlice{5};
// The contended acquire reads the clock after this many lost compare-exchanges in a row (each a
// co-writer's change of the word): a word that keeps changing cannot hold it past its deadline.
constexpr std::uint32_t kRacesPerDeadlineCheck = 64;
// An unlock gives up (kDataLoss, flagged possibly torn) after this many lost compare-exchanges.
constexpr std::uint32_t kMaxUnlockRaces = 4096;

// The locks this thread holds, for the error-checking relock (EDEADLK) test: a lock word that
// names this thread is ours only if we recorded it here; otherwise a co-writer forged it. A plain
// array (trivially destructible: no TLS guard on the fast path); a thread holding more than
// kMaxTracked locks at once loses only the EDEADLK check for the extra ones (a relock of one of
// them is then treated as a forged word and taken over, with possibly_torn set).
constexpr int kMaxTracked = 16;
thread_local const LiveFields* t_held[kMaxTracked];
thread_local int t_held_count = 0;

void remember_held(const LiveFields* live) noexcept {
  if (t_held_count < kMaxTracked) t_held[t_held_count++] = live;
}
void forget_held(const LiveFields* live) noexcept {
  for (int i = t_held_count - 1; i >= 0; --i) {
    if (t_held[i] == live) {
      t_held[i] = t_held[--t_held_count];
      return;
    }
  }
}
[[nodiscard]] bool this_thread_holds(const LiveFields* live) noexcept {
  for (int i = 0; i < t_held_count; ++i) {
    if (t_held[i] == live) return true;
  }
  return false;
}

[[nodiscard]] std::uint32_t owner_of(std::uint32_t word) noexcept { return word & kLockOwnerMask; }

// After taking the lock from a dead owner we own it, but the data may be half-written. Mark it,
// and close a write the dead owner left open in the seqlock: an odd write_seq would make every
// read_consistent spin until its timeout, forever.
void recover_after_owner_death(LiveFields& live) noexcept {
  live.flags.fetch_or(kFlagPossiblyTorn, std::memory_order_release);
  const std::uint64_t seq = live.write_seq.load(std::memory_order_relaxed);
  if ((seq & 1u) != 0) live.write_seq.store(seq + 1, std::memory_order_release);
}

[[nodiscard]] Error busy_error(std::uint32_t owner, const std::chrono::nanoseconds* timeout) {
  std::string who = "thread " + std::to_string(owner);
  if (timeout == nullptr) {
    return Error(ErrorCode::kDeadlineExceeded,
                 "write lock is held by another writer (" + who +
                     ", alive); try_acquire does not wait: retry later, or use acquire with a "
                     "timeout");
  }
  return Error(ErrorCode::kDeadlineExceeded,
               "write lock is held by another writer (" + who + ", alive); not released within " +
                   detail::format_ms(*timeout) + ": retry later or wait longer");
}

[[nodiscard]] Error self_deadlock_error() {
  return Error(ErrorCode::kFailedPrecondition,
               "write lock is already held by this thread: release it before locking again",
               EDEADLK);
}

struct Acquired {
  bool owner_died = false;
};

// Tries to move the word from `seen` to `desired`; on a dead owner, recovers the segment.
[[nodiscard]] bool try_take(LiveFields& live, std::uint32_t& seen, std::uint32_t desired) noexcept {
  return live.lock_word.compare_exchange_weak(seen, desired, std::memory_order_acquire,
                                              std::memory_order_relaxed);
}

// The contended path. `deadline` == now for try_acquire (one round, with the liveness check).
[[nodiscard]] Result<Acquired> lock_slow(LiveFields& live, std::uint32_t tid,
                                         std::chrono::steady_clock::time_point deadline,
                                         const std::chrono::nanoseconds* timeout) {
  using Clock = std::chrono::steady_clock;
  if (timeout != nullptr && *timeout > std::chrono::nanoseconds::zero()) {
    for (int i = 0; i < kSpinIterations; ++i) {
      detail::cpu_relax();
      std::uint32_t seen = live.lock_word.load(std::memory_order_relaxed);
      if (seen == 0 && try_take(live, seen, tid)) return Acquired{};
    }
  }
  bool slept = false;           // from now on acquire with the waiters bit: others may sleep
  bool check_liveness = false;  // set when a sleep ended without a wake-up
  // Rounds that lost a compare-exchange and went round again without sleeping: a co-writer who
  // keeps rewriting the word could keep us here, so the deadline is looked at every so often.
  std::uint32_t lost_races = 0;
  const auto out_of_races = [&] {
    return ++lost_races % kRacesPerDeadlineCheck == 0 && Clock::now() >= deadline;
  };
  for (;;) {
    std::uint32_t seen = live.lock_word.load(std::memory_order_relaxed);
    const std::uint32_t owner = owner_of(seen);
    const std::uint32_t mine = tid | (slept || (seen & kLockWaitersBit) != 0 ? kLockWaitersBit : 0);
    if (owner == 0) {  // free (a stray waiters bit is kept)
      if (try_take(live, seen, mine)) return Acquired{};
      if (out_of_races()) return std::unexpected(busy_error(owner_of(seen), timeout));
      continue;
    }
    const bool past_deadline = Clock::now() >= deadline;
    bool owner_gone = false;
    if (owner == tid) {
      if (this_thread_holds(&live)) return std::unexpected(self_deadlock_error());
      owner_gone = true;  // our id, but not our lock: forged, treat like a dead owner
    } else if (check_liveness || past_deadline) {
      owner_gone = detail::thread_liveness(static_cast<pid_t>(owner)) == detail::Liveness::kGone;
      check_liveness = false;
    }
    if (owner_gone) {
      if (try_take(live, seen, mine)) {
        recover_after_owner_death(live);
        return Acquired{.owner_died = true};
      }
      if (out_of_races()) return std::unexpected(busy_error(owner_of(seen), timeout));
      continue;  // the word changed meanwhile: look again
    }
    if (past_deadline) return std::unexpected(busy_error(owner, timeout));
    if ((seen & kLockWaitersBit) == 0) {
      std::uint32_t expected = seen;
      if (!live.lock_word.compare_exchange_strong(expected, seen | kLockWaitersBit,
                                                  std::memory_order_relaxed)) {
        if (out_of_races()) return std::unexpected(busy_error(owner, timeout));
        continue;
      }
      seen |= kLockWaitersBit;
    }
    slept = true;
    const auto slice_end = std::min(deadline, Clock::now() + kLivenessSlice);
    auto status = futex_wait(live.lock_word, seen, slice_end);
    if (!status) return std::unexpected(std::move(status.error()));
    if (*status == FutexWaitStatus::kTimedOut) check_liveness = true;
  }
}

[[nodiscard]] Result<Acquired> lock_word_acquire(LiveFields& live, std::uint32_t tid,
                                                 std::chrono::steady_clock::time_point deadline,
                                                 const std::chrono::nanoseconds* timeout) {
  std::uint32_t seen = 0;
  if (live.lock_word.compare_exchange_strong(seen, tid, std::memory_order_acquire,
                                             std::memory_order_relaxed)) {
    return Acquired{};
  }
  return lock_slow(live, tid, deadline, timeout);
}

void report(const std::string& message) noexcept {
  std::fprintf(stderr, "shmarray: %s\n", message.c_str());
}

}  // namespace

Result<WriteLock> WriteLock::acquire(LiveFields& live, std::chrono::nanoseconds timeout,
                                     std::shared_ptr<const void> keep_alive) {
  return lock(live, detail::deadline_after(std::chrono::steady_clock::now(), timeout), &timeout,
              std::move(keep_alive));
}

Result<WriteLock> WriteLock::try_acquire(LiveFields& live, std::shared_ptr<const void> keep_alive) {
  return lock(live, std::chrono::steady_clock::now(), nullptr, std::move(keep_alive));
}

Result<WriteLock> WriteLock::lock(LiveFields& live, std::chrono::steady_clock::time_point deadline,
                                  const std::chrono::nanoseconds* timeout,
                                  std::shared_ptr<const void> keep_alive) {
  const pid_t tid = detail::current_tid();
  auto got = lock_word_acquire(live, static_cast<std::uint32_t>(tid), deadline, timeout);
  if (!got) return std::unexpected(std::move(got.error()));
  remember_held(&live);
  return WriteLock(&live, std::move(keep_alive), tid, detail::fork_generation(), got->owner_died);
}

WriteLock& WriteLock::operator=(WriteLock&& other) noexcept {
  if (this != &other) {
    release_on_destruction();
    live_ = std::exchange(other.live_, nullptr);
    keep_alive_ = std::move(other.keep_alive_);
    owner_tid_ = std::exchange(other.owner_tid_, 0);
    fork_generation_ = std::exchange(other.fork_generation_, 0);
    previous_owner_died_ = std::exchange(other.previous_owner_died_, false);
  }
  return *this;
}

WriteLock::~WriteLock() { release_on_destruction(); }

Result<void> WriteLock::release() {
  LiveFields& live = *live_;
  const auto tid = static_cast<std::uint32_t>(owner_tid_);
  forget_held(&live);  // a no-op on another thread: that thread's list is not ours
  live_ = nullptr;
  owner_tid_ = 0;
  std::uint32_t seen = live.lock_word.load(std::memory_order_relaxed);
  for (std::uint32_t races = 0;; ++races) {
    if (races == kMaxUnlockRaces) {
      // Only waiters setting their bit race an honest unlock, a few times at most: a word that
      // keeps changing while it names us is a co-writer's doing. Give up rather than spin.
      live.flags.fetch_or(kFlagPossiblyTorn, std::memory_order_release);
      keep_alive_.reset();
      return fail(ErrorCode::kDataLoss,
                  "write lock: the lock word kept changing while thread " + std::to_string(tid) +
                      " unlocked it (" + std::to_string(kMaxUnlockRaces) +
                      " tries): a co-writer is rewriting it; the array is flagged possibly torn "
                      "until the next publish");
    }
    if (owner_of(seen) != tid) {
      live.flags.fetch_or(kFlagPossiblyTorn, std::memory_order_release);
      keep_alive_.reset();
      return fail(ErrorCode::kDataLoss,
                  "write lock: held by thread " + std::to_string(tid) +
                      " but the lock word names thread " + std::to_string(owner_of(seen)) +
                      " at unlock: a co-writer overwrote it or took it over; the array is flagged "
                      "possibly torn until the next publish");
    }
    if (live.lock_word.compare_exchange_weak(seen, 0, std::memory_order_release,
                                             std::memory_order_relaxed)) {
      break;
    }
  }
  // FUTEX_WAKE cannot fail on a mapped word; a lost wake would only cost a sleeper one slice.
  if ((seen & kLockWaitersBit) != 0) (void)futex_wake(live.lock_word, 1);
  keep_alive_.reset();
  return {};
}

Result<void> WriteLock::unlock() {
  if (live_ == nullptr) return {};
  if (fork_generation_ != detail::fork_generation()) {
    live_ = nullptr;
    keep_alive_.reset();
    return fail(ErrorCode::kFailedPrecondition,
                "write lock: this WriteLock was inherited across fork(); only the parent that "
                "acquired it can release it (the child's copy lets go without touching it)");
  }
  if (detail::current_tid() != owner_tid_) {
    return fail(ErrorCode::kFailedPrecondition,
                "write lock: acquired by thread " + std::to_string(owner_tid_) +
                    ", unlock called on thread " + std::to_string(detail::current_tid()) +
                    ": unlock it on the thread that acquired it (it is still held)");
  }
  return release();
}

void WriteLock::release_on_destruction() noexcept {
  if (live_ == nullptr) return;
  if (fork_generation_ != detail::fork_generation()) {  // a fork()ed child's copy: not ours
    live_ = nullptr;
    keep_alive_.reset();
    return;
  }
  try {
    const pid_t here = detail::current_tid();
    if (here != owner_tid_) {
      report("a WriteLock acquired by thread " + std::to_string(owner_tid_) +
             " was destroyed on thread " + std::to_string(here) +
             "; released it there. Unlock a WriteLock on the thread that acquired it.");
    }
    if (auto ok = release(); !ok) report(ok.error().message());
  } catch (...) {  // NOLINT(bugprone-empty-catch): std::bad_alloc while reporting; never throw
  }
}

bool possibly_torn(const LiveFields& live) noexcept {
  return (live.flags.load(std::memory_order_acquire) & kFlagPossiblyTorn) != 0;
}

}  // namespace shmarray
