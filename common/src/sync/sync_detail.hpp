#pragma once
// Private helpers of the sync/ sources: CPU relax hint, saturating deadlines, duration text.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <string>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace shmarray::detail {

// Tells the CPU we are busy-waiting (x86 PAUSE, ARM YIELD): saves power and frees the sibling
// hyperthread; on x86 it also avoids the memory-order mis-speculation flush on loop exit.
inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#elif defined(__aarch64__) || defined(__arm__)
  asm volatile("yield" ::: "memory");
#else
  std::atomic_signal_fence(std::memory_order_seq_cst);
#endif
}

// now + timeout without overflow: nanoseconds::max() (or anything past the clock's range) gives
// time_point::max(), which the futex wrapper treats as "no deadline".
inline std::chrono::steady_clock::time_point deadline_after(
    std::chrono::steady_clock::time_point now, std::chrono::nanoseconds timeout) noexcept {
  using Clock = std::chrono::steady_clock;
  if (timeout <= std::chrono::nanoseconds::zero()) return now;
  const auto room = Clock::time_point::max() - now;
  if (timeout >= room) return Clock::time_point::max();
  return now + std::chrono::duration_cast<Clock::duration>(timeout);
}

// "250 ms", "0.050 ms": timeouts as people wrote them.
inline std::string format_ms(std::chrono::nanoseconds d) {
  char buf[48];
  if (d.count() % 1'000'000 == 0) {
    std::snprintf(buf, sizeof buf, "%lld ms", static_cast<long long>(d.count() / 1'000'000));
  } else {
    std::snprintf(buf, sizeof buf, "%.3f ms", static_cast<double>(d.count()) / 1e6);
  }
  return buf;
}

}  // namespace shmarray::detail
