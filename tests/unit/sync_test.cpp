// Data-plane synchronisation across real processes: futex wrappers, publish/wait, the robust
// write lock and the seqlock. Each test maps a memfd MAP_SHARED, fork()s children that _exit with
// a status (never a gtest assertion in a child), and bounds every wait with a timeout.
#include <gtest/gtest.h>
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "shmarray/segment_layout.hpp"
#include "shmarray/sync/futex.hpp"
#include "shmarray/sync/live_fields.hpp"
#include "shmarray/sync/seqlock.hpp"
#include "shmarray/sync/version.hpp"
#include "shmarray/sync/write_lock.hpp"

namespace shmarray {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr WaitPolicy kPureFutex{.spin = 0ns};
constexpr std::size_t kSlotBytes = 256;  // one LiveFields per slot
constexpr std::size_t kSlots = 8;        // in the first 2 KiB of every region
static_assert(sizeof(LiveFields) <= kSlotBytes);

// A memfd of `bytes` (>= 4 KiB), mapped read-write and MAP_SHARED: fork()ed children share the
// pages, and map_read_only() gives a child the PROT_READ view a read-only grant would. Its first
// kSlots slots hold LiveFields initialised like a fresh segment's.
class SharedRegion {
 public:
  explicit SharedRegion(std::size_t bytes) : bytes_(bytes) {
    fd_ = ::memfd_create("sync_test", MFD_CLOEXEC);
    if (bytes < 4096 || fd_ < 0 || ::ftruncate(fd_, static_cast<off_t>(bytes)) != 0) std::abort();
    void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd_, 0);
    if (p == MAP_FAILED) std::abort();
    base_ = static_cast<std::byte*>(p);
    for (std::size_t i = 0; i < kSlots; ++i) {
      if (!init_live_fields(live(i))) std::abort();
    }
  }
  SharedRegion(const SharedRegion&) = delete;
  SharedRegion& operator=(const SharedRegion&) = delete;
  ~SharedRegion() {
    ::munmap(base_, bytes_);
    ::close(fd_);
  }

  LiveFields& live(std::size_t i) const {
    if (i >= kSlots) std::abort();
    return *reinterpret_cast<LiveFields*>(base_ + i * kSlotBytes);
  }
  std::byte* at(std::size_t offset) const { return base_ + offset; }
  // The same pages through a new PROT_READ mapping (the caller's process leaks it: children only).
  const std::byte* map_read_only() const {
    void* p = ::mmap(nullptr, bytes_, PROT_READ, MAP_SHARED, fd_, 0);
    return p == MAP_FAILED ? nullptr : static_cast<const std::byte*>(p);
  }

 private:
  std::size_t bytes_;
  int fd_ = -1;
  std::byte* base_ = nullptr;
};

// Runs `body` in a child process that _exits with its return value (99 if it threw).
template <class Body>
pid_t spawn(Body&& body) {
  const pid_t pid = ::fork();
  if (pid < 0) std::abort();
  if (pid == 0) {
    int rc = 99;
    try {
      rc = body();
    } catch (...) {
    }
    ::_exit(rc);
  }
  return pid;
}

constexpr int kChildTimedOut = -1000;

// The child's exit code, -signal if a signal killed it, or kChildTimedOut after SIGKILLing a child
// still running at the deadline.
int wait_child(pid_t pid, std::chrono::milliseconds timeout = 10s) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    int status = 0;
    const pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
    if (r < 0) return -2000;
    if (Clock::now() >= deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      return kChildTimedOut;
    }
    std::this_thread::sleep_for(1ms);
  }
}

// Waits until process `pid` is asleep in the kernel (state 'S' in /proc/<pid>/stat), e.g. in a
// futex wait: the readiness signal for tests of the sleeping path. False after `timeout`.
bool wait_until_sleeping(pid_t pid, std::chrono::milliseconds timeout = 5s) {
  const auto deadline = Clock::now() + timeout;
  const std::string path = "/proc/" + std::to_string(pid) + "/stat";
  while (Clock::now() < deadline) {
    if (FILE* f = std::fopen(path.c_str(), "r")) {
      char buf[512] = {};
      const std::size_t n = std::fread(buf, 1, sizeof buf - 1, f);
      std::fclose(f);
      const char* paren = std::strrchr(buf, ')');
      if (n > 0 && paren != nullptr && paren[1] == ' ' && paren[2] == 'S') return true;
    }
    std::this_thread::sleep_for(1ms);  // polling with a deadline, not a guess
  }
  return false;
}

// ---------------------------------------------------------------------------------------------
// futex wrappers

TEST(Futex, WaitReturnsValueChangedWhenWordDiffers) {
  std::atomic<std::uint32_t> word{7};
  auto r = futex_wait_for(word, 6, 1s);
  ASSERT_TRUE(r.has_value()) << r.error().to_string();
  EXPECT_EQ(*r, FutexWaitStatus::kValueChanged);
}

TEST(Futex, WaitTimesOutAtDeadline) {
  std::atomic<std::uint32_t> word{0};
  const auto start = Clock::now();
  auto r = futex_wait_for(word, 0, 20ms);
  const auto elapsed = Clock::now() - start;
  ASSERT_TRUE(r.has_value()) << r.error().to_string();
  EXPECT_EQ(*r, FutexWaitStatus::kTimedOut);
  EXPECT_GE(elapsed, 20ms);
  EXPECT_LT(elapsed, 520ms);
}

TEST(Futex, WakeWithoutWaitersWakesNobody) {
  std::atomic<std::uint32_t> word{0};
  auto r = futex_wake(word);
  ASSERT_TRUE(r.has_value()) << r.error().to_string();
  EXPECT_EQ(*r, 0);
}

TEST(Futex, WakeReachesAWaiterInAnotherProcess) {
  SharedRegion region(4096);
  auto& word = *reinterpret_cast<std::atomic<std::uint32_t>*>(region.at(0));
  auto& ready = *reinterpret_cast<std::atomic<std::uint32_t>*>(region.at(64));
  const pid_t child = spawn([&] {
    ready.store(1);
    while (word.load() == 0) {
      auto r = futex_wait_for(word, 0, 5s);
      if (!r || *r == FutexWaitStatus::kTimedOut) return 1;
    }
    return 0;
  });
  while (ready.load() == 0) std::this_thread::yield();
  std::this_thread::sleep_for(10ms);  // most likely asleep in the kernel by now
  word.store(1);
  ASSERT_TRUE(futex_wake(word).has_value());
  EXPECT_EQ(wait_child(child), 0);
}

// ---------------------------------------------------------------------------------------------
// publish / wait_newer_than

TEST(Version, PublishIncrementsAndReturnsTheNewVersion) {
  SharedRegion region(4096);
  LiveFields& live = region.live(0);
  EXPECT_EQ(current_version(live), 0u);
  EXPECT_EQ(publish(live), 1u);
  EXPECT_EQ(publish(live), 2u);
  EXPECT_EQ(current_version(live), 2u);
}

TEST(Version, WaitReturnsAtOnceWhenAlreadyNewer) {
  SharedRegion region(4096);
  LiveFields& live = region.live(0);
  (void)publish(live);
  (void)publish(live);
  auto r = wait_newer_than(live, 0, 0ns);  // a zero timeout still checks once
  ASSERT_TRUE(r.has_value()) << r.error().to_string();
  EXPECT_EQ(*r, 2u);
}

TEST(Version, WaitTimesOutWithDeadlineExceededNearTheRequestedTime) {
  SharedRegion region(4096);
  LiveFields& live = region.live(0);
  (void)publish(live);
  for (const WaitPolicy policy : {WaitPolicy{}, kPureFutex}) {
    const auto start = Clock::now();
    auto r = wait_newer_than(live, 1, 100ms, policy);
    const auto elapsed = Clock::now() - start;
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().code(), ErrorCode::kDeadlineExceeded);
    EXPECT_EQ(r.error().message(), "no publish newer than version 1 within 100 ms");
    EXPECT_GE(elapsed, 100ms);
    EXPECT_LT(elapsed, 600ms);
  }
}

TEST(Version, ZeroTimeoutFailsAtOnceWhenNothingNewer) {
  SharedRegion region(4096);
  auto r = wait_newer_than(region.live(0), 0, 0ns);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), ErrorCode::kDeadlineExceeded);
}

// Parent and child take turns: the parent publishes on `ping`, the child waits for it and
// publishes on `pong`. Each side must see exactly the next version every time.
void run_ping_pong(int round_trips, WaitPolicy policy) {
  SharedRegion region(4096);
  LiveFields& ping = region.live(0);
  LiveFields& pong = region.live(1);
  const pid_t child = spawn([&] {
    for (std::uint64_t i = 1; i <= static_cast<std::uint64_t>(round_trips); ++i) {
      auto seen = wait_newer_than(ping, i - 1, 5s, policy);
      if (!seen) return 1;
      if (*seen != i) return 2;
      if (publish(pong) != i) return 3;
    }
    return 0;
  });
  for (std::uint64_t i = 1; i <= static_cast<std::uint64_t>(round_trips); ++i) {
    ASSERT_EQ(publish(ping), i);
    auto seen = wait_newer_than(pong, i - 1, 5s, policy);
    ASSERT_TRUE(seen.has_value()) << "round trip " << i << ": " << seen.error().to_string();
    ASSERT_EQ(*seen, i);
  }
  EXPECT_EQ(wait_child(child), 0);
}

TEST(Version, PingPongTenThousandRoundTripsSeesEveryVersionInOrder) {
  run_ping_pong(10'000, WaitPolicy{});
}

TEST(Version, PingPongOnThePureFutexPathSeesEveryVersionInOrder) {
  run_ping_pong(2'000, kPureFutex);
}

// The child announces "about to wait for i" and goes straight into a pure-futex wait; the parent
// publishes i as soon as it sees the announcement, after a random 0-20 us delay, so publishes land
// before the waiter's check, between its check and its sleep, and after it fell asleep. A lost
// wake-up shows as a 2 s timeout.
TEST(Version, NoLostWakeUpsWhenPublishRacesTheSleep) {
  constexpr int kIterations = 5'000;
  SharedRegion region(4096);
  LiveFields& data = region.live(0);
  LiveFields& ready = region.live(1);
  const pid_t child = spawn([&] {
    for (std::uint64_t i = 1; i <= kIterations; ++i) {
      (void)publish(ready);
      auto seen = wait_newer_than(data, i - 1, 2s, kPureFutex);
      if (!seen) return 1;
      if (*seen != i) return 2;
    }
    return 0;
  });
  std::minstd_rand rng(12345);
  for (std::uint64_t i = 1; i <= kIterations; ++i) {
    auto r = wait_newer_than(ready, i - 1, 5s);
    ASSERT_TRUE(r.has_value()) << "iteration " << i << ": " << r.error().to_string();
    const auto delay = std::chrono::nanoseconds(rng() % 20'000);
    for (const auto until = Clock::now() + delay; Clock::now() < until;) {
    }
    ASSERT_EQ(publish(data), i);
  }
  EXPECT_EQ(wait_child(child), 0);
}

// Several sleepers on one word: every publish must wake all of them.
TEST(Version, EveryWaiterWakesOnEachPublish) {
  constexpr int kWaiters = 3;
  constexpr int kIterations = 1'000;
  SharedRegion region(4096);
  LiveFields& data = region.live(0);
  std::vector<pid_t> children;
  for (int w = 0; w < kWaiters; ++w) {
    LiveFields& ready = region.live(1 + w);
    children.push_back(spawn([&] {
      for (std::uint64_t i = 1; i <= kIterations; ++i) {
        (void)publish(ready);
        auto seen = wait_newer_than(data, i - 1, 2s, kPureFutex);
        if (!seen || *seen != i) return 1;
      }
      return 0;
    }));
  }
  for (std::uint64_t i = 1; i <= kIterations; ++i) {
    for (int w = 0; w < kWaiters; ++w) {
      auto r = wait_newer_than(region.live(1 + w), i - 1, 5s);
      ASSERT_TRUE(r.has_value()) << "waiter " << w << ", iteration " << i;
    }
    ASSERT_EQ(publish(data), i);
  }
  for (const pid_t child : children) EXPECT_EQ(wait_child(child), 0);
}

// A read-only grant maps PROT_READ: waiting must work without writing a byte (a write would
// SIGSEGV the child, which the exit status would show).
TEST(Version, WaitWorksThroughAReadOnlyMapping) {
  SharedRegion region(4096);
  LiveFields& live = region.live(0);
  LiveFields& ready = region.live(1);
  const pid_t child = spawn([&] {
    const std::byte* ro = region.map_read_only();
    if (ro == nullptr) return 1;
    const auto& ro_live = *reinterpret_cast<const LiveFields*>(ro);
    (void)publish(ready);  // through the parent's writable mapping, inherited
    auto first = wait_newer_than(ro_live, 0, 5s, kPureFutex);
    if (!first || *first != 1) return 2;
    (void)publish(ready);
    auto second = wait_newer_than(ro_live, 1, 5s);
    if (!second || *second != 2) return 3;
    return possibly_torn(ro_live) ? 4 : 0;
  });
  ASSERT_TRUE(wait_newer_than(ready, 0, 5s).has_value());
  EXPECT_TRUE(wait_until_sleeping(child)) << "the child never went to sleep on the futex";
  EXPECT_EQ(publish(live), 1u);
  ASSERT_TRUE(wait_newer_than(ready, 1, 5s).has_value());
  EXPECT_TRUE(wait_until_sleeping(child));
  EXPECT_EQ(publish(live), 2u);
  EXPECT_EQ(wait_child(child), 0);
}

// ---------------------------------------------------------------------------------------------
// WriteLock

TEST(WriteLock, AcquireThenUnlockThenAcquireAgain) {
  SharedRegion region(4096);
  LiveFields& live = region.live(0);
  auto lock = WriteLock::acquire(live, 1s);
  ASSERT_TRUE(lock.has_value()) << lock.error().to_string();
  EXPECT_TRUE(lock->held());
  EXPECT_FALSE(lock->previous_owner_died());
  EXPECT_TRUE(lock->unlock().has_value());
  EXPECT_FALSE(lock->held());
  EXPECT_TRUE(lock->unlock().has_value());  // no-op
  auto again = WriteLock::try_acquire(live);
  ASSERT_TRUE(again.has_value()) << again.error().to_string();
}

TEST(WriteLock, SecondAcquireOnTheSameThreadFailsWithFailedPrecondition) {
  SharedRegion region(4096);
  LiveFields& live = region.live(0);
  auto lock = WriteLock::acquire(live, 1s);
  ASSERT_TRUE(lock.has_value());
  auto again = WriteLock::acquire(live, 10ms);
  ASSERT_FALSE(again.has_value());
  EXPECT_EQ(again.error().code(), ErrorCode::kFailedPrecondition);
}

TEST(WriteLock, MoveTransfersOwnership) {
  SharedRegion region(4096);
  LiveFields& live = region.live(0);
  auto lock = WriteLock::acquire(live, 1s);
  ASSERT_TRUE(lock.has_value());
  WriteLock moved = std::move(*lock);
  EXPECT_TRUE(moved.held());
  EXPECT_FALSE(lock->held());  // NOLINT(bugprone-use-after-move): checking the moved-from state
  WriteLock assigned;
  assigned = std::move(moved);
  EXPECT_TRUE(assigned.held());
  assigned = WriteLock();  // unlocks
  EXPECT_TRUE(WriteLock::try_acquire(live).has_value());
}

TEST(WriteLock, TryAcquireOnALockHeldByAnotherProcessFails) {
  SharedRegion region(4096);
  LiveFields& live = region.live(0);
  LiveFields& locked = region.live(1);
  LiveFields& release = region.live(2);
  const pid_t child = spawn([&] {
    auto lock = WriteLock::acquire(live, 5s);
    if (!lock) return 1;
    (void)publish(locked);
    if (!wait_newer_than(release, 0, 5s)) return 2;
    return 0;  // unlocked by the destructor
  });
  ASSERT_TRUE(wait_newer_than(locked, 0, 5s).has_value());

  auto busy = WriteLock::try_acquire(live);
  ASSERT_FALSE(busy.has_value());
  EXPECT_EQ(busy.error().code(), ErrorCode::kDeadlineExceeded);
  EXPECT_NE(busy.error().message().find("held by another writer"), std::string::npos);

  const auto start = Clock::now();
  auto timed = WriteLock::acquire(live, 50ms);
  const auto elapsed = Clock::now() - start;
  ASSERT_FALSE(timed.has_value());
  EXPECT_EQ(timed.error().code(), ErrorCode::kDeadlineExceeded);
  EXPECT_GE(elapsed, 50ms);
  EXPECT_LT(elapsed, 550ms);

  (void)publish(release);
  auto lock = WriteLock::acquire(live, 5s);
  ASSERT_TRUE(lock.has_value()) << lock.error().to_string();
  EXPECT_FALSE(lock->previous_owner_died());
  EXPECT_EQ(wait_child(child), 0);
}

// The child locks, opens a seqlock write and is SIGKILLed mid-write.
void kill_child_holding_lock(SharedRegion& region, LiveFields& live) {
  LiveFields& locked = region.live(1);
  const std::uint64_t before = current_version(locked);
  const pid_t child = spawn([&] {
    auto lock = WriteLock::acquire(live, 5s);
    if (!lock) return 1;
    begin_write(live);
    (void)publish(locked);
    std::this_thread::sleep_for(30s);  // killed long before
    return 2;
  });
  const bool child_locked = wait_newer_than(locked, before, 5s).has_value();
  ::kill(child, SIGKILL);  // whatever happened: never leave it holding the lock
  ASSERT_TRUE(child_locked);
  EXPECT_EQ(wait_child(child), -SIGKILL);
}

TEST(WriteLock, KilledHolderLeavesTheLockAcquirableWithOwnerDiedAndTornUntilPublish) {
  SharedRegion region(4096);
  LiveFields& live = region.live(0);
  kill_child_holding_lock(region, live);
  EXPECT_FALSE(possibly_torn(live));  // nobody knows yet

  auto lock = WriteLock::acquire(live, 1s);
  ASSERT_TRUE(lock.has_value()) << lock.error().to_string();
  EXPECT_TRUE(lock->previous_owner_died());
  EXPECT_TRUE(possibly_torn(live));
  EXPECT_EQ(live.write_seq.load() % 2, 0u) << "the dead writer's seqlock write is closed";
  EXPECT_TRUE(lock->unlock().has_value());

  auto next = WriteLock::acquire(live, 1s);
  ASSERT_TRUE(next.has_value()) << next.error().to_string();
  EXPECT_FALSE(next->previous_owner_died());
  EXPECT_TRUE(possibly_torn(live)) << "torn until someone publishes";
  (void)publish(live);
  EXPECT_FALSE(possibly_torn(live));
}

TEST(WriteLock, KilledHolderIsReportedToTryAcquireToo) {
  SharedRegion region(4096);
  LiveFields& live = region.live(0);
  kill_child_holding_lock(region, live);
  auto lock = WriteLock::try_acquire(live);
  ASSERT_TRUE(lock.has_value()) << lock.error().to_string();
  EXPECT_TRUE(lock->previous_owner_died());
  EXPECT_TRUE(possibly_torn(live));
}

// A process that has exited and been reaped: its id names no thread (until the kernel reuses it).
pid_t reaped_pid() {
  const pid_t child = spawn([] { return 0; });
  if (wait_child(child) != 0) std::abort();
  return child;
}

TEST(WriteLock, LockWordNamingADeadThreadIsTakenOverWithOwnerDiedAndTorn) {
  SharedRegion region(4096);
  LiveFields& live = region.live(0);
  // What a co-writer (or a writer killed before its unlock) leaves: an id no thread has.
  live.lock_word.store(static_cast<std::uint32_t>(reaped_pid()) | kLockWaitersBit);
  auto lock = WriteLock::acquire(live, 2s);
  ASSERT_TRUE(lock.has_value()) << lock.error().to_string();
  EXPECT_TRUE(lock->previous_owner_died());
  EXPECT_TRUE(possibly_torn(live));
  EXPECT_EQ(live.lock_word.load() & kLockOwnerMask, static_cast<std::uint32_t>(lock->owner_tid()));
  EXPECT_TRUE(lock->unlock().has_value());
}

TEST(WriteLock, LockWordNamingALiveThreadOfAnotherProcessTimesOutAtTheDeadline) {
  SharedRegion region(4096);
  LiveFields& live = region.live(0);
  LiveFields& ready = region.live(1);
  LiveFields& release = region.live(2);
  // A live process that never locked: a co-writer wrote its id into the word.
  const pid_t bystander = spawn([&] {
    (void)publish(ready);
    return wait_newer_than(release, 0, 10s) ? 0 : 1;
  });
  ASSERT_TRUE(wait_newer_than(ready, 0, 5s).has_value());
  live.lock_word.store(static_cast<std::uint32_t>(bystander));
  const auto start = Clock::now();
  auto lock = WriteLock::acquire(live, 100ms);
  const auto elapsed = Clock::now() - start;
  ASSERT_FALSE(lock.has_value());
  EXPECT_EQ(lock.error().code(), ErrorCode::kDeadlineExceeded);
  EXPECT_NE(lock.error().message().find("thread " + std::to_string(bystander)), std::string::npos)
      << lock.error().message();
  EXPECT_GE(elapsed, 100ms);
  EXPECT_LT(elapsed, 2s) << "waited far past its timeout";
  EXPECT_FALSE(possibly_torn(live));
  (void)publish(release);
  EXPECT_EQ(wait_child(bystander), 0);
  // Once the bystander is gone the word names a dead thread: the next acquirer takes over.
  auto after = WriteLock::acquire(live, 2s);
  ASSERT_TRUE(after.has_value()) << after.error().to_string();
  EXPECT_TRUE(after->previous_owner_died());
}

TEST(WriteLock, ForgedLockWordNamingThisThreadIsNotASelfDeadlock) {
  SharedRegion region(4096);
  LiveFields& live = region.live(0);
  auto lock = WriteLock::acquire(live, 1s);
  ASSERT_TRUE(lock.has_value());
  const auto me = static_cast<std::uint32_t>(lock->owner_tid());
  ASSERT_TRUE(lock->unlock().has_value());
  live.lock_word.store(me);  // a co-writer writes our id while we hold nothing
  auto again = WriteLock::acquire(live, 1s);
  ASSERT_TRUE(again.has_value()) << again.error().to_string();
  EXPECT_TRUE(again->previous_owner_died());
}

TEST(WriteLock, UnlockAfterTheWordWasOverwrittenReportsDataLossAndLeavesTheWordAlone) {
  SharedRegion region(4096);
  LiveFields& live = region.live(0);
  auto lock = WriteLock::acquire(live, 1s);
  ASSERT_TRUE(lock.has_value());
  live.lock_word.store(12345);  // a co-writer took it over (or scribbled)
  auto ok = lock->unlock();
  ASSERT_FALSE(ok.has_value());
  EXPECT_EQ(ok.error().code(), ErrorCode::kDataLoss);
  EXPECT_NE(ok.error().message().find("12345"), std::string::npos) << ok.error().message();
  EXPECT_FALSE(lock->held());
  EXPECT_EQ(live.lock_word.load(), 12345u);
  EXPECT_TRUE(possibly_torn(live));
}

TEST(WriteLock, UnlockFromAnotherThreadFailsAndTheLockStaysHeld) {
  SharedRegion region(4096);
  LiveFields& live = region.live(0);
  auto lock = WriteLock::acquire(live, 1s);
  ASSERT_TRUE(lock.has_value());
  Result<void> from_other = {};
  std::thread([&] { from_other = lock->unlock(); }).join();
  ASSERT_FALSE(from_other.has_value());
  EXPECT_EQ(from_other.error().code(), ErrorCode::kFailedPrecondition);
  EXPECT_NE(from_other.error().message().find("thread that acquired it"), std::string::npos);
  EXPECT_TRUE(lock->held());
  EXPECT_NE(live.lock_word.load(), 0u);
  EXPECT_TRUE(lock->unlock().has_value());
  EXPECT_EQ(live.lock_word.load(), 0u);
}

TEST(WriteLock, DestroyedOnAnotherThreadIsReleasedThereNotLeftHeld) {
  SharedRegion region(4096);
  LiveFields& live = region.live(0);
  auto lock = WriteLock::acquire(live, 1s);
  ASSERT_TRUE(lock.has_value());
  std::thread([moved = std::move(*lock)]() mutable { WriteLock dropped = std::move(moved); })
      .join();
  EXPECT_EQ(live.lock_word.load(), 0u) << "released by the destructor on the other thread";
  auto next = WriteLock::try_acquire(live);
  ASSERT_TRUE(next.has_value()) << next.error().to_string();
  EXPECT_FALSE(next->previous_owner_died());
}

TEST(WriteLock, AForkedChildsCopyNeverReleasesTheParentsLock) {
  SharedRegion region(4096);
  LiveFields& live = region.live(0);
  auto lock = WriteLock::acquire(live, 1s);
  ASSERT_TRUE(lock.has_value());
  const std::uint32_t word = live.lock_word.load();
  const pid_t child = spawn([&] {
    auto ok = lock->unlock();  // the child's copy of the parent's WriteLock
    if (ok || ok.error().code() != ErrorCode::kFailedPrecondition) return 1;
    return live.lock_word.load() == word ? 0 : 2;
  });
  EXPECT_EQ(wait_child(child), 0);
  EXPECT_EQ(live.lock_word.load(), word);
  EXPECT_TRUE(lock->unlock().has_value());
}

TEST(WriteLock, KeepsItsMappingAliveAfterTheOwnerOfTheMappingLetsGo) {
  auto region = std::make_shared<SharedRegion>(4096);
  LiveFields& live = region->live(0);
  std::weak_ptr<SharedRegion> watch = region;
  auto lock = WriteLock::acquire(live, 1s, region);
  ASSERT_TRUE(lock.has_value());
  region.reset();  // the "Array" goes away first
  EXPECT_FALSE(watch.expired()) << "the lock keeps the mapping";
  EXPECT_TRUE(lock->unlock().has_value());
  EXPECT_TRUE(watch.expired()) << "and lets go of it once released";
}

// Two processes hand the lock back and forth 2,000 times, each checking that nobody else is
// inside: mutual exclusion and no lost wake-up on the futex path.
TEST(WriteLock, TwoProcessesAlternatingNeverOverlapAndNeverTimeOut) {
  SharedRegion region(4096);
  LiveFields& live = region.live(0);
  auto* inside = reinterpret_cast<std::atomic<int>*>(region.at(3072));
  auto* total = reinterpret_cast<std::atomic<int>*>(region.at(3072 + 64));
  inside->store(0);
  total->store(0);
  constexpr int kRounds = 2000;
  auto body = [&] {
    for (int i = 0; i < kRounds; ++i) {
      auto lock = WriteLock::acquire(live, 5s);
      if (!lock) return 1;
      if (inside->fetch_add(1) != 0) return 2;
      total->fetch_add(1);
      inside->fetch_sub(1);
      if (!lock->unlock()) return 3;
    }
    return 0;
  };
  const pid_t a = spawn(body);
  const pid_t b = spawn(body);
  EXPECT_EQ(wait_child(a, 60s), 0);
  EXPECT_EQ(wait_child(b, 60s), 0);
  EXPECT_EQ(total->load(), 2 * kRounds);
  EXPECT_EQ(live.lock_word.load(), 0u);
}

// ---------------------------------------------------------------------------------------------
// seqlock

TEST(Seqlock, ReadReturnsTheVersionPublishedWithTheData) {
  SharedRegion region(8192);
  LiveFields& live = region.live(0);
  auto* data = reinterpret_cast<std::uint64_t*>(region.at(4096));
  {
    auto lock = WriteLock::acquire(live, 1s);
    ASSERT_TRUE(lock.has_value());
    begin_write(live);
    EXPECT_EQ(live.write_seq.load() % 2, 1u);
    std::fill_n(data, 16, 1u);
    EXPECT_EQ(end_write_and_publish(live), 1u);
  }
  std::uint64_t copy[16] = {};
  auto v = read_consistent(
      live, [&] { std::memcpy(copy, data, sizeof copy); }, 10ms);
  ASSERT_TRUE(v.has_value()) << v.error().to_string();
  EXPECT_EQ(*v, 1u);
  EXPECT_TRUE(std::all_of(std::begin(copy), std::end(copy), [](auto x) { return x == 1; }));
}

TEST(Seqlock, ReadTimesOutWhileAWriteIsInProgress) {
  SharedRegion region(4096);
  LiveFields& live = region.live(0);
  begin_write(live);
  int runs = 0;
  const auto start = Clock::now();
  auto v = read_consistent(
      live, [&] { ++runs; }, 50ms);
  const auto elapsed = Clock::now() - start;
  ASSERT_FALSE(v.has_value());
  EXPECT_EQ(v.error().code(), ErrorCode::kDeadlineExceeded);
  EXPECT_NE(v.error().message().find("in progress"), std::string::npos) << v.error().message();
  EXPECT_EQ(runs, 0) << "the copy never runs while write_seq is odd";
  EXPECT_GE(elapsed, 50ms);
  EXPECT_LT(elapsed, 550ms);
  end_write(live);
  EXPECT_TRUE(read_consistent(
                  live, [&] { ++runs; }, 0ns)
                  .has_value());
  EXPECT_EQ(runs, 1);
}

TEST(Seqlock, AbandonedWriteIsTornAndFailsConsistentReadsUntilTheNextPublish) {
  SharedRegion region(8192);
  LiveFields& live = region.live(0);
  auto* data = reinterpret_cast<std::uint64_t*>(region.at(4096));
  (void)publish(live);
  begin_write(live);
  std::fill_n(data, 8, 7u);  // half of what the writer meant to write
  abandon_write(live);
  EXPECT_EQ(live.write_seq.load() % 2, 0u) << "the window is closed: readers do not spin";
  EXPECT_TRUE(possibly_torn(live));
  int runs = 0;
  auto torn = read_consistent(live, [&] { ++runs; }, 50ms);
  ASSERT_FALSE(torn.has_value()) << "half-new bytes returned under the old version";
  EXPECT_EQ(torn.error().code(), ErrorCode::kDataLoss);
  EXPECT_NE(torn.error().message().find("next publish"), std::string::npos);
  EXPECT_EQ(runs, 0);
  begin_write(live);
  std::fill_n(data, 16, 9u);
  EXPECT_EQ(end_write_and_publish(live), 2u);
  EXPECT_FALSE(possibly_torn(live));
  auto clean = read_consistent(live, [&] { ++runs; }, 50ms);
  ASSERT_TRUE(clean.has_value()) << clean.error().to_string();
  EXPECT_EQ(*clean, 2u);
}

// Shared counters of the torture test, after the LiveFields slots.
struct SeqlockTally {
  std::atomic<int> stop;
  std::atomic<std::uint64_t> consistent_reads;
  std::atomic<std::uint64_t> torn_consistent_reads;  // must stay 0
  std::atomic<std::uint64_t> timeouts;
  std::atomic<std::uint64_t> discarded_copies;      // copies read_consistent retried
  std::atomic<std::uint64_t> torn_unguarded_reads;  // plain memcpy: shows tearing is possible
  std::atomic<std::uint64_t> writes;
};

// A writer process rewrites a 1 MiB array (every element = the version it publishes) with random
// 0-100 us pauses, while two reader processes copy it with read_consistent and check every copy is
// uniform and equal to the returned version. (With no pause at all the writer starves the readers:
// a seqlock favours its writer, and a 1 MiB copy rarely fits between two back-to-back writes.)
TEST(Seqlock, WriterRewritingOneMebibyteNeverTearsAConsistentRead) {
  constexpr std::size_t kElements = (1u << 20) / sizeof(std::uint64_t);
  constexpr std::size_t kDataOffset = 8192;
  constexpr auto kDuration = 2s;
  SharedRegion region(kDataOffset + kElements * sizeof(std::uint64_t));
  LiveFields& live = region.live(0);
  auto* tally = new (region.at(4096)) SeqlockTally{};
  auto* data = reinterpret_cast<std::uint64_t*>(region.at(kDataOffset));

  const pid_t writer = spawn([&] {
    std::minstd_rand rng(::getpid());
    // Pauses scale with the write itself (uniform in [0, 2 x the last write]), so the writer is
    // busy about half the time in any build: a writer that rewrites without pause starves seqlock
    // readers by design, and under ThreadSanitizer a 1 MiB rewrite takes ~20x longer.
    std::chrono::nanoseconds last_write{50'000};
    while (tally->stop.load() == 0) {
      std::this_thread::sleep_for(std::chrono::nanoseconds(
          static_cast<std::int64_t>(rng() % static_cast<std::uint64_t>(2 * last_write.count() + 1))));
      const auto t0 = Clock::now();
      auto lock = WriteLock::acquire(live, 1s);
      if (!lock) return 1;
      begin_write(live);
      std::fill_n(data, kElements, current_version(live) + 1);
      (void)end_write_and_publish(live);
      last_write = Clock::now() - t0;
      tally->writes.fetch_add(1);
    }
    return 0;
  });
  // First prove the checker can see a tear: with the seqlock bypassed (a plain memcpy while the
  // writer rewrites), some copy must come out non-uniform. Otherwise "0 torn consistent reads"
  // below would prove nothing.
  {
    std::vector<std::uint64_t> copy(kElements);
    bool saw_tear = false;
    const auto until = Clock::now() + 20s;
    while (!saw_tear && Clock::now() < until) {
      std::memcpy(copy.data(), data, kElements * sizeof(std::uint64_t));
      saw_tear = !std::all_of(copy.begin(), copy.end(), [&](auto x) { return x == copy.front(); });
    }
    if (!saw_tear) {
      tally->stop.store(1);
      EXPECT_EQ(wait_child(writer), 0);
      FAIL() << "no torn copy without the seqlock in 20 s: the checker below could not fail";
    }
  }
  std::vector<pid_t> readers;
  for (int r = 0; r < 2; ++r) {
    readers.push_back(spawn([&] {
      std::vector<std::uint64_t> copy(kElements);
      const auto uniform = [&](std::uint64_t value) {
        return std::all_of(copy.begin(), copy.end(), [&](auto x) { return x == value; });
      };
      for (unsigned n = 0; tally->stop.load() == 0; ++n) {
        std::uint64_t runs = 0;
        auto v = read_consistent(
            live,
            [&] {
              ++runs;
              std::memcpy(copy.data(), data, kElements * sizeof(std::uint64_t));
            },
            100ms);
        if (!v) {
          tally->timeouts.fetch_add(1);
          tally->discarded_copies.fetch_add(runs);
        } else {
          tally->consistent_reads.fetch_add(1);
          tally->discarded_copies.fetch_add(runs - 1);
          if (!uniform(*v)) tally->torn_consistent_reads.fetch_add(1);
        }
        if (n % 8 == 0) {  // now and then, the same copy unguarded
          std::memcpy(copy.data(), data, kElements * sizeof(std::uint64_t));
          if (!uniform(copy.front())) tally->torn_unguarded_reads.fetch_add(1);
        }
      }
      return 0;
    }));
  }
  std::this_thread::sleep_for(kDuration);
  tally->stop.store(1);
  EXPECT_EQ(wait_child(writer), 0);
  for (const pid_t reader : readers) EXPECT_EQ(wait_child(reader), 0);

  std::cout << "[ info     ] writes " << tally->writes << ", consistent reads "
            << tally->consistent_reads << " (after " << tally->discarded_copies
            << " discarded copies), read timeouts " << tally->timeouts << ", torn unguarded copies "
            << tally->torn_unguarded_reads << "\n";
  EXPECT_EQ(tally->torn_consistent_reads.load(), 0u);
  EXPECT_GT(tally->consistent_reads.load(), 10u);
  EXPECT_GT(tally->writes.load(), 20u);
}

}  // namespace
}  // namespace shmarray
