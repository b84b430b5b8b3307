#pragma once
// Small helpers shared by the benchmark programs (header-only, benchmarks only): timing,
// percentiles, sizes, CSV output with a header, pipes between forked processes, and the
// fill/read loops every handoff method uses. Nothing here asserts a number.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <type_traits>
#include <span>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

namespace bench {

using Clock = std::chrono::steady_clock;  // CLOCK_MONOTONIC: comparable across processes

inline std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
      .count();
}

template <class Fn>
double time_us(Fn&& fn) {
  const auto t0 = Clock::now();
  fn();
  return std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
}

struct Stats {
  double p50 = 0;
  double p99 = 0;
  double min = 0;
  std::size_t n = 0;
};

inline Stats summarise(std::vector<double> v) {
  if (v.empty()) return {};
  std::sort(v.begin(), v.end());
  return {v[v.size() / 2], v[std::min(v.size() - 1, v.size() * 99 / 100)], v.front(), v.size()};
}

[[noreturn]] inline void die(const std::string& what) {
  std::fprintf(stderr, "bench: %s\n", what.c_str());
  std::exit(1);
}

// Unwraps a shmarray::Result (or anything with operator bool, error().message() and operator*).
template <class R>
auto must(R&& r, std::string_view what = "") {
  if (!r) die(std::string(what) + (what.empty() ? "" : ": ") + r.error().message());
  if constexpr (!std::is_void_v<std::remove_reference_t<decltype(*r)>>) {
    return std::move(*r);
  }
}

// "4KiB", "1MiB", "64MiB", "1GiB", "512" -> bytes.
inline std::uint64_t parse_size(std::string_view s) {
  std::uint64_t n = 0;
  std::size_t i = 0;
  while (i < s.size() && s[i] >= '0' && s[i] <= '9') n = n * 10 + static_cast<unsigned>(s[i++] - '0');
  std::string unit(s.substr(i));
  for (auto& c : unit) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (i == 0) die("bad size '" + std::string(s) + "'");
  if (unit.empty() || unit == "B") return n;
  if (unit == "K" || unit == "KIB") return n << 10;
  if (unit == "M" || unit == "MIB") return n << 20;
  if (unit == "G" || unit == "GIB") return n << 30;
  die("bad size unit in '" + std::string(s) + "' (use KiB, MiB, GiB)");
}

inline std::vector<std::uint64_t> parse_sizes(const std::string& csv) {
  std::vector<std::uint64_t> out;
  std::stringstream ss(csv);
  for (std::string item; std::getline(ss, item, ',');) {
    if (!item.empty()) out.push_back(parse_size(item));
  }
  return out;
}

inline std::string human(std::uint64_t bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB"};
  int u = 0;
  while (u < 3 && bytes >= 1024 && bytes % 1024 == 0) {
    bytes /= 1024;
    ++u;
  }
  return std::to_string(bytes) + " " + units[u];
}

// Appends rows to a CSV file, writing `header` first when the file is new or empty.
class Csv {
 public:
  Csv(const std::string& path, std::string_view header) : path_(path) {
    if (path_.empty()) return;
    std::ifstream probe(path_, std::ios::ate);
    const bool empty = !probe || probe.tellg() <= 0;
    out_.open(path_, std::ios::app);
    if (!out_) die("cannot write " + path_);
    if (empty) out_ << header << "\n";
  }
  template <class... T>
  void row(const T&... fields) {
    if (path_.empty()) return;
    bool first = true;
    ((out_ << (first ? "" : ",") << quote(fields), first = false), ...);
    out_ << "\n";
    out_.flush();
  }

 private:
  template <class T>
  static std::string quote(const T& v) {
    std::ostringstream s;
    s << v;
    std::string text = s.str();
    if (text.find_first_of(",\"") == std::string::npos) return text;
    std::string q = "\"";
    for (char c : text) q += (c == '"') ? std::string("\"\"") : std::string(1, c);
    return q + "\"";
  }
  std::string path_;
  std::ofstream out_;
};

// Blocking whole-buffer I/O on a descriptor (pipes, sockets); false on EOF or error.
inline bool write_all(int fd, const void* data, std::size_t n) {
  const auto* p = static_cast<const char*>(data);
  while (n > 0) {
    const ssize_t k = ::write(fd, p, n);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) return false;
    p += k;
    n -= static_cast<std::size_t>(k);
  }
  return true;
}

inline bool read_all(int fd, void* data, std::size_t n) {
  auto* p = static_cast<char*>(data);
  while (n > 0) {
    const ssize_t k = ::read(fd, p, n);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) return false;
    p += k;
    n -= static_cast<std::size_t>(k);
  }
  return true;
}

template <class T>
void send_pod(int fd, const T& v) {
  if (!write_all(fd, &v, sizeof v)) die("pipe write failed");
}

template <class T>
T recv_pod(int fd) {
  T v{};
  if (!read_all(fd, &v, sizeof v)) die("pipe read failed (peer died?)");
  return v;
}

struct Pipe {
  int r = -1, w = -1;
  static Pipe make() {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) die("pipe2 failed");
    return {fds[0], fds[1]};
  }
};

// The data every handoff moves: 64-bit words of a fixed pattern, word 0 a per-round marker, so
// the consumer's sum proves it read every byte of this round's data.
inline constexpr std::uint64_t kPattern = 0x0101010101010101ull;

inline void fill(std::span<std::byte> data, std::uint64_t marker) {
  std::memset(data.data(), 0x01, data.size());
  std::memcpy(data.data(), &marker, std::min(sizeof marker, data.size()));
}

inline std::uint64_t expected_sum(std::size_t bytes, std::uint64_t marker) {
  return (bytes / 8 - 1) * kPattern + marker;
}

inline std::uint64_t sum_words(const std::byte* p, std::size_t bytes) {
  const auto* w = reinterpret_cast<const std::uint64_t*>(p);
  std::uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  std::size_t n = bytes / 8, i = 0;
  for (; i + 4 <= n; i += 4) {
    s0 += w[i];
    s1 += w[i + 1];
    s2 += w[i + 2];
    s3 += w[i + 3];
  }
  for (; i < n; ++i) s0 += w[i];
  return s0 + s1 + s2 + s3;
}

inline std::uint64_t first_word(const std::byte* p) {
  std::uint64_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// What the consumer does with the array once it has it.
enum class Use : std::uint32_t { kReadAll = 0, kTouchOne = 1 };
inline const char* use_name(Use u) { return u == Use::kReadAll ? "read_all" : "touch_one"; }

inline std::uint64_t consume(const std::byte* p, std::size_t bytes, Use u) {
  return u == Use::kReadAll ? sum_words(p, bytes) : first_word(p);
}

inline std::uint64_t expected(std::size_t bytes, std::uint64_t marker, Use u) {
  return u == Use::kReadAll ? expected_sum(bytes, marker) : marker;
}

inline unsigned cores() {
  const long n = ::sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? static_cast<unsigned>(n) : 1;
}

}  // namespace bench
