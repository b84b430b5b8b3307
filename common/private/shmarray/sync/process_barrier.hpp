#pragma once
// An asymmetric fence across processes (membarrier(2), MEMBARRIER_CMD_GLOBAL_EXPEDITED): the
// frequent side of a Dekker-style handshake orders its store before its load with a compiler
// barrier only, and the rare side calls process_barrier() between its own store and load.
//
// Contract: a process that joined (join_process_barriers() returned true) and does, on any of
// its threads, `store A; compiler_barrier(); load B`, and another process that does
// `store B; process_barrier(); load A` (process_barrier() returned true): at least one of the
// two loads sees the other side's store, exactly as if both had used seq_cst. A thread that is
// not running when the barrier is issued has passed a full barrier at its last context switch.
//
// Thread-safety: both functions may be called from any thread, at any time.
#include <atomic>

namespace shmarray {

// Registers this process for process_barrier() calls made by others (once per process; later
// calls return the first answer). False where the kernel lacks membarrier(2) or refuses it: the
// caller must then use seq_cst on its frequent side.
[[nodiscard]] bool join_process_barriers() noexcept;

// Makes every running thread of every joined process execute a full memory barrier before it
// returns (an interprocessor interrupt to their CPUs: a system call and some microseconds, for
// slow paths only). False when the kernel does not support it.
bool process_barrier() noexcept;

// What the frequent side puts between its store and its load: no instruction, only keeps the
// compiler from reordering them (the CPU is ordered by process_barrier() on the other side).
inline void compiler_barrier() noexcept { std::atomic_signal_fence(std::memory_order_seq_cst); }

}  // namespace shmarray
