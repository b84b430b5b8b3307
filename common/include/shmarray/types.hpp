#pragma once
// Plain value types of the public API: what an array is (ArraySpec), what the broker reports about
// it (ArrayInfo), and the access a client asks for.
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "shmarray/dtype.hpp"
#include "shmarray/error.hpp"
#include "shmarray/stream_types.hpp"

namespace shmarray {

inline constexpr std::size_t kMaxNdim = 32;
inline constexpr std::size_t kMaxNameLength = 255;

enum class Order : std::uint8_t { kC = 0, kF = 1 };  // wire-stable values
enum class Access : std::uint8_t { kReadOnly = 0, kReadWrite = 1 };  // wire-stable values

[[nodiscard]] std::string_view to_string(Order order) noexcept;  // "C" / "F"
[[nodiscard]] std::string_view to_string(Access access) noexcept;  // "read-only" / "read-write"

// What to create. dtype: a NumPy typestr or plain name (see DType::parse).
struct ArraySpec {
  std::string dtype = "<f8";
  std::vector<std::uint64_t> shape;
  Order order = Order::kC;
  std::uint32_t mode = 0600;  // permission bits for owner/group/others (read 4, write 2)
  bool ephemeral = false;     // removed when the creating connection closes
  bool populate = false;      // pre-fault the creator's mapping (as OpenOptions::populate)
};

// What the broker knows about an array.
struct ArrayInfo {
  std::string name;
  std::string dtype;                   // canonical typestr
  std::vector<std::uint64_t> shape;
  std::vector<std::int64_t> strides;   // in bytes
  Order order = Order::kC;
  std::uint64_t itemsize = 0;
  std::uint64_t nbytes = 0;            // shape product x itemsize
  std::uint64_t data_offset = 0;       // of the first element in the segment
  std::uint64_t segment_bytes = 0;     // whole segment: header page + data, page-rounded
  std::string id;                      // 32 hex digits; new for every create
  std::uint32_t owner_uid = 0;
  std::uint32_t owner_gid = 0;
  std::uint32_t mode = 0600;
  std::int64_t created_unix_ns = 0;
  std::uint32_t open_handles = 0;      // connections that have it open now (broker's count)
  std::uint64_t version = 0;           // publish counter, read when the info was made
  bool ephemeral = false;
  // Empty while the array is intact. Otherwise why the broker refuses to open it (a writer
  // truncated its segment: its data is gone) and the remedy; opens fail with kDataLoss.
  std::string damaged;
  // A stream (docs/streams.md) is listed beside arrays: kind kStream, its parameters and live
  // state in `stream`; dtype "|u1" and shape (bytes of the ring) describe its segment.
  ObjectKind kind = ObjectKind::kArray;
  StreamStatus stream;
  // Mirrors across hosts (docs/across-hosts.md): set on a mirror of a remote broker's array,
  // empty / 0 otherwise. Version lag and milliseconds behind the newest version the source
  // announced; link: connecting, syncing, up, "down: <why>", "peer refused: <why>".
  std::string mirror_of;  // HOST:PORT of the source broker's --peer-listen
  std::string mirror_link;
  std::uint64_t mirror_source_version = 0;
  std::uint64_t mirror_lag_versions = 0;
  std::uint64_t mirror_lag_ms = 0;
};

// Checks a name: 1-255 bytes of [A-Za-z0-9._:/-], not starting with '/', no '.' or '..' component,
// no empty component ("a//b"). kInvalidArgument naming the offending character otherwise.
[[nodiscard]] Result<void> validate_name(std::string_view name);

// The layout of a new array: element count x itemsize (overflow-checked against max_bytes) and
// strides for the order. kInvalidArgument for ndim > kMaxNdim or an overflowing size,
// kResourceExhausted when nbytes > max_bytes.
struct ArrayLayout {
  DType dtype;
  std::vector<std::uint64_t> shape;
  std::vector<std::int64_t> strides;
  std::uint64_t nbytes;
};
[[nodiscard]] Result<ArrayLayout> compute_layout(const ArraySpec& spec, std::uint64_t max_bytes);

// How wait_newer_than waits before sleeping in the kernel.
struct WaitPolicy {
  // Busy-poll the version for this long before the futex sleep. Spinning sees a publish from
  // another core in well under a microsecond; waking from a futex sleep costs ~10-70 us. Zero
  // gives the pure futex path (no spinning at all).
  std::chrono::nanoseconds spin = std::chrono::microseconds(20);
};

}  // namespace shmarray
