// Control plane and cross-process sharing with a real shmarrayd and real helper processes.
#include <dirent.h>
#include <gtest/gtest.h>

#include <chrono>
#include <csignal>
#include <fstream>
#include <sstream>

#include "broker_process.hpp"
#include "raw_client.hpp"

namespace shmarray::test {
namespace {

using namespace std::chrono_literals;

int count_open_fds() {
  int n = 0;
  if (DIR* d = ::opendir("/proc/self/fd")) {
    while (::readdir(d) != nullptr) ++n;
    ::closedir(d);
  }
  return n;
}

// Resident KiB of this process's mapping that contains `address` (Rss in /proc/self/smaps).
long mapping_rss_kib(const void* address) {
  std::ifstream smaps("/proc/self/smaps");
  const auto at = reinterpret_cast<std::uintptr_t>(address);
  bool inside = false;
  for (std::string line; std::getline(smaps, line);) {
    std::uintptr_t start = 0;
    std::uintptr_t end = 0;
    char dash = 0;
    std::istringstream head(line);
    if (head >> std::hex >> start >> dash >> end && dash == '-') {
      inside = start <= at && at < end;
    } else if (inside && line.starts_with("Rss:")) {
      return std::stol(line.substr(4));
    }
  }
  return -1;
}

class BasicTest : public BrokerTest {};

TEST_F(BasicTest, ProcessesSeeEachOthersWritesBothWays) {
  auto client = broker_->client();
  auto a = client.create("shared/m", ArraySpec{.dtype = "<f8", .shape = {64, 64}});
  ASSERT_TRUE(a) << a.error().message();
  auto values = a->as<double>();
  ASSERT_TRUE(values);

  // Another process writes; we see it in our mapping.
  auto w = run_helper({"write", broker_->socket_path(), "shared/m", "5", "42.5"});
  ASSERT_TRUE(w.status.ok()) << w.status.describe();
  EXPECT_EQ((*values)[5], 42.5);
  EXPECT_EQ(a->version(), 1u);  // the helper published

  // We write; another process sees it.
  (*values)[4095] = -7.25;
  auto r = run_helper({"expect", broker_->socket_path(), "shared/m", "4095", "-7.25"});
  EXPECT_TRUE(r.status.ok()) << r.status.describe() << " " << r.out;
  ASSERT_TRUE(client.remove("shared/m"));
}

TEST_F(BasicTest, ReadOnlyOpenCannotWriteEvenBypassingTheApi) {
  auto client = broker_->client();
  ASSERT_TRUE(client.create("ro", ArraySpec{.dtype = "<f8", .shape = {16}}));
  auto ro = client.open("ro", Access::kReadOnly);
  ASSERT_TRUE(ro);
  EXPECT_FALSE(ro->writable());
  EXPECT_EQ(ro->mutable_bytes().error().code(), ErrorCode::kPermissionDenied);
  EXPECT_EQ(ro->as<double>().error().code(), ErrorCode::kPermissionDenied);
  EXPECT_TRUE(ro->as<const double>());
  EXPECT_EQ(ro->publish().error().code(), ErrorCode::kPermissionDenied);

  // A separate process whose mapping is read-only dies when it writes: the kernel enforces it.
  auto child = run_helper({"write-ro", broker_->socket_path(), "ro"});
  EXPECT_EQ(child.status.signal, SIGSEGV) << child.status.describe();
  EXPECT_EQ(child.out.find("wrote"), std::string::npos);
  ASSERT_TRUE(client.remove("ro"));
}

TEST_F(BasicTest, RemoveKeepsMappingsValidAndFreesTheNameAtOnce) {
  auto client = broker_->client();
  auto old = client.create("frames", ArraySpec{.dtype = "<i4", .shape = {1000}});
  ASSERT_TRUE(old);
  (*old->as<std::int32_t>())[999] = 1234;
  ASSERT_TRUE(client.remove("frames"));

  EXPECT_EQ(client.open("frames", Access::kReadOnly).error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(client.stat("frames").error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(client.remove("frames").error().code(), ErrorCode::kNotFound);
  // The old mapping still works, read and write.
  (*old->as<std::int32_t>())[0] = 7;
  EXPECT_EQ((*old->as<std::int32_t>())[999], 1234);

  // The name can be reused at once, for a different array.
  auto fresh = client.create("frames", ArraySpec{.dtype = "<i4", .shape = {1000}});
  ASSERT_TRUE(fresh);
  EXPECT_NE(fresh->info().id, old->info().id);
  EXPECT_EQ((*fresh->as<std::int32_t>())[999], 0);
  EXPECT_EQ((*old->as<std::int32_t>())[999], 1234);
  ASSERT_TRUE(client.remove("frames"));
}

TEST_F(BasicTest, ListAndStatDescribeArrays) {
  auto client = broker_->client();
  ASSERT_TRUE(client.create("cam/1", ArraySpec{.dtype = "float32", .shape = {480, 640}}));
  auto cam0 = client.create("cam/0", ArraySpec{.dtype = "<u2", .shape = {2, 3, 4},
                                                .order = Order::kF});
  ASSERT_TRUE(cam0);  // held: open_handles counts the arrays a process holds now
  ASSERT_TRUE(client.create("camera", ArraySpec{.dtype = "|b1", .shape = {}}));

  auto all = client.list();
  ASSERT_TRUE(all);
  ASSERT_EQ(all->size(), 3u);
  auto cams = client.list("cam/");
  ASSERT_TRUE(cams);
  ASSERT_EQ(cams->size(), 2u);
  EXPECT_EQ((*cams)[0].name, "cam/0");
  EXPECT_EQ((*cams)[1].name, "cam/1");

  auto st = client.stat("cam/0");
  ASSERT_TRUE(st);
  EXPECT_EQ(st->dtype, "<u2");
  EXPECT_EQ(st->shape, (std::vector<std::uint64_t>{2, 3, 4}));
  EXPECT_EQ(st->strides, (std::vector<std::int64_t>{2, 4, 12}));
  EXPECT_EQ(st->order, Order::kF);
  EXPECT_EQ(st->nbytes, 48u);
  EXPECT_EQ(st->itemsize, 2u);
  EXPECT_EQ(st->owner_uid, ::getuid());
  EXPECT_EQ(st->mode, 0600u);
  EXPECT_EQ(st->open_handles, 1u);
  EXPECT_EQ(st->id.size(), 32u);

  auto scalar = client.stat("camera");
  ASSERT_TRUE(scalar);
  EXPECT_TRUE(scalar->shape.empty());
  EXPECT_EQ(scalar->nbytes, 1u);
  for (const char* n : {"cam/0", "cam/1", "camera"}) ASSERT_TRUE(client.remove(n));
  EXPECT_TRUE(client.list()->empty());
}

TEST_F(BasicTest, BadRequestsGetClearErrorsAndTheBrokerKeepsServing) {
  auto client = broker_->client();
  auto bad_name = client.create("../etc/passwd", ArraySpec{.shape = {1}});
  EXPECT_EQ(bad_name.error().code(), ErrorCode::kInvalidArgument);
  auto bad_dtype = client.create("x", ArraySpec{.dtype = "<f12", .shape = {1}});
  EXPECT_EQ(bad_dtype.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(bad_dtype.error().message().find("<f12"), std::string::npos);
  auto huge = client.create("x", ArraySpec{.dtype = "<f8", .shape = {1ull << 40, 1ull << 40}});
  EXPECT_EQ(huge.error().code(), ErrorCode::kInvalidArgument);
  auto too_big = client.create("x", ArraySpec{.dtype = "<f8", .shape = {1ull << 50}});
  EXPECT_EQ(too_big.error().code(), ErrorCode::kResourceExhausted);

  ASSERT_TRUE(client.create("x", ArraySpec{.shape = {3}}));
  auto dup = client.create("x", ArraySpec{.shape = {3}});
  EXPECT_EQ(dup.error().code(), ErrorCode::kAlreadyExists);
  EXPECT_NE(dup.error().message().find("already exists"), std::string::npos);
  auto wrong_type = client.open("x", Access::kReadOnly)->as<const float>();
  EXPECT_EQ(wrong_type.error().code(), ErrorCode::kInvalidArgument);
  ASSERT_TRUE(client.remove("x"));
  EXPECT_TRUE(client.list());  // still serving
}

TEST_F(BasicTest, SecondOpenInOneProcessReusesTheMappingAndNoFdIsHeld) {
  auto client = broker_->client();
  auto created = client.create("reuse", ArraySpec{.dtype = "<f4", .shape = {1 << 20}});
  ASSERT_TRUE(created);
  auto again = client.open("reuse", Access::kReadWrite);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->data(), created->data());  // same mapping, no new mmap
  auto ro = client.open("reuse", Access::kReadOnly);
  EXPECT_EQ(ro->data(), created->data());

  const int before = count_open_fds();
  std::vector<Array> many;
  for (int i = 0; i < 50; ++i) {
    const std::string name = "fd/" + std::to_string(i);
    auto a = client.create(name, ArraySpec{.shape = {8}});
    ASSERT_TRUE(a);
    many.push_back(std::move(*a));
    many.push_back(std::move(*client.open(name, Access::kReadOnly)));
  }
  EXPECT_EQ(count_open_fds(), before) << "an open array must not hold a descriptor";
  many.clear();
  for (int i = 0; i < 50; ++i) ASSERT_TRUE(client.remove("fd/" + std::to_string(i)));
  ASSERT_TRUE(client.remove("reuse"));
}

TEST_F(BasicTest, PopulateOptionMapsTheSameData) {
  auto client = broker_->client();
  auto a = client.create("pop", ArraySpec{.dtype = "<u8", .shape = {100000}});
  ASSERT_TRUE(a);
  (*a->as<std::uint64_t>())[99999] = 99;
  auto child = run_helper({"hold", broker_->socket_path(), "pop"}, 20s);  // opens with populate
  EXPECT_TRUE(child.status.ok()) << child.status.describe();
  EXPECT_NE(child.out.find("held"), std::string::npos);
  ASSERT_TRUE(client.remove("pop"));
}

TEST_F(BasicTest, CreateWithPopulatePrefaultsTheCreatorsMapping) {
  auto client = broker_->client();
  constexpr std::uint64_t kBytes = 16 << 20;
  auto lazy = client.create("pop/lazy", ArraySpec{.dtype = "|u1", .shape = {kBytes}});
  auto eager =
      client.create("pop/eager", ArraySpec{.dtype = "|u1", .shape = {kBytes}, .populate = true});
  ASSERT_TRUE(lazy && eager);
  EXPECT_GE(mapping_rss_kib(eager->bytes().data()), static_cast<long>(kBytes / 1024));
  const long lazy_kib = mapping_rss_kib(lazy->bytes().data());
  EXPECT_GE(lazy_kib, 0);
  EXPECT_LT(lazy_kib, 1024);  // nothing touched: at most the header page
  // The pre-faulted pages are the shared ones.
  (*eager->as<std::uint8_t>())[kBytes - 1] = 7;
  auto reader = client.open("pop/eager", Access::kReadOnly);
  ASSERT_TRUE(reader);
  EXPECT_EQ(std::to_integer<int>(reader->bytes()[kBytes - 1]), 7);
  ASSERT_TRUE(client.remove("pop/lazy"));
  ASSERT_TRUE(client.remove("pop/eager"));
}

TEST_F(BasicTest, InterruptCheckEndsAWaitingOpenAndKeepsTheConnection) {
  int checks = 0;
  int cancel_at = 3;
  auto client = Client::connect({.socket_path = broker_->socket_path(),
                                 .interrupt_check = [&]() -> Result<void> {
                                   if (++checks == cancel_at) {
                                     return fail(ErrorCode::kCancelled, "interrupted");
                                   }
                                   return {};
                                 }});
  ASSERT_TRUE(client);
  // An ephemeral array dies with its connection: it shows that the connection is kept.
  ASSERT_TRUE(client->create("kept", ArraySpec{.shape = {1}, .ephemeral = true}));
  const auto start = std::chrono::steady_clock::now();
  auto opened = client->open("never", Access::kReadOnly, {.wait = 60s});
  ASSERT_FALSE(opened);
  EXPECT_EQ(opened.error().code(), ErrorCode::kCancelled);
  EXPECT_EQ(checks, 3);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 20s);  // not the 60 s wait
  cancel_at = -1;
  auto infos = client->list();  // the same connection answers (the late reply is dropped)
  ASSERT_TRUE(infos) << infos.error().message();
  ASSERT_EQ(infos->size(), 1u);
  EXPECT_EQ(infos->front().name, "kept");
}

TEST_F(BasicTest, OpenWaitsForAnArrayCreatedLater) {
  // Proof that the open is parked, not guessed with a sleep: on one connection the broker
  // answers in order, so when a list sent after the waiting open is answered first, the open was
  // handled and is waiting in the broker.
  auto parked = RawClient::connect(broker_->socket_path());
  ASSERT_TRUE(parked);
  EXPECT_FALSE(parked->call(wire::OpenRequest{"late", Access::kReadOnly, 10000}, 0ms))
      << "answered at once: not parked";
  auto later = parked->call(wire::ListRequest{""});
  ASSERT_TRUE(later);
  ASSERT_EQ(later->header.type, wire::MessageType::kListReply) << "the open was not parked";
  // A real consumer process waiting the same way.
  auto consumer = spawn_helper({"wait-open", broker_->socket_path(), "late", "10000"});
  auto client = broker_->client();
  auto a = client.create("late", ArraySpec{.shape = {4}});
  ASSERT_TRUE(a);
  auto granted = parked->call(wire::ListRequest{"none/"});  // the next frames: open's, then list's
  ASSERT_TRUE(granted);
  EXPECT_EQ(granted->header.type, wire::MessageType::kOpenReply);
  EXPECT_EQ(granted->fds.size(), 1u);
  auto line = consumer.read_line(10s);
  ASSERT_TRUE(line);
  EXPECT_EQ(*line, "opened 0");
  EXPECT_TRUE(consumer.wait(5s).ok());

  const auto start = std::chrono::steady_clock::now();
  auto never = client.open("never", Access::kReadOnly, {.wait = 300ms});
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(never.error().code(), ErrorCode::kDeadlineExceeded);
  EXPECT_GE(took, 290ms);
  EXPECT_LT(took, 5s);
  ASSERT_TRUE(client.remove("late"));
}

TEST_F(BasicTest, WatcherReportsCreateAndRemoveUnderItsPrefixOnly) {
  auto watcher = Watcher::start(broker_->socket_path(), "cam/");
  ASSERT_TRUE(watcher) << watcher.error().message();
  auto client = broker_->client();
  ASSERT_TRUE(client.create("other/x", ArraySpec{.shape = {1}}));
  ASSERT_TRUE(client.create("cam/1", ArraySpec{.dtype = "<u2", .shape = {2, 2}}));
  ASSERT_TRUE(client.remove("cam/1"));
  ASSERT_TRUE(client.remove("other/x"));

  auto created = watcher->next(5s);
  ASSERT_TRUE(created && created->has_value());
  EXPECT_EQ((*created)->kind, WatchEvent::Kind::kCreated);
  EXPECT_EQ((*created)->name, "cam/1");
  EXPECT_EQ((*created)->info.dtype, "<u2");
  auto removed = watcher->next(5s);
  ASSERT_TRUE(removed && removed->has_value());
  EXPECT_EQ((*removed)->kind, WatchEvent::Kind::kRemoved);
  EXPECT_EQ((*removed)->name, "cam/1");
  auto nothing = watcher->next(200ms);  // other/x is outside the prefix
  ASSERT_TRUE(nothing);
  EXPECT_FALSE(nothing->has_value());
}

TEST(NoBroker, ConnectFailsWithUnavailableAndSaysHowToStartIt) {
  auto c = Client::connect({.socket_path = "/tmp/shmarray-no-such-dir/s.sock"});
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().code(), ErrorCode::kUnavailable);
  EXPECT_NE(c.error().message().find("shmarrayd"), std::string::npos);
  EXPECT_NE(c.error().message().find("/tmp/shmarray-no-such-dir/s.sock"), std::string::npos);
}

}  // namespace
}  // namespace shmarray::test
