#pragma once
// Keeps the bridge alive when a local writer truncates a source segment under it.
//
// Any client with a read-write grant may ftruncate a segment; a page of a shared mapping beyond
// the file's new end raises SIGBUS when touched, and the source bridge touches its mappings
// directly: its own reads of the seqlock words, and UCX (or memcpy) reading the bytes it sends
// (zero-copy, straight from the mapping). Without this, one hostile writer would kill the bridge
// and stall every mirror of every array of the broker.
//
// The technique is the one Wayland compositors use for client buffers (libwayland's wl_shm): a
// SIGBUS handler that, when the faulting address lies inside a mapping registered here, maps
// anonymous zero pages over the rest of that mapping (mmap MAP_FIXED|MAP_PRIVATE|MAP_ANONYMOUS),
// flags the mapping as truncated and returns, so that the faulting instruction (inside UCX, the
// kernel's copy or memcpy) runs again and reads zeros. Any other SIGBUS gets the default action.
// The caller then checks truncated() after each send: a flagged mapping's bytes are never
// reported as a good version, and the mapping is dropped (it no longer follows the file).
//
// The table of registered ranges is a fixed array read by the handler with atomic loads only
// (async-signal-safe); registering and unregistering take a mutex (never from the handler).
#include <cstddef>
#include <span>

#include "shmarray/error.hpp"

namespace shmarray::bridge {

// Installs the handler (process-wide, once; later calls do nothing). Call from main before the
// link threads start.
void install_sigbus_guard();

// One registration of a mapping [base, base + size): while any registration of the same range
// lives, a SIGBUS inside it is survived as described above. Two registrations of one range (two
// links sending the same array: the client library shares one mapping per array and process)
// share one slot, so both see truncated(). Unregister before the mapping goes away (destroy the
// GuardedRange before the Array it watches).
class GuardedRange {
 public:
  // kResourceExhausted when the table is full (the array is then not mirrored: see the log).
  [[nodiscard]] static Result<GuardedRange> watch(std::span<const std::byte> mapping);
  GuardedRange(GuardedRange&& other) noexcept : slot_(other.slot_) { other.slot_ = -1; }
  GuardedRange& operator=(GuardedRange&& other) noexcept;
  GuardedRange(const GuardedRange&) = delete;
  GuardedRange& operator=(const GuardedRange&) = delete;
  ~GuardedRange();

  // True once a SIGBUS was survived inside the range: from then on (part of) it reads zeros,
  // whatever the file holds; the mapping must not be used again.
  [[nodiscard]] bool truncated() const noexcept;

 private:
  explicit GuardedRange(int slot) noexcept : slot_(slot) {}
  void release() noexcept;
  int slot_ = -1;
};

// While one lives on a thread, a SIGBUS on that thread outside every registered range (a mapping
// the client library is making right now: an open that reads the new mapping's header) is
// survived too: one zero page is mapped over the faulting page and faulted() becomes true. The
// caller then drops whatever it was opening (its header read zeros, so the open fails anyway).
class OpenGuard {
 public:
  OpenGuard() noexcept;
  ~OpenGuard();
  OpenGuard(const OpenGuard&) = delete;
  OpenGuard& operator=(const OpenGuard&) = delete;
  [[nodiscard]] bool faulted() const noexcept;
};

}  // namespace shmarray::bridge
