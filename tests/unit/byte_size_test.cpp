// The one size parser behind shmarrayd's byte options: units, fractions, and clear refusals.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <string>

#include "shmarray/byte_size.hpp"

namespace shmarray {
namespace {

using ::testing::HasSubstr;

std::uint64_t parsed(std::string_view text) {
  auto bytes = parse_byte_size(text);
  EXPECT_TRUE(bytes.has_value()) << text << ": " << bytes.error().message();
  return bytes.value_or(0);
}

TEST(ByteSize, PlainBytes) {
  EXPECT_EQ(parsed("0"), 0u);
  EXPECT_EQ(parsed("4096"), 4096u);
  EXPECT_EQ(parsed("4096B"), 4096u);
  EXPECT_EQ(parsed("18446744073709551615"), UINT64_MAX);
}

TEST(ByteSize, UnitsArePowersOf1024InEitherCase) {
  EXPECT_EQ(parsed("64K"), 64u << 10);
  EXPECT_EQ(parsed("64k"), 64u << 10);
  EXPECT_EQ(parsed("512M"), 512ull << 20);
  EXPECT_EQ(parsed("1G"), 1ull << 30);
  EXPECT_EQ(parsed("1g"), 1ull << 30);
  EXPECT_EQ(parsed("2T"), 2ull << 40);
  EXPECT_EQ(parsed("1GiB"), 1ull << 30);
  EXPECT_EQ(parsed("3mib"), 3ull << 20);
}

TEST(ByteSize, FractionsRoundDownToWholeBytes) {
  EXPECT_EQ(parsed("1.5G"), 3ull << 29);
  EXPECT_EQ(parsed("0.5K"), 512u);
  EXPECT_EQ(parsed("1.0001K"), 1024u);  // 1024.1024 bytes
  EXPECT_EQ(parsed("2.5"), 2u);
}

TEST(ByteSize, RefusesWhatIsNotASizeQuotingIt) {
  for (const std::string text : {"", "-1", "G", "1GB", "1 G", " 1G", "1G ", "1.G", ".5G", "1e9",
                                 "0x10", "1P", "12abc"}) {
    auto bytes = parse_byte_size(text);
    ASSERT_FALSE(bytes.has_value()) << "'" << text << "' parsed as " << *bytes;
    EXPECT_EQ(bytes.error().code(), ErrorCode::kInvalidArgument);
    EXPECT_THAT(bytes.error().message(), HasSubstr("bad size '" + text + "'"));
    EXPECT_THAT(bytes.error().message(), HasSubstr("512M, 1G"));
  }
}

TEST(ByteSize, RefusesMoreThan64Bits) {
  for (const std::string text : {"18446744073709551616", "16777216T", "99999999999999999999999G",
                                 "17179869184G"}) {
    auto bytes = parse_byte_size(text);
    ASSERT_FALSE(bytes.has_value()) << text;
    EXPECT_THAT(bytes.error().message(), HasSubstr("more than 2^64-1 bytes"));
  }
  EXPECT_EQ(parsed("16777215T"), 16777215ull << 40);
}

}  // namespace
}  // namespace shmarray
