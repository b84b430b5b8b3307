#pragma once
// The shared-memory layout of a stream (docs/streams.md). Plain data: fixed-width words, no
// pointers; every offset is computed from the stream's parameters as the broker reported them
// (StreamGeometry), never read from shared memory.
//
// Stream segment (named POSIX shm under the broker's prefix, like an array's):
//   [0, 4096)                 header page: SegmentHeader (kind stream) at 0, StreamControl at 2048
//   [4096, descriptors)       message table: slots x TableEntry, indexed by seq % slots
//   [descriptors, slots)      slots x SlotDescriptor (512 bytes each)
//   [slots_offset, end)       slots x slot_stride payload bytes, page-aligned
// The publisher maps it read-write, subscribers read-only (the kernel enforces it).
//
// Subscriber state (one 4096-byte sealed memfd per subscriber, SubscriberState): the broker
// creates it and writes its first words with pwrite; the subscriber maps it read-write; the
// publisher maps it read-only. F_SEAL_GROW|F_SEAL_SHRINK: nobody can resize it, so the publisher's
// mapping can never fault; every value in it is clamped before use.
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "shmarray/error.hpp"
#include "shmarray/stream_types.hpp"
#include "shmarray/types.hpp"

namespace shmarray::stream {

inline constexpr std::size_t kPage = 4096;
inline constexpr std::size_t kControlOffset = 2048;
inline constexpr std::size_t kDescriptorBytes = 512;
inline constexpr std::size_t kMaxDtypeBytes = 64;
inline constexpr std::size_t kStateBytes = 4096;
// Above every sequence number a publisher reaches (2^62 messages: 146 years at 10^9 a second).
// A head word at or past it was written by a hostile or broken process: readers refuse it
// instead of moving their cursors there (which would wrap).
inline constexpr std::uint64_t kMaxSeq = std::uint64_t{1} << 62;
// 02: `sleeping` and `missed` on their own line, `cursor` on the line of the first held entries.
inline constexpr char kStateMagic[8] = {'S', 'H', 'M', 'S', 'U', 'B', '0', '2'};

// Live words of the stream, at kControlOffset of the header page (zero in a new stream).
struct StreamControl {
  // Sequence number of the last published message (0: none yet). Written only by the publisher
  // (seq_cst store, after the message's descriptor and table entry).
  std::atomic<std::uint64_t> head;
  // Low 32 bits of head, stored right after it: subscribers FUTEX_WAIT on this word.
  std::atomic<std::uint32_t> head_word;
  // Written by the broker (pwrite) when a publisher attaches or leaves; informational.
  std::atomic<std::uint32_t> publisher_pid;
  // The last published message and its slot, written like a table entry (slot, then seq with
  // release) just before head, on head's cache line: a subscriber that is caught up finds its
  // message's slot in the line it already read, not in the table. Zero in segments made before.
  std::atomic<std::uint64_t> latest_seq;
  std::atomic<std::uint64_t> latest_slot;
  // Membership generation: the broker adds 1 (pwrite) whenever a subscriber joins or leaves.
  // The publisher loads it once per loan and asks the broker for the member list when it moved.
  alignas(64) std::atomic<std::uint32_t> members;
  // Written by the broker (pwrite) when it creates the stream or adopts it at start: a value of
  // its own (random, never the one it finds there). A subscriber that sees it change hands its
  // state page back to the new broker (re-admission, docs/streams.md). Shares the line of
  // `members`, which changes as rarely. 0 in segments made before.
  std::atomic<std::uint32_t> epoch;
  // 1 while the publisher waits for room (kBlock); a subscriber that moves on checks it and wakes
  // room_word. room_word never changes: the publisher sleeps on it in slices.
  alignas(64) std::atomic<std::uint32_t> room_waiting;
  std::atomic<std::uint32_t> room_word;
};

struct TableEntry {
  std::atomic<std::uint64_t> seq;   // the message this entry indexes (table[seq % slots])
  std::atomic<std::uint64_t> slot;  // where its payload lives
};

struct SlotDescriptor {
  std::atomic<std::uint64_t> seq;  // the message in this slot; 0 while (re)written
  std::uint64_t nbytes;
  std::int64_t published_unix_ns;
  std::uint32_t ndim;
  std::uint32_t order;
  char dtype[kMaxDtypeBytes];  // NUL-terminated typestr
  std::uint64_t shape[kMaxNdim];
  std::byte reserved[kDescriptorBytes - 96 - kMaxNdim * 8];
};

struct HeldEntry {
  std::atomic<std::uint64_t> seq;   // 0: free; else the message held (hazard pointer)
  std::atomic<std::uint64_t> slot;
};

struct SubscriberState {
  // Written once by the broker at subscribe.
  char magic[8];
  std::uint32_t index;
  std::uint32_t generation;
  std::uint32_t pid;
  std::uint32_t max_held;
  // Written by the subscriber. Lines are grouped by who reads them how often: the publisher
  // reads `sleeping` at every publish and the subscriber writes it only around a sleep, so it
  // has a line of its own (with `missed`, written only when messages are dropped); the
  // publisher reads `cursor` and the held entries at a loan, and the subscriber writes them at a
  // take and a release, so they share a line (for max_held <= 3): one line moves per message.
  alignas(64) std::atomic<std::uint32_t> sleeping;  // 1 while it sleeps on head_word
  std::uint32_t reserved0;
  std::atomic<std::uint64_t> missed;
  alignas(64) std::atomic<std::uint64_t> cursor;    // next sequence number it will take
  std::uint64_t reserved1;
  HeldEntry held[kMaxHeldPerSubscriber];
};

static_assert(std::is_standard_layout_v<StreamControl>);
static_assert(std::is_standard_layout_v<SlotDescriptor>);
static_assert(std::is_standard_layout_v<SubscriberState>);
static_assert(sizeof(SlotDescriptor) == kDescriptorBytes);
static_assert(offsetof(SlotDescriptor, shape) == 96);
static_assert(sizeof(SubscriberState) <= kStateBytes);
static_assert(offsetof(SubscriberState, held) + 3 * sizeof(HeldEntry) ==
              offsetof(SubscriberState, cursor) + 64);
// The words every stream segment already had keep their offsets (segments outlive upgrades).
static_assert(offsetof(StreamControl, latest_slot) + 8 <= offsetof(StreamControl, members));
static_assert(offsetof(StreamControl, members) == 64 && offsetof(StreamControl, epoch) == 68 &&
              offsetof(StreamControl, room_waiting) == 128);
static_assert(kControlOffset + sizeof(StreamControl) <= kPage);
static_assert(std::atomic<std::uint64_t>::is_always_lock_free);
static_assert(sizeof(std::atomic<std::uint64_t>) == 8 && sizeof(std::atomic<std::uint32_t>) == 4);

// Where everything is, computed from the parameters alone.
struct StreamGeometry {
  StreamSpec spec;
  std::uint64_t table_offset = 0;
  std::uint64_t descriptors_offset = 0;
  std::uint64_t slots_offset = 0;
  std::uint64_t slot_stride = 0;
  std::uint64_t segment_bytes = 0;
};

// The geometry of a stream with these parameters (validate_stream_spec first). kResourceExhausted
// if it would exceed `max_bytes` or overflow.
[[nodiscard]] Result<StreamGeometry> stream_geometry(const StreamSpec& spec,
                                                     std::uint64_t max_bytes = UINT64_MAX);
// The spec recorded in a stream's ArrayInfo (mode and ephemeral included).
[[nodiscard]] StreamSpec spec_of(const ArrayInfo& info);
// Fills the stream fields of `info` (kind, dtype "|u1", shape, strides, sizes) for `geometry`.
void describe_stream_segment(ArrayInfo& info, const StreamGeometry& geometry);

}  // namespace shmarray::stream
