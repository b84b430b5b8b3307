// The broker's socket directory and lock file (server/src/socket_dir.hpp): the ownership rule as a
// pure function, and the real checks on a temporary directory (0700 whatever the umask, planted
// symbolic link refused without creating its target, a held lock reported as kAlreadyExists).
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "socket_dir.hpp"

namespace shmarray::server {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

struct stat directory_stat(uid_t uid, mode_t mode) {
  struct stat st{};
  st.st_uid = uid;
  st.st_mode = S_IFDIR | mode;
  return st;
}

TEST(SocketDirectoryRule, OwnDirectoryWithoutGroupOrOtherWriteIsAccepted) {
  EXPECT_TRUE(judge_socket_directory("/d", directory_stat(1000, 0700), 1000).has_value());
  EXPECT_TRUE(judge_socket_directory("/d", directory_stat(1000, 0755), 1000).has_value());
  EXPECT_TRUE(judge_socket_directory("/d", directory_stat(0, 0750), 0).has_value());
}

TEST(SocketDirectoryRule, DirectoryOfAnotherUserIsRefusedNamingOwnerAndMode) {
  for (uid_t owner : {uid_t{0}, uid_t{1001}}) {
    auto ok = judge_socket_directory("/tmp/shmarray-1000", directory_stat(owner, 0700), 1000);
    ASSERT_FALSE(ok.has_value());
    EXPECT_EQ(ok.error().code(), ErrorCode::kFailedPrecondition);
    EXPECT_THAT(ok.error().message(),
                AllOf(HasSubstr("/tmp/shmarray-1000"),
                      HasSubstr("owner uid " + std::to_string(owner)), HasSubstr("mode 0700"),
                      HasSubstr("uid 1000"), HasSubstr("impostor"), HasSubstr("--socket")));
  }
  // Root is not exempt: a root broker in a user's directory is that user's to replace.
  EXPECT_FALSE(judge_socket_directory("/d", directory_stat(1000, 0700), 0).has_value());
}

TEST(SocketDirectoryRule, GroupOrOtherWritableDirectoryIsRefusedWithTheChmodToRun) {
  for (mode_t mode : {mode_t{0770}, mode_t{0702}, mode_t{0777}, mode_t{01777}}) {
    auto ok = judge_socket_directory("/srv/s", directory_stat(1000, mode), 1000);
    ASSERT_FALSE(ok.has_value()) << std::oct << mode;
    EXPECT_EQ(ok.error().code(), ErrorCode::kFailedPrecondition);
    EXPECT_THAT(ok.error().message(), AllOf(HasSubstr("/srv/s"), HasSubstr("chmod go-w /srv/s")));
  }
}

TEST(SocketDirectoryRule, NotADirectoryIsRefused) {
  struct stat st = directory_stat(1000, 0700);
  st.st_mode = S_IFREG | 0600;
  EXPECT_FALSE(judge_socket_directory("/d", st, 1000).has_value());
}

TEST(SocketDirectoryRule, DirectoryOfAPath) {
  EXPECT_EQ(socket_directory_of("/run/user/1000/shmarray.sock"), "/run/user/1000");
  EXPECT_EQ(socket_directory_of("/s.sock"), "/");
  EXPECT_EQ(socket_directory_of("s.sock"), ".");
}

class SocketDirectoryFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/shmarray-sockdir-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    root_ = tmpl;
  }
  void TearDown() override {
    std::error_code ignored;
    std::filesystem::remove_all(root_, ignored);
  }
  std::string root_;
};

TEST_F(SocketDirectoryFiles, CreatesAMissingDirectoryWithMode0700WhateverTheUmask) {
  const mode_t old = ::umask(0);
  auto ok = check_socket_directory(root_ + "/sub/s.sock");
  ::umask(old);
  ASSERT_TRUE(ok.has_value()) << ok.error().to_string();
  struct stat st{};
  ASSERT_EQ(::stat((root_ + "/sub").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u);
}

TEST_F(SocketDirectoryFiles, OpenDirectoryIsRefusedAndNothingIsCreatedInIt) {
  ASSERT_EQ(::chmod(root_.c_str(), 0777), 0);
  auto lock = lock_socket_directory(root_ + "/s.sock");
  ASSERT_FALSE(lock.has_value());
  EXPECT_EQ(lock.error().code(), ErrorCode::kFailedPrecondition);
  EXPECT_THAT(lock.error().message(), AllOf(HasSubstr(root_), HasSubstr("mode 0777")));
  EXPECT_FALSE(std::filesystem::exists(root_ + "/s.sock.lock"));
}

TEST_F(SocketDirectoryFiles, PlantedLockFileSymlinkIsRefusedAndItsTargetNotCreated) {
  const std::string target = root_ + "/victim-file";
  ASSERT_EQ(::symlink(target.c_str(), (root_ + "/s.sock.lock").c_str()), 0);
  auto lock = lock_socket_directory(root_ + "/s.sock");
  ASSERT_FALSE(lock.has_value());
  EXPECT_EQ(lock.error().code(), ErrorCode::kFailedPrecondition);
  EXPECT_THAT(lock.error().message(),
              AllOf(HasSubstr(root_ + "/s.sock.lock"), HasSubstr("symbolic link"),
                    HasSubstr("Remove the link")));
  EXPECT_FALSE(std::filesystem::exists(target));
}

TEST_F(SocketDirectoryFiles, HardLinkedLockFileIsRefused) {
  const std::string other = root_ + "/other";
  ASSERT_TRUE(std::filesystem::exists(root_));
  { std::FILE* f = std::fopen(other.c_str(), "w"); ASSERT_NE(f, nullptr); std::fclose(f); }
  ASSERT_EQ(::link(other.c_str(), (root_ + "/s.sock.lock").c_str()), 0);
  auto lock = lock_socket_directory(root_ + "/s.sock");
  ASSERT_FALSE(lock.has_value());
  EXPECT_THAT(lock.error().message(), HasSubstr("2 link(s)"));
}

TEST_F(SocketDirectoryFiles, SecondLockOfTheSameSocketIsAlreadyExists) {
  auto first = lock_socket_directory(root_ + "/s.sock");
  ASSERT_TRUE(first.has_value()) << first.error().to_string();
  struct stat st{};
  ASSERT_EQ(::stat((root_ + "/s.sock.lock").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  auto second = lock_socket_directory(root_ + "/s.sock");
  ASSERT_FALSE(second.has_value());
  EXPECT_EQ(second.error().code(), ErrorCode::kAlreadyExists);
  first->reset();
  EXPECT_TRUE(lock_socket_directory(root_ + "/s.sock").has_value());
}

}  // namespace
}  // namespace shmarray::server
