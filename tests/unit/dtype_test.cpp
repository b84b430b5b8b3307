// DType::parse: every supported typestr and plain name, the order-less forms NumPy accepts, and
// the rejections (unknown sizes, '|' on multi-byte types, object dtype, garbage); structured
// dtypes (canonical text, validation of hostile layouts, limits) and NumPy's str(dtype).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <complex>
#include <cstdint>
#include <string>
#include <string_view>

#include <cstddef>
#include <vector>

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
  for (std::string_view text : {"<f12", "|f8", "|i4", "x", "", "<i3", "<f", "<", "f", "<x8",
                                "<f8 ", " <f8", "<f0008", "Float64", "<U0", "|S0", "<M4",
                                "<M8[fortnight]", "<M8[ns", "<m8[0s]", "|V0", "<S9999999999999", "<S99999999999999"}) {
    SCOPED_TRACE("dtype '" + std::string(text) + "'");
    auto dtype = DType::parse(text);
    EXPECT_FALSE(dtype.has_value()) << "parsed as " << dtype->str();
    if (dtype) continue;
    EXPECT_EQ(dtype.error().code(), ErrorCode::kInvalidArgument);
    EXPECT_THAT(dtype.error().message(), HasSubstr("'" + std::string(text) + "'"));
    EXPECT_THAT(dtype.error().message(), HasSubstr("<f8"));
  }
}

TEST(DType, EveryNewKindParsesToNumpysTypestrAndStr) {
  // Expected values printed by NumPy 1.24: dtype.str, str(dtype), dtype.name.
  struct Case {
    std::string_view text, typestr, numpy_str, name;
    std::size_t itemsize;
  };
  for (const Case& c : {Case{">f8", ">f8", ">f8", "float64", 8},
                        Case{"<f16", "<f16", "float128", "float128", 16},
                        Case{"longdouble", "<f16", "float128", "float128", 16},
                        Case{">c32", ">c32", ">c32", "complex256", 32},
                        Case{"<M8[ns]", "<M8[ns]", "datetime64[ns]", "datetime64[ns]", 8},
                        Case{"datetime64[ns]", "<M8[ns]", "datetime64[ns]", "datetime64[ns]", 8},
                        Case{">m8[25s]", ">m8[25s]", ">m8[25s]", "timedelta64[25s]", 8},
                        Case{"<m8[1D]", "<m8[D]", "timedelta64[D]", "timedelta64[D]", 8},
                        Case{"M8", "<M8", "datetime64", "datetime64", 8},
                        Case{"S10", "|S10", "|S10", "bytes80", 10},
                        Case{"<S10", "|S10", "|S10", "bytes80", 10},
                        Case{"U3", "<U3", "<U3", "str96", 12},
                        Case{">U3", ">U3", ">U3", "str96", 12},
                        Case{"V16", "|V16", "|V16", "void128", 16},
                        Case{"?", "|b1", "bool", "bool", 1},
                        Case{">u2", ">u2", ">u2", "uint16", 2},
                        Case{">i1", "|i1", "int8", "int8", 1}}) {
    SCOPED_TRACE(std::string(c.text));
    auto dtype = DType::parse(c.text);
    ASSERT_TRUE(dtype.has_value()) << dtype.error().to_string();
    EXPECT_EQ(dtype->str(), c.typestr);
    EXPECT_EQ(dtype->numpy_str(), c.numpy_str);
    EXPECT_EQ(dtype->name(), c.name);
    EXPECT_EQ(dtype->itemsize(), c.itemsize);
    EXPECT_EQ(*DType::parse(dtype->str()), *dtype);
  }
}

TEST(DType, EveryDatetimeUnitRoundTrips) {
  for (std::string_view unit : {"Y", "M", "W", "D", "h", "m", "s", "ms", "us", "ns", "ps", "fs",
                                "as"}) {
    for (std::string_view kind : {"<M8", ">m8"}) {
      const std::string text = std::string(kind) + "[" + std::string(unit) + "]";
      auto dtype = DType::parse(text);
      ASSERT_TRUE(dtype.has_value()) << text;
      EXPECT_EQ(dtype->str(), text);
      EXPECT_EQ(dtype->datetime_unit(), unit);
    }
  }
}

TEST(DType, ObjectDtypeIsRefusedSayingWhy) {
  for (std::string_view text : {"O", "|O", "object"}) {
    auto dtype = DType::parse(text);
    ASSERT_FALSE(dtype.has_value());
    EXPECT_EQ(dtype.error().code(), ErrorCode::kInvalidArgument);
    EXPECT_THAT(dtype.error().message(), HasSubstr("pointers to Python objects"));
  }
}

TEST(DType, StructuredDtypesRoundTripAndPrintAsNumpyDoes) {
  // Expected str(numpy.dtype(...)) printed by NumPy 1.24 for the same layouts.
  struct Case {
    std::string_view text, numpy_str;
    std::size_t itemsize;
  };
  for (const Case& c : {
           Case{"{'x':<f4@0,'y':<f4@4,'z':<f4@8,'i':<u2@12}14",
                "[('x', '<f4'), ('y', '<f4'), ('z', '<f4'), ('i', '<u2')]", 14},
           Case{"{'rgb':|u1(3)@0,'p':{'x':>f4@0,'t':<M8[us]@4}12@3,'m':<f8(2,2)@15}47",
                "[('rgb', 'u1', (3,)), ('p', [('x', '>f4'), ('t', '<M8[us]')]), "
                "('m', '<f8', (2, 2))]",
                47},
           Case{"{'a':|u1@0,'b':<i4@4}12",
                "{'names': ['a', 'b'], 'formats': ['u1', '<i4'], 'offsets': [0, 4], "
                "'itemsize': 12}",
                12},
           Case{"{'b':<i4@4,'a':|u1(3)@0}8",
                "{'names': ['b', 'a'], 'formats': ['<i4', ('u1', (3,))], 'offsets': [4, 0], "
                "'itemsize': 8}",
                8},
           Case{"{'n':{'q':|S2@1}4@0}4",
                "[('n', {'names': ['q'], 'formats': ['S2'], 'offsets': [1], 'itemsize': 4})]", 4},
           Case{"{'s':|S3@0,'u':>U2@3,'v':|V2@11,'b':|b1@13}14",
                "[('s', 'S3'), ('u', '>U2'), ('v', 'V2'), ('b', '?')]", 14}}) {
    SCOPED_TRACE(std::string(c.text));
    auto dtype = DType::parse(c.text);
    ASSERT_TRUE(dtype.has_value()) << dtype.error().to_string();
    EXPECT_TRUE(dtype->is_structured());
    EXPECT_EQ(dtype->kind(), 'V');
    EXPECT_EQ(dtype->itemsize(), c.itemsize);
    EXPECT_EQ(dtype->str(), c.text);
    EXPECT_EQ(dtype->numpy_str(), c.numpy_str);
    EXPECT_EQ(*DType::parse(dtype->str()), *dtype);
  }
}

TEST(DType, StructuredFieldsAreReadable) {
  auto dtype = DType::parse("{'rgb':|u1(3)@0,'p':{'x':>f4@0}4@4}8");
  ASSERT_TRUE(dtype.has_value());
  ASSERT_EQ(dtype->fields().size(), 2u);
  const DTypeField* rgb = dtype->field("rgb");
  ASSERT_NE(rgb, nullptr);
  EXPECT_EQ(rgb->offset, 0u);
  EXPECT_EQ(rgb->shape, std::vector<std::uint64_t>{3});
  EXPECT_EQ(rgb->nbytes(), 3u);
  const DTypeField* p = dtype->field("p");
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->dtype.field("x")->dtype.str(), ">f4");
  EXPECT_FALSE(dtype->is_native());
  EXPECT_EQ(dtype->field("nope"), nullptr);
  EXPECT_NE(*dtype, *DType::parse("{'rgb':|u1(3)@0,'p':{'x':<f4@0}4@4}8"));
}

std::string many_fields(std::size_t n) {
  std::string text = "{";
  for (std::size_t i = 0; i < n; ++i) {
    text += (i ? ",'f" : "'f") + std::to_string(i) + "':|u1@" + std::to_string(i);
  }
  return text + "}" + std::to_string(n);
}

std::string nested(std::size_t depth) {
  std::string text = "|u1";
  for (std::size_t i = 0; i < depth; ++i) text = "{'a':" + text + "@0}1";
  return text;
}

TEST(DType, HostileStructuredDtypesAreRefusedNamingTheProblem) {
  struct Case {
    std::string text;
    std::string_view says;
  };
  for (const Case& c : {
           Case{"{'a':<f8@0,'b':<f8@4}16", "overlap"},
           Case{"{'a':<f8@12}16", "extends past the itemsize"},
           Case{"{'a':<f8@0}4", "extends past the itemsize"},
           Case{"{'a':<f8@0,'a':<f8@8}16", "two fields are named 'a'"},
           Case{"{'':<f8@0}8", "names are 1-64 bytes"},
           Case{"{'" + std::string(65, 'n') + "':<f8@0}8", "names are 1-64 bytes"},
           Case{"{'a\\b':<f8@0}8", "printable ASCII"},
           Case{"{'a\tb':<f8@0}8", "printable ASCII"},
           Case{"{'a':|u1(1000000,1000000,1000000)@0}1", "larger than the item size limit"},
           Case{"{'a':|u1(1,1,1,1,1,1,1,1,1)@0}1", "sub-array of more than 8"},
           Case{"{'a':|u1@0}0", "itemsize 0"},
           Case{"{'a':|u1@0}2000000000000", "expected the itemsize"},
           Case{"{}8", "quoted field name"},
           Case{"{'a':|u1@0", "expected ',' or '}'"},
           Case{"{'a':|u1@0}1x", "unexpected text"},
           Case{"{'a':|u1}1", "'@'"},
           Case{"{'a':O@0}8", "unsupported dtype"},
           Case{"{'a:|u1@0}1", "unterminated field name"},
           Case{"{'a'|u1@0}1", "expected ':'"},
           Case{many_fields(1000), "longer than the limit of 1023"},
           Case{nested(9), "nested deeper than the limit of 8"},
           Case{nested(100), "nested deeper than the limit of 8"},
       }) {
    SCOPED_TRACE(c.text.substr(0, 100));
    auto dtype = DType::parse(c.text);
    ASSERT_FALSE(dtype.has_value()) << dtype->str();
    EXPECT_EQ(dtype.error().code(), ErrorCode::kInvalidArgument);
    EXPECT_THAT(dtype.error().message(), HasSubstr(c.says));
  }
  EXPECT_TRUE(DType::parse(many_fields(60)).has_value()) << "60 short fields fit";
  EXPECT_TRUE(DType::parse(nested(8)).has_value());
}

TEST(DType, StructuredFromPartsIsValidatedLikeParse) {
  auto f8 = *DType::parse("<f8");
  auto ok = DType::structured({{"a", 0, f8, {}}, {"b", 8, f8, {2}}}, 24);
  ASSERT_TRUE(ok.has_value()) << ok.error().to_string();
  EXPECT_EQ(ok->str(), "{'a':<f8@0,'b':<f8(2)@8}24");
  auto bad = DType::structured({{"a", 0, f8, {}}, {"b", 4, f8, {}}}, 16);
  ASSERT_FALSE(bad.has_value());
  EXPECT_THAT(bad.error().message(), HasSubstr("fields 'a' and 'b' overlap"));
  EXPECT_FALSE(DType::structured({}, 8).has_value());
  std::vector<DTypeField> many;
  for (std::size_t i = 0; i < 257; ++i) many.push_back({"f" + std::to_string(i), i, *DType::parse("|u1"), {}});
  auto too_many = DType::structured(many, 257);
  ASSERT_FALSE(too_many.has_value());
  EXPECT_THAT(too_many.error().message(), HasSubstr("257 fields in all; the limit is 256"));
}

struct Point {
  float x, y, z;
  std::uint16_t i;
};

TEST(DType, StructViewChecksSizeAndDeclaredFields) {
  auto dtype = *DType::parse("{'x':<f4@0,'y':<f4@4,'z':<f4@8,'i':<u2@12}16");
  const FieldDecl good[] = {SHMARRAY_FIELD(Point, x), SHMARRAY_FIELD(Point, y),
                            SHMARRAY_FIELD(Point, z), SHMARRAY_FIELD(Point, i)};
  EXPECT_TRUE(check_struct_view(dtype, sizeof(Point), good, "pts").has_value());
  EXPECT_TRUE(check_struct_view(dtype, sizeof(Point), {}, "pts").has_value());

  auto size = check_struct_view(dtype, 12, {}, "pts");
  ASSERT_FALSE(size.has_value());
  EXPECT_EQ(size.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_THAT(size.error().message(), HasSubstr("array 'pts' holds 16-byte elements"));

  const FieldDecl moved[] = {{"y", 8, 4, "<f4"}};
  auto offset = check_struct_view(dtype, sizeof(Point), moved, "pts");
  ASSERT_FALSE(offset.has_value());
  EXPECT_THAT(offset.error().message(), HasSubstr("field 'y' is at offset 4"));

  const FieldDecl missing[] = {{"w", 0, 4, ""}};
  EXPECT_THAT(check_struct_view(dtype, sizeof(Point), missing, "pts").error().message(),
              HasSubstr("has no field 'w'"));
  const FieldDecl retyped[] = {{"x", 0, 4, "<i4"}};
  EXPECT_THAT(check_struct_view(dtype, sizeof(Point), retyped, "pts").error().message(),
              HasSubstr("field 'x' of array 'pts' holds <f4, not <i4"));
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
