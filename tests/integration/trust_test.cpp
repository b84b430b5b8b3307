// Trust on the socket (docs/security.md): clients refuse a broker run by another user (an
// impostor in a directory that user created first) unless told to trust its uid; the broker
// refuses a socket directory it does not own or that others may write, and a planted lock-file
// symlink; OpenOptions::owner refuses a squatter's array; under a low descriptor limit new
// connections are refused with a message instead of hanging.
//
// The other-user cases need root: they create (or reuse) the test users of test_users.hpp and run
// the broker or a client as one of them. The binaries they run as that user are copied to a
// temporary 0755 directory first, so they also work from a checkout under a 0700 directory.
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <thread>

#include "broker_process.hpp"
#include "shmarray/socket_path.hpp"
#include "temp_dir.hpp"
#include "test_users.hpp"

namespace shmarray::test {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

// Copies `binary` into `dir` (0755) so that other users can run it wherever the build lives.
std::string copy_for_other_users(const std::string& binary, const std::string& dir) {
  const std::string copy = dir + "/" + fs::path(binary).filename().string();
  fs::copy_file(binary, copy, fs::copy_options::overwrite_existing);
  ::chmod(copy.c_str(), 0755);
  return copy;
}

class TrustTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    static const std::optional<TestUsers> users = ensure_test_users(why);
    static const std::string skip_reason = why;
    if (!users) GTEST_SKIP() << skip_reason;
    if (!fs::exists("/usr/bin/setpriv")) GTEST_SKIP() << "needs /usr/bin/setpriv (util-linux)";
    users_ = *users;
    bin_ = std::make_unique<TempDir>(0755, "shmarray-trust");
    shmarrayd_ = copy_for_other_users(SHMARRAYD_PATH, bin_->path());
    helper_ = copy_for_other_users(SHMARRAY_HELPER_PATH, bin_->path());
  }

  // Starts shmarrayd as `who` on <dir owned by who>/s.sock; returns once it listens (a root
  // client's connect is then refused by the trust check: that is the readiness signal).
  void start_impostor(const Identity& who) {
    sock_dir_ = std::make_unique<TempDir>(0755, "shmarray-trust");
    const std::string dir = sock_dir_->path() + "/d";
    ASSERT_EQ(::mkdir(dir.c_str(), 0700), 0);
    ASSERT_EQ(::chown(dir.c_str(), who.uid, who.gid), 0);
    socket_ = dir + "/s.sock";
    impostor_.emplace(ChildProcess::spawn(
        as_user(who, {shmarrayd_, "--socket", socket_, "--log-level", "warn"})));
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (std::chrono::steady_clock::now() < deadline) {
      auto c = Client::connect({.socket_path = socket_, .reconnect_attempts = 0});
      if (!c && c.error().code() == ErrorCode::kPermissionDenied) return;
      ASSERT_FALSE(c.has_value()) << "a root client accepted a broker run by uid " << who.uid;
      std::this_thread::sleep_for(10ms);
    }
    FAIL() << "the broker run as uid " << who.uid << " did not listen on " << socket_ << " in 10 s";
  }

  void TearDown() override {
    if (impostor_) {
      impostor_->kill(SIGTERM);
      EXPECT_TRUE(impostor_->wait(10s).ok());
      impostor_.reset();
      // Its segments carry its uid in their prefix: none may be left.
      std::string prefix = segment_prefix(socket_).substr(1);
      prefix.replace(0, prefix.find('.', 9), "shmarray." + std::to_string(users_.a.uid));
      for (const auto& entry : fs::directory_iterator("/dev/shm")) {
        const std::string name = entry.path().filename().string();
        EXPECT_FALSE(name.starts_with(prefix)) << "left behind: " << name;
        if (name.starts_with(prefix)) ::shm_unlink(("/" + name).c_str());
      }
    }
  }

  TestUsers users_;
  std::unique_ptr<TempDir> bin_;
  std::unique_ptr<TempDir> sock_dir_;
  std::string shmarrayd_;
  std::string helper_;
  std::string socket_;
  std::optional<ChildProcess> impostor_;
};

TEST_F(TrustTest, CppClientRefusesABrokerOfAnotherUserUnlessTrusted) {
  start_impostor(users_.a);
  const std::string a = std::to_string(users_.a.uid);
  auto refused = Client::connect({.socket_path = socket_});
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code(), ErrorCode::kPermissionDenied);
  const std::string& message = refused.error().message();
  EXPECT_NE(message.find("runs as uid " + a), std::string::npos) << message;
  EXPECT_NE(message.find("uid 0"), std::string::npos) << message;
  EXPECT_NE(message.find(socket_), std::string::npos) << message;
  EXPECT_NE(message.find("SHMARRAY_BROKER_UID=" + a), std::string::npos) << message;

  auto watcher = Watcher::start(socket_, "");
  ASSERT_FALSE(watcher.has_value());
  EXPECT_EQ(watcher.error().code(), ErrorCode::kPermissionDenied);

  // Trusted by name: a system broker run as a dedicated user.
  auto trusted = Client::connect({.socket_path = socket_, .broker_uid = users_.a.uid});
  ASSERT_TRUE(trusted.has_value()) << trusted.error().to_string();
  auto array = trusted->create("trusted/x", ArraySpec{.shape = {4}});
  ASSERT_TRUE(array.has_value()) << array.error().to_string();
  EXPECT_TRUE(Watcher::start(socket_, "", users_.a.uid).has_value());
  {  // or through the environment
    ::setenv("SHMARRAY_BROKER_UID", a.c_str(), 1);
    auto by_env = Client::connect({.socket_path = socket_});
    ::unsetenv("SHMARRAY_BROKER_UID");
    ASSERT_TRUE(by_env.has_value()) << by_env.error().to_string();
    EXPECT_EQ(by_env->stat("trusted/x")->owner_uid, 0u);
  }
  // A trusted uid that is not the broker's changes nothing.
  auto other = Client::connect({.socket_path = socket_, .broker_uid = users_.b.uid});
  ASSERT_FALSE(other.has_value());
  EXPECT_EQ(other.error().code(), ErrorCode::kPermissionDenied);
  ASSERT_TRUE(trusted->remove("trusted/x"));
}

TEST_F(TrustTest, CliRefusesABrokerOfAnotherUserUnlessTrusted) {
  start_impostor(users_.a);
  const std::string a = std::to_string(users_.a.uid);
  const RunResult refused = run_with_stderr({SHMARRAY_CLI_PATH, "--socket", socket_, "ls"});
  EXPECT_EQ(refused.status.exit_code, 1) << refused.status.describe();
  EXPECT_NE(refused.out.find("runs as uid " + a), std::string::npos) << refused.out;
  EXPECT_NE(refused.out.find("--broker-uid " + a), std::string::npos) << refused.out;
  const RunResult watch =
      run_with_stderr({SHMARRAY_CLI_PATH, "--socket", socket_, "watch", "--seconds", "0.1"});
  EXPECT_EQ(watch.status.exit_code, 1) << watch.out;
  EXPECT_NE(watch.out.find("runs as uid " + a), std::string::npos) << watch.out;

  const RunResult by_option =
      run_with_stderr({SHMARRAY_CLI_PATH, "--socket", socket_, "--broker-uid", a, "ls"});
  EXPECT_EQ(by_option.status.exit_code, 0) << by_option.out;
  const RunResult by_env = run_with_stderr({SHMARRAY_CLI_PATH, "--socket", socket_, "ls"},
                                           {"SHMARRAY_BROKER_UID=" + a});
  EXPECT_EQ(by_env.status.exit_code, 0) << by_env.out;
  const RunResult bad_env = run_with_stderr({SHMARRAY_CLI_PATH, "--socket", socket_, "ls"},
                                            {"SHMARRAY_BROKER_UID=shmarray"});
  EXPECT_EQ(bad_env.status.exit_code, 1) << bad_env.out;
  EXPECT_NE(bad_env.out.find("SHMARRAY_BROKER_UID='shmarray' is not a uid"), std::string::npos)
      << bad_env.out;
}

// A broker that refuses to start prints why on stderr and creates nothing.
RunResult start_broker(const std::string& socket, const std::vector<std::string>& extra = {}) {
  std::vector<std::string> argv{SHMARRAYD_PATH, "--socket", socket};
  argv.insert(argv.end(), extra.begin(), extra.end());
  return run_with_stderr(argv);
}

TEST(SocketDirectory, BrokerAndGcRefuseADirectoryOthersMayWrite) {
  for (const mode_t mode : {mode_t{0770}, mode_t{0777}, mode_t{01777}}) {
    TempDir dir(mode, "shmarray-trust");
    const std::string socket = dir.path() + "/s.sock";
    for (const bool gc : {false, true}) {
      const RunResult r = start_broker(socket, gc ? std::vector<std::string>{"--gc"}
                                                  : std::vector<std::string>{});
      EXPECT_EQ(r.status.exit_code, 1) << r.status.describe() << r.out;
      EXPECT_NE(r.out.find("socket directory " + dir.path()), std::string::npos) << r.out;
      EXPECT_NE(r.out.find("chmod go-w " + dir.path()), std::string::npos) << r.out;
    }
    EXPECT_FALSE(fs::exists(socket));
    EXPECT_FALSE(fs::exists(socket + ".lock"));
    EXPECT_FALSE(fs::exists(socket + ".catalogue"));
  }
}

TEST(SocketDirectory, BrokerRefusesADirectoryOwnedBySomeoneElse) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to give the directory to another uid";
  TempDir dir(0700, "shmarray-trust");
  ASSERT_EQ(::chown(dir.path().c_str(), 65534, 65534), 0);
  const std::string socket = dir.path() + "/s.sock";
  const RunResult r = start_broker(socket);
  EXPECT_EQ(r.status.exit_code, 1) << r.status.describe() << r.out;
  EXPECT_NE(r.out.find("owner uid 65534"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("not owned by this broker's uid 0"), std::string::npos) << r.out;
  EXPECT_FALSE(fs::exists(socket));
  EXPECT_FALSE(fs::exists(socket + ".lock"));
}

TEST(SocketDirectory, PlantedLockFileSymlinkIsRefusedAndItsTargetNotCreated) {
  TempDir dir(0700, "shmarray-trust");
  TempDir elsewhere(0700, "shmarray-trust");
  const std::string socket = dir.path() + "/s.sock";
  const std::string target = elsewhere.path() + "/created-by-the-broker";
  ASSERT_EQ(::symlink(target.c_str(), (socket + ".lock").c_str()), 0);
  for (const bool gc : {false, true}) {
    const RunResult r =
        start_broker(socket, gc ? std::vector<std::string>{"--gc"} : std::vector<std::string>{});
    EXPECT_EQ(r.status.exit_code, 1) << r.status.describe() << r.out;
    EXPECT_NE(r.out.find("lock file " + socket + ".lock is a symbolic link"), std::string::npos)
        << r.out;
    EXPECT_FALSE(fs::exists(target));
    EXPECT_FALSE(fs::exists(socket));
  }
}

// A root broker that other users may reach; the squatter (user a) takes names first.
class OwnerTest : public TrustTest {
 protected:
  void SetUp() override {
    TrustTest::SetUp();
    if (IsSkipped()) return;
    sock_dir_ = std::make_unique<TempDir>(0755, "shmarray-trust");
    broker_ = std::make_unique<BrokerProcess>(std::vector<std::string>{"--socket-mode", "0666"},
                                              sock_dir_->path() + "/s.sock");
  }
  void TearDown() override {
    if (broker_) {
      EXPECT_TRUE(broker_->stop(SIGTERM).ok());
      EXPECT_TRUE(broker_->segments().empty());
    }
    TrustTest::TearDown();
  }
  void squat(const std::string& name) {
    const RunResult r = run(as_user(users_.a, {helper_, "try", broker_->socket_path(), name,
                                               "create", "0644"}),
                            20s);
    ASSERT_EQ(r.out.substr(0, 2), "ok") << r.status.describe() << " " << r.out;
  }
  std::unique_ptr<BrokerProcess> broker_;
};

TEST_F(OwnerTest, OpenRequiringAnOwnerRefusesASquattersArrayNamingTheRealOwner) {
  squat("cam/frame");
  const std::string a = std::to_string(users_.a.uid);
  auto client = broker_->client();
  auto refused = client.open("cam/frame", Access::kReadOnly, {.owner = users_.b.uid});
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code(), ErrorCode::kPermissionDenied);
  EXPECT_NE(refused.error().message().find("owned by uid " + a), std::string::npos)
      << refused.error().message();
  EXPECT_NE(refused.error().message().find("not by uid " + std::to_string(users_.b.uid)),
            std::string::npos);
  EXPECT_TRUE(client.open("cam/frame", Access::kReadOnly, {.owner = users_.a.uid}).has_value());
  EXPECT_TRUE(client.open("cam/frame", Access::kReadOnly).has_value());  // no owner required

  const RunResult cli = run_with_stderr({SHMARRAY_CLI_PATH, "--socket", broker_->socket_path(),
                                         "dump", "cam/frame", "--owner", "0"});
  EXPECT_EQ(cli.status.exit_code, 1) << cli.out;
  EXPECT_NE(cli.out.find("owned by uid " + a), std::string::npos) << cli.out;
  const RunResult cli_ok = run_with_stderr({SHMARRAY_CLI_PATH, "--socket", broker_->socket_path(),
                                            "dump", "cam/frame", "--owner", a});
  EXPECT_EQ(cli_ok.status.exit_code, 0) << cli_ok.out;
  ASSERT_TRUE(client.remove("cam/frame"));
}

TEST_F(OwnerTest, TheBrokerRefusesAnOwnerMismatchBeforeCountingTheOpen) {
  // The broker checks OpenOptions::owner itself: a refused open is never granted, so it does not
  // count in open_handles (a client-side check alone would leave this connection counted, since a
  // process that never made an Array never sends a CloseRequest).
  squat("cam/frame");
  auto client = broker_->client();
  ASSERT_TRUE(eventually(
      [&] {
        auto info = client.stat("cam/frame");
        return info && info->open_handles == 0;  // the squatter's helper has gone
      },
      20s));
  auto refused = client.open("cam/frame", Access::kReadOnly, {.owner = users_.b.uid});
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code(), ErrorCode::kPermissionDenied);
  EXPECT_NE(refused.error().message().find("owned by uid " + std::to_string(users_.a.uid)),
            std::string::npos)
      << refused.error().message();
  auto info = client.stat("cam/frame");
  ASSERT_TRUE(info) << info.error().message();
  EXPECT_EQ(info->open_handles, 0u) << "the refused open was granted and counted by the broker";
  auto opened = client.open("cam/frame", Access::kReadOnly, {.owner = users_.a.uid});
  ASSERT_TRUE(opened) << opened.error().message();
  EXPECT_EQ(client.stat("cam/frame")->open_handles, 1u);
  ASSERT_TRUE(client.remove("cam/frame"));
}

TEST_F(OwnerTest, WaitingOpenRequiringAnOwnerIsNotSatisfiedByASquattersArray) {
  // The victim waits for 'cam/late' from its own uid (root); the squatter creates it first. The
  // open fails at once with the real owner named: it neither maps the squatter's array nor keeps
  // waiting until its deadline. (Whether it parked before the create or found the array at once,
  // the outcome is the same.)
  auto victim = std::async(std::launch::async, [socket = broker_->socket_path()] {
    auto client = Client::connect({.socket_path = socket, .request_timeout = 120s});
    if (!client) return std::optional<Error>(client.error());
    auto array = client->open("cam/late", Access::kReadOnly, {.wait = 60s, .owner = uid_t{0}});
    return array ? std::optional<Error>() : std::optional<Error>(array.error());
  });
  squat("cam/late");
  ASSERT_EQ(victim.wait_for(30s), std::future_status::ready)
      << "the waiting open was not answered when the squatter created the name";
  const std::optional<Error> error = victim.get();
  ASSERT_TRUE(error.has_value()) << "the squatter's array satisfied an open requiring uid 0";
  EXPECT_EQ(error->code(), ErrorCode::kPermissionDenied) << error->to_string();
  EXPECT_NE(error->message().find("owned by uid " + std::to_string(users_.a.uid)),
            std::string::npos)
      << error->message();
  auto client = broker_->client();
  ASSERT_TRUE(client.remove("cam/late"));
}

// Under a low descriptor limit the broker refuses the connection it has no room for, with a
// message, and serves again once connections close.
TEST(DescriptorExhaustion, NewConnectionsAreRefusedWithAMessageAndServedAgainLater) {
  BrokerProcess broker({}, {}, {"/usr/bin/prlimit", "--nofile=48:48", "--"});
  std::vector<Client> held;
  std::optional<Error> refusal;
  for (int i = 0; i < 200 && !refusal; ++i) {
    auto c = Client::connect({.socket_path = broker.socket_path(),
                              .request_timeout = 20s,
                              .reconnect_attempts = 0});
    if (c) {
      held.push_back(std::move(*c));
    } else {
      refusal = c.error();
    }
  }
  ASSERT_TRUE(refusal.has_value()) << "200 connections under a limit of 48 descriptors";
  EXPECT_EQ(refusal->code(), ErrorCode::kResourceExhausted) << refusal->to_string();
  EXPECT_NE(refusal->message().find("out of file descriptors"), std::string::npos)
      << refusal->message();
  EXPECT_NE(refusal->message().find(broker.socket_path()), std::string::npos);
  EXPECT_GT(held.size(), 10u);
  // Those connected are still served, creates and opens included: the broker keeps descriptors
  // for them instead of handing its last ones to new connections.
  EXPECT_TRUE(held.front().list().has_value());
  auto kept = held.front().create("at-the-limit", ArraySpec{.shape = {4}});
  ASSERT_TRUE(kept.has_value()) << kept.error().to_string();
  EXPECT_TRUE(held.back().open("at-the-limit", Access::kReadOnly).has_value());
  ASSERT_TRUE(held.front().remove("at-the-limit"));

  // Closes half of them.
  held.erase(held.begin() + static_cast<std::ptrdiff_t>(held.size() / 2), held.end());
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  Result<Client> again = std::unexpected(*refusal);
  while (!again && std::chrono::steady_clock::now() < deadline) {
    again = Client::connect({.socket_path = broker.socket_path(), .reconnect_attempts = 0});
    if (!again) {
      EXPECT_EQ(again.error().code(), ErrorCode::kResourceExhausted);
      std::this_thread::sleep_for(10ms);  // the broker has not yet seen the closes
    }
  }
  ASSERT_TRUE(again.has_value()) << again.error().to_string();
  auto array = again->create("after-exhaustion", ArraySpec{.shape = {4}});
  ASSERT_TRUE(array.has_value()) << array.error().to_string();
  ASSERT_TRUE(again->remove("after-exhaustion"));
  held.clear();
  EXPECT_TRUE(broker.stop(SIGTERM).ok());
}

}  // namespace
}  // namespace shmarray::test
