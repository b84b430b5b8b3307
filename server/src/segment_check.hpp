#pragma once
// Judging a segment against the broker's record of it. Pure functions (no I/O), so the recovery
// decision can be unit-tested and fuzzed (fuzz/fuzz_header.cpp) on arbitrary header pages.
//
// The broker trusts its catalogue, never the segment: any client granted write access may
// rewrite every byte of the header page or resize the segment. A segment larger than recorded was
// grown by a writer (to escape its quota or fill /dev/shm): the broker truncates it back. A
// segment smaller than recorded was truncated by a writer: the data is gone, the array is damaged.
#include <cstdint>
#include <span>
#include <string>

#include "shmarray/segment_layout.hpp"
#include "shmarray/types.hpp"

namespace shmarray::server {

enum class SizeState { kIntact, kGrown, kShrunk };

struct SizeCheck {
  SizeState state = SizeState::kIntact;
  std::uint64_t found_bytes = 0;  // st_size as fstat reported it (before any truncation back)
};

[[nodiscard]] SizeState judge_size(std::uint64_t recorded_bytes, std::uint64_t found_bytes) noexcept;

// ArrayInfo::damaged for array `name` whose segment of `recorded_bytes` was found
// `found_bytes` long.
[[nodiscard]] std::string shrunk_reason(const std::string& name, std::uint64_t recorded_bytes,
                                        std::uint64_t found_bytes);

// What a restarting broker does with a segment whose catalogue record is `recorded`.
struct RecoveryDecision {
  SizeState size = SizeState::kIntact;
  bool restore_header = false;  // the page differs from the record's header: pwrite it back
  std::string why_restored;     // what the existing decoder said of the page (when restoring)
  std::uint64_t version = 0;    // publish counter from the page's live fields (0 if absent)
  std::string damaged;          // non-empty (ArrayInfo::damaged) when the segment shrank
};

// `page` is what pread returned from offset 0 (shorter than kHeaderBytes when the segment is),
// `found_bytes` the segment's st_size, `expected` encode_segment_header(recorded).
[[nodiscard]] RecoveryDecision decide_recovery(const ArrayInfo& recorded,
                                               const SegmentHeader& expected,
                                               std::span<const std::byte> page,
                                               std::uint64_t found_bytes);

}  // namespace shmarray::server
