#pragma once
// Thin wrappers of the Linux futex(2) WAIT/WAKE operations on a 32-bit word in shared memory.
//
// These are *shared* futexes (no FUTEX_PRIVATE_FLAG): the kernel keys them by the physical page
// and offset behind the address, so a waiter and a waker in different processes, mapping the same
// segment at different addresses, meet on the same word. Waiting only reads the word, so it works
// through a PROT_READ mapping (Linux >= 3.5 looks the key up with read access).
//
// Thread-safety: every function may be called concurrently from any thread or process.
#include <atomic>
#include <chrono>
#include <climits>
#include <cstdint>

#include "shmarray/error.hpp"

namespace shmarray {

// Why futex_wait returned without an error. Whatever the status, the caller re-checks its own
// condition: a futex wait can also end spuriously (reported as kWoken).
enum class FutexWaitStatus : std::uint8_t {
  kWoken,         // a futex_wake on the word (or a spurious wake-up)
  kValueChanged,  // the word no longer held `expected` when the kernel compared it (EAGAIN)
  kInterrupted,   // a signal handler ran (EINTR); the deadline has not passed
  kTimedOut,      // the deadline passed (ETIMEDOUT)
};

// Sleeps while `word` holds `expected`, until a futex_wake on the same word, a signal, or
// `deadline` on std::chrono::steady_clock (CLOCK_MONOTONIC). The kernel compares the word and
// queues the caller atomically with respect to futex_wake, so a wake issued after the word was
// changed is never lost. The deadline is absolute, so looping on kInterrupted/kWoken does not
// stretch the total wait. time_point::max() waits without a deadline; a deadline already in the
// past returns kTimedOut at once (after the comparison: kValueChanged takes precedence).
// Errors: kInternal for a bad address or an unsupported kernel (EFAULT, EINVAL, ENOSYS).
[[nodiscard]] Result<FutexWaitStatus> futex_wait(const std::atomic<std::uint32_t>& word,
                                                 std::uint32_t expected,
                                                 std::chrono::steady_clock::time_point deadline);

// As futex_wait, with a relative timeout (saturating: nanoseconds::max() never times out; zero or
// negative means "compare only").
[[nodiscard]] Result<FutexWaitStatus> futex_wait_for(const std::atomic<std::uint32_t>& word,
                                                     std::uint32_t expected,
                                                     std::chrono::nanoseconds timeout);

// Wakes up to `count` (> 0) threads sleeping in futex_wait on `word`, in any process. Change the
// word *before* calling this, or a waiter that has read the old value may sleep through the wake.
// Returns the number woken. The word is not written (the kernel only needs its address).
// Errors: kInvalidArgument for count <= 0; kInternal (EFAULT, EINVAL) only for a word outside
// any mapping.
[[nodiscard]] Result<int> futex_wake(const std::atomic<std::uint32_t>& word, int count = INT_MAX);

}  // namespace shmarray
