// Array::read_checked: a seqlock read that survives the segment being truncated under it.
//
// A page of a shared mapping beyond the end of its file raises SIGBUS when touched, and any writer
// may ftruncate the segment. process_vm_readv on our own process reads the same addresses through
// the kernel, which returns EFAULT for a page that is gone instead of raising a signal.
//
// So this runs the seqlock protocol of read_consistent (sync/seqlock.hpp) with every access to
// the segment made that way, the seqlock words included: no instruction of this function loads
// from the mapping directly, and a truncation at any moment, to any size, gives kDataLoss. The
// system calls are full barriers, which is what the reader side of the seqlock needs between its
// loads. A word read through the kernel's copy might in principle be torn; a torn write_seq can
// only differ from the other read (retry) or look odd (retry), never make a torn copy look clean
// unless both torn reads happened to produce the same value.
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <thread>

#include "mapped_segment.hpp"
#include "shmarray/array.hpp"
#include "shmarray/segment_layout.hpp"
#include "shmarray/sync/seqlock.hpp"

namespace shmarray {
namespace {

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

// The seqlock words of the header page (version, write_seq, ..., flags: the first bytes of
// LiveFields), read through the kernel in one call. 0 or the errno.
constexpr std::size_t kSeqlockWordsBytes = offsetof(LiveFields, flags) + sizeof(std::uint32_t);
struct SeqlockWords {
  std::uint64_t version = 0;
  std::uint64_t write_seq = 0;
  std::uint32_t flags = 0;
};
int read_words(const std::byte* base, SeqlockWords& out) noexcept {
  alignas(8) std::byte raw[kSeqlockWordsBytes];
  if (int err = checked_copy(raw, base + kLiveFieldsOffset, sizeof raw); err != 0) return err;
  std::memcpy(&out.version, raw + offsetof(LiveFields, version), sizeof out.version);
  std::memcpy(&out.write_seq, raw + offsetof(LiveFields, write_seq), sizeof out.write_seq);
  std::memcpy(&out.flags, raw + offsetof(LiveFields, flags), sizeof out.flags);
  return 0;
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
    SeqlockWords before;
    if (const int err = read_words(base, before); err != 0) {
      return std::unexpected(pages_gone(info_, err));
    }
    const bool odd = (before.write_seq & 1u) != 0;
    if (!odd) {
      if ((before.flags & kFlagPossiblyTorn) != 0) {
        return std::unexpected(detail::SeqlockRetry::torn_error());
      }
      if (const int err = checked_copy(dst.data(), data, info_.nbytes); err != 0) {
        return std::unexpected(pages_gone(info_, err));
      }
      std::uint64_t after = 0;
      if (const int err = checked_copy(&after, base + kLiveFieldsOffset +
                                                   offsetof(LiveFields, write_seq), 8);
          err != 0) {
        return std::unexpected(pages_gone(info_, err));
      }
      if (after == before.write_seq) return before.version;
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      return fail(ErrorCode::kDeadlineExceeded,
                  "read_checked of array '" + info_.name + "': no consistent read in " +
                      std::to_string(attempt + 1) +
                      " attempts: a writer kept rewriting it, or a write is still in progress "
                      "(its writer may have died); retry, or read with a longer timeout");
    }
    // A write overlapped the copy or is in progress: back off as read_consistent does.
    if (attempt < 16) {
      std::this_thread::yield();
    } else {
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
  }
}

}  // namespace shmarray
