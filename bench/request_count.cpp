// Instruction counts of the request path (docs/benchmarks.md, "Request path"): one client doing
// --count operations of one kind, for bench/count_request_path.sh to run under callgrind (this VM
// has no hardware performance counters, so `perf stat -e instructions:u` reports "not
// supported"; callgrind counts user-space instructions exactly, and the same on any machine).
//
//   bench_request_count --socket S --op prepare|create|open-ro|open-rw|stat|remove|echo --count N
//
// `prepare` makes the arrays that open, stat and remove need (--count arrays of --elements
// float64, named count/a0...) and leaves; a second process then runs the --count operations
// between CALLGRIND_ZERO_STATS and CALLGRIND_DUMP_STATS_AT(op), so its dump holds exactly those
// operations and it maps nothing before (a second open in one process would reuse the mapping).
// Both leave with _exit: no Array is dropped, so no CloseRequest reaches the broker. The broker's
// count per operation is the difference between a run with --count N and one with --count 0
// (the script).
// `echo`: the 64-byte round trip of bench_control_plane against a forked one-thread epoll server
// (no broker), the baseline of the ratios. Outside valgrind the markers do nothing.
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <valgrind/callgrind.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <string>
#include <vector>

#include "bench_util.hpp"
#include "shmarray/client.hpp"

namespace {

using namespace bench;

void echo(int count) {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) die("socketpair");
  const pid_t child = ::fork();
  if (child == 0) {  // the server of bench_control_plane's baseline
    ::close(sv[0]);
    const int ep = ::epoll_create1(EPOLL_CLOEXEC);
    epoll_event ev{.events = EPOLLIN, .data = {.fd = sv[1]}};
    ::epoll_ctl(ep, EPOLL_CTL_ADD, sv[1], &ev);
    char buf[64];
    epoll_event events[1];
    for (;;) {
      if (::epoll_wait(ep, events, 1, -1) != 1) continue;
      if (!read_all(sv[1], buf, sizeof buf) || !write_all(sv[1], buf, sizeof buf)) ::_exit(0);
    }
  }
  ::close(sv[1]);
  char buf[64] = {};
  CALLGRIND_ZERO_STATS;
  for (int i = 0; i < count; ++i) {
    if (!write_all(sv[0], buf, sizeof buf) || !read_all(sv[0], buf, sizeof buf)) die("echo");
  }
  CALLGRIND_DUMP_STATS_AT("echo");
  ::close(sv[0]);
  ::waitpid(child, nullptr, 0);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"request-path instruction counts (run under callgrind by count_request_path.sh)"};
  std::string socket;
  std::string op = "open-ro";
  int count = 1000;
  std::uint64_t elements = 1000;
  app.add_option("--socket", socket, "broker socket (default: the standard path rule)");
  app.add_option("--op", op, "create, open-ro, open-rw, stat, remove or echo")->capture_default_str();
  app.add_option("--count", count, "operations measured")->capture_default_str();
  app.add_option("--elements", elements, "float64 elements per array")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  if (op == "echo") {
    echo(count);
    return 0;
  }
  auto client = must(shmarray::Client::connect({.socket_path = socket}), "connect");
  const shmarray::ArraySpec spec{.dtype = "<f8", .shape = {elements}};
  std::vector<std::string> names;
  for (int i = 0; i < count; ++i) names.push_back("count/a" + std::to_string(i));
  std::vector<shmarray::Array> keep;
  keep.reserve(names.size());
  CALLGRIND_ZERO_STATS;
  for (const auto& n : names) {
    if (op == "create" || op == "prepare") {
      keep.push_back(must(client.create(n, spec), "create"));
    } else if (op == "open-ro") {
      keep.push_back(must(client.open(n, shmarray::Access::kReadOnly), "open"));
    } else if (op == "open-rw") {
      keep.push_back(must(client.open(n, shmarray::Access::kReadWrite), "open"));
    } else if (op == "stat") {
      (void)must(client.stat(n), "stat");
    } else if (op == "remove") {
      must(client.remove(n), "remove");
    } else {
      die("unknown --op " + op);
    }
  }
  CALLGRIND_DUMP_STATS_AT(op.c_str());
  std::fflush(nullptr);
  ::_exit(0);  // no Array dropped: no CloseRequest counted on either side
}
