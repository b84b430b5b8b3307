// shmarray_test_helper: a real client program that integration tests (C++ and Python) exec as a
// separate process. Usage: shmarray_test_helper COMMAND SOCKET NAME [ARGS...]; run with --help.
// Exit 0 on success, 1 on a failed check or error (message on stderr), 2 on bad usage.
#include <poll.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <complex>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "dtype_commands.hpp"
#include "hostile_commands.hpp"
#include "security_commands.hpp"
#include "shmarray/shmarray.hpp"

namespace {

using namespace std::chrono_literals;
using shmarray::Access;
using shmarray::Array;
using shmarray::Client;

constexpr const char* kUsage = R"(usage: shmarray_test_helper COMMAND SOCKET NAME [ARGS...]
  write SOCK NAME INDEX VALUE        set float64 element INDEX, publish
  expect SOCK NAME INDEX VALUE       check float64 element INDEX (read-only open)
  write-ro SOCK NAME                 open read-only, then write anyway (must die of SIGSEGV)
  create-ephemeral SOCK NAME         create an ephemeral float64[8], print "created", wait for stdin EOF
  hold SOCK NAME                     open read-only, read every page, print "held", wait for stdin EOF
  lock-and-hang SOCK NAME            take the write lock, print "locked", sleep (test kills it)
  pingpong SOCK NAME N odd|even      N publish/wait round trips; checks every version in order
  wait-open SOCK NAME TIMEOUT_MS     open with OpenOptions::wait, print "opened VERSION"
  seq-writer SOCK NAME MS [PAUSE_US] rewrite a uint64 array with its version for MS ms, pausing after each
  seq-reader SOCK NAME MS            consistent reads for MS ms; fails on a torn read
  create-iota SOCK NAME DTYPE ORDER SHAPE   create; element k in memory order = k (cast)
  check-iota SOCK NAME               open read-only; check element k in memory order == k
  create-bytes, check-bytes, create-points, check-points: see dtype_commands.hpp
  try SOCK NAME OP [ARG...]          security tests: print "ok" or "error <Code>" (see
                                     security_commands.hpp), also list SOCK PREFIX, ro-grant SOCK NAME,
                                     forge-header SOCK NAME, resize SOCK NAME BYTES
  scribble SOCK NAME MS SEED         write random bytes over the header page (hostile co-writer)
  lock-writer SOCK NAME MS TMO_MS    lock/write/publish/unlock loop; prints outcome counts, max_ms
  consistent-reader SOCK NAME MS TMO_MS  read_consistent loop; prints outcome counts, max_ms
)";

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "shmarray_test_helper: %s\n", what.c_str());
  std::exit(1);
}

template <class T>
T must(shmarray::Result<T> r, const char* what) {
  if (!r) die(std::string(what) + ": " + r.error().message());
  return std::move(*r);
}

Client connect(const std::string& socket) {
  return must(Client::connect({.socket_path = socket}), "connect");
}

void wait_stdin_eof(std::chrono::seconds limit) {
  pollfd p{STDIN_FILENO, POLLIN, 0};
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (::poll(&p, 1, 100) > 0) {
      char c;
      if (::read(STDIN_FILENO, &c, 1) <= 0) return;
    }
  }
}

// Calls fn(type_tag) with a value of the C++ element type of `dtype`.
template <class Fn>
void with_element_type(const std::string& dtype, Fn&& fn) {
  if (dtype == "<f2") return fn(std::uint16_t{}, true);  // half: stored as raw bits
  if (dtype == "<f4") return fn(float{}, false);
  if (dtype == "<f8") return fn(double{}, false);
  if (dtype == "|i1") return fn(std::int8_t{}, false);
  if (dtype == "<i2") return fn(std::int16_t{}, false);
  if (dtype == "<i4") return fn(std::int32_t{}, false);
  if (dtype == "<i8") return fn(std::int64_t{}, false);
  if (dtype == "|u1") return fn(std::uint8_t{}, false);
  if (dtype == "<u2") return fn(std::uint16_t{}, false);
  if (dtype == "<u4") return fn(std::uint32_t{}, false);
  if (dtype == "<u8") return fn(std::uint64_t{}, false);
  if (dtype == "|b1") return fn(bool{}, false);
  if (dtype == "<c8") return fn(std::complex<float>{}, false);
  if (dtype == "<c16") return fn(std::complex<double>{}, false);
  die("unsupported dtype " + dtype);
}

// float -> IEEE half bits for small integers (exact for |k| <= 2048).
std::uint16_t half_bits(double v) {
  if (v == 0) return 0;
  int exp = 0;
  const double m = std::frexp(v, &exp);  // v = m * 2^exp, m in [0.5, 1)
  const auto mant = static_cast<std::uint16_t>((m * 2 - 1) * 1024);
  return static_cast<std::uint16_t>(((exp - 1 + 15) << 10) | mant);
}

template <class T>
T iota_value(std::size_t k, bool half) {
  if constexpr (std::is_same_v<T, bool>) {
    return k % 2 == 1;
  } else if constexpr (std::is_same_v<T, std::uint16_t>) {
    return half ? half_bits(static_cast<double>(k % 2048)) : static_cast<T>(k);
  } else {
    return static_cast<T>(k % 100);
  }
}

int iota(Array& a, bool write) {
  int bad = 0;
  const auto raw = a.bytes();
  with_element_type(a.info().dtype, [&](auto tag, bool half) {
    using T = decltype(tag);
    auto* p = reinterpret_cast<T*>(const_cast<std::byte*>(raw.data()));
    const std::size_t n = raw.size() / sizeof(T);
    for (std::size_t k = 0; k < n; ++k) {
      const T want = iota_value<T>(k, half);
      if (write) {
        p[k] = want;
      } else if (!(p[k] == want)) {
        ++bad;
      }
    }
  });
  return bad;
}

std::vector<std::uint64_t> parse_shape(const std::string& text) {
  std::vector<std::uint64_t> shape;
  std::size_t start = 0;
  while (start < text.size()) {
    const auto comma = std::min(text.find(',', start), text.size());
    shape.push_back(std::stoull(text.substr(start, comma - start)));
    start = comma + 1;
  }
  return shape;
}

int run(const std::string& cmd, const std::vector<std::string>& a) {
  const auto need = [&](std::size_t n) {
    if (a.size() < n) {
      std::fputs(kUsage, stderr);
      std::exit(2);
    }
  };
  need(2);
  if (const int rc = shmarray::test_helper::run_security_command(cmd, a); rc >= 0) return rc;
  if (const int rc = shmarray::test_helper::run_hostile_command(cmd, a); rc >= 0) return rc;
  if (const int rc = shmarray::test_helper::run_dtype_command(cmd, a); rc >= 0) return rc;
  auto client = connect(a[0]);
  const std::string& name = a[1];
  if (cmd == "write") {
    need(4);
    auto arr = must(client.open(name, Access::kReadWrite), "open");
    must(arr.as<double>(), "as")[std::stoull(a[2])] = std::stod(a[3]);
    must(arr.publish(), "publish");
    return 0;
  }
  if (cmd == "expect") {
    need(4);
    auto arr = must(client.open(name, Access::kReadOnly), "open");
    const double got = must(arr.as<const double>(), "as")[std::stoull(a[2])];
    if (got != std::stod(a[3])) die("element " + a[2] + " is " + std::to_string(got));
    std::printf("ok %g\n", got);
    return 0;
  }
  if (cmd == "write-ro") {
    auto arr = must(client.open(name, Access::kReadOnly), "open");
    std::printf("opened\n");
    std::fflush(stdout);
    // Deliberately bypass the API's check: the kernel must refuse (PROT_READ mapping).
    auto* p = const_cast<std::byte*>(arr.bytes().data());
    *reinterpret_cast<volatile std::byte*>(p) = std::byte{1};
    std::printf("wrote\n");
    return 0;
  }
  if (cmd == "hold") {
    auto arr = must(client.open(name, Access::kReadOnly, {.populate = true}), "open");
    std::uint64_t sum = 0;
    const auto raw = arr.bytes();
    for (std::size_t i = 0; i < raw.size(); i += 4096) sum += static_cast<std::uint8_t>(raw[i]);
    std::printf("held %llu\n", static_cast<unsigned long long>(sum));
    std::fflush(stdout);
    wait_stdin_eof(120s);
    return 0;
  }
  if (cmd == "create-ephemeral") {
    auto arr = must(client.create(name, {.shape = {8}, .ephemeral = true}), "create");
    std::printf("created\n");
    std::fflush(stdout);
    wait_stdin_eof(120s);
    return 0;
  }
  if (cmd == "lock-and-hang") {
    auto arr = must(client.open(name, Access::kReadWrite), "open");
    auto lock = must(arr.lock(5s), "lock");
    auto data = must(arr.mutable_bytes(), "bytes");
    std::memset(data.data(), 0x5a, data.size() / 2);  // a half-finished update
    std::printf("locked\n");
    std::fflush(stdout);
    std::this_thread::sleep_for(60s);
    return 0;
  }
  if (cmd == "pingpong") {
    need(4);
    auto arr = must(client.open(name, Access::kReadWrite), "open");
    const std::uint64_t rounds = std::stoull(a[2]);
    const bool odd = a[3] == "odd";
    std::uint64_t expected = odd ? 0 : 1;  // next version this side waits for (even side first)
    if (odd) {
      if (must(arr.publish(), "publish") != 1) die("first publish is not version 1");
      expected = 2;
    }
    for (std::uint64_t i = 0; i < rounds; ++i) {
      const auto seen = must(arr.wait_newer_than(expected - 1, 10s), "wait");
      if (seen != expected) die("saw version " + std::to_string(seen) + ", expected " +
                                std::to_string(expected));
      if (odd && i + 1 == rounds) break;
      const auto mine = must(arr.publish(), "publish");
      if (mine != expected + 1) die("published " + std::to_string(mine));
      expected += 2;
    }
    std::printf("done %llu\n", static_cast<unsigned long long>(arr.version()));
    return 0;
  }
  if (cmd == "wait-open") {
    need(3);
    auto arr = must(client.open(name, Access::kReadOnly,
                                {.wait = std::chrono::milliseconds(std::stoll(a[2]))}),
                    "open");
    std::printf("opened %llu\n", static_cast<unsigned long long>(arr.version()));
    return 0;
  }
  if (cmd == "seq-writer" || cmd == "seq-reader") {
    need(3);
    const bool writer = cmd == "seq-writer";
    auto arr = must(client.open(name, writer ? Access::kReadWrite : Access::kReadOnly), "open");
    const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(std::stoll(a[2]));
    const std::chrono::microseconds pause(a.size() > 3 ? std::stoll(a[3]) : 0);
    std::uint64_t ops = 0;
    std::uint64_t torn = 0;
    std::vector<std::uint64_t> copy(arr.bytes().size() / 8);
    while (std::chrono::steady_clock::now() < until) {
      if (writer) {
        const std::uint64_t next = arr.version() + 1;
        must(arr.write([&](std::span<std::byte> d) {
               auto* p = reinterpret_cast<std::uint64_t*>(d.data());
               for (std::size_t i = 0; i < d.size() / 8; ++i) p[i] = next;
             }),
             "write");
        // A producer with a frame rate, not a busy loop: a writer that rewrites without pause
        // starves seqlock readers by design (docs/synchronisation.md), so the readers here
        // would time out instead of testing anything. Writes still overlap reads often.
        if (pause.count() > 0) std::this_thread::sleep_for(pause);
      } else {
        const auto v = must(arr.read_consistent([&] {
                             std::memcpy(copy.data(), arr.bytes().data(), copy.size() * 8);
                           }),
                           "read_consistent");
        for (auto x : copy) {
          if (x != copy[0] || x != v) {
            ++torn;
            break;
          }
        }
      }
      ++ops;
    }
    std::printf("%s ops=%llu torn=%llu\n", writer ? "writer" : "reader",
                static_cast<unsigned long long>(ops), static_cast<unsigned long long>(torn));
    return torn == 0 ? 0 : 1;
  }
  if (cmd == "create-iota") {
    need(5);
    shmarray::ArraySpec spec{.dtype = a[2], .shape = parse_shape(a[4]),
                             .order = a[3] == "F" ? shmarray::Order::kF : shmarray::Order::kC};
    auto arr = must(client.create(name, spec), "create");
    iota(arr, true);
    must(arr.publish(), "publish");
    std::printf("created %s\n", arr.info().dtype.c_str());
    return 0;
  }
  if (cmd == "check-iota") {
    auto arr = must(client.open(name, Access::kReadOnly), "open");
    const int bad = iota(arr, false);
    if (bad != 0) die(std::to_string(bad) + " elements differ");
    std::printf("ok\n");
    return 0;
  }
  std::fputs(kUsage, stderr);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || std::strcmp(argv[1], "--help") == 0) {
    std::fputs(kUsage, argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  return run(argv[1], std::vector<std::string>(argv + 2, argv + argc));
}
