// The broker's private catalogue (server/src/catalogue.hpp) and its records
// (catalogue_record.hpp): records round-trip every metadata field and survive a reopen, slots are
// reused, damaged records are dropped with the reason, files of older layouts (2 KiB and 1 KiB
// slots) are converted on open, and the file is refused unless it is private to the broker's user.
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
#include "catalogue_record.hpp"
#include "shmarray/segment_layout.hpp"
#include "shmarray/stream/stream_layout.hpp"
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
  EXPECT_GE(fs::file_size(path_), 302 * Catalogue::kSlotBytes);  // the file's head included
  EXPECT_LE(fs::file_size(path_), 2 * 302 * Catalogue::kSlotBytes);
  auto reopened = Catalogue::open(path_);
  ASSERT_TRUE(reopened);
  EXPECT_EQ(reopened->size(), 301u);
}

TEST_F(CatalogueTest, DamagedSlotsAreDroppedWithTheReasonAndTheRestKept) {
  {
    auto catalogue = Catalogue::open(path_);
    ASSERT_TRUE(catalogue);
    ASSERT_TRUE(catalogue->put(sample(kId1, "a")));  // slot 1 (slot 0 is the file's head)
    ASSERT_TRUE(catalogue->put(sample(kId2, "b")));  // slot 2
  }
  flip_byte(2 * Catalogue::kSlotBytes + 80);  // slot 2, its mode: bad checksum
  {
    std::ofstream(path_, std::ios::app | std::ios::binary) << "tail";  // a partial slot
  }
  auto catalogue = Catalogue::open(path_);
  ASSERT_TRUE(catalogue);
  EXPECT_THAT(catalogue->ids(), UnorderedElementsAre(kId1));
  ASSERT_THAT(catalogue->damaged(), SizeIs(2));
  EXPECT_THAT(catalogue->damaged()[0].reason, HasSubstr("partial slot of 4 bytes"));
  EXPECT_EQ(catalogue->damaged()[1].slot, 2u);
  EXPECT_THAT(catalogue->damaged()[1].reason, HasSubstr("checksum"));
  EXPECT_EQ(fs::file_size(path_) % Catalogue::kSlotBytes, 0u);

  // A record copied into a second slot: the second copy is dropped.
  ASSERT_TRUE(catalogue->put(sample(kId2, "b")));
  {
    std::vector<char> slot1(Catalogue::kSlotBytes);
    std::ifstream in(path_, std::ios::binary);
    in.seekg(static_cast<std::streamoff>(Catalogue::kSlotBytes));
    in.read(slot1.data(), static_cast<std::streamsize>(slot1.size()));
    std::fstream out(path_, std::ios::in | std::ios::out | std::ios::binary);
    out.seekp(static_cast<std::streamoff>(2 * Catalogue::kSlotBytes));
    out.write(slot1.data(), static_cast<std::streamsize>(slot1.size()));
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
// the compact layout (no upgrade file left behind), and a reopen reads the same.
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


// The largest record there is: a 255-byte name, 32 dimensions and a structured dtype of ~1,000
// bytes of text.
ArrayInfo largest(const std::string& id) {
  ArrayInfo info = sample(id, std::string(250, 'n') + id.substr(27));
  std::string fields;
  std::uint64_t offset = 0;
  for (int f = 0; fields.size() < 960; ++f, offset += 4) {
    fields += (f ? "," : "") + std::string("'f") + std::to_string(f) + "':<f4@" +
              std::to_string(offset);
  }
  info.dtype = "{" + fields + "}" + std::to_string(offset);
  info.itemsize = offset;
  info.shape.assign(kMaxNdim, 1);
  info.shape.back() = 2;
  info.strides.assign(kMaxNdim, static_cast<std::int64_t>(2 * offset));
  info.strides.back() = static_cast<std::int64_t>(offset);
  info.nbytes = 2 * offset;
  info.segment_bytes = *segment_size_for(info.nbytes);
  return info;
}

// A plain array's record fits one 256-byte slot; the largest one spans 8 slots, and records of
// every size, written, erased and rewritten in any order, lie within one page each (a reopen
// finds every one whole) and read back as written.
TEST_F(CatalogueTest, RecordsTakeOneSlotForAPlainArrayAndAFewForTheLargest) {
  auto plain = encode_catalogue_record(sample(kId1, "cam/0/frames/left"));
  ASSERT_TRUE(plain) << plain.error().message();
  EXPECT_LE(plain->size, Catalogue::kSlotBytes);
  const ArrayInfo big = largest(kId2);
  ASSERT_LE(big.dtype.size(), kMaxDTypeTextBytes);
  auto big_record = encode_catalogue_record(big);
  ASSERT_TRUE(big_record) << big_record.error().message();
  EXPECT_GT(big_record->size, 7 * Catalogue::kSlotBytes);
  EXPECT_LE(big_record->size, 8 * Catalogue::kSlotBytes);
  {
    auto catalogue = Catalogue::open(path_);
    ASSERT_TRUE(catalogue);
    for (unsigned i = 0; i < 40; ++i) {
      ASSERT_TRUE(catalogue->put(i % 3 == 0 ? largest(id_of(i)) : sample(id_of(i), "p")));
    }
    for (unsigned i = 0; i < 40; i += 4) catalogue->erase(id_of(i));
    for (unsigned i = 40; i < 60; ++i) {  // into the holes, where they fit
      ASSERT_TRUE(catalogue->put(i % 2 == 0 ? largest(id_of(i)) : sample(id_of(i), "q")));
    }
    ArrayInfo grown = largest(id_of(1));  // a record of another size replaces its old one
    ASSERT_TRUE(catalogue->put(grown));
    EXPECT_EQ(catalogue->size(), 50u);
  }
  auto catalogue = Catalogue::open(path_);
  ASSERT_TRUE(catalogue);
  EXPECT_THAT(catalogue->damaged(), IsEmpty());
  ASSERT_EQ(catalogue->size(), 50u);
  for (unsigned i = 0; i < 60; ++i) {
    auto info = catalogue->get(id_of(i));
    if (i < 40 && i % 4 == 0) {
      EXPECT_FALSE(info);
      continue;
    }
    ASSERT_TRUE(info) << i << ": " << info.error().message();
    const bool is_big = i == 1 || (i < 40 ? i % 3 == 0 : i % 2 == 0);
    EXPECT_EQ(info->shape.size(), is_big ? kMaxNdim : 2u) << i;
    EXPECT_EQ(info->dtype, is_big ? big.dtype : "<f8") << i;
  }
  // 40 plain records and 10 of 8 slots, in pages of 16: well under the 2 KiB slots of before.
  EXPECT_LE(fs::file_size(path_), 2 * (1 + 40 + 10 * 16) * Catalogue::kSlotBytes);
}

// A record is held to every check a header is, and keeps what a stream keeps past its ndim.
TEST_F(CatalogueTest, RecordsDecodeOnlyWhenWholeAndKeepAStreamsParameters) {
  StreamSpec spec;
  spec.slots = 16;
  spec.slot_bytes = 5000;
  spec.history = 3;
  spec.max_subscribers = 7;
  spec.overflow = Overflow::kDropOldest;
  auto geometry = stream::stream_geometry(spec);
  ASSERT_TRUE(geometry);
  ArrayInfo stream_info = sample(kId1, "cam/stream");
  stream::describe_stream_segment(stream_info, *geometry);
  auto record = encode_catalogue_record(stream_info);
  ASSERT_TRUE(record) << record.error().message();
  std::vector<std::byte> slot(Catalogue::kSlotBytes, std::byte{0});
  std::memcpy(slot.data(), record->bytes.data(), record->size);
  auto back = decode_catalogue_record(slot);
  ASSERT_TRUE(back) << back.error().message();
  EXPECT_EQ(back->kind, ObjectKind::kStream);
  EXPECT_EQ(back->stream.slots, 16u);
  EXPECT_EQ(back->stream.slot_bytes, 5000u);
  EXPECT_EQ(back->stream.history, 3u);
  EXPECT_EQ(back->stream.max_subscribers, 7u);
  EXPECT_EQ(back->stream.overflow, Overflow::kDropOldest);
  EXPECT_EQ(back->name, "cam/stream");
  // Its header is the header the broker writes into the segment, byte for byte.
  auto from_record = encode_segment_header(*back);
  auto from_info = encode_segment_header(stream_info);
  ASSERT_TRUE(from_record && from_info);
  EXPECT_EQ(std::memcmp(&*from_record, &*from_info, sizeof(SegmentHeader)), 0);

  for (std::size_t at = 0; at < record->size; at += 7) {  // any byte changed: refused
    std::vector<std::byte> bad = slot;
    bad[at] ^= std::byte{0x20};
    EXPECT_FALSE(decode_catalogue_record(bad)) << "byte " << at;
  }
  std::vector<std::byte> tail = slot;
  tail.back() = std::byte{1};
  EXPECT_THAT(decode_catalogue_record(tail).error().message(), HasSubstr("after the record"));
  EXPECT_FALSE(decode_catalogue_record(std::span(slot).first(record->size - 1)));
}

// The catalogue of the broker before this layout (2 KiB slots, each a whole layout 3
// SegmentHeader) is converted on open: every sound record kept with every field, the damaged one
// and the partial slot reported, the file rewritten in 256-byte slots and renamed over the old one
// (no conversion file left), private, and a reopen reads the same without converting again.
TEST_F(CatalogueTest, CatalogueOfTwoKibSlotsIsConvertedOnOpenWithNoRecordLost) {
  ArrayInfo a = sample(kId1, "old/a");
  a.mode = 0604;
  const ArrayInfo b = largest(kId2);
  const std::string id3 = "00112233445566778899aabbccddeeff";
  std::vector<char> file(5 * Catalogue::kOldSlotBytes + 100, 0);
  for (auto [slot, info] : {std::pair{0, a}, std::pair{2, b}, std::pair{3, sample(id3, "c")}}) {
    auto header = encode_segment_header(info);
    ASSERT_TRUE(header);
    std::memcpy(file.data() + slot * Catalogue::kOldSlotBytes, &*header, sizeof *header);
  }
  file[3 * Catalogue::kOldSlotBytes + offsetof(SegmentHeader, mode)] ^= 1;  // damaged
  std::ofstream(path_, std::ios::binary)
      .write(file.data(), static_cast<std::streamsize>(file.size()));
  ASSERT_EQ(::chmod(path_.c_str(), 0600), 0);

  for (int pass = 0; pass < 2; ++pass) {
    SCOPED_TRACE(pass == 0 ? "converting open" : "reopen");
    auto catalogue = Catalogue::open(path_);
    ASSERT_TRUE(catalogue) << catalogue.error().message();
    EXPECT_THAT(catalogue->ids(), UnorderedElementsAre(kId1, kId2));
    if (pass == 0) {
      ASSERT_THAT(catalogue->damaged(), SizeIs(2));
      EXPECT_EQ(catalogue->damaged()[0].slot, 3u);
      EXPECT_THAT(catalogue->damaged()[0].reason, HasSubstr("checksum"));
      EXPECT_THAT(catalogue->damaged()[0].reason, HasSubstr("2048-byte slots"));
      EXPECT_THAT(catalogue->damaged()[1].reason, HasSubstr("partial slot of 100 bytes"));
    } else {
      EXPECT_THAT(catalogue->damaged(), IsEmpty());
    }
    auto back = catalogue->get(kId1);
    ASSERT_TRUE(back) << back.error().message();
    EXPECT_EQ(back->name, "old/a");
    EXPECT_EQ(back->mode, 0604u);
    EXPECT_EQ(back->owner_uid, a.owner_uid);
    EXPECT_EQ(back->created_unix_ns, a.created_unix_ns);
    EXPECT_TRUE(back->ephemeral);
    auto big = catalogue->get(kId2);
    ASSERT_TRUE(big) << big.error().message();
    EXPECT_EQ(big->name, b.name);
    EXPECT_EQ(big->dtype, b.dtype);
    EXPECT_EQ(big->shape, b.shape);
    EXPECT_FALSE(fs::exists(path_ + ".upgrading"));
    std::ifstream in(path_, std::ios::binary);
    char magic[8] = {};
    in.read(magic, sizeof magic);
    EXPECT_EQ(std::memcmp(magic, Catalogue::kFileMagic, sizeof magic), 0);
    EXPECT_EQ(fs::file_size(path_) % Catalogue::kSlotBytes, 0u);
  }
  struct stat st{};
  ASSERT_EQ(::stat(path_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

// A file cut inside its head (shorter than one slot) gets its head back: the records written next
// are found by the next open, not taken for an old layout's file.
TEST_F(CatalogueTest, AHeadCutShortIsWrittenAgain) {
  std::string cut(100, '\0');
  std::memcpy(cut.data(), Catalogue::kFileMagic, sizeof Catalogue::kFileMagic);
  std::ofstream(path_, std::ios::binary) << cut;
  ASSERT_EQ(::chmod(path_.c_str(), 0600), 0);
  {
    auto catalogue = Catalogue::open(path_);
    ASSERT_TRUE(catalogue) << catalogue.error().message();
    ASSERT_THAT(catalogue->damaged(), SizeIs(1));
    EXPECT_THAT(catalogue->damaged()[0].reason, HasSubstr("partial slot of 100 bytes"));
    ASSERT_TRUE(catalogue->put(sample(kId1, "a")));
  }
  auto catalogue = Catalogue::open(path_);
  ASSERT_TRUE(catalogue);
  EXPECT_THAT(catalogue->damaged(), IsEmpty());
  EXPECT_THAT(catalogue->ids(), UnorderedElementsAre(kId1));
}

// A file in a later layout of this format is refused, not converted (converting would drop it).
TEST_F(CatalogueTest, ANewerLayoutIsRefusedWithTheRemedy) {
  std::string head(Catalogue::kSlotBytes, '\0');
  std::memcpy(head.data(), Catalogue::kFileMagic, sizeof Catalogue::kFileMagic);
  head[7] = '9';
  std::ofstream(path_, std::ios::binary) << head;
  ASSERT_EQ(::chmod(path_.c_str(), 0600), 0);
  auto refused = Catalogue::open(path_);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code(), ErrorCode::kFailedPrecondition);
  EXPECT_THAT(refused.error().message(), HasSubstr("newer"));
  EXPECT_EQ(fs::file_size(path_), Catalogue::kSlotBytes);
}

}  // namespace
}  // namespace shmarray::server
