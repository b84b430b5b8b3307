// Wake-up latency between two processes: one publishes, the other wakes. Measured as ping-pong
// round trips (one-way = round trip / 2), p50/p99 in microseconds, for
//   - shmarray spin-then-futex (WaitPolicy default: spin 20 us, then futex)
//   - shmarray pure futex      (WaitPolicy{.spin = 0})
//   - a bare futex ping-pong   (two futex words, no shmarray code)   <- baseline
//   - a Unix-socket ping-pong  (1 byte each way)
// all in the same run on the same machine. The segment header is the real LiveFields layout,
// initialised as the broker does, in a MAP_SHARED memfd shared by fork.
#include <linux/futex.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sched.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <climits>
#include <cstdio>
#include <vector>

#include "bench_util.hpp"
#include "shmarray/segment_layout.hpp"
#include "shmarray/sync/live_fields.hpp"
#include "shmarray/sync/version.hpp"

namespace {

using Clock = std::chrono::steady_clock;

struct Stats {
  double p50, p99;
};

// The first tenth of the round trips is warm-up (page faults, caches, CPU frequency): dropped.
Stats one_way(std::vector<double> round_trip_us) {
  round_trip_us.erase(round_trip_us.begin(),
                      round_trip_us.begin() + static_cast<std::ptrdiff_t>(round_trip_us.size() / 10));
  std::sort(round_trip_us.begin(), round_trip_us.end());
  const auto at = [&](std::size_t i) { return round_trip_us[std::min(i, round_trip_us.size() - 1)] / 2; };
  return {at(round_trip_us.size() / 2), at(round_trip_us.size() * 99 / 100)};
}

void* shared_region(std::size_t bytes) {
  void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) std::abort();
  return p;
}

// Pins the calling process to one CPU (pinned ping-pongs put the two sides on different CPUs).
void pin_to(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  ::sched_setaffinity(0, sizeof set, &set);
}

void unpin() {
  cpu_set_t set;
  CPU_ZERO(&set);
  for (int c = 0; c < CPU_SETSIZE; ++c) CPU_SET(c, &set);
  ::sched_setaffinity(0, sizeof set, &set);
}

// shmarray publish/wait ping-pong: parent publishes odd versions, child even ones. `pinned`:
// parent on CPU 0, child on CPU 1.
std::vector<double> shmarray_ping_pong(int rounds, shmarray::WaitPolicy policy, bool pinned = false) {
  auto* base = static_cast<std::byte*>(shared_region(shmarray::kHeaderBytes));
  shmarray::LiveFields& live = *shmarray::live_fields_of(base);
  if (!shmarray::init_live_fields(live)) std::abort();
  const pid_t pid = ::fork();
  if (pid == 0) {
    if (pinned) pin_to(1);
    for (std::uint64_t v = 1; v < 2ull * rounds; v += 2) {
      if (!shmarray::wait_newer_than(live, v - 1, std::chrono::seconds(10), policy)) ::_exit(1);
      shmarray::publish(live);
    }
    ::_exit(0);
  }
  if (pinned) pin_to(0);
  std::vector<double> us;
  for (int i = 0; i < rounds; ++i) {
    const auto t0 = Clock::now();
    const std::uint64_t mine = shmarray::publish(live);
    if (!shmarray::wait_newer_than(live, mine, std::chrono::seconds(10), policy)) std::abort();
    us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
  }
  ::waitpid(pid, nullptr, 0);
  if (pinned) unpin();
  ::munmap(base, shmarray::kHeaderBytes);
  return us;
}

long futex(std::atomic<std::uint32_t>* word, int op, std::uint32_t val) {
  return ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(word), op, val, nullptr, nullptr, 0);
}

void futex_wait_for(std::atomic<std::uint32_t>& word, std::uint32_t value) {
  std::uint32_t cur;
  while ((cur = word.load(std::memory_order_acquire)) != value) futex(&word, FUTEX_WAIT, cur);
}

std::vector<double> bare_futex_ping_pong(int rounds) {
  auto* words = static_cast<std::atomic<std::uint32_t>*>(shared_region(4096));
  new (&words[0]) std::atomic<std::uint32_t>(0);
  new (&words[16]) std::atomic<std::uint32_t>(0);
  auto& ping = words[0];
  auto& pong = words[16];
  const pid_t pid = ::fork();
  if (pid == 0) {
    for (std::uint32_t i = 1; i <= static_cast<std::uint32_t>(rounds); ++i) {
      futex_wait_for(ping, i);
      pong.store(i, std::memory_order_release);
      futex(&pong, FUTEX_WAKE, INT_MAX);
    }
    ::_exit(0);
  }
  std::vector<double> us;
  for (std::uint32_t i = 1; i <= static_cast<std::uint32_t>(rounds); ++i) {
    const auto t0 = Clock::now();
    ping.store(i, std::memory_order_release);
    futex(&ping, FUTEX_WAKE, INT_MAX);
    futex_wait_for(pong, i);
    us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
  }
  ::waitpid(pid, nullptr, 0);
  ::munmap(words, 4096);
  return us;
}

std::vector<double> socket_ping_pong(int rounds) {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) std::abort();
  char b = 0;
  const pid_t pid = ::fork();
  if (pid == 0) {
    for (int i = 0; i < rounds; ++i) {
      if (::read(sv[1], &b, 1) != 1 || ::write(sv[1], &b, 1) != 1) ::_exit(1);
    }
    ::_exit(0);
  }
  std::vector<double> us;
  for (int i = 0; i < rounds; ++i) {
    const auto t0 = Clock::now();
    if (::write(sv[0], &b, 1) != 1 || ::read(sv[0], &b, 1) != 1) std::abort();
    us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
  }
  ::waitpid(pid, nullptr, 0);
  ::close(sv[0]);
  ::close(sv[1]);
  return us;
}

}  // namespace

int main(int argc, char** argv) {
  int rounds = 20000;
  std::string csv;
  std::string machine = "this machine";
  CLI::App app{"shmarray wake-up latency benchmark: publish -> waiter wakes, across processes"};
  app.add_option("--rounds", rounds, "ping-pong round trips per method")->capture_default_str();
  app.add_option("--csv", csv, "append results to this CSV file");
  app.add_option("--machine", machine, "label for the table")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // tables appear as they are measured

  struct Row {
    const char* name;
    Stats s;
  };
  const Stats base = one_way(bare_futex_ping_pong(rounds));
  const Row rows[] = {
      {"bare futex ping-pong (baseline)", base},
      {"shmarray spin-then-futex", one_way(shmarray_ping_pong(rounds, {}))},
      {"shmarray pure futex", one_way(shmarray_ping_pong(rounds, {.spin = std::chrono::nanoseconds(0)}))},
      {"unix socket ping-pong", one_way(socket_ping_pong(rounds))},
      // The scheduler tends to wake the sleeper on the waker's CPU; the spinner then spins on a
      // CPU its peer needs. Pinned, each side has its own CPU (what isolated cores give).
      {"shmarray spin-then-futex, pinned to 2 CPUs",
       bench::cores() >= 2 ? one_way(shmarray_ping_pong(rounds, {}, true)) : Stats{0, 0}},
  };
  std::printf("\nWake-up latency, one way (round trip / 2), %d round trips, %s\n", rounds,
              machine.c_str());
  std::printf("%-44s %10s %10s %16s\n", "method", "p50 (us)", "p99 (us)", "p50 / baseline");
  bench::Csv out(csv, "machine,method,p50_us,p99_us,rounds");
  for (const auto& r : rows) {
    std::printf("%-44s %10.2f %10.2f %15.2fx\n", r.name, r.s.p50, r.s.p99, r.s.p50 / base.p50);
    out.row(machine, r.name, r.s.p50, r.s.p99, rounds);
  }
  return 0;
}
