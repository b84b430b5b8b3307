// The `shmarray` command line against a real broker: every subcommand, as a user would type it.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <climits>
#include <cstdint>
#include <cstring>

#include <chrono>
#include <csignal>
#include <fstream>

#include "broker_process.hpp"

namespace shmarray::test {
namespace {

using namespace std::chrono_literals;

class CliTest : public BrokerTest {
 protected:
  RunResult cli(std::vector<std::string> args) {
    std::vector<std::string> argv{SHMARRAY_CLI_PATH, "--socket", broker_->socket_path()};
    argv.insert(argv.end(), args.begin(), args.end());
    return run(argv, 20s);
  }
  // `command` run by /bin/sh, with $CLI the shmarray command on this broker's socket; stderr is
  // captured with stdout when the command ends in 2>&1.
  RunResult sh(const std::string& command) {
    return run({"/bin/sh", "-c", command},
               20s, {std::string("CLI=") + SHMARRAY_CLI_PATH + " --socket " +
                     broker_->socket_path()});
  }
  void create(const std::string& name) {
    ASSERT_TRUE(broker_->client().create(name, ArraySpec{.shape = {1}}));
  }
  std::vector<std::string> names() {
    std::vector<std::string> out;
    const auto infos = broker_->client().list();
    for (const auto& info : infos.value()) out.push_back(info.name);
    return out;
  }
};

TEST_F(CliTest, CreateListStatDumpRemoveRoundTrip) {
  auto created = cli({"create", "demo/a", "--dtype", "float64", "--shape", "2,3", "--mode", "0640"});
  ASSERT_TRUE(created.status.ok()) << created.status.describe();
  EXPECT_NE(created.out.find("demo/a"), std::string::npos);

  auto ls = cli({"ls"});
  ASSERT_TRUE(ls.status.ok());
  EXPECT_NE(ls.out.find("NAME"), std::string::npos);
  EXPECT_NE(ls.out.find("demo/a"), std::string::npos);
  EXPECT_NE(ls.out.find("(2, 3)"), std::string::npos);
  EXPECT_NE(ls.out.find("0640"), std::string::npos);

  auto json = cli({"ls", "--json"});
  EXPECT_NE(json.out.find("\"name\": \"demo/a\""), std::string::npos) << json.out;

  auto client = broker_->client();
  auto a = client.open("demo/a", Access::kReadWrite);
  ASSERT_TRUE(a);
  auto v = a->as<double>();
  for (std::size_t i = 0; i < v->size(); ++i) (*v)[i] = static_cast<double>(i) / 2;
  auto dump = cli({"dump", "demo/a"});
  ASSERT_TRUE(dump.status.ok());
  EXPECT_EQ(dump.out, "[[0.  0.5 1. ]\n [1.5 2.  2.5]]\n");
  auto head = cli({"dump", "demo/a", "--head", "2"});
  EXPECT_EQ(head.out, "[0.  0.5]\n");

  auto stat = cli({"stat", "demo/a"});
  EXPECT_NE(stat.out.find("dtype"), std::string::npos);
  EXPECT_NE(stat.out.find("<f8"), std::string::npos);

  auto rm = cli({"rm", "demo/a", "missing"});
  EXPECT_EQ(rm.status.exit_code, 1);  // one of the two failed
  EXPECT_EQ(client.stat("demo/a").error().code(), ErrorCode::kNotFound);
}

// A record array and a timestamp array: stat prints the dtype and dump the elements as NumPy does.
TEST_F(CliTest, StatAndDumpPrintStructuredAndDatetimeArraysAsNumpyDoes) {
  auto created = cli({"create", "pts", "--dtype", "{'x':<f4@0,'y':<f4@4,'z':<f4@8,'i':<u2@12}16",
                      "--shape", "2"});
  ASSERT_TRUE(created.status.ok()) << created.status.describe() << created.out;
  struct Point {
    float x, y, z;
    std::uint16_t i;
  };
  auto client = broker_->client();
  auto a = client.open("pts", Access::kReadWrite);
  ASSERT_TRUE(a);
  auto points = a->as<Point>();
  ASSERT_TRUE(points) << points.error().message();
  (*points)[1] = Point{1, 2, 3, 1};
  auto stat = cli({"stat", "pts"});
  EXPECT_NE(stat.out.find("dtype: {'names': ['x', 'y', 'z', 'i'], 'formats': ['<f4', '<f4', "
                          "'<f4', '<u2'], 'offsets': [0, 4, 8, 12], 'itemsize': 16}\n"),
            std::string::npos)
      << stat.out;
  EXPECT_EQ(cli({"dump", "pts"}).out, "[(0., 0., 0., 0) (1., 2., 3., 1)]\n");

  auto t = client.create("ticks", ArraySpec{.dtype = "<M8[ns]", .shape = {2}});
  ASSERT_TRUE(t);
  auto ns = t->as<std::int64_t>();
  ASSERT_FALSE(ns) << "as<int64_t>() on datetime64 must be refused";
  auto raw = t->mutable_bytes();
  ASSERT_TRUE(raw);
  const std::int64_t values[] = {1'704'164'645'000'000'000, INT64_MIN};
  std::memcpy(raw->data(), values, sizeof values);
  EXPECT_EQ(cli({"dump", "ticks"}).out, "['2024-01-02T03:04:05.000000000'                           'NaT']\n");
  ASSERT_TRUE(client.remove("pts"));
  ASSERT_TRUE(client.remove("ticks"));
}

// A frame: ls says so (with its column count and rows), stat lists its columns, dump prints its
// first rows as a table like pandas.
TEST_F(CliTest, LsStatAndDumpShowAFrameAsATable) {
  auto client = broker_->client();
  auto frame = client.create_frame(
      "md/ticks", FrameSpec{.columns = {{"t", "<M8[ns]"}, {"price", "<f8"}, {"venue", "|S4"}},
                            .rows = 20, .index = "t"});
  ASSERT_TRUE(frame) << frame.error().message();
  auto t = frame->column<std::int64_t>("t");
  auto price = frame->column<double>("price");
  auto venue = frame->array().mutable_bytes();
  ASSERT_TRUE(t && price && venue);
  for (std::size_t k = 0; k < 20; ++k) {
    (*t)[k] = 1'700'000'000'000'000'000 + static_cast<std::int64_t>(k) * 1'000'000'000;
    (*price)[k] = 100 + 0.25 * static_cast<double>(k);
    std::memcpy(venue->data() + frame->columns()[2].offset + 4 * k, k % 2 ? "ARCX" : "XNAS", 4);
  }
  auto ls = cli({"ls"});
  EXPECT_NE(ls.out.find("md/ticks  frame  3 columns  (20,)"), std::string::npos) << ls.out;
  auto stat = cli({"stat", "md/ticks"});
  EXPECT_NE(stat.out.find("kind: frame\n"), std::string::npos) << stat.out;
  EXPECT_NE(stat.out.find("rows: 20\ncolumns:\n  t: datetime64[ns] (index)\n  price: float64\n"
                          "  venue: |S4\n"),
            std::string::npos)
      << stat.out;
  auto dump = cli({"dump", "md/ticks", "--head", "2"});
  EXPECT_EQ(dump.out,
            "                      price    venue\n"
            "t                  \n"
            "2023-11-14 22:13:20  100.    b'XNAS'\n"
            "2023-11-14 22:13:21  100.25  b'ARCX'\n"
            "[20 rows x 2 columns]\n");
  ASSERT_TRUE(client.remove("md/ticks"));
}

TEST_F(CliTest, ErrorsAreClearAndUsageErrorsExitTwo) {
  auto bad = cli({"create", "x", "--dtype", "<f12", "--shape", "3"});
  EXPECT_EQ(bad.status.exit_code, 2);
  auto missing = cli({"stat", "nope"});
  EXPECT_EQ(missing.status.exit_code, 1);
  auto help = run({SHMARRAY_CLI_PATH, "watch", "--help"});
  EXPECT_TRUE(help.status.ok());
  EXPECT_NE(help.out.find("--seconds"), std::string::npos);
  auto no_broker = run({SHMARRAY_CLI_PATH, "--socket", "/tmp/shmarray-nowhere/s.sock", "ls"});
  EXPECT_EQ(no_broker.status.exit_code, 1);
}

TEST_F(CliTest, WatchStreamsEventsAndVersionRate) {
  auto client = broker_->client();
  auto a = client.create("w", ArraySpec{.shape = {1}});
  ASSERT_TRUE(a);
  auto watch = ChildProcess::spawn(
      {SHMARRAY_CLI_PATH, "--socket", broker_->socket_path(), "watch", "w", "--seconds", "2.5"});
  const auto first = watch.read_line(5s);
  ASSERT_TRUE(first);
  EXPECT_NE(first->find("watching 'w' on"), std::string::npos) << *first;
  const auto second = watch.read_line(5s);
  ASSERT_TRUE(second);
  EXPECT_NE(second->find("at version 0"), std::string::npos) << *second;
  for (int i = 0; i < 50; ++i) ASSERT_TRUE(a->publish());
  ASSERT_TRUE(client.remove("w"));
  const std::string out = watch.read_all(10s);
  EXPECT_TRUE(watch.wait(5s).ok());
  EXPECT_NE(out.find("removed 'w'"), std::string::npos) << out;
  EXPECT_NE(out.find("version 'w' 50 (+50"), std::string::npos) << out;
}

TEST_F(CliTest, BothProgramsPrintTheirVersion) {
  auto cli_version = run({SHMARRAY_CLI_PATH, "--version"});
  EXPECT_TRUE(cli_version.status.ok()) << cli_version.status.describe();
  EXPECT_EQ(cli_version.out, std::string("shmarray ") + SHMARRAY_VERSION + "\n");
  auto broker_version = run({SHMARRAYD_PATH, "--version"});
  EXPECT_TRUE(broker_version.status.ok()) << broker_version.status.describe();
  EXPECT_EQ(broker_version.out, std::string("shmarrayd ") + SHMARRAY_VERSION + "\n");
}

TEST(CliSizes, BrokerByteLimitsTakeUnits) {
  BrokerProcess broker({"--max-bytes", "1M", "--max-pending-reply-bytes", "64K"});
  auto client = broker.client();
  // 1M = 1048576 bytes in all: a 768 KiB array fits, a second one does not.
  auto fits = client.create("sz/a", ArraySpec{.dtype = "|u1", .shape = {768 << 10}});
  ASSERT_TRUE(fits) << fits.error().message();
  auto over = client.create("sz/b", ArraySpec{.dtype = "|u1", .shape = {768 << 10}});
  ASSERT_FALSE(over);
  EXPECT_EQ(over.error().code(), ErrorCode::kResourceExhausted);
  EXPECT_NE(over.error().message().find("1048576"), std::string::npos) << over.error().message();
  ASSERT_TRUE(client.remove("sz/a"));
}

TEST(CliSizes, BrokerRefusesABadSizeNamingIt) {
  auto bad = run({"/bin/sh", "-c", std::string(SHMARRAYD_PATH) + " --max-bytes 1GB 2>&1"});
  EXPECT_NE(bad.status.exit_code, 0);
  EXPECT_NE(bad.out.find("bad size '1GB'"), std::string::npos) << bad.out;
  EXPECT_NE(bad.out.find("512M, 1G"), std::string::npos) << bad.out;
}

TEST_F(CliTest, JsonShowsModeAsTheOctalStringTheTextShows) {
  ASSERT_TRUE(cli({"create", "m/a", "--dtype", "u1", "--shape", "1", "--mode", "0640"}).status.ok());
  auto json = cli({"ls", "--json"});
  EXPECT_NE(json.out.find("\"mode\": \"0640\""), std::string::npos) << json.out;
  auto one = cli({"stat", "m/a", "--json"});
  EXPECT_NE(one.out.find("\"mode\": \"0640\""), std::string::npos) << one.out;
  ASSERT_TRUE(broker_->client().remove("m/a"));
}

TEST_F(CliTest, LsOnePrintsOnlyNames) {
  create("cam/b");
  create("cam/a");
  create("other");
  auto ls = cli({"ls", "-1", "cam/"});
  ASSERT_TRUE(ls.status.ok());
  EXPECT_EQ(ls.out, "cam/a\ncam/b\n");
  EXPECT_EQ(cli({"ls", "-1", "--json"}).status.exit_code, 2);  // one format at a time
  ASSERT_TRUE(cli({"rm", "cam/a", "cam/b", "other"}).status.ok());
}

TEST_F(CliTest, RmPrefixSaysHowManyAndAsksFirst) {
  create("cam/a");
  create("cam/b");
  create("camera");
  create("other");
  // "n", or no answer at all: nothing removed, exit 1.
  auto no = sh("echo n | $CLI rm --prefix cam/ 2>&1");
  EXPECT_EQ(no.status.exit_code, 1);
  EXPECT_NE(no.out.find("remove 2 arrays whose names start with 'cam/' ('cam/a', 'cam/b')? [y/N]"),
            std::string::npos) << no.out;
  EXPECT_NE(no.out.find("nothing removed"), std::string::npos) << no.out;
  auto eof = sh("$CLI rm --prefix cam/ </dev/null 2>&1");
  EXPECT_EQ(eof.status.exit_code, 1);
  EXPECT_NE(eof.out.find("pass --yes"), std::string::npos) << eof.out;
  EXPECT_EQ(names(), (std::vector<std::string>{"cam/a", "cam/b", "camera", "other"}));

  auto yes = sh("echo y | $CLI rm --prefix cam/ 2>&1");
  EXPECT_TRUE(yes.status.ok()) << yes.out;
  EXPECT_NE(yes.out.find("removed 'cam/a'"), std::string::npos) << yes.out;
  EXPECT_EQ(names(), (std::vector<std::string>{"camera", "other"}));

  // Scripts: --yes asks nothing (stdin is not read).
  auto script = sh("$CLI rm --prefix cam --yes </dev/null 2>&1");
  EXPECT_TRUE(script.status.ok()) << script.out;
  EXPECT_EQ(script.out.find("[y/N]"), std::string::npos) << script.out;
  EXPECT_EQ(names(), (std::vector<std::string>{"other"}));
  auto none = cli({"rm", "--prefix", "cam", "--yes"});
  EXPECT_TRUE(none.status.ok());
  EXPECT_NE(none.out.find("nothing removed"), std::string::npos) << none.out;
  // Names and --prefix do not mix; --yes needs --prefix; rm needs one of them.
  EXPECT_EQ(cli({"rm", "other", "--prefix", "o"}).status.exit_code, 2);
  EXPECT_EQ(cli({"rm", "other", "--yes"}).status.exit_code, 2);
  EXPECT_EQ(cli({"rm"}).status.exit_code, 2);
  ASSERT_TRUE(cli({"rm", "other"}).status.ok());
}

TEST_F(CliTest, EverySubcommandHelpShowsTheGlobalOptions) {
  for (const char* command : {"ls", "stat", "create", "rm", "chmod", "dump", "watch"}) {
    auto help = run({SHMARRAY_CLI_PATH, command, "--help"});
    EXPECT_TRUE(help.status.ok()) << command;
    for (const char* option : {"--socket", "--broker-uid", "--timeout"}) {
      EXPECT_NE(help.out.find(option), std::string::npos) << command << " --help lacks " << option;
    }
  }
  // ...and they work after the subcommand as before it.
  create("g");
  auto after = run({SHMARRAY_CLI_PATH, "ls", "-1", "--socket", broker_->socket_path()});
  EXPECT_EQ(after.out, "g\n");
  ASSERT_TRUE(cli({"rm", "g"}).status.ok());
}

TEST_F(CliTest, SocketPathThatIsNoSocketSaysWhatItIs) {
  const std::string file = broker_->dir() + "/plain";
  std::ofstream(file) << "x";
  auto directory = sh(std::string(SHMARRAY_CLI_PATH) + " --socket " + broker_->dir() +
                      " ls 2>&1");
  EXPECT_EQ(directory.status.exit_code, 1);
  EXPECT_NE(directory.out.find(broker_->dir() + " is a directory, not a socket"),
            std::string::npos) << directory.out;
  EXPECT_EQ(directory.out.find("refused"), std::string::npos) << directory.out;
  auto regular = sh(std::string(SHMARRAY_CLI_PATH) + " --socket " + file + " ls 2>&1");
  EXPECT_EQ(regular.status.exit_code, 1);
  EXPECT_NE(regular.out.find(file + " is a regular file"), std::string::npos) << regular.out;
  ::unlink(file.c_str());
}

TEST_F(CliTest, StoppedBrokerTimeoutNamesTheSocketAndTheTimeout) {
  ASSERT_EQ(::kill(broker_->pid(), SIGSTOP), 0);
  auto stopped = sh("$CLI --timeout 0.5 ls 2>&1");
  ASSERT_EQ(::kill(broker_->pid(), SIGCONT), 0);
  EXPECT_EQ(stopped.status.exit_code, 1);
  EXPECT_NE(stopped.out.find("the broker at " + broker_->socket_path() +
                             " did not answer within 0.5 s"),
            std::string::npos) << stopped.out;
  EXPECT_TRUE(cli({"ls"}).status.ok());  // serving again
}

}  // namespace
}  // namespace shmarray::test
