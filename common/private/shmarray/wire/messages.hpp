#pragma once
// Every message of the broker protocol (wire/message_table.hpp) as a plain C++ struct, with one
// encode and one decode per message. Decoders take untrusted bytes: they run the FlatBuffers
// verifier first and return kProtocolError for anything malformed; semantic checks (valid names,
// sizes) are the handler's.
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "shmarray/error.hpp"
#include "shmarray/mirror_types.hpp"
#include "shmarray/types.hpp"
#include "shmarray/wire/frame.hpp"
#include "shmarray/wire/stream_messages.hpp"

namespace shmarray::wire {

inline constexpr std::uint16_t kProtocolVersion = 1;     // newest message set we speak
inline constexpr std::uint16_t kMinProtocolVersion = 1;  // oldest we still accept

enum class EventKind : std::uint8_t { kCreated = 1, kRemoved = 2 };  // wire-stable

struct HelloRequest {
  static constexpr MessageType kType = MessageType::kHelloRequest;
  std::uint16_t min_version = kMinProtocolVersion;
  std::uint16_t max_version = kProtocolVersion;
  std::string client_name;
};
struct HelloReply {
  static constexpr MessageType kType = MessageType::kHelloReply;
  std::uint16_t version = kProtocolVersion;
  std::uint32_t broker_pid = 0;
  std::string broker_version;
  std::uint64_t max_array_bytes = 0;
};
struct CreateRequest {
  static constexpr MessageType kType = MessageType::kCreateRequest;
  std::string name;
  ArraySpec spec;
};
struct CreateReply {  // carries the segment's read-write descriptor
  static constexpr MessageType kType = MessageType::kCreateReply;
  ArrayInfo info;
};
struct OpenRequest {
  static constexpr MessageType kType = MessageType::kOpenRequest;
  std::string name;
  Access access = Access::kReadOnly;
  std::uint32_t wait_ms = 0;  // > 0: if absent, wait up to this long for it to be created
  // refused (kPermissionDenied) unless owned by this uid
  std::optional<std::uint32_t> owner = std::nullopt;
};
struct OpenReply {  // carries a descriptor opened O_RDONLY or O_RDWR to match `access`
  static constexpr MessageType kType = MessageType::kOpenReply;
  ArrayInfo info;
  Access access = Access::kReadOnly;
};
struct RemoveRequest {
  static constexpr MessageType kType = MessageType::kRemoveRequest;
  std::string name;
};
struct RemoveReply {
  static constexpr MessageType kType = MessageType::kRemoveReply;
};
// Arrays are listed in pages so that a listing of a million arrays neither blocks the broker's
// other clients nor outgrows a reply: a page holds at most min(limit, kMaxListPage) arrays.
// 256: a page costs the event loop ~0.7 ms on the dev VM (an fstat and a pread per array), so
// another client waits at most about that long behind a listing (bench_list_interference: with
// 1000 a stat during a listing had p99 6.0 ms, all at once 566 ms).
inline constexpr std::uint32_t kMaxListPage = 256;
struct ListRequest {
  static constexpr MessageType kType = MessageType::kListRequest;
  std::string prefix;
  std::string after{};      // resume after this name (exclusive); empty: from the start
  std::uint32_t limit = 0;  // arrays per page; 0: all in one reply (clients before paging)
};
struct ListReply {
  static constexpr MessageType kType = MessageType::kListReply;
  std::vector<ArrayInfo> arrays;
  std::string next_after;  // pass as ListRequest::after for the next page; empty: this was the last
};
struct StatRequest {
  static constexpr MessageType kType = MessageType::kStatRequest;
  std::string name;
};
struct StatReply {
  static constexpr MessageType kType = MessageType::kStatReply;
  ArrayInfo info;
};
struct ChmodRequest {
  static constexpr MessageType kType = MessageType::kChmodRequest;
  std::string name;
  std::uint32_t mode = 0;
};
struct ChmodReply {
  static constexpr MessageType kType = MessageType::kChmodReply;
};
struct CloseRequest {  // the client dropped its last handle to array `id`
  static constexpr MessageType kType = MessageType::kCloseRequest;
  std::string id;
};
struct CloseReply {
  static constexpr MessageType kType = MessageType::kCloseReply;
};
struct WatchRequest {  // turns the connection into an event stream for names under `prefix`
  static constexpr MessageType kType = MessageType::kWatchRequest;
  std::string prefix;
};
struct WatchReply {
  static constexpr MessageType kType = MessageType::kWatchReply;
};
struct Event {
  static constexpr MessageType kType = MessageType::kEvent;
  EventKind kind = EventKind::kCreated;
  std::string name;
  ArrayInfo info;
};
// Mirrors across hosts (docs/across-hosts.md).
enum class MirrorOp : std::uint8_t { kAdd = 1, kRemove = 2, kList = 3, kReport = 4 };  // wire-stable
struct MirrorRequest {
  static constexpr MessageType kType = MessageType::kMirrorRequest;
  MirrorOp op = MirrorOp::kList;
  std::string prefix;               // add, remove
  std::string peer;                 // add: HOST:PORT
  std::vector<MirrorInfo> report;   // report: the bridge's view of every mirror link
};
struct MirrorReply {  // the mirrors configured after the request
  static constexpr MessageType kType = MessageType::kMirrorReply;
  std::vector<MirrorInfo> mirrors;
};
struct ErrorReply {
  static constexpr MessageType kType = MessageType::kErrorReply;
  ErrorCode code = ErrorCode::kInternal;
  std::string message;
};

// Body encoder and verifying decoder of every message M above, one pair each, instantiated for
// exactly the messages of wire/message_table.hpp (the frame header is added by encode_frame /
// encode_message). decode<M> runs the FlatBuffers verifier first and returns kProtocolError for
// anything malformed.
template <class M>
[[nodiscard]] std::vector<std::byte> encode_body(const M& m);
template <class M>
[[nodiscard]] Result<M> decode(std::span<const std::byte> body);
// A whole frame for `m`: what encode_frame(M::kType, request_id, encode_body(m), has_fd) makes,
// in one allocation.
template <class M>
[[nodiscard]] std::vector<std::byte> encode_message(const M& m, std::uint64_t request_id,
                                                    bool has_fd = false);

// The broker's OpenReply and CreateReply of an array, encoded straight from its record's `info`
// with `open_handles` and `version` in place of info's (the bytes encode_message makes of the
// reply struct holding such a copy, without the copy: ~1,300 instructions per open).
[[nodiscard]] std::vector<std::byte> encode_open_reply(const ArrayInfo& info,
                                                       std::uint32_t open_handles,
                                                       std::uint64_t version, Access access,
                                                       std::uint64_t request_id, bool has_fd);
[[nodiscard]] std::vector<std::byte> encode_create_reply(const ArrayInfo& info,
                                                         std::uint32_t open_handles,
                                                         std::uint64_t version,
                                                         std::uint64_t request_id, bool has_fd);

#define SHMARRAY_DECLARE_CODEC(name, number)                                         \
  static_assert(name::kType == MessageType::k##name, #name " has the wrong kType"); \
  extern template std::vector<std::byte> encode_body<name>(const name&);          \
  extern template Result<name> decode<name>(std::span<const std::byte>);            \
  extern template std::vector<std::byte> encode_message<name>(const name&, std::uint64_t, bool);
SHMARRAY_WIRE_MESSAGES(SHMARRAY_DECLARE_CODEC)
#undef SHMARRAY_DECLARE_CODEC

}  // namespace shmarray::wire
