// Mirrors across hosts (issue 15; docs/benchmarks.md "Across hosts"): how long one array of N bytes
// takes from host A to host B, and at what rate, against the floor of the same link. Two "hosts"
// are two network namespaces joined by a veth pair, host B with a private /dev/shm
// (tests/support/two_hosts.hpp); "loopback" puts both in one network namespace (127.0.0.1). In the
// same run, per link and size:
//   tcp copy      a plain TCP socket from A to B: send() of the bytes from a touched buffer,
//                 recv() into a touched buffer; the clock runs from the first send() to the
//                 receiver's last recv() (CLOCK_MONOTONIC, comparable across processes). Above
//                 60 KiB, measured twice: one send() of everything ("tcp one send") and sends of
//                 60 KiB ("tcp 60K sends"); the floor ("tcp copy", every ratio's base) is the
//                 faster of the two in this run.
//   ucx_perftest  tag_lat (half a ping-pong of N bytes each way) where installed, over UCX_TLS=tcp
//                 with the bridge's TCP fragments (60 KiB unless UCX_TCP_TX_SEG_SIZE is set):
//                 what UCX itself gets out of the link; its median (it busy-polls: on a loaded
//                 machine with few cores its numbers follow the scheduler tick, not the link).
//   mirror        publish() of an N-byte array on broker A -> wait_newer_than() on its mirror on
//                 broker B (shmarrayd --peer-listen / --mirror): the whole path through both
//                 bridges; run only when this shmarrayd has --peer-listen.
//   stream        (--stream-messages N) a mirrored stream (kBlock, 64 slots of 64 bytes) from A
//                 to B: N messages published back to back on A and taken on B (messages/s, from
//                 the first loan to the last take), then 200 single messages one at a time
//                 (publish on A -> take() returning on B: per-message latency). With --streams K,
//                 K such streams on the one link, the messages going to each in turn (a bridge
//                 that sleeps on one stream sees the others late).
//   paced         (--paced-hz N) a 4 KiB array published N times a second for 3 s, each version
//                 awaited on B, against a TCP copy of 4 KiB at the same pace; also the CPU time
//                 of every shmarray-bridge process over those 3 s (what the bridges' polling
//                 costs: server/src/bridge/spin_policy.hpp).
// The tcp copy and mirror rounds run in alternating blocks (--blocks) so that a burst of other load
// falls on both. GB/s is bytes / median latency (one transfer at a time). Nothing here asserts a
// number.
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <thread>

#include "bench_util.hpp"
#include "forked_child.hpp"
#include "host_broker.hpp"
#include "shmarray/shmarray.hpp"
#include "tcp_socket.hpp"
#include "two_hosts.hpp"

namespace {

using namespace bench;
using namespace std::chrono_literals;
using shmarray::test::Host;
using shmarray::test::TwoHosts;

struct Options {
  std::string sizes = "4KiB,1MiB,64MiB";
  std::string links = "veth,loopback";
  int repeat_small = 50;  // sizes < 64 MiB
  int repeat_large = 6;
  int blocks = 3;
  std::string csv;
  std::string machine = "this machine";
  std::string shmarrayd = SHMARRAYD_PATH;
  std::string ucx_perftest = "/usr/bin/ucx_perftest";
  bool mirror = true;
  int stream_messages = 0;  // 0: no stream measurement
  int streams = 1;          // mirrored streams the messages go to in turn
  int paced_hz = 0;         // 0: no paced measurement
};

// Unwraps a std::expected whose error is a sentence.
template <class T>
T need(std::expected<T, std::string> r, std::string_view what) {
  if (!r) die(std::string(what) + ": " + r.error());
  return std::move(*r);
}

std::string key_dir() { return "/tmp/shmarray-bench-key-" + std::to_string(::getpid()); }

int rounds_for(const Options& o, std::uint64_t size) {
  return size < (64u << 20) ? o.repeat_small : o.repeat_large;
}

// A buffer of `size` bytes with every page touched (no first-touch faults in the timed part).
std::unique_ptr<char[]> touched(std::uint64_t size) {
  std::unique_ptr<char[]> p(new char[size]);
  for (std::uint64_t i = 0; i < size; ++i) p[i] = static_cast<char>(i * 131);
  return p;
}

// The TCP copy's sender passes the bytes to send() in pieces of at most this many (0: all at
// once). On the dev VM, 60 KiB pieces (each send fits one 64 KiB GSO packet with its headers)
// made a plain copy up to 2x faster than one send() of everything (64 MiB over loopback 13.0 vs
// 21.6 ms, 1 MiB over veth 152-197 vs 381 µs; 32, 48, 64 and 128 KiB were all slower): the
// floor is the faster of the two, measured in every run.
constexpr std::uint64_t kTcpPieceBytes = 60 * 1024;

// Latencies (µs) of `rounds` TCP copies from A to B (after 2 untimed ones), the sender's send()
// calls given at most `piece` bytes each (0: all of them); a copy every `period` (0: each as soon
// as the last has arrived).
std::vector<double> tcp_copy(const TwoHosts& hosts, std::uint64_t size, int rounds,
                             std::uint64_t piece,
                             std::chrono::nanoseconds period = std::chrono::nanoseconds(0)) {
  const int total = rounds + 2;
  auto* shared = static_cast<std::int64_t*>(::mmap(nullptr, sizeof(std::int64_t) * total,
                                                   PROT_READ | PROT_WRITE,
                                                   MAP_SHARED | MAP_ANONYMOUS, -1, 0));
  if (shared == MAP_FAILED) die("mmap");
  int port_pipe[2];
  if (::pipe(port_pipe) != 0) die("pipe");
  const auto timeout = std::chrono::milliseconds(60'000 + size / 1'000'000 * 200);
  auto receiver = need(shmarray::test::ForkedChild::start([&]() -> int {
    if (!hosts.enter(Host::kB)) return 2;
    auto listener = shmarray::test::tcp_listen(hosts.address(Host::kB));
    if (!listener) return 3;
    const std::uint16_t port = shmarray::test::local_port(listener->get());
    if (::write(port_pipe[1], &port, sizeof port) != sizeof port) return 4;
    auto conn = shmarray::test::tcp_accept(listener->get(), 30s);
    if (!conn) return 5;
    auto buffer = touched(size);
    for (int r = 0; r < total; ++r) {
      if (!shmarray::test::recv_all(conn->get(), buffer.get(), size, timeout)) return 6;
      const std::int64_t t_end = now_ns();
      if (!shmarray::test::send_all(conn->get(), &t_end, sizeof t_end, timeout)) return 7;
    }
    return 0;
  }), "fork");
  std::uint16_t port = 0;
  if (::read(port_pipe[0], &port, sizeof port) != sizeof port) die("tcp receiver did not start");
  ::close(port_pipe[0]);
  ::close(port_pipe[1]);
  auto sender = need(shmarray::test::ForkedChild::start([&]() -> int {
    if (!hosts.enter(Host::kA)) return 2;
    auto conn = shmarray::test::tcp_connect(hosts.address(Host::kB), port, 10s);
    if (!conn) return 3;
    auto buffer = touched(size);
    const auto start = std::chrono::steady_clock::now();
    for (int r = 0; r < total; ++r) {
      if (period.count() > 0) std::this_thread::sleep_until(start + r * period);
      const std::int64_t t0 = now_ns();
      std::int64_t t_end = 0;
      const std::uint64_t step = piece == 0 ? size : piece;
      for (std::uint64_t off = 0; off < size; off += step) {
        const std::uint64_t n = std::min(step, size - off);
        if (!shmarray::test::send_all(conn->get(), buffer.get() + off, n, timeout)) return 4;
      }
      if (!shmarray::test::recv_all(conn->get(), &t_end, sizeof t_end, timeout)) return 5;
      shared[r] = t_end - t0;
    }
    return 0;
  }), "fork");
  const auto sent = sender.wait(timeout * total);
  const auto received = receiver.wait(10s);
  if (!sent.ok() || !received.ok()) {
    die("tcp copy of " + human(size) + ": sender " + sent.describe() + ", receiver " +
        received.describe());
  }
  std::vector<double> us;
  for (int r = 2; r < total; ++r) us.push_back(static_cast<double>(shared[r]) / 1e3);
  ::munmap(shared, sizeof(std::int64_t) * total);
  return us;
}

// ucx_perftest tag_lat between the hosts over UCX_TLS=tcp: average one-way latency (µs) of an
// N-byte message (half a ping-pong), or nullopt when it cannot run.
std::optional<double> ucx_tag_lat(const Options& o, const TwoHosts& hosts, const std::string& dev,
                                  std::uint64_t size, int rounds) {
  if (::access(o.ucx_perftest.c_str(), X_OK) != 0) return std::nullopt;
  std::vector<std::string> env{"UCX_TLS=tcp", "UCX_NET_DEVICES=" + dev};
  if (::getenv("UCX_TCP_TX_SEG_SIZE") == nullptr) {
    // The bridge's fragments (ucx_worker.cpp), so that this row is UCX on the bridge's settings.
    env.insert(env.end(), {"UCX_TCP_TX_SEG_SIZE=60K", "UCX_TCP_RX_SEG_SIZE=64K"});
  }
  const std::string port = "13337";
  const std::vector<std::string> args{"-t", "tag_lat", "-s", std::to_string(size), "-n",
                                      std::to_string(rounds), "-w", "2", "-p", port, "-f", "-v"};
  // stdbuf -oL: its "Waiting for connection..." would otherwise sit in a full stdout buffer.
  std::vector<std::string> server_argv{"/usr/bin/stdbuf", "-oL", o.ucx_perftest};
  server_argv.insert(server_argv.end(), args.begin(), args.end());
  auto server = hosts.spawn(Host::kB, server_argv, env);
  // The server prints "Waiting for connection..." once it listens.
  bool listening = false;
  while (auto line = server.read_line(20s)) {
    if (line->find("Waiting for connection") != std::string::npos) {
      listening = true;
      break;
    }
  }
  if (!listening) return std::nullopt;
  std::vector<std::string> client_argv{o.ucx_perftest, hosts.address(Host::kB)};
  client_argv.insert(client_argv.end(), args.begin(), args.end());
  const auto timeout = std::chrono::milliseconds(60'000 + size / 1'000'000 * 100 * rounds);
  const auto result = hosts.run(Host::kA, client_argv, timeout, env);
  const std::string server_out = server.read_all(result.status.ok() ? 10s : 1s);
  (void)server.wait(10s);
  // Last line: iterations,50.0_percentile_lat,avg_lat,overall_lat,avg_bw,overall_bw,...
  std::istringstream lines(result.out);
  std::string last;
  for (std::string line; std::getline(lines, line);) {
    if (!line.empty() && line.find(',') != std::string::npos) last = line;
  }
  if (!result.status.ok() || last.empty() || last.find("iterations") != std::string::npos) {
    std::fprintf(stderr, "ucx_perftest %s: %s\n%s\nserver:\n%s", human(size).c_str(),
                 result.status.describe().c_str(), result.out.c_str(), server_out.c_str());
    return std::nullopt;
  }
  std::vector<std::string> fields;
  std::stringstream ss(last);
  for (std::string f; std::getline(ss, f, ',');) fields.push_back(f);
  if (fields.size() < 4) return std::nullopt;
  // The median (the average is swayed by the connection's first messages and, on a loaded
  // machine, by ucx_perftest's busy polling losing the CPU for whole scheduler ticks).
  return std::strtod(fields[1].c_str(), nullptr);
}

bool shmarrayd_has_mirrors(const std::string& shmarrayd) {
  const auto help = shmarray::test::run({shmarrayd, "--help"}, 10s);
  return help.out.find("--peer-listen") != std::string::npos;
}

// A 0600 key file of 32 random bytes.
std::string write_key(const std::string& path) {
  std::ifstream random("/dev/urandom", std::ios::binary);
  char key[32];
  random.read(key, sizeof key);
  std::ofstream(path, std::ios::binary).write(key, sizeof key);
  ::chmod(path.c_str(), 0600);
  return path;
}

// Two brokers mirroring "bench/" from A to B.
struct MirrorPair {
  std::unique_ptr<shmarray::test::HostBroker> source;
  std::unique_ptr<shmarray::test::HostBroker> mirror;
};

MirrorPair start_mirror_pair(const Options& o, const TwoHosts& hosts, const std::string& dev) {
  ::mkdir(key_dir().c_str(), 0700);
  const std::string key = write_key(key_dir() + "/peer.key");
  // UCX_TLS=tcp: both "hosts" are one machine, where UCX would otherwise pick shared memory or
  // CMA and never touch the link.
  const std::vector<std::string> env{"UCX_TLS=tcp", "UCX_NET_DEVICES=" + dev};
  const std::string endpoint = hosts.address(Host::kA) + ":7700";
  MirrorPair pair;
  pair.source = need(shmarray::test::HostBroker::start(
                         hosts, Host::kA,
                         {.args = {"--peer-listen", endpoint, "--peer-key", key, "--peer-allow",
                                   "bench/"},
                          .env = env},
                         o.shmarrayd),
                     "source broker");
  pair.mirror = need(shmarray::test::HostBroker::start(
                         hosts, Host::kB,
                         {.args = {"--mirror", "bench/=" + endpoint, "--peer-key", key}, .env = env},
                         o.shmarrayd),
                     "mirror broker");
  return pair;
}

// An array of `size` bytes created on broker A, published once, and its mirror opened on B once
// that version has arrived; remove() takes it away on A and waits until B has seen that (the
// next user of the name would otherwise open the old mirror).
struct MirroredArray {
  shmarray::Client a;
  shmarray::Client b;
  std::string name;
  shmarray::Array source;
  shmarray::Array mirror;

  static MirroredArray create(const MirrorPair& pair, std::string name, std::uint64_t size) {
    auto a = must(pair.source->connect(), "connect to the source broker");
    auto b = must(pair.mirror->connect(), "connect to the mirror broker");
    auto source =
        must(a.create(name, {.dtype = "|u1", .shape = {size}, .populate = true}), "create");
    const std::uint64_t v = must(source.publish(), "publish");
    auto mirror = must(b.open(name, shmarray::Access::kReadOnly, {.populate = true, .wait = 60s}),
                       "open the mirror on B");
    if (mirror.version() < v) (void)must(mirror.wait_newer_than(v - 1, 60s), "first version on B");
    return {std::move(a), std::move(b), std::move(name), std::move(source), std::move(mirror)};
  }

  // publish() on A -> wait_newer_than() returning on B, in µs; dies if B skipped the version.
  double publish_and_wait() {
    const std::int64_t t0 = now_ns();
    const std::uint64_t v = must(source.publish(), "publish");
    const std::uint64_t seen = must(mirror.wait_newer_than(v - 1, 120s), "wait on B");
    const std::int64_t t1 = now_ns();
    if (seen != v) die("mirror on B went to version " + std::to_string(seen) + ", not " +
                       std::to_string(v));
    return static_cast<double>(t1 - t0) / 1e3;
  }

  void remove() {
    (void)a.remove(name);
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    while (b.stat(name) && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(5ms);
    }
  }
};

// Latencies (µs) of publish() on A -> wait_newer_than() on B's mirror, after 2 untimed rounds.
// Checks once that the mirror holds the source's bytes.
std::vector<double> mirror_copy(const MirrorPair& pair, std::uint64_t size, int rounds) {
  auto m = MirroredArray::create(pair, "bench/across-" + std::to_string(size), size);
  auto bytes = must(m.source.mutable_bytes(), "bytes");
  for (std::uint64_t i = 0; i < size; ++i) bytes[i] = static_cast<std::byte>(i * 131);
  std::vector<double> us;
  for (int r = 0; r < rounds + 2; ++r) {
    bytes[r % size] = static_cast<std::byte>(r);  // the version differs (not that it matters)
    const double latency = m.publish_and_wait();
    if (r >= 2) us.push_back(latency);
  }
  if (std::memcmp(m.mirror.data(), m.source.data(), size) != 0) die("the mirror's bytes differ");
  m.remove();  // the next block creates the same name again
  return us;
}

// CPU time (user + system, ns) of each shmarray-bridge process on this machine, by pid: in a
// run of this benchmark, the source's and the mirror's.
std::map<int, std::int64_t> bridges_cpu_ns() {
  const long ticks = ::sysconf(_SC_CLK_TCK);
  std::map<int, std::int64_t> cpu;
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    std::ifstream in(entry.path() / "stat");
    std::string line;
    if (!in || !std::getline(in, line)) continue;
    const auto open = line.find('(');
    const auto close = line.rfind(')');
    if (open == std::string::npos || close == std::string::npos) continue;
    if (line.substr(open + 1, close - open - 1) != "shmarray-bridge") continue;
    // After the name: state, then 10 fields to utime (14th) and stime (15th).
    std::stringstream rest(line.substr(close + 2));
    std::string field;
    for (int i = 0; i < 11; ++i) rest >> field;
    long long utime = 0;
    long long stime = 0;
    rest >> utime >> stime;
    cpu[std::atoi(line.c_str())] = (utime + stime) * 1'000'000'000LL / ticks;
  }
  return cpu;
}

// The CPU the bridges present at both samples used between them.
std::int64_t cpu_between(const std::map<int, std::int64_t>& before,
                         const std::map<int, std::int64_t>& after) {
  std::int64_t total = 0;
  for (const auto& [pid, ns] : after) {
    if (auto it = before.find(pid); it != before.end()) total += ns - it->second;
  }
  return total;
}

// The cost of the bridges' polling (spin_policy.hpp): a 4 KiB array published `hz` times a
// second for 3 s (each version awaited on B before the next is due); the bridges' CPU in that
// time, as a share of one core and per version, and the versions' latency.
struct PacedResult {
  double core_share = 0;
  double cpu_us_per_version = 0;
  std::vector<double> latency_us;
};

PacedResult paced_mirror(const MirrorPair& pair, int hz) {
  auto m = MirroredArray::create(pair, "bench/paced", 4096);
  const auto period = std::chrono::nanoseconds(1'000'000'000LL / hz);
  const int versions = 3 * hz;
  PacedResult r;
  const auto cpu0 = bridges_cpu_ns();
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < versions; ++i) {
    std::this_thread::sleep_until(start + i * period);
    r.latency_us.push_back(m.publish_and_wait());
  }
  const double wall_ns = std::chrono::duration<double, std::nano>(
                             std::chrono::steady_clock::now() - start).count();
  const double cpu_ns = static_cast<double>(cpu_between(cpu0, bridges_cpu_ns()));
  r.core_share = cpu_ns / wall_ns;
  r.cpu_us_per_version = cpu_ns / 1e3 / versions;
  m.remove();
  return r;
}

// Streams through the mirror: N messages back to back (messages/s), then one at a time
// (latency, µs). Every message is checked on B (its sequence number in its first element).
struct StreamResult {
  double messages_per_s = 0;
  std::vector<double> latency_us;
};

StreamResult mirror_stream(const MirrorPair& pair, int messages, int rounds, int streams) {
  auto a = must(pair.source->connect(), "connect to the source broker");
  auto b = must(pair.mirror->connect(), "connect to the mirror broker");
  std::vector<shmarray::Publisher> pubs;
  std::vector<shmarray::Subscriber> subs;
  for (int i = 0; i < streams; ++i) {
    const std::string name = "bench/stream" + std::to_string(i);
    pubs.push_back(must(a.create_stream(name, {.slots = 64, .slot_bytes = 64}), "create_stream"));
    subs.push_back(must(b.subscribe(name, {.wait = 60s, .max_held = 1}), "subscribe on B"));
  }
  const std::uint64_t shape[] = {8};
  std::vector<std::uint64_t> next(streams, 1);
  const auto publish = [&](int i) {
    auto loan = must(pubs[i].loan("<u8", shape, 60s), "loan");
    auto values = must(loan.as<std::uint64_t>(), "as");
    values[0] = next[i]++;
    (void)must(pubs[i].publish(std::move(loan)), "publish");
  };
  const auto take = [&](int i) {
    auto sample = must(subs[i].take(60s), "take on B");
    const auto values = must(sample.as<std::uint64_t>(), "as");
    return values[0];
  };
  StreamResult r;
  std::vector<std::uint64_t> taken_last(streams, 0);
  std::thread consumer([&] {
    for (int m = 0; m < messages; ++m) {
      const int i = m % streams;
      const std::uint64_t got = take(i);
      if (got != taken_last[i] + 1) die("stream: message " + std::to_string(got) + " after " +
                                        std::to_string(taken_last[i]));
      taken_last[i] = got;
    }
  });
  const std::int64_t t0 = now_ns();
  for (int m = 0; m < messages; ++m) publish(m % streams);
  consumer.join();
  r.messages_per_s = messages / (static_cast<double>(now_ns() - t0) / 1e9);
  for (int m = 0; m < rounds + 2; ++m) {
    const int i = m % streams;
    const std::int64_t t1 = now_ns();
    publish(i);
    if (take(i) != next[i] - 1) die("stream: a message arrived out of order");
    if (m >= 2) r.latency_us.push_back(static_cast<double>(now_ns() - t1) / 1e3);
  }
  for (int i = 0; i < streams; ++i) (void)a.remove("bench/stream" + std::to_string(i));
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"Mirrors across hosts: publish(A) -> wait(B) vs a plain TCP copy and ucx_perftest"};
  app.add_option("--sizes", o.sizes, "array sizes (1GiB only on machines with room)");
  app.add_option("--links", o.links, "comma-separated, each veth or loopback")
      ->check([](const std::string& value) -> std::string {
        std::stringstream items(value);
        for (std::string link; std::getline(items, link, ',');) {
          if (link != "veth" && link != "loopback") {
            return "unknown link '" + link + "': each is veth or loopback, e.g. veth,loopback";
          }
        }
        return {};
      })
      ->capture_default_str();
  app.add_option("--repeat", o.repeat_small, "timed rounds per size below 64 MiB");
  app.add_option("--repeat-large", o.repeat_large, "timed rounds per size from 64 MiB");
  app.add_option("--blocks", o.blocks, "the rounds of each size in this many turns per method");
  app.add_option("--csv", o.csv, "append rows here");
  app.add_option("--machine", o.machine, "machine label for the CSV");
  app.add_option("--shmarrayd", o.shmarrayd, "the broker to run on both hosts");
  app.add_option("--ucx-perftest", o.ucx_perftest, "ucx_perftest binary (skipped if absent)");
  app.add_flag("!--no-mirror", o.mirror, "only the floors (TCP copy, ucx_perftest)");
  app.add_option("--stream-messages", o.stream_messages,
                 "also a mirrored stream: messages/s of N messages, and per-message latency");
  app.add_option("--streams", o.streams, "with --stream-messages: this many streams, in turn");
  app.add_option("--paced-hz", o.paced_hz,
                 "also publish a 4 KiB array this many times a second for 3 s: its latency against "
                 "a TCP copy at that pace, and the bridges' CPU (share of one core, per version)")
      ->check(CLI::Range(0, 100'000));
  CLI11_PARSE(app, argc, argv);

  Csv csv(o.csv, "machine,link,method,size,rounds,p50_us,p99_us,min_us,gbps,ratio_to_tcp_p50");
  const bool mirrors = o.mirror && shmarrayd_has_mirrors(o.shmarrayd);
  if (o.mirror && !mirrors) {
    std::printf("mirror: skipped (%s has no --peer-listen yet)\n", o.shmarrayd.c_str());
  }
  std::stringstream links(o.links);
  for (std::string link; std::getline(links, link, ',');) {
    const bool loopback = link == "loopback";
    auto hosts = TwoHosts::create({.loopback = loopback});
    if (!hosts) die(hosts.error().reason);
    const std::string dev = loopback ? "lo" : TwoHosts::link_device();
    std::optional<MirrorPair> pair;
    if (mirrors) pair.emplace(start_mirror_pair(o, **hosts, dev));
    for (const std::uint64_t size : parse_sizes(o.sizes)) {
      const int rounds = rounds_for(o, size);
      // Blocks of rounds, the methods taking turns, so that a burst of other work on the machine
      // falls on both rather than on one.
      const int per_block = std::max(1, (rounds + o.blocks - 1) / o.blocks);
      std::vector<double> whole_us;  // one send() per transfer
      std::vector<double> piece_us;  // sends of kTcpPieceBytes
      std::vector<double> mirror_us;
      for (int b = 0; b < o.blocks; ++b) {
        const auto w = tcp_copy(**hosts, size, per_block, 0);
        whole_us.insert(whole_us.end(), w.begin(), w.end());
        if (size > kTcpPieceBytes) {
          const auto p = tcp_copy(**hosts, size, per_block, kTcpPieceBytes);
          piece_us.insert(piece_us.end(), p.begin(), p.end());
        }
        if (pair) {
          const auto m = mirror_copy(*pair, size, per_block);
          mirror_us.insert(mirror_us.end(), m.begin(), m.end());
        }
      }
      const Stats whole = summarise(whole_us);
      const std::optional<Stats> pieces =
          piece_us.empty() ? std::nullopt : std::optional(summarise(piece_us));
      // The floor: the faster way of sending.
      const Stats tcp = pieces && pieces->p50 < whole.p50 ? *pieces : whole;
      const auto report = [&](const std::string& method, const Stats& s) {
        const double gbps = static_cast<double>(size) / (s.p50 * 1e3);
        const double ratio = s.p50 / tcp.p50;
        std::printf("%-9s %-13s %8s  p50 %10.1f us  p99 %10.1f us  %6.2f GB/s  %5.2fx tcp\n",
                    link.c_str(), method.c_str(), human(size).c_str(), s.p50, s.p99, gbps, ratio);
        std::fflush(stdout);
        csv.row(o.machine, link, method, size, s.n, s.p50, s.p99, s.min, gbps, ratio);
      };
      if (pieces) {
        report("tcp one send", whole);
        report("tcp 60K sends", *pieces);
      }
      report("tcp copy", tcp);
      if (auto lat = ucx_tag_lat(o, **hosts, dev, size, rounds)) {
        const double nan = std::numeric_limits<double>::quiet_NaN();  // only its median is known
        report("ucx_perftest", Stats{*lat, nan, nan, static_cast<std::size_t>(rounds)});
      }
      if (pair) report("mirror", summarise(mirror_us));
    }
    if (pair && o.stream_messages > 0) {
      const StreamResult r = mirror_stream(*pair, o.stream_messages, 200, std::max(1, o.streams));
      const Stats s = summarise(r.latency_us);
      const std::string method = o.streams > 1 ? std::to_string(o.streams) + " streams" : "stream";
      std::printf("%-9s %-13s %8s  p50 %10.1f us  p99 %10.1f us  %10.0f messages/s\n",
                  link.c_str(), method.c_str(), "64 B", s.p50, s.p99, r.messages_per_s);
      std::fflush(stdout);
      csv.row(o.machine, link, method, 64, s.n, s.p50, s.p99, s.min, r.messages_per_s / 1e9 * 64,
              std::numeric_limits<double>::quiet_NaN());
    }
    if (pair && o.paced_hz > 0) {
      // The floor at the same pace: between copies the receiver sleeps (and its CPU may idle)
      // as the bridges and the reader do between versions.
      const auto period = std::chrono::nanoseconds(1'000'000'000LL / o.paced_hz);
      const Stats tcp = summarise(tcp_copy(**hosts, 4096, 3 * o.paced_hz, 0, period));
      const PacedResult r = paced_mirror(*pair, o.paced_hz);
      const Stats s = summarise(r.latency_us);
      const std::string method = "paced " + std::to_string(o.paced_hz) + "/s";
      std::printf("%-9s %-13s %8s  p50 %10.1f us  p99 %10.1f us  (tcp copy at that pace)\n",
                  link.c_str(), (method + " tcp").c_str(), "4 KiB", tcp.p50, tcp.p99);
      std::printf("%-9s %-13s %8s  p50 %10.1f us  p99 %10.1f us  %5.2fx tcp  bridges' CPU %5.1f%% "
                  "of a core, %6.1f us per version\n",
                  link.c_str(), method.c_str(), "4 KiB", s.p50, s.p99, s.p50 / tcp.p50,
                  r.core_share * 100, r.cpu_us_per_version);
      std::fflush(stdout);
      csv.row(o.machine, link, method + " tcp copy", 4096, tcp.n, tcp.p50, tcp.p99, tcp.min,
              4096 / (tcp.p50 * 1e3), 1.0);
      csv.row(o.machine, link, method + " mirror", 4096, s.n, s.p50, s.p99, s.min,
              4096 / (s.p50 * 1e3), s.p50 / tcp.p50);
    }
  }
  std::error_code ignored;
  std::filesystem::remove_all(key_dir(), ignored);
  return 0;
}
