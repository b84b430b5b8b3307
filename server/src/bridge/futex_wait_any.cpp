#include "futex_wait_any.hpp"

#include <errno.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <thread>

#include "shmarray/sync/futex.hpp"

#ifndef SYS_futex_waitv
#define SYS_futex_waitv 449  // x86-64 and the generic table alike
#endif

namespace shmarray::bridge {
namespace {

std::atomic<bool> g_no_futex_waitv{false};  // ENOSYS seen once: the kernel has none

timespec monotonic(std::chrono::steady_clock::time_point t) noexcept {
  // libstdc++'s steady_clock is CLOCK_MONOTONIC.
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch());
  const auto count = std::max<std::int64_t>(ns.count(), 0);
  return timespec{static_cast<time_t>(count / 1'000'000'000),
                  static_cast<long>(count % 1'000'000'000)};
}

}  // namespace

void futex_wait_any(std::span<const FutexWatch> words,
                    std::chrono::steady_clock::time_point deadline) noexcept {
  if (words.empty()) {
    std::this_thread::sleep_until(deadline);
    return;
  }
  if (words.size() <= kMaxFutexWatches && !g_no_futex_waitv.load(std::memory_order_relaxed)) {
    std::array<futex_waitv, kMaxFutexWatches> waiters{};
    for (std::size_t i = 0; i < words.size(); ++i) {
      waiters[i].val = words[i].expected;
      waiters[i].uaddr = reinterpret_cast<std::uintptr_t>(words[i].word);
      waiters[i].flags = FUTEX_32;  // shared (no FUTEX_PRIVATE_FLAG): other processes wake it
    }
    const timespec until = monotonic(deadline);
    const long rc = ::syscall(SYS_futex_waitv, waiters.data(), static_cast<unsigned>(words.size()),
                              0u, &until, CLOCK_MONOTONIC);
    // Woken (index), EAGAIN (a word changed), ETIMEDOUT, EINTR, or EFAULT (a source mapping a
    // local writer truncated: the caller's next read of it trips the SIGBUS guard): all mean
    // "look again".
    if (rc >= 0 || errno != ENOSYS) return;
    g_no_futex_waitv.store(true, std::memory_order_relaxed);
  }
  const auto slice = std::chrono::steady_clock::now() + kFutexWatchFallbackSlice;
  (void)futex_wait(*words[0].word, words[0].expected, std::min(deadline, slice));
}

}  // namespace shmarray::bridge
