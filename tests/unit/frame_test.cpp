// Frame header encode/decode and the incremental FrameReader, including hostile headers: a peer
// must never make us crash or allocate what it claims.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "allocation_probe.hpp"
#include "shmarray/wire/frame.hpp"

namespace shmarray::wire {
namespace {

using ::testing::HasSubstr;

std::vector<std::byte> bytes_of(std::initializer_list<int> values) {
  std::vector<std::byte> out;
  for (int v : values) out.push_back(static_cast<std::byte>(v));
  return out;
}

std::vector<std::byte> body_of_size(std::size_t n, int seed) {
  std::vector<std::byte> out(n);
  for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<std::byte>((seed + i * 31) & 0xff);
  return out;
}

FrameHeader valid_header() {
  FrameHeader h;
  h.type = MessageType::kStatRequest;
  h.request_id = 0x0102030405060708ull;
  h.body_length = 10;
  h.flags = 0;
  return h;
}

Error decode_error(const FrameHeader& h, std::uint32_t max_body = kMaxRequestBody) {
  const auto bytes = encode_header(h);
  auto decoded = decode_header(bytes, max_body);
  if (decoded) ADD_FAILURE() << "hostile header decoded";
  return decoded ? Error(ErrorCode::kOk, "") : decoded.error();
}

TEST(FrameHeader, EncodeDecodeRoundTripsEveryField) {
  FrameHeader h;
  h.type = MessageType::kCreateReply;
  h.request_id = 0xfedcba9876543210ull;
  h.body_length = 12345;
  h.flags = kFlagHasFd;
  const auto bytes = encode_header(h);
  auto decoded = decode_header(bytes, kMaxReplyBody);
  ASSERT_TRUE(decoded.has_value()) << decoded.error().to_string();
  EXPECT_EQ(decoded->magic, kFrameMagic);
  EXPECT_EQ(decoded->version, kFrameVersion);
  EXPECT_EQ(decoded->type, MessageType::kCreateReply);
  EXPECT_EQ(decoded->request_id, 0xfedcba9876543210ull);
  EXPECT_EQ(decoded->body_length, 12345u);
  EXPECT_EQ(decoded->flags, kFlagHasFd);
}

TEST(FrameHeader, WireLayoutIsLittleEndianStartingWithShma) {
  FrameHeader h;
  h.type = MessageType::kErrorReply;  // 100
  h.request_id = 0x0102030405060708ull;
  h.body_length = 0x0a0b0c0d;
  h.flags = kFlagHasFd;
  const auto bytes = encode_header(h);
  const auto expected = bytes_of({'S', 'H', 'M', 'A', 1, 0, 100, 0, 8, 7, 6, 5, 4, 3, 2, 1,
                                  0x0d, 0x0c, 0x0b, 0x0a, 1, 0, 0, 0});
  EXPECT_EQ(std::vector<std::byte>(bytes.begin(), bytes.end()), expected);
}

TEST(FrameHeader, EveryKnownMessageTypeRoundTrips) {
  for (std::uint16_t t = 0; t < 200; ++t) {
    FrameHeader h = valid_header();
    h.type = static_cast<MessageType>(t);
    const auto bytes = encode_header(h);
    auto decoded = decode_header(bytes, kMaxRequestBody);
    EXPECT_EQ(decoded.has_value(), is_known_message_type(t)) << "type " << t;
    if (decoded) {
      EXPECT_EQ(decoded->type, h.type);
      EXPECT_NE(to_string(decoded->type), "Unknown") << "type " << t;
    }
  }
}

TEST(FrameHeader, BadMagicIsProtocolError) {
  FrameHeader h = valid_header();
  h.magic = 0x50545448;  // "HTTP"
  const Error e = decode_error(h);
  EXPECT_EQ(e.code(), ErrorCode::kProtocolError);
  EXPECT_THAT(e.message(), HasSubstr("magic"));
}

TEST(FrameHeader, WrongFrameVersionIsProtocolErrorNamingBothVersions) {
  FrameHeader h = valid_header();
  h.version = 2;
  const Error e = decode_error(h);
  EXPECT_EQ(e.code(), ErrorCode::kProtocolError);
  EXPECT_THAT(e.message(), HasSubstr("frame version 2"));
  EXPECT_THAT(e.message(), HasSubstr("speaks 1"));
}

TEST(FrameHeader, UnknownMessageTypeIsProtocolError) {
  for (std::uint16_t t : {0, 16, 59, 99, 101, 0xffff}) {
    FrameHeader h = valid_header();
    h.type = static_cast<MessageType>(t);
    const Error e = decode_error(h);
    EXPECT_EQ(e.code(), ErrorCode::kProtocolError) << "type " << t;
    EXPECT_THAT(e.message(), HasSubstr("unknown message type " + std::to_string(t)));
  }
}

TEST(FrameHeader, UnknownFlagsAreProtocolError) {
  for (std::uint32_t flags : {2u, 1u << 31, 3u, 0xffffffffu}) {
    FrameHeader h = valid_header();
    h.flags = flags;
    const Error e = decode_error(h);
    EXPECT_EQ(e.code(), ErrorCode::kProtocolError) << "flags " << flags;
    EXPECT_THAT(e.message(), HasSubstr("flags"));
  }
}

TEST(FrameHeader, BodyLengthAtTheLimitIsAcceptedAndOneMoreIsNot) {
  FrameHeader h = valid_header();
  h.body_length = kMaxRequestBody;
  const auto at = encode_header(h);
  EXPECT_TRUE(decode_header(at, kMaxRequestBody).has_value());
  h.body_length = kMaxRequestBody + 1;
  const Error e = decode_error(h);
  EXPECT_EQ(e.code(), ErrorCode::kProtocolError);
  EXPECT_THAT(e.message(), HasSubstr(std::to_string(kMaxRequestBody + 1)));
}

TEST(FrameHeader, TruncatedHeaderIsProtocolError) {
  const auto bytes = encode_header(valid_header());
  for (std::size_t n = 0; n < kFrameHeaderSize; ++n) {
    auto decoded = decode_header(std::span(bytes).first(n), kMaxRequestBody);
    ASSERT_FALSE(decoded.has_value()) << n << " bytes";
    EXPECT_EQ(decoded.error().code(), ErrorCode::kProtocolError);
  }
}

TEST(EncodeFrame, PutsHeaderThenBodyAndSetsTheFdFlag) {
  const auto body = body_of_size(33, 5);
  const auto frame = encode_frame(MessageType::kOpenReply, 77, body, /*has_fd=*/true);
  ASSERT_EQ(frame.size(), kFrameHeaderSize + body.size());
  auto h = decode_header(frame, kMaxReplyBody);
  ASSERT_TRUE(h.has_value());
  EXPECT_EQ(h->type, MessageType::kOpenReply);
  EXPECT_EQ(h->request_id, 77u);
  EXPECT_EQ(h->body_length, 33u);
  EXPECT_EQ(h->flags, kFlagHasFd);
  EXPECT_TRUE(std::equal(body.begin(), body.end(), frame.begin() + kFrameHeaderSize));
  const auto plain = encode_frame(MessageType::kOpenReply, 77, body);
  EXPECT_EQ(decode_header(plain, kMaxReplyBody)->flags, 0u);
}

TEST(AllocationProbe, SeesALargeAllocationOnThisThread) {
  // Guards the no-allocation assertions below against a probe that records nothing.
  test::AllocationProbe probe;
  std::vector<std::byte> big(std::size_t{2} << 20);
  big[12345] = std::byte{1};
  volatile auto keep = big[12345];
  (void)keep;
  EXPECT_GE(probe.largest(), std::size_t{2} << 20);
}

// --- FrameReader ------------------------------------------------------------------------------

TEST(FrameReader, EmptyReaderNeedsMoreBytes) {
  FrameReader reader(kMaxRequestBody);
  auto next = reader.next();
  ASSERT_TRUE(next.has_value());
  EXPECT_FALSE(next->has_value());
  EXPECT_EQ(reader.buffered(), 0u);
}

TEST(FrameReader, YieldsAFrameFedOneByteAtATime) {
  const auto body = body_of_size(40, 1);
  const auto frame = encode_frame(MessageType::kListRequest, 9, body);
  FrameReader reader(kMaxRequestBody);
  for (std::size_t i = 0; i + 1 < frame.size(); ++i) {
    reader.append(std::span(frame).subspan(i, 1));
    auto next = reader.next();
    ASSERT_TRUE(next.has_value()) << "after " << i + 1 << " bytes";
    ASSERT_FALSE(next->has_value()) << "frame complete after only " << i + 1 << " bytes";
    EXPECT_EQ(reader.buffered(), i + 1);
  }
  reader.append(std::span(frame).last(1));
  auto next = reader.next();
  ASSERT_TRUE(next.has_value());
  ASSERT_TRUE(next->has_value());
  EXPECT_EQ((*next)->header.type, MessageType::kListRequest);
  EXPECT_EQ((*next)->header.request_id, 9u);
  EXPECT_EQ((*next)->body, body);
  EXPECT_EQ(reader.buffered(), 0u);
}

TEST(FrameReader, YieldsManyFramesFromOneChunkInOrder) {
  std::vector<std::byte> stream;
  std::vector<std::vector<std::byte>> bodies;
  for (std::size_t i = 0; i < 50; ++i) {
    bodies.push_back(body_of_size(i * 7, static_cast<int>(i)));  // includes an empty body
    const auto f = encode_frame(MessageType::kStatRequest, i, bodies.back());
    stream.insert(stream.end(), f.begin(), f.end());
  }
  // Plus half of one more frame.
  const auto partial = encode_frame(MessageType::kStatRequest, 999, body_of_size(20, 3));
  stream.insert(stream.end(), partial.begin(), partial.begin() + 30);

  FrameReader reader(kMaxRequestBody);
  reader.append(stream);
  for (std::size_t i = 0; i < bodies.size(); ++i) {
    auto next = reader.next();
    ASSERT_TRUE(next.has_value());
    ASSERT_TRUE(next->has_value()) << "frame " << i;
    EXPECT_EQ((*next)->header.request_id, i);
    EXPECT_EQ((*next)->body, bodies[i]) << "frame " << i;
  }
  auto rest = reader.next();
  ASSERT_TRUE(rest.has_value());
  EXPECT_FALSE(rest->has_value());
  EXPECT_EQ(reader.buffered(), 30u);
  reader.append(std::span(partial).subspan(30));
  auto last = reader.next();
  ASSERT_TRUE(last.has_value());
  ASSERT_TRUE(last->has_value());
  EXPECT_EQ((*last)->header.request_id, 999u);
  EXPECT_EQ(reader.buffered(), 0u);
}

TEST(FrameReader, LongStreamInOddChunksKeepsFramesIntact) {
  // Past the reader's 64 KiB compaction threshold, in chunks that straddle frame boundaries.
  std::vector<std::byte> stream;
  constexpr std::size_t kFrames = 300;
  for (std::size_t i = 0; i < kFrames; ++i) {
    const auto f = encode_frame(MessageType::kStatRequest, i, body_of_size(500 + i, int(i)));
    stream.insert(stream.end(), f.begin(), f.end());
  }
  FrameReader reader(kMaxRequestBody);
  std::size_t seen = 0;
  for (std::size_t pos = 0; pos < stream.size(); pos += 977) {
    reader.append(std::span(stream).subspan(pos, std::min<std::size_t>(977, stream.size() - pos)));
    for (;;) {
      auto next = reader.next();
      ASSERT_TRUE(next.has_value());
      if (!next->has_value()) break;
      ASSERT_EQ((*next)->header.request_id, seen);
      ASSERT_EQ((*next)->body, body_of_size(500 + seen, int(seen)));
      ++seen;
    }
  }
  EXPECT_EQ(seen, kFrames);
  EXPECT_EQ(reader.buffered(), 0u);
}

TEST(FrameReader, TruncatedHeaderNeedsMoreBytesRatherThanFailing) {
  const auto frame = encode_frame(MessageType::kHelloRequest, 1, body_of_size(4, 0));
  FrameReader reader(kMaxRequestBody);
  reader.append(std::span(frame).first(kFrameHeaderSize - 1));
  auto next = reader.next();
  ASSERT_TRUE(next.has_value());
  EXPECT_FALSE(next->has_value());
  EXPECT_EQ(reader.buffered(), kFrameHeaderSize - 1);
}

TEST(FrameReader, HugeBodyLengthIsRejectedFromTheHeaderWithoutAllocatingIt) {
  FrameHeader h = valid_header();
  h.body_length = 0xffffffffu;  // 4 GiB - 1
  const auto header = encode_header(h);
  FrameReader reader(kMaxRequestBody);
  test::AllocationProbe probe;
  reader.append(header);
  auto next = reader.next();
  ASSERT_FALSE(next.has_value());
  EXPECT_EQ(next.error().code(), ErrorCode::kProtocolError);
  EXPECT_THAT(next.error().message(), HasSubstr("4294967295"));
  EXPECT_LT(probe.largest(), std::size_t{1} << 20);
  // The stream stays unusable: asking again repeats the error.
  auto again = reader.next();
  ASSERT_FALSE(again.has_value());
  EXPECT_EQ(again.error().code(), ErrorCode::kProtocolError);
}

TEST(FrameReader, LegalButLargeBodyLengthDoesNotAllocateBeforeTheBytesArrive) {
  FrameHeader h = valid_header();
  h.body_length = kMaxReplyBody;  // 256 MiB, within the reply limit
  FrameReader reader(kMaxReplyBody);
  test::AllocationProbe probe;
  reader.append(encode_header(h));
  reader.append(body_of_size(100, 0));
  auto next = reader.next();
  ASSERT_TRUE(next.has_value());
  EXPECT_FALSE(next->has_value());
  EXPECT_LT(probe.largest(), std::size_t{1} << 20);
}

TEST(FrameReader, HostileHeaderAfterAGoodFrameFailsOnlyAfterTheGoodOne) {
  const auto good = encode_frame(MessageType::kStatRequest, 1, body_of_size(8, 0));
  FrameHeader bad = valid_header();
  bad.magic = 0;
  const auto hostile = encode_header(bad);
  FrameReader reader(kMaxRequestBody);
  reader.append(good);
  reader.append(hostile);
  auto first = reader.next();
  ASSERT_TRUE(first.has_value());
  ASSERT_TRUE(first->has_value());
  EXPECT_EQ((*first)->header.request_id, 1u);
  auto second = reader.next();
  ASSERT_FALSE(second.has_value());
  EXPECT_EQ(second.error().code(), ErrorCode::kProtocolError);
}

TEST(FrameReader, EachHostileHeaderKindIsProtocolError) {
  std::vector<FrameHeader> hostile(4, valid_header());
  hostile[0].magic = 0xdeadbeef;
  hostile[1].version = 0;
  hostile[2].type = static_cast<MessageType>(16);
  hostile[3].flags = 0x80;
  for (std::size_t i = 0; i < hostile.size(); ++i) {
    FrameReader reader(kMaxRequestBody);
    reader.append(encode_header(hostile[i]));
    auto next = reader.next();
    ASSERT_FALSE(next.has_value()) << "case " << i;
    EXPECT_EQ(next.error().code(), ErrorCode::kProtocolError) << "case " << i;
  }
}

}  // namespace
}  // namespace shmarray::wire
