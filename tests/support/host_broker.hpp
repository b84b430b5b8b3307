#pragma once
// A real shmarrayd running on one of TwoHosts' hosts, on a socket in a fresh temporary directory
// (Unix sockets with a path work across network namespaces, so this process, in no namespace of
// its own, is a client of both brokers; the descriptors it gets map the host's own pages).
//
// Readiness is the broker's own signal: it is started with NOTIFY_SOCKET pointing at a datagram
// socket in its directory and is ready when it sends READY=1 (it sends that once it serves and
// SIGTERM stops it gracefully), never a guessed sleep. A broker that exits or stays silent for
// 20 s is an error. Afterwards a thread of this object reads and drops what the broker keeps
// sending there (STATUS=, STOPPING=1) until it has stopped.
//
// The destructor SIGKILLs a broker still running, removes what is left of its segments in the
// host's /dev/shm (B's private one through /proc) and its directory. It must not outlive the
// TwoHosts it runs on. Nothing here depends on GoogleTest (the benchmark uses it too).
#include <signal.h>
#include <sys/types.h>

#include <chrono>
#include <expected>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "process.hpp"
#include "shmarray/shmarray.hpp"
#include "two_hosts.hpp"

namespace shmarray::test {

class HostBroker {
 public:
  struct Options {
    std::vector<std::string> args;  // after --socket PATH (e.g. --peer-listen ...)
    std::vector<std::string> env;   // extra "NAME=value" (e.g. UCX_TLS=tcp)
    std::string log_level = "warn";
  };
  // Starts shmarrayd (SHMARRAYD_PATH unless `shmarrayd` is given) on `host` and waits for READY=1.
  [[nodiscard]] static std::expected<std::unique_ptr<HostBroker>, std::string> start(
      const TwoHosts& hosts, Host host, Options options, std::string shmarrayd = {});
  ~HostBroker();
  HostBroker(const HostBroker&) = delete;
  HostBroker& operator=(const HostBroker&) = delete;

  [[nodiscard]] const std::string& socket_path() const { return socket_path_; }
  // The broker's temporary directory (socket, notify socket; a place for key files).
  [[nodiscard]] const std::string& dir() const { return dir_; }
  [[nodiscard]] pid_t pid() const { return child_ ? child_->pid() : -1; }
  [[nodiscard]] bool running() const { return child_.has_value(); }
  [[nodiscard]] Result<Client> connect() const;
  // Sends `signo`, waits (10 s at most, then SIGKILL) for the exit.
  ExitStatus stop(int signo = SIGTERM);
  // Starts it again with the same socket, arguments and environment; waits for READY=1.
  [[nodiscard]] std::expected<void, std::string> restart();
  // This broker's segments that exist now in its host's /dev/shm.
  [[nodiscard]] std::vector<std::string> segments() const;

 private:
  HostBroker(const TwoHosts& hosts, Host host) : hosts_(hosts), host_(host) {}
  [[nodiscard]] std::expected<void, std::string> launch();
  void start_draining();

  const TwoHosts& hosts_;
  Host host_;
  Options options_;
  std::string shmarrayd_;
  std::string dir_;
  std::string socket_path_;
  std::optional<ChildProcess> child_;
  UniqueFd notify_;      // our end of the broker's NOTIFY_SOCKET
  std::jthread drain_;  // reads what the broker sends there after READY=1
};

}  // namespace shmarray::test
