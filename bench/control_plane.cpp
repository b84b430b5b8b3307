// Control-plane latency: create, open (read-only, read-write), stat and remove against a running
// broker, each as p50/p99 over many iterations, beside a baseline measured in the same run: a
// 64-byte request/reply ping-pong over a Unix socketpair between two processes (the floor for
// any broker round trip on this machine). Prints a table; --csv appends rows to a file.
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <shmarray/shmarray.hpp>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

struct Stats {
  double p50_us;
  double p99_us;
};

Stats summarise(std::vector<double> us) {
  std::sort(us.begin(), us.end());
  return {us[us.size() / 2], us[std::min(us.size() - 1, us.size() * 99 / 100)]};
}

template <class Fn>
double time_us(Fn&& fn) {
  const auto t0 = Clock::now();
  fn();
  return std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
}

std::vector<double> socket_ping_pong(int iterations) {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) std::abort();
  const pid_t pid = ::fork();
  char buf[64] = {};
  if (pid == 0) {
    ::close(sv[0]);
    for (int i = 0; i < iterations + 100; ++i) {
      if (::read(sv[1], buf, sizeof buf) != sizeof buf) break;
      if (::write(sv[1], buf, sizeof buf) != sizeof buf) break;
    }
    ::_exit(0);
  }
  ::close(sv[1]);
  std::vector<double> us;
  for (int i = 0; i < iterations + 100; ++i) {
    const double t = time_us([&] {
      if (::write(sv[0], buf, sizeof buf) != sizeof buf) std::abort();
      if (::read(sv[0], buf, sizeof buf) != sizeof buf) std::abort();
    });
    if (i >= 100) us.push_back(t);  // warm-up excluded
  }
  ::close(sv[0]);
  ::waitpid(pid, nullptr, 0);
  return us;
}

template <class T>
T must(shmarray::Result<T> r) {
  if (!r) {
    std::fprintf(stderr, "control_plane: %s\n", r.error().message().c_str());
    std::exit(1);
  }
  return std::move(*r);
}

}  // namespace

int main(int argc, char** argv) {
  std::string socket;
  int iterations = 2000;
  std::uint64_t elements = 1024;
  std::string csv;
  std::string machine = "this machine";
  CLI::App app{"shmarray control-plane latency benchmark (needs a running shmarrayd)"};
  app.add_option("--socket", socket, "broker socket (default: the standard path rule)");
  app.add_option("--iterations", iterations, "operations of each kind")->capture_default_str();
  app.add_option("--elements", elements, "float64 elements per array")->capture_default_str();
  app.add_option("--csv", csv, "append results to this CSV file");
  app.add_option("--machine", machine, "label for the table")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  auto client = must(shmarray::Client::connect({.socket_path = socket}));
  const shmarray::ArraySpec spec{.dtype = "<f8", .shape = {elements}};
  std::vector<std::string> names;
  for (int i = 0; i < iterations; ++i) names.push_back("bench/cp/" + std::to_string(i));

  std::vector<double> create_us, open_ro_us, open_rw_us, stat_us, remove_us;
  {
    std::vector<shmarray::Array> keep;  // created arrays stay mapped here
    for (const auto& n : names) {
      create_us.push_back(time_us([&] { keep.push_back(must(client.create(n, spec))); }));
    }
    keep.clear();  // open measures a fresh mapping, not the per-process reuse
    for (const auto& n : names) {
      open_ro_us.push_back(time_us([&] {
        auto a = must(client.open(n, shmarray::Access::kReadOnly));
        keep.push_back(std::move(a));
      }));
    }
    keep.clear();
    for (const auto& n : names) {
      open_rw_us.push_back(time_us([&] {
        auto a = must(client.open(n, shmarray::Access::kReadWrite));
        keep.push_back(std::move(a));
      }));
    }
    for (const auto& n : names) stat_us.push_back(time_us([&] { must(client.stat(n)); }));
  }
  for (const auto& n : names) {
    remove_us.push_back(time_us([&] {
      if (!client.remove(n)) std::abort();
    }));
  }
  const Stats base = summarise(socket_ping_pong(iterations));

  std::printf("\nControl-plane latency, %d ops each, %llu-element float64 arrays (%s)\n",
              iterations, static_cast<unsigned long long>(elements), machine.c_str());
  std::printf("%-28s %10s %10s %16s\n", "operation", "p50 (us)", "p99 (us)", "p50 / baseline");
  const auto row = [&](const char* what, const Stats& s) {
    std::printf("%-28s %10.1f %10.1f %15.1fx\n", what, s.p50_us, s.p99_us, s.p50_us / base.p50_us);
    if (!csv.empty()) {
      std::ofstream(csv, std::ios::app) << machine << "," << what << "," << s.p50_us << ","
                                        << s.p99_us << "," << s.p50_us / base.p50_us << "\n";
    }
  };
  row("baseline: socket ping-pong", base);
  row("create", summarise(create_us));
  row("open read-only (new map)", summarise(open_ro_us));
  row("open read-write (new map)", summarise(open_rw_us));
  row("stat", summarise(stat_us));
  row("remove", summarise(remove_us));
  return 0;
}
