#include "shmarray/mapping.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

namespace shmarray {

Result<Mapping> Mapping::map(int fd, std::size_t length, Protection protection, Populate populate,
                             std::size_t populate_offset) {
  if (length == 0) return fail(ErrorCode::kInvalidArgument, "cannot map zero bytes");
  const int prot = protection == Protection::kReadWrite ? (PROT_READ | PROT_WRITE) : PROT_READ;
  void* addr = ::mmap(nullptr, length, prot, MAP_SHARED, fd, 0);
  if (addr == MAP_FAILED) return std::unexpected(sys_error("mmap of array segment", errno));
  Mapping mapping;
  mapping.data_ = static_cast<std::byte*>(addr);
  mapping.size_ = length;
  mapping.writable_ = protection == Protection::kReadWrite;

  if (populate != Populate::kNone && populate_offset < length) {
    const long page = ::sysconf(_SC_PAGESIZE);
    const std::size_t start = populate_offset - populate_offset % static_cast<std::size_t>(page);
    const int advice = populate == Populate::kWrite && mapping.writable_ ? MADV_POPULATE_WRITE
                                                                         : MADV_POPULATE_READ;
    if (::madvise(mapping.data_ + start, length - start, advice) != 0) {
      if (errno != EINVAL) return std::unexpected(sys_error("madvise(MADV_POPULATE)", errno));
      // Kernel older than 5.14: map again with MAP_POPULATE over the same range.
      void* again = ::mmap(mapping.data_, length, prot, MAP_SHARED | MAP_FIXED | MAP_POPULATE,
                           fd, 0);
      if (again == MAP_FAILED) return std::unexpected(sys_error("mmap(MAP_POPULATE)", errno));
    }
  }
  return mapping;
}

Mapping& Mapping::operator=(Mapping&& other) noexcept {
  if (this != &other) {
    reset();
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
    writable_ = other.writable_;
  }
  return *this;
}

void Mapping::reset() noexcept {
  if (data_ != nullptr) ::munmap(data_, size_);
  data_ = nullptr;
  size_ = 0;
}

}  // namespace shmarray
