#pragma once
// Consistent reads that never block the writer: a seqlock on LiveFields::write_seq.
//
// Writer (holding the WriteLock, so there is one writer at a time):
//   begin_write(live);                 // write_seq becomes odd
//   std::memcpy(data, frame, n);       // plain stores into the array
//   end_write_and_publish(live);       // version += 1, write_seq even again, waiters woken
// Reader (any mapping, read-only included; never writes to the segment):
//   auto v = read_consistent(live, [&] { std::memcpy(copy, data, n); }, 10ms);
//   // on success `copy` equals the array as some end_write left it, and *v is its version
//
// Memory-ordering contract. Writer: the odd store is followed by a release fence, so no data store
// becomes visible before write_seq is odd; the even store is a release, so every data store is
// visible before write_seq is even again. Reader: acquire-load write_seq (s0, must be even), run
// the copy, acquire fence, reload write_seq; equal to s0 means no guarded write overlapped the
// copy. The copy races with the writer's stores while it is being retried: formally a data race
// in C++, in practice the standard seqlock technique (Boehm, "Can Seqlocks Get Along with
// Programming Language Memory Models?", 2012) — the fences are full compiler barriers and the
// torn copy is discarded unread. ThreadSanitizer sees it when reader and writer are threads of
// one process: tests/tsan.supp suppresses reports under read_consistent. Across processes it is
// invisible to TSan.
//
// Only writes bracketed by begin_write/end_write are detected: unguarded writes (without the
// lock) can still tear a copy.
#include <atomic>
#include <chrono>
#include <concepts>
#include <cstdint>
#include <type_traits>
#include <utility>

#include "shmarray/error.hpp"
#include "shmarray/segment_layout.hpp"

namespace shmarray {

// Writer side. Call only while holding the WriteLock, on a writable mapping.
// begin_write makes write_seq odd; end_write makes it even (and different from every earlier
// value). Each begin_write must be matched by exactly one end_write, end_write_and_publish or
// abandon_write. end_write is for a write that the caller publishes right after (publish());
// a write that will not be published must end with abandon_write.
void begin_write(LiveFields& live) noexcept;
void end_write(LiveFields& live) noexcept;

// Ends a write that is given up (its producer threw, or a Python `with` block raised): sets
// kFlagPossiblyTorn, then closes the window. The bytes may be half new, half old under the old
// version, so from now until the next publish read_consistent fails with kDataLoss and
// possibly_torn() is true.
void abandon_write(LiveFields& live) noexcept;

// end_write and publish in the order a reader needs: the version is incremented while write_seq
// is still odd (so read_consistent returns the version that matches the data it copied), then
// write_seq becomes even, then waiters are woken (so they find the write finished). Also clears
// kFlagPossiblyTorn like publish(). Returns the new version.
std::uint64_t end_write_and_publish(LiveFields& live);

namespace detail {
// Retry bookkeeping of read_consistent, out of line so the template stays small.
class SeqlockRetry {
 public:
  explicit SeqlockRetry(std::chrono::nanoseconds timeout) noexcept : timeout_(timeout) {}
  // After a failed attempt (`saw_odd`: a write was in progress when it started): returns false
  // once the timeout has elapsed, otherwise backs off (spin, then yield, then sleeps up to
  // 200 us, never past the deadline) and returns true. The clock starts at the first failure,
  // so a read that succeeds at once never reads the clock.
  [[nodiscard]] bool backoff(bool saw_odd) noexcept;
  [[nodiscard]] Error timeout_error(const LiveFields& live) const;
  [[nodiscard]] static Error torn_error();

 private:
  std::chrono::nanoseconds timeout_;
  std::chrono::steady_clock::time_point deadline_{};
  std::uint32_t attempts_ = 0;
  std::uint32_t odd_attempts_ = 0;
};
}  // namespace detail

// Runs `copy` (no arguments) until one run overlaps no guarded write, and returns the version read
// during that run (matching the data when the writer uses end_write_and_publish; with
// end_write + publish() it may be one behind the data). Never writes to the segment and never
// blocks the writer. `copy` may run several times and, except in the last run, sees bytes being
// rewritten: it must only copy (memcpy into private memory), not interpret what it reads, follow
// pointers or throw. A writer that rewrites without pause can starve readers; so can a writer that
// died between begin_write and end_write (until the next WriteLock::acquire recovers the lock).
// Errors: kDeadlineExceeded when no clean run happened within `timeout` (counted from the first
// failed run; timeout <= 0 allows exactly one run); kDataLoss, at once and without running `copy`,
// while the array is flagged possibly torn (a writer died or abandoned a write, and nobody has
// published since: the bytes may be half-written, whatever the seqlock says).
template <class CopyFn>
requires std::invocable<CopyFn&>
[[nodiscard]] Result<std::uint64_t> read_consistent(const LiveFields& live, CopyFn&& copy,
                                                    std::chrono::nanoseconds timeout) {
  detail::SeqlockRetry retry(timeout);
  for (;;) {
    const std::uint64_t s0 = live.write_seq.load(std::memory_order_acquire);
    const bool odd = (s0 & 1u) != 0;
    if (!odd) {
      if ((live.flags.load(std::memory_order_relaxed) & kFlagPossiblyTorn) != 0) {
        return std::unexpected(detail::SeqlockRetry::torn_error());
      }
      const std::uint64_t version = live.version.load(std::memory_order_relaxed);
      copy();
      std::atomic_thread_fence(std::memory_order_acquire);
      if (live.write_seq.load(std::memory_order_relaxed) == s0) return version;
    }
    if (!retry.backoff(odd)) return std::unexpected(retry.timeout_error(live));
  }
}

}  // namespace shmarray
