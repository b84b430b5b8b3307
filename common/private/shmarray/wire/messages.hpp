#pragma once
// Every message of the broker protocol as a plain C++ struct, with one encode and one decode per
// message. Decoders take untrusted bytes: they run the FlatBuffers verifier first and return
// kProtocolError for anything malformed; semantic checks (valid names, sizes) are the handler's.
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "shmarray/error.hpp"
#include "shmarray/types.hpp"
#include "shmarray/wire/frame.hpp"

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
  std::string after;        // resume after this name (exclusive); empty: from the start
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
struct ErrorReply {
  static constexpr MessageType kType = MessageType::kErrorReply;
  ErrorCode code = ErrorCode::kInternal;
  std::string message;
};

// Body encoders (the frame header is added by encode_frame / encode_message).
[[nodiscard]] std::vector<std::byte> encode_body(const HelloRequest& m);
[[nodiscard]] std::vector<std::byte> encode_body(const HelloReply& m);
[[nodiscard]] std::vector<std::byte> encode_body(const CreateRequest& m);
[[nodiscard]] std::vector<std::byte> encode_body(const CreateReply& m);
[[nodiscard]] std::vector<std::byte> encode_body(const OpenRequest& m);
[[nodiscard]] std::vector<std::byte> encode_body(const OpenReply& m);
[[nodiscard]] std::vector<std::byte> encode_body(const RemoveRequest& m);
[[nodiscard]] std::vector<std::byte> encode_body(const RemoveReply& m);
[[nodiscard]] std::vector<std::byte> encode_body(const ListRequest& m);
[[nodiscard]] std::vector<std::byte> encode_body(const ListReply& m);
[[nodiscard]] std::vector<std::byte> encode_body(const StatRequest& m);
[[nodiscard]] std::vector<std::byte> encode_body(const StatReply& m);
[[nodiscard]] std::vector<std::byte> encode_body(const ChmodRequest& m);
[[nodiscard]] std::vector<std::byte> encode_body(const ChmodReply& m);
[[nodiscard]] std::vector<std::byte> encode_body(const CloseRequest& m);
[[nodiscard]] std::vector<std::byte> encode_body(const CloseReply& m);
[[nodiscard]] std::vector<std::byte> encode_body(const WatchRequest& m);
[[nodiscard]] std::vector<std::byte> encode_body(const WatchReply& m);
[[nodiscard]] std::vector<std::byte> encode_body(const Event& m);
[[nodiscard]] std::vector<std::byte> encode_body(const ErrorReply& m);

// Verifying decoders: decode<M>(body) for each message struct M above.
template <class M>
[[nodiscard]] Result<M> decode(std::span<const std::byte> body);
template <> Result<HelloRequest> decode<HelloRequest>(std::span<const std::byte> body);
template <> Result<HelloReply> decode<HelloReply>(std::span<const std::byte> body);
template <> Result<CreateRequest> decode<CreateRequest>(std::span<const std::byte> body);
template <> Result<CreateReply> decode<CreateReply>(std::span<const std::byte> body);
template <> Result<OpenRequest> decode<OpenRequest>(std::span<const std::byte> body);
template <> Result<OpenReply> decode<OpenReply>(std::span<const std::byte> body);
template <> Result<RemoveRequest> decode<RemoveRequest>(std::span<const std::byte> body);
template <> Result<RemoveReply> decode<RemoveReply>(std::span<const std::byte> body);
template <> Result<ListRequest> decode<ListRequest>(std::span<const std::byte> body);
template <> Result<ListReply> decode<ListReply>(std::span<const std::byte> body);
template <> Result<StatRequest> decode<StatRequest>(std::span<const std::byte> body);
template <> Result<StatReply> decode<StatReply>(std::span<const std::byte> body);
template <> Result<ChmodRequest> decode<ChmodRequest>(std::span<const std::byte> body);
template <> Result<ChmodReply> decode<ChmodReply>(std::span<const std::byte> body);
template <> Result<CloseRequest> decode<CloseRequest>(std::span<const std::byte> body);
template <> Result<CloseReply> decode<CloseReply>(std::span<const std::byte> body);
template <> Result<WatchRequest> decode<WatchRequest>(std::span<const std::byte> body);
template <> Result<WatchReply> decode<WatchReply>(std::span<const std::byte> body);
template <> Result<Event> decode<Event>(std::span<const std::byte> body);
template <> Result<ErrorReply> decode<ErrorReply>(std::span<const std::byte> body);

// A whole frame for `m`.
template <class M>
[[nodiscard]] std::vector<std::byte> encode_message(const M& m, std::uint64_t request_id,
                                                    bool has_fd = false) {
  return encode_frame(M::kType, request_id, encode_body(m), has_fd);
}

}  // namespace shmarray::wire
