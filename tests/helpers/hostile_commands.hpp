#pragma once
// Commands of shmarray_test_helper for the "hostile co-writer" tests (issue: nothing in shared
// memory is trusted). Each prints one "ready" line once it has opened the array, then works for
// MS milliseconds and prints a summary line.
//   scribble SOCK NAME MS SEED           a writer's attack: map the header page read-write over
//                                        the raw protocol and write random bytes over all of it
//   lock-writer SOCK NAME MS TIMEOUT_MS  lock (TIMEOUT_MS) / write / publish / unlock in a loop;
//                                        "writer locked=N timeouts=N takeovers=N lost=N max_ms=N"
//   consistent-reader SOCK NAME MS TIMEOUT_MS  read_consistent (TIMEOUT_MS) in a loop;
//                                        "reader ok=N timeouts=N torn=N max_ms=N"
// Exit 0 when every call ended with an expected outcome, 1 otherwise. A test checks max_ms (no
// call waited far past its timeout) and that the process was not killed by a signal.
// Header-only so that the helper stays one source file in tests/CMakeLists.txt.
#include <sys/mman.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "../support/raw_client.hpp"
#include "shmarray/segment_layout.hpp"
#include "shmarray/sync/seqlock.hpp"
#include "shmarray/shmarray.hpp"

namespace shmarray::test_helper {

inline void say(const std::string& line) {
  std::printf("%s\n", line.c_str());
  std::fflush(stdout);
}

inline int scribble(const std::vector<std::string>& a) {
  auto raw = test::RawClient::connect(a[0]);
  if (!raw) return 1;
  auto granted = raw->call(wire::OpenRequest{a[1], Access::kReadWrite, 0});
  if (!granted || granted->code() != ErrorCode::kOk || granted->fds.size() != 1) {
    say("FAIL read-write open was not granted");
    return 1;
  }
  void* p = ::mmap(nullptr, kHeaderBytes, PROT_READ | PROT_WRITE, MAP_SHARED,
                   granted->fds[0].get(), 0);
  if (p == MAP_FAILED) return 1;
  auto* words = static_cast<std::uint64_t*>(p);
  std::mt19937_64 rng(std::stoull(a.at(3)));
  say("ready");
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(std::stoll(a[2]));
  std::uint64_t rounds = 0;
  while (std::chrono::steady_clock::now() < until) {
    // Mostly single words (a live field at a time), now and then the whole page.
    if (rounds % 64 == 0) {
      for (std::size_t i = 0; i < kHeaderBytes / 8; ++i) words[i] = rng();
    } else {
      words[rng() % (kHeaderBytes / 8)] = rng();
      words[kLiveFieldsOffset / 8 + rng() % 16] = rng();  // the live fields, more often
    }
    ++rounds;
  }
  ::munmap(p, kHeaderBytes);
  say("scribbled " + std::to_string(rounds));
  return 0;
}

inline int lock_writer(Client& client, const std::vector<std::string>& a) {
  auto arr = client.open(a[1], Access::kReadWrite);
  if (!arr) return 1;
  const auto timeout = std::chrono::milliseconds(std::stoll(a.at(3)));
  say("ready");
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(std::stoll(a[2]));
  std::uint64_t locked = 0, timeouts = 0, takeovers = 0, lost = 0;
  std::chrono::nanoseconds worst{0};
  bool unexpected = false;
  auto data = arr->mutable_bytes();
  if (!data) return 1;
  while (std::chrono::steady_clock::now() < until) {
    const auto t0 = std::chrono::steady_clock::now();
    auto lock = arr->lock(timeout);
    worst = std::max(worst, std::chrono::steady_clock::now() - t0);
    if (!lock) {
      if (lock.error().code() == ErrorCode::kDeadlineExceeded) {
        ++timeouts;
      } else {
        say("unexpected lock error: " + lock.error().to_string());
        unexpected = true;
      }
      continue;
    }
    ++locked;
    if (lock->previous_owner_died()) ++takeovers;
    begin_write(*live_fields_of(const_cast<std::byte*>(data->data()) - kHeaderBytes));
    std::memset(data->data(), static_cast<int>(locked & 0xff), data->size());
    (void)end_write_and_publish(*live_fields_of(data->data() - kHeaderBytes));
    if (auto ok = lock->unlock(); !ok) {
      if (ok.error().code() == ErrorCode::kDataLoss) {
        ++lost;  // the scribbler overwrote the lock word while we held it
      } else {
        say("unexpected unlock error: " + ok.error().to_string());
        unexpected = true;
      }
    }
  }
  say("writer locked=" + std::to_string(locked) + " timeouts=" + std::to_string(timeouts) +
      " takeovers=" + std::to_string(takeovers) + " lost=" + std::to_string(lost) +
      " max_ms=" + std::to_string(worst.count() / 1'000'000));
  return unexpected ? 1 : 0;
}

inline int consistent_reader(Client& client, const std::vector<std::string>& a) {
  auto arr = client.open(a[1], Access::kReadOnly);
  if (!arr) return 1;
  const auto timeout = std::chrono::milliseconds(std::stoll(a.at(3)));
  std::vector<std::byte> copy(arr->bytes().size());
  say("ready");
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(std::stoll(a[2]));
  std::uint64_t ok = 0, timeouts = 0, torn = 0;
  std::chrono::nanoseconds worst{0};
  bool unexpected = false;
  while (std::chrono::steady_clock::now() < until) {
    const auto t0 = std::chrono::steady_clock::now();
    auto v = arr->read_consistent(
        [&] { std::memcpy(copy.data(), arr->bytes().data(), copy.size()); }, timeout);
    worst = std::max(worst, std::chrono::steady_clock::now() - t0);
    if (v) {
      ++ok;
    } else if (v.error().code() == ErrorCode::kDeadlineExceeded) {
      ++timeouts;
    } else if (v.error().code() == ErrorCode::kDataLoss) {
      ++torn;
    } else {
      say("unexpected read error: " + v.error().to_string());
      unexpected = true;
    }
  }
  say("reader ok=" + std::to_string(ok) + " timeouts=" + std::to_string(timeouts) +
      " torn=" + std::to_string(torn) + " max_ms=" + std::to_string(worst.count() / 1'000'000));
  return unexpected ? 1 : 0;
}

// Returns the exit status, or -1 if `cmd` is not one of these commands.
inline int run_hostile_command(const std::string& cmd, const std::vector<std::string>& a) {
  if (cmd == "scribble" && a.size() >= 4) return scribble(a);
  if ((cmd == "lock-writer" || cmd == "consistent-reader") && a.size() >= 4) {
    auto client = Client::connect({.socket_path = a[0]});
    if (!client) return 1;
    return cmd == "lock-writer" ? lock_writer(*client, a) : consistent_reader(*client, a);
  }
  return -1;
}

}  // namespace shmarray::test_helper
