#include "shmarray/segment_layout.hpp"

#include "shmarray/stream/stream_layout.hpp"
#include "shmarray/sync/live_fields.hpp"

#include <pthread.h>
#include <sys/random.h>

#include <array>
#include <bit>
#include <cerrno>
#include <cstring>
#include <type_traits>
#include <limits>

namespace shmarray {
namespace {

constexpr std::uint64_t kFnvPrime = 0x100000001b3ull;
constexpr std::size_t kMaxZeroWords = 256;  // a header is at most 2 KiB: 256 words

// kFnvPowers[n] = kFnvPrime^(8n) mod 2^64: n zero words in one multiplication.
constexpr auto kFnvPowers = [] {
  std::array<std::uint64_t, kMaxZeroWords + 1> powers{};
  std::uint64_t p8 = 1;
  for (int i = 0; i < 8; ++i) p8 *= kFnvPrime;
  powers[0] = 1;
  for (std::size_t n = 1; n <= kMaxZeroWords; ++n) powers[n] = powers[n - 1] * p8;
  return powers;
}();

// FNV-1a, 64 bit. A zero byte only multiplies the hash by the prime (the xor changes nothing), so
// a run of zero 8-byte words is one multiplication by a precomputed power: a header is mostly
// zero (unused name, dtype, shape slots), and byte by byte it cost ~2 us per open and create on
// the dev VM. Same result as the byte loop (SegmentLayout.ChecksumMatchesByteWiseFnv1a). Zero
// runs are found eight words at a time and a non-zero word is mixed from the word already loaded:
// ~3,400 -> ~1,000 instructions per header (callgrind; bench/count_request_path.sh).
std::uint64_t fnv1a(std::span<const std::byte> bytes) {
  std::uint64_t hash = 0xcbf29ce484222325ull;
  const std::byte* const p = bytes.data();
  const std::size_t n = bytes.size();
  std::size_t i = 0;
  while (i + 8 <= n) {
    std::size_t zero_words = 0;
    while (zero_words + 8 <= kMaxZeroWords && i + 64 <= n) {
      std::uint64_t w[8];
      std::memcpy(w, p + i, sizeof w);
      if ((w[0] | w[1] | w[2] | w[3] | w[4] | w[5] | w[6] | w[7]) != 0) break;
      zero_words += 8;
      i += 64;
    }
    std::uint64_t word = 0;
    while (zero_words < kMaxZeroWords && i + 8 <= n) {
      std::memcpy(&word, p + i, 8);
      if (word != 0) break;
      ++zero_words;
      i += 8;
    }
    hash *= kFnvPowers[zero_words];
    if (zero_words == kMaxZeroWords || i + 8 > n) continue;
    // `word` holds the non-zero bytes p[i..i+8): mixed in memory order.
#pragma GCC unroll 8
    for (int k = 0; k < 8; ++k) {
      const unsigned shift = std::endian::native == std::endian::little ? 8 * k : 8 * (7 - k);
      hash ^= (word >> shift) & 0xff;
      hash *= kFnvPrime;
    }
    i += 8;
  }
  for (; i < n; ++i) {
    hash ^= static_cast<std::uint64_t>(p[i]);
    hash *= kFnvPrime;
  }
  return hash;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

std::string to_hex(const std::uint8_t* bytes, std::size_t n) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(n * 2);
  for (std::size_t i = 0; i < n; ++i) {
    out += kHex[bytes[i] >> 4];
    out += kHex[bytes[i] & 0xf];
  }
  return out;
}

std::unexpected<Error> corrupt(const std::string& what) {
  return fail(ErrorCode::kProtocolError, "segment header is invalid: " + what);
}

}  // namespace

Result<std::uint64_t> segment_size_for(std::uint64_t nbytes) {
  constexpr std::uint64_t kPage = kHeaderBytes;
  if (nbytes > std::numeric_limits<std::uint64_t>::max() - 2 * kPage) {
    return fail(ErrorCode::kResourceExhausted, "array is too large to place in a segment");
  }
  const std::uint64_t data = (nbytes + kPage - 1) / kPage * kPage;
  // A zero-size array still gets its header page (and one data page so data() is valid).
  return kHeaderBytes + (data == 0 ? kPage : data);
}

std::uint64_t segment_header_checksum(const SegmentHeader& header) noexcept {
  return fnv1a({reinterpret_cast<const std::byte*>(&header), offsetof(SegmentHeader, checksum)});
}


Result<SegmentHeader> encode_segment_header(const ArrayInfo& info) {
  if (info.id.size() != 32 || info.name.size() > kMaxNameLength ||
      info.shape.size() > kMaxNdim || info.strides.size() != info.shape.size() ||
      info.dtype.size() > kMaxDTypeTextBytes) {
    return fail(ErrorCode::kInternal, "array info does not fit the segment header");
  }
  // The id is stored as 16 bytes: only lowercase hex reads back as it was written.
  for (char c : info.id) {
    if (hex_value(c) < 0) return fail(ErrorCode::kInternal, "array id is not lowercase hex");
  }
  SegmentHeader h;
  std::memset(&h, 0, sizeof h);  // unused name, shape and stride slots are compared too
  std::memcpy(h.magic, kSegmentMagic, sizeof h.magic);
  h.layout_version = kLayoutVersion;
  h.header_bytes = kHeaderBytes;
  for (std::size_t i = 0; i < 16; ++i) {
    h.id[i] = static_cast<std::uint8_t>(hex_value(info.id[2 * i]) * 16 +
                                        hex_value(info.id[2 * i + 1]));
  }
  h.data_offset = info.data_offset;
  h.nbytes = info.nbytes;
  h.segment_bytes = info.segment_bytes;
  h.itemsize = info.itemsize;
  h.created_unix_ns = info.created_unix_ns;
  h.owner_uid = info.owner_uid;
  h.owner_gid = info.owner_gid;
  h.mode = info.mode;
  h.ephemeral = info.ephemeral ? 1 : 0;
  h.ndim = static_cast<std::uint32_t>(info.shape.size());
  h.order = static_cast<std::uint32_t>(info.order);
  std::memcpy(h.dtype, info.dtype.data(), info.dtype.size());
  for (std::size_t i = 0; i < info.shape.size(); ++i) {
    h.shape[i] = info.shape[i];
    h.strides[i] = info.strides[i];
  }
  h.name_length = static_cast<std::uint32_t>(info.name.size());
  std::memcpy(h.name, info.name.data(), info.name.size());
  if (info.kind == ObjectKind::kStream) {
    if (info.shape.size() != 1) return fail(ErrorCode::kInternal, "stream info is not 1-d bytes");
    h.kind = kSegmentKindStream;
    const std::uint64_t params[kStreamParams] = {
        info.stream.slots, info.stream.slot_bytes, info.stream.history,
        info.stream.max_subscribers, static_cast<std::uint64_t>(info.stream.overflow)};
    for (std::size_t i = 0; i < kStreamParams; ++i) h.shape[kStreamParamsAt + i] = params[i];
  }
  h.checksum = segment_header_checksum(h);
  return h;
}

Result<void> init_segment_header(std::span<std::byte> segment, const ArrayInfo& info) {
  if (segment.size() < kHeaderBytes) return fail(ErrorCode::kInternal, "segment too small");
  auto header = encode_segment_header(info);
  if (!header) return std::unexpected(header.error());
  std::memcpy(segment.data(), &*header, sizeof *header);
  // Version 0, seqlock even, lock free: all zero.
  if (auto ok = init_live_fields(*live_fields_of(segment.data())); !ok) return ok;
  return {};
}

namespace {

std::uint64_t legacy_checksum(const LegacySegmentHeader& header) noexcept {
  return fnv1a(
      {reinterpret_cast<const std::byte*>(&header), offsetof(LegacySegmentHeader, checksum)});
}

// The checks and decoding shared by every layout (H: SegmentHeader or LegacySegmentHeader, whose
// fields have the same names; only the dtype field's size differs).
template <class H>
Result<ArrayInfo> decode_any(const H& h, std::uint64_t checksum, std::uint64_t available_bytes) {
  if (std::memcmp(h.magic, kSegmentMagic, sizeof h.magic) != 0) return corrupt("bad magic");
  if (h.checksum != checksum) return corrupt("checksum mismatch");
  if (h.header_bytes != kHeaderBytes || h.data_offset != kHeaderBytes) {
    return corrupt("unexpected header size or data offset");
  }
  if (h.ndim > kMaxNdim || h.name_length == 0 || h.name_length > kMaxNameLength ||
      h.order > 1 || h.dtype[sizeof h.dtype - 1] != '\0') {
    return corrupt("field out of range");
  }
  ArrayInfo info;
  info.name.assign(h.name, h.name_length);
  info.dtype = h.dtype;
  auto dtype = DType::parse(info.dtype);
  if (!dtype || dtype->str() != info.dtype || dtype->itemsize() != h.itemsize) {
    return corrupt("bad dtype");
  }
  info.shape.assign(h.shape, h.shape + h.ndim);
  info.strides.assign(h.strides, h.strides + h.ndim);
  info.order = static_cast<Order>(h.order);
  auto layout = compute_layout(ArraySpec{info.dtype, info.shape, info.order},
                               std::numeric_limits<std::uint64_t>::max());
  if (!layout || layout->nbytes != h.nbytes || layout->strides != info.strides) {
    return corrupt("shape, strides and size disagree");
  }
  auto size = segment_size_for(h.nbytes);
  if (!size || *size != h.segment_bytes || h.segment_bytes > available_bytes) {
    return corrupt("segment size disagrees with the array size");
  }
  info.itemsize = h.itemsize;
  info.nbytes = h.nbytes;
  info.data_offset = h.data_offset;
  info.segment_bytes = h.segment_bytes;
  info.id = to_hex(h.id, sizeof h.id);
  info.owner_uid = h.owner_uid;
  info.owner_gid = h.owner_gid;
  info.mode = h.mode;
  info.created_unix_ns = h.created_unix_ns;
  info.ephemeral = h.ephemeral != 0;
  // Streams came with layout 3: older headers (LegacySegmentHeader) describe arrays only.
  if constexpr (std::is_same_v<H, SegmentHeader>) {
    if (h.kind > kSegmentKindStream) return corrupt("unknown kind " + std::to_string(h.kind));
    if (h.kind == kSegmentKindStream) {
      const std::uint64_t* p = h.shape + kStreamParamsAt;
      if (h.ndim != 1 || info.dtype != "|u1" || p[0] > kMaxStreamSlots || p[2] > UINT32_MAX ||
          p[3] > kMaxStreamSubscribers || p[4] > 1) {
        return corrupt("stream parameters out of range");
      }
      StreamSpec spec;
      spec.slots = static_cast<std::uint32_t>(p[0]);
      spec.slot_bytes = p[1];
      spec.history = static_cast<std::uint32_t>(p[2]);
      spec.max_subscribers = static_cast<std::uint32_t>(p[3]);
      spec.overflow = static_cast<Overflow>(p[4]);
      auto geometry = stream::stream_geometry(spec);
      if (!geometry || geometry->segment_bytes != h.segment_bytes) {
        return corrupt("stream parameters disagree with the segment size");
      }
      stream::describe_stream_segment(info, *geometry);
    }
  }
  return info;
}

}  // namespace

Result<ArrayInfo> decode_segment_header(const SegmentHeader& h, std::uint64_t available_bytes) {
  if (h.layout_version != kLayoutVersion) {
    return corrupt("layout version " + std::to_string(h.layout_version) + ", expected " +
                   std::to_string(kLayoutVersion));
  }
  return decode_any(h, segment_header_checksum(h), available_bytes);
}

Result<void> check_segment_header(const SegmentHeader& h, const ArrayInfo& expected,
                                  std::uint64_t available_bytes) {
  if (h.layout_version != kLayoutVersion) {
    return corrupt("layout version " + std::to_string(h.layout_version) + ", expected " +
                   std::to_string(kLayoutVersion));
  }
  if (h.kind != kSegmentKindArray) {  // a stream's header: decoded whole, as it always was
    auto decoded = decode_segment_header(h, available_bytes);
    if (!decoded) return std::unexpected(decoded.error());
    if (decoded->id != expected.id || decoded->nbytes != expected.nbytes ||
        decoded->dtype != expected.dtype || decoded->shape != expected.shape) {
      return fail(ErrorCode::kProtocolError,
                  "the segment received for '" + expected.name + "' does not match its metadata");
    }
    return {};
  }
  // The checks of decode_any, in its order, on the header's own fields.
  if (std::memcmp(h.magic, kSegmentMagic, sizeof h.magic) != 0) return corrupt("bad magic");
  if (h.checksum != segment_header_checksum(h)) return corrupt("checksum mismatch");
  if (h.header_bytes != kHeaderBytes || h.data_offset != kHeaderBytes) {
    return corrupt("unexpected header size or data offset");
  }
  if (h.ndim > kMaxNdim || h.name_length == 0 || h.name_length > kMaxNameLength ||
      h.order > 1 || h.dtype[sizeof h.dtype - 1] != '\0') {
    return corrupt("field out of range");
  }
  // Then: the header describes exactly the metadata (field by field, no decoded copy)...
  const std::string_view dtype(h.dtype);
  bool same = expected.id.size() == 2 * sizeof h.id && dtype == expected.dtype &&
              h.ndim == expected.shape.size() && h.ndim == expected.strides.size() &&
              h.itemsize == expected.itemsize && h.nbytes == expected.nbytes &&
              h.data_offset == expected.data_offset && h.segment_bytes == expected.segment_bytes &&
              h.order == static_cast<std::uint32_t>(expected.order);
  for (std::size_t i = 0; same && i < h.ndim; ++i) {
    same = h.shape[i] == expected.shape[i] && h.strides[i] == expected.strides[i];
  }
  for (std::size_t i = 0; same && i < sizeof h.id; ++i) {
    const int hi = hex_value(expected.id[2 * i]);
    const int lo = hex_value(expected.id[2 * i + 1]);
    same = hi >= 0 && lo >= 0 && h.id[i] == hi * 16 + lo;
  }
  if (!same) {
    return fail(ErrorCode::kProtocolError,
                "the segment received for '" + expected.name + "' does not match its metadata");
  }
  // ... and what both say is consistent, as decode_any checks it (one dtype parse: the layout's).
  auto layout = compute_layout(ArraySpec{expected.dtype, expected.shape, expected.order},
                               std::numeric_limits<std::uint64_t>::max());
  if (!layout) {
    return corrupt(DType::parse(expected.dtype) ? "shape, strides and size disagree"
                                                : "bad dtype");
  }
  if (layout->dtype.itemsize() != h.itemsize || layout->dtype.str() != dtype) {
    return corrupt("bad dtype");
  }
  if (layout->nbytes != h.nbytes || layout->strides != expected.strides) {
    return corrupt("shape, strides and size disagree");
  }
  auto size = segment_size_for(h.nbytes);
  if (!size || *size != h.segment_bytes || h.segment_bytes > available_bytes) {
    return corrupt("segment size disagrees with the array size");
  }
  return {};
}

std::uint32_t layout_version_of(std::span<const std::byte> bytes) noexcept {
  std::uint32_t v = 0;
  if (bytes.size() >= offsetof(SegmentHeader, layout_version) + sizeof v) {
    std::memcpy(&v, bytes.data() + offsetof(SegmentHeader, layout_version), sizeof v);
  }
  return v;
}

Result<ArrayInfo> decode_segment_header_bytes(std::span<const std::byte> bytes,
                                              std::uint64_t available_bytes) {
  const std::uint32_t version = layout_version_of(bytes);
  if (version >= kOldestAdoptableLayoutVersion && version < kLayoutVersion) {
    LegacySegmentHeader h;
    if (bytes.size() < sizeof h) return corrupt("shorter than a layout " + std::to_string(version) + " header");
    std::memcpy(&h, bytes.data(), sizeof h);
    return decode_any(h, legacy_checksum(h), available_bytes);
  }
  SegmentHeader h;
  if (bytes.size() < sizeof h) return corrupt("shorter than a header");
  std::memcpy(&h, bytes.data(), sizeof h);
  return decode_segment_header(h, available_bytes);
}

Result<ArrayInfo> read_segment_header(std::span<const std::byte> segment) {
  if (segment.size() < kHeaderBytes) return corrupt("segment is smaller than a header page");
  SegmentHeader h;
  std::memcpy(&h, segment.data(), sizeof h);  // a stable copy: writers may scribble meanwhile
  if (h.layout_version != kLayoutVersion) {
    return corrupt("layout version " + std::to_string(h.layout_version) + ", expected " +
                   std::to_string(kLayoutVersion) +
                   " (restart shmarrayd so that it upgrades the segment, or upgrade this client)");
  }
  auto info = decode_segment_header(h, segment.size());
  if (!info) return info;
  const auto* live = reinterpret_cast<const LiveFields*>(segment.data() + kLiveFieldsOffset);
  info->version = live->version.load(std::memory_order_acquire);
  return info;
}

namespace {

// Random bytes for ids, fetched 32 ids at a time: one getrandom per 32 creates instead of one per
// create (a system call costs ~1 us on the dev VM, a tenth of a small create). Per thread; a
// forked child starts with an empty pool, so parent and child never hand out the same bytes.
struct IdPool {
  std::uint8_t bytes[32 * 16];
  std::size_t left = 0;
};
thread_local IdPool id_pool;

[[maybe_unused]] const int id_pool_fork_guard =
    ::pthread_atfork(nullptr, nullptr, [] { id_pool.left = 0; });

}  // namespace

Result<std::string> random_array_id() {
  IdPool& pool = id_pool;
  if (pool.left < 16) {
    std::size_t got = 0;
    while (got < sizeof pool.bytes) {
      const ssize_t n = ::getrandom(pool.bytes + got, sizeof pool.bytes - got, 0);
      if (n < 0) {
        if (errno == EINTR) continue;
        return std::unexpected(sys_error("getrandom", errno));
      }
      got += static_cast<std::size_t>(n);
    }
    pool.left = sizeof pool.bytes;
  }
  pool.left -= 16;
  std::uint8_t* id = pool.bytes + pool.left;
  auto hex = to_hex(id, 16);
  std::memset(id, 0, 16);  // handed out once only
  return hex;
}

}  // namespace shmarray
