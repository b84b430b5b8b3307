#pragma once
// The publish timestamp of a stream message (SlotDescriptor::published_unix_ns, docs/streams.md
// "Publish timestamps"): CLOCK_REALTIME, read without a clock_gettime per message where the
// kernel itself keeps time with the TSC. A publisher reads the clock (and the TSC beside it)
// at most every 10 ms and extrapolates in between with the TSC's rate, measured against
// CLOCK_MONOTONIC over as long as it extrapolates (50 us after its first publish, growing to
// 10 ms): within 0.3 us of clock_gettime here. A step of the clock (settimeofday, an NTP step)
// shows in timestamps up to 10 ms late; its slewing is followed, as the rate comes from the
// kernel's own clock.
//
// Elsewhere (no TSC clocksource, not x86-64) every call reads CLOCK_REALTIME (vDSO).
// Thread safety: one PublishClock per publisher, used from the publisher's thread.
#include <cstdint>

namespace shmarray::detail {

class PublishClock {
 public:
  PublishClock() noexcept;
  // Nanoseconds since the Unix epoch, now.
  [[nodiscard]] std::int64_t unix_ns() noexcept;

 private:
  std::int64_t rebase(std::uint64_t tsc) noexcept;  // reads the clocks: the slow path
  bool tsc_ = false;                 // the kernel keeps time with the (invariant) TSC
  bool calibrated_ = false;          // ns_per_tick_ is measured
  std::uint64_t base_tsc_ = 0;       // the TSC at the last clock reading
  std::int64_t base_unix_ns_ = 0;    // CLOCK_REALTIME then
  std::uint64_t window_ticks_ = 0;   // how far from the base the TSC is extrapolated
  std::uint64_t anchor_tsc_ = 0;     // the start of the current rate measurement
  std::int64_t anchor_mono_ns_ = 0;  // CLOCK_MONOTONIC then
  std::int64_t measured_over_ns_ = 0;  // how long the rate in use was measured over
  double ns_per_tick_ = 0;
};

}  // namespace shmarray::detail
