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

// Every spin yields the CPU now and then (a woken publisher or reader on the spinner's CPU runs
// at once: on 2 vCPUs a spin that did not yield made 4 KiB 4.7x the TCP copy, one that yields
// every 16 polls 2.9x). The default depends on the CPUs the bridge may run on
// (sched_getaffinity): with at least kMinCpusToSpin it spins kSpinWithIdleCores after activity,
// with fewer not at all. Measured (docs/benchmarks.md "Across hosts"): on a 16-CPU host 50 µs
// spins took a 4 KiB version from 26.5 to 8.6 µs over veth (2.43x -> 0.80x the TCP copy); on the
// 2-vCPU dev VM they helped back to back and at 1000 versions/s, but at 10,000/s the two bridges
// used 1.07 cores instead of 0.41 for no gain in latency: a core that 2 CPUs cannot spare.
inline constexpr unsigned kMinCpusToSpin = 4;
inline constexpr std::chrono::microseconds kSpinWithIdleCores{50};
// Mid-transfer (a send the socket could not take at once, the rest of a message or of an
// array's bytes due from the peer) a bridge thread polls this long since its last progress
// before it sleeps, on any number of CPUs: the producer and the reader wait for this transfer
// anyway, and each sleep costs a wake-up per fragment (docs/benchmarks.md, "Across hosts").
inline constexpr std::chrono::microseconds kTransferSpin{50};
// Above this $SHMARRAY_BRIDGE_SPIN_US is refused (a spin that long is a busy loop, not a bridge).
inline constexpr std::chrono::microseconds kMaxSpin{10'000};

// The default spin of a process that may run on `cpus` CPUs.
[[nodiscard]] std::chrono::nanoseconds default_spin_for(unsigned cpus) noexcept;
// $SHMARRAY_BRIDGE_SPIN_US's text as a spin: a whole number of µs, 0 to kMaxSpin; nullopt if
// `text` is null, empty or anything else.
[[nodiscard]] std::optional<std::chrono::nanoseconds> parse_spin_us(const char* text) noexcept;
// $SHMARRAY_BRIDGE_SPIN_US if set and valid, else the default for this process's CPUs; read once.
[[nodiscard]] std::chrono::nanoseconds spin_after_activity() noexcept;
// The mid-transfer spin where the idle one is `after_activity` and
// $SHMARRAY_BRIDGE_TRANSFER_SPIN_US reads `text`: the text's spin if valid, else kTransferSpin,
// and never less than `after_activity`.
[[nodiscard]] std::chrono::nanoseconds transfer_spin_for(std::chrono::nanoseconds after_activity,
                                                         const char* text) noexcept;
// transfer_spin_for(spin_after_activity(), $SHMARRAY_BRIDGE_TRANSFER_SPIN_US); read once.
[[nodiscard]] std::chrono::nanoseconds transfer_spin() noexcept;
// For the bridge's start-up log: the spin in use and where it comes from.
[[nodiscard]] std::string describe_spin();

}  // namespace shmarray::bridge
