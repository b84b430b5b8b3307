// The CLI's pure formatting (shmarray_cli_format): NumPy-style array text, checked against what
// NumPy (1.24; array str() is unchanged in 2.x) prints for the same arrays, plus the half-float
// decoder, the ls/stat/JSON helpers and the argument parsers. No broker involved.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <complex>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "cli_parse.hpp"
#include "half.hpp"
#include "info_format.hpp"
#include "json.hpp"
#include "numpy_format.hpp"
#include "shmarray/dtype.hpp"
#include "shmarray/types.hpp"

namespace shmarray::cli {
namespace {

using ::testing::HasSubstr;

constexpr double kNan = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

// An array stored the way the broker lays it out: `c_order` values placed in memory in `order`,
// with the matching byte strides.
struct StoredArray {
  std::vector<std::byte> bytes;
  ArrayView view;
};

template <class T>
StoredArray store(const std::vector<T>& c_order, std::vector<std::uint64_t> shape,
                  Order order = Order::kC, std::string_view dtype = dtype_of<T>::value) {
  const std::size_t ndim = shape.size();
  std::vector<std::int64_t> strides(ndim);
  std::int64_t step = sizeof(T);
  for (std::size_t k = 0; k < ndim; ++k) {
    const std::size_t axis = order == Order::kC ? ndim - 1 - k : k;
    strides[axis] = step;
    step *= static_cast<std::int64_t>(shape[axis]);
  }
  StoredArray out{std::vector<std::byte>(c_order.size() * sizeof(T)),
                  ArrayView{DType::parse(dtype).value(), shape, strides, {}}};
  for (std::size_t flat = 0; flat < c_order.size(); ++flat) {
    std::size_t rest = flat;
    std::int64_t offset = 0;
    for (std::size_t axis = ndim; axis-- > 0;) {
      offset += static_cast<std::int64_t>(rest % shape[axis]) * strides[axis];
      rest /= shape[axis];
    }
    std::memcpy(out.bytes.data() + offset, &c_order[flat], sizeof(T));
  }
  return out;
}

template <class T>
std::string numpy_str(const std::vector<T>& c_order, std::vector<std::uint64_t> shape,
                      Order order = Order::kC, std::string_view dtype = dtype_of<T>::value) {
  StoredArray stored = store(c_order, std::move(shape), order, dtype);
  stored.view.bytes = stored.bytes;
  return format_array(stored.view).value();
}

template <class T>
std::string numpy_str(const std::vector<T>& values) {
  return numpy_str(values, {values.size()});
}

std::vector<double> arange(int n, double scale = 1.0) {
  std::vector<double> out;
  for (int i = 0; i < n; ++i) out.push_back(i * scale);
  return out;
}

std::vector<std::int64_t> iarange(int n) {
  std::vector<std::int64_t> out;
  for (int i = 0; i < n; ++i) out.push_back(i);
  return out;
}

// --- layout: brackets, indentation, wrapping, summarisation -------------------------------

TEST(NumpyFormat, FloatMatrixPrintsRowsOnSeparateLines) {
  // np.arange(6.).reshape(2, 3)
  EXPECT_EQ(numpy_str(arange(6), {2, 3}), "[[0. 1. 2.]\n [3. 4. 5.]]");
}

TEST(NumpyFormat, IntegerVectorPrintsOnOneLine) {
  EXPECT_EQ(numpy_str(iarange(5)), "[0 1 2 3 4]");  // np.arange(5)
}

TEST(NumpyFormat, LongRowWrapsAt75ColumnsWithHangingIndent) {
  EXPECT_EQ(numpy_str(arange(30)),  // np.arange(30.)
            "[ 0.  1.  2.  3.  4.  5.  6.  7.  8.  9. 10. 11. 12. 13. 14. 15. 16. 17.\n"
            " 18. 19. 20. 21. 22. 23. 24. 25. 26. 27. 28. 29.]");
}

TEST(NumpyFormat, ThreeDimensionalArraySeparatesBlocksWithBlankLine) {
  EXPECT_EQ(numpy_str(iarange(24), {2, 3, 4}),  // np.arange(24).reshape(2, 3, 4)
            "[[[ 0  1  2  3]\n  [ 4  5  6  7]\n  [ 8  9 10 11]]\n\n"
            " [[12 13 14 15]\n  [16 17 18 19]\n  [20 21 22 23]]]");
}

TEST(NumpyFormat, MoreThanThresholdElementsSummarisesWithEdgeItems) {
  // np.arange(2000): width comes from the shown elements only.
  EXPECT_EQ(numpy_str(iarange(2000)), "[   0    1    2 ... 1997 1998 1999]");
}

TEST(NumpyFormat, SummarisedMatrixElidesRowsAndColumns) {
  EXPECT_EQ(numpy_str(iarange(1200), {30, 40}),  // np.arange(1200).reshape(30, 40)
            "[[   0    1    2 ...   37   38   39]\n"
            " [  40   41   42 ...   77   78   79]\n"
            " [  80   81   82 ...  117  118  119]\n"
            " ...\n"
            " [1080 1081 1082 ... 1117 1118 1119]\n"
            " [1120 1121 1122 ... 1157 1158 1159]\n"
            " [1160 1161 1162 ... 1197 1198 1199]]");
}

TEST(NumpyFormat, FortranOrderReadsElementsThroughStrides) {
  const auto values = iarange(12);
  const std::string c = numpy_str(values, {3, 4}, Order::kC);
  EXPECT_EQ(c, "[[ 0  1  2  3]\n [ 4  5  6  7]\n [ 8  9 10 11]]");
  EXPECT_EQ(numpy_str(values, {3, 4}, Order::kF), c);
  EXPECT_EQ(numpy_str(arange(24), {2, 3, 4}, Order::kF), numpy_str(arange(24), {2, 3, 4}));
}

TEST(NumpyFormat, ZeroSizedArrayPrintsEmptyBrackets) {
  EXPECT_EQ(numpy_str(std::vector<double>{}, {2, 0}), "[]");  // np.zeros((2, 0))
  EXPECT_EQ(numpy_str(std::vector<double>{}, {0}), "[]");
}

TEST(NumpyFormat, ZeroDimensionalArrayPrintsAsScalar) {
  EXPECT_EQ(numpy_str(std::vector<double>{1.5}, {}), "1.5");
  EXPECT_EQ(numpy_str(std::vector<double>{1.0}, {}), "1.0");
  EXPECT_EQ(numpy_str(std::vector<double>{1e16}, {}), "1e+16");
  EXPECT_EQ(numpy_str(std::vector<float>{0.1F}, {}), "0.1");
  EXPECT_EQ(numpy_str(std::vector<std::int32_t>{-7}, {}), "-7");
  EXPECT_EQ(numpy_str(std::vector<std::uint8_t>{1}, {}, Order::kC, "|b1"), "True");
  EXPECT_EQ(numpy_str(std::vector<std::complex<double>>{{1, 2}}, {}), "(1+2j)");
  EXPECT_EQ(numpy_str(std::vector<std::complex<double>>{{0, 2}}, {}), "2j");
}

// --- element text -------------------------------------------------------------------------

TEST(NumpyFormat, FloatFractionsArePaddedToCommonWidth) {
  EXPECT_EQ(numpy_str(std::vector<double>{0.5, 1.25}), "[0.5  1.25]");
  EXPECT_EQ(numpy_str(std::vector<double>{-0.0, 1.0}), "[-0.  1.]");
}

TEST(NumpyFormat, FloatsRoundToEightFractionDigits) {
  EXPECT_EQ(numpy_str(std::vector<double>{1.0 / 3, 2.0 / 3}), "[0.33333333 0.66666667]");
}

TEST(NumpyFormat, WideRangeSwitchesToScientificNotation) {
  EXPECT_EQ(numpy_str(std::vector<double>{1e-5, 1.5}), "[1.0e-05 1.5e+00]");
  EXPECT_EQ(numpy_str(std::vector<double>{1.0, 1e8}), "[1.e+00 1.e+08]");
  EXPECT_EQ(numpy_str(std::vector<double>{1e100, 1e-100}), "[1.e+100 1.e-100]");
}

TEST(NumpyFormat, NanAndInfAreRightAlignedToFloatWidth) {
  EXPECT_EQ(numpy_str(std::vector<double>{kNan, 1.0}), "[nan  1.]");
  EXPECT_EQ(numpy_str(std::vector<double>{-kInf, 0.5}), "[-inf  0.5]");
}

TEST(NumpyFormat, Float32UsesShortestFloat32Digits) {
  EXPECT_EQ(numpy_str(std::vector<float>{0.1F, 0.2F}), "[0.1 0.2]");
  // Shortest float32 form is 84122110, but NumPy prints the integer part's exact digits.
  EXPECT_EQ(numpy_str(std::vector<float>{84122112.0F}), "[84122112.]");
}

TEST(NumpyFormat, Float16IsDecodedAndPrintedWithHalfPrecisionDigits) {
  // np.array([[0.1, 2.5], [nan, -inf]], dtype=np.float16); 0x2e66 is float16(0.1).
  const std::vector<std::uint16_t> bits = {0x2e66, 0x4100, 0x7e00, 0xfc00};
  EXPECT_EQ(numpy_str(bits, {2, 2}, Order::kC, "<f2"), "[[ 0.1  2.5]\n [ nan -inf]]");
}

TEST(NumpyFormat, BoolsPadTrueToWidthOfFalse) {
  EXPECT_EQ(numpy_str(std::vector<std::uint8_t>{1, 0}, {2}, Order::kC, "|b1"), "[ True False]");
  EXPECT_EQ(numpy_str(std::vector<std::uint8_t>{1, 0, 0, 1}, {2, 2}, Order::kC, "|b1"),
            "[[ True False]\n [False  True]]");
}

TEST(NumpyFormat, IntegersAreRightAlignedIncludingExtremes) {
  EXPECT_EQ(numpy_str(std::vector<std::int8_t>{-128, 127, 0}), "[-128  127    0]");
  EXPECT_EQ(numpy_str(std::vector<std::uint64_t>{std::numeric_limits<std::uint64_t>::max(), 0}),
            "[18446744073709551615                    0]");
}

TEST(NumpyFormat, ComplexPrintsSignedImaginaryPartWithJ) {
  EXPECT_EQ(numpy_str(std::vector<std::complex<double>>{{1, 2}}), "[1.+2.j]");
  EXPECT_EQ(numpy_str(std::vector<std::complex<float>>{{1, 2}, {3.5F, -1}}), "[1. +2.j 3.5-1.j]");
  EXPECT_EQ(numpy_str(std::vector<std::complex<double>>{{kNan, 1}, {1, kInf}}),
            "[nan +1.j  1.+infj]");
}

// --- --head ---------------------------------------------------------------------------------

TEST(NumpyFormatHead, PrintsFirstElementsInCOrderAsFlatList) {
  StoredArray stored = store(iarange(12), {3, 4}, Order::kF);
  stored.view.bytes = stored.bytes;
  EXPECT_EQ(format_head(stored.view, 5).value(), "[0 1 2 3 4]");
  EXPECT_EQ(format_head(stored.view, 100).value(), "[ 0  1  2  3  4  5  6  7  8  9 10 11]");
  EXPECT_EQ(format_head(stored.view, 0).value(), "[]");
}

TEST(NumpyFormatHead, SummarisesMoreThanThresholdElements) {
  StoredArray stored = store(iarange(2000), {2000});
  stored.view.bytes = stored.bytes;
  EXPECT_EQ(format_head(stored.view, 1500).value(), "[   0    1    2 ... 1497 1498 1499]");
}

// --- hostile metadata -------------------------------------------------------------------------

TEST(NumpyFormat, StridesReachingPastBytesAreRejected) {
  StoredArray stored = store(arange(4), {4});
  stored.view.bytes = std::span(stored.bytes).first(24);  // one element short
  const auto text = format_array(stored.view);
  ASSERT_FALSE(text.has_value());
  EXPECT_EQ(text.error().code(), ErrorCode::kInvalidArgument);
  stored.view.bytes = stored.bytes;
  stored.view.strides = {-8};
  EXPECT_FALSE(format_array(stored.view).has_value());
  stored.view.strides = {8, 8};
  EXPECT_FALSE(format_head(stored.view, 1).has_value());
}

// --- half -> float ------------------------------------------------------------------------------

TEST(HalfToFloat, DecodesNormalsSubnormalsAndSpecials) {
  EXPECT_EQ(half_to_float(0x3c00), 1.0F);
  EXPECT_EQ(half_to_float(0xc000), -2.0F);
  EXPECT_EQ(half_to_float(0x7bff), 65504.0F);
  EXPECT_EQ(half_to_float(0x0001), std::ldexp(1.0F, -24));
  EXPECT_EQ(half_to_float(0x0400), std::ldexp(1.0F, -14));
  EXPECT_EQ(half_to_float(0x7c00), std::numeric_limits<float>::infinity());
  EXPECT_EQ(half_to_float(0xfc00), -std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(half_to_float(0x7e00)));
  EXPECT_TRUE(std::signbit(half_to_float(0x8000)));
  EXPECT_EQ(half_to_float(0x2e66), 0.0999755859375F);
}

TEST(HalfToFloat, RoundToHalfRoundsToNearestEvenAndOverflowsToInf) {
  EXPECT_EQ(round_to_half(0.1), 0.0999755859375);
  EXPECT_EQ(round_to_half(2049.0), 2048.0);  // tie between 2048 and 2050: even mantissa
  EXPECT_EQ(round_to_half(65519.0), 65504.0);
  EXPECT_TRUE(std::isinf(round_to_half(65520.0)));
  EXPECT_EQ(round_to_half(1e-8), 0.0);
}

// --- ls / stat / JSON -----------------------------------------------------------------------------

ArrayInfo sample_info() {
  ArrayInfo info;
  info.name = "demo/matrix";
  info.dtype = "<f8";
  info.shape = {1024, 1024};
  info.strides = {8192, 8};
  info.itemsize = 8;
  info.nbytes = 8 * 1024 * 1024;
  info.data_offset = 4096;
  info.segment_bytes = 8 * 1024 * 1024 + 4096;
  info.id = "0123456789abcdef0123456789abcdef";
  info.owner_uid = 1000;
  info.owner_gid = 100;
  info.mode = 0640;
  info.created_unix_ns = 1'500'000'000'123'456'789;
  info.open_handles = 2;
  info.version = 7;
  return info;
}

TEST(InfoFormat, TupleStrFollowsPythonSyntax) {
  EXPECT_EQ(tuple_str(std::vector<std::uint64_t>{}), "()");
  EXPECT_EQ(tuple_str(std::vector<std::uint64_t>{5}), "(5,)");
  EXPECT_EQ(tuple_str(std::vector<std::uint64_t>{1024, 1024}), "(1024, 1024)");
  EXPECT_EQ(tuple_str(std::vector<std::int64_t>{-8, 16}), "(-8, 16)");
}

TEST(InfoFormat, HumanSizeUsesBinaryUnitsWithOneDecimal) {
  EXPECT_EQ(human_size(0), "0 B");
  EXPECT_EQ(human_size(1023), "1023 B");
  EXPECT_EQ(human_size(1024), "1.0 KiB");
  EXPECT_EQ(human_size(8 * 1024 * 1024), "8.0 MiB");
  EXPECT_EQ(human_size(1024 * 1024 - 1), "1.0 MiB");  // not "1024.0 KiB"
  EXPECT_EQ(human_size(3ULL << 29), "1.5 GiB");
}

TEST(InfoFormat, ModeAndTimeFormats) {
  EXPECT_EQ(mode_str(0600), "0600");
  EXPECT_EQ(mode_str(04), "0004");
  EXPECT_EQ(utc_time_str(0), "1970-01-01T00:00:00.000000000Z");
  EXPECT_EQ(utc_time_str(-1), "1969-12-31T23:59:59.999999999Z");
  EXPECT_EQ(utc_time_str(1'500'000'000'123'456'789), "2017-07-14T02:40:00.123456789Z");
}

TEST(InfoFormat, ListTableAlignsColumnsAndFallsBackToUid) {
  ArrayInfo small = sample_info();
  small.name = "a";
  small.shape = {3};
  small.nbytes = 24;
  small.owner_uid = 4242;
  const std::vector<ArrayInfo> infos = {sample_info(), small};
  const auto names = [](std::uint32_t uid) { return uid == 1000 ? std::string("alice") : ""; };
  EXPECT_EQ(list_table(infos, names),
            "NAME         KIND   DTYPE  SHAPE            SIZE  OWNER  MODE  OPEN  VERSION\n"
            "demo/matrix  array  <f8    (1024, 1024)  8.0 MiB  alice  0640     2        7\n"
            "a            array  <f8    (3,)             24 B  4242   0640     2        7\n");
}

TEST(InfoFormat, StatTextHasEveryFieldOnItsOwnLine) {
  const auto none = [](std::uint32_t) { return std::string(); };
  const std::string text = stat_text(sample_info(), none, none);
  EXPECT_THAT(text, HasSubstr("name: demo/matrix\n"));
  EXPECT_THAT(text, HasSubstr("shape: (1024, 1024)\n"));
  EXPECT_THAT(text, HasSubstr("strides: (8192, 8)\n"));
  EXPECT_THAT(text, HasSubstr("order: C\n"));
  EXPECT_THAT(text, HasSubstr("nbytes: 8388608 (8.0 MiB)\n"));
  EXPECT_THAT(text, HasSubstr("owner_uid: 1000\n"));
  EXPECT_THAT(text, HasSubstr("mode: 0640\n"));
  EXPECT_THAT(text, HasSubstr("created_unix_ns: 1500000000123456789 (2017-07-14T02:40:00"));
  EXPECT_THAT(text, HasSubstr("ephemeral: false\n"));
  EXPECT_THAT(text, HasSubstr("damaged: no\n"));
  EXPECT_THAT(text, HasSubstr("kind: array\n"));
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 19);  // kind + one per ArrayInfo field
  ArrayInfo damaged = sample_info();
  damaged.damaged = "a writer truncated it";
  EXPECT_THAT(stat_text(damaged, none, none), HasSubstr("damaged: a writer truncated it\n"));
}

TEST(InfoFormat, ListTableShowsDamagedArrays) {
  ArrayInfo info = sample_info();
  info.damaged = "a writer truncated it";
  const std::vector<ArrayInfo> infos = {info};
  EXPECT_THAT(list_table(infos, {}), HasSubstr("DAMAGED\n"));
}

TEST(Json, QuoteEscapesQuotesBackslashesAndControlCharacters) {
  EXPECT_EQ(json_quote("plain/name"), "\"plain/name\"");
  EXPECT_EQ(json_quote("a\"b\\c"), "\"a\\\"b\\\\c\"");
  EXPECT_EQ(json_quote("l1\nl2\t\r\b\f"), "\"l1\\nl2\\t\\r\\b\\f\"");
  EXPECT_EQ(json_quote(std::string("\x01\x1f", 2)), "\"\\u0001\\u001f\"");
  EXPECT_EQ(json_quote(std::string("\0", 1)), "\"\\u0000\"");
  EXPECT_EQ(json_quote("caf\xc3\xa9"), "\"caf\xc3\xa9\"");
}

TEST(Json, InfoJsonHasEveryFieldWithJsonTypes) {
  ArrayInfo info = sample_info();
  info.ephemeral = true;
  info.order = Order::kF;
  EXPECT_EQ(info_json(info),
            "{\"name\": \"demo/matrix\", \"dtype\": \"<f8\", \"shape\": [1024, 1024], "
            "\"strides\": [8192, 8], \"order\": \"F\", \"itemsize\": 8, \"nbytes\": 8388608, "
            "\"data_offset\": 4096, \"segment_bytes\": 8392704, "
            "\"id\": \"0123456789abcdef0123456789abcdef\", \"owner_uid\": 1000, "
            "\"owner_gid\": 100, \"mode\": \"0640\", \"created_unix_ns\": 1500000000123456789, "
            "\"open_handles\": 2, \"version\": 7, \"ephemeral\": true, \"damaged\": null}");
  info.damaged = "a writer truncated it";
  EXPECT_TRUE(info_json(info).ends_with("\"damaged\": \"a writer truncated it\"}"));
}

TEST(Json, InfosJsonIsAnArrayWithOneObjectPerLine) {
  EXPECT_EQ(infos_json({}), "[]");
  const std::vector<ArrayInfo> two = {sample_info(), sample_info()};
  const std::string text = infos_json(two);
  EXPECT_TRUE(text.starts_with("[\n  {\"name\": \"demo/matrix\""));
  EXPECT_THAT(text, HasSubstr("},\n  {"));
  EXPECT_TRUE(text.ends_with("}\n]"));
}

// --- argument parsing -------------------------------------------------------------------------

TEST(CliParse, ShapeAcceptsListsTuplesAndZeroDimensional) {
  using Shape = std::vector<std::uint64_t>;
  EXPECT_EQ(parse_shape("3,4").value(), (Shape{3, 4}));
  EXPECT_EQ(parse_shape("(3, 4)").value(), (Shape{3, 4}));
  EXPECT_EQ(parse_shape("(5,)").value(), (Shape{5}));
  EXPECT_EQ(parse_shape("7").value(), (Shape{7}));
  EXPECT_EQ(parse_shape("0,2").value(), (Shape{0, 2}));
  EXPECT_EQ(parse_shape("").value(), Shape{});
  EXPECT_EQ(parse_shape("()").value(), Shape{});
}

TEST(CliParse, ShapeRejectsMalformedDimensions) {
  for (const char* bad : {"3,,4", "-1", "a", "(3,4", "3 4", ",", "99999999999999999999"}) {
    const auto shape = parse_shape(bad);
    ASSERT_FALSE(shape.has_value()) << bad;
    EXPECT_EQ(shape.error().code(), ErrorCode::kInvalidArgument);
    EXPECT_THAT(shape.error().message(), HasSubstr("bad shape"));
  }
  std::string many = "1";
  for (std::size_t i = 0; i < kMaxNdim; ++i) many += ",1";
  EXPECT_FALSE(parse_shape(many).has_value());
}

TEST(CliParse, ModeIsOctalPermissionBits) {
  EXPECT_EQ(parse_mode("0640").value(), 0640U);
  EXPECT_EQ(parse_mode("600").value(), 0600U);
  EXPECT_EQ(parse_mode("0").value(), 0U);
  for (const char* bad : {"", "0999", "8", "07777", "1000", "rw", "-1", "0o640"}) {
    EXPECT_FALSE(parse_mode(bad).has_value()) << bad;
  }
}

TEST(CliParse, OrderIsCOrF) {
  EXPECT_EQ(parse_order("C").value(), Order::kC);
  EXPECT_EQ(parse_order("f").value(), Order::kF);
  EXPECT_FALSE(parse_order("A").has_value());
}

// Every dtype kind of issue 14 (big-endian numbers, long double, datetime64 in several units,
// timedelta64, S/U/V, structured with nested and sub-array fields), printed as NumPy 1.24 prints
// it: `expected` is str(arr) and `numpy_str` str(arr.dtype) for the same bytes, generated by
// NumPy (the script is in the commit that added this test).
struct KindCase {
  std::string_view dtype;
  std::vector<std::uint64_t> shape;
  std::string_view hex;
  std::string_view expected;
  std::string_view numpy_str;
};

std::vector<std::byte> from_hex(std::string_view hex) {
  std::vector<std::byte> out;
  for (std::size_t i = 0; i + 1 < hex.size(); i += 2) {
    out.push_back(static_cast<std::byte>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16)));
  }
  return out;
}

TEST(NumpyFormat, EveryNewDtypeKindPrintsAsNumpyDoes) {
  const KindCase cases[] = {
    {">f8", {3}, "3ff8000000000000c0020000000000004008000000000000",
     "[ 1.5  -2.25  3.  ]",
     ">f8"},
    {">i4", {3}, "00000001fffffed400011170",
     "[    1  -300 70000]",
     ">i4"},
    {">u2", {2, 2}, "0001000200030004",
     "[[1 2]\n [3 4]]",
     ">u2"},
    {">c16", {2}, "3ff000000000000040000000000000008000000000000000bfe0000000000000",
     "[ 1.+2.j  -0.-0.5j]",
     ">c16"},
    {"<f16", {2}, "0000000000000080fd3f00000000000000000000000000c0fe3f4e0900000000",
     "[0.25 0.75]",
     "float128"},
    {"<M8[ns]", {3}, "15ff5c37b768a6170000000000000080ffffffffffffffff",
     "['2024-01-02T03:04:05.123456789'                           'NaT'\n '1969-12-31T23:59:59.999999999']",
     "datetime64[ns]"},
    {">M8[D]", {2}, "0000000000004d0c0000000000000000",
     "['2024-01-02' '1970-01-01']",
     ">M8[D]"},
    {"<M8[M]", {2}, "8a02000000000000feffffffffffffff",
     "['2024-03' '1969-11']",
     "datetime64[M]"},
    {"<M8[Y]", {2}, "3600000000000000baffffffffffffff",
     "['2024' '1900']",
     "datetime64[Y]"},
    {"<M8[h]", {2}, "23390700000000000000000000000080",
     "['2024-01-02T03'           'NaT']",
     "datetime64[h]"},
    {"<M8[ms]", {1}, "03d920c88c010000",
     "['2024-01-02T03:04:05.123']",
     "datetime64[ms]"},
    {"<M8[W]", {1}, "020b000000000000",
     "['2024-01-04']",
     "datetime64[W]"},
    {"<M8[25s]", {2}, "00000000000000003200000000000000",
     "['1970-01-01T00:00:00' '1970-01-01T00:20:50']",
     "datetime64[25s]"},
    {"<m8[s]", {3}, "0100000000000000ecffffffffffffff2c01000000000000",
     "[  1 -20 300]",
     "timedelta64[s]"},
    {">m8[ms]", {2}, "00000000000000058000000000000000",
     "[    5 'NaT']",
     ">m8[ms]"},
    {"|S4", {4}, "616200007800790069742773ff0a0000",
     "[b'ab' b'x\\x00y' b\"it's\" b'\\xff\\n']",
     "|S4"},
    {"<U5", {4}, "610000006200000000000000000000000000000068000000e90000006c0000006c0000006f00000061000000220000006200000000000000000000006900000074000000270000007300000000000000",
     "['ab' 'h\xc3""\xa9""llo' 'a\"b' \"it's\"]",
     "<U5"},
    {">U3", {2}, "000000620000006500000000000000780000000000000000",
     "['be' 'x']",
     ">U3"},
    {"|V3", {2}, "000102030405",
     "[b'\\x00\\x01\\x02' b'\\x03\\x04\\x05']",
     "|V3"},
    {"{'x':<f4@0,'n':>i2@4,'s':|S2@6}8", {2}, "0000c03f00026162000080bf001e0000",
     "[( 1.5,  2, b'ab') (-1. , 30, b'')]",
     "[('x', '<f4'), ('n', '>i2'), ('s', 'S2')]"},
    {"{'rgb':|u1(3)@0,'p':{'x':>f4@0,'i':<i8@4}12@3}15", {2}, "0102033f0000000700000000000000040506400000000800000000000000",
     "[([1, 2, 3], (0.5, 7)) ([4, 5, 6], (2. , 8))]",
     "[('rgb', 'u1', (3,)), ('p', [('x', '>f4'), ('i', '<i8')])]"},
    {"{'a':<i4@0}4", {2}, "0100000016000000",
     "[( 1,) (22,)]",
     "[('a', '<i4')]"},
    {"{'a':|u1@0,'b':<f8(2,2)@8}48", {2}, "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
     "[(0, [[0., 0.], [0., 0.]]) (0, [[0., 0.], [0., 0.]])]",
     "{'names': ['a', 'b'], 'formats': ['u1', ('<f8', (2, 2))], 'offsets': [0, 8], 'itemsize': 48}"},
    {"|b1", {3}, "010001",
     "[ True False  True]",
     "bool"},
  };
  for (const KindCase& c : cases) {
    SCOPED_TRACE(std::string(c.dtype));
    auto dtype = DType::parse(c.dtype);
    ASSERT_TRUE(dtype.has_value()) << dtype.error().message();
    EXPECT_EQ(dtype->numpy_str(), c.numpy_str);
    const std::vector<std::byte> bytes = from_hex(c.hex);
    std::vector<std::int64_t> strides(c.shape.size());
    std::int64_t step = static_cast<std::int64_t>(dtype->itemsize());
    for (std::size_t k = c.shape.size(); k-- > 0;) {
      strides[k] = step;
      step *= static_cast<std::int64_t>(c.shape[k]);
    }
    auto text = format_array(ArrayView{*dtype, c.shape, strides, bytes});
    ASSERT_TRUE(text.has_value()) << text.error().message();
    EXPECT_EQ(*text, c.expected);
  }
}

}  // namespace
}  // namespace shmarray::cli
