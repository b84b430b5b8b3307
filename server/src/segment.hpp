#pragma once
// The broker's side of one array segment: a named POSIX shared-memory object, created through
// Boost.Interprocess, mode 0600, every page reserved at create (posix_fallocate) so that a full
// /dev/shm is an error here and never a SIGBUS in a client later.
//
// The broker never maps a segment: every client granted write access may resize it (ftruncate) at
// any moment, and a mapped page beyond the new end is a SIGBUS that would kill the broker. It reads
// and writes the header page with pread/pwrite on a descriptor it has checked with fstat, and
// enforces the recorded size (segment_check.hpp) whenever a request touches the segment.
#include <cstdint>
#include <string>

#include "segment_check.hpp"
#include "shmarray/error.hpp"
#include "shmarray/segment_layout.hpp"
#include "shmarray/types.hpp"
#include "shmarray/unique_fd.hpp"

namespace shmarray::server {

class Segment {
 public:
  // Creates segment `shm_name` ("/prefix.id") sized for `info` and writes its header.
  // kAlreadyExists if the name is taken, kResourceExhausted (sys_errno ENOSPC) if /dev/shm cannot
  // hold it. On any failure nothing is left behind.
  [[nodiscard]] static Result<Segment> create(const std::string& shm_name, const ArrayInfo& info);
  // Names `nameless`, a pooled segment of exactly info.segment_bytes (SegmentPool::take), as
  // `shm_name` under `shm_dir` after writing its header, so it is never visible without one.
  // kAlreadyExists if the name is taken; on failure no name is left behind.
  [[nodiscard]] static Result<Segment> create_from(UniqueFd nameless, const std::string& shm_dir,
                                                   const std::string& shm_name,
                                                   const ArrayInfo& info);
  // The descriptor create_from named the segment with, once; empty for any other segment. It is
  // a description no other process ever held, read-write: the creator's grant, as
  // open_fd(kReadWrite) would make it, without a second open by name (finish_create).
  [[nodiscard]] UniqueFd take_creation_fd() noexcept { return std::move(creation_fd_); }
  // Adopts an existing segment (recovery).
  [[nodiscard]] static Segment adopt(std::string shm_name) { return Segment(std::move(shm_name)); }

  Segment(Segment&&) noexcept = default;
  Segment& operator=(Segment&&) noexcept = default;
  ~Segment() = default;  // does NOT unlink: arrays outlive the broker process

  // A fresh descriptor for a client: O_RDONLY for read-only grants, O_RDWR otherwise.
  [[nodiscard]] Result<UniqueFd> open_fd(Access access) const;

  // fstat()s `fd` (a descriptor of this segment, any access) against `recorded_bytes`. A grown
  // segment is truncated back to `recorded_bytes` (through a read-write descriptor of its own when
  // `fd` is read-only) and reported as kGrown with the size it had; a shrunk one is reported as
  // kShrunk and left as it is. Errors only for fstat/open/ftruncate failures.
  [[nodiscard]] Result<SizeCheck> enforce_size(int fd, std::uint64_t recorded_bytes) const;
  // As above on a descriptor of its own.
  [[nodiscard]] Result<SizeCheck> enforce_size(std::uint64_t recorded_bytes) const;

  // pwrite()s `header` at offset 0 after checking with fstat that the segment still has its
  // recorded size (a pwrite into a truncated segment would grow it back). kDataLoss if it does not.
  [[nodiscard]] Result<void> write_header(const SegmentHeader& header,
                                          std::uint64_t recorded_bytes) const;
  // The publish counter, read with one pread (0 if the header page is gone).
  [[nodiscard]] std::uint64_t read_version(int fd) const noexcept;

  // Removes the name; memory is freed by the kernel when the last mapping goes.
  void unlink() const noexcept;
  [[nodiscard]] const std::string& shm_name() const noexcept { return shm_name_; }

 private:
  explicit Segment(std::string shm_name) : shm_name_(std::move(shm_name)) {}
  std::string shm_name_;
  UniqueFd creation_fd_;  // see take_creation_fd; never kept past the create
};

// Reads up to `n` bytes at `offset` (fewer at the end of the file); an error only for I/O errors.
[[nodiscard]] Result<std::size_t> pread_full(int fd, void* dst, std::size_t n, std::uint64_t offset);
// Writes all `n` bytes at `offset`.
[[nodiscard]] Result<void> pwrite_full(int fd, const void* src, std::size_t n,
                                       std::uint64_t offset);

}  // namespace shmarray::server
