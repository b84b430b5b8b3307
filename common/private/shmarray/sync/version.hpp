#pragma once
// The publish counter of a segment and waiting for it to move.
//
// A writer changes the array's bytes in place (plain stores), then calls publish(): the version
// goes up by one with release ordering, so a reader that observes the new version (acquire) also
// observes every byte written before the publish. Readers either poll current_version() or block
// in wait_newer_than().
//
// Waiting never writes to the segment, so it works through a read-only (PROT_READ) mapping, which
// is what a read-only grant gives a client. The cost of that choice: a waiter cannot announce
// itself, so publish() always makes one FUTEX_WAKE system call, even when nobody sleeps
// (measured: ~1.2 us on the 2-vCPU dev VM, ~0.12 us per syscall on KVM, against ~6 ns for a
// publish that could skip it). LiveFields::waiters is therefore not maintained here; it stays
// reserved for a broker-assisted skip (see the note in version.cpp).
//
// Thread-safety: all functions may be called concurrently from any thread of any process that
// maps the segment. publish() needs a writable mapping; the other functions only read.
#include <atomic>
#include <chrono>
#include <cstdint>

#include "shmarray/error.hpp"
#include "shmarray/segment_layout.hpp"
#include "shmarray/types.hpp"  // WaitPolicy

namespace shmarray {

// The version last published (0 for a new array). Acquire load: data written before that publish
// is visible to the caller afterwards. Never fails, never blocks.
[[nodiscard]] inline std::uint64_t current_version(const LiveFields& live) noexcept {
  return live.version.load(std::memory_order_acquire);
}

// Announces that the array's contents changed: clears kFlagPossiblyTorn, increments the version
// (release), bumps the futex word and wakes every waiter in every process. Returns the new
// version. Any process with a writable mapping may publish; holding the WriteLock is not required
// but is the usual pattern (lock, write, publish, unlock). Never fails.
std::uint64_t publish(LiveFields& live);

// Blocks until the version is greater than `v` and returns the version seen (> v); the data
// published with it is visible (acquire). Returns at once when it already is. Spins for up to
// policy.spin, then sleeps on the futex word until woken or `timeout` elapses. No publish is
// missed, however close it comes to the moment the caller goes to sleep. Signals (EINTR) do not
// end the wait early; to react to them (e.g. Ctrl-C in Python), wait in slices.
// Only reads the segment: a read-only mapping suffices.
// Errors: kDeadlineExceeded "no publish newer than version N within X ms" (timeout <= 0 checks
// once); kInternal if the kernel rejects the futex wait (never for a mapped segment).
[[nodiscard]] Result<std::uint64_t> wait_newer_than(const LiveFields& live, std::uint64_t v,
                                                    std::chrono::nanoseconds timeout,
                                                    WaitPolicy policy = {});

namespace detail {
// The two halves of publish(), so that end_write_and_publish (seqlock.hpp) can put the version
// bump inside the write window and the wake-up after it. bump_version: clears kFlagPossiblyTorn,
// then version += 1 (release); returns the new version. wake_waiters: bumps wake_word (release)
// then FUTEX_WAKEs everyone; must follow bump_version, never precede it.
std::uint64_t bump_version(LiveFields& live) noexcept;
void wake_waiters(LiveFields& live) noexcept;
}  // namespace detail

}  // namespace shmarray
