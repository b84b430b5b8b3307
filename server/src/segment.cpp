#include "segment.hpp"

#include <fcntl.h>
#include <sys/mman.h>

#include <boost/interprocess/shared_memory_object.hpp>
#include <cerrno>
#include <fcntl.h>

#include "shmarray/mapping.hpp"
#include "shmarray/segment_layout.hpp"

namespace shmarray::server {
namespace bip = boost::interprocess;

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
  auto header = Mapping::map(fd, kHeaderBytes, Mapping::Protection::kReadWrite);
  if (!header) return undo(header.error());
  if (auto ok = init_segment_header(header->bytes(), info); !ok) return undo(ok.error());
  return segment;
}

Result<UniqueFd> Segment::open_fd(Access access) const {
  const int flags = (access == Access::kReadWrite ? O_RDWR : O_RDONLY) | O_CLOEXEC;
  UniqueFd fd(::shm_open(shm_name_.c_str(), flags, 0));
  if (!fd) return std::unexpected(sys_error("cannot open segment " + shm_name_, errno));
  return fd;
}

void Segment::unlink() const noexcept { ::shm_unlink(shm_name_.c_str()); }

}  // namespace shmarray::server
