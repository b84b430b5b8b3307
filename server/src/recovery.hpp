#pragma once
// Rebuilding the catalogue after a restart: every segment under this broker's prefix whose header
// validates is an array; anything else is reported and left alone (never deleted).
#include <string>
#include <vector>

#include "segment.hpp"
#include "shmarray/types.hpp"

namespace shmarray::server {

struct RecoveredArray {
  ArrayInfo info;
  Segment segment;
};

// A segment under the prefix that is not adopted, and why.
struct RejectedSegment {
  std::string shm_name;  // "/shmarray...." (shm_open's name)
  std::string reason;
  // True when its bytes fail validation (corrupt, half-written by a crash, another layout):
  // `shmarrayd --gc` removes those. False when it could not be read (owner, permissions, I/O).
  bool invalid = false;
};

struct RecoveryReport {
  std::vector<RecoveredArray> arrays;     // sorted by creation time, oldest first
  std::vector<std::string> skipped;       // "name: reason"
  std::vector<RejectedSegment> rejected;  // the same segments as `skipped`, structured
};

// Scans `shm_dir` (normally /dev/shm) for segments named `prefix`* (prefix starts with '/').
[[nodiscard]] RecoveryReport recover_segments(const std::string& shm_dir,
                                              const std::string& prefix);

}  // namespace shmarray::server
