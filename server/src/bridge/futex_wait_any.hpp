#pragma once
// Sleeping on several futex words at once (Linux futex_waitv, 5.16+): how the source link's
// thread waits for "anything to send" with one wake-up for all of it: every source array's
// wake word (publish() bumps it and wakes it unconditionally, shmarray/sync/version.hpp) and the
// link's Doorbell (broker events, a stream forwarder's failure).
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <span>

namespace shmarray::bridge {

struct FutexWatch {
  const std::atomic<std::uint32_t>* word;
  // The value read *before* the caller last looked at what the word guards: a wake after that
  // look changed the word, so the sleep ends at once (no lost wake-up).
  std::uint32_t expected;
};

// The most words one sleep watches (the kernel's FUTEX_WAITV_MAX).
inline constexpr std::size_t kMaxFutexWatches = 128;
// Where the kernel has no futex_waitv (before 5.16) or more words are given, the sleep watches the
// first word only and lasts at most this long, so the others are seen this late at worst.
inline constexpr std::chrono::milliseconds kFutexWatchFallbackSlice{2};

// Sleeps until a futex_wake on any of `words` (shared futexes, as shmarray/sync/futex.hpp), one of
// them no longer holding its expected value, a signal, or `deadline` (steady_clock). The caller
// re-checks its conditions afterwards, whatever ended the sleep. An empty `words` sleeps until
// the deadline.
void futex_wait_any(std::span<const FutexWatch> words,
                    std::chrono::steady_clock::time_point deadline) noexcept;

}  // namespace shmarray::bridge
