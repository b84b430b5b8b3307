#include "publish_clock.hpp"

#include <time.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <string>
#if defined(__x86_64__)
#include <cpuid.h>
#include <x86intrin.h>
#endif

namespace shmarray::detail {
namespace {

// Extrapolate at most this far from a clock reading, and measure the TSC's rate over at least
// this long: with readings ~20 ns apart from their TSC value, the rate is right to 4e-6 and a
// timestamp to ~0.05 us.
constexpr std::int64_t kWindowNs = 10'000'000;
// The shortest measurement of the rate that is used (for windows as short).
constexpr std::int64_t kMinMeasureNs = 50'000;
// Two clock readings take ~70 ns; a pair of TSC values further apart than this was interrupted.
constexpr std::uint64_t kTightTicks = 1000;

std::int64_t read_ns(clockid_t clock) noexcept {
  timespec ts{};
  ::clock_gettime(clock, &ts);  // vDSO: no system call
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

// The kernel keeps time with the TSC (so it found it invariant and synchronised across CPUs):
// then our extrapolation runs on the clock the kernel's own CLOCK_REALTIME runs on.
bool kernel_uses_tsc() noexcept {
#if defined(__x86_64__)
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  // CPUID 0x80000007 EDX bit 8: invariant TSC (constant rate, runs in every power state).
  if (__get_cpuid(0x80000007, &eax, &ebx, &ecx, &edx) == 0 || (edx & (1u << 8)) == 0) {
    return false;
  }
  std::ifstream in("/sys/devices/system/clocksource/clocksource0/current_clocksource");
  std::string source;
  return static_cast<bool>(in >> source) && source == "tsc";
#else
  return false;
#endif
}

inline std::uint64_t read_tsc() noexcept {
#if defined(__x86_64__)
  return __rdtsc();
#else
  return 0;
#endif
}

}  // namespace

PublishClock::PublishClock() noexcept {
  static const bool tsc = kernel_uses_tsc();  // once per process
  tsc_ = tsc;
}

std::int64_t PublishClock::unix_ns() noexcept {
  if (!tsc_) return read_ns(CLOCK_REALTIME);
  const std::uint64_t now = read_tsc();
  const std::uint64_t since = now - base_tsc_;
  if (calibrated_ && since < window_ticks_) [[likely]] {
    return base_unix_ns_ + static_cast<std::int64_t>(static_cast<double>(since) * ns_per_tick_);
  }
  return rebase(now);
}

std::int64_t PublishClock::rebase(std::uint64_t before) noexcept {
  std::int64_t unix_now = read_ns(CLOCK_REALTIME);
  std::int64_t mono_now = read_ns(CLOCK_MONOTONIC);
  std::uint64_t after = read_tsc();
  // Both readings lie between the two TSC values. Preempted in between, the pair is loose: the
  // tightest of a few tries is kept (a few hundred ticks apart when not interrupted).
  for (int i = 0; i < 4 && after - before > kTightTicks; ++i) {
    const std::uint64_t b = read_tsc();
    const std::int64_t u = read_ns(CLOCK_REALTIME);
    const std::int64_t m = read_ns(CLOCK_MONOTONIC);
    const std::uint64_t a = read_tsc();
    if (a - b < after - before) {
      before = b;
      after = a;
      unix_now = u;
      mono_now = m;
    }
  }
  const std::uint64_t tsc = before + (after - before) / 2;
  base_tsc_ = tsc;
  base_unix_ns_ = unix_now;
  if (anchor_tsc_ == 0 || tsc <= anchor_tsc_) {
    anchor_tsc_ = tsc;
    anchor_mono_ns_ = mono_now;
    calibrated_ = false;
    measured_over_ns_ = 0;
    return unix_now;
  }
  // The rate over the time since the anchor; the window never exceeds that time, so the
  // extrapolation error stays within a few readings' error (from 50 us after the first
  // publish, growing to kWindowNs).
  const std::int64_t elapsed = mono_now - anchor_mono_ns_;
  if (elapsed >= kMinMeasureNs && elapsed >= measured_over_ns_) {
    const double rate = static_cast<double>(elapsed) / static_cast<double>(tsc - anchor_tsc_);
    // A rate far from the last one (a suspended VM, a TSC that jumped): not trusted; measure
    // again from here, reading the clock at every publish meanwhile.
    const bool plausible = rate > 0.01 && rate < 100 &&
                           (!calibrated_ || std::abs(rate / ns_per_tick_ - 1) < 0.01);
    if (!plausible) {
      calibrated_ = false;
      measured_over_ns_ = 0;
      anchor_tsc_ = tsc;
      anchor_mono_ns_ = mono_now;
      return unix_now;
    }
    calibrated_ = true;
    ns_per_tick_ = rate;
    measured_over_ns_ = std::min(elapsed, kWindowNs);
    window_ticks_ = static_cast<std::uint64_t>(static_cast<double>(measured_over_ns_) / rate);
  }
  // The next measurement starts here (the rate follows the clock's slewing); the current one
  // stays in use until the new one has run as long.
  if (elapsed >= 2 * kWindowNs) {
    anchor_tsc_ = tsc;
    anchor_mono_ns_ = mono_now;
  }
  return unix_now;
}

}  // namespace shmarray::detail
