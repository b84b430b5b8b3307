#pragma once
// One mmap of an array segment, shared by every Array of that array in this process, and the
// process-wide cache that makes a second open of the same array reuse the mapping.
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "close_notifier.hpp"

#include "shmarray/error.hpp"
#include "shmarray/mapping.hpp"
#include "shmarray/types.hpp"

namespace shmarray::detail {

struct MappedSegment {
  Mapping mapping;
  std::string id;
  bool writable = false;
  // Records that the Client owning `notifier` opened this array (it is told when the mapping
  // goes away, and then sends a CloseRequest).
  void add_holder(const std::shared_ptr<CloseNotifier>& notifier) const;
  // ~MappedSegment tells each live holder, unless this process's other mapping of the same array
  // (read-only beside read-write) still serves that holder.
  ~MappedSegment();

  mutable std::mutex holders_mutex;
  mutable std::vector<std::weak_ptr<CloseNotifier>> holders;
};

// The live mapping of array `id` usable for `access` (a read-write mapping serves read-only
// opens too), or nullptr.
[[nodiscard]] std::shared_ptr<const MappedSegment> find_mapping(const std::string& id,
                                                                Access access);
// Maps `fd` (already validated against `info` by the caller's header check) and records it.
[[nodiscard]] Result<std::shared_ptr<const MappedSegment>> map_segment(int fd,
                                                                       const ArrayInfo& info,
                                                                       Access access,
                                                                       bool populate);

}  // namespace shmarray::detail
