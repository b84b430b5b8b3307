#include "shmarray/unique_fd.hpp"

#include <unistd.h>

namespace shmarray {

void UniqueFd::reset(int fd) noexcept {
  if (fd_ >= 0 && fd_ != fd) {
    // close() may fail with EINTR, but on Linux the descriptor is released regardless:
    // retrying could close a descriptor another thread just got.
    ::close(fd_);
  }
  fd_ = fd;
}

}  // namespace shmarray
