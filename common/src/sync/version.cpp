#include "shmarray/sync/version.hpp"

#include <algorithm>
#include <string>

#include "shmarray/sync/futex.hpp"
#include "sync_detail.hpp"

// Why waiting needs no seq_cst and no `waiters` count.
//
// Publisher (bump_version + wake_waiters):   Waiter (wait_newer_than, sleeping path):
//   P1 version.fetch_add(1, release)           W1 w = wake_word.load(acquire)
//   P2 wake_word.fetch_add(1, release)         W2 if version.load(acquire) > v: return
//   P3 FUTEX_WAKE(wake_word, all)              W3 FUTEX_WAIT(wake_word, expected = w)
// Either W1 reads P2's value (or a later one): then P1 happens-before W2, W2 sees the new version
// and the waiter never sleeps. Or W1 reads an older value: then at W3 the kernel either finds the
// word already changed (EAGAIN, loop) or still reads the old value, and then queues the waiter
// atomically with that read, so P3 (issued after P2) finds it queued and wakes it; the kernel
// orders compare-and-queue against wake (hash-bucket lock and the barriers described in
// kernel/futex/waitwake.c). No publish is lost, and release/acquire suffices because the publisher
// never decides *whether* to wake from a value the waiter wrote.
//
// The classic alternative — waiters increment LiveFields::waiters and publish skips FUTEX_WAKE
// when it reads 0 — needs seq_cst on both sides (a store-load pattern: waiter "waiters++ then read
// version", publisher "version++ then read waiters") and, above all, a writable mapping in every
// waiter. Read-only grants map PROT_READ, so that scheme would crash or lose wake-ups there. We
// pay one syscall per publish instead (~1.2 us on the 2-vCPU dev VM; a skipped wake costs ~6 ns).
// If that ever matters, the safe refinement is a broker-maintained flag bit "every waiter can
// register" (set at create, cleared for good before the first read-only fd is handed out): while
// it is set, waiters register in `waiters` with seq_cst and publish skips the wake when it reads
// waiters == 0 and the flag set (both seq_cst loads after the seq_cst version increment).
//
// The 32-bit wake_word wraps after 2^32 publishes; a waiter would sleep through a wake only if
// exactly a multiple of 2^32 publishes (minutes of publishing at the fastest possible rate)
// happened while it was preempted between W1 and W3. Even then it wakes at its deadline.

namespace shmarray {
namespace detail {

std::uint64_t bump_version(LiveFields& live) noexcept {
  // Clear before the increment, so whoever acquires the new version also sees "not torn". The
  // load avoids an RMW (a cache-line write) on the common path where the flag is clear.
  if ((live.flags.load(std::memory_order_relaxed) & kFlagPossiblyTorn) != 0) {
    live.flags.fetch_and(~kFlagPossiblyTorn, std::memory_order_relaxed);
  }
  return live.version.fetch_add(1, std::memory_order_release) + 1;
}

void wake_waiters(LiveFields& live) noexcept {
  live.wake_word.fetch_add(1, std::memory_order_release);
  // FUTEX_WAKE fails only for an address outside any mapping, which a LiveFields& cannot be.
  (void)futex_wake(live.wake_word);
}

}  // namespace detail

std::uint64_t publish(LiveFields& live) {
  const std::uint64_t version = detail::bump_version(live);
  detail::wake_waiters(live);
  return version;
}

namespace {

[[nodiscard]] Error deadline_error(std::uint64_t v, std::chrono::nanoseconds timeout) {
  return Error(ErrorCode::kDeadlineExceeded, "no publish newer than version " + std::to_string(v) +
                                                 " within " + detail::format_ms(timeout));
}

// Busy-polls the version until it passes `v` or `spin_end`. Returns the version last read.
[[nodiscard]] std::uint64_t spin_until(const LiveFields& live, std::uint64_t v,
                                       std::chrono::steady_clock::time_point spin_end) noexcept {
  for (unsigned i = 1;; ++i) {
    detail::cpu_relax();
    const std::uint64_t seen = live.version.load(std::memory_order_acquire);
    if (seen > v) return seen;
    // Reading the clock (~30 ns here) every 16 pauses keeps the loop tight yet bounded.
    if (i % 16 == 0 && std::chrono::steady_clock::now() >= spin_end) return seen;
  }
}

}  // namespace

Result<std::uint64_t> wait_newer_than(const LiveFields& live, std::uint64_t v,
                                      std::chrono::nanoseconds timeout, WaitPolicy policy) {
  std::uint64_t seen = live.version.load(std::memory_order_acquire);
  if (seen > v) return seen;
  if (timeout <= std::chrono::nanoseconds::zero()) {
    return std::unexpected(deadline_error(v, timeout));
  }

  const auto start = std::chrono::steady_clock::now();
  const auto deadline = detail::deadline_after(start, timeout);
  if (policy.spin > std::chrono::nanoseconds::zero()) {
    seen = spin_until(live, v, std::min(deadline, detail::deadline_after(start, policy.spin)));
    if (seen > v) return seen;
  }

  for (;;) {
    // W1 then W2 (see the comment at the top): the word first, the version second.
    const std::uint32_t word = live.wake_word.load(std::memory_order_acquire);
    seen = live.version.load(std::memory_order_acquire);
    if (seen > v) return seen;
    auto status = futex_wait(live.wake_word, word, deadline);
    if (!status) return std::unexpected(std::move(status.error()));
    if (*status == FutexWaitStatus::kTimedOut) {
      seen = live.version.load(std::memory_order_acquire);
      if (seen > v) return seen;
      return std::unexpected(deadline_error(v, timeout));
    }
    // kWoken, kValueChanged, kInterrupted: re-check. A wake for a publish that did not get the
    // version past `v` just puts us back to sleep.
  }
}

}  // namespace shmarray
