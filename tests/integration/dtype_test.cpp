// Every NumPy dtype through the real broker (issue 14): hostile dtype text on the raw protocol is
// refused with kInvalidArgument while the broker keeps serving; a structured array is viewed as a
// C++ struct in two processes (Array::as<T>() checks size and declared fields); structured and
// big-endian arrays survive a broker restart with their dtype intact.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>

#include "../helpers/dtype_commands.hpp"
#include "../support/legacy_header.hpp"
#include "../support/raw_client.hpp"
#include "broker_process.hpp"
#include "catalogue.hpp"
#include "shmarray/shmarray.hpp"

namespace shmarray::test {
namespace {

using test_helper::kPointDType;
using test_helper::MisdeclaredPoint;
using test_helper::Point;

class DTypeTest : public BrokerTest {};

std::string fields(std::size_t n) {
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

TEST_F(DTypeTest, HostileDtypeTextOnTheRawProtocolIsInvalidArgumentAndTheBrokerKeepsServing) {
  auto raw = RawClient::connect(broker_->socket_path());
  ASSERT_TRUE(raw.has_value());
  const std::vector<std::string> hostile = {
      "{'a':<f8@0,'b':<f8@4}16",                    // overlapping fields
      "{'a':<f8@12}16",                             // offset past the itemsize
      fields(1000),                                 // 1,000 fields
      nested(100),                                  // depth 100
      "{'a':|u1(4294967295,4294967295)@0}1",        // huge sub-array shape
      "{'a':|u1(1000000,1000000,1000000)@0}1",      // sub-array product overflowing
      "{'a':<f8@0}18446744073709551615",            // itemsize out of range
      "{'" + std::string(300, 'n') + "':<f8@0}8",   // overlong name
      "O",                                          // object dtype
      std::string("{'a':<f8@0}8\0junk", 17),        // NUL inside
      std::string(5000, '{'),                       // long garbage
  };
  for (const std::string& dtype : hostile) {
    SCOPED_TRACE(dtype.substr(0, 60));
    auto reply = raw->call(wire::CreateRequest{"hostile", ArraySpec{.dtype = dtype, .shape = {4}}});
    ASSERT_TRUE(reply.has_value()) << "the broker dropped the connection";
    EXPECT_EQ(reply->code(), ErrorCode::kInvalidArgument);
  }
  // The same connection and a new client are both still served, and nothing was created.
  auto ok = raw->call(wire::CreateRequest{"fine", ArraySpec{.dtype = kPointDType, .shape = {4}}});
  ASSERT_TRUE(ok.has_value());
  EXPECT_EQ(ok->code(), ErrorCode::kOk);
  auto client = broker_->client();
  auto listed = client.list();
  ASSERT_TRUE(listed.has_value());
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].name, "fine");
  EXPECT_EQ((*listed)[0].dtype, kPointDType);
  ASSERT_TRUE(client.remove("fine"));
}

TEST_F(DTypeTest, UserStructViewsARecordArrayInTwoProcesses) {
  auto client = broker_->client();
  auto arr = client.create("pts", ArraySpec{.dtype = kPointDType, .shape = {64}});
  ASSERT_TRUE(arr) << arr.error().message();
  auto points = arr->as<Point>();
  ASSERT_TRUE(points) << points.error().message();
  ASSERT_EQ(points->size(), 64u);
  for (std::size_t k = 0; k < points->size(); ++k) {
    const auto f = static_cast<float>(k);
    (*points)[k] = Point{f, 2 * f, 3 * f, static_cast<std::uint16_t>(k)};
  }
  ASSERT_TRUE(arr->publish());
  const RunResult r = run_helper({"check-points", broker_->socket_path(), "pts"});
  EXPECT_TRUE(r.status.ok()) << r.status.describe() << r.out;

  auto wrong = arr->as<MisdeclaredPoint>();
  ASSERT_FALSE(wrong);
  EXPECT_EQ(wrong.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(wrong.error().message().find("field 'y' is at offset 4"), std::string::npos)
      << wrong.error().message();
  auto number = arr->as<double>();
  ASSERT_FALSE(number);
  EXPECT_EQ(number.error().code(), ErrorCode::kInvalidArgument);
  struct TooSmall {
    float x;
  };
  auto small = arr->as<TooSmall>();
  ASSERT_FALSE(small);
  EXPECT_NE(small.error().message().find("16-byte elements"), std::string::npos);
  ASSERT_TRUE(client.remove("pts"));
}

TEST_F(DTypeTest, StructuredAndBigEndianArraysSurviveABrokerRestart) {
  const std::string nested_dtype = "{'rgb':|u1(3)@0,'p':{'x':>f4@0,'t':<M8[us]@4}12@4}16";
  {
    auto client = broker_->client();
    for (const auto& [name, dtype] : std::vector<std::pair<std::string, std::string>>{
             {"n", nested_dtype}, {"b", ">f8"}, {"t", "<M8[ns]"}, {"u", ">U7"}}) {
      auto arr = client.create(name, ArraySpec{.dtype = dtype, .shape = {10}});
      ASSERT_TRUE(arr) << dtype << ": " << arr.error().message();
      auto bytes = arr->mutable_bytes();
      ASSERT_TRUE(bytes);
      for (std::size_t k = 0; k < bytes->size(); ++k) (*bytes)[k] = std::byte(k & 0xff);
      ASSERT_TRUE(arr->publish());
    }
  }
  broker_->restart();
  auto client = broker_->client();
  for (const auto& [name, dtype] : std::vector<std::pair<std::string, std::string>>{
           {"n", nested_dtype}, {"b", ">f8"}, {"t", "<M8[ns]"}, {"u", ">U7"}}) {
    auto arr = client.open(name, Access::kReadOnly);
    ASSERT_TRUE(arr) << name << ": " << arr.error().message();
    EXPECT_EQ(arr->info().dtype, dtype);
    EXPECT_EQ(arr->version(), 1u);
    const auto bytes = arr->bytes();
    for (std::size_t k = 0; k < bytes.size(); ++k) ASSERT_EQ(bytes[k], std::byte(k & 0xff));
    ASSERT_TRUE(client.remove(name));
  }
}

TEST_F(DTypeTest, FrameColumnsAreTypedViewsOfOnePageAlignedSegment) {
  auto client = broker_->client();
  auto frame = client.create_frame(
      "ticks", FrameSpec{.columns = {{"t", "<M8[ns]"}, {"price", "<f8"}, {"sym", "|S4"}},
                         .rows = 1000, .index = "t"});
  ASSERT_TRUE(frame) << frame.error().message();
  EXPECT_EQ(frame->rows(), 1000u);
  ASSERT_EQ(frame->columns().size(), 3u);
  EXPECT_TRUE(frame->columns()[0].is_index);
  for (const auto& c : frame->columns()) {
    EXPECT_EQ((frame->array().info().data_offset + c.offset) % 4096, 0u) << c.name;
  }
  auto price = frame->column<double>("price");
  ASSERT_TRUE(price);
  EXPECT_EQ(price->size(), 1000u);
  (*price)[999] = 2.5;
  ASSERT_TRUE(frame->publish());

  auto reader = client.open_frame("ticks", Access::kReadOnly);
  ASSERT_TRUE(reader) << reader.error().message();
  EXPECT_EQ(reader->version(), 1u);
  auto seen = reader->column<const double>("price");
  ASSERT_TRUE(seen);
  EXPECT_EQ((*seen)[999], 2.5);
  EXPECT_EQ(reader->column<double>("price").error().code(), ErrorCode::kPermissionDenied);
  EXPECT_EQ(reader->column<const float>("price").error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(reader->column<const double>("nope").error().code(), ErrorCode::kNotFound);
  EXPECT_TRUE(reader->column<const std::int64_t>("t")) << "datetime64 columns view as counts";

  auto plain = client.create("plain", ArraySpec{.shape = {3}});
  ASSERT_TRUE(plain);
  auto not_frame = client.open_frame("plain", Access::kReadOnly);
  ASSERT_FALSE(not_frame);
  EXPECT_EQ(not_frame.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(client.create_frame("bad", FrameSpec{.columns = {{"__x", "<f8"}}, .rows = 1})
                .error()
                .code(),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(client.create_frame("bad", FrameSpec{.columns = {{"a", "<f8"}}, .rows = 1, .index = "b"})
                .error()
                .code(),
            ErrorCode::kInvalidArgument);
  ASSERT_TRUE(client.remove("ticks"));
  ASSERT_TRUE(client.remove("plain"));
}

// An array made by a layout 2 broker (header page and 1 KiB catalogue slot in the old format) is
// adopted by this one: its catalogue is upgraded, its header rewritten, its data kept.
TEST_F(DTypeTest, ArrayOfALayoutTwoBrokerIsAdoptedWithItsData) {
  std::string id;
  {
    auto client = broker_->client();
    auto arr = client.create("old", ArraySpec{.dtype = "<f8", .shape = {16}});
    ASSERT_TRUE(arr);
    id = arr->info().id;
    auto values = arr->as<double>();
    ASSERT_TRUE(values);
    for (std::size_t k = 0; k < values->size(); ++k) (*values)[k] = 0.5 * static_cast<double>(k);
    ASSERT_TRUE(arr->publish());
  }
  ASSERT_TRUE(broker_->stop().ok());
  // Rewrite what the old broker would have left: its catalogue record and the header page.
  const std::string catalogue = broker_->socket_path() + ".catalogue";
  auto recorded = server::Catalogue::open(catalogue);
  ASSERT_TRUE(recorded) << recorded.error().message();
  auto info = recorded->get(id);
  ASSERT_TRUE(info) << info.error().message();
  const LegacySegmentHeader old = legacy_header(*info, 2);
  std::vector<char> legacy_file(1024, 0);
  std::memcpy(legacy_file.data(), &old, sizeof old);
  std::ofstream(catalogue, std::ios::binary | std::ios::trunc)
      .write(legacy_file.data(), static_cast<std::streamsize>(legacy_file.size()));
  const auto segments = broker_->segments();
  ASSERT_EQ(segments.size(), 1u);
  {
    UniqueFd fd(::shm_open(("/" + segments[0]).c_str(), O_RDWR | O_CLOEXEC, 0));
    ASSERT_TRUE(fd);
    std::vector<char> page(sizeof(SegmentHeader), 0);
    std::memcpy(page.data(), &old, sizeof old);
    ASSERT_EQ(::pwrite(fd.get(), page.data(), page.size(), 0), static_cast<ssize_t>(page.size()));
  }
  broker_->restart();
  auto client = broker_->client();
  auto arr = client.open("old", Access::kReadOnly);
  ASSERT_TRUE(arr) << arr.error().message();
  EXPECT_EQ(arr->info().dtype, "<f8");
  EXPECT_EQ(arr->version(), 1u);
  auto values = arr->as<const double>();
  ASSERT_TRUE(values);
  for (std::size_t k = 0; k < values->size(); ++k) ASSERT_EQ((*values)[k], 0.5 * static_cast<double>(k));
  ASSERT_TRUE(client.remove("old"));
}


// The broker before the compact catalogue kept a 2 KiB slot per array (the whole SegmentHeader).
// A broker that finds such a file adopts every array in it (data, dtype, a long name, a chmod
// made under the old broker) and rewrites the file once in the compact layout.
TEST_F(DTypeTest, ArraysInACatalogueOfTwoKibSlotsAreAdoptedAndTheFileConverted) {
  const std::string long_name = "conv/" + std::string(240, 'x');
  std::vector<std::string> ids;
  {
    auto client = broker_->client();
    auto plain = client.create("conv/plain", ArraySpec{.dtype = "<i4", .shape = {4, 8}});
    ASSERT_TRUE(plain);
    auto values = plain->as<std::int32_t>();
    ASSERT_TRUE(values);
    for (std::size_t k = 0; k < values->size(); ++k) {
      (*values)[k] = static_cast<std::int32_t>(k * 3);
    }
    ASSERT_TRUE(plain->publish());
    ASSERT_TRUE(client.chmod("conv/plain", 0604));
    auto structured = client.create(long_name, ArraySpec{.dtype = fields(40), .shape = {3}});
    ASSERT_TRUE(structured) << structured.error().message();
    ids = {plain->info().id, structured->info().id};
  }
  ASSERT_TRUE(broker_->stop().ok());
  const std::string catalogue = broker_->socket_path() + ".catalogue";
  std::vector<char> old_file(3 * server::Catalogue::kOldSlotBytes, 0);  // slot 0 free
  {
    auto current = server::Catalogue::open(catalogue);
    ASSERT_TRUE(current) << current.error().message();
    for (std::size_t k = 0; k < ids.size(); ++k) {
      auto info = current->get(ids[k]);
      ASSERT_TRUE(info) << info.error().message();
      auto header = encode_segment_header(*info);
      ASSERT_TRUE(header);
      std::memcpy(old_file.data() + (k + 1) * server::Catalogue::kOldSlotBytes, &*header,
                  sizeof *header);
    }
  }
  std::ofstream(catalogue, std::ios::binary | std::ios::trunc)
      .write(old_file.data(), static_cast<std::streamsize>(old_file.size()));

  broker_->restart();
  auto client = broker_->client();
  auto plain = client.open("conv/plain", Access::kReadOnly);
  ASSERT_TRUE(plain) << plain.error().message();
  EXPECT_EQ(plain->info().mode, 0604u);
  EXPECT_EQ(plain->info().dtype, "<i4");
  EXPECT_EQ(plain->version(), 1u);
  auto values = plain->as<const std::int32_t>();
  ASSERT_TRUE(values);
  for (std::size_t k = 0; k < values->size(); ++k) {
    ASSERT_EQ((*values)[k], static_cast<std::int32_t>(k * 3));
  }
  auto structured = client.stat(long_name);
  ASSERT_TRUE(structured) << structured.error().message();
  EXPECT_EQ(structured->dtype, fields(40));
  {
    std::ifstream in(catalogue, std::ios::binary);
    char magic[8] = {};
    in.read(magic, sizeof magic);
    EXPECT_EQ(std::memcmp(magic, server::Catalogue::kFileMagic, sizeof magic), 0);
  }
  EXPECT_FALSE(std::filesystem::exists(catalogue + ".upgrading"));
  ASSERT_TRUE(client.remove("conv/plain"));
  ASSERT_TRUE(client.remove(long_name));
}

}  // namespace
}  // namespace shmarray::test
