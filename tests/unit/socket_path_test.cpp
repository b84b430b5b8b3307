// Where the broker listens (the environment rule shared by every component) and the per-socket
// prefix of segment names.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>

#include "shmarray/socket_path.hpp"

namespace shmarray {
namespace {

using ::testing::MatchesRegex;

// Sets or unsets one environment variable for the scope, then restores what was there.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value != nullptr) {
      ::setenv(name, value, 1);
    } else {
      ::unsetenv(name);
    }
  }
  ~ScopedEnv() {
    if (old_) {
      ::setenv(name_, old_->c_str(), 1);
    } else {
      ::unsetenv(name_);
    }
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
  std::optional<std::string> old_;
};

std::string tmp_fallback() { return "/tmp/shmarray-" + std::to_string(::getuid()) + "/shmarray.sock"; }

TEST(DefaultSocketPath, ShmarraySocketWinsOverEverything) {
  ScopedEnv socket("SHMARRAY_SOCKET", "/custom/place.sock");
  ScopedEnv xdg("XDG_RUNTIME_DIR", "/run/user/4242");
  EXPECT_EQ(default_socket_path(), "/custom/place.sock");
}

TEST(DefaultSocketPath, XdgRuntimeDirIsNextWhenShmarraySocketIsUnsetOrEmpty) {
  ScopedEnv xdg("XDG_RUNTIME_DIR", "/run/user/4242");
  {
    ScopedEnv socket("SHMARRAY_SOCKET", nullptr);
    EXPECT_EQ(default_socket_path(), "/run/user/4242/shmarray.sock");
  }
  {
    ScopedEnv socket("SHMARRAY_SOCKET", "");
    EXPECT_EQ(default_socket_path(), "/run/user/4242/shmarray.sock");
  }
}

TEST(DefaultSocketPath, FallsBackToTmpPerUser) {
  ScopedEnv socket("SHMARRAY_SOCKET", nullptr);
  {
    ScopedEnv xdg("XDG_RUNTIME_DIR", nullptr);
    EXPECT_EQ(default_socket_path(), tmp_fallback());
  }
  {
    ScopedEnv xdg("XDG_RUNTIME_DIR", "");
    EXPECT_EQ(default_socket_path(), tmp_fallback());
  }
}

TEST(ResolveSocketPath, ExplicitPathWinsAndEmptyMeansTheDefault) {
  ScopedEnv socket("SHMARRAY_SOCKET", "/from/env.sock");
  EXPECT_EQ(resolve_socket_path("/explicit.sock"), "/explicit.sock");
  EXPECT_EQ(resolve_socket_path(""), "/from/env.sock");
}

TEST(SystemSocketPath, IsTheUnitsSocketUnlessTheVariableSaysOtherwise) {
  {
    ScopedEnv system("SHMARRAY_SYSTEM_SOCKET", nullptr);
    EXPECT_EQ(system_socket_path(), "/run/shmarray/shmarray.sock");
  }
  ScopedEnv system("SHMARRAY_SYSTEM_SOCKET", "/srv/sys.sock");
  EXPECT_EQ(system_socket_path(), "/srv/sys.sock");
}

// A scratch directory standing for $XDG_RUNTIME_DIR and the system socket's directory.
class ClientSocketPath : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/shmarray-clientpath-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    for (const char* f : {"/shmarray.sock", "/system.sock"}) ::unlink((dir_ + f).c_str());
    ::rmdir(dir_.c_str());
  }
  void touch(const std::string& path) {
    if (std::FILE* f = std::fopen(path.c_str(), "w")) std::fclose(f);
  }
  std::string dir_;
};

TEST_F(ClientSocketPath, OwnSocketIfItExistsElseTheSystemOneIfThatExistsElseOwn) {
  ScopedEnv socket("SHMARRAY_SOCKET", nullptr);
  ScopedEnv xdg("XDG_RUNTIME_DIR", dir_.c_str());
  ScopedEnv system("SHMARRAY_SYSTEM_SOCKET", (dir_ + "/system.sock").c_str());
  const std::string own = dir_ + "/shmarray.sock";
  EXPECT_EQ(client_socket_path(), own);  // neither exists: the user's own, for the error
  touch(dir_ + "/system.sock");
  EXPECT_EQ(client_socket_path(), dir_ + "/system.sock");
  EXPECT_EQ(resolve_client_socket_path(""), dir_ + "/system.sock");
  EXPECT_EQ(resolve_client_socket_path("/explicit.sock"), "/explicit.sock");
  EXPECT_EQ(default_socket_path(), own);  // the broker's rule is unchanged
  touch(own);
  EXPECT_EQ(client_socket_path(), own);  // anything at the user's own path comes first
}

TEST_F(ClientSocketPath, ShmarraySocketWinsEvenIfAbsent) {
  ScopedEnv xdg("XDG_RUNTIME_DIR", dir_.c_str());
  ScopedEnv system("SHMARRAY_SYSTEM_SOCKET", (dir_ + "/system.sock").c_str());
  touch(dir_ + "/system.sock");
  ScopedEnv socket("SHMARRAY_SOCKET", "/nowhere/x.sock");
  EXPECT_EQ(client_socket_path(), "/nowhere/x.sock");
}

TEST(SegmentPrefix, HasTheDocumentedShape) {
  const std::string prefix = segment_prefix("/run/user/1000/shmarray.sock");
  EXPECT_THAT(prefix, MatchesRegex("/shmarray\\.[0-9]+\\.[0-9a-f]{8}\\."));
  EXPECT_EQ(prefix.rfind("/shmarray." + std::to_string(::getuid()) + ".", 0), 0u);
}

TEST(SegmentPrefix, IsStableForOnePath) {
  EXPECT_EQ(segment_prefix("/tmp/a.sock"), segment_prefix("/tmp/a.sock"));
  EXPECT_EQ(segment_prefix("/tmp/a.sock"), segment_prefix(std::string("/tmp/") + "a.sock"));
}

TEST(SegmentPrefix, DiffersBetweenPaths) {
  EXPECT_NE(segment_prefix("/tmp/a.sock"), segment_prefix("/tmp/b.sock"));
  EXPECT_NE(segment_prefix("/tmp/a.sock"), segment_prefix("/tmp/a.sock2"));
  EXPECT_NE(segment_prefix(""), segment_prefix("/"));
}

TEST(SegmentPrefix, IsAValidSharedMemoryName) {
  // One leading slash, none after: shm_open would reject anything else.
  const std::string prefix = segment_prefix("/some/deep/dir/x.sock");
  EXPECT_EQ(prefix.find('/', 1), std::string::npos);
  EXPECT_LT(prefix.size() + 32, 255u);
}

class SocketDirectoryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/shmarray-unit-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    root_ = tmpl;
  }
  void TearDown() override {
    ::unlink((root_ + "/file").c_str());
    ::rmdir((root_ + "/sub").c_str());
    ::rmdir(root_.c_str());
  }
  std::string root_;
};

TEST_F(SocketDirectoryTest, CreatesTheParentWithMode0700) {
  auto ok = ensure_socket_directory(root_ + "/sub/shmarray.sock");
  ASSERT_TRUE(ok.has_value()) << ok.error().to_string();
  struct stat st{};
  ASSERT_EQ(::stat((root_ + "/sub").c_str(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0700u);
}

TEST_F(SocketDirectoryTest, ExistingDirectoryIsFine) {
  ASSERT_TRUE(ensure_socket_directory(root_ + "/shmarray.sock").has_value());
  ASSERT_TRUE(ensure_socket_directory(root_ + "/sub/a.sock").has_value());
  EXPECT_TRUE(ensure_socket_directory(root_ + "/sub/b.sock").has_value());
}

TEST_F(SocketDirectoryTest, FileInThePlaceOfTheDirectoryIsFailedPrecondition) {
  const std::string file = root_ + "/file";
  FILE* f = std::fopen(file.c_str(), "w");
  ASSERT_NE(f, nullptr);
  std::fclose(f);
  auto ok = ensure_socket_directory(file + "/shmarray.sock");
  ASSERT_FALSE(ok.has_value());
  EXPECT_EQ(ok.error().code(), ErrorCode::kFailedPrecondition);
  EXPECT_THAT(ok.error().message(), ::testing::HasSubstr("not a directory"));
}

TEST_F(SocketDirectoryTest, MissingGrandparentIsNotFound) {
  auto ok = ensure_socket_directory(root_ + "/no/such/shmarray.sock");
  ASSERT_FALSE(ok.has_value());
  EXPECT_EQ(ok.error().code(), ErrorCode::kNotFound);
}

}  // namespace
}  // namespace shmarray
