// Streams without a broker: the stream messages round-trip and reject hostile bodies; a stream's
// geometry is overflow-checked; its SegmentHeader (what the catalogue keeps) round-trips the
// parameters and rejects ones that disagree with the segment size; the broker assigns a
// descriptor a client sends (a re-admitted subscriber's state page) to the right frame only.
#include <fcntl.h>
#include <gtest/gtest.h>

#include <cstring>

#include "passed_descriptor.hpp"
#include "shmarray/segment_layout.hpp"
#include "shmarray/stream/stream_layout.hpp"
#include "shmarray/wire/messages.hpp"

namespace shmarray {
namespace {

ArrayInfo stream_info() {
  StreamSpec spec;
  spec.slots = 16;
  spec.slot_bytes = 5000;
  spec.history = 3;
  spec.max_subscribers = 7;
  spec.overflow = Overflow::kDropOldest;
  auto g = stream::stream_geometry(spec);
  EXPECT_TRUE(g);
  ArrayInfo info;
  info.name = "cam/0";
  info.id = "0123456789abcdef0123456789abcdef";
  info.owner_uid = 1000;
  info.mode = 0640;
  stream::describe_stream_segment(info, *g);
  info.stream.last_seq = 99;
  info.stream.publisher_pid = 1234;
  info.stream.subscribers = {{11, 50, 2, 7, 2}, {12, 60, 0, 0, 4}};
  return info;
}

TEST(StreamGeometry, IsPageAlignedAndOverflowChecked) {
  StreamSpec spec;
  spec.slot_bytes = 100;
  auto g = stream::stream_geometry(spec);
  ASSERT_TRUE(g);
  EXPECT_EQ(g->slots_offset % 4096, 0u);
  EXPECT_EQ(g->slot_stride, 4096u);
  EXPECT_EQ(g->segment_bytes, g->slots_offset + 8 * 4096);
  spec.slot_bytes = UINT64_MAX - 10;
  EXPECT_EQ(stream::stream_geometry(spec).error().code(), ErrorCode::kResourceExhausted);
  spec.slot_bytes = 1 << 20;
  EXPECT_EQ(stream::stream_geometry(spec, 1 << 20).error().code(), ErrorCode::kResourceExhausted);
  spec.history = spec.slots;
  EXPECT_EQ(stream::stream_geometry(spec).error().code(), ErrorCode::kInvalidArgument);
}

TEST(StreamHeader, RoundTripsTheParametersAndRejectsInconsistentOnes) {
  const ArrayInfo info = stream_info();
  auto header = encode_segment_header(info);
  ASSERT_TRUE(header);
  EXPECT_EQ(header->kind, kSegmentKindStream);
  auto back = decode_segment_header(*header, info.segment_bytes);
  ASSERT_TRUE(back) << back.error().message();
  EXPECT_EQ(back->kind, ObjectKind::kStream);
  EXPECT_EQ(back->stream.slots, 16u);
  EXPECT_EQ(back->stream.slot_bytes, 5000u);
  EXPECT_EQ(back->stream.history, 3u);
  EXPECT_EQ(back->stream.max_subscribers, 7u);
  EXPECT_EQ(back->stream.overflow, Overflow::kDropOldest);
  EXPECT_EQ(back->segment_bytes, info.segment_bytes);

  SegmentHeader bad = *header;
  bad.shape[kStreamParamsAt] = 17;  // more slots than the segment holds
  bad.checksum = segment_header_checksum(bad);
  EXPECT_FALSE(decode_segment_header(bad, info.segment_bytes));
  bad = *header;
  bad.kind = 9;
  bad.checksum = segment_header_checksum(bad);
  EXPECT_FALSE(decode_segment_header(bad, info.segment_bytes));
}

template <class M>
M round_trip(const M& m) {
  auto body = wire::encode_body(m);
  auto back = wire::decode<M>(body);
  EXPECT_TRUE(back) << back.error().message();
  for (std::size_t cut = 0; cut < body.size(); cut += 3) {
    auto truncated = wire::decode<M>(std::span<const std::byte>(body.data(), cut));
    if (truncated) continue;  // FlatBuffers may accept a prefix only if it verifies
    EXPECT_EQ(truncated.error().code(), ErrorCode::kProtocolError);
  }
  return back.value_or(M{});
}

TEST(StreamMessages, RoundTripWithEveryField) {
  wire::CreateStreamRequest create{"cam/0", {}};
  create.spec.slots = 9;
  create.spec.slot_bytes = 1ull << 33;
  create.spec.history = 2;
  create.spec.max_subscribers = 5;
  create.spec.overflow = Overflow::kDropOldest;
  create.spec.mode = 0640;
  create.spec.ephemeral = true;
  const auto c = round_trip(create);
  EXPECT_EQ(c.name, "cam/0");
  EXPECT_EQ(c.spec.slot_bytes, 1ull << 33);
  EXPECT_EQ(c.spec.overflow, Overflow::kDropOldest);
  EXPECT_TRUE(c.spec.ephemeral);

  const auto reply = round_trip(wire::StreamReply{stream_info()});
  EXPECT_EQ(reply.info.kind, ObjectKind::kStream);
  EXPECT_EQ(reply.info.stream.subscribers.size(), 2u);
  EXPECT_EQ(reply.info.stream.subscribers[1].position, 60u);
  EXPECT_EQ(reply.info.stream.publisher_pid, 1234u);

  const auto sub = round_trip(wire::SubscribeReply{stream_info(), 3, 77, 42});
  EXPECT_EQ(sub.index, 3u);
  EXPECT_EQ(sub.generation, 77u);
  EXPECT_EQ(sub.start_seq, 42u);
  const auto members = round_trip(wire::StreamMembersReply{{{1, 2, 3, 4}, {5, 6, 7, 8}}});
  ASSERT_EQ(members.members.size(), 2u);
  EXPECT_EQ(members.members[1], (wire::StreamMember{5, 6, 7, 8}));
  EXPECT_EQ(round_trip(wire::SubscribeRequest{"x", true, 9}).max_held, 9u);
  EXPECT_EQ(round_trip(wire::SubscriberStateRequest{"id", 4, 5}).generation, 5u);
  EXPECT_EQ(round_trip(wire::DetachRequest{"id", wire::kDetachPublisher, 0}).index,
            wire::kDetachPublisher);
  EXPECT_EQ(round_trip(wire::OpenPublisherRequest{"p"}).name, "p");
  const auto readmit = round_trip(wire::ReadmitSubscriberRequest{"id", 3, 9, 1ull << 40, 2});
  EXPECT_EQ(readmit.id, "id");
  EXPECT_EQ(readmit.index, 3u);
  EXPECT_EQ(readmit.generation, 9u);
  EXPECT_EQ(readmit.cursor, 1ull << 40);
  EXPECT_EQ(readmit.max_held, 2u);
  const auto readmitted = round_trip(wire::ReadmitSubscriberReply{4, 11});
  EXPECT_EQ(readmitted.index, 4u);
  EXPECT_EQ(readmitted.generation, 11u);
}

// --- PassedDescriptor: which frame a descriptor sent to the broker belongs to ---------------

std::vector<std::byte> readmit_frame(bool announce, std::uint64_t id = 7) {
  return wire::encode_message(wire::ReadmitSubscriberRequest{"id", 0, 1, 1, 2}, id, announce);
}

UniqueFd some_fd() { return UniqueFd(::open("/dev/null", O_RDONLY | O_CLOEXEC)); }

// Appends `bytes` to `reader` as one recvmsg that brought `fd`.
Result<void> receive(server::PassedDescriptor& passed, wire::FrameReader& reader,
                     std::span<const std::byte> bytes, UniqueFd fd) {
  const std::size_t before = reader.buffered();
  reader.append(bytes);
  return passed.arrived(std::move(fd), reader, before);
}

wire::Frame next_frame(wire::FrameReader& reader) {
  auto f = reader.next();
  EXPECT_TRUE(f && f->has_value());
  return f && f->has_value() ? std::move(**f) : wire::Frame{};
}

TEST(PassedDescriptor, GoesToTheAnnouncingReadmitFrameAfterFramesThatCarryNone) {
  server::PassedDescriptor passed;
  wire::FrameReader reader(wire::kMaxRequestBody);
  auto bytes = wire::encode_message(wire::DetachRequest{"id", 0, 1}, 6);
  const auto carrier = readmit_frame(true);
  bytes.insert(bytes.end(), carrier.begin(), carrier.end());
  ASSERT_TRUE(receive(passed, reader, bytes, some_fd()));
  auto none = passed.claim(next_frame(reader));
  ASSERT_TRUE(none);
  EXPECT_FALSE(*none);
  auto fd = passed.claim(next_frame(reader));
  ASSERT_TRUE(fd) << fd.error().message();
  EXPECT_TRUE(*fd);
}

TEST(PassedDescriptor, MayArriveBeforeTheHeaderIsComplete) {
  for (const bool announce : {true, false}) {
    server::PassedDescriptor passed;
    wire::FrameReader reader(wire::kMaxRequestBody);
    const auto frame = readmit_frame(announce);
    const std::span<const std::byte> all(frame);
    ASSERT_TRUE(receive(passed, reader, all.first(10), some_fd()));
    reader.append(all.subspan(10));
    auto fd = passed.claim(next_frame(reader));
    EXPECT_EQ(fd.has_value(), announce);
    if (fd) {
      EXPECT_TRUE(*fd);
    }
  }
}

TEST(PassedDescriptor, AnythingElseIsAProtocolError) {
  {  // with a frame of another type (even one that announces a descriptor)
    server::PassedDescriptor passed;
    wire::FrameReader reader(wire::kMaxRequestBody);
    auto ok = receive(passed, reader, wire::encode_message(wire::HelloRequest{}, 1, true),
                      some_fd());
    ASSERT_FALSE(ok);
    EXPECT_EQ(ok.error().code(), ErrorCode::kProtocolError);
  }
  {  // with a readmit frame that does not announce it
    server::PassedDescriptor passed;
    wire::FrameReader reader(wire::kMaxRequestBody);
    EXPECT_FALSE(receive(passed, reader, readmit_frame(false), some_fd()));
  }
  {  // in the middle of a frame that began in an earlier recvmsg
    server::PassedDescriptor passed;
    wire::FrameReader reader(wire::kMaxRequestBody);
    const auto frame = readmit_frame(true);
    reader.append(std::span(frame).first(30));
    EXPECT_FALSE(receive(passed, reader, std::span(frame).subspan(30), some_fd()));
  }
  {  // a frame announcing one that never came
    server::PassedDescriptor passed;
    wire::FrameReader reader(wire::kMaxRequestBody);
    reader.append(readmit_frame(true));
    EXPECT_FALSE(passed.claim(next_frame(reader)));
  }
  {  // a second one before the first was claimed
    server::PassedDescriptor passed;
    wire::FrameReader reader(wire::kMaxRequestBody);
    const auto frame = readmit_frame(true);
    ASSERT_TRUE(receive(passed, reader, std::span(frame).first(10), some_fd()));
    EXPECT_FALSE(receive(passed, reader, std::span(frame).subspan(10), some_fd()));
  }
}

TEST(StreamMessages, HostileBodiesAreProtocolErrors) {
  const std::byte garbage[] = {std::byte{0xff}, std::byte{0x01}, std::byte{0x00}, std::byte{7}};
  EXPECT_EQ(wire::decode<wire::SubscribeRequest>(garbage).error().code(),
            ErrorCode::kProtocolError);
  EXPECT_EQ(wire::decode<wire::StreamReply>({}).error().code(), ErrorCode::kProtocolError);
  // A body of another message: StreamReply needs its info.
  auto body = wire::encode_body(wire::OpenPublisherRequest{"p"});
  EXPECT_FALSE(wire::decode<wire::StreamReply>(body));
  wire::CreateStreamRequest bad{"x", {}};
  bad.spec.overflow = static_cast<Overflow>(7);
  EXPECT_EQ(wire::decode<wire::CreateStreamRequest>(wire::encode_body(bad)).error().code(),
            ErrorCode::kProtocolError);
}

}  // namespace
}  // namespace shmarray
