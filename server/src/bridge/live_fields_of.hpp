#pragma once
// The seqlock and version words of a mapped Array, for the bridge's two privileged moves that
// the public API does not offer: reading write_seq around a zero-copy send (source), and
// publishing an explicit version (mirror: the source's number, not version + 1).
// The header page precedes the data at the fixed layout offsets (segment_layout.hpp); the
// mapping is the client library's, checked against the segment's real size when it was made.
#include <atomic>
#include <cstdint>

#include "shmarray/array.hpp"
#include "shmarray/segment_layout.hpp"

namespace shmarray::bridge {

[[nodiscard]] inline LiveFields& live_fields_of(const Array& array) noexcept {
  auto* data = const_cast<std::byte*>(array.bytes().data());
  return *reinterpret_cast<LiveFields*>(data - array.info().data_offset + kLiveFieldsOffset);
}

// Ends a seqlock write window (begun with begin_write) by publishing `version`: clears the
// possibly-torn flag, stores the version inside the window, closes it and wakes every waiter.
void publish_version(LiveFields& live, std::uint64_t version) noexcept;

}  // namespace shmarray::bridge
