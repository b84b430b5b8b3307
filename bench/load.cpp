// Load: N client processes (fork) each run create -> write+publish -> open -> remove on their own
// arrays for T seconds against a running broker. Reports ops/s, p50/p99 latency per operation and
// errors, then checks that the broker is back where it started: its descriptor count
// (/proc/PID/fd, less its segment pool's), its resident memory (/proc/PID/status VmRSS, within
// --rss-slack-kib) and the number of its segments in /dev/shm. Exit status 0 only with no errors and no leak.
//
// The last lines are for scripts (tests parse them):
//   errors <n>
//   leaks none | leaks <what>
#include <dirent.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <shmarray/shmarray.hpp>
#include <shmarray/socket_path.hpp>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

enum Op { kCreate, kWrite, kOpen, kRemove, kOpCount };
constexpr const char* kOpNames[kOpCount] = {"create", "write+publish", "open", "remove"};

struct Options {
  std::string socket_path;
  int clients = 4;
  double seconds = 10;
  double warmup_seconds = 1;
  std::uint64_t array_bytes = 64 * 1024;
  std::int64_t rss_slack_kib = 16 * 1024;
};

// What one client process measured: per op, latencies in ns and an error count.
struct Sample {
  std::vector<std::uint64_t> ns[kOpCount];
  std::uint64_t errors[kOpCount] = {};
};

// --- the broker's footprint -------------------------------------------------------------------

struct Footprint {
  long fds = -1;
  long rss_kib = -1;
  long segments = -1;
};

long count_dir(const std::string& path, const std::string& prefix = {}) {
  DIR* d = ::opendir(path.c_str());
  if (d == nullptr) return -1;
  long n = 0;
  while (const dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    if (name.compare(0, prefix.size(), prefix) == 0) ++n;
  }
  ::closedir(d);
  return n;
}

long rss_kib(std::uint32_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  }
  return -1;
}

// The broker's descriptors, less those of its segment pool (nameless /dev/shm files, which /proc
// shows as "/dev/shm/#<inode> (deleted)"): the pool holds a bounded, varying number of them
// (--segment-pool-bytes), which is not a leak.
long count_fds(std::uint32_t pid) {
  const std::string dir = "/proc/" + std::to_string(pid) + "/fd";
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return -1;
  long n = 0;
  while (const dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    char target[256];
    const ssize_t len = ::readlink((dir + "/" + name).c_str(), target, sizeof target - 1);
    const std::string_view link(target, len > 0 ? static_cast<std::size_t>(len) : 0);
    if (link.starts_with("/dev/shm/#")) continue;
    ++n;
  }
  ::closedir(d);
  return n;
}

Footprint footprint(std::uint32_t pid, const std::string& socket_path) {
  return Footprint{count_fds(pid), rss_kib(pid),
                   count_dir("/dev/shm", shmarray::segment_prefix(socket_path).substr(1))};
}

// --- one client process -----------------------------------------------------------------------

// Runs the mix until `until`; returns what it measured. Names are unique to this process.
Sample run_client(const Options& o, int index, Clock::time_point until) {
  Sample s;
  auto client = shmarray::Client::connect({.socket_path = o.socket_path});
  if (!client) {
    std::fprintf(stderr, "client %d: %s\n", index, client.error().message().c_str());
    s.errors[kCreate]++;
    return s;
  }
  int reported = 0;
  auto report = [&](Op op, const shmarray::Error& e) {
    s.errors[op]++;
    if (reported++ < 5) {
      std::fprintf(stderr, "client %d %s: %s\n", index, kOpNames[op], e.to_string().c_str());
    }
  };
  auto timed = [&](Op op, auto&& fn) {
    const auto t0 = Clock::now();
    auto result = fn();
    s.ns[op].push_back(static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0).count()));
    if (!result) report(op, result.error());
    return result;
  };
  const shmarray::ArraySpec spec{.dtype = "<f8", .shape = {std::max<std::uint64_t>(1, o.array_bytes / 8)}};
  for (std::uint64_t i = 0; Clock::now() < until; ++i) {
    const std::string name = "load/" + std::to_string(::getpid()) + "/" + std::to_string(i);
    {  // the arrays are unmapped before the remove
      auto created = timed(kCreate, [&] { return client->create(name, spec); });
      if (!created) continue;
      timed(kWrite, [&]() -> shmarray::Result<std::uint64_t> {
        auto v = created->as<double>();
        if (!v) return std::unexpected(v.error());
        std::fill(v->begin(), v->end(), static_cast<double>(i));
        return created->publish();
      });
      auto opened = timed(kOpen, [&] { return client->open(name, shmarray::Access::kReadOnly); });
      if (opened && opened->version() != 1) {
        report(kOpen, shmarray::Error(shmarray::ErrorCode::kInternal, "open saw a stale version"));
      }
    }
    timed(kRemove, [&] { return client->remove(name); });
  }
  return s;
}

// Child side: runs, then writes the sample to `fd` (counts, errors, latencies per op).
void write_sample(int fd, const Sample& s) {
  auto put = [&](const void* p, std::size_t n) {
    const char* c = static_cast<const char*>(p);
    while (n > 0) {
      const ssize_t w = ::write(fd, c, n);
      if (w <= 0) ::_exit(3);
      c += w;
      n -= static_cast<std::size_t>(w);
    }
  };
  for (int op = 0; op < kOpCount; ++op) {
    const std::uint64_t n = s.ns[op].size();
    put(&n, sizeof n);
    put(&s.errors[op], sizeof s.errors[op]);
    put(s.ns[op].data(), n * sizeof(std::uint64_t));
  }
}

bool read_sample(int fd, Sample& into) {
  auto get = [&](void* p, std::size_t n) {
    char* c = static_cast<char*>(p);
    while (n > 0) {
      const ssize_t r = ::read(fd, c, n);
      if (r <= 0) return false;
      c += r;
      n -= static_cast<std::size_t>(r);
    }
    return true;
  };
  for (int op = 0; op < kOpCount; ++op) {
    std::uint64_t n = 0;
    std::uint64_t errors = 0;
    if (!get(&n, sizeof n) || !get(&errors, sizeof errors)) return false;
    const std::size_t old = into.ns[op].size();
    into.ns[op].resize(old + n);
    if (!get(into.ns[op].data() + old, n * sizeof(std::uint64_t))) return false;
    into.errors[op] += errors;
  }
  return true;
}

// Forks `o.clients` processes that run the mix for `seconds`; merges their samples. A client
// that dies or sends a short sample counts as an error.
Sample run_clients(const Options& o, double seconds) {
  const auto until =
      Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  std::vector<std::pair<pid_t, int>> children;
  for (int i = 0; i < o.clients; ++i) {
    int p[2];
    if (::pipe(p) != 0) std::abort();
    const pid_t pid = ::fork();
    if (pid == 0) {
      ::close(p[0]);
      write_sample(p[1], run_client(o, i, until));
      ::_exit(0);
    }
    ::close(p[1]);
    children.emplace_back(pid, p[0]);
  }
  Sample all;
  for (auto [pid, fd] : children) {
    if (!read_sample(fd, all)) {
      std::fprintf(stderr, "client process %d sent no result\n", pid);
      all.errors[kCreate]++;
    }
    ::close(fd);
    int status = 0;
    ::waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      std::fprintf(stderr, "client process %d failed (status %d)\n", pid, status);
      all.errors[kCreate]++;
    }
  }
  return all;
}

double percentile_us(std::vector<std::uint64_t>& ns, double p) {
  if (ns.empty()) return 0;
  const std::size_t k = std::min(ns.size() - 1, static_cast<std::size_t>(p * ns.size()));
  std::nth_element(ns.begin(), ns.begin() + static_cast<long>(k), ns.end());
  return static_cast<double>(ns[k]) / 1000.0;
}

// Waits (5 s at most) for the broker's footprint to come back to `before` after the clients
// closed; returns the last one seen.
Footprint settle(std::uint32_t pid, const Options& o, const Footprint& before) {
  Footprint now = footprint(pid, o.socket_path);
  const auto deadline = Clock::now() + std::chrono::seconds(5);
  while (Clock::now() < deadline &&
         (now.fds > before.fds || now.segments > before.segments ||
          now.rss_kib > before.rss_kib + o.rss_slack_kib)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    now = footprint(pid, o.socket_path);
  }
  return now;
}

// The footprint once the broker has seen our earlier connections close: the descriptor count has
// stopped falling (two readings 50 ms apart agree; 2 s at most).
Footprint quiet_footprint(std::uint32_t pid, const Options& o) {
  Footprint last = footprint(pid, o.socket_path);
  const auto deadline = Clock::now() + std::chrono::seconds(2);
  while (Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    const Footprint now = footprint(pid, o.socket_path);
    if (now.fds == last.fds && now.segments == last.segments) return now;
    last = now;
  }
  return last;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"bench_load: N client processes run create/write+publish/open/remove against a "
               "broker for T seconds; reports ops/s, p50/p99 per op, errors, and checks that the "
               "broker's descriptors, memory and segments come back to where they started"};
  app.add_option("--socket", o.socket_path, "broker socket (default: the usual rule)");
  app.add_option("--clients", o.clients, "client processes")->capture_default_str()
      ->check(CLI::Range(1, 1024));
  app.add_option("--seconds", o.seconds, "length of the measured run")->capture_default_str();
  app.add_option("--warmup-seconds", o.warmup_seconds,
                 "unmeasured run first (the broker's memory reaches its working size)")
      ->capture_default_str();
  app.add_option("--array-bytes", o.array_bytes, "size of each array")->capture_default_str();
  app.add_option("--rss-slack-kib", o.rss_slack_kib,
                 "growth of the broker's resident memory still counted as no leak")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  o.socket_path = shmarray::resolve_socket_path(o.socket_path);

  std::uint32_t pid = 0;
  {
    auto probe = shmarray::Client::connect({.socket_path = o.socket_path});
    if (!probe) {
      std::fprintf(stderr, "%s\n", probe.error().message().c_str());
      return 2;
    }
    pid = probe->broker_pid();
  }
  if (o.warmup_seconds > 0) (void)run_clients(o, o.warmup_seconds);
  const Footprint before = quiet_footprint(pid, o);

  const auto t0 = Clock::now();
  Sample all = run_clients(o, o.seconds);
  const double elapsed = std::chrono::duration<double>(Clock::now() - t0).count();

  std::printf("bench_load: %d clients, %.1f s, %llu-byte arrays, broker pid %u\n", o.clients,
              elapsed, static_cast<unsigned long long>(o.array_bytes), pid);
  std::printf("%-14s %10s %10s %10s %10s %8s\n", "op", "count", "ops/s", "p50_us", "p99_us",
              "errors");
  std::uint64_t total = 0;
  std::uint64_t errors = 0;
  for (int op = 0; op < kOpCount; ++op) {
    auto& ns = all.ns[op];
    const std::size_t n = ns.size();
    total += n;
    errors += all.errors[op];
    std::printf("%-14s %10zu %10.0f %10.1f %10.1f %8llu\n", kOpNames[op], n,
                static_cast<double>(n) / elapsed, percentile_us(ns, 0.50), percentile_us(ns, 0.99),
                static_cast<unsigned long long>(all.errors[op]));
  }
  std::printf("%-14s %10llu %10.0f\n", "all", static_cast<unsigned long long>(total),
              static_cast<double>(total) / elapsed);

  const Footprint after = settle(pid, o, before);
  std::printf("broker fds %ld -> %ld, rss %ld -> %ld KiB, segments %ld -> %ld\n", before.fds,
              after.fds, before.rss_kib, after.rss_kib, before.segments, after.segments);
  std::string leaks;
  if (after.fds > before.fds) leaks += " fds";
  if (after.segments > before.segments) leaks += " segments";
  if (after.rss_kib > before.rss_kib + o.rss_slack_kib) leaks += " memory";
  if (before.fds < 0 || before.rss_kib < 0) leaks += " (cannot read /proc of the broker)";
  std::printf("errors %llu\n", static_cast<unsigned long long>(errors));
  std::printf("leaks %s\n", leaks.empty() ? "none" : leaks.c_str() + 1);
  return errors == 0 && leaks.empty() ? 0 : 1;
}
