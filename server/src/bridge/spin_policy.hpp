#pragma once
// How long a bridge thread keeps busy-polling after it did something, before it sleeps: the next
// version of a busy array (or the next message of a busy link) usually comes within tens of
// microseconds, and catching it while polling saves a wake-up from a sleep on each hop (source
// bridge: the array's wake word; mirror bridge: UCX's event fd). Only after activity: an idle
// bridge sleeps at once, so it never burns a core.
#include <chrono>

namespace shmarray::bridge {

// The default, or $SHMARRAY_BRIDGE_SPIN_US (0 turns spinning off), read once.
// Off by default: on the 2-vCPU dev VM (loaded) spinning bridges took the CPU from the publisher
// and the reader (4 KiB over veth: 39 us -> 174 us with 50 us spins, 418 us with 200 us; same run,
// docs/benchmarks.md "Across hosts"). Turn it on where the hosts have idle cores.
inline constexpr std::chrono::microseconds kDefaultSpinAfterActivity{0};
[[nodiscard]] std::chrono::nanoseconds spin_after_activity() noexcept;

}  // namespace shmarray::bridge
