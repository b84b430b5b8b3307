#pragma once
// The self-describing header page at the start of every array segment. Plain data only: fixed
// width fields, no pointers, so any process (and a restarted broker) can validate what it mapped.
//
//   offset 0     SegmentHeader (metadata, written once by the broker, checksummed)
//   offset 2048  LiveFields     (version counter, futex word, seqlock, write lock word)
//   offset 4096  data, page-aligned (data_offset)
//
// Every byte of both parts may be rewritten at any moment by any process holding a writable
// mapping. The live fields are therefore plain words that no reader follows as a pointer: the worst
// a hostile co-writer can cause another process through them is a timeout or a possibly_torn().
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <type_traits>

#include "shmarray/error.hpp"
#include "shmarray/types.hpp"

namespace shmarray {

inline constexpr std::size_t kHeaderBytes = 4096;
inline constexpr std::size_t kLiveFieldsOffset = 2048;
// 2: the write lock is a plain owner word (sync/write_lock.hpp) instead of a glibc robust mutex.
// 3: the dtype field holds up to kMaxDTypeTextBytes of canonical dtype text (every NumPy dtype,
//    structured ones included) instead of 8 bytes.
// Version 1 and 2 headers (LegacySegmentHeader) are still decoded by decode_segment_header_bytes,
// so a broker can adopt arrays made before the change (it rewrites their header page and record);
// clients map only kLayoutVersion segments.
inline constexpr std::uint32_t kLayoutVersion = 3;
inline constexpr std::uint32_t kOldestAdoptableLayoutVersion = 1;
inline constexpr char kSegmentMagic[8] = {'S', 'H', 'M', 'A', 'R', 'R', 'A', 'Y'};

inline constexpr std::uint32_t kSegmentKindArray = 0;
inline constexpr std::uint32_t kSegmentKindStream = 1;
// Stream parameters in SegmentHeader::shape: slots, slot_bytes, history, max_subscribers,
// overflow.
inline constexpr std::size_t kStreamParamsAt = 1;
inline constexpr std::size_t kStreamParams = 5;

// Bits of LiveFields::flags.
// A writer died holding the lock, or abandoned a write without publishing: the data may be torn.
inline constexpr std::uint32_t kFlagPossiblyTorn = 1u << 0;

// Bits of LiveFields::lock_word: the owner's thread id (0: free) and "someone may be asleep".
inline constexpr std::uint32_t kLockOwnerMask = 0x3fffffffu;  // Linux TIDs are < 2^22
inline constexpr std::uint32_t kLockWaitersBit = 0x80000000u;

// Fields that change while the array lives. Shared by every mapping of the segment; all zero in a
// new segment (the broker writes nothing but zeros here).
struct LiveFields {
  std::atomic<std::uint64_t> version;    // publish counter (release-store on publish)
  std::atomic<std::uint64_t> write_seq;  // seqlock: odd while a guarded write is in progress
  std::atomic<std::uint32_t> wake_word;  // futex word: bumped by every publish
  std::atomic<std::uint32_t> waiters;    // reserved (see version.cpp); always 0
  std::atomic<std::uint32_t> flags;      // kFlag* bits
  std::uint32_t reserved0;
  // The write lock (sync/write_lock.hpp): owner TID | kLockWaitersBit, 0 when free; a futex word.
  // On its own cache line, away from the version counter readers poll.
  alignas(64) std::atomic<std::uint32_t> lock_word;
  std::uint32_t reserved1;
  std::uint64_t reserved2;
};

struct SegmentHeader {
  char magic[8];
  std::uint32_t layout_version;
  std::uint32_t header_bytes;
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
  char dtype[kMaxDTypeTextBytes + 1];  // canonical dtype text (DType::str()), NUL-padded
  std::uint64_t shape[kMaxNdim];
  std::int64_t strides[kMaxNdim];
  std::uint32_t name_length;
  char name[kMaxNameLength + 1];
  // kSegmentKindArray (0, also in headers written before streams existed) or kSegmentKindStream.
  // A stream's header describes its segment's bytes after the header page as a 1-d "|u1" array
  // (so every check of sizes holds for it too) and keeps its parameters in the unused shape
  // slots: shape[kStreamParamsAt + i] for the i-th of kStreamParams.
  std::uint32_t kind;
  std::uint64_t checksum;  // FNV-1a 64 of bytes [0, offsetof(checksum))
};

// Layout versions 1 and 2: as SegmentHeader with an 8-byte dtype (a typestr). Read, never written.
struct LegacySegmentHeader {
  char magic[8];
  std::uint32_t layout_version;
  std::uint32_t header_bytes;
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
  char dtype[8];
  std::uint64_t shape[kMaxNdim];
  std::int64_t strides[kMaxNdim];
  std::uint32_t name_length;
  char name[kMaxNameLength + 1];
  std::uint32_t reserved1;
  std::uint64_t checksum;
};
static_assert(sizeof(LegacySegmentHeader) == 888);
static_assert(offsetof(SegmentHeader, dtype) == offsetof(LegacySegmentHeader, dtype));

static_assert(std::is_standard_layout_v<SegmentHeader>);
static_assert(offsetof(SegmentHeader, checksum) ==
                  offsetof(SegmentHeader, kind) + sizeof(std::uint32_t) &&
              sizeof(SegmentHeader) == offsetof(SegmentHeader, checksum) + sizeof(std::uint64_t),
              "no implicit padding: the header is compared and checksummed byte for byte");
static_assert(std::is_standard_layout_v<LiveFields>);
static_assert(offsetof(LiveFields, lock_word) == 64, "lock word on its own cache line");
static_assert(sizeof(SegmentHeader) <= kLiveFieldsOffset);
static_assert(kLiveFieldsOffset + sizeof(LiveFields) <= kHeaderBytes);
static_assert(kLiveFieldsOffset % alignof(LiveFields) == 0);
static_assert(std::atomic<std::uint64_t>::is_always_lock_free);
static_assert(std::atomic<std::uint32_t>::is_always_lock_free);
static_assert(sizeof(std::atomic<std::uint32_t>) == 4, "futex words are 32-bit");

// The two parts of a mapped segment (which must be at least kHeaderBytes long). The caller has
// validated the header (read_segment_header) before trusting either.
[[nodiscard]] inline const SegmentHeader* header_of(std::span<const std::byte> segment) noexcept {
  return reinterpret_cast<const SegmentHeader*>(segment.data());
}
[[nodiscard]] inline LiveFields* live_fields_of(std::byte* segment_base) noexcept {
  return reinterpret_cast<LiveFields*>(segment_base + kLiveFieldsOffset);
}

// Size of the whole segment for `nbytes` of data: header page + data rounded up to a page.
// kResourceExhausted on overflow.
[[nodiscard]] Result<std::uint64_t> segment_size_for(std::uint64_t nbytes);

// The checksum a header must carry: FNV-1a 64 of its bytes before `checksum`. It detects torn or
// accidental damage only; anyone who may write the segment can recompute it, so the broker trusts
// its private catalogue (server/src/catalogue.hpp), not this header, for owner and mode.
[[nodiscard]] std::uint64_t segment_header_checksum(const SegmentHeader& header) noexcept;

// The metadata half of the header for `info` (id as 32 hex digits), checksummed, every byte not
// set by a field zero. kInternal if `info` does not fit the header.
[[nodiscard]] Result<SegmentHeader> encode_segment_header(const ArrayInfo& info);

// Validates and decodes a header copy (magic, layout version kLayoutVersion, checksum, dtype,
// name, shape and sizes consistent, segment_bytes <= available_bytes). kProtocolError describing
// the first problem. version and open_handles are 0.
[[nodiscard]] Result<ArrayInfo> decode_segment_header(const SegmentHeader& header,
                                                      std::uint64_t available_bytes);

// A client's check of the header of a segment it was granted for `expected` (the broker's
// metadata): every check of decode_segment_header, and the header describes exactly `expected`'s
// id, dtype, itemsize, shape, strides, order, nbytes, data offset and segment size. Builds no
// ArrayInfo (the client keeps the broker's), so it costs about half a decode. kProtocolError
// describing the first problem ("... does not match its metadata" for a header that is intact
// but describes another array).
[[nodiscard]] Result<void> check_segment_header(const SegmentHeader& header,
                                                const ArrayInfo& expected,
                                                std::uint64_t available_bytes);

// As decode_segment_header for the header at the start of `bytes` in any layout from
// kOldestAdoptableLayoutVersion to kLayoutVersion (how the broker reads what it may adopt).
// kProtocolError if `bytes` is shorter than that layout's header.
[[nodiscard]] Result<ArrayInfo> decode_segment_header_bytes(std::span<const std::byte> bytes,
                                                            std::uint64_t available_bytes);
// The layout version field of the header at the start of `bytes` (0 if too short to hold one).
[[nodiscard]] std::uint32_t layout_version_of(std::span<const std::byte> bytes) noexcept;

// Writes a complete header for `info` (id as 32 hex digits) into `segment`, which must be at least
// kHeaderBytes long and zero-filled, and initialises the live fields (all zero: version 0, lock
// free). kInternal if `info` does not fit the header.
[[nodiscard]] Result<void> init_segment_header(std::span<std::byte> segment, const ArrayInfo& info);

// Validates and decodes the header at the start of `segment` (magic, layout version exactly
// kLayoutVersion: a client must not use a lock protocol the segment's other users do not, checksum,
// sizes consistent with segment.size(), dtype, name). kProtocolError describing the first problem.
// The returned info has version read from the live fields; open_handles is 0.
[[nodiscard]] Result<ArrayInfo> read_segment_header(std::span<const std::byte> segment);

// 16 random bytes as 32 lowercase hex digits (getrandom). kInternal if the kernel refuses.
[[nodiscard]] Result<std::string> random_array_id();

}  // namespace shmarray
