#include "catalogue_record.hpp"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>

#include "shmarray/segment_layout.hpp"

namespace shmarray::server {
namespace {

constexpr char kRecordMagic[4] = {'S', 'C', 'R', '1'};

struct RecordHead {
  char magic[4];
  std::uint32_t record_bytes;
  std::uint64_t checksum;
  std::uint8_t id[16];
  std::uint64_t data_offset;
  std::uint64_t nbytes;
  std::uint64_t segment_bytes;
  std::uint64_t itemsize;
  std::int64_t created_unix_ns;
  std::uint32_t owner_uid;
  std::uint32_t owner_gid;
  std::uint32_t mode;
  std::uint32_t ephemeral;
  std::uint32_t ndim;
  std::uint32_t order;
  std::uint32_t kind;
  std::uint16_t dtype_length;
  std::uint16_t name_length;
  std::uint8_t shape_count;
  std::uint8_t strides_count;
  std::uint8_t reserved[6];
};
static_assert(std::is_standard_layout_v<RecordHead>);
static_assert(sizeof(RecordHead) == kCatalogueRecordHeadBytes, "no implicit padding");
static_assert(offsetof(RecordHead, checksum) + sizeof(std::uint64_t) == 16);
static_assert(kCatalogueRecordMaxBytes <= sizeof(CatalogueRecord::bytes));

// FNV-1a 64 over the record after its checksum (damage detection only: the file is private).
std::uint64_t checksum_of(std::span<const std::byte> bytes) noexcept {
  std::uint64_t hash = 0xcbf29ce484222325ull;
  for (std::byte b : bytes) {
    hash ^= static_cast<std::uint64_t>(b);
    hash *= 0x100000001b3ull;
  }
  return hash;
}

std::unexpected<Error> bad(const std::string& what) {
  return fail(ErrorCode::kProtocolError, "catalogue record is invalid: " + what);
}

}  // namespace

Result<CatalogueRecord> encode_catalogue_record(const ArrayInfo& info) {
  // Through the header: the same validation, and a record is exactly what the header page holds.
  auto header = encode_segment_header(info);
  if (!header) return std::unexpected(header.error());
  const SegmentHeader& h = *header;
  RecordHead head{};
  std::memcpy(head.magic, kRecordMagic, sizeof head.magic);
  std::memcpy(head.id, h.id, sizeof head.id);
  head.data_offset = h.data_offset;
  head.nbytes = h.nbytes;
  head.segment_bytes = h.segment_bytes;
  head.itemsize = h.itemsize;
  head.created_unix_ns = h.created_unix_ns;
  head.owner_uid = h.owner_uid;
  head.owner_gid = h.owner_gid;
  head.mode = h.mode;
  head.ephemeral = h.ephemeral;
  head.ndim = h.ndim;
  head.order = h.order;
  head.kind = h.kind;
  head.dtype_length = static_cast<std::uint16_t>(info.dtype.size());
  head.name_length = static_cast<std::uint16_t>(h.name_length);
  // A stream keeps its parameters in shape slots past ndim: keep every slot up to the last used.
  std::size_t shape_count = h.ndim;
  for (std::size_t i = kMaxNdim; i-- > shape_count;) {
    if (h.shape[i] != 0) {
      shape_count = i + 1;
      break;
    }
  }
  head.shape_count = static_cast<std::uint8_t>(shape_count);
  head.strides_count = static_cast<std::uint8_t>(h.ndim);

  CatalogueRecord record{};
  std::byte* out = record.bytes.data() + sizeof head;
  const auto put = [&out](const void* p, std::size_t n) {
    std::memcpy(out, p, n);
    out += n;
  };
  put(h.shape, 8 * shape_count);
  put(h.strides, 8 * h.ndim);
  put(info.dtype.data(), info.dtype.size());
  put(info.name.data(), info.name.size());
  record.size = static_cast<std::size_t>(out - record.bytes.data());
  head.record_bytes = static_cast<std::uint32_t>(record.size);
  std::memcpy(record.bytes.data(), &head, sizeof head);
  head.checksum = checksum_of({record.bytes.data() + 16, record.size - 16});
  std::memcpy(record.bytes.data(), &head, sizeof head);
  return record;
}

std::size_t catalogue_record_size(std::span<const std::byte> bytes) noexcept {
  if (bytes.size() < 8 || std::memcmp(bytes.data(), kRecordMagic, sizeof kRecordMagic) != 0) {
    return 0;
  }
  std::uint32_t n = 0;
  std::memcpy(&n, bytes.data() + 4, sizeof n);
  return n >= kCatalogueRecordHeadBytes && n <= kCatalogueRecordMaxBytes ? n : 0;
}

Result<ArrayInfo> decode_catalogue_record(std::span<const std::byte> bytes) {
  const std::size_t size = catalogue_record_size(bytes);
  if (size == 0) return bad("no record magic or an impossible length");
  if (size > bytes.size()) {
    return bad("it declares " + std::to_string(size) + " bytes but " +
               std::to_string(bytes.size()) + " are there");
  }
  RecordHead head;
  std::memcpy(&head, bytes.data(), sizeof head);
  if (head.checksum != checksum_of(bytes.subspan(16, size - 16))) return bad("checksum mismatch");
  if (std::any_of(bytes.begin() + static_cast<std::ptrdiff_t>(size), bytes.end(),
                  [](std::byte b) { return b != std::byte{0}; })) {
    return bad("bytes after the record are not zero");
  }
  if (std::any_of(std::begin(head.reserved), std::end(head.reserved),
                  [](std::uint8_t b) { return b != 0; })) {
    return bad("reserved bytes are not zero");
  }
  if (head.shape_count > kMaxNdim || head.strides_count > kMaxNdim ||
      head.dtype_length > kMaxDTypeTextBytes || head.name_length > kMaxNameLength) {
    return bad("a count or length is over its limit");
  }
  if (sizeof head + 8u * (head.shape_count + head.strides_count) + head.dtype_length +
          head.name_length != size) {
    return bad("its parts do not add up to its length");
  }
  SegmentHeader h;
  std::memset(&h, 0, sizeof h);
  std::memcpy(h.magic, kSegmentMagic, sizeof h.magic);
  h.layout_version = kLayoutVersion;
  h.header_bytes = kHeaderBytes;
  std::memcpy(h.id, head.id, sizeof h.id);
  h.data_offset = head.data_offset;
  h.nbytes = head.nbytes;
  h.segment_bytes = head.segment_bytes;
  h.itemsize = head.itemsize;
  h.created_unix_ns = head.created_unix_ns;
  h.owner_uid = head.owner_uid;
  h.owner_gid = head.owner_gid;
  h.mode = head.mode;
  h.ephemeral = head.ephemeral;
  h.ndim = head.ndim;
  h.order = head.order;
  h.kind = head.kind;
  const std::byte* in = bytes.data() + sizeof head;
  const auto take = [&in](void* p, std::size_t n) {
    std::memcpy(p, in, n);
    in += n;
  };
  take(h.shape, 8u * head.shape_count);
  take(h.strides, 8u * head.strides_count);
  take(h.dtype, head.dtype_length);
  take(h.name, head.name_length);
  h.name_length = head.name_length;
  h.checksum = segment_header_checksum(h);
  auto info = decode_segment_header(h, h.segment_bytes);
  if (!info) return bad(info.error().message());
  return info;
}

}  // namespace shmarray::server
