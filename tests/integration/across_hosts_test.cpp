// Mirrors across hosts, end to end (issue 15): two "hosts" = two network namespaces joined by a
// veth pair, the mirror broker on B with a private /dev/shm (tests/support/two_hosts.hpp), so the
// bytes can only cross through the bridges and UCX (UCX_TLS=tcp: on one machine UCX would
// otherwise use shared memory or CMA). Producers run on A (shmarray_mirror_helper), consumers of
// the mirror on B check every element of every version they read and report its checksum.
// The Python producer is in tests/python/test_across_hosts.py.
// Skipped, saying why, where namespaces cannot be made, or while shmarrayd has no --peer-listen.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "host_broker.hpp"
#include "two_hosts.hpp"

namespace shmarray::test {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

constexpr const char* kPrefix = "mirror/";
constexpr const char* kPort = "7700";  // in the namespaces' own network: never taken

bool shmarrayd_has_mirrors() {
  static const bool has = run({SHMARRAYD_PATH, "--help"}, 10s).out.find("--peer-listen") !=
                          std::string::npos;
  return has;
}

// A 0600 file of 32 random bytes.
void write_key(const std::string& path) {
  std::ifstream random("/dev/urandom", std::ios::binary);
  char key[32];
  random.read(key, sizeof key);
  std::ofstream(path, std::ios::binary).write(key, sizeof key);
  ::chmod(path.c_str(), 0600);
}

class AcrossHostsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!shmarrayd_has_mirrors()) {
      GTEST_SKIP() << "this shmarrayd has no --peer-listen (mirrors across hosts not built in)";
    }
    ::signal(SIGPIPE, SIG_IGN);  // a helper that died must fail a write, not kill the test
    auto made = TwoHosts::create();
    if (!made) {
      if (made.error().skippable) GTEST_SKIP() << made.error().reason;
      FAIL() << made.error().reason;
    }
    hosts_ = std::move(*made);
    char tmpl[] = "/tmp/shmarray-keys-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    key_dir_ = tmpl;
    key_ = key_dir_ + "/peer.key";
    write_key(key_);
  }

  void TearDown() override {
    for (auto* broker : {&mirror_, &source_}) {
      if (*broker && (*broker)->running()) {
        const ExitStatus status = (*broker)->stop(SIGTERM);
        EXPECT_TRUE(status.ok()) << "shmarrayd on SIGTERM: " << status.describe();
      }
    }
    if (source_) {
      EXPECT_TRUE(source_->segments().empty())
          << source_->segments().size() << " segments of the source broker left in /dev/shm";
    }
    mirror_.reset();
    source_.reset();
    hosts_.reset();  // kills whatever is left in the namespaces (bridges included)
    std::error_code ignored;
    if (!key_dir_.empty()) fs::remove_all(key_dir_, ignored);
  }

  [[nodiscard]] std::string endpoint() const {
    return hosts_->address(Host::kA) + ":" + kPort;
  }
  [[nodiscard]] std::vector<std::string> ucx_env() const {
    return {"UCX_TLS=tcp", std::string("UCX_NET_DEVICES=") + TwoHosts::link_device()};
  }

  void start_source(const std::string& allow = kPrefix) {
    auto b = HostBroker::start(*hosts_, Host::kA,
                               {.args = {"--peer-listen", endpoint(), "--peer-key", key_,
                                         "--peer-allow", allow},
                                .env = ucx_env()});
    ASSERT_TRUE(b) << b.error();
    source_ = std::move(*b);
  }

  void start_mirror(const std::string& key) {
    auto b = HostBroker::start(
        *hosts_, Host::kB,
        {.args = {"--mirror", std::string(kPrefix) + "=" + endpoint(), "--peer-key", key},
         .env = ucx_env()});
    ASSERT_TRUE(b) << b.error();
    mirror_ = std::move(*b);
  }

  [[nodiscard]] ChildProcess helper(Host host, const std::vector<std::string>& args) const {
    std::vector<std::string> argv{SHMARRAY_MIRROR_HELPER_PATH};
    argv.insert(argv.end(), args.begin(), args.end());
    return hosts_->spawn(host, argv);
  }

  // `shmarray mirror ls` on B until its output contains `what` (true) or 30 s pass.
  [[nodiscard]] bool mirror_ls_says(const std::string& what, std::string* last_output) const {
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    while (std::chrono::steady_clock::now() < deadline) {
      *last_output = run({SHMARRAY_CLI_PATH, "--socket", mirror_->socket_path(), "mirror", "ls"},
                         10s)
                         .out;
      if (last_output->find(what) != std::string::npos) return true;
      std::this_thread::sleep_for(50ms);  // the bridge reports its link state when it changes
    }
    return false;
  }

  void link_cut_resyncs_with_no_torn_version(const std::function<void()>& cut);

  std::unique_ptr<TwoHosts> hosts_;
  std::string key_dir_;
  std::string key_;
  std::unique_ptr<HostBroker> source_;
  std::unique_ptr<HostBroker> mirror_;
};

// "published V CHECKSUM" / "seen V CHECKSUM" -> {V, CHECKSUM}
std::pair<std::uint64_t, std::uint64_t> version_and_checksum(const std::string& line) {
  std::istringstream in(line);
  std::string word;
  std::uint64_t v = 0;
  std::uint64_t sum = 0;
  in >> word >> v >> sum;
  return {v, sum};
}

// A C++ producer on A publishes 20 versions, one at a time; two consumers on B each see every
// version, with the producer's checksum and every element of that version.
TEST_F(AcrossHostsTest, CppProducerOnAConsumersOnBSeeEveryVersionWithTheRightChecksum) {
  start_source();
  start_mirror(key_);
  constexpr int kVersions = 20;
  auto producer = helper(Host::kA, {"produce", source_->socket_path(), "mirror/cpp", "65536"});
  std::vector<ChildProcess> consumers;
  for (int i = 0; i < 2; ++i) {
    consumers.push_back(helper(Host::kB, {"consume", mirror_->socket_path(), "mirror/cpp",
                                          std::to_string(kVersions), "60000"}));
  }
  for (int v = 1; v <= kVersions; ++v) {
    if (v > 1) {
      ASSERT_TRUE(producer.write_stdin("publish\n"));
    }
    auto published = producer.read_line(30s);
    ASSERT_TRUE(published) << "the producer on A did not publish version " << v;
    const auto [pv, psum] = version_and_checksum(*published);
    ASSERT_EQ(pv, static_cast<std::uint64_t>(v));
    for (auto& consumer : consumers) {
      auto seen = consumer.read_line(60s);
      ASSERT_TRUE(seen) << "a consumer on B did not see version " << v << " within 60 s";
      EXPECT_EQ(version_and_checksum(*seen), std::make_pair(pv, psum)) << *seen;
    }
  }
  for (auto& consumer : consumers) EXPECT_TRUE(consumer.wait(10s).ok());
  producer.close_stdin();  // removes the array on A
  EXPECT_TRUE(producer.wait(30s).ok());
}

// 256 MiB crosses whole, twice (the first version and a rewrite), checked element by element.
TEST_F(AcrossHostsTest, A256MiBArrayArrivesIntact) {
  start_source();
  start_mirror(key_);
  const std::string elements = std::to_string((256u << 20) / 8);
  auto producer = helper(Host::kA, {"produce", source_->socket_path(), "mirror/big", elements});
  auto consumer = helper(Host::kB, {"consume", mirror_->socket_path(), "mirror/big", "2", "120000"});
  for (int v = 1; v <= 2; ++v) {
    if (v > 1) {
      ASSERT_TRUE(producer.write_stdin("publish\n"));
    }
    auto published = producer.read_line(60s);
    ASSERT_TRUE(published) << "the producer did not publish version " << v;
    auto seen = consumer.read_line(120s);
    ASSERT_TRUE(seen) << "version " << v << " of 256 MiB did not arrive on B within 120 s";
    EXPECT_EQ(version_and_checksum(*seen), version_and_checksum(*published));
  }
  EXPECT_TRUE(consumer.wait(10s).ok());
  producer.close_stdin();
  EXPECT_TRUE(producer.wait(30s).ok());
}

// The link goes down while the producer on A publishes every 2 ms, then comes back; afterwards
// the mirror catches up with the source, and a reader on B that checked every element of every
// version it read saw no torn one, before, during or after the cut. `cut` takes the link down
// and returns when it should come back up.
void AcrossHostsTest::link_cut_resyncs_with_no_torn_version(const std::function<void()>& cut) {
  start_source();
  start_mirror(key_);
  auto producer = helper(Host::kA, {"produce-free", source_->socket_path(), "mirror/cut", "4096",
                                    "2000"});
  ASSERT_TRUE(producer.read_line(30s)) << "the producer on A did not start";
  auto reader = helper(Host::kB, {"watch", mirror_->socket_path(), "mirror/cut", "60000"});
  ASSERT_TRUE(reader.read_line(60s)) << "the mirror on B never got a first version";

  ASSERT_TRUE(hosts_->link_down());
  cut();
  ASSERT_TRUE(hosts_->link_up());

  // Resync: the mirror reaches a version the source had after the link came back.
  auto a = source_->connect();
  ASSERT_TRUE(a) << a.error().message();
  auto source = a->open("mirror/cut", Access::kReadOnly);
  ASSERT_TRUE(source) << source.error().message();
  const std::uint64_t after_cut = source->version();
  auto b = mirror_->connect();
  ASSERT_TRUE(b) << b.error().message();
  auto mirror = b->open("mirror/cut", Access::kReadOnly, {.wait = 30s});
  ASSERT_TRUE(mirror) << mirror.error().message();
  if (mirror->version() < after_cut) {
    auto reached = mirror->wait_newer_than(after_cut - 1, 60s);
    ASSERT_TRUE(reached) << "the mirror did not resync past version " << after_cut
                         << " within 60 s of link_up(): " << reached.error().message();
  }
  // And after the producer stops, the mirror holds exactly its last version (the producer
  // removes the array right after it: the bridge sends that version before the removal).
  producer.close_stdin();
  auto last_line = producer.read_line(30s);
  ASSERT_TRUE(last_line);
  const std::uint64_t last = std::stoull(last_line->substr(last_line->find(' ') + 1));
  if (mirror->version() < last) {
    auto reached = mirror->wait_newer_than(last - 1, 60s);
    ASSERT_TRUE(reached) << "the mirror stayed at version " << mirror->version()
                         << ", the producer's last (published just before it removed the array) is "
                         << last << ": " << reached.error().message();
  }
  EXPECT_EQ(mirror->version(), last);
  EXPECT_TRUE(producer.wait(30s).ok());

  reader.close_stdin();
  auto summary = reader.read_line(30s);
  ASSERT_TRUE(summary);
  EXPECT_NE(summary->find("torn=0 "), std::string::npos) << *summary;
  EXPECT_TRUE(reader.wait(10s).ok()) << *summary;
}

// 2 s down (shorter than the mirror's 5 s silence limit: TCP rides it out).
TEST_F(AcrossHostsTest, LinkCutForTwoSecondsResyncsAndNoReaderSeesATornVersion) {
  link_cut_resyncs_with_no_torn_version([] { std::this_thread::sleep_for(2s); });
}

// Down until the mirror declares the link down (its silence limit), so that it reconnects and
// resyncs from scratch once the link is back.
TEST_F(AcrossHostsTest, LinkDownUntilDeclaredDownReconnectsResyncsAndNoReaderSeesATornVersion) {
  link_cut_resyncs_with_no_torn_version([this] {
    std::string out;
    EXPECT_TRUE(mirror_ls_says("\tdown", &out)) << "the link never showed as down:\n" << out;
  });
  std::string out;
  EXPECT_TRUE(mirror_ls_says("\tup\n", &out)) << "the link did not come back up:\n" << out;
}

// A stream of 10,000 small messages (kBlock, 16 slots) published on A arrives on B whole and in
// order: the subscriber on B (shmarray_stream_helper sub, strict) checks that every sequence
// number follows the previous one and every element of every payload, and its checksum over all
// payloads equals the publisher's. Back-pressure crosses the link: nothing is dropped.
TEST_F(AcrossHostsTest, AStreamOf10000MessagesArrivesOnBInOrderAndIntact) {
  start_source();
  start_mirror(key_);
  const std::string name = std::string(kPrefix) + "frames";
  auto publisher = hosts_->spawn(Host::kA, {SHMARRAY_STREAM_HELPER_PATH, "pub",
                                            source_->socket_path(), name, "10000", "block", "16",
                                            "0", "0"});
  ASSERT_EQ(publisher.read_line(30s).value_or("(nothing)"), "created");
  // The stream exists on B once the source's bridge subscribed to it on A and announced it.
  auto b = mirror_->connect();
  ASSERT_TRUE(b) << b.error().message();
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (!b->stat(name) && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(20ms);  // polled with a deadline: the mirror reports no event
  }
  ASSERT_TRUE(b->stat(name)) << "the stream was not mirrored to B within 30 s";
  auto subscriber = hosts_->spawn(Host::kB, {SHMARRAY_STREAM_HELPER_PATH, "sub",
                                             mirror_->socket_path(), name, "1", "0", "1"});
  ASSERT_EQ(subscriber.read_line(30s).value_or("(nothing)"), "subscribed");
  const auto start = std::chrono::steady_clock::now();
  publisher.close_stdin();  // the publisher starts now
  auto published = publisher.read_line(120s);
  ASSERT_TRUE(published) << "the publisher on A did not finish";
  auto taken = subscriber.read_line(120s);
  ASSERT_TRUE(taken) << "the subscriber on B did not finish";
  const auto took = std::chrono::steady_clock::now() - start;
  // "published 10000 checksum S" and "taken 10000 missed 0 first 1 last 10000 checksum S"
  const std::string sum = published->substr(published->find("checksum"));
  EXPECT_EQ(published->substr(0, published->find(" checksum")), "published 10000");
  EXPECT_EQ(*taken, "taken 10000 missed 0 first 1 last 10000 " + sum);
  EXPECT_TRUE(publisher.wait(10s).ok());
  EXPECT_TRUE(subscriber.wait(10s).ok());
  std::printf("10,000 messages from A to B in %lld ms\n",
              static_cast<long long>(
                  std::chrono::duration_cast<std::chrono::milliseconds>(took).count()));
  auto a = source_->connect();
  ASSERT_TRUE(a);
  ASSERT_TRUE(a->remove(name));
}

TEST_F(AcrossHostsTest, WrongKeyIsRefusedAndNoNamesCross) {
  start_source();
  auto a = source_->connect();
  ASSERT_TRUE(a);
  auto secret = a->create("mirror/secret", {.dtype = "<u8", .shape = {16}, .mode = 0644});
  ASSERT_TRUE(secret) << secret.error().message();
  const std::string other_key = key_dir_ + "/other.key";
  write_key(other_key);
  start_mirror(other_key);
  std::string out;
  EXPECT_TRUE(mirror_ls_says("wrong key", &out)) << "shmarray mirror ls on B says:\n" << out;
  auto b = mirror_->connect();
  ASSERT_TRUE(b);
  auto listed = b->list();
  ASSERT_TRUE(listed);
  EXPECT_TRUE(listed->empty()) << "a name crossed without the right key: " << listed->front().name;
  ASSERT_TRUE(a->remove("mirror/secret"));
}

TEST_F(AcrossHostsTest, PrefixOutsidePeerAllowIsRefused) {
  start_source("public/");
  auto a = source_->connect();
  ASSERT_TRUE(a);
  auto hidden = a->create("mirror/hidden", {.dtype = "<u8", .shape = {16}, .mode = 0644});
  ASSERT_TRUE(hidden) << hidden.error().message();
  start_mirror(key_);
  std::string out;
  EXPECT_TRUE(mirror_ls_says("peer refused: prefix", &out)) << "shmarray mirror ls on B says:\n" << out;
  auto b = mirror_->connect();
  ASSERT_TRUE(b);
  auto listed = b->list();
  ASSERT_TRUE(listed);
  EXPECT_TRUE(listed->empty()) << "a name outside --peer-allow crossed: " << listed->front().name;
  ASSERT_TRUE(a->remove("mirror/hidden"));
}

}  // namespace
}  // namespace shmarray::test
