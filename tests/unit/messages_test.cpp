// Every message of the protocol round-trips encode_message -> a real AF_UNIX socketpair ->
// FrameReader -> decode<M> with every field intact; a reply can carry a real descriptor; and
// decoders given hostile bodies (garbage, every truncation, empty, another message's body, bad
// enum values) return kProtocolError instead of trusting them.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <fcntl.h>
#include <sys/stat.h>

#include <cstdint>
#include <limits>
#include <random>
#include <thread>
#include <vector>

#include "shmarray/wire/fd_passing.hpp"
#include "shmarray/wire/messages.hpp"
#include "unit_support.hpp"

namespace shmarray::wire {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;

// --- samples: every field set to a distinctive, non-default value ---------------------------

ArrayInfo full_info(int variant = 0) {
  ArrayInfo i;
  i.name = "cam/" + std::to_string(variant) + "/frame";
  i.dtype = "<c16";
  i.shape = {2, 3, 0, 5};
  i.strides = {-240, 80, 16, std::numeric_limits<std::int64_t>::min()};
  i.order = Order::kF;
  i.itemsize = 16;
  i.nbytes = (1ull << 40) + 5 + static_cast<std::uint64_t>(variant);
  i.data_offset = 4096;
  i.segment_bytes = (1ull << 41) + 4096;
  i.id = "0123456789abcdef0123456789abcdef";
  i.owner_uid = 4'000'000'000u;
  i.owner_gid = 4'000'000'001u;
  i.mode = 0640;
  i.created_unix_ns = -1'234'567'890'123'456'789;
  i.open_handles = 7;
  i.version = std::numeric_limits<std::uint64_t>::max() - 1;
  i.ephemeral = true;
  if (variant % 2 == 1) i.damaged = "segment truncated by a writer: remove the array";
  return i;
}

void expect_same(const ArrayInfo& got, const ArrayInfo& want) {
  EXPECT_EQ(got.name, want.name);
  EXPECT_EQ(got.dtype, want.dtype);
  EXPECT_EQ(got.shape, want.shape);
  EXPECT_EQ(got.strides, want.strides);
  EXPECT_EQ(got.order, want.order);
  EXPECT_EQ(got.itemsize, want.itemsize);
  EXPECT_EQ(got.nbytes, want.nbytes);
  EXPECT_EQ(got.data_offset, want.data_offset);
  EXPECT_EQ(got.segment_bytes, want.segment_bytes);
  EXPECT_EQ(got.id, want.id);
  EXPECT_EQ(got.owner_uid, want.owner_uid);
  EXPECT_EQ(got.owner_gid, want.owner_gid);
  EXPECT_EQ(got.mode, want.mode);
  EXPECT_EQ(got.created_unix_ns, want.created_unix_ns);
  EXPECT_EQ(got.open_handles, want.open_handles);
  EXPECT_EQ(got.version, want.version);
  EXPECT_EQ(got.ephemeral, want.ephemeral);
  EXPECT_EQ(got.damaged, want.damaged);
}

template <class M>
M sample();

template <>
HelloRequest sample<HelloRequest>() {
  return HelloRequest{3, 9, "pytest-client/1.0 \xc3\xa9"};
}
template <>
HelloReply sample<HelloReply>() {
  return HelloReply{4, 4'000'000'123u, "shmarrayd 0.1.0", 1ull << 45};
}
template <>
CreateRequest sample<CreateRequest>() {
  CreateRequest m;
  m.name = "sensors/imu:0";
  m.spec.dtype = "float32";
  m.spec.shape = {1ull << 33, 0, 7};
  m.spec.order = Order::kF;
  m.spec.mode = 0664;
  m.spec.ephemeral = true;
  return m;
}
template <>
CreateReply sample<CreateReply>() {
  return CreateReply{full_info()};
}
template <>
OpenRequest sample<OpenRequest>() {
  return OpenRequest{"a/b", Access::kReadWrite, 4'000'000'000u};
}
template <>
OpenReply sample<OpenReply>() {
  return OpenReply{full_info(1), Access::kReadWrite};
}
template <>
RemoveRequest sample<RemoveRequest>() {
  return RemoveRequest{"to/remove"};
}
template <>
RemoveReply sample<RemoveReply>() {
  return RemoveReply{};
}
template <>
ListRequest sample<ListRequest>() {
  return ListRequest{"cam/", "cam/0417", 500};
}
template <>
ListReply sample<ListReply>() {
  return ListReply{{full_info(1), full_info(2), full_info(3)}, "cam/0999"};
}
template <>
StatRequest sample<StatRequest>() {
  return StatRequest{"stat/me"};
}
template <>
StatReply sample<StatReply>() {
  return StatReply{full_info(4)};
}
template <>
ChmodRequest sample<ChmodRequest>() {
  return ChmodRequest{"chmod/me", 0604};
}
template <>
ChmodReply sample<ChmodReply>() {
  return ChmodReply{};
}
template <>
CloseRequest sample<CloseRequest>() {
  return CloseRequest{"fedcba9876543210fedcba9876543210"};
}
template <>
CloseReply sample<CloseReply>() {
  return CloseReply{};
}
template <>
WatchRequest sample<WatchRequest>() {
  return WatchRequest{"watched/"};
}
template <>
WatchReply sample<WatchReply>() {
  return WatchReply{};
}
template <>
Event sample<Event>() {
  return Event{EventKind::kRemoved, "watched/x", full_info(5)};
}
template <>
ErrorReply sample<ErrorReply>() {
  return ErrorReply{ErrorCode::kCancelled, "no array named 'x': create it first"};
}

void expect_same(const HelloRequest& g, const HelloRequest& w) {
  EXPECT_EQ(g.min_version, w.min_version);
  EXPECT_EQ(g.max_version, w.max_version);
  EXPECT_EQ(g.client_name, w.client_name);
}
void expect_same(const HelloReply& g, const HelloReply& w) {
  EXPECT_EQ(g.version, w.version);
  EXPECT_EQ(g.broker_pid, w.broker_pid);
  EXPECT_EQ(g.broker_version, w.broker_version);
  EXPECT_EQ(g.max_array_bytes, w.max_array_bytes);
}
void expect_same(const CreateRequest& g, const CreateRequest& w) {
  EXPECT_EQ(g.name, w.name);
  EXPECT_EQ(g.spec.dtype, w.spec.dtype);
  EXPECT_EQ(g.spec.shape, w.spec.shape);
  EXPECT_EQ(g.spec.order, w.spec.order);
  EXPECT_EQ(g.spec.mode, w.spec.mode);
  EXPECT_EQ(g.spec.ephemeral, w.spec.ephemeral);
}
void expect_same(const CreateReply& g, const CreateReply& w) { expect_same(g.info, w.info); }
void expect_same(const OpenRequest& g, const OpenRequest& w) {
  EXPECT_EQ(g.name, w.name);
  EXPECT_EQ(g.access, w.access);
  EXPECT_EQ(g.wait_ms, w.wait_ms);
}
void expect_same(const OpenReply& g, const OpenReply& w) {
  expect_same(g.info, w.info);
  EXPECT_EQ(g.access, w.access);
}
void expect_same(const RemoveRequest& g, const RemoveRequest& w) { EXPECT_EQ(g.name, w.name); }
void expect_same(const RemoveReply&, const RemoveReply&) {}
void expect_same(const ListRequest& g, const ListRequest& w) {
  EXPECT_EQ(g.prefix, w.prefix);
  EXPECT_EQ(g.after, w.after);
  EXPECT_EQ(g.limit, w.limit);
}
void expect_same(const ListReply& g, const ListReply& w) {
  EXPECT_EQ(g.next_after, w.next_after);
  ASSERT_EQ(g.arrays.size(), w.arrays.size());
  for (std::size_t i = 0; i < g.arrays.size(); ++i) expect_same(g.arrays[i], w.arrays[i]);
}
void expect_same(const StatRequest& g, const StatRequest& w) { EXPECT_EQ(g.name, w.name); }
void expect_same(const StatReply& g, const StatReply& w) { expect_same(g.info, w.info); }
void expect_same(const ChmodRequest& g, const ChmodRequest& w) {
  EXPECT_EQ(g.name, w.name);
  EXPECT_EQ(g.mode, w.mode);
}
void expect_same(const ChmodReply&, const ChmodReply&) {}
void expect_same(const CloseRequest& g, const CloseRequest& w) { EXPECT_EQ(g.id, w.id); }
void expect_same(const CloseReply&, const CloseReply&) {}
void expect_same(const WatchRequest& g, const WatchRequest& w) { EXPECT_EQ(g.prefix, w.prefix); }
void expect_same(const WatchReply&, const WatchReply&) {}
void expect_same(const Event& g, const Event& w) {
  EXPECT_EQ(g.kind, w.kind);
  EXPECT_EQ(g.name, w.name);
  expect_same(g.info, w.info);
}
void expect_same(const ErrorReply& g, const ErrorReply& w) {
  EXPECT_EQ(g.code, w.code);
  EXPECT_EQ(g.message, w.message);
}

// Sends `frame` from one end of a fresh socketpair and reads one frame at the other.
Result<test::ReceivedFrame> over_socket(const std::vector<std::byte>& frame, int pass_fd = -1) {
  auto pair = test::make_socket_pair();
  if (!pair) return std::unexpected(pair.error());
  if (auto sent = send_all(pair->a.get(), frame, pass_fd, test::deadline_in(5s)); !sent) {
    return std::unexpected(sent.error());
  }
  return test::receive_frame(pair->b.get(), kMaxReplyBody, test::deadline_in(5s));
}

// --- round trips of every message -------------------------------------------------------------

template <class M>
class EveryMessage : public ::testing::Test {};

using AllMessages =
    ::testing::Types<HelloRequest, HelloReply, CreateRequest, CreateReply, OpenRequest, OpenReply,
                     RemoveRequest, RemoveReply, ListRequest, ListReply, StatRequest, StatReply,
                     ChmodRequest, ChmodReply, CloseRequest, CloseReply, WatchRequest, WatchReply,
                     Event, ErrorReply>;
class MessageNames {
 public:
  template <class M>
  static std::string GetName(int) {
    return std::string(to_string(M::kType));
  }
};
TYPED_TEST_SUITE(EveryMessage, AllMessages, MessageNames);

TYPED_TEST(EveryMessage, RoundTripsOverASocketPairWithEveryField) {
  const TypeParam original = sample<TypeParam>();
  auto received = over_socket(encode_message(original, 0x1122334455667788ull));
  ASSERT_TRUE(received.has_value()) << received.error().to_string();
  EXPECT_EQ(received->frame.header.type, TypeParam::kType);
  EXPECT_EQ(received->frame.header.request_id, 0x1122334455667788ull);
  EXPECT_EQ(received->frame.header.flags, 0u);
  EXPECT_TRUE(received->fds.empty());
  auto decoded = decode<TypeParam>(received->frame.body);
  ASSERT_TRUE(decoded.has_value()) << decoded.error().to_string();
  expect_same(*decoded, original);
}

TYPED_TEST(EveryMessage, DefaultConstructedMessageRoundTrips) {
  const TypeParam original{};
  const auto body = encode_body(original);
  auto decoded = decode<TypeParam>(body);
  ASSERT_TRUE(decoded.has_value()) << decoded.error().to_string();
  expect_same(*decoded, original);
}

TYPED_TEST(EveryMessage, EmptyOrGarbageBodyIsProtocolError) {
  auto empty = decode<TypeParam>(std::span<const std::byte>());
  ASSERT_FALSE(empty.has_value());
  EXPECT_EQ(empty.error().code(), ErrorCode::kProtocolError);
  EXPECT_THAT(empty.error().message(), HasSubstr(std::string(to_string(TypeParam::kType))));

  const std::vector<std::vector<std::byte>> garbage = {
      std::vector<std::byte>(1, std::byte{0x41}),
      std::vector<std::byte>(3, std::byte{0xff}),
      std::vector<std::byte>(64, std::byte{0xff}),
      std::vector<std::byte>(4096, std::byte{0x7f}),
  };
  for (const auto& body : garbage) {
    auto decoded = decode<TypeParam>(body);
    EXPECT_FALSE(decoded.has_value()) << body.size() << " garbage bytes decoded";
    if (!decoded) {
      EXPECT_EQ(decoded.error().code(), ErrorCode::kProtocolError);
    }
  }
}

TYPED_TEST(EveryMessage, RandomBodiesNeverCrashTheDecoder) {
  // Decoding must return (error or message) for arbitrary input; run under ASan/UBSan.
  std::mt19937 rng(1234);
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_int_distribution<std::size_t> size(0, 300);
  int decoded_ok = 0;
  for (int round = 0; round < 300; ++round) {
    std::vector<std::byte> body(size(rng));
    for (auto& b : body) b = static_cast<std::byte>(byte(rng));
    auto decoded = decode<TypeParam>(body);
    if (decoded) {
      ++decoded_ok;
    } else {
      EXPECT_EQ(decoded.error().code(), ErrorCode::kProtocolError);
    }
  }
  EXPECT_LT(decoded_ok, 300);
}

TYPED_TEST(EveryMessage, EveryTruncationOfAValidBodyIsAnErrorOrAValidMessage) {
  const auto body = encode_body(sample<TypeParam>());
  ASSERT_GT(body.size(), 0u);
  std::size_t errors = 0;
  for (std::size_t n = 0; n < body.size(); ++n) {
    // A fresh, exactly-sized heap copy so that ASan sees any read past the prefix.
    const std::vector<std::byte> prefix(body.begin(), body.begin() + static_cast<long>(n));
    auto decoded = decode<TypeParam>(prefix);
    if (!decoded) {
      EXPECT_EQ(decoded.error().code(), ErrorCode::kProtocolError) << n << " bytes";
      ++errors;
    }
  }
  // At the very least every prefix too short for the root offset fails.
  EXPECT_GE(errors, std::min<std::size_t>(body.size(), 4));
}

TYPED_TEST(EveryMessage, SingleBitFlipAnywhereIsAnErrorOrAMessage) {
  // Single-bit corruption anywhere in a valid body: error or a message, never a crash.
  auto body = encode_body(sample<TypeParam>());
  for (std::size_t i = 0; i < body.size(); ++i) {
    for (int bit : {0, 7}) {
      auto corrupt = body;
      corrupt[i] ^= static_cast<std::byte>(1 << bit);
      auto decoded = decode<TypeParam>(corrupt);
      if (!decoded) {
        EXPECT_EQ(decoded.error().code(), ErrorCode::kProtocolError);
      }
    }
  }
}

TEST(Messages, RepliesEncodedFromARecordAreTheBytesOfTheReplyStruct) {
  // encode_open_reply / encode_create_reply (the broker's, without a copy of the info) must be
  // byte for byte what encode_message makes of the struct with open_handles and version set.
  const ArrayInfo record = full_info(3);
  ArrayInfo described = record;
  described.open_handles = 7;
  described.version = 123'456'789'000ull;
  EXPECT_EQ(encode_open_reply(record, 7, 123'456'789'000ull, Access::kReadOnly, 41, true),
            encode_message(OpenReply{described, Access::kReadOnly}, 41, true));
  EXPECT_EQ(encode_open_reply(record, 7, 123'456'789'000ull, Access::kReadWrite, 42, false),
            encode_message(OpenReply{described, Access::kReadWrite}, 42, false));
  EXPECT_EQ(encode_create_reply(record, 7, 123'456'789'000ull, 43, true),
            encode_message(CreateReply{described}, 43, true));
  // And encode_message is encode_frame of encode_body.
  EXPECT_EQ(encode_message(OpenReply{described, Access::kReadOnly}, 44, true),
            encode_frame(MessageType::kOpenReply, 44,
                         encode_body(OpenReply{described, Access::kReadOnly}), true));
}

// --- a reply carrying a descriptor ------------------------------------------------------------

TEST(Messages, CreateReplyCarriesARealDescriptorToTheSameFile) {
  const int baseline = test::open_fd_count();
  {
    auto memfd = test::make_memfd(8192);
    ASSERT_TRUE(memfd.has_value()) << memfd.error().to_string();
    const CreateReply reply = sample<CreateReply>();
    auto received =
        over_socket(encode_message(reply, 31, /*has_fd=*/true), /*pass_fd=*/memfd->get());
    ASSERT_TRUE(received.has_value()) << received.error().to_string();
    EXPECT_EQ(received->frame.header.flags & kFlagHasFd, kFlagHasFd);
    ASSERT_EQ(received->fds.size(), 1u);
    const int got = received->fds[0].get();
    EXPECT_NE(got, memfd->get());
    struct stat sent_st{}, got_st{};
    ASSERT_EQ(::fstat(memfd->get(), &sent_st), 0);
    ASSERT_EQ(::fstat(got, &got_st), 0);
    EXPECT_EQ(got_st.st_ino, sent_st.st_ino);
    EXPECT_EQ(got_st.st_dev, sent_st.st_dev);
    EXPECT_EQ(got_st.st_size, 8192);
    EXPECT_NE(::fcntl(got, F_GETFD) & FD_CLOEXEC, 0) << "received without MSG_CMSG_CLOEXEC";
    auto decoded = decode<CreateReply>(received->frame.body);
    ASSERT_TRUE(decoded.has_value());
    expect_same(decoded->info, reply.info);
  }
  EXPECT_EQ(test::open_fd_count(), baseline);
}

TEST(Messages, LargeListReplySurvivesPartialWritesAndReads) {
  // Bigger than a socket buffer: send_all must block on writability and the reader reassemble.
  ListReply big;
  for (int i = 0; i < 3000; ++i) big.arrays.push_back(full_info(i));
  const auto frame = encode_message(big, 8);
  ASSERT_GT(frame.size(), 512u * 1024);
  auto pair = test::make_socket_pair();
  ASSERT_TRUE(pair.has_value());
  Result<void> sent;
  std::thread sender([&] { sent = send_all(pair->a.get(), frame, -1, test::deadline_in(10s)); });
  auto received = test::receive_frame(pair->b.get(), kMaxReplyBody, test::deadline_in(10s));
  sender.join();
  ASSERT_TRUE(sent.has_value()) << sent.error().to_string();
  ASSERT_TRUE(received.has_value()) << received.error().to_string();
  auto decoded = decode<ListReply>(received->frame.body);
  ASSERT_TRUE(decoded.has_value()) << decoded.error().to_string();
  ASSERT_EQ(decoded->arrays.size(), 3000u);
  expect_same(decoded->arrays.front(), full_info(0));
  expect_same(decoded->arrays.back(), full_info(2999));
}

// --- hostile bodies that pass the verifier ----------------------------------------------------

TEST(Messages, BodyOfAMessageWithoutArrayInfoIsRejectedByInfoCarryingDecoders) {
  const auto body = encode_body(RemoveReply{});
  auto create = decode<CreateReply>(body);
  ASSERT_FALSE(create.has_value());
  EXPECT_EQ(create.error().code(), ErrorCode::kProtocolError);
  EXPECT_THAT(create.error().message(), HasSubstr("array info"));
  auto open = decode<OpenReply>(body);
  ASSERT_FALSE(open.has_value());
  EXPECT_EQ(open.error().code(), ErrorCode::kProtocolError);
  auto stat = decode<StatReply>(body);
  ASSERT_FALSE(stat.has_value());
  EXPECT_EQ(stat.error().code(), ErrorCode::kProtocolError);
}

TEST(Messages, EventDecoderRejectsABodyOfAnotherTypeByItsKind) {
  auto decoded = decode<Event>(encode_body(WatchReply{}));
  ASSERT_FALSE(decoded.has_value());
  EXPECT_EQ(decoded.error().code(), ErrorCode::kProtocolError);
}

TEST(Messages, OpenRequestDecoderRejectsAChmodRequestBody) {
  // ChmodRequest's mode (0640) lands in OpenRequest's access slot: not a valid Access.
  auto decoded = decode<OpenRequest>(encode_body(ChmodRequest{"x", 0640}));
  ASSERT_FALSE(decoded.has_value());
  EXPECT_EQ(decoded.error().code(), ErrorCode::kProtocolError);
}

TEST(Messages, OutOfRangeAccessIsProtocolError) {
  OpenRequest request = sample<OpenRequest>();
  request.access = static_cast<Access>(2);
  auto decoded_request = decode<OpenRequest>(encode_body(request));
  ASSERT_FALSE(decoded_request.has_value());
  EXPECT_EQ(decoded_request.error().code(), ErrorCode::kProtocolError);

  OpenReply reply = sample<OpenReply>();
  reply.access = static_cast<Access>(255);
  auto decoded_reply = decode<OpenReply>(encode_body(reply));
  ASSERT_FALSE(decoded_reply.has_value());
  EXPECT_EQ(decoded_reply.error().code(), ErrorCode::kProtocolError);
}

TEST(Messages, OutOfRangeOrderIsProtocolError) {
  CreateRequest request = sample<CreateRequest>();
  request.spec.order = static_cast<Order>(2);
  auto decoded_request = decode<CreateRequest>(encode_body(request));
  ASSERT_FALSE(decoded_request.has_value());
  EXPECT_EQ(decoded_request.error().code(), ErrorCode::kProtocolError);

  StatReply reply = sample<StatReply>();
  reply.info.order = static_cast<Order>(9);
  auto decoded_reply = decode<StatReply>(encode_body(reply));
  ASSERT_FALSE(decoded_reply.has_value());
  EXPECT_EQ(decoded_reply.error().code(), ErrorCode::kProtocolError);

  ListReply list = sample<ListReply>();
  list.arrays[2].order = static_cast<Order>(2);
  auto decoded_list = decode<ListReply>(encode_body(list));
  ASSERT_FALSE(decoded_list.has_value());
  EXPECT_EQ(decoded_list.error().code(), ErrorCode::kProtocolError);
}

TEST(Messages, OutOfRangeEventKindIsProtocolError) {
  for (int kind : {0, 3, 255}) {
    Event event = sample<Event>();
    event.kind = static_cast<EventKind>(kind);
    auto decoded = decode<Event>(encode_body(event));
    ASSERT_FALSE(decoded.has_value()) << "kind " << kind;
    EXPECT_EQ(decoded.error().code(), ErrorCode::kProtocolError);
  }
}

TEST(Messages, EveryKnownErrorCodeRoundTrips) {
  for (std::uint16_t c = 0; c <= static_cast<std::uint16_t>(ErrorCode::kDataLoss); ++c) {
    auto decoded = decode<ErrorReply>(encode_body(ErrorReply{static_cast<ErrorCode>(c), "m"}));
    ASSERT_TRUE(decoded.has_value());
    EXPECT_EQ(static_cast<std::uint16_t>(decoded->code), c);
  }
}

TEST(Messages, ErrorReplyWithOutOfRangeCodeDecodesAsInternal) {
  for (std::uint16_t c : {13, 100, 0xffff}) {
    auto decoded =
        decode<ErrorReply>(encode_body(ErrorReply{static_cast<ErrorCode>(c), "from the future"}));
    ASSERT_TRUE(decoded.has_value()) << "code " << c;
    EXPECT_EQ(decoded->code, ErrorCode::kInternal) << "code " << c;
    EXPECT_EQ(decoded->message, "from the future");
  }
}

}  // namespace
}  // namespace shmarray::wire
