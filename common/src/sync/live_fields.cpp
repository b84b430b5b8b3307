#include "shmarray/sync/live_fields.hpp"

#include <pthread.h>

#include <cerrno>
#include <string>

namespace shmarray {
namespace {

[[nodiscard]] Error pthread_error(const char* what, int rc) {
  const ErrorCode code =
      (rc == ENOMEM || rc == EAGAIN) ? ErrorCode::kResourceExhausted : ErrorCode::kInternal;
  return Error(code, "initialising the write lock of a new array: " + sys_error(what, rc).message(),
               rc);
}

}  // namespace

Result<void> init_live_fields(LiveFields& live) {
  live.version.store(0, std::memory_order_relaxed);
  live.write_seq.store(0, std::memory_order_relaxed);
  live.wake_word.store(0, std::memory_order_relaxed);
  live.waiters.store(0, std::memory_order_relaxed);
  live.flags.store(0, std::memory_order_relaxed);
  live.reserved0 = 0;

  pthread_mutexattr_t attr;
  int rc = ::pthread_mutexattr_init(&attr);
  if (rc != 0) return std::unexpected(pthread_error("pthread_mutexattr_init", rc));
  const char* step = "pthread_mutexattr_setpshared";
  rc = ::pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
  if (rc == 0) {
    step = "pthread_mutexattr_setrobust";
    rc = ::pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
  }
  if (rc == 0) {
    step = "pthread_mutexattr_settype";
    rc = ::pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_ERRORCHECK);
  }
  if (rc == 0) {
    step = "pthread_mutex_init";
    rc = ::pthread_mutex_init(&live.write_lock, &attr);
  }
  ::pthread_mutexattr_destroy(&attr);
  if (rc != 0) return std::unexpected(pthread_error(step, rc));
  // Whoever maps the segment next learns of it through the fd passed over a socket (a
  // synchronising system call), so relaxed stores are enough here.
  return {};
}

}  // namespace shmarray
