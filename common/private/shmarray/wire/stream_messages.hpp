#pragma once
// Messages of the stream control plane (docs/protocol.md, docs/streams.md). Their numbers are in
// wire/message_table.hpp, their encode/decode pairs in wire/messages.hpp (which includes this
// file). None of them is on a stream's data path: they create, attach and detach; messages flow
// through shared memory only.
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "shmarray/error.hpp"
#include "shmarray/stream_types.hpp"
#include "shmarray/types.hpp"
#include "shmarray/wire/frame.hpp"

namespace shmarray::wire {

struct CreateStreamRequest {
  static constexpr MessageType kType = MessageType::kCreateStreamRequest;
  std::string name;
  StreamSpec spec;
};
// Answers CreateStreamRequest and OpenPublisherRequest; carries the stream segment read-write.
struct StreamReply {
  static constexpr MessageType kType = MessageType::kStreamReply;
  ArrayInfo info;
};
// Takes over a stream whose publisher is gone (write permission needed).
struct OpenPublisherRequest {
  static constexpr MessageType kType = MessageType::kOpenPublisherRequest;
  std::string name;
};
struct SubscribeRequest {
  static constexpr MessageType kType = MessageType::kSubscribeRequest;
  std::string name;
  bool from_history = false;
  std::uint32_t max_held = 2;
};
// Carries the stream segment read-only. The subscriber then asks for its state page with a
// SubscriberStateRequest for (info.id, index, generation).
struct SubscribeReply {
  static constexpr MessageType kType = MessageType::kSubscribeReply;
  ArrayInfo info;
  std::uint32_t index = 0;
  std::uint32_t generation = 0;
  std::uint64_t start_seq = 1;  // the first sequence number this subscriber takes
};
struct StreamMember {
  std::uint32_t index = 0;
  std::uint32_t generation = 0;
  std::uint32_t pid = 0;
  std::uint32_t max_held = 0;
  friend bool operator==(const StreamMember&, const StreamMember&) = default;
};
// Publisher only: the stream's current subscribers.
struct StreamMembersRequest {
  static constexpr MessageType kType = MessageType::kStreamMembersRequest;
  std::string id;
};
struct StreamMembersReply {
  static constexpr MessageType kType = MessageType::kStreamMembersReply;
  std::vector<StreamMember> members;
};
// A subscriber's state page: read-write to that subscriber's connection, read-only to the
// stream's publisher, refused to anyone else.
struct SubscriberStateRequest {
  static constexpr MessageType kType = MessageType::kSubscriberStateRequest;
  std::string id;
  std::uint32_t index = 0;
  std::uint32_t generation = 0;
};
struct SubscriberStateReply {  // carries the descriptor
  static constexpr MessageType kType = MessageType::kSubscriberStateReply;
};

// The process let go of its Subscriber (index, generation) or of its Publisher
// (index kDetachPublisher) of stream `id`; the connection stays open for other work.
inline constexpr std::uint32_t kDetachPublisher = 0xffffffffu;
struct DetachRequest {
  static constexpr MessageType kType = MessageType::kDetachRequest;
  std::string id;
  std::uint32_t index = 0;
  std::uint32_t generation = 0;
};
struct DetachReply {
  static constexpr MessageType kType = MessageType::kDetachReply;
};

// After a broker restart (StreamControl::epoch moved): a subscriber of the previous broker hands
// its state page back (the descriptor travels with this frame, the only request that may carry
// one) with the fields the previous broker gave it and its position now. The broker checks the
// page and admits the subscriber again, possibly under another index and generation (its reply
// says which): docs/streams.md, "Broker killed and restarted".
struct ReadmitSubscriberRequest {
  static constexpr MessageType kType = MessageType::kReadmitSubscriberRequest;
  std::string id;
  std::uint32_t index = 0;
  std::uint32_t generation = 0;
  std::uint64_t cursor = 0;
  std::uint32_t max_held = 0;
};
struct ReadmitSubscriberReply {
  static constexpr MessageType kType = MessageType::kReadmitSubscriberReply;
  std::uint32_t index = 0;
  std::uint32_t generation = 0;
};

inline constexpr std::size_t kMaxMembersPerReply = kMaxStreamSubscribers;

}  // namespace shmarray::wire
