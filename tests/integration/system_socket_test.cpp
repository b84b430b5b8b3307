// Clients given no socket find the system broker (docs/operations.md, "Which broker a client
// uses"): $SHMARRAY_SOCKET, else the user's own socket if it exists, else the system socket if
// that exists. A broker on the system socket is trusted when it runs as the owner of the socket's
// directory and only root could have given it that directory; on any other path, or in a
// directory another user could have made, the same broker is refused as an impostor.
//
// The system socket is a stand-in, <temp>/run/shmarray/shmarray.sock ($SHMARRAY_SYSTEM_SOCKET),
// and the system broker runs as test user A: the tests need root (test_users.hpp).
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include "broker_process.hpp"
#include "shmarray/socket_path.hpp"
#include "temp_dir.hpp"
#include "test_users.hpp"

namespace shmarray::test {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

class SystemSocketTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    static const std::optional<TestUsers> users = ensure_test_users(why);
    static const std::string skip_reason = why;
    if (!users) GTEST_SKIP() << skip_reason;
    if (!fs::exists("/usr/bin/setpriv")) GTEST_SKIP() << "needs /usr/bin/setpriv (util-linux)";
    users_ = *users;
    root_ = std::make_unique<TempDir>(0755, "shmarray-sys");
    bin_ = root_->path() + "/shmarrayd";  // runnable by user A wherever the build lives
    fs::copy_file(SHMARRAYD_PATH, bin_);
    ::chmod(bin_.c_str(), 0755);
    home_ = root_->path() + "/xdg";  // the client's $XDG_RUNTIME_DIR: no broker of its own
    ASSERT_EQ(::mkdir(home_.c_str(), 0700), 0);
  }

  // <root>/run (owned by `parent_owner`, 0755) / shmarray (owned by A, 0755) / shmarray.sock,
  // served by shmarrayd run as A; returns once it accepts connections.
  void start_system_broker(uid_t parent_owner = 0) {
    const std::string run_dir = root_->path() + "/run";
    const std::string dir = run_dir + "/shmarray";
    ASSERT_EQ(::mkdir(run_dir.c_str(), 0755), 0);
    ASSERT_EQ(::chown(run_dir.c_str(), parent_owner, parent_owner == 0 ? 0 : users_.b.gid), 0);
    ASSERT_EQ(::mkdir(dir.c_str(), 0755), 0);
    ASSERT_EQ(::chown(dir.c_str(), users_.a.uid, users_.a.gid), 0);
    system_socket_ = dir + "/shmarray.sock";
    broker_.emplace(ChildProcess::spawn(
        {"/usr/bin/setpriv", "--reuid=" + std::to_string(users_.a.uid),
         "--regid=" + std::to_string(users_.a.gid), "--clear-groups", bin_, "--socket",
         system_socket_, "--socket-mode", "0666", "--log-level", "warn"}));
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (std::chrono::steady_clock::now() < deadline) {
      if (Client::connect({.socket_path = system_socket_, .broker_uid = users_.a.uid})) return;
      std::this_thread::sleep_for(10ms);
    }
    FAIL() << "the system broker did not listen on " << system_socket_ << " in 10 s";
  }

  // The environment of a client given no socket: its own socket would be in home_.
  [[nodiscard]] std::vector<std::string> client_env(const std::string& system_socket) const {
    return {"SHMARRAY_SOCKET=", "SHMARRAY_BROKER_UID=", "XDG_RUNTIME_DIR=" + home_,
            "SHMARRAY_SYSTEM_SOCKET=" + system_socket};
  }

  [[nodiscard]] RunResult cli(const std::vector<std::string>& args,
                              const std::vector<std::string>& env) const {
    std::vector<std::string> argv{SHMARRAY_CLI_PATH};
    argv.insert(argv.end(), args.begin(), args.end());
    return run_with_stderr(argv, env);
  }

  void TearDown() override {
    if (broker_) {
      if (auto c = Client::connect({.socket_path = system_socket_, .broker_uid = users_.a.uid})) {
        for (const auto& info : c->list().value_or(std::vector<ArrayInfo>{})) {
          (void)c->remove(info.name);
        }
      }
      broker_->kill(SIGTERM);
      EXPECT_TRUE(broker_->wait(10s).ok());
    }
  }

  TestUsers users_;
  std::unique_ptr<TempDir> root_;
  std::string bin_;
  std::string home_;
  std::string system_socket_;
  std::optional<ChildProcess> broker_;
};

TEST_F(SystemSocketTest, ClientsGivenNoSocketUseTheSystemBrokerAndTrustItsDirectorysOwner) {
  start_system_broker();
  const auto env = client_env(system_socket_);
  const RunResult created = cli({"create", "sys/x", "--dtype", "<f8", "--shape", "3"}, env);
  ASSERT_EQ(created.status.exit_code, 0) << created.out;
  const RunResult listed = cli({"ls", "-1"}, env);
  ASSERT_EQ(listed.status.exit_code, 0) << listed.out;
  EXPECT_EQ(listed.out, "sys/x\n");

  // The C++ default (ClientOptions{}): same rule, same trust.
  for (const auto& entry : env) {
    const auto eq = entry.find('=');
    ::setenv(entry.substr(0, eq).c_str(), entry.substr(eq + 1).c_str(), 1);
  }
  EXPECT_EQ(client_socket_path(), system_socket_);
  auto client = Client::connect({});
  ::unsetenv("SHMARRAY_SYSTEM_SOCKET");
  ::unsetenv("XDG_RUNTIME_DIR");
  ASSERT_TRUE(client.has_value()) << client.error().to_string();
  auto info = client->stat("sys/x");
  ASSERT_TRUE(info.has_value()) << info.error().to_string();
  EXPECT_EQ(info->owner_uid, 0u);  // created by this root process, through the system broker

  // The same broker on a path that is not the system socket is an impostor like any other.
  const RunResult other_path = cli({"--socket", system_socket_, "ls"}, client_env("/nonexistent/s.sock"));
  EXPECT_EQ(other_path.status.exit_code, 1) << other_path.out;
  EXPECT_NE(other_path.out.find("runs as uid " + std::to_string(users_.a.uid)), std::string::npos)
      << other_path.out;
}

TEST_F(SystemSocketTest, TheUsersOwnSocketComesFirst) {
  start_system_broker();
  BrokerProcess own({}, home_ + "/shmarray.sock");
  ASSERT_TRUE(own.client().create("own/x", ArraySpec{.shape = {2}}).has_value());
  const RunResult listed = cli({"ls", "-1"}, client_env(system_socket_));
  EXPECT_EQ(listed.status.exit_code, 0) << listed.out;
  EXPECT_EQ(listed.out, "own/x\n");
  ASSERT_TRUE(own.client().remove("own/x").has_value());
}

TEST_F(SystemSocketTest, ADirectoryAnotherUserCouldHaveMadeIsNotTrusted) {
  start_system_broker(users_.b.uid);  // <root>/run belongs to B, who could have made shmarray/
  const RunResult refused = cli({"ls"}, client_env(system_socket_));
  EXPECT_EQ(refused.status.exit_code, 1) << refused.out;
  for (const std::string& part :
       {"runs as uid " + std::to_string(users_.a.uid), std::string("owner of its directory"),
        root_->path() + "/run: uid " + std::to_string(users_.b.uid)}) {
    EXPECT_NE(refused.out.find(part), std::string::npos) << part << " not in: " << refused.out;
  }
}

TEST_F(SystemSocketTest, WithNoBrokerAtAllTheErrorNamesBothSockets) {
  const std::string absent = root_->path() + "/run/shmarray/shmarray.sock";
  const RunResult failed = cli({"ls"}, client_env(absent));
  EXPECT_EQ(failed.status.exit_code, 1) << failed.out;
  EXPECT_NE(failed.out.find("no broker at " + home_ + "/shmarray.sock"), std::string::npos)
      << failed.out;
  EXPECT_NE(failed.out.find("install the system broker (package shmarrayd; socket " + absent),
            std::string::npos)
      << failed.out;
}

}  // namespace
}  // namespace shmarray::test
