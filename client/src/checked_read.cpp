// Array::read_checked: a seqlock read that survives the segment being truncated under it.
//
// A page of a shared mapping beyond the end of its file raises SIGBUS when touched, and any writer
// may ftruncate the segment. process_vm_readv on our own process reads the same addresses through
// the kernel, which returns EFAULT for a page that is gone instead of raising a signal.
//
// The seqlock words (LiveFields) sit in the header page, which only a truncation to 0 removes.
// read_consistent loads them directly, so each attempt first checks the header page with
// process_vm_readv and runs read_consistent for exactly one copy; the copy re-checks the header
// page after the data and, if either is gone, leaves read_consistent by an exception (caught here,
// never crossing the API) before it touches the seqlock words again. What remains is a window of a
// few instructions between a successful check and the seqlock load (docs/security.md).
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

#include "mapped_segment.hpp"
#include "shmarray/array.hpp"
#include "shmarray/segment_layout.hpp"

namespace shmarray {
namespace {

// Thrown by the copy function only, caught in read_checked.
struct PagesGone {
  int err;
};

// Copies `n` bytes at `src` (in this process) to `dst`; 0 or the errno (EFAULT: a page is gone).
int checked_copy(void* dst, const void* src, std::size_t n) noexcept {
  auto* out = static_cast<std::byte*>(dst);
  const auto* in = static_cast<const std::byte*>(src);
  while (n > 0) {
    iovec local{out, n};
    iovec remote{const_cast<std::byte*>(in), n};
    const ssize_t got = ::process_vm_readv(::getpid(), &local, 1, &remote, 1, 0);
    if (got < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (got == 0) return EFAULT;
    out += got;
    in += got;
    n -= static_cast<std::size_t>(got);
  }
  return 0;
}

// Whether the header page's live fields can still be read (0 or the errno).
int probe_live_fields(const std::byte* base) noexcept {
  alignas(LiveFields) std::byte scratch[sizeof(LiveFields)];
  return checked_copy(scratch, base + kLiveFieldsOffset, sizeof scratch);
}

Error pages_gone(const ArrayInfo& info, int err) {
  if (err == EFAULT) {
    return Error(ErrorCode::kDataLoss,
                 "the segment of array '" + info.name +
                     "' was truncated by a writer after it was mapped: its data is lost; "
                     "remove and recreate the array",
                 err);
  }
  return sys_error("cannot read array '" + info.name + "' with process_vm_readv", err);
}

}  // namespace

Result<std::uint64_t> Array::read_checked(std::span<std::byte> dst,
                                          std::chrono::nanoseconds timeout) const {
  if (!segment_) return fail(ErrorCode::kFailedPrecondition, "read_checked on a moved-from Array");
  if (dst.size() < info_.nbytes) {
    return fail(ErrorCode::kInvalidArgument,
                "read_checked of array '" + info_.name + "' needs " +
                    std::to_string(info_.nbytes) + " bytes, got a buffer of " +
                    std::to_string(dst.size()));
  }
  const std::byte* base = segment_->mapping.data();
  const std::byte* data = bytes().data();
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (std::uint32_t attempt = 0;; ++attempt) {
    if (const int err = probe_live_fields(base); err != 0) {
      return std::unexpected(pages_gone(info_, err));
    }
    Result<std::uint64_t> read = std::unexpected(Error(ErrorCode::kInternal, "not run"));
    try {
      // One run per call (timeout 0): the header page is re-checked before every seqlock load.
      read = shmarray::read_consistent(
          live(),
          [&] {
            if (int err = checked_copy(dst.data(), data, info_.nbytes); err != 0) {
              throw PagesGone{err};
            }
            if (int err = probe_live_fields(base); err != 0) throw PagesGone{err};
          },
          std::chrono::nanoseconds(0));
    } catch (const PagesGone& gone) {
      return std::unexpected(pages_gone(info_, gone.err));
    }
    if (read || read.error().code() != ErrorCode::kDeadlineExceeded) return read;
    if (std::chrono::steady_clock::now() >= deadline) {
      return fail(ErrorCode::kDeadlineExceeded,
                  "read_checked of array '" + info_.name + "': no consistent read in " +
                      std::to_string(attempt + 1) +
                      " attempts: a writer kept rewriting it, or a write is still in progress "
                      "(its writer may have died); retry, or read with a longer timeout");
    }
    // A write overlapped the copy: back off like read_consistent does, then try again.
    if (attempt < 16) {
      std::this_thread::yield();
    } else {
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
  }
}

}  // namespace shmarray
