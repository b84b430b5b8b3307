// Security with real users (docs/security.md): other users' arrays, group bits, read-only grants,
// owner-only remove/chmod, hidden listings, crafted names, per-user quotas, and the socket's own
// permissions. The broker runs as root; clients run as two unprivileged users that the tests
// create (or reuse): fork, drop privileges, exec the helper. Without root those tests skip; the
// name and option checks that need no second user run anyway.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>

#include "broker_process.hpp"
#include "shmarray/segment_layout.hpp"
#include "shmarray/socket_path.hpp"
#include "shmarray/unique_fd.hpp"
#include "raw_client.hpp"
#include "test_users.hpp"

namespace shmarray::test {
namespace {

using namespace std::chrono_literals;

// A broker on a socket whose directory (0755) lets the test users through, plus teardown checks
// like BrokerTest's: clean SIGTERM exit, none of its segments left.
class SecurityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    static const std::optional<TestUsers> users = ensure_test_users(why);
    static const std::string skip_reason = why;
    if (!users) GTEST_SKIP() << skip_reason;
    users_ = *users;
    static const bool helper_runs = run_helper_as(users_.a, {"--help"}).status.ok();
    if (!helper_runs) {
      GTEST_SKIP() << helper_for_other_users() << " cannot run as " << kUserA
                   << " (a noexec /tmp?)";
    }
    broker_ = start_broker(broker_args());
  }

  void TearDown() override {
    for (auto& broker : brokers_) {
      if (broker->running()) {
        const ExitStatus status = broker->stop(SIGTERM);
        EXPECT_TRUE(status.ok()) << "shmarrayd on SIGTERM: " << status.describe();
      }
      EXPECT_TRUE(broker->segments().empty()) << broker->segments().size() << " segments left";
    }
    brokers_.clear();
    std::error_code ignored;
    for (const auto& dir : dirs_) std::filesystem::remove_all(dir, ignored);
  }

  virtual std::vector<std::string> broker_args() { return {"--socket-mode", "0666"}; }

  // A new 0755 directory; the broker's socket goes in it (or in `subdir` of it, left for the
  // broker to create).
  BrokerProcess* start_broker(const std::vector<std::string>& args,
                              const std::string& subdir = {}) {
    char tmpl[] = "/tmp/shmarray-sec-XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) throw std::runtime_error("mkdtemp failed");
    dirs_.emplace_back(tmpl);
    ::chmod(tmpl, 0755);
    const std::string dir = subdir.empty() ? std::string(tmpl) : std::string(tmpl) + "/" + subdir;
    brokers_.push_back(std::make_unique<BrokerProcess>(args, dir + "/s.sock"));
    return brokers_.back().get();
  }

  // The first line the helper printed for `try NAME OP ARGS...` run as `who`.
  std::string attempt(const Identity& who, const std::string& name, const std::string& op,
                      const std::vector<std::string>& args = {}) {
    std::vector<std::string> argv{"try", broker_->socket_path(), name, op};
    argv.insert(argv.end(), args.begin(), args.end());
    const RunResult r = run_helper_as(who, argv);
    if (r.status.exit_code == 127 || r.status.exit_code == 126) {
      ADD_FAILURE() << "could not run the helper as uid " << who.uid
                    << ": is the build directory traversable by other users?";
    }
    return r.out.substr(0, r.out.find('\n'));
  }

  RunResult helper_as(const Identity& who, const std::string& cmd, const std::string& name,
                      const std::vector<std::string>& args = {}) {
    std::vector<std::string> argv{cmd, broker_->socket_path(), name};
    argv.insert(argv.end(), args.begin(), args.end());
    return run_helper_as(who, argv);
  }

  TestUsers users_;
  BrokerProcess* broker_ = nullptr;
  std::vector<std::unique_ptr<BrokerProcess>> brokers_;
  std::vector<std::string> dirs_;
};

TEST_F(SecurityTest, OtherUserIsDeniedA0600ArrayAndSegmentsStayPrivateToTheBroker) {
  ASSERT_EQ(attempt(users_.a, "a/private", "create", {"0600"}), "ok");
  EXPECT_EQ(attempt(users_.a, "a/private", "open-rw"), "ok");
  EXPECT_EQ(attempt(users_.b, "a/private", "open-ro"), "error PermissionDenied");
  EXPECT_EQ(attempt(users_.b, "a/private", "open-rw"), "error PermissionDenied");
  EXPECT_EQ(attempt(users_.in_group(users_.b), "a/private", "open-ro"), "error PermissionDenied");
  EXPECT_EQ(attempt(users_.b, "a/private", "stat"), "error NotFound");  // not even its metadata

  auto root = broker_->client();
  const auto info = root.stat("a/private");
  ASSERT_TRUE(info);
  EXPECT_EQ(info->owner_uid, users_.a.uid);
  EXPECT_EQ(info->mode, 0600u);
  // The segment belongs to the broker's user, mode 0600, and its name is a random id, never the
  // array's name.
  const auto segments = broker_->segments();
  ASSERT_EQ(segments.size(), 1u);
  EXPECT_EQ(segments[0].find("private"), std::string::npos);
  EXPECT_TRUE(segments[0].ends_with("." + info->id)) << segments[0];
  struct stat st{};
  ASSERT_EQ(::stat(("/dev/shm/" + segments[0]).c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  EXPECT_EQ(st.st_uid, ::geteuid());
  ASSERT_TRUE(root.remove("a/private"));
}

TEST_F(SecurityTest, GroupMayReadA0640ArrayButNotWriteIt) {
  const Identity a = users_.in_group(users_.a);  // creates with gid shmarray-test-g
  const Identity b = users_.in_group(users_.b);
  ASSERT_EQ(attempt(a, "g/shared", "create", {"0640"}), "ok");
  auto root = broker_->client();
  EXPECT_EQ(root.stat("g/shared")->owner_gid, users_.group);
  ASSERT_TRUE(run_helper_as(a, {"write", broker_->socket_path(), "g/shared", "3", "2.5"})
                  .status.ok());

  const RunResult read = helper_as(b, "expect", "g/shared", {"3", "2.5"});
  EXPECT_TRUE(read.status.ok()) << read.status.describe() << " " << read.out;
  EXPECT_EQ(attempt(b, "g/shared", "open-rw"), "error PermissionDenied");
  EXPECT_FALSE(helper_as(b, "write", "g/shared", {"3", "9"}).status.ok());
  // The same user outside the group (its own primary gid): "others", who get nothing from 0640.
  EXPECT_EQ(attempt(users_.b, "g/shared", "open-ro"), "error PermissionDenied");

  const auto after = root.open("g/shared", Access::kReadOnly);
  ASSERT_TRUE(after);
  EXPECT_EQ((*after->as<const double>())[3], 2.5);
  EXPECT_EQ(after->version(), 1u);  // only a's publish
  ASSERT_TRUE(root.remove("g/shared"));
}

TEST_F(SecurityTest, ReadOnlyGrantCannotWriteOrBeUpgradedByAnyMessageSequence) {
  ASSERT_EQ(attempt(users_.a, "ro/x", "create", {"0644"}), "ok");
  // Through the API, bypassing its check: the kernel refuses the store (PROT_READ mapping).
  const RunResult store = helper_as(users_.b, "write-ro", "ro/x");
  EXPECT_EQ(store.status.signal, SIGSEGV) << store.status.describe();
  EXPECT_EQ(store.out.find("wrote"), std::string::npos);
  // Over the raw protocol: the descriptor itself, the segment file, and request sequences.
  const RunResult raw = helper_as(users_.b, "ro-grant", "ro/x");
  EXPECT_TRUE(raw.status.ok()) << raw.status.describe() << "\n" << raw.out;
  EXPECT_EQ(raw.out.find("FAIL"), std::string::npos) << raw.out;
  EXPECT_GE(std::count(raw.out.begin(), raw.out.end(), '\n'), 15) << raw.out;

  auto root = broker_->client();
  const auto info = root.stat("ro/x");
  ASSERT_TRUE(info);
  EXPECT_EQ(info->mode, 0644u);
  EXPECT_EQ(info->version, 0u);
  const auto data = root.open("ro/x", Access::kReadOnly);
  ASSERT_TRUE(data);
  const auto values = data->as<const double>();
  ASSERT_TRUE(values);
  for (const double v : *values) EXPECT_EQ(v, 0.0);
  ASSERT_TRUE(root.remove("ro/x"));
}

TEST_F(SecurityTest, OnlyTheOwnerOrRootMayRemoveOrChmod) {
  ASSERT_EQ(attempt(users_.a, "own/x", "create", {"0666"}), "ok");
  EXPECT_EQ(attempt(users_.b, "own/x", "remove"), "error PermissionDenied");
  EXPECT_EQ(attempt(users_.b, "own/x", "chmod", {"0777"}), "error PermissionDenied");
  EXPECT_EQ(attempt(users_.in_group(users_.b), "own/x", "chmod", {"0600"}),
            "error PermissionDenied");
  auto root = broker_->client();
  EXPECT_EQ(root.stat("own/x")->mode, 0666u);
  EXPECT_EQ(attempt(users_.a, "own/x", "chmod", {"0604"}), "ok");
  ASSERT_TRUE(root.chmod("own/x", 0640));  // root may
  EXPECT_EQ(root.stat("own/x")->mode, 0640u);
  EXPECT_EQ(root.chmod("own/x", 01777).error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(root.chmod("no/such", 0600).error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(attempt(users_.a, "own/x", "remove"), "ok");
  EXPECT_EQ(root.stat("own/x").error().code(), ErrorCode::kNotFound);
}

TEST_F(SecurityTest, ChmodByTheOwnerGrantsAndRevokesLaterOpens) {
  ASSERT_EQ(attempt(users_.a, "chm/x", "create", {"0600"}), "ok");
  EXPECT_EQ(attempt(users_.b, "chm/x", "open-ro"), "error PermissionDenied");
  ASSERT_EQ(attempt(users_.a, "chm/x", "chmod", {"0644"}), "ok");
  EXPECT_EQ(attempt(users_.b, "chm/x", "open-ro"), "ok");
  EXPECT_EQ(attempt(users_.b, "chm/x", "open-rw"), "error PermissionDenied");
  ASSERT_EQ(attempt(users_.a, "chm/x", "chmod", {"0666"}), "ok");
  EXPECT_EQ(attempt(users_.b, "chm/x", "open-rw"), "ok");
  ASSERT_EQ(attempt(users_.a, "chm/x", "chmod", {"0600"}), "ok");
  EXPECT_EQ(attempt(users_.b, "chm/x", "open-ro"), "error PermissionDenied");
  EXPECT_EQ(attempt(users_.b, "chm/x", "stat"), "error NotFound");

#ifdef SHMARRAY_CLI_PATH
  const auto cli = [&](const std::vector<std::string>& args) {
    std::vector<std::string> argv{SHMARRAY_CLI_PATH, "--socket", broker_->socket_path()};
    argv.insert(argv.end(), args.begin(), args.end());
    return run(argv, 10s);
  };
  const RunResult changed = cli({"chmod", "0640", "chm/x"});
  EXPECT_TRUE(changed.status.ok()) << changed.status.describe();
  EXPECT_NE(changed.out.find("0640"), std::string::npos) << changed.out;
  EXPECT_EQ(cli({"chmod", "0999", "chm/x"}).status.exit_code, 2);  // usage error: not octal
  EXPECT_EQ(cli({"chmod", "0600", "no/such"}).status.exit_code, 1);
  EXPECT_EQ(broker_->client().stat("chm/x")->mode, 0640u);
#endif
  EXPECT_EQ(attempt(users_.a, "chm/x", "remove"), "ok");
}

TEST_F(SecurityTest, ListAndStatHideArraysTheCallerMayNotRead) {
  ASSERT_EQ(attempt(users_.a, "ls/private", "create", {"0600"}), "ok");
  ASSERT_EQ(attempt(users_.a, "ls/public", "create", {"0604"}), "ok");
  EXPECT_EQ(helper_as(users_.b, "list", "ls/").out, "ls/public\nend\n");
  EXPECT_EQ(helper_as(users_.a, "list", "ls/").out, "ls/private\nls/public\nend\n");
  EXPECT_EQ(attempt(users_.b, "ls/private", "stat"), "error NotFound");
  EXPECT_EQ(attempt(users_.b, "ls/public", "stat"), "ok");
  auto root = broker_->client();
  EXPECT_EQ(root.list("ls/")->size(), 2u);
  ASSERT_TRUE(root.remove("ls/private"));
  ASSERT_TRUE(root.remove("ls/public"));
}

// Watch uses the same filter: another user's watcher is not told of an array it may not read.
TEST_F(SecurityTest, WatchTellsOnlyOfArraysTheWatcherMayRead) {
  if (!std::filesystem::exists("/usr/bin/setpriv")) GTEST_SKIP() << "needs /usr/bin/setpriv";
  auto watcher = ChildProcess::spawn(
      as_user(users_.b, {helper_for_other_users(), "watch", broker_->socket_path(), "w/"}));
  ASSERT_EQ(watcher.read_line(10s), std::optional<std::string>("watching"));
  ASSERT_EQ(attempt(users_.a, "w/private", "create", {"0600"}), "ok");
  ASSERT_EQ(attempt(users_.a, "w/public", "create", {"0604"}), "ok");
  ASSERT_EQ(attempt(users_.a, "w/end", "create", {"0604"}), "ok");
  EXPECT_EQ(watcher.read_line(20s), std::optional<std::string>("w/public"));
  EXPECT_EQ(watcher.read_line(20s), std::optional<std::string>("w/end"));
  EXPECT_TRUE(watcher.wait(10s).ok());
  auto root = broker_->client();
  for (const char* name : {"w/private", "w/public", "w/end"}) ASSERT_TRUE(root.remove(name));
}

// Streams follow the array rules between users: subscribing needs read permission, taking over
// as publisher needs write permission, and a stream the caller may not read is not found by
// open_publisher (as stat hides it).
TEST_F(SecurityTest, StreamsNeedReadToSubscribeAndWriteToPublish) {
  ASSERT_EQ(attempt(users_.a, "st/private", "create-stream", {"0600"}), "ok");
  ASSERT_EQ(attempt(users_.a, "st/shared", "create-stream", {"0644"}), "ok");
  ASSERT_EQ(attempt(users_.in_group(users_.a), "st/group", "create-stream", {"0660"}), "ok");
  ASSERT_EQ(attempt(users_.a, "st/open", "create-stream", {"0666"}), "ok");
  EXPECT_EQ(attempt(users_.b, "st/private", "subscribe"), "error PermissionDenied");
  EXPECT_EQ(attempt(users_.b, "st/private", "open-publisher"), "error NotFound");
  EXPECT_EQ(attempt(users_.b, "st/private", "stat"), "error NotFound");
  EXPECT_EQ(attempt(users_.b, "st/shared", "subscribe"), "ok");
  EXPECT_EQ(attempt(users_.b, "st/shared", "open-publisher"), "error PermissionDenied");
  EXPECT_EQ(attempt(TestUsers::outsider(users_.b), "st/group", "subscribe"),
            "error PermissionDenied");
  EXPECT_EQ(attempt(users_.in_group(users_.b), "st/group", "subscribe"), "ok");
  EXPECT_EQ(attempt(users_.in_group(users_.b), "st/group", "open-publisher"), "ok");
  EXPECT_EQ(attempt(users_.b, "st/open", "open-publisher"), "ok");
  EXPECT_EQ(attempt(users_.a, "st/private", "subscribe"), "ok");
  EXPECT_EQ(attempt(users_.b, "st/open", "remove"), "error PermissionDenied");
  auto root = broker_->client();
  for (const char* name : {"st/private", "st/shared", "st/group", "st/open"}) {
    ASSERT_TRUE(root.remove(name)) << name;
  }
}

// Mirrors are the broker's configuration: only its own user or root may add or remove one.
class SecurityMirrorTest : public SecurityTest {
 protected:
  std::vector<std::string> broker_args() override {
    key_dir_ = std::filesystem::temp_directory_path() / ("shmarray-sec-key-" +
                                                         std::to_string(::getpid()));
    std::filesystem::create_directories(key_dir_);
    const std::string key = (key_dir_ / "key").string();
    {
      std::ofstream out(key, std::ios::binary);
      out << std::string(32, 'k');
    }
    ::chmod(key.c_str(), 0600);
    return {"--socket-mode", "0666", "--peer-key", key};
  }
  void TearDown() override {
    SecurityTest::TearDown();
    std::error_code ignored;
    std::filesystem::remove_all(key_dir_, ignored);
  }
  std::filesystem::path key_dir_;
};

TEST_F(SecurityMirrorTest, OnlyTheBrokersUserOrRootMayAddOrRemoveMirrors) {
  EXPECT_EQ(attempt(users_.b, "m/", "mirror-add", {"127.0.0.1:9"}), "error PermissionDenied");
  auto root = broker_->client();
  EXPECT_TRUE(root.mirrors().value().empty()) << "another user's mirror-add took effect";
  ASSERT_TRUE(root.mirror_add("m/", "127.0.0.1:9"));
  EXPECT_EQ(attempt(users_.b, "m/", "mirror-rm"), "error PermissionDenied");
  EXPECT_EQ(attempt(users_.in_group(users_.a), "m/", "mirror-rm"), "error PermissionDenied");
  ASSERT_EQ(root.mirrors().value().size(), 1u) << "another user's mirror-rm took effect";
  ASSERT_TRUE(root.mirror_remove("m/"));
  EXPECT_TRUE(root.mirrors().value().empty());
}

TEST_F(SecurityTest, CraftedNamesCannotReachAnotherUsersSegment) {
  ASSERT_EQ(attempt(users_.a, "victim", "create", {"0600"}), "ok");
  auto root = broker_->client();
  {
    auto victim = root.open("victim", Access::kReadWrite);
    ASSERT_TRUE(victim);
    (*victim->as<double>())[0] = 42;
  }
  const auto segments = broker_->segments();
  ASSERT_EQ(segments.size(), 1u);
  const std::string& segment = segments[0];  // shmarray.<uid>.<socket hash>.<random id>
  for (const std::string& name : std::vector<std::string>{"../../dev/shm/" + segment,
                                                          "/dev/shm/" + segment, "/" + segment,
                                                          "victim/..", "./victim"}) {
    EXPECT_EQ(attempt(users_.b, name, "create", {"0666"}), "error InvalidArgument") << name;
    EXPECT_EQ(attempt(users_.b, name, "open-rw"), "error InvalidArgument") << name;
  }
  // The segment's own name is just a name: b gets a new array of its own, with a new segment.
  ASSERT_EQ(attempt(users_.b, segment, "create", {"0600"}), "ok");
  ASSERT_TRUE(helper_as(users_.b, "write", segment, {"0", "99"}).status.ok());
  EXPECT_NE(root.stat(segment)->id, root.stat("victim")->id);
  EXPECT_EQ(root.stat(segment)->owner_uid, users_.b.uid);
  EXPECT_EQ(attempt(users_.b, "victim", "open-ro"), "error PermissionDenied");
  EXPECT_EQ(broker_->segments().size(), 2u);

  const auto victim = root.open("victim", Access::kReadOnly);
  ASSERT_TRUE(victim);
  EXPECT_EQ((*victim->as<const double>())[0], 42.0);
  EXPECT_EQ(victim->version(), 0u);
  ASSERT_TRUE(root.remove(segment));
  ASSERT_TRUE(root.remove("victim"));
}

// A writer maps the header page read-write and can rewrite owner and mode with a valid checksum.
// The broker never believes it: not while it runs, and not after a restart, which takes owner and
// mode from its private catalogue and puts the header page back.
TEST_F(SecurityTest, AWriterForgingTheHeaderGainsNothingAcrossARestart) {
  ASSERT_EQ(attempt(users_.a, "forge/x", "create", {"0666"}), "ok");
  const RunResult forged = helper_as(users_.b, "forge-header", "forge/x");
  ASSERT_TRUE(forged.status.ok()) << forged.out;
  ASSERT_EQ(forged.out, "forged\n");
  // The owner locks b out after b had written the forgery.
  ASSERT_EQ(attempt(users_.a, "forge/x", "chmod", {"0600"}), "ok");
  EXPECT_EQ(attempt(users_.b, "forge/x", "open-ro"), "error PermissionDenied");

  for (const int signal : {SIGTERM, SIGKILL}) {
    SCOPED_TRACE(signal == SIGTERM ? "restart after SIGTERM" : "restart after SIGKILL");
    ASSERT_EQ(helper_as(users_.b, "forge-header", "forge/x").out,
              "FAIL read-write open was not granted\n");
    broker_->stop(signal);
    broker_->restart();
    auto root = broker_->client();
    const auto info = root.stat("forge/x");
    ASSERT_TRUE(info) << info.error().message();
    EXPECT_EQ(info->owner_uid, users_.a.uid);
    EXPECT_EQ(info->mode, 0600u);
    EXPECT_EQ(attempt(users_.b, "forge/x", "open-ro"), "error PermissionDenied");
    EXPECT_EQ(attempt(users_.b, "forge/x", "open-rw"), "error PermissionDenied");
    EXPECT_EQ(attempt(users_.b, "forge/x", "chmod", {"0666"}), "error PermissionDenied");
    EXPECT_EQ(attempt(users_.b, "forge/x", "remove"), "error PermissionDenied");
    // The header page says the truth again.
    const auto segments = broker_->segments();
    ASSERT_EQ(segments.size(), 1u);
    UniqueFd fd(::open(("/dev/shm/" + segments[0]).c_str(), O_RDONLY | O_CLOEXEC));
    ASSERT_TRUE(fd);
    SegmentHeader header{};
    ASSERT_EQ(::pread(fd.get(), &header, sizeof header, 0), static_cast<ssize_t>(sizeof header));
    EXPECT_EQ(header.owner_uid, users_.a.uid);
    EXPECT_EQ(header.mode, 0600u);
    EXPECT_EQ(header.checksum, segment_header_checksum(header));
    // For the second round: the owner lets b write again, b forges again, the owner locks it out.
    if (signal == SIGTERM) {
      ASSERT_EQ(attempt(users_.a, "forge/x", "chmod", {"0666"}), "ok");
      ASSERT_EQ(helper_as(users_.b, "forge-header", "forge/x").out, "forged\n");
      ASSERT_EQ(attempt(users_.a, "forge/x", "chmod", {"0600"}), "ok");
    }
  }
  EXPECT_EQ(attempt(users_.a, "forge/x", "remove"), "ok");
}

class SecurityQuotaTest : public SecurityTest {
 protected:
  // Two 512 KiB arrays (each 516 KiB with its header page) fit, a third does not.
  std::vector<std::string> broker_args() override {
    return {"--socket-mode", "0666", "--max-bytes-per-user", "1100000"};
  }
};

TEST_F(SecurityQuotaTest, OneUsersUsageDoesNotCountAgainstAnother) {
  const std::string elements = "65536";  // float64: 512 KiB
  EXPECT_EQ(attempt(users_.a, "q/a1", "create", {"0600", elements}), "ok");
  EXPECT_EQ(attempt(users_.a, "q/a2", "create", {"0600", elements}), "ok");
  EXPECT_EQ(attempt(users_.a, "q/a3", "create", {"0600", elements}), "error ResourceExhausted");
  // b's quota is untouched by a's usage.
  EXPECT_EQ(attempt(users_.b, "q/b1", "create", {"0600", elements}), "ok");
  EXPECT_EQ(attempt(users_.b, "q/b2", "create", {"0600", elements}), "ok");
  EXPECT_EQ(attempt(users_.b, "q/b3", "create", {"0600", elements}), "error ResourceExhausted");
  // Freeing one of a's arrays gives a (and only a) room again.
  EXPECT_EQ(attempt(users_.a, "q/a1", "remove"), "ok");
  EXPECT_EQ(attempt(users_.b, "q/b3", "create", {"0600", elements}), "error ResourceExhausted");
  EXPECT_EQ(attempt(users_.a, "q/a3", "create", {"0600", elements}), "ok");
  auto root = broker_->client();
  for (const char* name : {"q/a2", "q/a3", "q/b1", "q/b2"}) ASSERT_TRUE(root.remove(name));
}

// A writer of a 0666 array (another user) truncates its segment, to 0 and to one page: the
// owner's chmod, stat and open get answers (kDataLoss for opens), never a broker killed by SIGBUS;
// the broker keeps serving other arrays, before and after a restart.
TEST_F(SecurityTest, WriterTruncatingASharedArrayDamagesOnlyThatArray) {
  ASSERT_EQ(attempt(users_.a, "a/other", "create", {"0600"}), "ok");
  for (const char* size : {"0", "4096"}) {
    SCOPED_TRACE(std::string("truncated to ") + size);
    const std::string name = std::string("t/shared") + size;
    ASSERT_EQ(attempt(users_.a, name, "create", {"0666", "1024"}), "ok");
    ASSERT_EQ(helper_as(users_.b, "resize", name, {size}).out, "resized\n");
    EXPECT_EQ(attempt(users_.a, name, "chmod", {"0644"}), "ok");
    EXPECT_EQ(attempt(users_.a, name, "stat"), "ok");
    EXPECT_EQ(attempt(users_.a, name, "open-ro"), "error DataLoss");
    EXPECT_EQ(attempt(users_.b, name, "open-ro"), "error DataLoss");  // 0644 now: b reads
    EXPECT_EQ(attempt(users_.a, "a/other", "open-rw"), "ok");
    auto root = broker_->client();
    auto info = root.stat(name);
    ASSERT_TRUE(info);
    EXPECT_NE(info->damaged.find("truncated"), std::string::npos) << info->damaged;
    EXPECT_EQ(info->mode, 0644u);  // the chmod was applied (the header page was not rewritten)
  }
  broker_->stop(SIGTERM);
  broker_->restart();
  EXPECT_EQ(attempt(users_.a, "t/shared0", "open-ro"), "error DataLoss");
  EXPECT_EQ(attempt(users_.a, "t/shared4096", "stat"), "ok");
  EXPECT_EQ(attempt(users_.a, "a/other", "open-ro"), "ok");
  for (const char* name : {"t/shared0", "t/shared4096", "a/other"}) {
    EXPECT_EQ(attempt(users_.a, name, "remove"), "ok");
  }
}

TEST_F(SecurityQuotaTest, WriterGrowingASharedArrayIsCutBackAndOthersStillCreate) {
  ASSERT_EQ(attempt(users_.a, "g/shared", "create", {"0666", "1024"}), "ok");
  auto root = broker_->client();
  const auto info = root.stat("g/shared");
  ASSERT_TRUE(info);
  const std::string path = "/dev/shm" + segment_prefix(broker_->socket_path()) + info->id;
  // b, a writer, grows a's 12 KiB array to 1 GiB (sparse: its pages are not yet used).
  ASSERT_EQ(helper_as(users_.b, "resize", "g/shared", {"1073741824"}).out, "resized\n");
  EXPECT_EQ(std::filesystem::file_size(path), 1073741824u);
  // The next touch (b's own stat here) cuts it back; the recorded size is what stat shows.
  EXPECT_EQ(attempt(users_.b, "g/shared", "stat"), "ok");
  EXPECT_EQ(std::filesystem::file_size(path), info->segment_bytes);
  auto again = root.stat("g/shared");
  ASSERT_TRUE(again);
  EXPECT_EQ(again->segment_bytes, info->segment_bytes);
  EXPECT_TRUE(again->damaged.empty());
  // Quotas count recorded bytes: both users can still create up to theirs.
  EXPECT_EQ(attempt(users_.b, "g/b1", "create", {"0600", "65536"}), "ok");
  EXPECT_EQ(attempt(users_.a, "g/a1", "create", {"0600", "65536"}), "ok");
  // And the array still works for its users.
  EXPECT_EQ(attempt(users_.a, "g/shared", "open-rw"), "ok");
  for (const char* name : {"g/shared", "g/b1", "g/a1"}) ASSERT_TRUE(root.remove(name));
}

TEST_F(SecurityTest, SocketModeAndGroupAdmitOnlyThatGroup) {
  BrokerProcess* system =
      start_broker({"--socket-mode", "0660", "--socket-group", kGroup});
  struct stat st{};
  ASSERT_EQ(::stat(system->socket_path().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0660u);
  EXPECT_EQ(st.st_gid, users_.group);
  const auto stat_as = [&](const Identity& who) {
    const RunResult r = run_helper_as(who, {"try", system->socket_path(), "none", "stat"});
    return r.out.substr(0, r.out.find('\n'));
  };
  EXPECT_EQ(stat_as(users_.a), "error NotFound");  // a member (supplementary group): connected
  EXPECT_EQ(stat_as(TestUsers::outsider(users_.b)), "connect-error PermissionDenied");
}

TEST_F(SecurityTest, DefaultSocketAdmitsOnlyTheBrokersUser) {
  BrokerProcess* personal = start_broker({}, "private");  // the broker creates the directory
  const std::string dir = personal->socket_path().substr(0, personal->socket_path().rfind('/'));
  struct stat st{};
  ASSERT_EQ(::stat(dir.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u);
  const RunResult r = run_helper_as(users_.a, {"try", personal->socket_path(), "none", "stat"});
  EXPECT_EQ(r.out.substr(0, r.out.find('\n')), "connect-error PermissionDenied");
  EXPECT_EQ(r.status.exit_code, 1);
}

// Hostile names straight over the protocol (shmarray::Client would refuse them before sending):
// every name-taking request gets kInvalidArgument and no descriptor, and the connection and the
// broker go on serving. Needs no second user.
class SecurityNamesTest : public BrokerTest {};

TEST_F(SecurityNamesTest, HostileNamesAreRejectedOverTheRawProtocol) {
  auto raw = RawClient::connect(broker_->socket_path());
  ASSERT_TRUE(raw);
  const std::vector<std::string> hostile{
      "../../dev/shm/x", "/dev/shm/x", "..", ".", "a/../b", "a//b", "a/", "", std::string(256, 'a'),
      std::string("a\0b", 3), std::string("\0", 1), "a\nb", "a\x01", "a\x7f", "\xff\xfe",
      "x y", "a\\b", "%2e%2e", "a\tb"};
  for (const std::string& name : hostile) {
    SCOPED_TRACE(testing::PrintToString(name));
    std::vector<std::optional<RawClient::Reply>> replies;
    replies.push_back(raw->call(wire::CreateRequest{name, ArraySpec{.shape = {1}}}));
    replies.push_back(raw->call(wire::OpenRequest{name, Access::kReadWrite, 0}));
    replies.push_back(raw->call(wire::OpenRequest{name, Access::kReadOnly, 50}));
    replies.push_back(raw->call(wire::StatRequest{name}));
    replies.push_back(raw->call(wire::RemoveRequest{name}));
    replies.push_back(raw->call(wire::ChmodRequest{name, 0666}));
    for (const auto& reply : replies) {
      ASSERT_TRUE(reply);
      EXPECT_EQ(reply->code(), ErrorCode::kInvalidArgument);
      EXPECT_TRUE(reply->fds.empty());
    }
  }
  // The same connection still works, and the longest legal name is accepted.
  const std::string longest(255, 'n');
  auto created = raw->call(wire::CreateRequest{longest, ArraySpec{.shape = {1}}});
  ASSERT_TRUE(created);
  EXPECT_EQ(created->code(), ErrorCode::kOk);
  EXPECT_EQ(created->fds.size(), 1u);
  EXPECT_EQ(raw->call(wire::RemoveRequest{longest})->code(), ErrorCode::kOk);
  EXPECT_FALSE(std::filesystem::exists("/dev/shm/x"));
  auto client = broker_->client();
  EXPECT_TRUE(client.list()->empty());
}

// Bad socket options stop the broker before it creates anything, with a message saying why.
TEST(SecuritySocketOptions, UnknownGroupOrBadModeIsAClearStartupError) {
  char tmpl[] = "/tmp/shmarray-sec-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  const std::string socket = std::string(tmpl) + "/s.sock";
  const auto start = [&](const std::string& options) {
    return run({"/bin/sh", "-c",
                std::string("exec ") + SHMARRAYD_PATH + " --socket " + socket + " " + options +
                    " 2>&1"},
               10s);
  };
  const RunResult group = start("--socket-group shmarray-no-such-group");
  EXPECT_EQ(group.status.exit_code, 1) << group.status.describe();
  EXPECT_NE(group.out.find("unknown group 'shmarray-no-such-group'"), std::string::npos)
      << group.out;
  EXPECT_FALSE(std::filesystem::exists(socket));
  const RunResult mode = start("--socket-mode 0999");
  EXPECT_EQ(mode.status.exit_code, 2) << mode.status.describe();  // a usage error
  EXPECT_NE(mode.out.find("--socket-mode"), std::string::npos) << mode.out;
  EXPECT_NE(mode.out.find("bad mode '0999'"), std::string::npos) << mode.out;
  EXPECT_FALSE(std::filesystem::exists(socket));
  std::error_code ignored;
  std::filesystem::remove_all(tmpl, ignored);
}

}  // namespace
}  // namespace shmarray::test
