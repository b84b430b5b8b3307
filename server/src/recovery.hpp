#pragma once
// Rebuilding the registry after a restart. The broker's private catalogue (catalogue.hpp) says
// what each array is; the segment under this broker's prefix holds its bytes and version. An array
// is adopted when both exist. Its size is checked with fstat (segment_check.hpp): a segment a writer
// grew is truncated back to the recorded size; one a writer truncated is adopted as damaged (opens
// refused with kDataLoss, shown by ls/stat). A segment whose header page a writer rewrote is given
// back the catalogue's header (pwrite: the broker never maps a segment). Anything else is reported
// and left alone (never deleted: that is `shmarrayd --gc`'s job).
#include <string>
#include <vector>

#include "catalogue.hpp"
#include "segment.hpp"
#include "shmarray/types.hpp"

namespace shmarray::server {

// What becomes of a recovered array: decided once here, acted on by a starting broker
// (Broker::recover) and by `shmarrayd --gc` alike.
enum class Fate {
  kAdopt,      // served again (damaged ones too: opens say kDataLoss; --gc removes them)
  kEphemeral,  // its creator died with the previous broker: removed by both
  kDuplicate,  // a newer segment claiming a name an older one holds: start leaves it, --gc removes
};

struct RecoveredArray {
  ArrayInfo info;  // from the catalogue; version from the segment; damaged if a writer shrank it
  Segment segment;
  Fate fate = Fate::kAdopt;
};

// A segment under the prefix that is not adopted, and why.
struct RejectedSegment {
  std::string shm_name;  // "/shmarray...." (shm_open's name)
  std::string reason;
  // True when it is not a usable array of this broker (no catalogue record, a damaged record):
  // `shmarrayd --gc` removes those. False when it could not be read (owner, permissions, I/O).
  bool invalid = false;
};

struct RecoveryReport {
  std::vector<RecoveredArray> arrays;     // sorted by creation time, oldest first
  std::vector<RejectedSegment> rejected;  // segments not adopted
  std::vector<std::string> restored;      // "name: ..." whose header page was rewritten
  std::vector<std::string> orphans;       // ids of catalogue records with no segment
  std::vector<std::string> problems;      // anything else worth a warning (unreadable /dev/shm,
                                          // grown segments cut back, damaged arrays)
};

// Scans `shm_dir` (normally /dev/shm) for segments named `prefix`* (prefix starts with '/') and
// matches them with `catalogue`'s records.
[[nodiscard]] RecoveryReport recover_segments(const std::string& shm_dir, const std::string& prefix,
                                              const Catalogue& catalogue);

}  // namespace shmarray::server
