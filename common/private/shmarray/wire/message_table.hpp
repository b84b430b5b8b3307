#pragma once
// The one table of broker protocol messages. Everything that lists messages is generated from it:
// the wire-stable MessageType numbers, their names (logs, errors), the encode/decode pairs and the
// fuzzer's "every decoder" list.
//
// Adding a message: one line here (never renumber, never reuse a number), its struct in
// wire/messages.hpp, its FlatBuffers table of the same name in common/schema/shmarray.fbs, and its
// two field conversions (to_table / from_table) in common/src/messages.cpp. Verification, framing
// and dispatch of unknown types need nothing more.
//
// X(Name, number): Name is the C++ struct (wire::Name), the FlatBuffers table (fb::Name) and the
// enumerator MessageType::kName.
#define SHMARRAY_WIRE_MESSAGES(X) \
  X(HelloRequest, 1)              \
  X(HelloReply, 2)                \
  X(CreateRequest, 3)             \
  X(CreateReply, 4)               \
  X(OpenRequest, 5)               \
  X(OpenReply, 6)                 \
  X(RemoveRequest, 7)             \
  X(RemoveReply, 8)               \
  X(ListRequest, 9)               \
  X(ListReply, 10)                \
  X(StatRequest, 11)              \
  X(StatReply, 12)                \
  X(WatchRequest, 13)             \
  X(WatchReply, 14)               \
  X(Event, 15)                    \
  X(ChmodRequest, 17)             \
  X(ChmodReply, 18)               \
  X(CloseRequest, 19)             \
  X(CloseReply, 20)               \
  X(CreateStreamRequest, 21)      \
  X(StreamReply, 22)              \
  X(OpenPublisherRequest, 23)     \
  X(SubscribeRequest, 24)         \
  X(SubscribeReply, 25)           \
  X(StreamMembersRequest, 26)     \
  X(StreamMembersReply, 27)       \
  X(SubscriberStateRequest, 28)   \
  X(SubscriberStateReply, 29)     \
  X(DetachRequest, 30)            \
  X(DetachReply, 31)              \
  X(ReadmitSubscriberRequest, 32) \
  X(ReadmitSubscriberReply, 33)   \
  X(MirrorRequest, 60)            \
  X(MirrorReply, 61)              \
  X(ErrorReply, 100)
