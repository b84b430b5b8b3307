#pragma once
// Broker settings, with their documented defaults (also printed by `shmarrayd --help`).
#include <chrono>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace shmarray::server {

struct Config {
  std::string socket_path;                 // empty: the default socket path rule
  std::string log_level = "info";          // trace, debug, info, warn, error, off
  std::uint64_t max_bytes = 0;             // total bytes of all arrays; 0: size of /dev/shm
  std::uint64_t max_bytes_per_user = 0;    // 0: same as max_bytes
  std::uint64_t max_arrays = 1'000'000;
  std::uint32_t max_connections = 4096;
  std::uint32_t max_frame_bytes = 64 * 1024;          // request body limit
  std::size_t max_pending_reply_bytes = 64u << 20;    // per connection, before it is dropped
  std::chrono::milliseconds read_timeout{10'000};     // a started frame must complete in this
  // Memory bounds (docs/reliability.md): replies queued for all connections together; a
  // connection whose queued replies make no progress for write_timeout is closed; opens waiting
  // for a name (OpenRequest.wait_ms), in all and per connection; watch connections.
  std::size_t max_pending_reply_bytes_total = 512u << 20;
  std::chrono::milliseconds write_timeout{10'000};
  std::size_t max_parked_opens = 100'000;
  std::size_t max_parked_opens_per_connection = 1'000;
  std::size_t max_watchers = 1'024;
  // Segments at least this big have their pages reserved (create) and released (remove) on a
  // worker thread instead of the event loop (page_worker.hpp), so other clients are not kept
  // waiting (~0.2 ms per MiB).
  std::uint64_t off_loop_create_bytes = 8u << 20;
  // Pre-made segments for small creates (segment_pool.hpp): all pooled segments together hold at
  // most this many bytes of /dev/shm; segments up to a quarter of it are pooled. 0: no pool.
  std::uint64_t segment_pool_bytes = 4u << 20;
  std::string shm_dir = "/dev/shm";                   // where POSIX shm segments appear
  // System mode (one broker shared by several users): permission bits and group applied to the
  // socket file right after bind. -1 / empty: leave it as bind made it (per-user socket in a
  // 0700 directory). The group is a name or a numeric gid.
  std::int32_t socket_mode = -1;
  std::string socket_group;
  // Socket activation: a listening socket bound to socket_path, passed by the service manager
  // (socket_activation.hpp); the broker serves it instead of binding its own. -1: none.
  int listen_fd = -1;
  // Mirrors across hosts (docs/across-hosts.md): serve peers on ADDR:PORT (--peer-listen) with
  // the shared key file (--peer-key), letting them mirror names under --peer-allow prefixes; and
  // mirror prefixes of other brokers (--mirror PREFIX=HOST:PORT). Empty: none.
  std::string peer_listen;
  std::string peer_key;
  std::vector<std::string> peer_allow;
  std::vector<std::pair<std::string, std::string>> mirrors;  // prefix, HOST:PORT
  std::string bridge_program;  // empty: default_bridge_program()
};

}  // namespace shmarray::server
