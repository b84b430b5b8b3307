#pragma once
// The broker's side of one array segment: a named POSIX shared-memory object, created through
// Boost.Interprocess, mode 0600, every page reserved at create (posix_fallocate) so that a full
// /dev/shm is an error here and never a SIGBUS in a client later.
#include <string>

#include "shmarray/error.hpp"
#include "shmarray/types.hpp"
#include "shmarray/unique_fd.hpp"

namespace shmarray::server {

class Segment {
 public:
  // Creates segment `shm_name` ("/prefix.id") sized for `info` and writes its header.
  // kAlreadyExists if the name is taken, kResourceExhausted if /dev/shm cannot hold it.
  // On any failure nothing is left behind.
  [[nodiscard]] static Result<Segment> create(const std::string& shm_name, const ArrayInfo& info);
  // Adopts an existing segment (recovery).
  [[nodiscard]] static Segment adopt(std::string shm_name) { return Segment(std::move(shm_name)); }

  Segment(Segment&&) noexcept = default;
  Segment& operator=(Segment&&) noexcept = default;
  ~Segment() = default;  // does NOT unlink: arrays outlive the broker process

  // A fresh descriptor for a client: O_RDONLY for read-only grants, O_RDWR otherwise.
  [[nodiscard]] Result<UniqueFd> open_fd(Access access) const;
  // Removes the name; memory is freed by the kernel when the last mapping goes.
  void unlink() const noexcept;
  [[nodiscard]] const std::string& shm_name() const noexcept { return shm_name_; }

 private:
  explicit Segment(std::string shm_name) : shm_name_(std::move(shm_name)) {}
  std::string shm_name_;
};

}  // namespace shmarray::server
