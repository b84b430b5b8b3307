#pragma once
// How long a bridge thread keeps busy-polling after it did something, before it sleeps: the next
// version of a busy array (or the next message of a busy link) usually comes within tens of
// microseconds, and catching it while polling saves a wake-up from a sleep on each hop (source
// bridge: the array's wake word; mirror bridge: UCX's event fd). Only after activity: an idle
// bridge sleeps at once, so it never burns a core.
#include <chrono>
#include <optional>
#include <string>

namespace shmarray::bridge {

// The default depends on the CPUs the bridge may run on (sched_getaffinity): with at least
// kMinCpusToSpin it spins kSpinWithIdleCores after activity, with fewer not at all.
// Measured (docs/benchmarks.md "Across hosts"): on a 16-CPU host 50 µs spins took a 4 KiB
// version from 26.5 to 8.6 µs over veth (2.43x -> 0.80x the TCP copy); on the 2-vCPU dev VM the
// spinning bridges took the CPU from the publisher and the reader (4 KiB over veth: 39 -> 174 µs).
inline constexpr unsigned kMinCpusToSpin = 4;
inline constexpr std::chrono::microseconds kSpinWithIdleCores{50};
// Above this $SHMARRAY_BRIDGE_SPIN_US is refused (a spin that long is a busy loop, not a bridge).
inline constexpr std::chrono::microseconds kMaxSpin{10'000};

// The default spin of a process that may run on `cpus` CPUs.
[[nodiscard]] std::chrono::nanoseconds default_spin_for(unsigned cpus) noexcept;
// $SHMARRAY_BRIDGE_SPIN_US's text as a spin: a whole number of µs, 0 to kMaxSpin; nullopt if
// `text` is null, empty or anything else.
[[nodiscard]] std::optional<std::chrono::nanoseconds> parse_spin_us(const char* text) noexcept;
// $SHMARRAY_BRIDGE_SPIN_US if set and valid, else the default for this process's CPUs; read once.
[[nodiscard]] std::chrono::nanoseconds spin_after_activity() noexcept;
// For the bridge's start-up log: the spin in use and where it comes from.
[[nodiscard]] std::string describe_spin();

}  // namespace shmarray::bridge
