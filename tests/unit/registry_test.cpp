// The broker's catalogue: lookup, prefix listing, the limits check_capacity enforces (and how its
// messages tell the operator which flag to raise), byte bookkeeping, and what a closing session
// releases. Records carry a Segment that is only adopted, never created or unlinked.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <set>
#include <string>
#include <vector>

#include "registry.hpp"

namespace shmarray::server {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::UnorderedElementsAre;

// Does not exist in /dev/shm; records only carry the name. Never unlinked.
constexpr const char* kUnusedSegment = "/shmarray-test-unused";

ArrayRecord make_record(const std::string& name, std::uint32_t uid, std::uint64_t bytes,
                        SessionId creator = 1, bool ephemeral = false,
                        std::set<SessionId> open_by = {}) {
  ArrayInfo info;
  info.name = name;
  info.dtype = "|u1";
  info.shape = {bytes};
  info.strides = {1};
  info.itemsize = 1;
  info.nbytes = bytes;
  info.segment_bytes = bytes;
  info.owner_uid = uid;
  info.ephemeral = ephemeral;
  if (open_by.empty()) open_by = {creator};
  return ArrayRecord{std::move(info), Segment::adopt(kUnusedSegment), creator, std::move(open_by)};
}

std::vector<std::string> names_of(const std::vector<const ArrayRecord*>& records) {
  std::vector<std::string> out;
  for (const ArrayRecord* r : records) out.push_back(r->info.name);
  return out;
}

RegistryLimits no_limits() { return RegistryLimits{}; }

// --- insert / find / erase --------------------------------------------------------------------

TEST(Registry, FindsWhatWasInserted) {
  Registry registry(no_limits());
  ArrayRecord& inserted = registry.insert(make_record("a", 1000, 4096, 7));
  EXPECT_EQ(inserted.info.name, "a");
  EXPECT_EQ(registry.size(), 1u);
  ArrayRecord* found = registry.find("a");
  ASSERT_NE(found, nullptr);
  EXPECT_EQ(found, &inserted);
  EXPECT_EQ(found->creator, 7u);
  EXPECT_EQ(found->segment.shm_name(), kUnusedSegment);
  const Registry& const_registry = registry;
  EXPECT_EQ(const_registry.find("a"), found);
}

TEST(Registry, FindOfAnAbsentNameIsNull) {
  Registry registry(no_limits());
  registry.insert(make_record("cam/0", 1000, 10));
  EXPECT_EQ(registry.find("cam"), nullptr);
  EXPECT_EQ(registry.find("cam/0/"), nullptr);
  EXPECT_EQ(registry.find(""), nullptr);
}

TEST(Registry, EraseReturnsTheRecordAndForgetsIt) {
  Registry registry(no_limits());
  registry.insert(make_record("a", 1000, 4096, 3));
  registry.insert(make_record("b", 1000, 8192, 4));
  auto erased = registry.erase("a");
  ASSERT_TRUE(erased.has_value());
  EXPECT_EQ(erased->info.name, "a");
  EXPECT_EQ(erased->creator, 3u);
  EXPECT_EQ(registry.find("a"), nullptr);
  EXPECT_NE(registry.find("b"), nullptr);
  EXPECT_EQ(registry.size(), 1u);
}

TEST(Registry, EraseOfAnAbsentNameIsNulloptAndChangesNothing) {
  Registry registry(no_limits());
  registry.insert(make_record("a", 1000, 4096));
  EXPECT_FALSE(registry.erase("b").has_value());
  EXPECT_EQ(registry.size(), 1u);
  EXPECT_EQ(registry.total_bytes(), 4096u);
}

TEST(Registry, NameCanBeReusedAfterErase) {
  Registry registry(no_limits());
  registry.insert(make_record("a", 1000, 4096, 1));
  ASSERT_TRUE(registry.erase("a").has_value());
  registry.insert(make_record("a", 2000, 100, 2));
  ASSERT_NE(registry.find("a"), nullptr);
  EXPECT_EQ(registry.find("a")->creator, 2u);
  EXPECT_EQ(registry.total_bytes(), 100u);
  EXPECT_EQ(registry.bytes_of(1000), 0u);
  EXPECT_EQ(registry.bytes_of(2000), 100u);
}

// --- bookkeeping ------------------------------------------------------------------------------

TEST(Registry, TotalAndPerUserBytesFollowInsertAndErase) {
  Registry registry(no_limits());
  EXPECT_EQ(registry.total_bytes(), 0u);
  registry.insert(make_record("a", 1000, 4096));
  registry.insert(make_record("b", 1000, 8192));
  registry.insert(make_record("c", 2000, 12288));
  EXPECT_EQ(registry.total_bytes(), 24576u);
  EXPECT_EQ(registry.bytes_of(1000), 12288u);
  EXPECT_EQ(registry.bytes_of(2000), 12288u);
  EXPECT_EQ(registry.bytes_of(3000), 0u);

  ASSERT_TRUE(registry.erase("b").has_value());
  EXPECT_EQ(registry.total_bytes(), 16384u);
  EXPECT_EQ(registry.bytes_of(1000), 4096u);
  ASSERT_TRUE(registry.erase("a").has_value());
  EXPECT_EQ(registry.bytes_of(1000), 0u);
  ASSERT_TRUE(registry.erase("c").has_value());
  EXPECT_EQ(registry.total_bytes(), 0u);
  EXPECT_EQ(registry.size(), 0u);
}

TEST(Registry, BookkeepingUsesSegmentBytesNotNbytes) {
  Registry registry(no_limits());
  ArrayRecord record = make_record("a", 1000, 10);
  record.info.segment_bytes = 8192;
  registry.insert(std::move(record));
  EXPECT_EQ(registry.total_bytes(), 8192u);
  EXPECT_EQ(registry.bytes_of(1000), 8192u);
}

// --- with_prefix ------------------------------------------------------------------------------

class RegistryPrefixTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* name : {"dog", "cam/1", "camera", "cam/0", "ca", "cam/10", "cam/0/x", "cam"}) {
      registry_.insert(make_record(name, 1000, 1));
    }
  }
  Registry registry_{no_limits()};
};

TEST_F(RegistryPrefixTest, SlashPrefixListsOnlyThatDirectoryInNameOrder) {
  EXPECT_THAT(names_of(registry_.with_prefix("cam/")),
              ElementsAre("cam/0", "cam/0/x", "cam/1", "cam/10"));
}

TEST_F(RegistryPrefixTest, PlainPrefixIsAStringPrefix) {
  EXPECT_THAT(names_of(registry_.with_prefix("cam")),
              ElementsAre("cam", "cam/0", "cam/0/x", "cam/1", "cam/10", "camera"));
  EXPECT_THAT(names_of(registry_.with_prefix("camera")), ElementsAre("camera"));
}

TEST_F(RegistryPrefixTest, PagesResumeAfterTheLastNameWithoutSkipsOrRepeats) {
  auto first = registry_.page("cam", "", 2);
  EXPECT_THAT(names_of(first.records), ElementsAre("cam", "cam/0"));
  EXPECT_TRUE(first.more);
  auto second = registry_.page("cam", "cam/0", 3);
  EXPECT_THAT(names_of(second.records), ElementsAre("cam/0/x", "cam/1", "cam/10"));
  EXPECT_TRUE(second.more);
  auto last = registry_.page("cam", "cam/10", 3);
  EXPECT_THAT(names_of(last.records), ElementsAre("camera"));
  EXPECT_FALSE(last.more);
  // `after` before the prefix starts at the prefix; after the last name gives nothing.
  EXPECT_THAT(names_of(registry_.page("cam/", "a", 10).records),
              ElementsAre("cam/0", "cam/0/x", "cam/1", "cam/10"));
  EXPECT_TRUE(registry_.page("cam/", "cam/10", 10).records.empty());
  EXPECT_FALSE(registry_.page("", "dog", 10).more);
}

TEST_F(RegistryPrefixTest, EmptyPrefixListsEverythingInNameOrder) {
  EXPECT_THAT(names_of(registry_.with_prefix("")),
              ElementsAre("ca", "cam", "cam/0", "cam/0/x", "cam/1", "cam/10", "camera", "dog"));
}

TEST_F(RegistryPrefixTest, PrefixMatchingNothingIsEmpty) {
  EXPECT_THAT(registry_.with_prefix("zebra"), IsEmpty());
  EXPECT_THAT(registry_.with_prefix("cam/2"), IsEmpty());
  EXPECT_THAT(registry_.with_prefix("b"), IsEmpty());
  EXPECT_THAT(registry_.with_prefix("dogs"), IsEmpty());
}

// --- check_capacity ---------------------------------------------------------------------------

TEST(RegistryCapacity, EmptyRegistryWithDefaultLimitsAcceptsAnything) {
  Registry registry(no_limits());
  EXPECT_TRUE(registry.check_capacity(1000, 1ull << 50).has_value());
}

TEST(RegistryCapacity, MaxArraysIsEnforcedAndNamesItsFlag) {
  RegistryLimits limits;
  limits.max_arrays = 2;
  Registry registry(limits);
  registry.insert(make_record("a", 1000, 1));
  EXPECT_TRUE(registry.check_capacity(1000, 1).has_value());
  registry.insert(make_record("b", 1000, 1));
  auto full = registry.check_capacity(1000, 1);
  ASSERT_FALSE(full.has_value());
  EXPECT_EQ(full.error().code(), ErrorCode::kResourceExhausted);
  EXPECT_THAT(full.error().message(), HasSubstr("--max-arrays"));
  EXPECT_THAT(full.error().message(), HasSubstr("2 arrays"));
  ASSERT_TRUE(registry.erase("a").has_value());
  EXPECT_TRUE(registry.check_capacity(1000, 1).has_value());
}

TEST(RegistryCapacity, MaxTotalBytesIsEnforcedAtTheExactBoundary) {
  RegistryLimits limits;
  limits.max_total_bytes = 100;
  Registry registry(limits);
  registry.insert(make_record("a", 1000, 30));
  registry.insert(make_record("b", 2000, 30));
  EXPECT_TRUE(registry.check_capacity(3000, 40).has_value());
  auto over = registry.check_capacity(3000, 41);
  ASSERT_FALSE(over.has_value());
  EXPECT_EQ(over.error().code(), ErrorCode::kResourceExhausted);
  EXPECT_THAT(over.error().message(), HasSubstr("--max-bytes"));
  EXPECT_THAT(over.error().message(), Not(HasSubstr("--max-bytes-per-user")));
  EXPECT_THAT(over.error().message(), HasSubstr("60 in use"));
}

TEST(RegistryCapacity, RequestLargerThanTheTotalLimitFailsWithoutWrapping) {
  RegistryLimits limits;
  limits.max_total_bytes = 100;
  Registry registry(limits);
  registry.insert(make_record("a", 1000, 10));
  auto huge = registry.check_capacity(1000, std::numeric_limits<std::uint64_t>::max());
  ASSERT_FALSE(huge.has_value());
  EXPECT_EQ(huge.error().code(), ErrorCode::kResourceExhausted);
}

TEST(RegistryCapacity, HugeRequestWithUnlimitedTotalsDoesNotWrapAround) {
  Registry registry(no_limits());
  registry.insert(make_record("a", 1000, 8192));
  auto huge = registry.check_capacity(1000, std::numeric_limits<std::uint64_t>::max() - 100);
  ASSERT_FALSE(huge.has_value());
  EXPECT_EQ(huge.error().code(), ErrorCode::kResourceExhausted);
}

TEST(RegistryCapacity, PerUserLimitCountsOnlyThatUsersBytes) {
  RegistryLimits limits;
  limits.max_bytes_per_user = 100;
  Registry registry(limits);
  registry.insert(make_record("a", 1000, 60));
  registry.insert(make_record("b", 2000, 90));
  EXPECT_TRUE(registry.check_capacity(1000, 40).has_value());
  EXPECT_TRUE(registry.check_capacity(3000, 100).has_value());
  auto over = registry.check_capacity(1000, 41);
  ASSERT_FALSE(over.has_value());
  EXPECT_EQ(over.error().code(), ErrorCode::kResourceExhausted);
  EXPECT_THAT(over.error().message(), HasSubstr("--max-bytes-per-user"));
  EXPECT_THAT(over.error().message(), HasSubstr("uid 1000"));
  EXPECT_THAT(over.error().message(), HasSubstr("60 in use"));
  auto other = registry.check_capacity(2000, 11);
  ASSERT_FALSE(other.has_value());
  EXPECT_THAT(other.error().message(), HasSubstr("uid 2000"));
}

TEST(RegistryCapacity, ErasingFreesCapacity) {
  RegistryLimits limits;
  limits.max_total_bytes = 100;
  limits.max_bytes_per_user = 100;
  Registry registry(limits);
  registry.insert(make_record("a", 1000, 100));
  EXPECT_FALSE(registry.check_capacity(1000, 1).has_value());
  ASSERT_TRUE(registry.erase("a").has_value());
  EXPECT_TRUE(registry.check_capacity(1000, 100).has_value());
}

TEST(RegistryCapacity, LimitsAreReportedAsConfigured) {
  RegistryLimits limits{1, 2, 3};
  Registry registry(limits);
  EXPECT_EQ(registry.limits().max_total_bytes, 1u);
  EXPECT_EQ(registry.limits().max_bytes_per_user, 2u);
  EXPECT_EQ(registry.limits().max_arrays, 3u);
}

// --- sessions ---------------------------------------------------------------------------------

TEST(RegistrySessions, ReleaseReturnsOnlyEphemeralArraysThatSessionCreated) {
  Registry registry(no_limits());
  registry.insert(make_record("mine-ephemeral", 1000, 1, /*creator=*/1, true, {1, 2}));
  registry.insert(make_record("theirs-ephemeral", 1000, 1, /*creator=*/2, true, {1, 2}));
  registry.insert(make_record("mine-persistent", 1000, 1, /*creator=*/1, false, {1}));
  registry.insert(make_record("mine-ephemeral-2", 1000, 1, /*creator=*/1, true, {1}));
  const std::set<std::string> names = {"mine-ephemeral", "theirs-ephemeral", "mine-persistent",
                                       "mine-ephemeral-2", "already-removed"};
  const auto to_remove = registry.release_session(1, names);
  EXPECT_THAT(to_remove, UnorderedElementsAre("mine-ephemeral", "mine-ephemeral-2"));
  // release_session only reports: removing is the caller's job.
  EXPECT_EQ(registry.size(), 4u);
}

TEST(RegistrySessions, ReleaseRemovesTheSessionFromOpenBy) {
  Registry registry(no_limits());
  registry.insert(make_record("a", 1000, 1, 1, false, {1, 2, 3}));
  registry.insert(make_record("b", 1000, 1, 2, false, {1, 2}));
  registry.insert(make_record("not-listed", 1000, 1, 2, false, {1, 2}));
  const auto to_remove = registry.release_session(1, {"a", "b"});
  EXPECT_THAT(to_remove, IsEmpty());
  EXPECT_EQ(registry.find("a")->open_by, (std::set<SessionId>{2, 3}));
  EXPECT_EQ(registry.find("b")->open_by, (std::set<SessionId>{2}));
  // Only the names passed in are touched.
  EXPECT_EQ(registry.find("not-listed")->open_by, (std::set<SessionId>{1, 2}));
}

TEST(RegistrySessions, ReleasingASessionThatOpenedNothingChangesNothing) {
  Registry registry(no_limits());
  registry.insert(make_record("a", 1000, 1, 1, true, {1}));
  EXPECT_THAT(registry.release_session(9, {"a"}), IsEmpty());
  EXPECT_EQ(registry.find("a")->open_by, (std::set<SessionId>{1}));
}

TEST(RegistryDescribe, FillsOpenHandlesFromOpenByAndKeepsTheRest) {
  ArrayRecord record = make_record("a", 1234, 4096, 1, true, {1, 5, 9});
  record.info.open_handles = 77;  // stale: describe must recount
  record.info.mode = 0640;
  const ArrayInfo info = Registry::describe(record);
  EXPECT_EQ(info.open_handles, 3u);
  EXPECT_EQ(info.name, "a");
  EXPECT_EQ(info.owner_uid, 1234u);
  EXPECT_EQ(info.mode, 0640u);
  EXPECT_EQ(info.nbytes, 4096u);
  EXPECT_TRUE(info.ephemeral);
  record.open_by.clear();
  EXPECT_EQ(Registry::describe(record).open_handles, 0u);
}

TEST(RegistryDescribe, ReflectsReleasedSessions) {
  Registry registry(no_limits());
  registry.insert(make_record("a", 1000, 1, 1, false, {1, 2}));
  EXPECT_EQ(Registry::describe(*registry.find("a")).open_handles, 2u);
  (void)registry.release_session(2, {"a"});
  EXPECT_EQ(Registry::describe(*registry.find("a")).open_handles, 1u);
}

}  // namespace
}  // namespace shmarray::server
