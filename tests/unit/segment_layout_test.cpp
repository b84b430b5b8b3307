// The segment header page: init_segment_header + read_segment_header round-trip every field, and
// read_segment_header refuses every kind of corruption with kProtocolError (it is what a client
// or a restarted broker trusts before touching the data). Also segment sizes and array ids.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstddef>
#include <cstring>
#include <algorithm>
#include <string>
#include <limits>
#include <memory>
#include <set>

#include "shmarray/segment_layout.hpp"
#include "shmarray/sync/write_lock.hpp"
#include "unit_support.hpp"

namespace shmarray {
namespace {

using ::testing::HasSubstr;
using ::testing::MatchesRegex;

constexpr std::size_t kSegmentBytes = 8192;

struct alignas(4096) SegmentBuffer {
  std::array<std::byte, kSegmentBytes> bytes;
};

ArrayInfo sample_info() { return test::sample_array_info(); }

// FNV-1a 64 of the header up to its checksum, as documented in segment_layout.hpp.
void reseal(SegmentHeader* h) {
  const auto* p = reinterpret_cast<const unsigned char*>(h);
  std::uint64_t hash = 0xcbf29ce484222325ull;
  for (std::size_t i = 0; i < offsetof(SegmentHeader, checksum); ++i) {
    hash ^= p[i];
    hash *= 0x100000001b3ull;
  }
  h->checksum = hash;
}

class SegmentHeaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    buffer_ = std::make_unique<SegmentBuffer>();  // value-initialised: zero-filled
    auto ok = init_segment_header(segment(), sample_info());
    ASSERT_TRUE(ok.has_value()) << ok.error().to_string();
  }
  std::span<std::byte> segment() { return buffer_->bytes; }
  SegmentHeader* header() { return reinterpret_cast<SegmentHeader*>(buffer_->bytes.data()); }

  // Reads the header and expects kProtocolError mentioning `what`.
  void expect_corrupt(std::string_view what, std::size_t length = kSegmentBytes) {
    auto info = read_segment_header(segment().first(length));
    ASSERT_FALSE(info.has_value()) << "corrupt header accepted";
    EXPECT_EQ(info.error().code(), ErrorCode::kProtocolError);
    EXPECT_THAT(info.error().message(), HasSubstr(std::string(what)));
    // A client's check of the same header against the metadata it was written from refuses it
    // too (with this message, or as not matching the metadata).
    auto checked = check_segment_header(*header(), sample_info(), length);
    ASSERT_FALSE(checked.has_value()) << "corrupt header passed the client's check";
    EXPECT_EQ(checked.error().code(), ErrorCode::kProtocolError);
  }

  std::unique_ptr<SegmentBuffer> buffer_;
};

TEST_F(SegmentHeaderTest, ReadReturnsEveryFieldThatInitWrote) {
  auto info = read_segment_header(segment());
  ASSERT_TRUE(info.has_value()) << info.error().to_string();
  const ArrayInfo want = sample_info();
  EXPECT_EQ(info->name, want.name);
  EXPECT_EQ(info->dtype, want.dtype);
  EXPECT_EQ(info->shape, want.shape);
  EXPECT_EQ(info->strides, want.strides);
  EXPECT_EQ(info->order, want.order);
  EXPECT_EQ(info->itemsize, want.itemsize);
  EXPECT_EQ(info->nbytes, want.nbytes);
  EXPECT_EQ(info->data_offset, want.data_offset);
  EXPECT_EQ(info->segment_bytes, want.segment_bytes);
  EXPECT_EQ(info->id, want.id);
  EXPECT_EQ(info->owner_uid, want.owner_uid);
  EXPECT_EQ(info->owner_gid, want.owner_gid);
  EXPECT_EQ(info->mode, want.mode);
  EXPECT_EQ(info->created_unix_ns, want.created_unix_ns);
  EXPECT_EQ(info->ephemeral, want.ephemeral);
  EXPECT_EQ(info->open_handles, 0u);
  EXPECT_EQ(info->version, 0u);
}

TEST_F(SegmentHeaderTest, InitInitialisesTheLiveFields) {
  LiveFields* live = live_fields_of(buffer_->bytes.data());
  live->version.store(41);
  auto info = read_segment_header(segment());
  ASSERT_TRUE(info.has_value());
  EXPECT_EQ(info->version, 41u);  // read from the live fields, not the checksummed header
  EXPECT_EQ(live->write_seq.load(), 0u);
  EXPECT_EQ(live->flags.load(), 0u);
  EXPECT_EQ(live->lock_word.load(), 0u) << "the write lock starts free";
  auto lock = WriteLock::try_acquire(*live);
  ASSERT_TRUE(lock.has_value()) << lock.error().to_string();
  EXPECT_FALSE(lock->previous_owner_died());
  EXPECT_TRUE(lock->unlock().has_value());
}

TEST_F(SegmentHeaderTest, MagicIsTheFirstEightBytes) {
  EXPECT_EQ(std::memcmp(buffer_->bytes.data(), "SHMARRAY", 8), 0);
}

TEST_F(SegmentHeaderTest, BadMagicIsRejected) {
  header()->magic[0] = 'X';
  reseal(header());
  expect_corrupt("bad magic");
}

TEST_F(SegmentHeaderTest, FlippedByteIsACheckSumMismatch) {
  header()->name[3] ^= 0x01;  // "cam/" -> "cam." : still a valid name
  expect_corrupt("checksum mismatch");
}

TEST_F(SegmentHeaderTest, FlippedByteAnywhereInTheHeaderIsRejected) {
  const auto* pristine = reinterpret_cast<const unsigned char*>(header());
  std::array<unsigned char, sizeof(SegmentHeader)> copy;
  std::memcpy(copy.data(), pristine, copy.size());
  for (std::size_t i = 0; i < sizeof(SegmentHeader); ++i) {
    buffer_->bytes[i] ^= std::byte{0x20};
    auto info = read_segment_header(segment());
    EXPECT_FALSE(info.has_value()) << "flip at byte " << i << " accepted";
    if (!info) {
      EXPECT_EQ(info.error().code(), ErrorCode::kProtocolError);
    }
    buffer_->bytes[i] ^= std::byte{0x20};
  }
  EXPECT_EQ(std::memcmp(copy.data(), pristine, copy.size()), 0);
}

TEST_F(SegmentHeaderTest, ChecksumFieldItselfCorruptIsRejected) {
  header()->checksum ^= 1;
  expect_corrupt("checksum mismatch");
}

TEST_F(SegmentHeaderTest, OtherLayoutVersionIsRejectedNamingIt) {
  header()->layout_version = kLayoutVersion + 1;
  reseal(header());
  expect_corrupt("layout version 4");
}

// Version 1 and 2 segments (8-byte dtype; version 1 also a glibc robust mutex in the live fields)
// are adoptable by a broker, which rewrites their header, but a client must not use a segment
// whose header its code does not write.
TEST_F(SegmentHeaderTest, LayoutVersionsOneAndTwoDecodeForTheBrokerButNotForAClient) {
  for (std::uint32_t version : {1u, 2u}) {
    SCOPED_TRACE(version);
    const LegacySegmentHeader old = test::legacy_header(sample_info(), version);
    std::memcpy(buffer_->bytes.data(), &old, sizeof old);
    auto adopted = decode_segment_header_bytes(buffer_->bytes, kSegmentBytes);
    ASSERT_TRUE(adopted.has_value()) << adopted.error().to_string();
    EXPECT_EQ(adopted->name, sample_info().name);
    EXPECT_EQ(adopted->dtype, sample_info().dtype);
    EXPECT_EQ(adopted->shape, sample_info().shape);
    expect_corrupt("layout version " + std::to_string(version) + ", expected 3");
  }
}

TEST(SegmentHeader, StructuredDtypeOfTheLongestTextRoundTrips) {
  auto buffer = std::make_unique<SegmentBuffer>();
  ArrayInfo info = sample_info();
  std::string text = "{";
  for (int i = 0; text.size() < kMaxDTypeTextBytes - 40; ++i) {
    text += (i ? ",'f" : "'f") + std::to_string(i) + "':>f8@" + std::to_string(8 * i);
  }
  const std::size_t fields = static_cast<std::size_t>(std::count(text.begin(), text.end(), '@'));
  text += "}" + std::to_string(8 * fields);
  auto dtype = DType::parse(text);
  ASSERT_TRUE(dtype.has_value()) << dtype.error().to_string();
  info.dtype = dtype->str();
  info.itemsize = dtype->itemsize();
  info.shape = {2};
  info.strides = {static_cast<std::int64_t>(info.itemsize)};
  info.nbytes = 2 * info.itemsize;
  info.segment_bytes = 8192;
  ASSERT_TRUE(init_segment_header(buffer->bytes, info).has_value());
  auto back = read_segment_header(buffer->bytes);
  ASSERT_TRUE(back.has_value()) << back.error().to_string();
  EXPECT_EQ(back->dtype, info.dtype);
  EXPECT_EQ(back->itemsize, info.itemsize);
}

TEST_F(SegmentHeaderTest, ZeroNameLengthIsRejected) {
  header()->name_length = 0;
  reseal(header());
  expect_corrupt("field out of range");
}

TEST_F(SegmentHeaderTest, OverlongNameLengthIsRejected) {
  header()->name_length = kMaxNameLength + 1;
  reseal(header());
  expect_corrupt("field out of range");
}

TEST_F(SegmentHeaderTest, ThirtyThreeDimensionsAreRejected) {
  header()->ndim = kMaxNdim + 1;
  reseal(header());
  expect_corrupt("field out of range");
}

TEST_F(SegmentHeaderTest, OutOfRangeOrderIsRejected) {
  header()->order = 2;
  reseal(header());
  expect_corrupt("field out of range");
}

TEST_F(SegmentHeaderTest, UnterminatedDtypeIsRejected) {
  std::memset(header()->dtype, 'f', sizeof header()->dtype);
  reseal(header());
  expect_corrupt("field out of range");
}

TEST_F(SegmentHeaderTest, UnsupportedOrNonCanonicalDtypeIsRejected) {
  for (const char* dtype : {"f8", "float64", "<f12", "{'a':<f8@4}8", "{'a':<f8@0}8 "}) {
    SetUp();
    std::memset(header()->dtype, 0, sizeof header()->dtype);
    std::memcpy(header()->dtype, dtype, std::strlen(dtype));
    reseal(header());
    SCOPED_TRACE(dtype);
    expect_corrupt("bad dtype");
  }
}

TEST_F(SegmentHeaderTest, ItemsizeDisagreeingWithDtypeIsRejected) {
  header()->itemsize = 4;
  reseal(header());
  expect_corrupt("bad dtype");
}

TEST_F(SegmentHeaderTest, StridesDisagreeingWithShapeAreRejected) {
  header()->strides[0] = 8;
  header()->strides[1] = 16;  // Fortran strides on a C-order header
  reseal(header());
  expect_corrupt("disagree");
}

TEST_F(SegmentHeaderTest, NbytesDisagreeingWithShapeIsRejected) {
  header()->nbytes = 4096;
  reseal(header());
  expect_corrupt("disagree");
}

TEST_F(SegmentHeaderTest, DataOffsetOtherThanTheHeaderPageIsRejected) {
  header()->data_offset = 0;
  reseal(header());
  expect_corrupt("data offset");
}

TEST_F(SegmentHeaderTest, SegmentBytesNotMatchingTheDataSizeIsRejected) {
  header()->segment_bytes = kHeaderBytes;  // no room for the data page
  reseal(header());
  expect_corrupt("segment size disagrees");
}

TEST_F(SegmentHeaderTest, ClientCheckAcceptsOnlyTheHeaderOfItsOwnMetadata) {
  ASSERT_TRUE(check_segment_header(*header(), sample_info(), kSegmentBytes).has_value());
  const auto refused = [&](ArrayInfo expected, std::string_view what) {
    auto ok = check_segment_header(*header(), expected, kSegmentBytes);
    ASSERT_FALSE(ok.has_value()) << what;
    EXPECT_EQ(ok.error().code(), ErrorCode::kProtocolError);
    EXPECT_THAT(ok.error().message(), HasSubstr("does not match its metadata")) << what;
  };
  ArrayInfo other = sample_info();
  other.id[31] = 'd';
  refused(other, "id");
  other = sample_info();
  other.id = "0123456789ABCDEF00FF10EE20DD30CC";  // the same bytes, but not the id's spelling
  refused(other, "id spelling");
  other = sample_info();
  other.dtype = "<i8";
  refused(other, "dtype");
  other = sample_info();
  other.strides = {8, 16};
  refused(other, "strides");
  other = sample_info();
  other.shape = {3, 2};
  refused(other, "shape");
  other = sample_info();
  other.data_offset = 0;
  refused(other, "data offset");
  other = sample_info();
  other.order = Order::kF;
  refused(other, "order");
}

TEST_F(SegmentHeaderTest, ClientCheckRefusesAHeaderThatAgreesWithInconsistentMetadata) {
  // The broker's metadata is checked through the header: equal but inconsistent is refused.
  ArrayInfo bad = sample_info();
  bad.itemsize = 4;
  header()->itemsize = 4;
  reseal(header());
  auto ok = check_segment_header(*header(), bad, kSegmentBytes);
  ASSERT_FALSE(ok.has_value());
  EXPECT_THAT(ok.error().message(), HasSubstr("bad dtype"));
  SetUp();
  bad = sample_info();
  bad.strides = {8, 16};
  header()->strides[0] = 8;
  header()->strides[1] = 16;
  reseal(header());
  ok = check_segment_header(*header(), bad, kSegmentBytes);
  ASSERT_FALSE(ok.has_value());
  EXPECT_THAT(ok.error().message(), HasSubstr("disagree"));
}

TEST_F(SegmentHeaderTest, SegmentShorterThanSegmentBytesIsRejected) {
  expect_corrupt("segment size disagrees", kHeaderBytes);
  expect_corrupt("segment size disagrees", kSegmentBytes - 1);
}

TEST_F(SegmentHeaderTest, SegmentShorterThanAHeaderPageIsRejected) {
  expect_corrupt("smaller than a header page", kHeaderBytes - 1);
  expect_corrupt("smaller than a header page", 0);
}

TEST(SegmentHeader, ZeroFilledSegmentIsRejected) {
  auto buffer = std::make_unique<SegmentBuffer>();
  auto info = read_segment_header(buffer->bytes);
  ASSERT_FALSE(info.has_value());
  EXPECT_EQ(info.error().code(), ErrorCode::kProtocolError);
}

TEST(SegmentHeader, FortranZeroSizeAndZeroDimensionalArraysRoundTrip) {
  struct Case {
    std::vector<std::uint64_t> shape;
    std::vector<std::int64_t> strides;
    Order order;
    std::uint64_t nbytes;
  };
  for (const Case& c : {Case{{3, 0}, {1, 3}, Order::kF, 0}, Case{{}, {}, Order::kC, 1},
                        Case{{4, 5}, {1, 4}, Order::kF, 20}}) {
    auto buffer = std::make_unique<SegmentBuffer>();
    ArrayInfo in = sample_info();
    in.dtype = "|u1";
    in.itemsize = 1;
    in.shape = c.shape;
    in.strides = c.strides;
    in.order = c.order;
    in.nbytes = c.nbytes;
    ASSERT_TRUE(init_segment_header(buffer->bytes, in).has_value());
    auto out = read_segment_header(buffer->bytes);
    ASSERT_TRUE(out.has_value()) << out.error().to_string();
    EXPECT_EQ(out->shape, c.shape);
    EXPECT_EQ(out->strides, c.strides);
    EXPECT_EQ(out->order, c.order);
    EXPECT_EQ(out->nbytes, c.nbytes);
  }
}

TEST(SegmentHeader, InitRejectsInfoThatDoesNotFit) {
  auto buffer = std::make_unique<SegmentBuffer>();
  ArrayInfo short_id = sample_info();
  short_id.id.pop_back();
  ArrayInfo long_name = sample_info();
  long_name.name = std::string(kMaxNameLength + 1, 'n');
  ArrayInfo many_dims = sample_info();
  many_dims.shape.assign(kMaxNdim + 1, 1);
  many_dims.strides.assign(kMaxNdim + 1, 8);
  ArrayInfo long_dtype = sample_info();
  long_dtype.dtype = std::string(kMaxDTypeTextBytes + 1, 'x');
  for (const ArrayInfo& bad : {short_id, long_name, many_dims, long_dtype}) {
    auto ok = init_segment_header(buffer->bytes, bad);
    ASSERT_FALSE(ok.has_value());
    EXPECT_EQ(ok.error().code(), ErrorCode::kInternal);
  }
  auto small = init_segment_header(std::span(buffer->bytes).first(kHeaderBytes - 1), sample_info());
  ASSERT_FALSE(small.has_value());
  EXPECT_EQ(small.error().code(), ErrorCode::kInternal);
}

TEST(SegmentHeader, InitRejectsStridesThatDoNotMatchTheShape) {
  // Fewer strides than dimensions would otherwise be read past the vector's end.
  auto buffer = std::make_unique<SegmentBuffer>();
  ArrayInfo info = sample_info();
  info.strides.pop_back();
  auto ok = init_segment_header(buffer->bytes, info);
  ASSERT_FALSE(ok.has_value());
  EXPECT_EQ(ok.error().code(), ErrorCode::kInternal);
}

TEST(SegmentHeader, InitRejectsAnIdThatIsNotLowercaseHex) {
  // The id is stored as 16 bytes; anything but lowercase hex would not read back as written.
  for (const char* id : {"0123456789ABCDEF0123456789abcdef", "0123456789abcdef0123456789abcdeg",
                         "0123456789abcdef 123456789abcdef"}) {
    auto buffer = std::make_unique<SegmentBuffer>();
    ArrayInfo info = sample_info();
    info.id = id;
    auto ok = init_segment_header(buffer->bytes, info);
    ASSERT_FALSE(ok.has_value()) << "accepted id " << id;
    EXPECT_EQ(ok.error().code(), ErrorCode::kInternal);
  }
}

// --- segment_size_for -------------------------------------------------------------------------

TEST(SegmentSize, IsTheHeaderPagePlusDataRoundedUpToAPage) {
  EXPECT_EQ(segment_size_for(0).value(), 8192u);  // a zero-size array still gets a data page
  EXPECT_EQ(segment_size_for(1).value(), 8192u);
  EXPECT_EQ(segment_size_for(4096).value(), 8192u);
  EXPECT_EQ(segment_size_for(4097).value(), 12288u);
  EXPECT_EQ(segment_size_for(1ull << 30).value(), (1ull << 30) + 4096);
}

TEST(SegmentSize, LargestRepresentableSizeSucceedsAndOneMoreOverflows) {
  constexpr std::uint64_t kMax = std::numeric_limits<std::uint64_t>::max();
  auto largest = segment_size_for(kMax - 8192);
  ASSERT_TRUE(largest.has_value());
  EXPECT_EQ(*largest, kMax - 4095);  // 2^64 - 4096
  auto over = segment_size_for(kMax - 8191);
  ASSERT_FALSE(over.has_value());
  EXPECT_EQ(over.error().code(), ErrorCode::kResourceExhausted);
  auto max = segment_size_for(kMax);
  ASSERT_FALSE(max.has_value());
  EXPECT_EQ(max.error().code(), ErrorCode::kResourceExhausted);
}

// --- random_array_id --------------------------------------------------------------------------

TEST(RandomArrayId, IsThirtyTwoLowercaseHexDigits) {
  auto id = random_array_id();
  ASSERT_TRUE(id.has_value()) << id.error().to_string();
  EXPECT_THAT(*id, MatchesRegex("[0-9a-f]{32}"));
}

TEST(RandomArrayId, DiffersBetweenCalls) {
  std::set<std::string> ids;
  for (int i = 0; i < 100; ++i) ids.insert(random_array_id().value());
  EXPECT_EQ(ids.size(), 100u);
}

TEST(RandomArrayId, AForkedChildDrawsOtherIdsThanItsParent) {
  // Ids come from a per-thread pool of random bytes: a child must not reuse the parent's pool.
  ASSERT_TRUE(random_array_id().has_value());  // the pool now holds bytes for further ids
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    const std::string id = random_array_id().value_or("");
    (void)!::write(fds[1], id.data(), id.size());
    ::_exit(0);
  }
  ::close(fds[1]);
  const std::string parent_id = random_array_id().value();
  char buf[64] = {};
  std::size_t got = 0;
  while (got < 32) {
    const ssize_t n = ::read(fds[0], buf + got, 32 - got);
    if (n <= 0) break;
    got += static_cast<std::size_t>(n);
  }
  ::close(fds[0]);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_EQ(got, 32u);
  EXPECT_NE(std::string(buf, 32), parent_id);
}

TEST(SegmentLayout, ChecksumMatchesByteWiseFnv1a) {
  // The checksum skips runs of zero words with one multiplication; it must equal plain FNV-1a
  // for any header bytes: zero runs of every length and position, and none at all.
  const auto reference = [](const SegmentHeader& h) {
    std::uint64_t hash = 0xcbf29ce484222325ull;
    const auto* p = reinterpret_cast<const unsigned char*>(&h);
    for (std::size_t i = 0; i < offsetof(SegmentHeader, checksum); ++i) {
      hash ^= p[i];
      hash *= 0x100000001b3ull;
    }
    return hash;
  };
  SegmentHeader h;
  auto* bytes = reinterpret_cast<unsigned char*>(&h);
  std::uint64_t state = 12345;
  const auto next = [&] {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<unsigned>(state >> 33);
  };
  for (int round = 0; round < 300; ++round) {
    std::memset(&h, 0, sizeof h);
    if (round % 3 != 0) {  // round 0, 3, ...: all zero but for a few bytes
      for (std::size_t i = 0; i < sizeof h; ++i) bytes[i] = static_cast<unsigned char>(next());
    }
    for (int run = 0; run < 8; ++run) {  // zero runs at random places, random lengths
      const std::size_t at = next() % sizeof h;
      const std::size_t len = std::min<std::size_t>(next() % 600, sizeof h - at);
      std::memset(bytes + at, round % 3 == 0 ? 0xff : 0, len);  // or non-zero runs in zeros
    }
    bytes[next() % sizeof h] = static_cast<unsigned char>(next() | 1);
    ASSERT_EQ(segment_header_checksum(h), reference(h)) << "round " << round;
  }
  std::memset(&h, 0, sizeof h);
  EXPECT_EQ(segment_header_checksum(h), reference(h));
}

TEST(RandomArrayId, RoundTripsThroughTheSegmentHeader) {
  auto buffer = std::make_unique<SegmentBuffer>();
  ArrayInfo info = sample_info();
  info.id = random_array_id().value();
  ASSERT_TRUE(init_segment_header(buffer->bytes, info).has_value());
  auto out = read_segment_header(buffer->bytes);
  ASSERT_TRUE(out.has_value());
  EXPECT_EQ(out->id, info.id);
}

}  // namespace
}  // namespace shmarray
