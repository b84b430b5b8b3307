#include "segment_check.hpp"

#include <cstring>

namespace shmarray::server {

SizeState judge_size(std::uint64_t recorded_bytes, std::uint64_t found_bytes) noexcept {
  if (found_bytes > recorded_bytes) return SizeState::kGrown;
  if (found_bytes < recorded_bytes) return SizeState::kShrunk;
  return SizeState::kIntact;
}

std::string shrunk_reason(const std::string& name, std::uint64_t recorded_bytes,
                          std::uint64_t found_bytes) {
  return "a writer truncated the segment of array '" + name + "' to " +
         std::to_string(found_bytes) + " of its " + std::to_string(recorded_bytes) +
         " bytes, so its data is lost: remove it ('shmarray rm " + name + "') and recreate it";
}

RecoveryDecision decide_recovery(const ArrayInfo& recorded, const SegmentHeader& expected,
                                 std::span<const std::byte> page, std::uint64_t found_bytes) {
  RecoveryDecision d;
  d.size = judge_size(recorded.segment_bytes, found_bytes);
  if (d.size == SizeState::kShrunk) {
    // Nothing is written back: a pwrite would grow the file again over lost data.
    d.damaged = shrunk_reason(recorded.name, recorded.segment_bytes, found_bytes);
    return d;
  }
  if (page.size() < sizeof(SegmentHeader) ||
      std::memcmp(page.data(), &expected, sizeof expected) != 0) {
    d.restore_header = true;
    if (page.size() < sizeof(SegmentHeader)) {
      d.why_restored = "header page unreadable";
    } else {
      SegmentHeader copy;
      std::memcpy(&copy, page.data(), sizeof copy);
      auto decoded = decode_segment_header(copy, found_bytes);
      d.why_restored = decoded ? "valid header that disagrees with the record"
                               : decoded.error().message();
    }
  }
  constexpr std::size_t kVersionAt = kLiveFieldsOffset + offsetof(LiveFields, version);
  if (page.size() >= kVersionAt + sizeof(std::uint64_t)) {
    std::memcpy(&d.version, page.data() + kVersionAt, sizeof d.version);
  }
  return d;
}

}  // namespace shmarray::server
