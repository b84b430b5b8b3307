// Stream handoff latency and rate (docs/benchmarks.md "Streams"): a publisher hands a message of
// N bytes to 1 or 4 subscriber processes, each of which takes it and reads all of it. Methods, in
// the same run and interleaved round by round:
//   stream       loan (filled before the clock) -> publish -> take -> read all -> release
//   mapped       one long-lived array: write (before the clock) -> publish() -> wait_newer_than
//   socket copy  write() of the bytes over a Unix socketpair -> read() into a private buffer
//   bare spin    the bytes in shared memory, a release-store of a counter, consumers spin on it
//   local read   no handoff: the publisher reads a private buffer it has just written (the read
//                loop's own speed, the memory-bandwidth floor of "read all"; --methods "local")
// The clock runs from the hand-over to the last subscriber's end timestamp (CLOCK_MONOTONIC,
// written into a shared page). Every subscriber acknowledges through that page (the same spin
// for every method), and the publisher starts the next round when all have. "hot": the next round
// follows at once (subscribers are still polling); "cold": 1 ms apart (subscribers that sleep
// after a short spin are asleep, the bare spin keeps spinning). Minor page faults per message are
// counted with getrusage on both sides over the timed rounds.
//
// --pin (default): when there is a core for each process, the publisher runs on core 0 and
// subscriber i on core i + 1, for every method alike. Unpinned, a loaded machine's scheduler
// sometimes puts a subscriber on the publisher's core: a hot stream subscriber then spins out
// its 50 us and sleeps, and the round measures a futex wake-up, not a handoff.
#include <sched.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <thread>

#include "bench_util.hpp"
#include "shmarray/shmarray.hpp"

namespace {

using namespace bench;
using namespace std::chrono_literals;

constexpr int kMaxSubs = 4;

struct alignas(64) Slot {
  std::atomic<std::uint64_t> ack{0};
  std::int64_t t_end = 0;
  std::uint64_t value = 0;
  long minflt = 0;
};

struct Shared {
  alignas(64) std::atomic<std::uint64_t> round{0};  // bare spin: the round being handed over
  alignas(64) std::atomic<std::uint64_t> stop{0};
  Slot subs[kMaxSubs];
};

void pin_to(int core) {  // -1: any core (a child of the pinned publisher)
  cpu_set_t set;
  CPU_ZERO(&set);
  for (unsigned c = 0; c < cores(); ++c) {
    if (core < 0 || static_cast<unsigned>(core) == c) CPU_SET(c, &set);
  }
  if (::sched_setaffinity(0, sizeof set, &set) != 0) std::perror("sched_setaffinity");
}

long minor_faults() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  return u.ru_minflt;
}

struct Options {
  std::string socket;
  std::string machine = "this machine";
  std::string csv;
  std::string methods;  // only methods whose names contain one of these (comma-separated)
  int rounds_small = 2000;
  int rounds_large = 20;
  bool pin = true;
};

enum class Kind { kStream, kMapped, kSocket, kSpin, kLocal };
const char* kind_name(Kind k) {
  switch (k) {
    case Kind::kStream: return "stream";
    case Kind::kMapped: return "mapped array";
    case Kind::kSocket: return "socket copy";
    case Kind::kSpin: return "bare spin";
    case Kind::kLocal: return "local read";
  }
  return "?";
}

// One subscriber process: receives `rounds` messages the way `kind` does, reports each.
[[noreturn]] void subscriber(Kind kind, int index, const Options& o, const std::string& name,
                             std::uint64_t bytes, Shared* shared, const std::byte* spin_data,
                             int socket_fd, int rounds) {
  std::vector<std::byte> buffer(kind == Kind::kSocket ? bytes : 0);
  std::memset(buffer.data(), 0, buffer.size());
  std::optional<shmarray::Client> client;
  std::optional<shmarray::Subscriber> sub;
  std::optional<shmarray::Array> array;
  if (kind == Kind::kStream || kind == Kind::kMapped) {
    client.emplace(must(shmarray::Client::connect({.socket_path = o.socket}), "connect"));
  }
  if (kind == Kind::kStream) {
    sub.emplace(must(client->subscribe(name, {.wait = 10s, .max_held = 1}), "subscribe"));
  }
  if (kind == Kind::kMapped) {
    array.emplace(must(client->open(name, shmarray::Access::kReadOnly, {.populate = true}), "open"));
  }
  Slot& me = shared->subs[index];
  me.ack.store(~0ull, std::memory_order_release);  // ready
  std::uint64_t version = array ? array->version() : 0;
  const long faults0 = minor_faults();
  for (int r = 1; r <= rounds; ++r) {
    std::uint64_t value = 0;
    switch (kind) {
      case Kind::kStream: {
        auto s = must(sub->take(std::chrono::seconds(60)), "take");
        value = sum_words(s.bytes().data(), s.bytes().size());
        break;
      }
      case Kind::kMapped:
        version = must(array->wait_newer_than(version, std::chrono::seconds(60)), "wait");
        value = sum_words(array->bytes().data(), bytes);
        break;
      case Kind::kSocket:
        if (!read_all(socket_fd, buffer.data(), bytes)) die("socket read");
        value = sum_words(buffer.data(), bytes);
        break;
      case Kind::kSpin:
        while (shared->round.load(std::memory_order_acquire) < static_cast<std::uint64_t>(r)) {
        }
        value = sum_words(spin_data, bytes);
        break;
    }
    me.t_end = now_ns();
    me.value = value;
    me.minflt = minor_faults() - faults0;
    me.ack.store(static_cast<std::uint64_t>(r), std::memory_order_release);
  }
  std::_Exit(0);
}

struct Result {
  std::vector<double> us;
  double seconds = 0;
  double pub_faults = 0;
  double sub_faults = 0;
};

Result run_method(Kind kind, int subs, bool hot, std::uint64_t bytes, int rounds,
                  const Options& o, shmarray::Client& client) {
  static int counter = 0;
  const std::string name = "bench/stream-" + std::to_string(::getpid()) + "-" +
                           std::to_string(++counter);
  auto* shared = static_cast<Shared*>(::mmap(nullptr, sizeof(Shared), PROT_READ | PROT_WRITE,
                                             MAP_SHARED | MAP_ANONYMOUS, -1, 0));
  new (shared) Shared();
  std::byte* spin_data = nullptr;
  if (kind == Kind::kSpin) {
    spin_data = static_cast<std::byte*>(::mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                                               MAP_SHARED | MAP_ANONYMOUS | MAP_POPULATE, -1, 0));
  }
  std::optional<shmarray::Publisher> pub;
  std::optional<shmarray::Array> array;
  if (kind == Kind::kStream) {
    pub.emplace(must(client.create_stream(name, {.slots = 4, .slot_bytes = bytes}), "create"));
  }
  if (kind == Kind::kMapped) {
    array.emplace(must(client.create(name, {.dtype = "|u1", .shape = {bytes}}), "create"));
  }
  std::vector<int> sockets;
  std::vector<std::byte> private_data(kind == Kind::kSocket || kind == Kind::kLocal ? bytes : 0);
  std::vector<pid_t> children;
  for (int i = 0; i < (kind == Kind::kLocal ? 0 : subs); ++i) {
    int sv[2] = {-1, -1};
    if (kind == Kind::kSocket && ::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
      die("socketpair");
    }
    const pid_t pid = ::fork();
    if (pid == 0) {
      if (o.pin) pin_to(static_cast<unsigned>(subs) + 1 <= cores() ? i + 1 : -1);
      subscriber(kind, i, o, name, bytes, shared, spin_data, sv[1], rounds);
    }
    if (kind == Kind::kSocket) {
      ::close(sv[1]);
      sockets.push_back(sv[0]);
    }
    children.push_back(pid);
  }
  for (int i = 0; i < static_cast<int>(children.size()); ++i) {
    while (shared->subs[i].ack.load(std::memory_order_acquire) != ~0ull) std::this_thread::yield();
    shared->subs[i].ack.store(0);
  }
  Result res;
  const long faults0 = minor_faults();
  const auto t_start = Clock::now();
  for (int r = 1; r <= rounds; ++r) {
    const std::uint64_t marker = 1000 + static_cast<std::uint64_t>(r);
    if (!hot) std::this_thread::sleep_for(1ms);
    std::optional<shmarray::Loan> loan;
    // The producer has the data before the clock starts: in the slot, array, buffer or page.
    switch (kind) {
      case Kind::kStream: {
        const std::uint64_t shape[] = {bytes};
        loan.emplace(must(pub->loan("|u1", shape, std::chrono::seconds(60)), "loan"));
        fill(loan->bytes(), marker);
        break;
      }
      case Kind::kMapped: fill(must(array->mutable_bytes(), "bytes"), marker); break;
      case Kind::kSocket:
      case Kind::kLocal: fill(private_data, marker); break;
      case Kind::kSpin: fill({spin_data, bytes}, marker); break;
    }
    if (kind == Kind::kLocal) {
      const std::int64_t t0 = now_ns();
      const std::uint64_t value = sum_words(private_data.data(), bytes);
      const std::int64_t t1 = now_ns();
      if (value != expected_sum(bytes, marker)) die("local read: wrong data");
      res.us.push_back(static_cast<double>(t1 - t0) / 1000.0);
      continue;
    }
    const std::int64_t t0 = now_ns();
    switch (kind) {
      case Kind::kStream: must(pub->publish(std::move(*loan)), "publish"); break;
      case Kind::kMapped: must(array->publish(), "publish"); break;
      case Kind::kSocket:
        for (int fd : sockets) {
          if (!write_all(fd, private_data.data(), bytes)) die("socket write");
        }
        break;
      case Kind::kSpin: shared->round.store(static_cast<std::uint64_t>(r), std::memory_order_release);
        break;
      case Kind::kLocal: break;
    }
    std::int64_t t_end = 0;
    for (int i = 0; i < subs; ++i) {
      Slot& s = shared->subs[i];
      while (s.ack.load(std::memory_order_acquire) < static_cast<std::uint64_t>(r)) {
      }
      if (s.value != expected_sum(bytes, marker)) die(std::string(kind_name(kind)) + ": wrong data");
      t_end = std::max(t_end, s.t_end);
    }
    res.us.push_back(static_cast<double>(t_end - t0) / 1000.0);
  }
  res.seconds = std::chrono::duration<double>(Clock::now() - t_start).count();
  res.pub_faults = static_cast<double>(minor_faults() - faults0) / rounds;
  for (int i = 0; i < static_cast<int>(children.size()); ++i) {
    res.sub_faults = std::max(res.sub_faults, static_cast<double>(shared->subs[i].minflt) / rounds);
  }
  for (pid_t pid : children) {
    int status = 0;
    ::waitpid(pid, &status, 0);
  }
  for (int fd : sockets) ::close(fd);
  if (pub || array) (void)client.remove(name);
  if (spin_data) ::munmap(spin_data, bytes);
  ::munmap(shared, sizeof(Shared));
  return res;
}

bool wanted(const std::string& methods, const std::string& name) {
  if (methods.empty()) return true;
  std::size_t start = 0;
  while (start <= methods.size()) {
    const std::size_t end = std::min(methods.find(',', start), methods.size());
    const std::string part = methods.substr(start, end - start);
    if (!part.empty() && name.find(part) != std::string::npos) return true;
    start = end + 1;
  }
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  std::string sizes = "64,4KiB,1MiB,64MiB";
  std::string modes = "hot,cold";
  CLI::App app{"stream handoff latency vs the mapped array, a socket copy and a bare spin"};
  app.add_option("--socket", o.socket, "broker socket")->required();
  app.add_option("--sizes", sizes, "message sizes")->capture_default_str();
  app.add_option("--modes", modes, "hot (back to back) and/or cold (1 ms apart)")
      ->capture_default_str();
  app.add_option("--rounds", o.rounds_small, "rounds below 1 MiB")->capture_default_str();
  app.add_option("--rounds-large", o.rounds_large, "rounds from 64 MiB")->capture_default_str();
  app.add_option("--machine", o.machine, "label for the table and CSV");
  app.add_option("--csv", o.csv, "append raw results here");
  app.add_option("--pin", o.pin, "publisher on core 0, subscriber i on core i+1 (when enough cores)")
      ->capture_default_str();
  app.add_option("--methods", o.methods,
                 "only these methods (comma-separated parts of: stream, mapped array, socket copy, "
                 "bare spin, local read)");
  CLI11_PARSE(app, argc, argv);
  if (o.pin) pin_to(0);  // the publisher; subscribers pin themselves after fork
  auto client = must(shmarray::Client::connect({.socket_path = o.socket}), "connect");
  Csv csv(o.csv, "machine,method,subscribers,mode,bytes,rounds,p50_us,p99_us,msgs_per_s,"
                 "pub_minflt_per_msg,sub_minflt_per_msg");
  struct Case {
    Kind kind;
    int subs;
  };
  const std::vector<Case> cases = {{Kind::kSpin, 1},   {Kind::kStream, 1}, {Kind::kMapped, 1},
                                   {Kind::kSocket, 1}, {Kind::kLocal, 1},  {Kind::kSpin, 4},
                                   {Kind::kStream, 4}};
  std::printf("\nStream handoff (%s): publish -> every subscriber has read all of it\n",
              o.machine.c_str());
  std::printf("%-6s %-9s %-14s %4s %10s %10s %12s %9s %9s %8s\n", "mode", "size", "method", "subs",
              "p50 (us)", "p99 (us)", "msgs/s", "pub flt", "sub flt", "x spin");
  for (const std::string& mode : {std::string("hot"), std::string("cold")}) {
    if (modes.find(mode) == std::string::npos) continue;
    for (const std::uint64_t bytes : parse_sizes(sizes)) {
      int rounds = bytes >= (64ull << 20) ? o.rounds_large
                   : bytes >= (1ull << 20) ? std::max(20, o.rounds_small / 10)
                                           : o.rounds_small;
      if (mode == "cold") rounds = std::max(10, rounds / 4);
      double spin_p50[kMaxSubs + 1] = {};
      for (const Case& c : cases) {
        // Spinning subscribers need a core each besides the publisher's: with fewer, the bare
        // spin measures the scheduler, not a handoff (and takes minutes). Not run then.
        if (!wanted(o.methods, kind_name(c.kind))) continue;
        if (c.kind == Kind::kSpin && static_cast<unsigned>(c.subs) + 1 > cores()) {
          std::printf("%-6s %-9s %-14s %4d   (skipped: needs %d cores)\n", mode.c_str(),
                      human(bytes).c_str(), kind_name(c.kind), c.subs, c.subs + 1);
          continue;
        }
        const Result r = run_method(c.kind, c.subs, mode == "hot", bytes, rounds, o, client);
        const Stats s = summarise(r.us);
        if (c.kind == Kind::kSpin) spin_p50[c.subs] = s.p50;
        const double rate = rounds / r.seconds;
        std::printf("%-6s %-9s %-14s %4d %10.2f %10.2f %12.0f %9.3f %9.3f %7.2fx\n", mode.c_str(),
                    human(bytes).c_str(), kind_name(c.kind), c.subs, s.p50, s.p99, rate,
                    r.pub_faults, r.sub_faults,
                    spin_p50[c.subs] > 0 ? s.p50 / spin_p50[c.subs] : 0.0);
        std::fflush(stdout);
        csv.row(o.machine, kind_name(c.kind), c.subs, mode, bytes, rounds, s.p50, s.p99, rate,
                r.pub_faults, r.sub_faults);
      }
    }
  }
  return 0;
}
