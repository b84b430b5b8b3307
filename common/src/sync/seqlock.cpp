#include "shmarray/sync/seqlock.hpp"

#include <sched.h>

#include <algorithm>
#include <string>
#include <thread>

#include "shmarray/sync/version.hpp"
#include "sync_detail.hpp"

namespace shmarray {

// Writers are serialised by the WriteLock, so plain load + store (no RMW) suffice on write_seq.
// `| 1` keeps begin_write correct even if write_seq were left odd (WriteLock::acquire closes such
// a write after an owner death, so that should not happen).

void begin_write(LiveFields& live) noexcept {
  const std::uint64_t seq = live.write_seq.load(std::memory_order_relaxed);
  live.write_seq.store(seq | 1u, std::memory_order_relaxed);
  // Release fence *after* the odd store: no later data store may become visible before it (a
  // store-store barrier; on x86 only a compiler barrier). A release store alone would not do:
  // it orders earlier accesses, not later ones.
  std::atomic_thread_fence(std::memory_order_release);
}

void end_write(LiveFields& live) noexcept {
  const std::uint64_t seq = live.write_seq.load(std::memory_order_relaxed);
  // Release: every data store of this write is visible before write_seq is even again.
  live.write_seq.store((seq | 1u) + 1, std::memory_order_release);
}

void abandon_write(LiveFields& live) noexcept {
  // The flag first: a reader that sees the closed window (acquire on write_seq) sees the flag.
  live.flags.fetch_or(kFlagPossiblyTorn, std::memory_order_relaxed);
  end_write(live);
}

std::uint64_t end_write_and_publish(LiveFields& live) {
  const std::uint64_t version = detail::bump_version(live);  // inside the window: see header
  end_write(live);
  detail::wake_waiters(live);
  return version;
}

namespace detail {

namespace {
constexpr std::uint32_t kSpinAttempts = 8;    // tight retries: a short write ends within these
constexpr std::uint32_t kYieldAttempts = 24;  // then give the CPU away (the writer may need it)
constexpr std::chrono::microseconds kMaxSleep{200};
}  // namespace

bool SeqlockRetry::backoff(bool saw_odd) noexcept {
  const auto now = std::chrono::steady_clock::now();
  if (attempts_ == 0) deadline_ = deadline_after(now, timeout_);
  ++attempts_;
  if (saw_odd) ++odd_attempts_;
  if (now >= deadline_) return false;

  if (attempts_ <= kSpinAttempts) {
    for (std::uint32_t i = 0; i < (1u << attempts_); ++i) cpu_relax();
  } else if (attempts_ <= kYieldAttempts) {
    ::sched_yield();
  } else {
    // Long writes (big arrays) or a stuck writer: sleep, growing to kMaxSleep, never past the
    // deadline.
    const auto step =
        std::chrono::microseconds(1u << std::min<std::uint32_t>(attempts_ - kYieldAttempts, 8));
    const auto sleep = std::min<std::chrono::nanoseconds>(
        {std::chrono::nanoseconds(step), std::chrono::nanoseconds(kMaxSleep), deadline_ - now});
    std::this_thread::sleep_for(sleep);
  }
  return true;
}

Error SeqlockRetry::torn_error() {
  return Error(ErrorCode::kDataLoss,
               "the array is possibly torn: a writer died or abandoned a write without publishing, "
               "so its bytes may be half-written; it reads consistently again after the next "
               "publish (rewrite it and publish)");
}

Error SeqlockRetry::timeout_error(const LiveFields& live) const {
  std::string message = "no consistent read within " + format_ms(timeout_) + " (" +
                        std::to_string(attempts_) + " attempts, " + std::to_string(odd_attempts_) +
                        " found a write in progress)";
  if ((live.write_seq.load(std::memory_order_relaxed) & 1u) != 0) {
    message +=
        ": a guarded write is still in progress; if its writer died, the next "
        "WriteLock::acquire recovers the array";
  } else {
    message += ": the writer kept rewriting the array; retry, or read with a longer timeout";
  }
  return Error(ErrorCode::kDeadlineExceeded, std::move(message));
}

}  // namespace detail
}  // namespace shmarray
