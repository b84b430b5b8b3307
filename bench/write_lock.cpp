// The write lock: the plain owner-word lock (sync/write_lock.hpp) against the glibc robust,
// process-shared, error-checking mutex it replaced, in the same run on the same machine:
//   - uncontended lock + unlock, one thread (ns per pair);
//   - contended: two processes each lock / bump a shared counter / unlock N times (ns per
//     acquisition, total wall time / 2N: includes every handoff and sleep);
//   - handoff latency: strict alternation through the lock (one process waits for the other's
//     unlock), one-way us p50/p99;
//   - dead-owner recovery: time from SIGKILL of the holder to the waiter's acquisition.
// Both locks live in a MAP_SHARED region shared by fork(), like a segment's header page.
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "bench_util.hpp"
#include "shmarray/segment_layout.hpp"
#include "shmarray/sync/live_fields.hpp"
#include "shmarray/sync/version.hpp"
#include "shmarray/sync/write_lock.hpp"

namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

struct Shared {
  shmarray::LiveFields live;  // the new lock (lock_word) and a version word for signalling
  alignas(64) pthread_mutex_t mutex;  // the old lock
  alignas(64) std::atomic<std::uint64_t> counter;
  alignas(64) std::atomic<int> turn;
  std::atomic<int> ready;
  std::atomic<std::int64_t> killed_at_ns;
};

Shared* make_shared_region() {
  void* p = ::mmap(nullptr, sizeof(Shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                   -1, 0);
  if (p == MAP_FAILED) bench::die("mmap");
  auto* s = new (p) Shared{};
  if (!shmarray::init_live_fields(s->live)) bench::die("init_live_fields");
  pthread_mutexattr_t attr;
  ::pthread_mutexattr_init(&attr);
  ::pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
  ::pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
  ::pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_ERRORCHECK);
  ::pthread_mutex_init(&s->mutex, &attr);
  ::pthread_mutexattr_destroy(&attr);
  return s;
}

// The two locks behind one interface. The old one as the old WriteLock used it (clocklock with a
// deadline, EOWNERDEAD -> consistent).
struct OldLock {
  Shared* s;
  bool lock() {
    timespec abs{};
    ::clock_gettime(CLOCK_MONOTONIC, &abs);
    abs.tv_sec += 10;
    const int rc = ::pthread_mutex_clocklock(&s->mutex, CLOCK_MONOTONIC, &abs);
    if (rc == EOWNERDEAD) ::pthread_mutex_consistent(&s->mutex);
    return rc == 0 || rc == EOWNERDEAD;
  }
  void unlock() { ::pthread_mutex_unlock(&s->mutex); }
};
struct NewLock {
  Shared* s;
  shmarray::WriteLock held;
  bool lock() {
    auto l = shmarray::WriteLock::acquire(s->live, 10s);
    if (!l) return false;
    held = std::move(*l);
    return true;
  }
  void unlock() { (void)held.unlock(); }
};

template <class Lock>
double uncontended_ns(Shared* s, int n) {
  Lock l{s};
  for (int i = 0; i < n / 10; ++i) {  // warm-up
    l.lock();
    l.unlock();
  }
  const auto t0 = Clock::now();
  for (int i = 0; i < n; ++i) {
    l.lock();
    l.unlock();
  }
  return std::chrono::duration<double, std::nano>(Clock::now() - t0).count() / n;
}

template <class Fn>
pid_t fork_child(Fn&& fn) {
  const pid_t pid = ::fork();
  if (pid < 0) bench::die("fork");
  if (pid == 0) ::_exit(fn());
  return pid;
}

void reap(pid_t pid) {
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) bench::die("a benchmark child failed");
}

template <class Lock>
double contended_ns(Shared* s, int n) {
  s->counter.store(0);
  s->ready.store(0);
  auto body = [s, n] {
    Lock l{s};
    s->ready.fetch_add(1);
    while (s->ready.load() < 2) {
    }
    for (int i = 0; i < n; ++i) {
      if (!l.lock()) return 1;
      s->counter.fetch_add(1, std::memory_order_relaxed);
      l.unlock();
    }
    return 0;
  };
  const auto t0 = Clock::now();
  const pid_t a = fork_child(body);
  const pid_t b = fork_child(body);
  reap(a);
  reap(b);
  const double ns = std::chrono::duration<double, std::nano>(Clock::now() - t0).count();
  if (s->counter.load() != static_cast<std::uint64_t>(2 * n)) bench::die("lost an increment");
  return ns / (2.0 * n);
}

// Strict alternation: each side takes the lock only on its turn and, holding it, passes the turn.
// One round = both sides once; one-way = round / 2.
template <class Lock>
bench::Stats handoff_us(Shared* s, int rounds) {
  s->turn.store(0);
  std::vector<double> round_us;
  round_us.reserve(static_cast<std::size_t>(rounds));
  const pid_t other = fork_child([s, rounds] {
    Lock l{s};
    for (int i = 0; i < rounds; ++i) {
      for (;;) {
        if (!l.lock()) return 1;
        if (s->turn.load() == 1) break;
        l.unlock();
      }
      s->turn.store(0);
      l.unlock();
    }
    return 0;
  });
  Lock l{s};
  for (int i = 0; i < rounds; ++i) {
    const auto t0 = Clock::now();
    for (;;) {
      if (!l.lock()) bench::die("lock");
      if (s->turn.load() == 0) break;
      l.unlock();
    }
    s->turn.store(1);
    l.unlock();
    round_us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
  }
  reap(other);
  round_us.erase(round_us.begin(), round_us.begin() + rounds / 10);
  auto st = bench::summarise(round_us);
  st.p50 /= 2;
  st.p99 /= 2;
  return st;
}

// The holder locks and is SIGKILLed; the waiter, already blocked in lock(), measures from the
// kill to its acquisition.
template <class Lock>
double dead_owner_ms(Shared* s) {
  s->ready.store(0);
  const pid_t holder = fork_child([s] {
    Lock l{s};
    if (!l.lock()) return 1;
    s->ready.store(1);
    ::pause();
    return 0;
  });
  while (s->ready.load() == 0) std::this_thread::sleep_for(100us);
  s->killed_at_ns.store(0);
  const pid_t waiter = fork_child([s] {
    Lock l{s};
    s->ready.store(2);
    if (!l.lock()) return 1;
    const auto now = bench::now_ns();
    s->counter.store(static_cast<std::uint64_t>(now - s->killed_at_ns.load()));
    l.unlock();
    return 0;
  });
  while (s->ready.load() != 2) std::this_thread::sleep_for(100us);
  std::this_thread::sleep_for(20ms);  // the waiter is asleep in the lock by now
  s->killed_at_ns.store(bench::now_ns());
  ::kill(holder, SIGKILL);
  int status = 0;
  ::waitpid(holder, &status, 0);  // reaped at once, as a supervisor would
  reap(waiter);
  return static_cast<double>(s->counter.load()) / 1e6;
}

}  // namespace

int main(int argc, char** argv) {
  int n = 1'000'000;
  int contended = 200'000;
  int rounds = 20'000;
  int deaths = 5;
  std::string csv;
  std::string machine = "this machine";
  CLI::App app{"shmarray write lock: plain owner word vs the glibc robust mutex it replaced"};
  app.add_option("--n", n, "uncontended lock/unlock pairs")->capture_default_str();
  app.add_option("--contended", contended, "acquisitions per process, two processes")
      ->capture_default_str();
  app.add_option("--rounds", rounds, "strict-alternation handoff rounds")->capture_default_str();
  app.add_option("--deaths", deaths, "dead-owner recoveries measured")->capture_default_str();
  app.add_option("--csv", csv, "append results to this CSV file");
  app.add_option("--machine", machine, "label for the table")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  std::setvbuf(stdout, nullptr, _IOLBF, 0);

  Shared* s = make_shared_region();
  bench::Csv out(csv, "machine,measure,lock,value,unit");
  std::printf("\nWrite lock, %s (old = glibc robust pshared mutex, new = owner word)\n",
              machine.c_str());
  std::printf("%-44s %12s %12s %10s\n", "measure", "old", "new", "new/old");
  const auto row = [&](const char* what, double old_v, double new_v, const char* unit) {
    std::printf("%-44s %12.3f %12.3f %9.2fx\n", what, old_v, new_v, new_v / old_v);
    out.row(machine, what, "old", old_v, unit);
    out.row(machine, what, "new", new_v, unit);
  };
  row("uncontended lock+unlock (ns)", uncontended_ns<OldLock>(s, n), uncontended_ns<NewLock>(s, n),
      "ns");
  row("contended, 2 processes (ns per acquisition)", contended_ns<OldLock>(s, contended),
      contended_ns<NewLock>(s, contended), "ns");
  const auto old_h = handoff_us<OldLock>(s, rounds);
  const auto new_h = handoff_us<NewLock>(s, rounds);
  row("handoff one-way p50 (us)", old_h.p50, new_h.p50, "us");
  row("handoff one-way p99 (us)", old_h.p99, new_h.p99, "us");
  std::vector<double> old_d, new_d;
  for (int i = 0; i < deaths; ++i) {
    old_d.push_back(dead_owner_ms<OldLock>(s));
    new_d.push_back(dead_owner_ms<NewLock>(s));
  }
  row("dead owner: kill -> next acquisition p50 (ms)", bench::summarise(old_d).p50,
      bench::summarise(new_d).p50, "ms");
  return 0;
}
