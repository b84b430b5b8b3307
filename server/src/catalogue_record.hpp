#pragma once
// One array's record in the broker's catalogue file (catalogue.hpp): what a restarted broker
// needs of it and nothing more. It is a lossless compaction of the array's SegmentHeader (the
// header page the broker writes and, at a restart, compares and restores): the fixed fields, only
// the shape and stride slots in use, the dtype and name texts without their padding. A plain
// array with a name of a few dozen bytes takes ~170 bytes; the largest record (255-byte name,
// 1,023-byte structured dtype, 32 dimensions) takes kCatalogueRecordMaxBytes.
//
//   offset 0   "SCR1"                   (4 bytes: a record starts here)
//          4   record_bytes             (u32: head + tail, without the padding to whole slots)
//          8   checksum                 (u64: FNV-1a 64 of bytes [16, record_bytes))
//         16   id (16 bytes), data_offset, nbytes, segment_bytes, itemsize, created_unix_ns,
//              owner_uid, owner_gid, mode, ephemeral, ndim, order, kind, dtype_length (u16),
//              name_length (u16), shape_count (u8), strides_count (u8), 6 zero bytes
//        112   shape[shape_count] (u64), strides[strides_count] (i64), dtype text, name text
//
// Decoding rebuilds the SegmentHeader and runs decode_segment_header on it, so a record is held
// to every check a header is (dtype grammar, name rules, sizes consistent), and what it decodes
// to re-encodes to the same bytes. Byte order is the host's: the file never leaves the machine.
#include <array>
#include <cstddef>
#include <span>

#include "shmarray/error.hpp"
#include "shmarray/types.hpp"

namespace shmarray::server {

inline constexpr std::size_t kCatalogueRecordHeadBytes = 112;
inline constexpr std::size_t kCatalogueRecordMaxBytes =
    kCatalogueRecordHeadBytes + 2 * 8 * kMaxNdim + kMaxDTypeTextBytes + kMaxNameLength;

struct CatalogueRecord {
  // The first `size` bytes are the record, the rest zeros: a whole number of slots of up to 2 KiB
  // can be written from here.
  std::array<std::byte, 2048> bytes;
  std::size_t size = 0;
  [[nodiscard]] std::span<const std::byte> view() const noexcept { return {bytes.data(), size}; }
};

// The record of `info` (its metadata; not version, open_handles or other live state).
// kInternal if `info` does not fit a segment header (encode_segment_header's rule).
[[nodiscard]] Result<CatalogueRecord> encode_catalogue_record(const ArrayInfo& info);

// The record_bytes a record starting at `bytes` declares, if `bytes` starts with the record magic
// and holds that field and the value lies in [kCatalogueRecordHeadBytes,
// kCatalogueRecordMaxBytes]; 0 otherwise (not a record start). Says nothing of the rest.
[[nodiscard]] std::size_t catalogue_record_size(std::span<const std::byte> bytes) noexcept;

// Validates and decodes the record at the start of `bytes`; every byte of `bytes` after the record
// must be zero (the padding of its last slot). kProtocolError naming the first problem.
[[nodiscard]] Result<ArrayInfo> decode_catalogue_record(std::span<const std::byte> bytes);

}  // namespace shmarray::server
