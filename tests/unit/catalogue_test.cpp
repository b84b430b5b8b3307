// The broker's private catalogue (server/src/catalogue.hpp): records round-trip every metadata
// field, replacing is atomic, damaged records are refused with the reason, and the directory is
// refused unless it is private to the broker's user.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "catalogue.hpp"
#include "shmarray/segment_layout.hpp"

namespace shmarray::server {
namespace {

using ::testing::HasSubstr;
using ::testing::UnorderedElementsAre;

namespace fs = std::filesystem;

class CatalogueTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/shmarray-catalogue-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    root_ = tmpl;
    dir_ = root_ + "/s.sock.catalogue";
  }
  void TearDown() override {
    std::error_code ignored;
    fs::remove_all(root_, ignored);
  }

  static ArrayInfo sample(const std::string& id, const std::string& name) {
    ArrayInfo info;
    info.name = name;
    info.dtype = "<f4";
    info.shape = {3, 5};
    info.strides = {20, 4};
    info.order = Order::kC;
    info.itemsize = 4;
    info.nbytes = 60;
    info.data_offset = kHeaderBytes;
    info.segment_bytes = *segment_size_for(60);
    info.id = id;
    info.owner_uid = 1234;
    info.owner_gid = 5678;
    info.mode = 0640;
    info.created_unix_ns = 1'700'000'000'123'456'789;
    info.ephemeral = true;
    return info;
  }

  std::string root_;
  std::string dir_;
};

const std::string kId1 = "0123456789abcdef0123456789abcdef";
const std::string kId2 = "fedcba9876543210fedcba9876543210";

TEST_F(CatalogueTest, CreatesAPrivateDirectoryAndRoundTripsEveryField) {
  auto catalogue = Catalogue::open(dir_);
  ASSERT_TRUE(catalogue) << catalogue.error().message();
  struct stat st{};
  ASSERT_EQ(::stat(dir_.c_str(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0700u);

  const ArrayInfo info = sample(kId1, "cam/frames");
  ASSERT_TRUE(catalogue->put(info));
  auto back = catalogue->get(kId1);
  ASSERT_TRUE(back) << back.error().message();
  EXPECT_EQ(back->name, info.name);
  EXPECT_EQ(back->dtype, info.dtype);
  EXPECT_EQ(back->shape, info.shape);
  EXPECT_EQ(back->strides, info.strides);
  EXPECT_EQ(back->nbytes, info.nbytes);
  EXPECT_EQ(back->segment_bytes, info.segment_bytes);
  EXPECT_EQ(back->id, info.id);
  EXPECT_EQ(back->owner_uid, 1234u);
  EXPECT_EQ(back->owner_gid, 5678u);
  EXPECT_EQ(back->mode, 0640u);
  EXPECT_EQ(back->created_unix_ns, info.created_unix_ns);
  EXPECT_TRUE(back->ephemeral);
  // Record files are private too.
  ASSERT_EQ(::stat((dir_ + "/" + kId1).c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST_F(CatalogueTest, PutReplacesEraseForgetsAndIdsListOnlyRecords) {
  auto catalogue = Catalogue::open(dir_);
  ASSERT_TRUE(catalogue);
  ASSERT_TRUE(catalogue->put(sample(kId1, "a")));
  ASSERT_TRUE(catalogue->put(sample(kId2, "b")));
  ArrayInfo changed = sample(kId1, "a");
  changed.mode = 0604;
  ASSERT_TRUE(catalogue->put(changed));
  EXPECT_EQ(catalogue->get(kId1)->mode, 0604u);
  // An interrupted put leaves a temporary: not a record, and removed on request.
  std::ofstream(dir_ + "/" + kId2 + ".tmp") << "half";
  std::ofstream(dir_ + "/README") << "not ours";
  EXPECT_THAT(catalogue->ids(), UnorderedElementsAre(kId1, kId2));
  EXPECT_EQ(catalogue->remove_temporaries(), 1u);
  EXPECT_FALSE(fs::exists(dir_ + "/" + kId2 + ".tmp"));
  EXPECT_TRUE(fs::exists(dir_ + "/README"));

  catalogue->erase(kId2);
  catalogue->erase(kId2);  // twice: not an error
  EXPECT_THAT(catalogue->ids(), UnorderedElementsAre(kId1));
  EXPECT_EQ(catalogue->get(kId2).error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(catalogue->get("../../etc/passwd").error().code(), ErrorCode::kInvalidArgument);
  catalogue->erase("../README");  // not an id: ignored
  EXPECT_TRUE(fs::exists(dir_ + "/README"));
}

TEST_F(CatalogueTest, DamagedRecordsAreRefusedWithTheReason) {
  auto catalogue = Catalogue::open(dir_);
  ASSERT_TRUE(catalogue);
  ASSERT_TRUE(catalogue->put(sample(kId1, "a")));
  const std::string path = dir_ + "/" + kId1;
  const auto size = fs::file_size(path);

  fs::resize_file(path, size - 1);  // truncated
  auto truncated = catalogue->get(kId1);
  ASSERT_FALSE(truncated);
  EXPECT_EQ(truncated.error().code(), ErrorCode::kProtocolError);
  EXPECT_THAT(truncated.error().message(), HasSubstr("bytes, expected"));

  ASSERT_TRUE(catalogue->put(sample(kId1, "a")));
  {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(offsetof(SegmentHeader, mode)));
    f.put('\x07');  // a bit flip: the checksum no longer matches
  }
  auto flipped = catalogue->get(kId1);
  ASSERT_FALSE(flipped);
  EXPECT_THAT(flipped.error().message(), HasSubstr("checksum"));

  // A valid record filed under another id.
  ASSERT_TRUE(catalogue->put(sample(kId2, "b")));
  fs::copy_file(dir_ + "/" + kId2, path, fs::copy_options::overwrite_existing);
  auto misfiled = catalogue->get(kId1);
  ASSERT_FALSE(misfiled);
  EXPECT_THAT(misfiled.error().message(), HasSubstr("describes array id " + kId2));
}

TEST_F(CatalogueTest, RefusesADirectoryOthersCouldWriteOrALink) {
  ASSERT_EQ(::mkdir(dir_.c_str(), 0755), 0);
  ASSERT_EQ(::chmod(dir_.c_str(), 0755), 0);  // whatever the umask
  auto open_to_others = Catalogue::open(dir_);
  ASSERT_FALSE(open_to_others);
  EXPECT_EQ(open_to_others.error().code(), ErrorCode::kFailedPrecondition);
  EXPECT_THAT(open_to_others.error().message(), HasSubstr("mode 0700"));
  EXPECT_THAT(open_to_others.error().message(), HasSubstr("mode 0755"));

  ASSERT_EQ(::rmdir(dir_.c_str()), 0);
  const std::string elsewhere = root_ + "/elsewhere";
  ASSERT_EQ(::mkdir(elsewhere.c_str(), 0700), 0);
  ASSERT_EQ(::symlink(elsewhere.c_str(), dir_.c_str()), 0);
  auto link = Catalogue::open(dir_);
  ASSERT_FALSE(link);
  EXPECT_EQ(link.error().code(), ErrorCode::kFailedPrecondition);
  EXPECT_THAT(link.error().message(), HasSubstr("not a link"));

  ASSERT_EQ(::unlink(dir_.c_str()), 0);
  std::ofstream(dir_) << "a file";
  EXPECT_FALSE(Catalogue::open(dir_));

  if (::geteuid() == 0) {
    ASSERT_EQ(::unlink(dir_.c_str()), 0);
    ASSERT_EQ(::mkdir(dir_.c_str(), 0700), 0);
    ASSERT_EQ(::chown(dir_.c_str(), 65534, 65534), 0);  // nobody's
    auto foreign = Catalogue::open(dir_);
    ASSERT_FALSE(foreign);
    EXPECT_THAT(foreign.error().message(), HasSubstr("owned by uid 65534"));
  }
}

TEST_F(CatalogueTest, EncodedHeaderIsDeterministicAndMatchesTheSegmentHeader) {
  // Recovery compares a segment's header page with the record byte for byte.
  const ArrayInfo info = sample(kId1, "x");
  auto a = encode_segment_header(info);
  auto b = encode_segment_header(info);
  ASSERT_TRUE(a && b);
  EXPECT_EQ(std::memcmp(&*a, &*b, sizeof *a), 0);
  std::vector<std::byte> segment(kHeaderBytes * 2);
  ASSERT_TRUE(init_segment_header(segment, info));
  EXPECT_EQ(std::memcmp(segment.data(), &*a, sizeof *a), 0);
}

}  // namespace
}  // namespace shmarray::server
