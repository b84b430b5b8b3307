#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <array>
#include <mutex>
#include <unordered_map>
#include <utility>

#include "mapped_segment.hpp"
#include "shmarray/segment_layout.hpp"

namespace shmarray::detail {
namespace {

struct Cache {
  std::mutex mutex;
  // id -> its mappings, [0] read-only, [1] writable. Erased by ~MappedSegment when both are
  // gone. Hashed, looked up by the id itself: an ordered map of (id, writable) copied the id into
  // a key and compared strings ~11 times per open with 2,000 arrays mapped.
  std::unordered_map<std::string, std::array<std::weak_ptr<const MappedSegment>, 2>> entries;
};

Cache& cache() {
  static Cache* instance = new Cache();  // NOLINT: leaked on purpose, outlives static Arrays
  return *instance;
}

}  // namespace

namespace {

bool holds(const MappedSegment& segment, const std::shared_ptr<CloseNotifier>& notifier) {
  std::lock_guard lock(segment.holders_mutex);
  for (const auto& h : segment.holders) {
    if (h.lock() == notifier) return true;
  }
  return false;
}

}  // namespace

void MappedSegment::add_holder(const std::shared_ptr<CloseNotifier>& notifier) const {
  std::lock_guard lock(holders_mutex);
  for (const auto& h : holders) {
    if (h.lock() == notifier) return;
  }
  holders.push_back(notifier);
}

MappedSegment::~MappedSegment() {
  std::vector<std::shared_ptr<CloseNotifier>> to_tell;
  std::shared_ptr<const MappedSegment> other;  // released after the cache lock: its destructor
  {                                            // takes that lock
    Cache& c = cache();
    std::lock_guard lock(c.mutex);
    if (const auto it = c.entries.find(id); it != c.entries.end()) {
      other = it->second[!writable].lock();
      if (it->second[writable].expired() && !other) c.entries.erase(it);
    }
    std::lock_guard holders_lock(holders_mutex);
    for (const auto& h : holders) {
      auto notifier = h.lock();
      if (notifier && !(other && holds(*other, notifier))) to_tell.push_back(std::move(notifier));
    }
  }
  // Outside the cache lock: released() may send on the Client's connection.
  for (const auto& notifier : to_tell) notifier->released(id);
}

std::shared_ptr<const MappedSegment> find_mapping(const std::string& id, Access access) {
  Cache& c = cache();
  std::lock_guard lock(c.mutex);
  const auto it = c.entries.find(id);
  if (it == c.entries.end()) return nullptr;
  if (auto live = it->second[1].lock()) return live;
  if (access == Access::kReadOnly) return it->second[0].lock();
  return nullptr;
}

Result<std::shared_ptr<const MappedSegment>> map_segment(int fd, const ArrayInfo& info,
                                                         Access access, bool populate) {
  const bool writable = access == Access::kReadWrite;
  // Any writer may resize the segment: mapping segment_bytes of a shorter file and reading the
  // header would be a SIGBUS, and a longer one is a writer escaping its quota. Either way the
  // array cannot be trusted.
  struct stat st{};
  if (::fstat(fd, &st) != 0) {
    return std::unexpected(sys_error("cannot fstat the segment of '" + info.name + "'", errno));
  }
  if (static_cast<std::uint64_t>(st.st_size) != info.segment_bytes) {
    return fail(ErrorCode::kDataLoss,
                "the segment of array '" + info.name + "' is " + std::to_string(st.st_size) +
                    " bytes but its metadata says " + std::to_string(info.segment_bytes) +
                    ": a writer resized it: remove and recreate the array");
  }
  // Trust nothing the broker said until the segment's own header agrees with it. Read with pread
  // on the size-checked descriptor, not through the new mapping: a writer truncating the segment
  // meanwhile makes a short read here, never a SIGBUS, and open does not fault the header page in
  // (~3 us on the dev VM; the first use of the live fields, if any, pays it instead).
  SegmentHeader raw;
  const ssize_t got = ::pread(fd, &raw, sizeof raw, 0);
  if (got != static_cast<ssize_t>(sizeof raw)) {
    return fail(ErrorCode::kDataLoss, "cannot read the header of array '" + info.name +
                                          "': a writer resized it: remove and recreate the array");
  }
  if (raw.layout_version != kLayoutVersion) {
    return fail(ErrorCode::kProtocolError,
                "segment header is invalid: layout version " + std::to_string(raw.layout_version) +
                    ", expected " + std::to_string(kLayoutVersion) +
                    " (restart shmarrayd so that it upgrades the segment, or upgrade this client)");
  }
  // Every check of decode_segment_header, and the header must describe `info` exactly.
  if (auto ok = check_segment_header(raw, info, info.segment_bytes); !ok) {
    return std::unexpected(ok.error());
  }
  auto mapping = Mapping::map(
      fd, info.segment_bytes, writable ? Mapping::Protection::kReadWrite : Mapping::Protection::kRead,
      populate ? (writable ? Mapping::Populate::kWrite : Mapping::Populate::kRead)
               : Mapping::Populate::kNone,
      info.data_offset);
  if (!mapping) return std::unexpected(mapping.error());
  auto segment = std::make_shared<MappedSegment>();
  segment->mapping = std::move(*mapping);
  segment->id = info.id;
  segment->writable = writable;
  Cache& c = cache();
  std::lock_guard lock(c.mutex);
  c.entries[info.id][writable] = segment;
  return std::shared_ptr<const MappedSegment>(std::move(segment));
}

}  // namespace shmarray::detail
