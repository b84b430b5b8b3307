#pragma once
// Segment headers as brokers before layout 3 wrote them (8-byte dtype), for the tests of adoption
// and catalogue upgrade.
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "shmarray/segment_layout.hpp"

namespace shmarray::test {

// A layout 1/2 header (8-byte dtype) for `info`, as brokers before layout 3 wrote it.
[[nodiscard]] inline LegacySegmentHeader legacy_header(const ArrayInfo& info, std::uint32_t version) {
  auto current = encode_segment_header(info);
  LegacySegmentHeader h{};
  std::memcpy(&h, &*current, offsetof(LegacySegmentHeader, dtype));
  h.layout_version = version;
  std::memcpy(h.dtype, info.dtype.data(), info.dtype.size());
  std::memcpy(h.shape, current->shape, sizeof h.shape);
  std::memcpy(h.strides, current->strides, sizeof h.strides);
  h.name_length = current->name_length;
  std::memcpy(h.name, current->name, sizeof h.name);
  const auto* p = reinterpret_cast<const unsigned char*>(&h);
  std::uint64_t hash = 0xcbf29ce484222325ull;
  for (std::size_t i = 0; i < offsetof(LegacySegmentHeader, checksum); ++i) {
    hash ^= p[i];
    hash *= 0x100000001b3ull;
  }
  h.checksum = hash;
  return h;
}

}  // namespace shmarray::test
