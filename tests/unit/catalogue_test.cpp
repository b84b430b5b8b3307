// The broker's private catalogue (server/src/catalogue.hpp): records round-trip every metadata
// field and survive a reopen, slots are reused, damaged slots are dropped with the reason, and
// the file is refused unless it is private to the broker's user.
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
#include "unit_support.hpp"

namespace shmarray::server {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;
using ::testing::UnorderedElementsAre;

namespace fs = std::filesystem;

const std::string kId1 = "0123456789abcdef0123456789abcdef";
const std::string kId2 = "fedcba9876543210fedcba9876543210";

ArrayInfo sample(const std::string& id, const std::string& name) {
  return test::sample_array_info(id, name);
}

// A 32-hex-digit id from a number.
std::string id_of(unsigned n) {
  char buf[33];
  std::snprintf(buf, sizeof buf, "%032x", n);
  return buf;
}

class CatalogueTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/shmarray-catalogue-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    root_ = tmpl;
    path_ = root_ + "/s.sock.catalogue";
  }
  void TearDown() override {
    std::error_code ignored;
    fs::remove_all(root_, ignored);
  }

  // Flips one byte of the file.
  void flip_byte(std::uint64_t offset) const {
    std::fstream f(path_, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(static_cast<std::streamoff>(offset));
    const char c = static_cast<char>(f.get());
    f.seekp(static_cast<std::streamoff>(offset));
    f.put(static_cast<char>(c ^ 0x5a));
  }

  std::string root_;
  std::string path_;
};

TEST_F(CatalogueTest, CreatesAPrivateFileAndRoundTripsEveryFieldAcrossAReopen) {
  {
    auto catalogue = Catalogue::open(path_);
    ASSERT_TRUE(catalogue) << catalogue.error().message();
    EXPECT_EQ(catalogue->size(), 0u);
    ASSERT_TRUE(catalogue->put(sample(kId1, "cam/frames")));
  }
  struct stat st{};
  ASSERT_EQ(::stat(path_.c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  auto catalogue = Catalogue::open(path_);
  ASSERT_TRUE(catalogue);
  EXPECT_THAT(catalogue->damaged(), IsEmpty());
  const ArrayInfo info = sample(kId1, "cam/frames");
  auto back = catalogue->get(kId1);
  ASSERT_TRUE(back) << back.error().message();
  EXPECT_EQ(back->name, info.name);
  EXPECT_EQ(back->dtype, info.dtype);
  EXPECT_EQ(back->shape, info.shape);
  EXPECT_EQ(back->strides, info.strides);
  EXPECT_EQ(back->nbytes, info.nbytes);
  EXPECT_EQ(back->segment_bytes, info.segment_bytes);
  EXPECT_EQ(back->id, info.id);
  EXPECT_EQ(back->owner_uid, info.owner_uid);
  EXPECT_EQ(back->owner_gid, info.owner_gid);
  EXPECT_EQ(back->mode, info.mode);
  EXPECT_EQ(back->created_unix_ns, info.created_unix_ns);
  EXPECT_TRUE(back->ephemeral);
}

TEST_F(CatalogueTest, PutReplacesEraseForgetsAndSlotsAreReused) {
  {
    auto catalogue = Catalogue::open(path_);
    ASSERT_TRUE(catalogue);
    ASSERT_TRUE(catalogue->put(sample(kId1, "a")));
    ASSERT_TRUE(catalogue->put(sample(kId2, "b")));
    ArrayInfo changed = sample(kId1, "a");
    changed.mode = 0604;
    ASSERT_TRUE(catalogue->put(changed));  // in place: still two records
    EXPECT_EQ(catalogue->size(), 2u);
    EXPECT_EQ(catalogue->get(kId1)->mode, 0604u);
    catalogue->erase(kId2);
    catalogue->erase(kId2);          // twice: not an error
    catalogue->erase("not-an-id");   // unknown: ignored
    EXPECT_THAT(catalogue->ids(), UnorderedElementsAre(kId1));
    EXPECT_EQ(catalogue->get(kId2).error().code(), ErrorCode::kNotFound);
  }
  auto catalogue = Catalogue::open(path_);
  ASSERT_TRUE(catalogue);
  EXPECT_THAT(catalogue->ids(), UnorderedElementsAre(kId1));
  EXPECT_EQ(catalogue->get(kId1)->mode, 0604u);

  // Churn: a thousand creates and removes keep the file at the size of the peak.
  const auto size_before = fs::file_size(path_);
  for (unsigned i = 0; i < 1000; ++i) {
    ASSERT_TRUE(catalogue->put(sample(id_of(i + 100), "churn")));
    catalogue->erase(id_of(i + 100));
  }
  EXPECT_EQ(fs::file_size(path_), size_before);
  // Many records grow it, a slot each (plus the doubling's spare room).
  for (unsigned i = 0; i < 300; ++i) ASSERT_TRUE(catalogue->put(sample(id_of(i + 5000), "x")));
  EXPECT_EQ(catalogue->size(), 301u);
  EXPECT_GE(fs::file_size(path_), 301 * Catalogue::kSlotBytes);
  EXPECT_LE(fs::file_size(path_), 2 * 301 * Catalogue::kSlotBytes);
  auto reopened = Catalogue::open(path_);
  ASSERT_TRUE(reopened);
  EXPECT_EQ(reopened->size(), 301u);
}

TEST_F(CatalogueTest, DamagedSlotsAreDroppedWithTheReasonAndTheRestKept) {
  {
    auto catalogue = Catalogue::open(path_);
    ASSERT_TRUE(catalogue);
    ASSERT_TRUE(catalogue->put(sample(kId1, "a")));  // slot 0
    ASSERT_TRUE(catalogue->put(sample(kId2, "b")));  // slot 1
  }
  flip_byte(Catalogue::kSlotBytes + offsetof(SegmentHeader, mode));  // slot 1: bad checksum
  {
    std::ofstream(path_, std::ios::app | std::ios::binary) << "tail";  // a partial slot
  }
  auto catalogue = Catalogue::open(path_);
  ASSERT_TRUE(catalogue);
  EXPECT_THAT(catalogue->ids(), UnorderedElementsAre(kId1));
  ASSERT_THAT(catalogue->damaged(), SizeIs(2));
  EXPECT_THAT(catalogue->damaged()[0].reason, HasSubstr("partial slot of 4 bytes"));
  EXPECT_EQ(catalogue->damaged()[1].slot, 1u);
  EXPECT_THAT(catalogue->damaged()[1].reason, HasSubstr("checksum"));
  EXPECT_EQ(fs::file_size(path_) % Catalogue::kSlotBytes, 0u);

  // A record copied into a second slot: the second copy is dropped.
  ASSERT_TRUE(catalogue->put(sample(kId2, "b")));
  {
    std::vector<char> slot0(Catalogue::kSlotBytes);
    std::ifstream in(path_, std::ios::binary);
    in.read(slot0.data(), static_cast<std::streamsize>(slot0.size()));
    std::fstream out(path_, std::ios::in | std::ios::out | std::ios::binary);
    out.seekp(static_cast<std::streamoff>(Catalogue::kSlotBytes));
    out.write(slot0.data(), static_cast<std::streamsize>(slot0.size()));
  }
  auto again = Catalogue::open(path_);
  ASSERT_TRUE(again);
  EXPECT_THAT(again->ids(), UnorderedElementsAre(kId1));
  ASSERT_THAT(again->damaged(), SizeIs(1));
  EXPECT_THAT(again->damaged()[0].reason, HasSubstr("a second record of array id " + kId1));
  // Dropped slots were cleared: the next open finds nothing wrong.
  auto third = Catalogue::open(path_);
  ASSERT_TRUE(third);
  EXPECT_THAT(third->damaged(), IsEmpty());
}

TEST_F(CatalogueTest, RefusesAFileOthersCouldWriteALinkOrADirectory) {
  std::ofstream(path_) << "";
  ASSERT_EQ(::chmod(path_.c_str(), 0644), 0);
  auto open_to_others = Catalogue::open(path_);
  ASSERT_FALSE(open_to_others);
  EXPECT_EQ(open_to_others.error().code(), ErrorCode::kFailedPrecondition);
  EXPECT_THAT(open_to_others.error().message(), HasSubstr("mode 0600"));
  EXPECT_THAT(open_to_others.error().message(), HasSubstr("mode 0644"));

  ASSERT_EQ(::chmod(path_.c_str(), 0600), 0);
  const std::string hard_link = root_ + "/hard";
  ASSERT_EQ(::link(path_.c_str(), hard_link.c_str()), 0);
  auto linked = Catalogue::open(path_);
  ASSERT_FALSE(linked);
  EXPECT_THAT(linked.error().message(), HasSubstr("2 link(s)"));
  ASSERT_EQ(::unlink(hard_link.c_str()), 0);
  EXPECT_TRUE(Catalogue::open(path_));

  ASSERT_EQ(::unlink(path_.c_str()), 0);
  const std::string elsewhere = root_ + "/elsewhere";
  std::ofstream(elsewhere) << "";
  ASSERT_EQ(::chmod(elsewhere.c_str(), 0600), 0);
  ASSERT_EQ(::symlink(elsewhere.c_str(), path_.c_str()), 0);
  auto symlinked = Catalogue::open(path_);
  ASSERT_FALSE(symlinked);
  EXPECT_EQ(symlinked.error().code(), ErrorCode::kFailedPrecondition);
  EXPECT_THAT(symlinked.error().message(), HasSubstr("symbolic link"));

  ASSERT_EQ(::unlink(path_.c_str()), 0);
  ASSERT_EQ(::mkdir(path_.c_str(), 0700), 0);
  EXPECT_FALSE(Catalogue::open(path_));
  ASSERT_EQ(::rmdir(path_.c_str()), 0);

  if (::geteuid() == 0) {
    std::ofstream(path_) << "";
    ASSERT_EQ(::chmod(path_.c_str(), 0600), 0);
    ASSERT_EQ(::chown(path_.c_str(), 65534, 65534), 0);  // nobody's
    auto foreign = Catalogue::open(path_);
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

// A catalogue written by a broker before layout 3 (1 KiB slots of layout 2 headers, one free
// slot between two records) is upgraded on open: every record readable, the file rewritten in
// 2 KiB slots (no upgrade file left behind), and a reopen reads the same.
TEST_F(CatalogueTest, LegacyCatalogueOfOneKibSlotsIsUpgradedOnOpen) {
  {
    std::vector<char> file(3 * Catalogue::kLegacySlotBytes, 0);
    const auto a = test::legacy_header(sample(kId1, "old/a"), 2);
    const auto b = test::legacy_header(sample(kId2, "old/b"), 1);
    std::memcpy(file.data(), &a, sizeof a);
    std::memcpy(file.data() + 2 * Catalogue::kLegacySlotBytes, &b, sizeof b);
    std::ofstream(path_, std::ios::binary).write(file.data(), static_cast<std::streamsize>(file.size()));
    ASSERT_EQ(::chmod(path_.c_str(), 0600), 0);
  }
  for (int pass = 0; pass < 2; ++pass) {
    SCOPED_TRACE(pass == 0 ? "upgrading open" : "reopen");
    auto catalogue = Catalogue::open(path_);
    ASSERT_TRUE(catalogue) << catalogue.error().message();
    EXPECT_THAT(catalogue->damaged(), IsEmpty());
    EXPECT_THAT(catalogue->ids(), UnorderedElementsAre(kId1, kId2));
    auto a = catalogue->get(kId1);
    ASSERT_TRUE(a) << a.error().message();
    EXPECT_EQ(a->name, "old/a");
    EXPECT_EQ(a->dtype, "<f8");
    EXPECT_EQ(catalogue->get(kId2)->name, "old/b");
    EXPECT_EQ(fs::file_size(path_) % Catalogue::kSlotBytes, 0u);
    EXPECT_FALSE(fs::exists(path_ + ".upgrading"));
  }
  struct stat st{};
  ASSERT_EQ(::stat(path_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

// A record of a structured dtype (longer than a layout 2 header could hold) round-trips.
TEST_F(CatalogueTest, StructuredDtypeRecordRoundTrips) {
  ArrayInfo info = sample(kId1, "pts");
  info.dtype = "{'x':<f4@0,'y':<f4@4,'z':<f4@8,'i':<u2@12}16";
  info.itemsize = 16;
  info.shape = {3};
  info.strides = {16};
  info.nbytes = 48;
  {
    auto catalogue = Catalogue::open(path_);
    ASSERT_TRUE(catalogue);
    ASSERT_TRUE(catalogue->put(info));
  }
  auto catalogue = Catalogue::open(path_);
  ASSERT_TRUE(catalogue);
  auto back = catalogue->get(kId1);
  ASSERT_TRUE(back) << back.error().message();
  EXPECT_EQ(back->dtype, info.dtype);
}

}  // namespace
}  // namespace shmarray::server
