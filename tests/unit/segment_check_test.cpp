// The broker's judgement of a segment against its record (server/src/segment_check.hpp): what a
// restart does with grown, shrunk, scribbled and intact segments. Pure functions, no I/O.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "segment_check.hpp"

namespace shmarray::server {
namespace {

ArrayInfo recorded() {
  ArrayInfo i;
  i.name = "cam/frame";
  i.dtype = "<f8";
  i.shape = {16};
  i.strides = {8};
  i.itemsize = 8;
  i.nbytes = 128;
  i.data_offset = kHeaderBytes;
  i.segment_bytes = 2 * kHeaderBytes;
  i.id = "00112233445566778899aabbccddeeff";
  i.mode = 0640;
  return i;
}

// The header page as the broker wrote it, with `version` in its live fields.
std::vector<std::byte> page_of(const ArrayInfo& info, std::uint64_t version) {
  alignas(4096) static std::byte page[kHeaderBytes];
  std::memset(page, 0, sizeof page);
  EXPECT_TRUE(init_segment_header(page, info));
  live_fields_of(page)->version.store(version);
  return {page, page + sizeof page};
}

TEST(SegmentCheck, JudgesSizesAgainstTheRecord) {
  EXPECT_EQ(judge_size(8192, 8192), SizeState::kIntact);
  EXPECT_EQ(judge_size(8192, 1 << 20), SizeState::kGrown);
  EXPECT_EQ(judge_size(8192, 4096), SizeState::kShrunk);
  EXPECT_EQ(judge_size(8192, 0), SizeState::kShrunk);
  const std::string why = shrunk_reason("cam/frame", 8192, 0);
  EXPECT_NE(why.find("'cam/frame'"), std::string::npos) << why;
  EXPECT_NE(why.find("to 0 of its 8192 bytes"), std::string::npos) << why;
  EXPECT_NE(why.find("shmarray rm cam/frame"), std::string::npos) << why;
}

TEST(SegmentCheck, RecoveryKeepsIntactPagesAndTheirVersion) {
  const ArrayInfo info = recorded();
  const auto expected = encode_segment_header(info);
  ASSERT_TRUE(expected);
  const auto page = page_of(info, 42);
  for (std::uint64_t size : {info.segment_bytes, std::uint64_t{1} << 30}) {
    const RecoveryDecision d = decide_recovery(info, *expected, page, size);
    EXPECT_FALSE(d.restore_header);
    EXPECT_TRUE(d.damaged.empty());
    EXPECT_EQ(d.version, 42u);
    EXPECT_EQ(d.size, size == info.segment_bytes ? SizeState::kIntact : SizeState::kGrown);
  }
}

TEST(SegmentCheck, RecoveryRestoresAScribbledHeaderSayingWhatTheDecoderFound) {
  const ArrayInfo info = recorded();
  const auto expected = encode_segment_header(info);
  ASSERT_TRUE(expected);
  auto page = page_of(info, 7);
  reinterpret_cast<SegmentHeader*>(page.data())->mode = 0666;  // checksum now wrong
  RecoveryDecision d = decide_recovery(info, *expected, page, info.segment_bytes);
  EXPECT_TRUE(d.restore_header);
  EXPECT_NE(d.why_restored.find("checksum"), std::string::npos) << d.why_restored;
  EXPECT_EQ(d.version, 7u);
  // A valid header that is not the record's (a forged owner with a fixed checksum).
  auto* h = reinterpret_cast<SegmentHeader*>(page.data());
  h->checksum = segment_header_checksum(*h);
  d = decide_recovery(info, *expected, page, info.segment_bytes);
  EXPECT_TRUE(d.restore_header);
  EXPECT_NE(d.why_restored.find("disagrees"), std::string::npos) << d.why_restored;
}

TEST(SegmentCheck, RecoveryNeverWritesIntoAShrunkSegment) {
  const ArrayInfo info = recorded();
  const auto expected = encode_segment_header(info);
  ASSERT_TRUE(expected);
  const auto page = page_of(info, 3);
  for (std::size_t kept : {std::size_t{0}, std::size_t{100}, kHeaderBytes}) {
    const std::span<const std::byte> short_page(page.data(), kept);
    const RecoveryDecision d = decide_recovery(info, *expected, short_page, kept);
    EXPECT_EQ(d.size, SizeState::kShrunk);
    EXPECT_FALSE(d.restore_header);
    EXPECT_NE(d.damaged.find("truncated"), std::string::npos);
  }
}

}  // namespace
}  // namespace shmarray::server
