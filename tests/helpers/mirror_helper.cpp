// shmarray_mirror_helper: producer and consumer programs for the tests of mirrors across hosts
// (tests/integration/across_hosts_test.cpp, tests/python/test_across_hosts.py), run as separate
// processes on host A (producers) and host B (consumers of the mirror).
//
// The data of version v of an N-element uint64 array: x[i] = v * K + i (mod 2^64), K below, so
// a reader can check every element against the version it read; the checksum of a version is
// sum(x[i] * (i + 1)) mod 2^64 (position-sensitive; NumPy computes the same in the Python test).
//
//   produce SOCK NAME ELEMENTS          create NAME (uint64[ELEMENTS], mode 0644) with version 1,
//                                       print "published 1 CHECKSUM"; then per stdin line
//                                       "publish": write the next version inside the write
//                                       window, publish, print "published V CHECKSUM"; at EOF
//                                       remove NAME and exit
//   produce-free SOCK NAME ELEMENTS US  create, then publish a new version every US µs until
//                                       stdin EOF; print "first 1" at once, "last V" at the end
//   consume SOCK NAME COUNT TIMEOUT_MS  open NAME read-only (waiting up to TIMEOUT_MS for it to
//                                       appear), then for every new version: a consistent copy,
//                                       every element checked, print "seen V CHECKSUM"; exit 0
//                                       once version COUNT was seen
//   watch SOCK NAME TIMEOUT_MS          open (waiting), then until stdin EOF: wait for newer
//                                       versions (200 ms slices), copy consistently, check every
//                                       element; prints "first V" at the first version and
//                                       "versions=N torn=T last=V" at the end; exit 1 if T > 0
// Exit 0 on success, 1 on a failed check or error (message on stderr), 2 on bad usage.
#include <poll.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "shmarray/shmarray.hpp"

namespace {

using namespace std::chrono_literals;
constexpr std::uint64_t kK = 0x9E3779B97F4A7C15ull;

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "shmarray_mirror_helper: %s\n", what.c_str());
  std::exit(1);
}

template <class T>
T must(shmarray::Result<T> r, const char* what) {
  if (!r) die(std::string(what) + ": " + r.error().message());
  if constexpr (!std::is_void_v<T>) return std::move(*r);
}

void fill(std::span<std::byte> bytes, std::uint64_t v) {
  auto* x = reinterpret_cast<std::uint64_t*>(bytes.data());
  for (std::size_t i = 0; i < bytes.size() / 8; ++i) x[i] = v * kK + i;
}

std::uint64_t checksum(const std::uint64_t* x, std::size_t n) {
  std::uint64_t sum = 0;
  for (std::size_t i = 0; i < n; ++i) sum += x[i] * (i + 1);
  return sum;
}

// Elements that do not belong to version v (0: the copy is version v, whole).
std::size_t wrong_elements(const std::vector<std::uint64_t>& x, std::uint64_t v) {
  std::size_t bad = 0;
  for (std::size_t i = 0; i < x.size(); ++i) bad += x[i] != v * kK + i;
  return bad;
}

bool stdin_closed(std::chrono::milliseconds wait) {
  pollfd p{STDIN_FILENO, POLLIN, 0};
  if (::poll(&p, 1, static_cast<int>(wait.count())) <= 0) return false;
  char c;
  return ::read(STDIN_FILENO, &c, 1) <= 0;
}

shmarray::Array create(shmarray::Client& client, const std::string& name, std::uint64_t n) {
  return must(client.create(name, {.dtype = "<u8", .shape = {n}, .mode = 0644}), "create");
}

std::uint64_t write_version(const shmarray::Array& arr) {
  return must(arr.write([&](std::span<std::byte> d) { fill(d, arr.version() + 1); }), "write");
}

int run(const std::string& cmd, const std::vector<std::string>& a) {
  if (a.size() < 3) return 2;
  auto client = must(shmarray::Client::connect({.socket_path = a[0]}), "connect");
  const std::string& name = a[1];
  if (cmd == "produce" || cmd == "produce-free") {
    auto arr = create(client, name, std::stoull(a[2]));
    const auto* x = reinterpret_cast<const std::uint64_t*>(arr.data());
    const std::size_t n = arr.bytes().size() / 8;
    std::uint64_t v = write_version(arr);
    if (cmd == "produce") {
      std::printf("published %llu %llu\n", static_cast<unsigned long long>(v),
                  static_cast<unsigned long long>(checksum(x, n)));
      std::fflush(stdout);
      for (std::string line; std::getline(std::cin, line);) {
        if (line != "publish") continue;
        v = write_version(arr);
        std::printf("published %llu %llu\n", static_cast<unsigned long long>(v),
                    static_cast<unsigned long long>(checksum(x, n)));
        std::fflush(stdout);
      }
    } else {
      if (a.size() < 4) return 2;
      const auto every = std::chrono::microseconds(std::stoll(a[3]));
      std::printf("first %llu\n", static_cast<unsigned long long>(v));
      std::fflush(stdout);
      while (!stdin_closed(std::chrono::duration_cast<std::chrono::milliseconds>(every))) {
        v = write_version(arr);
      }
      std::printf("last %llu\n", static_cast<unsigned long long>(v));
    }
    must(client.remove(name), "remove");
    return 0;
  }
  const auto timeout = std::chrono::milliseconds(std::stoll(a.back()));
  auto arr = must(client.open(name, shmarray::Access::kReadOnly, {.wait = timeout}), "open");
  std::vector<std::uint64_t> copy(arr.bytes().size() / 8);
  const auto read = [&]() -> std::uint64_t {
    return must(arr.read_consistent(
                    [&] { std::memcpy(copy.data(), arr.data(), copy.size() * 8); }, 10s),
                "read_consistent");
  };
  if (cmd == "consume") {
    if (a.size() < 4) return 2;
    const std::uint64_t count = std::stoull(a[2]);
    std::uint64_t seen = 0;
    while (seen < count) {
      if (arr.version() <= seen) must(arr.wait_newer_than(seen, timeout), "wait_newer_than");
      seen = read();
      if (const auto bad = wrong_elements(copy, seen); bad != 0) {
        die("version " + std::to_string(seen) + " is torn: " + std::to_string(bad) +
            " elements belong to another version");
      }
      std::printf("seen %llu %llu\n", static_cast<unsigned long long>(seen),
                  static_cast<unsigned long long>(checksum(copy.data(), copy.size())));
      std::fflush(stdout);
    }
    return 0;
  }
  if (cmd == "watch") {
    std::uint64_t last = 0;
    std::uint64_t versions = 0;
    std::uint64_t torn = 0;
    while (!stdin_closed(0ms)) {
      if (arr.version() <= last && !arr.wait_newer_than(last, 200ms)) continue;
      auto v = arr.read_consistent([&] { std::memcpy(copy.data(), arr.data(), copy.size() * 8); },
                                   1s);
      if (!v) continue;  // a writer (the bridge) kept the window open: try again
      if (wrong_elements(copy, *v) != 0) ++torn;
      if (last == 0) {
        std::printf("first %llu\n", static_cast<unsigned long long>(*v));
        std::fflush(stdout);
      }
      last = *v;
      ++versions;
    }
    std::printf("versions=%llu torn=%llu last=%llu\n", static_cast<unsigned long long>(versions),
                static_cast<unsigned long long>(torn), static_cast<unsigned long long>(last));
    return torn == 0 ? 0 : 1;
  }
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fputs("usage: shmarray_mirror_helper produce|produce-free|consume|watch SOCK NAME ...\n",
               stderr);
    return 2;
  }
  const int rc = run(argv[1], std::vector<std::string>(argv + 2, argv + argc));
  if (rc == 2) std::fputs("shmarray_mirror_helper: bad usage (see the header comment)\n", stderr);
  return rc;
}
