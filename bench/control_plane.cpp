// Control-plane cost against a running broker. Three modes (any combination in one run):
//
//   --clients 1,2,4,8   N client processes, each with its own connection, run the same phases
//                       (create, open read-only, open read-write, stat, remove; `--iterations`
//                       operations per phase in total, split between the clients). Per phase:
//                       latency p50/p99 over every operation and throughput = operations / wall
//                       time of the phase. Baseline, same run, same N: a 64-byte request/reply
//                       to a one-thread epoll echo server over Unix sockets (the floor for any
//                       one-thread broker round trip).
//   --scale-registry    with K arrays already registered (1 ... 100,000 small "filler" arrays),
//                       p50/p99 of create, open and remove of further arrays: is the registry
//                       O(1) in its size?
//   --scale-sizes       create, open, open with populate and remove of one array of each size
//                       (4 KiB ... 1 GiB): which operations grow with the array?
// Prints tables; --csv-* append rows (with a header when new).
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <CLI/CLI.hpp>
#include <array>
#include <optional>
#include <thread>
#include <shmarray/shmarray.hpp>

#include "bench_util.hpp"

namespace {

using namespace bench;

const char* const kPhases[] = {"create", "open read-only", "open read-write", "stat", "remove"};
constexpr int kPhaseCount = 5;

// --- one client process's work --------------------------------------------------------------------

std::vector<std::vector<double>> client_phases(shmarray::Client& client, const std::string& prefix,
                                               int ops, std::uint64_t elements, const Pipe& go,
                                               const Pipe& done) {
  const shmarray::ArraySpec spec{.dtype = "<f8", .shape = {elements}};
  std::vector<std::string> names;
  for (int i = 0; i < ops; ++i) names.push_back(prefix + std::to_string(i));
  std::vector<std::vector<double>> us(kPhaseCount);
  std::vector<shmarray::Array> keep;  // arrays stay mapped during their phase, like a real app
  for (int phase = 0; phase < kPhaseCount; ++phase) {
    keep.clear();  // each open phase measures a fresh mapping, not the per-process reuse
    recv_pod<char>(go.r);
    for (const auto& n : names) {
      us[phase].push_back(time_us([&] {
        switch (phase) {
          case 0: keep.push_back(must(client.create(n, spec), "create")); break;
          case 1: keep.push_back(must(client.open(n, shmarray::Access::kReadOnly), "open")); break;
          case 2: keep.push_back(must(client.open(n, shmarray::Access::kReadWrite), "open")); break;
          case 3: must(client.stat(n), "stat"); break;
          default: must(client.remove(n), "remove"); break;
        }
      }));
    }
    send_pod(done.w, char{1});
  }
  return us;
}

void send_samples(int fd, const std::vector<std::vector<double>>& us) {
  for (const auto& v : us) {
    send_pod(fd, v.size());
    if (!write_all(fd, v.data(), v.size() * sizeof(double))) die("result pipe");
  }
}

std::vector<double> recv_samples(int fd) {
  const auto n = recv_pod<std::size_t>(fd);
  std::vector<double> v(n);
  if (!read_all(fd, v.data(), n * sizeof(double))) die("result pipe");
  return v;
}

// --- the echo baseline: one-thread epoll server, N clients, 64-byte messages ------------------------

[[noreturn]] void echo_server(const std::vector<int>& fds) {
  const int ep = ::epoll_create1(EPOLL_CLOEXEC);
  for (int fd : fds) {
    epoll_event ev{.events = EPOLLIN, .data = {.fd = fd}};
    ::epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
  }
  std::size_t open = fds.size();
  char buf[64];
  epoll_event events[64];
  while (open > 0) {
    const int n = ::epoll_wait(ep, events, 64, -1);
    for (int i = 0; i < n; ++i) {
      const int fd = events[i].data.fd;
      if (!read_all(fd, buf, sizeof buf) || !write_all(fd, buf, sizeof buf)) {
        ::epoll_ctl(ep, EPOLL_CTL_DEL, fd, nullptr);
        ::close(fd);
        --open;
      }
    }
  }
  ::_exit(0);
}

struct PhaseResult {
  std::string op;
  Stats latency;
  double ops_per_s;
};

// Runs `clients` processes through `phases` phases in lock-step; `work(i, go, done)` is a child's
// body and returns its per-phase samples.
template <class Work>
std::vector<PhaseResult> run_clients(int clients, int phases, int total_ops,
                                     const std::vector<std::string>& names, Work&& work) {
  const Pipe done = Pipe::make();
  std::vector<Pipe> go, results;
  std::vector<pid_t> pids;
  for (int i = 0; i < clients; ++i) {
    go.push_back(Pipe::make());
    results.push_back(Pipe::make());
    const pid_t pid = ::fork();
    if (pid == 0) {
      send_samples(results[i].w, work(i, go[i], done));
      ::_exit(0);
    }
    pids.push_back(pid);
  }
  std::vector<double> wall_s(phases);
  for (int phase = 0; phase < phases; ++phase) {
    const auto t0 = Clock::now();
    for (const auto& g : go) send_pod(g.w, char{1});
    for (int i = 0; i < clients; ++i) recv_pod<char>(done.r);
    wall_s[phase] = std::chrono::duration<double>(Clock::now() - t0).count();
  }
  std::vector<std::vector<double>> merged(phases);
  for (const auto& r : results) {
    for (int phase = 0; phase < phases; ++phase) {
      auto v = recv_samples(r.r);
      merged[phase].insert(merged[phase].end(), v.begin(), v.end());
    }
  }
  for (pid_t pid : pids) ::waitpid(pid, nullptr, 0);
  for (auto& p : go) ::close(p.r), ::close(p.w);
  for (auto& p : results) ::close(p.r), ::close(p.w);
  ::close(done.r), ::close(done.w);
  std::vector<PhaseResult> out;
  for (int phase = 0; phase < phases; ++phase) {
    out.push_back({names[phase], summarise(merged[phase]), total_ops / wall_s[phase]});
  }
  return out;
}

PhaseResult echo_baseline(int clients, int total_ops) {
  std::vector<int> server_ends, client_ends;
  for (int i = 0; i < clients; ++i) {
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) die("socketpair");
    server_ends.push_back(sv[0]);
    client_ends.push_back(sv[1]);
  }
  const pid_t server = ::fork();
  if (server == 0) {
    for (int fd : client_ends) ::close(fd);  // else the server never sees its clients hang up
    echo_server(server_ends);
  }
  for (int fd : server_ends) ::close(fd);
  const int per_client = std::max(1, total_ops / clients);
  auto r = run_clients(clients, 1, per_client * clients, {"baseline: 64 B echo, 1-thread server"},
                       [&](int i, const Pipe& go, const Pipe& done) {
                         char buf[64] = {};
                         for (int k = 0; k < 100; ++k) {  // warm-up
                           write_all(client_ends[i], buf, 64), read_all(client_ends[i], buf, 64);
                         }
                         std::vector<std::vector<double>> us(1);
                         recv_pod<char>(go.r);
                         for (int k = 0; k < per_client; ++k) {
                           us[0].push_back(time_us([&] {
                             if (!write_all(client_ends[i], buf, 64) ||
                                 !read_all(client_ends[i], buf, 64)) {
                               die("echo");
                             }
                           }));
                         }
                         send_pod(done.w, char{1});
                         return us;
                       });
  for (int fd : client_ends) ::close(fd);
  ::waitpid(server, nullptr, 0);
  return r[0];
}

void clients_mode(const std::string& socket, const std::vector<int>& counts, int iterations,
                  std::uint64_t elements, const std::string& machine, const std::string& csv_path) {
  Csv csv(csv_path, "machine,clients,op,ops,p50_us,p99_us,ops_per_s");
  std::printf("\nControl plane, %d operations per phase split between N client processes, "
              "%llu-element float64 arrays (%s)\n",
              iterations, static_cast<unsigned long long>(elements), machine.c_str());
  std::printf("%3s %-38s %10s %10s %12s %12s\n", "N", "operation", "p50 (us)", "p99 (us)",
              "ops/s", "p50/base");
  for (const int n : counts) {
    const int per_client = std::max(1, iterations / n);
    std::vector<PhaseResult> rows{echo_baseline(n, iterations)};
    const auto names = std::vector<std::string>(std::begin(kPhases), std::end(kPhases));
    auto phases = run_clients(n, kPhaseCount, per_client * n, names,
                              [&](int i, const Pipe& go, const Pipe& done) {
                                auto client = must(shmarray::Client::connect({.socket_path = socket}));
                                const std::string prefix = "bench/cp/" + std::to_string(::getpid()) +
                                                           "/" + std::to_string(i) + "/";
                                return client_phases(client, prefix, per_client, elements, go, done);
                              });
    rows.insert(rows.end(), phases.begin(), phases.end());
    for (const auto& r : rows) {
      std::printf("%3d %-38s %10.1f %10.1f %12.0f %11.2fx\n", n, r.op.c_str(), r.latency.p50,
                  r.latency.p99, r.ops_per_s, r.latency.p50 / rows[0].latency.p50);
      csv.row(machine, n, r.op, r.latency.n, r.latency.p50, r.latency.p99, r.ops_per_s);
    }
  }
}

// --- scale: registry size and array size ---------------------------------------------------------

// Creates (or removes) the filler arrays base + [from, to) from one process per core, each with
// its own connection: on 2 cores this halves the wait for 100,000 of them.
void fillers(const std::string& socket, const std::string& base, int from, int to, bool create) {
  const shmarray::ArraySpec filler{.dtype = "|u1", .shape = {1}};
  const int procs = static_cast<int>(std::min<unsigned>(cores(), 8));
  std::vector<pid_t> pids;
  for (int p = 0; p < procs; ++p) {
    const pid_t pid = ::fork();
    if (pid == 0) {
      auto client = must(shmarray::Client::connect({.socket_path = socket}), "filler client");
      for (int i = from + p; i < to; i += procs) {
        const std::string name = base + "fill/" + std::to_string(i);
        if (create) {
          must(client.create(name, filler), "filler create");  // unmapped at once
        } else {
          must(client.remove(name), "filler remove");
        }
      }
      ::_exit(0);
    }
    pids.push_back(pid);
  }
  for (pid_t pid : pids) {
    int status = 0;
    ::waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) die("a filler process failed");
  }
}

// Create, open (fresh mapping) and remove of `names`, in that order; per-operation samples.
std::array<std::vector<double>, 3> probe_batch(shmarray::Client& client,
                                               const std::vector<std::string>& names) {
  const shmarray::ArraySpec probe{.dtype = "<f8", .shape = {1024}};
  std::array<std::vector<double>, 3> us;
  std::optional<shmarray::Array> held;  // unmapped after the clock stops, not inside it
  for (const auto& n : names) {
    us[0].push_back(time_us([&] { held = must(client.create(n, probe)); }));
    held.reset();
  }
  for (const auto& n : names) {
    us[1].push_back(time_us([&] { held = must(client.open(n, shmarray::Access::kReadOnly)); }));
    held.reset();
  }
  for (const auto& n : names) us[2].push_back(time_us([&] { must(client.remove(n)); }));
  return us;
}

// Each registry size is probed in 3 batches a moment apart: a burst of other work on a shared
// machine then spoils one batch, not the level. "best batch p50" (the lowest of the three batch
// medians) is what the growth verdict uses; p50/p99 are over all probes.
void scale_registry(shmarray::Client& client, const std::string& socket,
                    const std::vector<int>& levels, int probes, const std::string& machine,
                    Csv& csv) {
  constexpr int kBatches = 3;
  const std::string base = "bench/scale/" + std::to_string(::getpid()) + "/";
  std::printf("\nRegistry scale: create/open/remove with K arrays already registered (%s)\n",
              machine.c_str());
  std::printf("%9s %-10s %10s %10s %16s\n", "K", "operation", "p50 (us)", "p99 (us)",
              "best batch p50");
  std::vector<std::string> warm;  // the first operations of a connection are dearer
  for (int j = 0; j < probes; ++j) warm.push_back(base + "warm/" + std::to_string(j));
  probe_batch(client, warm);
  int filled = 0;
  const auto t_fill = Clock::now();
  for (const int k : levels) {
    if (filled < k) fillers(socket, base, filled, k, true);
    filled = std::max(filled, k);
    std::array<std::vector<double>, 3> all;
    std::array<double, 3> best{1e300, 1e300, 1e300};
    for (int b = 0; b < kBatches; ++b) {
      if (b > 0) std::this_thread::sleep_for(std::chrono::milliseconds(300));
      std::vector<std::string> names;
      for (int j = b; j < probes; j += kBatches) {
        names.push_back(base + "probe/" + std::to_string(k) + "/" + std::to_string(j));
      }
      const auto us = probe_batch(client, names);
      for (int op = 0; op < 3; ++op) {
        all[op].insert(all[op].end(), us[op].begin(), us[op].end());
        best[op] = std::min(best[op], summarise(us[op]).p50);
      }
    }
    const char* ops[] = {"create", "open", "remove"};
    for (int op = 0; op < 3; ++op) {
      const Stats s = summarise(all[op]);
      std::printf("%9d %-10s %10.1f %10.1f %16.1f\n", k, ops[op], s.p50, s.p99, best[op]);
      csv.row(machine, "registry", k, ops[op], s.n, s.p50, s.p99, best[op]);
    }
  }
  const double fill_s = std::chrono::duration<double>(Clock::now() - t_fill).count();
  const auto t_rm = Clock::now();
  fillers(socket, base, 0, filled, false);
  std::printf("(%d filler arrays: created and probed in %.1f s, removed in %.1f s)\n", filled,
              fill_s, std::chrono::duration<double>(Clock::now() - t_rm).count());
}

void scale_sizes(shmarray::Client& client, const std::vector<std::uint64_t>& sizes, int reps,
                 const std::string& machine, Csv& csv) {
  std::printf("\nArray-size scale: one array at a time, %d repetitions (%s)\n", reps, machine.c_str());
  std::printf("%10s %-22s %10s %10s\n", "size", "operation", "p50 (us)", "p99 (us)");
  const std::string name = "bench/size/" + std::to_string(::getpid());
  for (const std::uint64_t bytes : sizes) {
    const shmarray::ArraySpec spec{.dtype = "|u1", .shape = {bytes}};
    const int n = bytes >= (1ull << 30) ? std::min(reps, 3) : reps;
    std::vector<double> c_us, o_us, p_us, r_us;
    std::optional<shmarray::Array> held;  // unmapped after the clock stops, not inside it
    for (int i = 0; i < n + 1; ++i) {  // i == 0: warm-up
      const double c = time_us([&] { held = must(client.create(name, spec)); });
      held.reset();
      const double o = time_us([&] { held = must(client.open(name, shmarray::Access::kReadOnly)); });
      held.reset();
      const double p = time_us([&] {
        held = must(client.open(name, shmarray::Access::kReadOnly, {.populate = true}));
      });
      held.reset();
      const double r = time_us([&] { must(client.remove(name)); });  // no mapping left: frees
      if (i == 0) continue;
      c_us.push_back(c), o_us.push_back(o), p_us.push_back(p), r_us.push_back(r);
    }
    for (auto [op, v] : {std::pair{"create", &c_us}, {"open", &o_us}, {"open + populate", &p_us},
                         {"remove (frees pages)", &r_us}}) {
      const Stats s = summarise(*v);
      std::printf("%10s %-22s %10.1f %10.1f\n", human(bytes).c_str(), op, s.p50, s.p99);
      csv.row(machine, "size", bytes, op, s.n, s.p50, s.p99, s.p50);
    }
  }
}

std::vector<int> parse_ints(const std::string& text) {
  std::vector<int> out;
  for (const auto v : parse_sizes(text)) out.push_back(static_cast<int>(v));
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  std::string socket, clients = "1", registry, sizes, machine = "this machine";
  std::string csv_clients, csv_scale;
  int iterations = 2000, probes = 200, reps = 5;
  std::uint64_t elements = 1024;
  CLI::App app{"shmarray control-plane benchmark (needs a running shmarrayd)"};
  app.add_option("--socket", socket, "broker socket (default: the standard path rule)");
  app.add_option("--clients", clients, "client-process counts, e.g. 1,2,4,8 (empty: skip)")
      ->capture_default_str();
  app.add_option("--iterations", iterations, "operations per phase (all clients together)")
      ->capture_default_str();
  app.add_option("--elements", elements, "float64 elements per array")->capture_default_str();
  app.add_option("--scale-registry", registry, "registry sizes, e.g. 1,10,100,1000,10000,100000");
  app.add_option("--probes", probes, "operations measured per registry size")->capture_default_str();
  app.add_option("--scale-sizes", sizes, "array sizes, e.g. 4KiB,1MiB,64MiB,1GiB");
  app.add_option("--reps", reps, "repetitions per array size")->capture_default_str();
  app.add_option("--csv", csv_clients, "append --clients results to this CSV file");
  app.add_option("--csv-scale", csv_scale, "append scale results to this CSV file");
  app.add_option("--machine", machine, "label for the tables")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // tables appear as they are measured

  if (!clients.empty()) clients_mode(socket, parse_ints(clients), iterations, elements, machine, csv_clients);
  if (registry.empty() && sizes.empty()) return 0;
  auto client = must(shmarray::Client::connect({.socket_path = socket}));
  Csv csv(csv_scale, "machine,axis,x,op,n,p50_us,p99_us,best_batch_p50_us");
  if (!registry.empty()) scale_registry(client, socket, parse_ints(registry), probes, machine, csv);
  if (!sizes.empty()) scale_sizes(client, parse_sizes(sizes), reps, machine, csv);
  return 0;
}
