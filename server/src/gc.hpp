#pragma once
// `shmarrayd --gc`: one pass over this broker's segments, run instead of serving, that removes what
// a normal start reports and leaves alone. Never run by default: a start never deletes segments.
#include <cstddef>
#include <string>
#include <vector>

#include "config.hpp"
#include "shmarray/error.hpp"

namespace shmarray::server {

struct GcReport {
  std::vector<std::string> removed;     // "/dev/shm/<name>: why", one per unlinked segment
  std::vector<std::string> left_alone;  // "/dev/shm/<name>: why", unreadable ones (not ours to judge)
  std::vector<std::string> forgotten;   // "<catalogue>: ...": records without a segment, damaged ones
  std::size_t kept = 0;                 // valid arrays a start would adopt
};

// Takes `<socket>.lock` (so no broker can start meanwhile) and unlinks every segment under the
// socket's prefix that a start would not adopt or would adopt only as damaged: segments without a
// valid catalogue record (half-made by a crash, not this broker's), segments a writer truncated
// (their data is lost), ephemeral arrays (their creators died with the old broker), and duplicates
// of a name (all but the oldest), with their records; and records whose segment is gone. Segments
// a writer grew are truncated back to their recorded size and kept.
// Each removal is logged at warn.
// kAlreadyExists (naming the socket) if a live broker holds the lock: stop it first.
[[nodiscard]] Result<GcReport> collect_garbage(const Config& config);

// `shmarrayd --gc`: collect_garbage, one stdout line per removed segment and a summary; returns
// the exit code (0 done, 3 a broker is serving the socket, 1 any other failure).
[[nodiscard]] int run_gc(const Config& config);

}  // namespace shmarray::server
