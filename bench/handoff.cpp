// Handoff latency of an array between two processes, C++: shmarray against copying the bytes.
//
//   unix socket copy (baseline)   the producer write()s its private buffer into a socketpair,
//                                 the consumer read()s it into its own buffer, allocated once
//                                 and touched again before each round (the copy's best case)
//   pipe copy                     the same through a pipe
//   (both copies get 1 MiB of kernel buffer where allowed: pipe capacity, socket buffers)
//   shmarray new array            the producer created and filled an array; the handoff sends
//                                 its name over a pipe, the consumer open()s it (broker round
//                                 trip + descriptor + mmap) and uses it: a fresh mapping, so the
//                                 first touch of each page faults
//   shmarray new array, populate  the same with OpenOptions::populate (MADV_POPULATE_READ: all
//                                 page-table entries in one call); read_all only
//   shmarray mapped array         the recommended steady state: both keep the array mapped, the
//                                 producer rewrites it in place and publish()es, the consumer
//                                 wakes in wait_newer_than() and uses it
//
// "Uses it" is read_all (sums every 64-bit word) or touch_one (reads element 0), see
// handoff_common.hpp. Needs a running shmarrayd (--socket).
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <CLI/CLI.hpp>
#include <memory>
#include <optional>
#include <shmarray/shmarray.hpp>

#include "handoff_common.hpp"

namespace {

using namespace bench;

struct Channels {
  Pipe cmd;     // producer -> consumer commands
  Pipe report;  // consumer -> producer reports
  Pipe data;    // pipe-copy data
  int sock[2];  // socket-copy data: [0] producer, [1] consumer
};

std::byte* private_buffer(std::uint64_t bytes) {
  void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) die("cannot allocate " + human(bytes));
  std::memset(p, 0, bytes);  // pre-fault: the copy path's best case (a reused buffer)
  return static_cast<std::byte*>(p);
}

// --- consumer process ---------------------------------------------------------------------------

[[noreturn]] void consumer_main(const Channels& ch, const std::string& socket,
                                std::uint64_t max_bytes) {
  std::optional<shmarray::Client> client;
  std::byte* buffer = nullptr;
  std::optional<shmarray::Array> kept;
  std::optional<shmarray::Subscriber> subscriber;
  const auto connect = [&]() -> shmarray::Client& {
    if (!client) client = must(shmarray::Client::connect({.socket_path = socket}), "consumer");
    return *client;
  };
  for (;;) {
    const auto c = recv_pod<Command>(ch.cmd.r);
    Report r;
    switch (c.op) {
      case Command::kStop:
        ::_exit(0);
      case Command::kRecvSocket:
      case Command::kRecvPipe: {
        if (!buffer) buffer = private_buffer(max_bytes);
        // Touch the part of the buffer this round uses, then say so (untimed): on a VM whose
        // host reclaims memory the guest has not used for a while, a buffer left idle between
        // rounds faults again, which would charge the copy path for the VM's bookkeeping.
        std::memset(buffer, 0, c.bytes);
        send_pod(ch.report.w, Report{});
        const int fd = c.op == Command::kRecvSocket ? ch.sock[1] : ch.data.r;
        if (!read_all(fd, buffer, c.bytes)) die("consumer: short read");
        r.value = consume(buffer, c.bytes, c.use);
        r.t_end_ns = now_ns();
        break;
      }
      case Command::kOpen:
      case Command::kOpenPopulate: {
        auto a = must(connect().open(c.name, shmarray::Access::kReadOnly,
                                     {.populate = c.op == Command::kOpenPopulate}),
                      "consumer open");
        r.value = consume(a.bytes().data(), c.bytes, c.use);
        r.t_end_ns = now_ns();
        break;  // the mapping goes here, after the clock stopped
      }
      case Command::kMapKeep:
        kept = must(connect().open(c.name, shmarray::Access::kReadOnly), "consumer open");
        r.value = consume(kept->bytes().data(), c.bytes, Use::kReadAll);  // fault it in once
        break;
      case Command::kWaitMapped: {
        must(kept->wait_newer_than(c.version, std::chrono::seconds(30)), "consumer wait");
        r.value = consume(kept->bytes().data(), c.bytes, c.use);
        r.t_end_ns = now_ns();
        break;
      }
      case Command::kUnmap:
        kept.reset();
        subscriber.reset();
        break;
      case Command::kSubscribe:
        subscriber = must(connect().subscribe(c.name, {.max_held = 1}), "consumer subscribe");
        break;
      case Command::kTake: {  // a stream: take, use in place, release (after the clock)
        auto sample = must(subscriber->take(std::chrono::seconds(30)), "consumer take");
        r.value = consume(sample.bytes().data(), c.bytes, c.use);
        r.t_end_ns = now_ns();
        break;
      }
      default:
        die("consumer: unknown command");
    }
    send_pod(ch.report.w, r);
  }
}

// --- producer side ------------------------------------------------------------------------------

class Producer {
 public:
  Producer(const Channels& ch, shmarray::Client& client, std::uint64_t max_bytes)
      : ch_(ch), client_(client), max_bytes_(max_bytes) {}

  Report ask(Command c) {
    send_pod(ch_.cmd.w, c);
    return recv_pod<Report>(ch_.report.r);
  }

  double copy_round(bool socket, std::uint64_t bytes, Use use, std::uint64_t marker) {
    if (!src_) src_ = private_buffer(max_bytes_);
    fill({src_, bytes}, marker);
    send_pod(ch_.cmd.w, Command{.op = socket ? Command::kRecvSocket : Command::kRecvPipe,
                                .use = use, .bytes = bytes, .marker = marker});
    recv_pod<Report>(ch_.report.r);  // the consumer's buffer is ready
    settle(bytes);
    const std::int64_t t0 = now_ns();
    if (!write_all(socket ? ch_.sock[0] : ch_.data.w, src_, bytes)) die("producer: short write");
    const Report r = recv_pod<Report>(ch_.report.r);
    check_value(socket ? "socket copy" : "pipe copy", r, bytes, marker, use);
    return static_cast<double>(r.t_end_ns - t0) / 1e3;
  }

  double new_array_round(bool populate, std::uint64_t bytes, Use use, std::uint64_t marker) {
    Command c{.op = populate ? Command::kOpenPopulate : Command::kOpen, .use = use,
              .bytes = bytes, .marker = marker};
    const std::string name = "bench/handoff/" + std::to_string(::getpid()) + "/" +
                             std::to_string(marker);
    std::snprintf(c.name, sizeof c.name, "%s", name.c_str());
    double us;
    {
      auto a = must(client_.create(name, spec(bytes)), "create");
      fill(must(a.mutable_bytes()), marker);
      settle(bytes);
      const std::int64_t t0 = now_ns();
      send_pod(ch_.cmd.w, c);  // the handoff message: the array's name
      const Report r = recv_pod<Report>(ch_.report.r);
      check_value("shmarray new array", r, bytes, marker, use);
      us = static_cast<double>(r.t_end_ns - t0) / 1e3;
    }
    must(client_.remove(name), "remove");
    return us;
  }

  void mapped_setup(std::uint64_t bytes) {
    Command c{.op = Command::kMapKeep, .bytes = bytes};
    const std::string name = "bench/handoff/" + std::to_string(::getpid()) + "/mapped";
    std::snprintf(c.name, sizeof c.name, "%s", name.c_str());
    mapped_.emplace(must(client_.create(name, spec(bytes)), "create"));
    fill(must(mapped_->mutable_bytes()), 0);
    ask(c);
    mapped_name_ = name;
  }

  double mapped_round(std::uint64_t bytes, Use use, std::uint64_t marker) {
    fill(must(mapped_->mutable_bytes()), marker);  // the producer rewrites in place
    send_pod(ch_.cmd.w, Command{.op = Command::kWaitMapped, .use = use, .bytes = bytes,
                                .marker = marker, .version = mapped_->version()});
    settle(bytes);
    const std::int64_t t0 = now_ns();
    must(mapped_->publish(), "publish");
    const Report r = recv_pod<Report>(ch_.report.r);
    check_value("shmarray mapped array", r, bytes, marker, use);
    return static_cast<double>(r.t_end_ns - t0) / 1e3;
  }

  void stream_setup(std::uint64_t bytes) {
    Command c{.op = Command::kSubscribe, .bytes = bytes};
    stream_name_ = "bench/handoff/" + std::to_string(::getpid()) + "/stream";
    std::snprintf(c.name, sizeof c.name, "%s", stream_name_.c_str());
    publisher_.emplace(must(client_.create_stream(stream_name_, {.slots = 4, .slot_bytes = bytes}),
                            "create_stream"));
    ask(c);
  }

  double stream_round(std::uint64_t bytes, Use use, std::uint64_t marker) {
    const std::uint64_t shape[] = {bytes / 8};
    auto loan = must(publisher_->loan("<u8", shape, std::chrono::seconds(30)), "loan");
    fill(loan.bytes(), marker);  // the producer writes the message in the slot
    send_pod(ch_.cmd.w, Command{.op = Command::kTake, .use = use, .bytes = bytes,
                                .marker = marker});
    settle(bytes);
    const std::int64_t t0 = now_ns();
    must(publisher_->publish(std::move(loan)), "publish");
    const Report r = recv_pod<Report>(ch_.report.r);
    check_value("shmarray stream", r, bytes, marker, use);
    return static_cast<double>(r.t_end_ns - t0) / 1e3;
  }

  void stream_teardown() {
    ask(Command{.op = Command::kUnmap});
    publisher_.reset();
    must(client_.remove(stream_name_), "remove");
  }

  void mapped_teardown() {
    ask(Command{.op = Command::kUnmap});
    mapped_.reset();
    must(client_.remove(mapped_name_), "remove");
  }

 private:
  static shmarray::ArraySpec spec(std::uint64_t bytes) {
    return {.dtype = "<u8", .shape = {bytes / 8}};
  }
  const Channels& ch_;
  shmarray::Client& client_;
  std::uint64_t max_bytes_;
  std::byte* src_ = nullptr;
  std::optional<shmarray::Array> mapped_;
  std::string mapped_name_;
  std::optional<shmarray::Publisher> publisher_;
  std::string stream_name_;
};

}  // namespace

int main(int argc, char** argv) {
  std::string socket, sizes = "4KiB,1MiB,64MiB,1GiB", uses = "read_all,touch_one", only;
  HandoffOptions o{.machine = "this machine"};
  CLI::App app{"shmarray handoff latency vs copying through a socket or a pipe (needs shmarrayd)"};
  app.add_option("--socket", socket, "broker socket (default: the standard path rule)");
  app.add_option("--sizes", sizes, "array sizes")->capture_default_str();
  app.add_option("--repeat", o.repeat, "rounds per method below 64 MiB")->capture_default_str();
  app.add_option("--repeat-large", o.repeat_large, "rounds from 64 MiB")->capture_default_str();
  app.add_option("--repeat-huge", o.repeat_huge, "rounds from 1 GiB")->capture_default_str();
  app.add_option("--uses", uses, "read_all, touch_one or both")->capture_default_str();
  app.add_option("--methods", only, "only methods whose names contain this text");
  app.add_option("--csv", o.csv, "append raw rounds to this CSV file");
  app.add_option("--machine", o.machine, "label for the table")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  o.sizes = parse_sizes(sizes);
  for (auto& s : o.sizes) s = std::max<std::uint64_t>(8, s - s % 8);
  o.uses.clear();
  if (uses.find("read_all") != std::string::npos) o.uses.push_back(Use::kReadAll);
  if (uses.find("touch_one") != std::string::npos) o.uses.push_back(Use::kTouchOne);
  const std::uint64_t max_bytes = *std::max_element(o.sizes.begin(), o.sizes.end());

  Channels ch{.cmd = Pipe::make(), .report = Pipe::make(), .data = Pipe::make(), .sock = {}};
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ch.sock) != 0) die("socketpair");
  // Both copy paths get 1 MiB of kernel buffer (their best case: fewer wake-ups per copy):
  // the largest unprivileged pipe size, and socket buffers forced past wmem_max where allowed.
  ::fcntl(ch.data.w, F_SETPIPE_SZ, 1 << 20);
  for (int fd : ch.sock) {
    const int bytes = 1 << 20;
    for (int opt : {SO_SNDBUF, SO_RCVBUF}) {
      const int force = opt == SO_SNDBUF ? SO_SNDBUFFORCE : SO_RCVBUFFORCE;
      if (::setsockopt(fd, SOL_SOCKET, force, &bytes, sizeof bytes) != 0) {
        ::setsockopt(fd, SOL_SOCKET, opt, &bytes, sizeof bytes);
      }
    }
  }
  const pid_t consumer = ::fork();  // before anything big is mapped or any connection opened
  if (consumer == 0) consumer_main(ch, socket, max_bytes);

  auto client = must(shmarray::Client::connect({.socket_path = socket}), "producer");
  Producer p(ch, client, max_bytes);
  const std::vector<Method> methods{
      {.name = "unix socket copy (baseline)",
       .round = [&](auto b, auto u, auto m) { return p.copy_round(true, b, u, m); }},
      {.name = "pipe copy",
       .round = [&](auto b, auto u, auto m) { return p.copy_round(false, b, u, m); }},
      {.name = "shmarray new array (open + fresh mapping)",
       .frees_memory = true,
       .round = [&](auto b, auto u, auto m) { return p.new_array_round(false, b, u, m); }},
      {.name = "shmarray new array, open with populate",
       .touch_one = false,
       .frees_memory = true,
       .round = [&](auto b, auto u, auto m) { return p.new_array_round(true, b, u, m); }},
      {.name = "shmarray mapped array (publish -> wait)",
       .setup = [&](auto b) { p.mapped_setup(b); },
       .teardown = [&](auto) { p.mapped_teardown(); },
       .round = [&](auto b, auto u, auto m) { return p.mapped_round(b, u, m); }},
      {.name = "shmarray stream (loan -> publish -> take)",
       .setup = [&](auto b) { p.stream_setup(b); },
       .teardown = [&](auto) { p.stream_teardown(); },
       .round = [&](auto b, auto u, auto m) { return p.stream_round(b, u, m); }},
  };
  std::vector<Method> chosen;
  for (const auto& m : methods) {
    if (only.empty() || m.name.find(only) != std::string::npos) chosen.push_back(m);
  }
  run_handoffs(chosen, o);
  send_pod(ch.cmd.w, Command{.op = Command::kStop});
  ::waitpid(consumer, nullptr, 0);
  return 0;
}
