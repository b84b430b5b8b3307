// shmarray_stream_helper: real publisher / subscriber / crasher programs that the stream tests
// (C++ and Python) exec as separate processes. Usage: shmarray_stream_helper COMMAND SOCKET NAME
// [ARGS...]; exit 0 on success, 1 on a failed check or error (message on stderr), 2 on bad usage.
//
// Message k (k = its sequence number) is "<u4" of shape (1 + k % 13, 1 + k % 7) with element i =
// k * 2654435761 + i (mod 2^32): every reader can check every message it takes. The last message
// of a run is the end marker: "|u1" of shape (1,) holding 0xff.
#include <poll.h>
#include <sys/mman.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "shmarray/shmarray.hpp"

namespace {

using namespace std::chrono_literals;
using shmarray::Client;

constexpr const char* kUsage = R"(usage: shmarray_stream_helper COMMAND SOCKET NAME [ARGS...]
  pub SOCK NAME COUNT OVERFLOW SLOTS HISTORY PAUSE_US
      create the stream (block|drop_oldest), print "created"; COUNT > 0: wait for stdin EOF, then
      publish COUNT messages; COUNT = 0: publish until stdin EOF. Then the end marker. Prints
      "published LAST checksum SUM".
  sub SOCK NAME MAX_HELD DELAY_US STRICT
      subscribe (waiting up to 10 s), print "subscribed", take until the end marker (sleeping
      DELAY_US after each take), checking contents and order (STRICT=1: every seq exactly once).
      Prints "taken T missed M first F last L checksum SUM".
  hold SOCK NAME N        subscribe with max_held N, print "subscribed", take N, print "held",
                          then sleep (the test kills it)
  loan-hang SOCK NAME K   create a kBlock stream, print "created", wait for stdin EOF, publish K
                          messages, loan the next and fill it with 0xee, print "loaned", sleep
  drop-pub SOCK NAME K    create a kBlock stream, publish K messages, print "created", wait for
                          a line on stdin, destroy the publisher (no other request), print
                          "dropped", then live on until stdin EOF
  write-ro SOCK NAME      subscribe, take one message, write into it (must die of SIGSEGV)
  scribble SOCK NAME MS SEED   subscribe (max_held 1), print "subscribed", write random bytes over
                          its own state page for MS ms, print "done"
  take-timed SOCK NAME MS TIMEOUT_MS   subscribe (max_held 1, no spin), print "subscribed", then
                          take(TIMEOUT_MS) in a loop for MS ms, reading every byte of what it takes.
                          Prints "ok N timeouts N dataloss N other N max_ms N sum N"; exit 1 if
                          a take failed with any other code
)";

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "shmarray_stream_helper: %s\n", what.c_str());
  std::exit(1);
}

template <class T>
T must(shmarray::Result<T> r, const char* what) {
  if (!r) die(std::string(what) + ": " + r.error().to_string());
  return std::move(*r);
}

void say(const std::string& line) {
  std::printf("%s\n", line.c_str());
  std::fflush(stdout);
}

bool stdin_closed(int timeout_ms) {
  pollfd p{STDIN_FILENO, POLLIN, 0};
  if (::poll(&p, 1, timeout_ms) > 0) {
    char c;
    return ::read(STDIN_FILENO, &c, 1) <= 0;
  }
  return false;
}

void wait_stdin_eof() {
  while (!stdin_closed(100)) {
  }
}

std::uint32_t element(std::uint64_t seq, std::uint64_t i) {
  return static_cast<std::uint32_t>(seq * 2654435761ull + i);
}

std::vector<std::uint64_t> shape_of(std::uint64_t seq) { return {1 + seq % 13, 1 + seq % 7}; }

std::uint64_t publish_one(shmarray::Publisher& pub, std::uint64_t expect_seq) {
  const auto shape = shape_of(expect_seq);
  auto loan = must(pub.loan("<u4", shape, 60s), "loan");
  if (loan.seq() != expect_seq) {
    die("loan seq " + std::to_string(loan.seq()) + ", expected " + std::to_string(expect_seq));
  }
  auto data = must(loan.as<std::uint32_t>(), "as");
  std::uint64_t sum = 0;
  for (std::size_t i = 0; i < data.size(); ++i) {
    data[i] = element(expect_seq, i);
    sum += data[i];
  }
  must(pub.publish(std::move(loan)), "publish");
  return sum;
}

void publish_end(shmarray::Publisher& pub) {
  const std::uint64_t one = 1;
  auto loan = must(pub.loan("|u1", {&one, 1}, 60s), "loan end marker");
  loan.bytes()[0] = std::byte{0xff};
  must(pub.publish(std::move(loan)), "publish end marker");
}

int cmd_pub(Client& client, const std::string& name, const std::vector<std::string>& a) {
  if (a.size() != 5) return 2;
  const std::uint64_t count = std::stoull(a[0]);
  shmarray::StreamSpec spec;
  spec.overflow = a[1] == "drop_oldest" ? shmarray::Overflow::kDropOldest
                                        : shmarray::Overflow::kBlock;
  spec.slots = static_cast<std::uint32_t>(std::stoul(a[2]));
  spec.history = static_cast<std::uint32_t>(std::stoul(a[3]));
  spec.slot_bytes = 13 * 7 * 4;
  const auto pause = std::chrono::microseconds(std::stoll(a[4]));
  auto pub = must(client.create_stream(name, spec), "create_stream");
  say("created");
  std::uint64_t sum = 0;
  std::uint64_t seq = 1;
  if (count > 0) {
    wait_stdin_eof();
    for (; seq <= count; ++seq) {
      sum += publish_one(pub, seq);
      if (pause.count() > 0) std::this_thread::sleep_for(pause);
    }
  } else {
    for (; !stdin_closed(0); ++seq) {
      sum += publish_one(pub, seq);
      if (pause.count() > 0) std::this_thread::sleep_for(pause);
    }
  }
  publish_end(pub);
  say("published " + std::to_string(seq - 1) + " checksum " + std::to_string(sum));
  return 0;
}

int cmd_sub(Client& client, const std::string& name, const std::vector<std::string>& a) {
  if (a.size() != 3) return 2;
  shmarray::SubscribeOptions options;
  options.wait = 10s;
  options.max_held = static_cast<std::uint32_t>(std::stoul(a[0]));
  const auto delay = std::chrono::microseconds(std::stoll(a[1]));
  const bool strict = a[2] == "1";
  auto sub = must(client.subscribe(name, options), "subscribe");
  say("subscribed");
  std::uint64_t taken = 0, first = 0, last = 0, sum = 0;
  for (;;) {
    auto sample = must(sub.take(60s), "take");
    if (sample.info().dtype == "|u1") break;  // end marker
    const std::uint64_t seq = sample.seq();
    if (last != 0 && (strict ? seq != last + 1 : seq <= last)) {
      die("took seq " + std::to_string(seq) + " after " + std::to_string(last));
    }
    if (sample.info().shape != shape_of(seq)) die("wrong shape for seq " + std::to_string(seq));
    auto data = must(sample.as<std::uint32_t>(), "as");
    for (std::size_t i = 0; i < data.size(); ++i) {
      if (data[i] != element(seq, i)) die("wrong contents in seq " + std::to_string(seq));
      sum += data[i];
    }
    if (first == 0) first = seq;
    last = seq;
    ++taken;
    if (delay.count() > 0) std::this_thread::sleep_for(delay);
  }
  say("taken " + std::to_string(taken) + " missed " + std::to_string(sub.missed()) + " first " +
      std::to_string(first) + " last " + std::to_string(last) + " checksum " +
      std::to_string(sum));
  return 0;
}

int cmd_hold(Client& client, const std::string& name, const std::vector<std::string>& a) {
  if (a.size() != 1) return 2;
  shmarray::SubscribeOptions options;
  options.wait = 10s;
  options.max_held = static_cast<std::uint32_t>(std::stoul(a[0]));
  auto sub = must(client.subscribe(name, options), "subscribe");
  say("subscribed");
  std::vector<shmarray::Sample> held;
  for (std::uint32_t i = 0; i < options.max_held; ++i) held.push_back(must(sub.take(30s), "take"));
  say("held");
  std::this_thread::sleep_for(300s);
  return 0;
}

int cmd_loan_hang(Client& client, const std::string& name, const std::vector<std::string>& a) {
  if (a.size() != 1) return 2;
  const std::uint64_t count = std::stoull(a[0]);
  shmarray::StreamSpec spec;
  spec.slots = static_cast<std::uint32_t>(count + 4);  // room for all of them and the loan
  spec.slot_bytes = 13 * 7 * 4;
  auto pub = must(client.create_stream(name, spec), "create_stream");
  say("created");
  wait_stdin_eof();
  for (std::uint64_t seq = 1; seq <= count; ++seq) publish_one(pub, seq);
  const auto shape = shape_of(count + 1);
  auto loan = must(pub.loan("<u4", shape, 60s), "loan");
  std::memset(loan.bytes().data(), 0xee, loan.bytes().size());
  say("loaned");
  std::this_thread::sleep_for(300s);
  return 0;
}

int cmd_drop_pub(Client& client, const std::string& name, const std::vector<std::string>& a) {
  if (a.size() != 1) return 2;
  const std::uint64_t count = std::stoull(a[0]);
  shmarray::StreamSpec spec;
  spec.slots = 4;
  spec.slot_bytes = 13 * 7 * 4;
  std::optional<shmarray::Publisher> pub(must(client.create_stream(name, spec), "create_stream"));
  for (std::uint64_t seq = 1; seq <= count; ++seq) publish_one(*pub, seq);
  say("created");
  char c = 0;
  if (::read(STDIN_FILENO, &c, 1) != 1) return 1;
  pub.reset();
  say("dropped");
  wait_stdin_eof();
  return 0;
}

int cmd_write_ro(Client& client, const std::string& name) {
  auto sub = must(client.subscribe(name, {.wait = 10s}), "subscribe");
  say("subscribed");
  auto sample = must(sub.take(30s), "take");
  auto* p = const_cast<std::byte*>(sample.bytes().data());
  *reinterpret_cast<volatile std::byte*>(p) = std::byte{1};  // must fault: read-only mapping
  return 0;
}

// The address range of this process's own state page: the memfd the broker made.
std::pair<std::byte*, std::size_t> find_state_page() {
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line)) {
    if (line.find("shmarray-subscriber") == std::string::npos) continue;
    if (line.find(" rw") == std::string::npos) continue;
    std::uintptr_t lo = 0, hi = 0;
    char dash;
    std::istringstream in(line);
    in >> std::hex >> lo >> dash >> hi;
    return {reinterpret_cast<std::byte*>(lo), hi - lo};
  }
  die("no writable state page in /proc/self/maps");
}

int cmd_scribble(Client& client, const std::string& name, const std::vector<std::string>& a) {
  if (a.size() != 2) return 2;
  const auto ms = std::chrono::milliseconds(std::stoll(a[0]));
  std::mt19937_64 rng(std::stoull(a[1]));
  auto sub = must(client.subscribe(name, {.wait = 10s, .max_held = 1}), "subscribe");
  auto [page, size] = find_state_page();
  say("subscribed");
  const auto end = std::chrono::steady_clock::now() + ms;
  while (std::chrono::steady_clock::now() < end) {
    for (int i = 0; i < 64; ++i) {
      const std::size_t at = rng() % (size / 8) * 8;
      const std::uint64_t v = rng() % 4 == 0 ? rng() % 16 : rng();
      std::memcpy(page + at, &v, sizeof v);
    }
    std::this_thread::sleep_for(100us);
  }
  say("done");
  return 0;
}

// A subscriber under a hostile publisher: whatever the publisher writes into the stream
// segment, each take() ends within its timeout (a message, kDeadlineExceeded or kDataLoss).
int cmd_take_timed(Client& client, const std::string& name, const std::vector<std::string>& a) {
  if (a.size() != 2) return 2;
  const auto ms = std::chrono::milliseconds(std::stoll(a[0]));
  const auto timeout = std::chrono::milliseconds(std::stoll(a[1]));
  auto sub = must(client.subscribe(name, {.wait = 10s, .max_held = 1, .spin = 0ns}), "subscribe");
  say("subscribed");
  std::uint64_t ok = 0, timeouts = 0, dataloss = 0, other = 0, sum = 0;
  std::chrono::nanoseconds worst{0};
  const auto end = std::chrono::steady_clock::now() + ms;
  while (std::chrono::steady_clock::now() < end) {
    const auto t0 = std::chrono::steady_clock::now();
    auto sample = sub.take(timeout);
    worst = std::max(worst, std::chrono::steady_clock::now() - t0);
    if (sample) {
      ++ok;
      for (std::byte b : sample->bytes()) sum += static_cast<std::uint8_t>(b);
    } else if (sample.error().code() == shmarray::ErrorCode::kDeadlineExceeded) {
      ++timeouts;
    } else if (sample.error().code() == shmarray::ErrorCode::kDataLoss) {
      ++dataloss;
    } else {
      ++other;
      std::fprintf(stderr, "take: %s\n", sample.error().to_string().c_str());
    }
  }
  say("ok " + std::to_string(ok) + " timeouts " + std::to_string(timeouts) + " dataloss " +
      std::to_string(dataloss) + " other " + std::to_string(other) + " max_ms " +
      std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(worst).count()) +
      " sum " + std::to_string(sum));
  return other == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  const std::string cmd = argv[1];
  const std::string socket = argv[2];
  const std::string name = argv[3];
  const std::vector<std::string> rest(argv + 4, argv + argc);
  auto client = must(Client::connect({.socket_path = socket}), "connect");
  int rc = 2;
  if (cmd == "pub") rc = cmd_pub(client, name, rest);
  else if (cmd == "sub") rc = cmd_sub(client, name, rest);
  else if (cmd == "hold") rc = cmd_hold(client, name, rest);
  else if (cmd == "loan-hang") rc = cmd_loan_hang(client, name, rest);
  else if (cmd == "drop-pub") rc = cmd_drop_pub(client, name, rest);
  else if (cmd == "write-ro") rc = cmd_write_ro(client, name);
  else if (cmd == "scribble") rc = cmd_scribble(client, name, rest);
  else if (cmd == "take-timed") rc = cmd_take_timed(client, name, rest);
  if (rc == 2) std::fputs(kUsage, stderr);
  return rc;
}
