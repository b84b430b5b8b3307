// Head-of-line blocking by list: another client's stat latency while one client lists N arrays,
// against the same stat with nothing else running (baseline), in the same run:
//   - "all at once": ListRequest limit 0, the reply every client got before paging (one request
//     does N version reads on the broker's only thread and builds one reply of N entries);
//   - "paged": Client::list, pages of wire::kMaxListPage arrays;
//   - "ls via LABEL" (--external-lister LABEL=COMMAND, repeatable): a shell command run in a loop
//     as the lister, e.g. the CLI's `shmarray ls` or a Python one-liner; $SOCKET holds the socket.
// --no-at-once skips the first (its one reply passes the 64 MiB per-connection cap at ~390k
// arrays); --keep-arrays leaves the arrays for a later run (created only when missing).
// Prints p50/p99/max of stat in microseconds, and the time one full listing takes.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "../tests/support/raw_client.hpp"
#include "bench_util.hpp"
#include "shmarray/shmarray.hpp"

namespace {

using Clock = std::chrono::steady_clock;

std::string name_of(int i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "li/%07d", i);
  return buf;
}

struct Probe {
  bench::Stats stat_us;
  double max_us = 0;
  double list_s = 0;  // one full listing, mean (0: no listing)
};

// Stats `probe_name` `probes` times (1 ms apart) while `lister` runs in a loop on another thread.
template <class Lister>
Probe measure(const std::string& socket, const std::string& probe_name, int probes,
              Lister&& lister) {
  std::atomic<bool> stop{false};
  std::atomic<int> lists{0};
  std::atomic<std::int64_t> list_ns{0};
  std::thread background;
  if constexpr (!std::is_same_v<std::decay_t<Lister>, std::nullptr_t>) {
    background = std::thread([&] {
      while (!stop.load()) {
        const auto t0 = Clock::now();
        lister();
        list_ns += std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0).count();
        ++lists;
      }
    });
  }
  auto client = bench::must(shmarray::Client::connect({.socket_path = socket}), "connect");
  std::vector<double> us;
  for (int i = 0; i < probes; ++i) {
    us.push_back(bench::time_us([&] { bench::must(client.stat(probe_name), "stat"); }));
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  stop = true;
  if (background.joinable()) background.join();
  Probe p;
  p.stat_us = bench::summarise(us);
  p.max_us = *std::max_element(us.begin(), us.end());
  p.list_s = lists.load() > 0 ? static_cast<double>(list_ns.load()) / lists.load() / 1e9 : 0;
  return p;
}

}  // namespace

int main(int argc, char** argv) {
  std::string socket;
  int arrays = 100000;
  int probes = 2000;
  std::string csv;
  std::string machine = "this machine";
  std::uint64_t big_bytes = 4ull << 30;
  bool no_at_once = false;
  bool keep_arrays = false;
  std::vector<std::string> external;
  CLI::App app{"stat latency while another client lists many arrays (head-of-line blocking)"};
  app.add_option("--socket", socket, "broker socket")->required();
  app.add_option("--arrays", arrays, "arrays to create and list")->capture_default_str();
  app.add_option("--probes", probes, "stat requests per phase")->capture_default_str();
  app.add_option("--csv", csv, "append results to this CSV file");
  app.add_option("--machine", machine, "label for the table")->capture_default_str();
  app.add_option("--big-bytes", big_bytes,
                 "size of the array another client creates and removes in a loop (0: skip)")
      ->capture_default_str();
  app.add_flag("--no-at-once", no_at_once, "skip the all-at-once list phase");
  app.add_flag("--keep-arrays", keep_arrays, "leave the arrays (and reuse existing ones)");
  app.add_option("--external-lister", external,
                 "LABEL=COMMAND: a shell command run in a loop as the lister ($SOCKET is set)");
  CLI11_PARSE(app, argc, argv);
  ::setenv("SOCKET", socket.c_str(), 1);
  std::setvbuf(stdout, nullptr, _IOLBF, 0);

  auto owner = bench::must(shmarray::Client::connect({.socket_path = socket}), "connect");
  const auto t0 = Clock::now();
  for (int i = 0; i < arrays; ++i) {
    auto made = owner.create(name_of(i), {.dtype = "|u1", .shape = {1}});
    if (!made && !(keep_arrays && made.error().code() == shmarray::ErrorCode::kAlreadyExists)) {
      bench::die("create: " + made.error().message());
    }
  }
  const double create_s = std::chrono::duration<double>(Clock::now() - t0).count();
  if (auto made = owner.create("li-probe", {.shape = {1}});
      !made && !(keep_arrays && made.error().code() == shmarray::ErrorCode::kAlreadyExists)) {
    bench::die("create li-probe: " + made.error().message());
  }

  auto lister = bench::must(shmarray::Client::connect({.socket_path = socket}), "connect");
  auto raw = shmarray::test::RawClient::connect(socket);
  if (!raw) bench::die("raw connect");
  const Probe idle = measure(socket, "li-probe", probes, nullptr);
  Probe at_once{};
  if (!no_at_once) {
    at_once = measure(socket, "li-probe", probes, [&] {
      auto r = raw->call(shmarray::wire::ListRequest{"li/", "", 0}, std::chrono::minutes(5));
      if (!r) bench::die("list (all at once) failed: reply too large or broker gone");
    });
  }
  const Probe paged = measure(socket, "li-probe", probes, [&] {
    auto all = bench::must(lister.list("li/"), "list");
    if (all.size() != static_cast<std::size_t>(arrays)) bench::die("list: wrong count");
  });
  std::vector<std::pair<std::string, Probe>> external_phases;
  for (const auto& spec : external) {
    const auto eq = spec.find('=');
    if (eq == std::string::npos) bench::die("--external-lister wants LABEL=COMMAND");
    const std::string command = spec.substr(eq + 1);
    external_phases.emplace_back("ls via " + spec.substr(0, eq),
                                 measure(socket, "li-probe", probes, [&] {
                                   if (std::system(command.c_str()) != 0) {
                                     bench::die("lister failed: " + command);
                                   }
                                 }));
  }
  // Head-of-line blocking by page reservation: another client creates and removes a big array
  // in a loop (list_s is then the mean create+remove time).
  Probe big{};
  if (big_bytes > 0) {
    big = measure(socket, "li-probe", probes, [&] {
      bench::must(lister.create("li-big", {.dtype = "|u1", .shape = {big_bytes}}), "big create");
      bench::must(lister.remove("li-big"), "remove");
    });
  }

  std::printf("\nstat while another client lists %d arrays, %s (created in %.1f s)\n", arrays,
              machine.c_str(), create_s);
  std::printf("%-34s %10s %10s %10s %12s\n", "phase", "p50 (us)", "p99 (us)", "max (us)",
              "list (s)");
  bench::Csv out(csv, "machine,arrays,phase,p50_us,p99_us,max_us,list_s");
  const std::string big_phase =
      "create+remove " + std::to_string(big_bytes >> 20) + " MiB in a loop";
  std::vector<std::pair<std::string, Probe>> phases{{"idle (baseline)", idle}};
  if (!no_at_once) phases.emplace_back("list all at once (before paging)", at_once);
  phases.emplace_back("list paged", paged);
  for (auto& phase : external_phases) phases.push_back(std::move(phase));
  if (big_bytes > 0) phases.emplace_back(big_phase, big);
  for (const auto& [phase, p] : phases) {
    std::printf("%-34s %10.1f %10.1f %10.1f %12.3f\n", phase.c_str(), p.stat_us.p50, p.stat_us.p99,
                p.max_us, p.list_s);
    out.row(machine, arrays, phase, p.stat_us.p50, p.stat_us.p99, p.max_us, p.list_s);
  }
  if (keep_arrays) return 0;
  for (int i = 0; i < arrays; ++i) bench::must(owner.remove(name_of(i)), "remove");
  bench::must(owner.remove("li-probe"), "remove");
  return 0;
}
