// Which broker a client trusts (client/src/broker_trust.hpp): its own uid, root, or the uid the
// caller names (ClientOptions::broker_uid, else $SHMARRAY_BROKER_UID); the refusal names both uids,
// the socket and the remedy. The real SO_PEERCRED check runs over a socketpair.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <optional>
#include <string>

#include "broker_trust.hpp"
#include "unit_support.hpp"

namespace shmarray::detail {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

class BrokerUidEnv {
 public:
  explicit BrokerUidEnv(const char* value) {
    if (const char* old = std::getenv(kBrokerUidVariable)) old_ = old;
    if (value != nullptr) {
      ::setenv(kBrokerUidVariable, value, 1);
    } else {
      ::unsetenv(kBrokerUidVariable);
    }
  }
  ~BrokerUidEnv() {
    if (old_) {
      ::setenv(kBrokerUidVariable, old_->c_str(), 1);
    } else {
      ::unsetenv(kBrokerUidVariable);
    }
  }

 private:
  std::optional<std::string> old_;
};

TEST(BrokerTrust, OwnUidRootAndTheTrustedUidAreAccepted) {
  EXPECT_TRUE(check_broker_uid(1000, 1000, std::nullopt, "/s").has_value());
  EXPECT_TRUE(check_broker_uid(0, 1000, std::nullopt, "/s").has_value());
  EXPECT_TRUE(check_broker_uid(999, 1000, 999, "/s").has_value());
}

TEST(BrokerTrust, AnyOtherUidIsPermissionDeniedNamingBothUidsAndTheRemedy) {
  for (const auto trusted : {std::optional<uid_t>{}, std::optional<uid_t>{999}}) {
    auto ok = check_broker_uid(1001, 1000, trusted, "/tmp/shmarray-1000/shmarray.sock");
    ASSERT_FALSE(ok.has_value());
    EXPECT_EQ(ok.error().code(), ErrorCode::kPermissionDenied);
    EXPECT_THAT(ok.error().message(),
                AllOf(HasSubstr("/tmp/shmarray-1000/shmarray.sock"), HasSubstr("uid 1001"),
                      HasSubstr("uid 1000"), HasSubstr("broker_uid"),
                      HasSubstr("SHMARRAY_BROKER_UID=1001")));
  }
  // A root client is no exception: it trusts root and itself only.
  EXPECT_FALSE(check_broker_uid(1001, 0, std::nullopt, "/s").has_value());
}

TEST(BrokerTrust, ExplicitUidWinsOverTheEnvironment) {
  BrokerUidEnv env("77");
  EXPECT_EQ(trusted_broker_uid(std::nullopt).value(), std::optional<uid_t>(77));
  EXPECT_EQ(trusted_broker_uid(uid_t{5}).value(), std::optional<uid_t>(5));
}

TEST(BrokerTrust, UnsetOrEmptyEnvironmentTrustsNoExtraUid) {
  {
    BrokerUidEnv env(nullptr);
    EXPECT_EQ(trusted_broker_uid(std::nullopt).value(), std::nullopt);
  }
  BrokerUidEnv env("");
  EXPECT_EQ(trusted_broker_uid(std::nullopt).value(), std::nullopt);
}

TEST(BrokerTrust, MalformedEnvironmentIsInvalidArgumentNamingTheVariable) {
  for (const char* bad : {"shmarray", "12x", "-1", " 5", "4294967295"}) {
    BrokerUidEnv env(bad);
    auto uid = trusted_broker_uid(std::nullopt);
    ASSERT_FALSE(uid.has_value()) << bad;
    EXPECT_EQ(uid.error().code(), ErrorCode::kInvalidArgument);
    EXPECT_THAT(uid.error().message(), AllOf(HasSubstr("SHMARRAY_BROKER_UID"), HasSubstr(bad)));
  }
}

// The system socket's directory (/run/shmarray): its owner is trusted when only root could have
// given it that directory.
struct stat dir_stat(uid_t owner, mode_t mode, bool is_dir = true) {
  struct stat st{};
  st.st_uid = owner;
  st.st_mode = (is_dir ? S_IFDIR : S_IFLNK) | mode;
  return st;
}

TEST(BrokerTrust, SystemDirectoryOwnerIsTrustedWhenOnlyRootCouldHaveMadeTheDirectory) {
  EXPECT_EQ(system_directory_owner(dir_stat(998, 0755), dir_stat(0, 0755)), 998u);
  EXPECT_EQ(system_directory_owner(dir_stat(998, 0700), dir_stat(0, 0711)), 998u);
  EXPECT_EQ(system_directory_owner(dir_stat(0, 0755), dir_stat(0, 0755)), 0u);
  // Others may write the directory (and replace the socket), or the parent is not root's, or
  // others may write the parent (and could have made the directory), or either is a symlink.
  EXPECT_EQ(system_directory_owner(dir_stat(998, 0775), dir_stat(0, 0755)), std::nullopt);
  EXPECT_EQ(system_directory_owner(dir_stat(998, 0757), dir_stat(0, 0755)), std::nullopt);
  EXPECT_EQ(system_directory_owner(dir_stat(998, 0755), dir_stat(1000, 0755)), std::nullopt);
  EXPECT_EQ(system_directory_owner(dir_stat(998, 0755), dir_stat(0, 01777)), std::nullopt);
  EXPECT_EQ(system_directory_owner(dir_stat(998, 0755), dir_stat(0, 0775)), std::nullopt);
  EXPECT_EQ(system_directory_owner(dir_stat(998, 0777, false), dir_stat(0, 0755)), std::nullopt);
  EXPECT_EQ(system_directory_owner(dir_stat(998, 0755), dir_stat(0, 0777, false)), std::nullopt);
}

TEST(BrokerTrust, TheSystemOwnerIsOneMoreAcceptedUid) {
  EXPECT_TRUE(check_broker_uid(998, 1000, std::nullopt, "/s", uid_t{998}).has_value());
  EXPECT_FALSE(check_broker_uid(997, 1000, std::nullopt, "/s", uid_t{998}).has_value());
  EXPECT_TRUE(check_broker_uid(997, 1000, uid_t{997}, "/s", uid_t{998}).has_value());
}

TEST(BrokerTrust, SystemBrokerUidAppliesToTheSystemSocketOnly) {
  const char* old = std::getenv("SHMARRAY_SYSTEM_SOCKET");
  const std::optional<std::string> saved = old ? std::optional<std::string>(old) : std::nullopt;
  char tmpl[] = "/tmp/shmarray-systrust-XXXXXX";  // root's /tmp is 1777: never trusted
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  const std::string sock = std::string(tmpl) + "/s.sock";
  ::setenv("SHMARRAY_SYSTEM_SOCKET", sock.c_str(), 1);
  EXPECT_EQ(system_broker_uid(sock), std::nullopt);  // the parent, /tmp, is writable by all
  EXPECT_EQ(system_broker_uid("/elsewhere/s.sock"), std::nullopt);
  ::setenv("SHMARRAY_SYSTEM_SOCKET", "/usr/lib/s.sock", 1);  // root's /usr/lib in root's /usr
  struct stat usr_lib{};
  ASSERT_EQ(::lstat("/usr/lib", &usr_lib), 0);
  EXPECT_EQ(system_broker_uid("/usr/lib/s.sock"), std::optional<uid_t>(usr_lib.st_uid));
  EXPECT_EQ(system_broker_uid("/usr/lib/other.sock"), std::nullopt);
  if (saved) {
    ::setenv("SHMARRAY_SYSTEM_SOCKET", saved->c_str(), 1);
  } else {
    ::unsetenv("SHMARRAY_SYSTEM_SOCKET");
  }
  ::rmdir(tmpl);
}

TEST(BrokerTrust, VerifyReadsThePeersUidFromTheSocket) {
  auto pair = test::make_socket_pair();
  ASSERT_TRUE(pair.has_value());
  // Our own uid is always trusted; another user's broker is exercised by the integration tests
  // (they need a second user).
  EXPECT_TRUE(verify_broker(pair->a.get(), std::nullopt, "/s").has_value());
  auto bad = verify_broker(-1, std::nullopt, "/s");
  ASSERT_FALSE(bad.has_value());
  EXPECT_THAT(bad.error().message(), HasSubstr("SO_PEERCRED"));
}

}  // namespace
}  // namespace shmarray::detail
