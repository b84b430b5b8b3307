#include "shmarray/sync/live_fields.hpp"

namespace shmarray {

Result<void> init_live_fields(LiveFields& live) {
  // Whoever maps the segment next learns of it through the fd passed over a socket (a
  // synchronising system call), so relaxed stores are enough here.
  live.version.store(0, std::memory_order_relaxed);
  live.write_seq.store(0, std::memory_order_relaxed);
  live.wake_word.store(0, std::memory_order_relaxed);
  live.waiters.store(0, std::memory_order_relaxed);
  live.flags.store(0, std::memory_order_relaxed);
  live.reserved0 = 0;
  live.lock_word.store(0, std::memory_order_relaxed);
  live.reserved1 = 0;
  live.reserved2 = 0;
  return {};
}

}  // namespace shmarray
