#pragma once
// Commands of shmarray_test_helper for the dtype tests (issue 14): arrays of any dtype made or
// checked by a C++ process, byte for byte, and a user struct viewed through Array::as<T>().
//   create-bytes SOCK NAME DTYPE N SEED  create a 1-d array of N elements; byte k = (31k+SEED)
//                                        mod 256; publish; print "created CANONICAL-DTYPE"
//   check-bytes SOCK NAME DTYPE SEED     open read-write; check the dtype is DTYPE's canonical
//                                        text and the bytes the pattern of SEED; then write the
//                                        pattern of SEED+1 and publish; print "ok"
//   create-points SOCK NAME N            create a point cloud {x,y,z: <f4, i: <u2} through
//                                        as<Point>(): point k = (k, 2k, 3k, k); publish
//   check-points SOCK NAME               as<const Point>() reads what create-points wrote, and
//                                        as<MisdeclaredPoint>() fails naming field 'y'
//   create-frame SOCK NAME ROWS          Client::create_frame: t <M8[ns] (index), price <f8,
//                                        size <i8; row k = (1.7e18 + 1000k ns, 100 + k/4, k%7+1);
//                                        publish; print "created"
//   frame-write SOCK NAME ROW PRICE      set price[ROW] under the lock (seqlock), publish
// Header-only so that the helper stays one source file in tests/CMakeLists.txt.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "shmarray/shmarray.hpp"

namespace shmarray::test_helper {

struct Point {
  float x, y, z;
  std::uint16_t i;
};
// The same size as Point, but claims y is where z is.
struct MisdeclaredPoint {
  float x, z, y;
  std::uint16_t i;
};

}  // namespace shmarray::test_helper

template <>
struct shmarray::struct_fields<shmarray::test_helper::Point> {
  using P = shmarray::test_helper::Point;
  static constexpr FieldDecl value[] = {SHMARRAY_FIELD(P, x), SHMARRAY_FIELD(P, y),
                                        SHMARRAY_FIELD(P, z), SHMARRAY_FIELD(P, i)};
};
template <>
struct shmarray::struct_fields<shmarray::test_helper::MisdeclaredPoint> {
  using P = shmarray::test_helper::MisdeclaredPoint;
  static constexpr FieldDecl value[] = {SHMARRAY_FIELD(P, x), SHMARRAY_FIELD(P, y)};
};

namespace shmarray::test_helper {

inline constexpr const char* kPointDType = "{'x':<f4@0,'y':<f4@4,'z':<f4@8,'i':<u2@12}16";

inline std::byte pattern_byte(std::size_t k, unsigned seed) {
  return static_cast<std::byte>((31 * k + seed) & 0xff);
}

inline int dtype_fail(const std::string& what) {
  std::fprintf(stderr, "shmarray_test_helper: %s\n", what.c_str());
  return 1;
}

inline int create_bytes(Client& client, const std::vector<std::string>& a) {
  auto arr = client.create(a[1], ArraySpec{.dtype = a[2], .shape = {std::stoull(a[3])}});
  if (!arr) return dtype_fail("create: " + arr.error().message());
  auto bytes = arr->mutable_bytes();
  if (!bytes) return dtype_fail(bytes.error().message());
  const auto seed = static_cast<unsigned>(std::stoul(a[4]));
  for (std::size_t k = 0; k < bytes->size(); ++k) (*bytes)[k] = pattern_byte(k, seed);
  if (!arr->publish()) return dtype_fail("publish");
  std::printf("created %s\n", arr->info().dtype.c_str());
  return 0;
}

inline int check_bytes(Client& client, const std::vector<std::string>& a) {
  auto arr = client.open(a[1], Access::kReadWrite);
  if (!arr) return dtype_fail("open: " + arr.error().message());
  auto expected = DType::parse(a[2]);
  if (!expected) return dtype_fail(expected.error().message());
  if (arr->info().dtype != expected->str()) {
    return dtype_fail("dtype " + arr->info().dtype + ", expected " + expected->str());
  }
  const auto seed = static_cast<unsigned>(std::stoul(a[3]));
  auto bytes = arr->mutable_bytes();
  if (!bytes) return dtype_fail(bytes.error().message());
  for (std::size_t k = 0; k < bytes->size(); ++k) {
    if ((*bytes)[k] != pattern_byte(k, seed)) return dtype_fail("byte " + std::to_string(k) + " differs");
  }
  for (std::size_t k = 0; k < bytes->size(); ++k) (*bytes)[k] = pattern_byte(k, seed + 1);
  if (!arr->publish()) return dtype_fail("publish");
  std::printf("ok\n");
  return 0;
}

inline int create_points(Client& client, const std::vector<std::string>& a) {
  auto arr = client.create(a[1], ArraySpec{.dtype = kPointDType, .shape = {std::stoull(a[2])}});
  if (!arr) return dtype_fail("create: " + arr.error().message());
  auto points = arr->as<Point>();
  if (!points) return dtype_fail("as<Point>: " + points.error().message());
  for (std::size_t k = 0; k < points->size(); ++k) {
    const auto f = static_cast<float>(k);
    (*points)[k] = Point{f, 2 * f, 3 * f, static_cast<std::uint16_t>(k)};
  }
  if (!arr->publish()) return dtype_fail("publish");
  std::printf("created %s\n", arr->info().dtype.c_str());
  return 0;
}

inline int check_points(Client& client, const std::vector<std::string>& a) {
  auto arr = client.open(a[1], Access::kReadOnly);
  if (!arr) return dtype_fail("open: " + arr.error().message());
  auto points = arr->as<const Point>();
  if (!points) return dtype_fail("as<const Point>: " + points.error().message());
  for (std::size_t k = 0; k < points->size(); ++k) {
    const auto f = static_cast<float>(k);
    const Point& p = (*points)[k];
    if (p.x != f || p.y != 2 * f || p.z != 3 * f || p.i != static_cast<std::uint16_t>(k)) {
      return dtype_fail("point " + std::to_string(k) + " differs");
    }
  }
  auto wrong = arr->as<const MisdeclaredPoint>();
  if (wrong) return dtype_fail("as<MisdeclaredPoint> succeeded");
  if (wrong.error().code() != ErrorCode::kInvalidArgument ||
      wrong.error().message().find("field 'y'") == std::string::npos) {
    return dtype_fail("as<MisdeclaredPoint>: " + wrong.error().to_string());
  }
  std::printf("ok %zu points\n", points->size());
  return 0;
}

inline int create_frame(Client& client, const std::vector<std::string>& a) {
  const std::uint64_t rows = std::stoull(a[2]);
  auto frame = client.create_frame(
      a[1], FrameSpec{.columns = {{"t", "<M8[ns]"}, {"price", "<f8"}, {"size", "<i8"}},
                      .rows = rows, .index = "t"});
  if (!frame) return dtype_fail("create_frame: " + frame.error().message());
  auto t = frame->column<std::int64_t>("t");
  auto price = frame->column<double>("price");
  auto size = frame->column<std::int64_t>("size");
  if (!t || !price || !size) return dtype_fail("column views refused");
  for (std::uint64_t k = 0; k < rows; ++k) {
    (*t)[k] = 1'700'000'000'000'000'000 + static_cast<std::int64_t>(k) * 1000;
    (*price)[k] = 100 + static_cast<double>(k) / 4;
    (*size)[k] = static_cast<std::int64_t>(k % 7 + 1);
  }
  if (!frame->publish()) return dtype_fail("publish");
  std::printf("created\n");
  return 0;
}

inline int frame_write(Client& client, const std::vector<std::string>& a) {
  auto frame = client.open_frame(a[1], Access::kReadWrite);
  if (!frame) return dtype_fail("open_frame: " + frame.error().message());
  const std::uint64_t row = std::stoull(a[2]);
  const double value = std::stod(a[3]);
  auto written = frame->array().write([&](std::span<std::byte>) {
    auto price = frame->column<double>("price");
    if (price && row < price->size()) (*price)[row] = value;
  });
  if (!written) return dtype_fail("write: " + written.error().message());
  std::printf("version %llu\n", static_cast<unsigned long long>(*written));
  return 0;
}

// -1 when `cmd` is not one of these commands.
inline int run_dtype_command(const std::string& cmd, const std::vector<std::string>& a) {
  const bool known = (cmd == "create-bytes" && a.size() >= 5) ||
                     (cmd == "check-bytes" && a.size() >= 4) ||
                     (cmd == "create-points" && a.size() >= 3) ||
                     (cmd == "check-points" && a.size() >= 2) ||
                     (cmd == "create-frame" && a.size() >= 3) ||
                     (cmd == "frame-write" && a.size() >= 4);
  if (!known) return -1;
  auto client = Client::connect({.socket_path = a[0]});
  if (!client) return dtype_fail("connect: " + client.error().message());
  if (cmd == "create-bytes") return create_bytes(*client, a);
  if (cmd == "check-bytes") return check_bytes(*client, a);
  if (cmd == "create-points") return create_points(*client, a);
  if (cmd == "create-frame") return create_frame(*client, a);
  if (cmd == "frame-write") return frame_write(*client, a);
  return check_points(*client, a);
}

}  // namespace shmarray::test_helper
