// compute_layout (strides, sizes, overflow and limits) and validate_name (what an array may be
// called, and what the error says when it may not).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "shmarray/types.hpp"

namespace shmarray {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr std::uint64_t kNoLimit = std::numeric_limits<std::uint64_t>::max();

ArraySpec spec_of(std::string dtype, std::vector<std::uint64_t> shape, Order order = Order::kC) {
  ArraySpec spec;
  spec.dtype = std::move(dtype);
  spec.shape = std::move(shape);
  spec.order = order;
  return spec;
}

// --- compute_layout ---------------------------------------------------------------------------

TEST(ComputeLayout, COrderStridesOf2x3x4Float64) {
  auto layout = compute_layout(spec_of("<f8", {2, 3, 4}), kNoLimit);
  ASSERT_TRUE(layout.has_value()) << layout.error().to_string();
  EXPECT_EQ(layout->dtype.str(), "<f8");
  EXPECT_THAT(layout->shape, ElementsAre(2u, 3u, 4u));
  EXPECT_THAT(layout->strides, ElementsAre(96, 32, 8));
  EXPECT_EQ(layout->nbytes, 192u);
}

TEST(ComputeLayout, FortranOrderStridesOf2x3x4Float64) {
  auto layout = compute_layout(spec_of("<f8", {2, 3, 4}, Order::kF), kNoLimit);
  ASSERT_TRUE(layout.has_value()) << layout.error().to_string();
  EXPECT_THAT(layout->strides, ElementsAre(8, 16, 48));
  EXPECT_EQ(layout->nbytes, 192u);
}

TEST(ComputeLayout, PlainDtypeNameIsNormalised) {
  auto layout = compute_layout(spec_of("uint8", {5, 7}), kNoLimit);
  ASSERT_TRUE(layout.has_value());
  EXPECT_EQ(layout->dtype.str(), "|u1");
  EXPECT_THAT(layout->strides, ElementsAre(7, 1));
  EXPECT_EQ(layout->nbytes, 35u);
}

TEST(ComputeLayout, ZeroDimensionalArrayHoldsOneElement) {
  auto layout = compute_layout(spec_of("<c16", {}), kNoLimit);
  ASSERT_TRUE(layout.has_value());
  EXPECT_THAT(layout->shape, IsEmpty());
  EXPECT_THAT(layout->strides, IsEmpty());
  EXPECT_EQ(layout->nbytes, 16u);
}

TEST(ComputeLayout, ZeroSizeArrayHasNoBytesAndNumpyStrides) {
  // NumPy: np.zeros((0, 3)).strides == (24, 8); order F: (8, 8) (zero dims count as 1).
  auto c = compute_layout(spec_of("<f8", {0, 3}), kNoLimit);
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->nbytes, 0u);
  EXPECT_THAT(c->strides, ElementsAre(24, 8));
  auto f = compute_layout(spec_of("<f8", {0, 3}, Order::kF), kNoLimit);
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ(f->nbytes, 0u);
  EXPECT_THAT(f->strides, ElementsAre(8, 8));
  auto inner = compute_layout(spec_of("<i4", {4, 0, 2}), kNoLimit);
  ASSERT_TRUE(inner.has_value());
  EXPECT_EQ(inner->nbytes, 0u);
  EXPECT_THAT(inner->strides, ElementsAre(8, 8, 4));
}

TEST(ComputeLayout, ThirtyTwoDimensionsAreAccepted) {
  auto layout = compute_layout(spec_of("<f4", std::vector<std::uint64_t>(kMaxNdim, 2)), kNoLimit);
  ASSERT_TRUE(layout.has_value()) << layout.error().to_string();
  EXPECT_EQ(layout->nbytes, std::uint64_t{4} << 32);
  EXPECT_EQ(layout->strides.front(), std::int64_t{4} << 31);
  EXPECT_EQ(layout->strides.back(), 4);
}

TEST(ComputeLayout, MoreThanThirtyTwoDimensionsFailWithInvalidArgument) {
  auto layout = compute_layout(spec_of("<f8", std::vector<std::uint64_t>(kMaxNdim + 1, 1)),
                               kNoLimit);
  ASSERT_FALSE(layout.has_value());
  EXPECT_EQ(layout.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_THAT(layout.error().message(), HasSubstr("33 dimensions"));
}

TEST(ComputeLayout, OverflowingShapeProductFailsWithInvalidArgument) {
  auto layout = compute_layout(spec_of("<f8", {1ull << 40, 1ull << 40}), kNoLimit);
  ASSERT_FALSE(layout.has_value());
  EXPECT_EQ(layout.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_THAT(layout.error().message(), HasSubstr("too large"));
}

TEST(ComputeLayout, OverflowOnlyThroughItemsizeIsCaught) {
  // 2^61 elements fit in 63 bits, x 8 bytes does not.
  auto layout = compute_layout(spec_of("<f8", {1ull << 61}), kNoLimit);
  ASSERT_FALSE(layout.has_value());
  EXPECT_EQ(layout.error().code(), ErrorCode::kInvalidArgument);
  // Just below: 2^59 x 8 = 2^62 is representable.
  auto fits = compute_layout(spec_of("<f8", {1ull << 59}), kNoLimit);
  ASSERT_TRUE(fits.has_value());
  EXPECT_EQ(fits->nbytes, 1ull << 62);
}

TEST(ComputeLayout, ZeroDimensionDoesNotExcuseHugeOtherDimensions) {
  // The product is 0, but the strides would overflow int64.
  auto layout = compute_layout(spec_of("<f8", {0, 1ull << 62, 1ull << 62}), kNoLimit);
  ASSERT_FALSE(layout.has_value());
  EXPECT_EQ(layout.error().code(), ErrorCode::kInvalidArgument);
  auto last = compute_layout(spec_of("<u1", {1ull << 62, 1ull << 62, 0}), kNoLimit);
  ASSERT_FALSE(last.has_value());
  EXPECT_EQ(last.error().code(), ErrorCode::kInvalidArgument);
}

TEST(ComputeLayout, NbytesAboveMaxBytesFailsWithResourceExhausted) {
  auto layout = compute_layout(spec_of("<f8", {1000}), 7999);
  ASSERT_FALSE(layout.has_value());
  EXPECT_EQ(layout.error().code(), ErrorCode::kResourceExhausted);
  EXPECT_THAT(layout.error().message(), HasSubstr("8000"));
  EXPECT_THAT(layout.error().message(), HasSubstr("--max-bytes"));
}

TEST(ComputeLayout, NbytesEqualToMaxBytesIsAccepted) {
  auto layout = compute_layout(spec_of("<f8", {1000}), 8000);
  ASSERT_TRUE(layout.has_value());
  EXPECT_EQ(layout->nbytes, 8000u);
}

TEST(ComputeLayout, BadDtypeFailsWithInvalidArgument) {
  auto layout = compute_layout(spec_of("O", {2}), kNoLimit);
  ASSERT_FALSE(layout.has_value());
  EXPECT_EQ(layout.error().code(), ErrorCode::kInvalidArgument);
}

TEST(ComputeLayout, OutOfRangeOrderFailsWithInvalidArgument) {
  auto layout = compute_layout(spec_of("<f8", {2}, static_cast<Order>(7)), kNoLimit);
  ASSERT_FALSE(layout.has_value());
  EXPECT_EQ(layout.error().code(), ErrorCode::kInvalidArgument);
}

// --- validate_name ----------------------------------------------------------------------------

// Table-driven rather than parameterised: ctest runs every gtest case as its own process.
TEST(ValidateName, AcceptsNamesOfTheAllowedCharactersAndComponents) {
  for (const std::string& name : {std::string("a"), std::string("cam/0/frame"),
                                  std::string("x.y:z-1_2"), std::string("A-Z.09"),
                                  std::string("a."), std::string(".a"), std::string("..."),
                                  std::string("a/..b"), std::string(kMaxNameLength, 'n')}) {
    auto ok = validate_name(name);
    EXPECT_TRUE(ok.has_value()) << "'" << name << "': " << ok.error().to_string();
  }
}

struct BadName {
  std::string name;
  std::string message_part;  // what the error must say
};

TEST(ValidateName, RejectsBadNamesWithAMessageNamingTheProblem) {
  for (const BadName& bad :
       {BadName{"", "empty"},
        BadName{std::string(kMaxNameLength + 1, 'n'), "256 bytes"},
        BadName{"/abs", "starts with '/'"},
        BadName{"a/../b", "'..' component"},
        BadName{"..", "'..' component"},
        BadName{".", "'.' component"},
        BadName{"a/./b", "'.' component"},
        BadName{"a//b", "empty component"},
        BadName{"a/", "empty component"},
        BadName{"a b", "byte 0x20 at position 1"},
        BadName{"\n", "byte 0x0a at position 0"},
        BadName{"\x01", "byte 0x01 at position 0"},
        BadName{"ab\xc3\xa9", "byte 0xc3 at position 2"},
        BadName{"a\\b", "'\\' at position 1"},
        BadName{std::string("a\0b", 3), "byte 0x00 at position 1"},
        BadName{"a*", "'*' at position 1"}}) {
    SCOPED_TRACE("name of " + std::to_string(bad.name.size()) + " bytes, expecting '" +
                 bad.message_part + "'");
    auto ok = validate_name(bad.name);
    EXPECT_FALSE(ok.has_value());
    if (ok) continue;
    EXPECT_EQ(ok.error().code(), ErrorCode::kInvalidArgument);
    EXPECT_THAT(ok.error().message(), HasSubstr(bad.message_part));
  }
}

}  // namespace
}  // namespace shmarray
