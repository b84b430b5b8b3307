#include "shmarray/sync/process_barrier.hpp"

#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace shmarray {
namespace {

long membarrier(int cmd) noexcept {
#ifdef SYS_membarrier
  return ::syscall(SYS_membarrier, cmd, 0, 0);
#else
  (void)cmd;
  return -1;
#endif
}

}  // namespace

bool join_process_barriers() noexcept {
  // A function-local static: registered once, thread-safe, and the answer is cached (the hot
  // paths read it through a member copied at attach, not through this call).
  static const bool joined = [] {
    const long supported = membarrier(MEMBARRIER_CMD_QUERY);
    if (supported < 0 || (supported & MEMBARRIER_CMD_GLOBAL_EXPEDITED) == 0) return false;
    return membarrier(MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED) == 0;
  }();
  return joined;
}

bool process_barrier() noexcept {
  // The kernel orders our own accesses around the call (full barriers at entry and exit);
  // the compiler barriers keep the compiler from moving them across it.
  compiler_barrier();
  const bool ok = membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED) == 0;
  compiler_barrier();
  return ok;
}

}  // namespace shmarray
