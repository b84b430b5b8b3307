#include "shmarray/sync/futex.hpp"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <ctime>
#include <string>

#include "sync_detail.hpp"

namespace shmarray {
namespace {

// The kernel only reads the word; the cast drops const to match the syscall's prototype.
std::uint32_t* address_of(const std::atomic<std::uint32_t>& word) noexcept {
  static_assert(sizeof(std::atomic<std::uint32_t>) == sizeof(std::uint32_t));
  return reinterpret_cast<std::uint32_t*>(const_cast<std::atomic<std::uint32_t>*>(&word));
}

}  // namespace

Result<FutexWaitStatus> futex_wait(const std::atomic<std::uint32_t>& word, std::uint32_t expected,
                                   std::chrono::steady_clock::time_point deadline) {
  // FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC deadline (plain FUTEX_WAIT a relative
  // one), so retries after EINTR or spurious wake-ups never extend the caller's total wait.
  timespec abs{};
  const timespec* abs_ptr = nullptr;
  if (deadline != std::chrono::steady_clock::time_point::max()) {
    const auto ns =
        std::chrono::duration_cast<std::chrono::nanoseconds>(deadline.time_since_epoch()).count();
    abs.tv_sec = static_cast<time_t>(ns / 1'000'000'000);
    abs.tv_nsec = static_cast<long>(ns % 1'000'000'000);
    if (ns < 0) abs = timespec{};  // before the epoch of CLOCK_MONOTONIC: already expired
    abs_ptr = &abs;
  }
  const long rc = ::syscall(SYS_futex, address_of(word), FUTEX_WAIT_BITSET, expected, abs_ptr,
                            nullptr, FUTEX_BITSET_MATCH_ANY);
  if (rc == 0) return FutexWaitStatus::kWoken;
  switch (errno) {
    case EAGAIN: return FutexWaitStatus::kValueChanged;
    case EINTR: return FutexWaitStatus::kInterrupted;
    case ETIMEDOUT: return FutexWaitStatus::kTimedOut;
    default: {
      const int err = errno;
      Error error = sys_error("futex wait on a shared-memory word", err);
      return fail(ErrorCode::kInternal, error.message(), err);
    }
  }
}

Result<FutexWaitStatus> futex_wait_for(const std::atomic<std::uint32_t>& word,
                                       std::uint32_t expected, std::chrono::nanoseconds timeout) {
  return futex_wait(word, expected,
                    detail::deadline_after(std::chrono::steady_clock::now(), timeout));
}

Result<int> futex_wake(const std::atomic<std::uint32_t>& word, int count) {
  if (count <= 0) return fail(ErrorCode::kInvalidArgument, "futex_wake needs a count above 0");
  const long rc = ::syscall(SYS_futex, address_of(word), FUTEX_WAKE, count, nullptr, nullptr, 0);
  if (rc < 0) {
    const int err = errno;
    Error error = sys_error("futex wake on a shared-memory word", err);
    return fail(ErrorCode::kInternal, error.message(), err);
  }
  return static_cast<int>(rc);
}

}  // namespace shmarray
