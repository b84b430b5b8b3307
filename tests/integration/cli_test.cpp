// The `shmarray` command line against a real broker: every subcommand, as a user would type it.
#include <gtest/gtest.h>

#include <climits>
#include <cstdint>
#include <cstring>

#include <chrono>

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

}  // namespace
}  // namespace shmarray::test
