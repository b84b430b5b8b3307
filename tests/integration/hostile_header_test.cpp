// A hostile co-writer against the live fields of a segment: whatever it writes into the header
// page, other processes at worst time out or see "possibly torn"; they never crash, never write
// outside the segment, never wait far past their timeouts. Real broker, real helper processes.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstring>
#include <regex>
#include <thread>

#include "broker_process.hpp"
#include "shmarray/segment_layout.hpp"

namespace shmarray::test {
namespace {

using namespace std::chrono_literals;

class HostileHeaderTest : public BrokerTest {};

// "max_ms=N" of a helper's summary line.
long max_ms_of(const std::string& line) {
  std::smatch m;
  if (!std::regex_search(line, m, std::regex("max_ms=([0-9]+)"))) return -1;
  return std::stol(m[1]);
}

// Two writers lock/write/publish/unlock with 200 ms timeouts and a reader reads consistently,
// while a co-writer writes random bytes over the whole header page for 2 s.
TEST_F(HostileHeaderTest, RandomBytesOverTheHeaderPageCostOthersAtMostTheirTimeouts) {
  auto client = broker_->client();
  auto a = client.create("victim", ArraySpec{.dtype = "|u1", .shape = {65536}, .mode = 0600});
  ASSERT_TRUE(a) << a.error().message();
  const std::string sock = broker_->socket_path();
  auto w1 = spawn_helper({"lock-writer", sock, "victim", "2500", "200"});
  auto w2 = spawn_helper({"lock-writer", sock, "victim", "2500", "200"});
  auto reader = spawn_helper({"consistent-reader", sock, "victim", "2500", "200"});
  for (auto* child : {&w1, &w2, &reader}) {
    ASSERT_EQ(child->read_line(10s), std::optional<std::string>("ready"));
  }
  auto scribbler = spawn_helper({"scribble", sock, "victim", "2000", "12345"});
  ASSERT_EQ(scribbler.read_line(10s), std::optional<std::string>("ready"));

  // Timeouts are 200 ms; anything beyond 200 ms + a generous scheduling margin (sanitizers, two
  // vCPUs shared by five processes) would be a wait past the timeout.
  constexpr long kLimitMs = 200 + 4800;
  for (auto* child : {&w1, &w2, &reader}) {
    const auto line = child->read_line(20s);
    ASSERT_TRUE(line.has_value()) << "no summary: the process hung or died";
    std::printf("[ info     ] %s\n", line->c_str());
    const ExitStatus st = child->wait(10s);
    EXPECT_TRUE(st.ok()) << st.describe() << " (" << *line << ")";
    const long worst = max_ms_of(*line);
    EXPECT_GE(worst, 0) << *line;
    EXPECT_LT(worst, kLimitMs) << "a call waited far past its 200 ms timeout: " << *line;
  }
  const auto done = scribbler.read_line(10s);
  EXPECT_TRUE(done && done->starts_with("scribbled ")) << done.value_or("(none)");
  EXPECT_TRUE(scribbler.wait(10s).ok());

  // The broker and this client are unharmed: another array works, and the victim can be removed.
  auto other = client.create("bystander", ArraySpec{.shape = {4}});
  ASSERT_TRUE(other) << other.error().message();
  EXPECT_TRUE(other->publish());
  EXPECT_TRUE(client.remove("bystander"));
  EXPECT_TRUE(client.remove("victim"));
}

volatile std::uint64_t g_canary = 0x1122334455667788ull;

// The robust-list attack on the old glibc mutex: a co-writer stored the address of a victim's
// variable where the mutex kept its list pointers (__list.__prev/__next at +24/+32 of the mutex,
// which sat at LiveFields offset 64), so that the victim's unlock would write there. With a plain
// lock word nothing in the segment is followed: the victim (a fork()ed child, so the canary has the
// same address as here) locks and unlocks 2,000 times and its canary never changes.
TEST_F(HostileHeaderTest, PointersPlantedWhereTheRobustListWasChangeNothingInTheVictim) {
  auto client = broker_->client();
  auto a = client.create("robust", ArraySpec{.dtype = "|u1", .shape = {4096}});
  ASSERT_TRUE(a) << a.error().message();
  auto bytes = a->mutable_bytes();
  ASSERT_TRUE(bytes);
  std::byte* live_page = bytes->data() - kHeaderBytes + kLiveFieldsOffset;
  const auto target = reinterpret_cast<std::uint64_t>(&g_canary);
  // Before and while the victim runs: every old pointer slot names the canary (and its
  // neighbourhood), as the attack did.
  const auto plant = [&] {
    for (std::size_t off = 64 + 8; off <= 64 + 40; off += 8) {  // everything after __lock
      std::memcpy(live_page + off, &target, sizeof target);
    }
    const std::uint64_t entry = target - 32;  // a list entry points at the entry, not the mutex
    std::memcpy(live_page + 64 + 24, &entry, sizeof entry);
  };
  plant();
  const pid_t victim = ::fork();
  ASSERT_GE(victim, 0);
  if (victim == 0) {
    for (int i = 0; i < 2000; ++i) {
      auto lock = a->lock(1s);
      if (!lock) ::_exit(3);
      (void)a->publish();
      if (!lock->unlock()) ::_exit(4);
    }
    ::_exit(g_canary == 0x1122334455667788ull ? 0 : 1);
  }
  for (int i = 0; i < 200; ++i) plant();  // keep planting while the victim runs
  int status = 0;
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  while (::waitpid(victim, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(victim, SIGKILL);
      ::waitpid(victim, &status, 0);
      FAIL() << "the victim hung";
    }
    plant();
    std::this_thread::sleep_for(1ms);
  }
  ASSERT_TRUE(WIFEXITED(status)) << "the victim died of signal " << WTERMSIG(status);
  EXPECT_EQ(WEXITSTATUS(status), 0) << "1: canary changed, 3: lock failed, 4: unlock failed";
  EXPECT_EQ(g_canary, 0x1122334455667788ull);
  EXPECT_TRUE(client.remove("robust"));
}

// A WriteLock keeps the mapping it points into: it may outlive the Array (and the Client) that
// made it, and unlocking it then is not a use-after-unmap.
TEST_F(HostileHeaderTest, WriteLockOutlivingItsArrayStillUnlocksTheRightSegment) {
  std::optional<WriteLock> lock;
  {
    auto client = broker_->client();
    ASSERT_TRUE(client.create("outlive", ArraySpec{.shape = {16}}));
    auto rw = client.open("outlive", Access::kReadWrite);
    ASSERT_TRUE(rw);
    auto taken = client.open("outlive", Access::kReadWrite)->lock(1s);  // a temporary Array
    ASSERT_TRUE(taken) << taken.error().message();
    lock.emplace(std::move(*taken));
  }  // every Array and the Client are gone; the lock still maps the segment
  ASSERT_TRUE(lock->held());
  auto client = broker_->client();
  auto again = client.open("outlive", Access::kReadWrite);
  ASSERT_TRUE(again);
  ErrorCode from_other_thread = ErrorCode::kOk;
  std::thread([&] { from_other_thread = again->try_lock().error().code(); }).join();
  EXPECT_EQ(from_other_thread, ErrorCode::kDeadlineExceeded) << "still held";
  EXPECT_TRUE(lock->unlock().has_value());
  auto next = again->try_lock();
  ASSERT_TRUE(next) << next.error().message();
  EXPECT_FALSE(next->previous_owner_died());
  EXPECT_TRUE(next->unlock().has_value());
  EXPECT_TRUE(client.remove("outlive"));
}

TEST_F(HostileHeaderTest, AbandonedGuardedWriteIsTornUntilTheNextPublish) {
  auto client = broker_->client();
  auto a = client.create("abandon", ArraySpec{.dtype = "<u8", .shape = {1024}});
  ASSERT_TRUE(a);
  ASSERT_TRUE(a->write([](std::span<std::byte> d) { std::memset(d.data(), 1, d.size()); }));
  auto reader = client.open("abandon", Access::kReadOnly);
  ASSERT_TRUE(reader);
  EXPECT_THROW((void)a->write([](std::span<std::byte> d) {
    std::memset(d.data(), 2, d.size() / 2);
    throw std::runtime_error("producer failed half-way");
  }),
               std::runtime_error);
  EXPECT_TRUE(reader->possibly_torn());
  std::vector<std::byte> copy(reader->bytes().size());
  auto torn = reader->read_consistent(
      [&] { std::memcpy(copy.data(), reader->bytes().data(), copy.size()); }, 100ms);
  ASSERT_FALSE(torn.has_value()) << "half-new bytes returned as version " << *torn;
  EXPECT_EQ(torn.error().code(), ErrorCode::kDataLoss);
  EXPECT_TRUE(a->try_lock()) << "the lock was released despite the exception";
  ASSERT_TRUE(a->write([](std::span<std::byte> d) { std::memset(d.data(), 3, d.size()); }));
  EXPECT_FALSE(reader->possibly_torn());
  auto clean = reader->read_consistent(
      [&] { std::memcpy(copy.data(), reader->bytes().data(), copy.size()); }, 100ms);
  ASSERT_TRUE(clean) << clean.error().message();
  EXPECT_EQ(*clean, 2u);
  EXPECT_EQ(copy.front(), std::byte{3});
  EXPECT_TRUE(client.remove("abandon"));
}

}  // namespace
}  // namespace shmarray::test
