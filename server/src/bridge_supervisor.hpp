#pragma once
// Spawns and supervises shmarray-bridge (docs/architecture.md, "Bridge"): the broker never maps
// a segment, so the bytes of mirrors travel through this child process. Restarted with back-off
// (200 ms doubling to 10 s; reset after 30 s of good running) when it dies; dies with the broker
// (PR_SET_PDEATHSIG in the child, and stop() on shutdown, which also reaps it: no zombie).
// Its death is noticed through a pidfd on the broker's event loop.
#include <sys/types.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <string>
#include <vector>

namespace shmarray::server {

class BridgeSupervisor {
 public:
  BridgeSupervisor(boost::asio::io_context& io, std::string program);
  ~BridgeSupervisor();
  BridgeSupervisor(const BridgeSupervisor&) = delete;
  BridgeSupervisor& operator=(const BridgeSupervisor&) = delete;

  // Runs the bridge with `args` (restarting it if it runs with other arguments); empty `args`:
  // stops it until the next run().
  void run(std::vector<std::string> args);
  // Stops it (SIGTERM, SIGKILL after 2 s; without blocking the event loop, since the bridge may
  // be waiting for the broker) and never restarts it; the destructor reaps it at the latest.
  void stop();
  // The running bridge's pid (SO_PEERCRED of its connections), or -1. A dead, unreaped child
  // keeps its pid, so no other process can take it while this returns it.
  [[nodiscard]] pid_t pid() const noexcept { return pid_; }
  // When the running bridge was spawned: a connection accepted before then is not its, whatever
  // pid it was made from (pids are reused).
  [[nodiscard]] std::chrono::steady_clock::time_point started() const noexcept { return started_; }
  [[nodiscard]] const std::string& program() const noexcept { return program_; }

 private:
  void spawn();
  void watch();
  void reap_and_restart();
  // SIGTERM now, SIGKILL after 2 s; the pidfd handler reaps (and restarts if asked).
  void terminate();
  // Synchronous, for the destructor: SIGTERM, wait up to 2 s, SIGKILL, reap.
  void kill_and_reap();

  boost::asio::io_context& io_;
  std::string program_;
  std::vector<std::string> args_;
  pid_t pid_ = -1;
  boost::asio::posix::stream_descriptor pidfd_;
  boost::asio::steady_timer restart_timer_;
  boost::asio::steady_timer kill_timer_;
  bool terminating_ = false;     // SIGTERM sent, exit not yet seen
  bool restart_pending_ = false;  // start again as soon as the old one is reaped
  std::chrono::milliseconds backoff_{200};
  std::chrono::steady_clock::time_point started_{};
  bool stopped_ = false;
};

// Where shmarray-bridge is: $SHMARRAY_BRIDGE, else beside this executable.
[[nodiscard]] std::string default_bridge_program();

}  // namespace shmarray::server
