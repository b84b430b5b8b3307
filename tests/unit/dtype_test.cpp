// DType::parse: every supported typestr and plain name, the order-less forms NumPy accepts, and
// the rejections (big-endian, unknown sizes, '|' on multi-byte types, garbage).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <complex>
#include <cstdint>
#include <string>
#include <string_view>

#include "shmarray/dtype.hpp"

namespace shmarray {
namespace {

using ::testing::HasSubstr;

struct Expected {
  std::string_view text;
  char kind;
  std::size_t itemsize;
  std::string_view canonical;
  std::string_view name;
};

void expect_parses(const Expected& e) {
  SCOPED_TRACE("dtype '" + std::string(e.text) + "'");
  auto dtype = DType::parse(e.text);
  ASSERT_TRUE(dtype.has_value()) << dtype.error().to_string();
  EXPECT_EQ(dtype->kind(), e.kind);
  EXPECT_EQ(dtype->itemsize(), e.itemsize);
  EXPECT_EQ(dtype->str(), e.canonical);
  EXPECT_EQ(dtype->name(), e.name);
  // The canonical form parses back to the same dtype.
  auto again = DType::parse(dtype->str());
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(*again, *dtype);
}

// Table-driven rather than parameterised: ctest runs every gtest case as its own process.
TEST(DType, EverySupportedTypestrParsesToItsKindItemsizeAndCanonicalForm) {
  for (const Expected& e : {Expected{"<f2", 'f', 2, "<f2", "float16"},
                            Expected{"<f4", 'f', 4, "<f4", "float32"},
                            Expected{"<f8", 'f', 8, "<f8", "float64"},
                            Expected{"<i1", 'i', 1, "|i1", "int8"},
                            Expected{"<i2", 'i', 2, "<i2", "int16"},
                            Expected{"<i4", 'i', 4, "<i4", "int32"},
                            Expected{"<i8", 'i', 8, "<i8", "int64"},
                            Expected{"<u1", 'u', 1, "|u1", "uint8"},
                            Expected{"<u2", 'u', 2, "<u2", "uint16"},
                            Expected{"<u4", 'u', 4, "<u4", "uint32"},
                            Expected{"<u8", 'u', 8, "<u8", "uint64"},
                            Expected{"|b1", 'b', 1, "|b1", "bool"},
                            Expected{"<c8", 'c', 8, "<c8", "complex64"},
                            Expected{"<c16", 'c', 16, "<c16", "complex128"}}) {
    expect_parses(e);
  }
}

TEST(DType, EveryPlainNameParsesToItsCanonicalTypestr) {
  for (const Expected& e : {Expected{"float16", 'f', 2, "<f2", "float16"},
                            Expected{"float32", 'f', 4, "<f4", "float32"},
                            Expected{"float64", 'f', 8, "<f8", "float64"},
                            Expected{"int8", 'i', 1, "|i1", "int8"},
                            Expected{"int16", 'i', 2, "<i2", "int16"},
                            Expected{"int32", 'i', 4, "<i4", "int32"},
                            Expected{"int64", 'i', 8, "<i8", "int64"},
                            Expected{"uint8", 'u', 1, "|u1", "uint8"},
                            Expected{"uint16", 'u', 2, "<u2", "uint16"},
                            Expected{"uint32", 'u', 4, "<u4", "uint32"},
                            Expected{"uint64", 'u', 8, "<u8", "uint64"},
                            Expected{"bool", 'b', 1, "|b1", "bool"},
                            Expected{"complex64", 'c', 8, "<c8", "complex64"},
                            Expected{"complex128", 'c', 16, "<c16", "complex128"}}) {
    expect_parses(e);
  }
}

TEST(DType, OrderlessFormsNumpyAcceptsAreNormalised) {
  for (const Expected& e : {Expected{"f8", 'f', 8, "<f8", "float64"},
                            Expected{"=i4", 'i', 4, "<i4", "int32"},
                            Expected{"|u1", 'u', 1, "|u1", "uint8"},
                            Expected{"|i1", 'i', 1, "|i1", "int8"},
                            Expected{"=c16", 'c', 16, "<c16", "complex128"},
                            Expected{"b1", 'b', 1, "|b1", "bool"}}) {
    expect_parses(e);
  }
}

TEST(DType, UnsupportedSpellingsFailWithInvalidArgumentListingWhatIsAccepted) {
  for (std::string_view text : {"<f16", "|f8", "|i4", "x", "", "<i3", "<f", "<", "f", "<x8",
                                "<f8 ", " <f8", "<f0008", "float128", "Float64", "<U8", "<M8",
                                "O"}) {
    SCOPED_TRACE("dtype '" + std::string(text) + "'");
    auto dtype = DType::parse(text);
    EXPECT_FALSE(dtype.has_value()) << "parsed as " << dtype->str();
    if (dtype) continue;
    EXPECT_EQ(dtype.error().code(), ErrorCode::kInvalidArgument);
    EXPECT_THAT(dtype.error().message(), HasSubstr("'" + std::string(text) + "'"));
    EXPECT_THAT(dtype.error().message(), HasSubstr("<f8"));
  }
}

TEST(DType, BigEndianIsRejectedWithTheLittleEndianSuggestion) {
  auto dtype = DType::parse(">f8");
  ASSERT_FALSE(dtype.has_value());
  EXPECT_EQ(dtype.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_THAT(dtype.error().message(), HasSubstr("big-endian"));
  EXPECT_THAT(dtype.error().message(), HasSubstr("'<f8'"));
}

TEST(DType, BigEndianOfAnUnsupportedTypeIsStillRejected) {
  auto dtype = DType::parse(">i3");
  ASSERT_FALSE(dtype.has_value());
  EXPECT_EQ(dtype.error().code(), ErrorCode::kInvalidArgument);
}

TEST(DType, EqualityComparesKindAndItemsize) {
  EXPECT_EQ(*DType::parse("float64"), *DType::parse("<f8"));
  EXPECT_NE(*DType::parse("<f8"), *DType::parse("<i8"));
  EXPECT_NE(*DType::parse("<f8"), *DType::parse("<f4"));
}

template <class T>
std::string canonical_of() {
  auto dtype = DType::parse(dtype_of<T>::value);
  return dtype ? dtype->str() : "<unparsable: " + dtype.error().message() + ">";
}

TEST(DType, DtypeOfEveryElementTypeIsItsCanonicalTypestr) {
  EXPECT_EQ(dtype_of<float>::value, canonical_of<float>());
  EXPECT_EQ(dtype_of<double>::value, canonical_of<double>());
  EXPECT_EQ(dtype_of<std::int8_t>::value, canonical_of<std::int8_t>());
  EXPECT_EQ(dtype_of<std::int16_t>::value, canonical_of<std::int16_t>());
  EXPECT_EQ(dtype_of<std::int32_t>::value, canonical_of<std::int32_t>());
  EXPECT_EQ(dtype_of<std::int64_t>::value, canonical_of<std::int64_t>());
  EXPECT_EQ(dtype_of<std::uint8_t>::value, canonical_of<std::uint8_t>());
  EXPECT_EQ(dtype_of<std::uint16_t>::value, canonical_of<std::uint16_t>());
  EXPECT_EQ(dtype_of<std::uint32_t>::value, canonical_of<std::uint32_t>());
  EXPECT_EQ(dtype_of<std::uint64_t>::value, canonical_of<std::uint64_t>());
  EXPECT_EQ(dtype_of<bool>::value, canonical_of<bool>());
  EXPECT_EQ(dtype_of<std::complex<float>>::value, canonical_of<std::complex<float>>());
  EXPECT_EQ(dtype_of<std::complex<double>>::value, canonical_of<std::complex<double>>());
  EXPECT_EQ(dtype_of<const double>::value, canonical_of<double>());
}

template <class T>
void expect_itemsize_matches_sizeof() {
  auto dtype = DType::parse(dtype_of<T>::value);
  ASSERT_TRUE(dtype.has_value());
  EXPECT_EQ(dtype->itemsize(), sizeof(T)) << dtype_of<T>::value;
}

TEST(DType, DtypeOfItemsizeEqualsSizeofTheCxxType) {
  expect_itemsize_matches_sizeof<float>();
  expect_itemsize_matches_sizeof<double>();
  expect_itemsize_matches_sizeof<std::int8_t>();
  expect_itemsize_matches_sizeof<std::int16_t>();
  expect_itemsize_matches_sizeof<std::int32_t>();
  expect_itemsize_matches_sizeof<std::int64_t>();
  expect_itemsize_matches_sizeof<std::uint8_t>();
  expect_itemsize_matches_sizeof<std::uint16_t>();
  expect_itemsize_matches_sizeof<std::uint32_t>();
  expect_itemsize_matches_sizeof<std::uint64_t>();
  expect_itemsize_matches_sizeof<bool>();
  expect_itemsize_matches_sizeof<std::complex<float>>();
  expect_itemsize_matches_sizeof<std::complex<double>>();
}

}  // namespace
}  // namespace shmarray
