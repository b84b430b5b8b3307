// The broker's permission rules (server/src/permissions.hpp), as a Unix file's: owner, group and
// other bits, the owner's bits win for the owner, root may do anything, only owner or root
// administer. The same rules are exercised with real users in tests/integration/security_test.cpp.
#include "permissions.hpp"

#include <gtest/gtest.h>

namespace shmarray::server {
namespace {

constexpr uid_t kOwner = 1000;
constexpr gid_t kGroup = 2000;

ArrayInfo array_with_mode(std::uint32_t mode) {
  ArrayInfo info;
  info.name = "perm/x";
  info.owner_uid = kOwner;
  info.owner_gid = kGroup;
  info.mode = mode;
  return info;
}

const PeerCredentials kOwnerCaller{.pid = 1, .uid = kOwner, .gid = kGroup};
const PeerCredentials kGroupMember{.pid = 2, .uid = 1001, .gid = kGroup};
const PeerCredentials kOther{.pid = 3, .uid = 1002, .gid = 3000};
const PeerCredentials kRoot{.pid = 4, .uid = 0, .gid = 0};

TEST(Permissions, EachClassGetsItsOwnBits) {
  const ArrayInfo a = array_with_mode(0640);
  EXPECT_TRUE(may_read(kOwnerCaller, a));
  EXPECT_TRUE(may_write(kOwnerCaller, a));
  EXPECT_TRUE(may_read(kGroupMember, a));
  EXPECT_FALSE(may_write(kGroupMember, a));
  EXPECT_FALSE(may_read(kOther, a));
  EXPECT_FALSE(may_write(kOther, a));
}

TEST(Permissions, TheOwnersBitsApplyToTheOwnerEvenWhereOthersMayDoMore) {
  const ArrayInfo a = array_with_mode(0066);  // the owner revoked their own access
  EXPECT_FALSE(may_read(kOwnerCaller, a));
  EXPECT_FALSE(may_write(kOwnerCaller, a));
  EXPECT_TRUE(may_read(kOther, a));
  EXPECT_TRUE(may_write(kOther, a));
  const ArrayInfo b = array_with_mode(0606);  // group members get the group's (none) bits
  EXPECT_FALSE(may_read(kGroupMember, b));
  EXPECT_TRUE(may_read(kOther, b));
}

TEST(Permissions, RootMayDoAnythingEvenOnMode000) {
  const ArrayInfo a = array_with_mode(0);
  EXPECT_TRUE(may_read(kRoot, a));
  EXPECT_TRUE(may_write(kRoot, a));
  EXPECT_TRUE(may_administer(kRoot, a));
  EXPECT_FALSE(may_read(kOwnerCaller, a));
}

TEST(Permissions, OpenNeedsReadForReadOnlyAndWriteForReadWrite) {
  const ArrayInfo a = array_with_mode(0604);
  EXPECT_TRUE(may_open(kOther, a, Access::kReadOnly));
  EXPECT_FALSE(may_open(kOther, a, Access::kReadWrite));
  const ArrayInfo w = array_with_mode(0602);  // write-only for others: no read-only open
  EXPECT_FALSE(may_open(kOther, w, Access::kReadOnly));
  EXPECT_TRUE(may_open(kOther, w, Access::kReadWrite));
}

TEST(Permissions, OnlyTheOwnerOrRootAdministerWhateverTheMode) {
  const ArrayInfo a = array_with_mode(0777);
  EXPECT_TRUE(may_administer(kOwnerCaller, a));
  EXPECT_TRUE(may_administer(kRoot, a));
  EXPECT_FALSE(may_administer(kGroupMember, a));
  EXPECT_FALSE(may_administer(kOther, a));
  EXPECT_TRUE(may_administer(kOwnerCaller, array_with_mode(0)));
}

}  // namespace
}  // namespace shmarray::server
