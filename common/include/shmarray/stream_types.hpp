#pragma once
// Plain value types of streams (docs/streams.md): what a stream is (StreamSpec) and what the
// broker reports about one (StreamStatus, inside ArrayInfo for objects of kind kStream).
#include <cstdint>
#include <string_view>
#include <vector>

#include "shmarray/error.hpp"

namespace shmarray {

// What a named object is. Arrays and streams share one namespace (names, ls, stat, rm, modes).
enum class ObjectKind : std::uint8_t { kArray = 0, kStream = 1 };  // wire-stable values
[[nodiscard]] std::string_view to_string(ObjectKind kind) noexcept;  // "array" / "stream"

// What a publisher does when the ring is full. Wire-stable values.
enum class Overflow : std::uint8_t {
  kBlock = 0,       // loan() waits for the slowest subscriber: every subscriber gets every message
  kDropOldest = 1,  // the oldest message no one holds is reused: the publisher never waits
};
[[nodiscard]] std::string_view to_string(Overflow overflow) noexcept;  // "block" / "drop_oldest"

// Limits of a stream's shape (checked by the broker at create and by clients at map time).
inline constexpr std::uint32_t kMaxStreamSlots = 1u << 16;
inline constexpr std::uint32_t kMaxStreamSubscribers = 256;
inline constexpr std::uint32_t kMaxHeldPerSubscriber = 64;

struct StreamSpec {
  std::uint32_t slots = 8;               // ring capacity, 2 .. kMaxStreamSlots
  std::uint64_t slot_bytes = 0;          // largest message payload (> 0)
  std::uint32_t history = 0;             // messages a late subscriber may still take (< slots)
  std::uint32_t max_subscribers = 16;    // 1 .. kMaxStreamSubscribers
  Overflow overflow = Overflow::kBlock;  // see Overflow
  std::uint32_t mode = 0600;             // permission bits: read = subscribe, write = publish
  bool ephemeral = false;                // removed when the creating connection closes
};

// kInvalidArgument naming the bad field and its limit.
[[nodiscard]] Result<void> validate_stream_spec(const StreamSpec& spec);

// One subscriber as the broker sees it (position, held and missed are read from the subscriber's
// own state page, which it may write: informational only).
struct SubscriberStatus {
  std::uint32_t pid = 0;
  std::uint64_t position = 0;  // next sequence number it will take
  std::uint32_t held = 0;      // samples it holds now
  std::uint64_t missed = 0;    // messages dropped before it took them (kDropOldest)
  std::uint32_t max_held = 0;
};

// A stream's parameters and live state (ArrayInfo::stream when kind == kStream).
struct StreamStatus {
  std::uint32_t slots = 0;
  std::uint64_t slot_bytes = 0;
  std::uint32_t history = 0;
  std::uint32_t max_subscribers = 0;
  Overflow overflow = Overflow::kBlock;
  std::uint64_t last_seq = 0;       // sequence number of the last published message (0: none)
  std::uint32_t publisher_pid = 0;  // 0: no publisher connected (open_publisher may take over)
  std::vector<SubscriberStatus> subscribers;
};

}  // namespace shmarray
