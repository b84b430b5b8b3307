#pragma once
// Move-only owner of one mmap'ed range (MAP_SHARED). Unmaps exactly once.
#include <cstddef>
#include <span>
#include <utility>

#include "shmarray/error.hpp"

namespace shmarray {

class Mapping {
 public:
  enum class Protection { kRead, kReadWrite };
  enum class Populate { kNone, kRead, kWrite };

  // Maps `length` bytes of `fd` from offset 0. kRead gives a PROT_READ mapping (the kernel then
  // faults any write with SIGSEGV). `populate` pre-faults the page tables of
  // [populate_offset, length) in one call (MADV_POPULATE_READ/_WRITE, falling back to
  // MAP_POPULATE on kernels without them). The fd may be closed right after this returns.
  [[nodiscard]] static Result<Mapping> map(int fd, std::size_t length, Protection protection,
                                           Populate populate = Populate::kNone,
                                           std::size_t populate_offset = 0);

  Mapping() noexcept = default;
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  Mapping(Mapping&& other) noexcept
      : data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)),
        writable_(other.writable_) {}
  Mapping& operator=(Mapping&& other) noexcept;
  ~Mapping() { reset(); }

  [[nodiscard]] std::byte* data() const noexcept { return data_; }
  [[nodiscard]] std::size_t size() const noexcept { return size_; }
  [[nodiscard]] bool writable() const noexcept { return writable_; }
  [[nodiscard]] std::span<std::byte> bytes() const noexcept { return {data_, size_}; }

 private:
  void reset() noexcept;
  std::byte* data_ = nullptr;
  std::size_t size_ = 0;
  bool writable_ = false;
};

}  // namespace shmarray
