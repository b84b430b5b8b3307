#include "segment.hpp"

#include "segment_pool.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/interprocess/shared_memory_object.hpp>
#include <cerrno>
#include <memory>
#include <optional>

namespace shmarray::server {
namespace bip = boost::interprocess;
namespace {

// The header page as built in the broker's own memory: page-sized, zeroed, aligned like a mapping.
struct alignas(kHeaderBytes) HeaderPage {
  std::byte bytes[kHeaderBytes]{};
};

Result<std::uint64_t> size_of(int fd, const std::string& shm_name) {
  struct stat st{};
  if (::fstat(fd, &st) != 0) return std::unexpected(sys_error("fstat " + shm_name, errno));
  return static_cast<std::uint64_t>(st.st_size);
}

}  // namespace

Result<std::size_t> pread_full(int fd, void* dst, std::size_t n, std::uint64_t offset) {
  std::size_t done = 0;
  while (done < n) {
    const ssize_t got = ::pread(fd, static_cast<std::byte*>(dst) + done, n - done,
                                static_cast<off_t>(offset + done));
    if (got < 0) {
      if (errno == EINTR) continue;
      return std::unexpected(sys_error("pread", errno));
    }
    if (got == 0) break;  // end of file: a truncated segment reads short, never faults
    done += static_cast<std::size_t>(got);
  }
  return done;
}

Result<void> pwrite_full(int fd, const void* src, std::size_t n, std::uint64_t offset) {
  std::size_t done = 0;
  while (done < n) {
    const ssize_t put = ::pwrite(fd, static_cast<const std::byte*>(src) + done, n - done,
                                 static_cast<off_t>(offset + done));
    if (put < 0) {
      if (errno == EINTR) continue;
      return std::unexpected(sys_error("pwrite", errno));
    }
    done += static_cast<std::size_t>(put);
  }
  return {};
}

Result<Segment> Segment::create(const std::string& shm_name, const ArrayInfo& info) {
  bip::permissions perms(0600);
  std::optional<bip::shared_memory_object> shm;
  try {
    // Boost wants the name without the leading '/'.
    shm.emplace(bip::create_only, shm_name.c_str() + 1, bip::read_write, perms);
  } catch (const bip::interprocess_exception& e) {
    const int err = e.get_native_error();
    return std::unexpected(sys_error("cannot create shared-memory segment " + shm_name,
                                     err != 0 ? err : EIO));
  }
  Segment segment(shm_name);
  const int fd = shm->get_mapping_handle().handle;
  // From here on, any failure unlinks what we made.
  auto undo = [&](Error e) -> Result<Segment> {
    segment.unlink();
    return std::unexpected(std::move(e));
  };
  const int rc = ::posix_fallocate(fd, 0, static_cast<off_t>(info.segment_bytes));
  if (rc != 0) {
    if (rc == ENOSPC) {
      return undo(Error(ErrorCode::kResourceExhausted,
                        "/dev/shm has no room for " + std::to_string(info.segment_bytes) +
                            " bytes for array '" + info.name +
                            "': remove arrays or enlarge /dev/shm",
                        rc));
    }
    return undo(sys_error("cannot reserve pages for array '" + info.name + "'", rc));
  }
  // Built privately, then written: the segment is not yet known to anyone, but the broker maps
  // no segment at all (see segment.hpp).
  auto page = std::make_unique<HeaderPage>();
  if (auto ok = init_segment_header(page->bytes, info); !ok) return undo(ok.error());
  if (auto ok = pwrite_full(fd, page->bytes, kHeaderBytes, 0); !ok) {
    return undo(Error(ErrorCode::kInternal, "cannot write the header of array '" + info.name +
                                                "': " + ok.error().message(),
                      ok.error().sys_errno()));
  }
  return segment;
}

Result<Segment> Segment::create_from(UniqueFd nameless, const std::string& shm_dir,
                                     const std::string& shm_name, const ArrayInfo& info) {
  // The pool's segment is zero-filled: only the header's bytes need writing (the live fields that
  // follow it start at zero, as init_segment_header would write them).
  auto header = encode_segment_header(info);
  if (!header) return std::unexpected(header.error());
  if (auto ok = pwrite_full(nameless.get(), &*header, sizeof *header, 0); !ok) {
    return std::unexpected(Error(ErrorCode::kInternal, "cannot write the header of array '" +
                                                           info.name + "': " + ok.error().message(),
                                 ok.error().sys_errno()));
  }
  if (auto ok = SegmentPool::link(nameless.get(), shm_dir + shm_name); !ok) {
    return std::unexpected(ok.error());
  }
  Segment segment(shm_name);
  segment.creation_fd_ = std::move(nameless);
  return segment;
}

Result<UniqueFd> Segment::open_fd(Access access) const {
  const int flags = (access == Access::kReadWrite ? O_RDWR : O_RDONLY) | O_CLOEXEC;
  UniqueFd fd(::shm_open(shm_name_.c_str(), flags, 0));
  if (!fd) return std::unexpected(sys_error("cannot open segment " + shm_name_, errno));
  return fd;
}

Result<SizeCheck> Segment::enforce_size(int fd, std::uint64_t recorded_bytes) const {
  auto found = size_of(fd, shm_name_);
  if (!found) return std::unexpected(found.error());
  SizeCheck check{judge_size(recorded_bytes, *found), *found};
  if (check.state != SizeState::kGrown) return check;
  // Honest clients map only the recorded size, so cutting the excess harms only the grower, and
  // frees its pages on tmpfs. ftruncate needs a descriptor open for writing.
  UniqueFd writable;
  int target = fd;
  if ((::fcntl(fd, F_GETFL) & O_ACCMODE) != O_RDWR) {
    auto rw = open_fd(Access::kReadWrite);
    if (!rw) return std::unexpected(rw.error());
    writable = std::move(*rw);
    target = writable.get();
  }
  if (::ftruncate(target, static_cast<off_t>(recorded_bytes)) != 0) {
    return std::unexpected(sys_error("cannot truncate " + shm_name_ + " back to " +
                                         std::to_string(recorded_bytes) + " bytes",
                                     errno));
  }
  return check;
}

Result<SizeCheck> Segment::enforce_size(std::uint64_t recorded_bytes) const {
  auto fd = open_fd(Access::kReadWrite);
  if (!fd) return std::unexpected(fd.error());
  return enforce_size(fd->get(), recorded_bytes);
}

Result<void> Segment::write_header(const SegmentHeader& header,
                                   std::uint64_t recorded_bytes) const {
  auto fd = open_fd(Access::kReadWrite);
  if (!fd) return std::unexpected(fd.error());
  auto check = enforce_size(fd->get(), recorded_bytes);
  if (!check) return std::unexpected(check.error());
  if (check->state == SizeState::kShrunk) {
    return fail(ErrorCode::kDataLoss, "segment " + shm_name_ + " is " +
                                          std::to_string(check->found_bytes) + " bytes, not " +
                                          std::to_string(recorded_bytes) + ": header not written");
  }
  return pwrite_full(fd->get(), &header, sizeof header, 0);
}

std::uint64_t Segment::read_version(int fd) const noexcept {
  std::uint64_t version = 0;
  auto got = pread_full(fd, &version, sizeof version,
                        kLiveFieldsOffset + offsetof(LiveFields, version));
  return got && *got == sizeof version ? version : 0;
}

void Segment::unlink() const noexcept { ::shm_unlink(shm_name_.c_str()); }

}  // namespace shmarray::server
