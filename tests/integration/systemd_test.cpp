// shmarrayd under a service manager, with real processes: the readiness protocol (a datagram
// socket standing in for systemd's NOTIFY_SOCKET, as a path and as an abstract name), socket
// activation by systemd-socket-activate (the first connection starts the broker, which serves it
// on the passed descriptor), refusal of a passed socket that is not the one it was told to serve,
// and journal-style log lines when stderr is $JOURNAL_STREAM.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstddef>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>

#include "broker_process.hpp"
#include "raw_client.hpp"
#include "temp_dir.hpp"
#include "shmarray/wire/fd_passing.hpp"

namespace shmarray::test {
namespace {

using namespace std::chrono_literals;

// The service manager's end of NOTIFY_SOCKET: a bound datagram socket. `address` is a path or
// "@name" (abstract).
class NotifyListener {
 public:
  explicit NotifyListener(std::string address) : address_(std::move(address)) {
    fd_.reset(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, address_.data(), address_.size());
    socklen_t length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + address_.size());
    if (address_[0] == '@') {
      addr.sun_path[0] = '\0';
    } else {
      length += 1;
    }
    bound_ = fd_ && ::bind(fd_.get(), reinterpret_cast<const sockaddr*>(&addr), length) == 0;
  }
  [[nodiscard]] bool bound() const { return bound_; }
  [[nodiscard]] const std::string& address() const { return address_; }
  // The next datagram, or nullopt after `timeout`.
  [[nodiscard]] std::optional<std::string> next(std::chrono::milliseconds timeout) {
    if (!wire::wait_readable(fd_.get(), wire::Clock::now() + timeout)) return std::nullopt;
    char buf[4096];
    const ssize_t n = ::recv(fd_.get(), buf, sizeof buf, 0);
    if (n < 0) return std::nullopt;
    return std::string(buf, static_cast<std::size_t>(n));
  }
  // Datagrams until one contains `what` (returned), or nullopt after `timeout` in all.
  [[nodiscard]] std::optional<std::string> until(const std::string& what,
                                                 std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left <= 0ms) return std::nullopt;
      auto message = next(left);
      if (!message) return std::nullopt;
      if (message->find(what) != std::string::npos) return message;
    }
  }

 private:
  std::string address_;
  UniqueFd fd_;
  bool bound_ = false;
};

// Starts a broker on <dir>/s.sock told to notify `listener`; checks READY=1 comes first and that
// the broker serves as soon as it said so, then STOPPING=1 on SIGTERM and exit 0.
void expect_ready_then_stopping(NotifyListener& listener) {
  TempDir dir(0700, "shmarray-systemd");
  const std::string sock = dir.path() + "/s.sock";
  auto broker = ChildProcess::spawn({SHMARRAYD_PATH, "--socket", sock, "--log-level", "warn"},
                                    {"NOTIFY_SOCKET=" + listener.address()});
  auto ready = listener.next(20s);
  ASSERT_TRUE(ready) << "no notification within 20 s";
  EXPECT_NE(ready->find("READY=1"), std::string::npos) << *ready;
  EXPECT_NE(ready->find("STATUS=serving 0 arrays, 0 connections on " + sock), std::string::npos)
      << *ready;
  {
    auto client = Client::connect({.socket_path = sock});  // no retry: READY means serving
    ASSERT_TRUE(client) << client.error().message();
    auto array = client->create("systemd/status", ArraySpec{.dtype = "<u1", .shape = {16}});
    ASSERT_TRUE(array) << array.error().message();
    auto status = listener.until("serving 1 arrays, 1 connections", 20s);
    EXPECT_TRUE(status) << "STATUS= did not follow the new array and connection";
    EXPECT_TRUE(client->remove("systemd/status"));
  }
  broker.kill(SIGTERM);
  auto stopping = listener.until("STOPPING=1", 20s);
  EXPECT_TRUE(stopping) << "no STOPPING=1 after SIGTERM";
  const ExitStatus status = broker.wait(20s);
  EXPECT_TRUE(status.ok()) << status.describe();
}

TEST(Systemd, ReadinessOnANotifySocketPathSaysReadyThenStopping) {
  TempDir dir(0700, "shmarray-systemd");
  NotifyListener listener(dir.path() + "/notify");
  ASSERT_TRUE(listener.bound());
  expect_ready_then_stopping(listener);
}

TEST(Systemd, ReadinessOnAnAbstractNotifySocket) {
  NotifyListener listener("@shmarray-test-notify-" + std::to_string(::getpid()));
  ASSERT_TRUE(listener.bound());
  expect_ready_then_stopping(listener);
}

std::optional<std::string> find_socket_activate() {
  for (const char* path : {"/usr/bin/systemd-socket-activate", "/bin/systemd-socket-activate"}) {
    if (::access(path, X_OK) == 0) return std::string(path);
  }
  return std::nullopt;
}

// Whether a socket bound to `path` listens (/proc/net/unix: __SO_ACCEPTCON in Flags). The socket
// file appears at bind(), before listen(): a connect in between is refused.
bool listening(const std::string& path) {
  std::ifstream table("/proc/net/unix");
  std::string line;
  std::getline(table, line);  // the column names
  while (std::getline(table, line)) {
    std::istringstream fields(line);
    std::string num, refs, protocol, flags, type, state, inode, bound;
    if (!(fields >> num >> refs >> protocol >> flags >> type >> state >> inode >> bound)) continue;
    if (bound == path && (std::stoul(flags, nullptr, 16) & 0x10000u) != 0) return true;
  }
  return false;
}

std::string exe_of(pid_t pid) {
  std::error_code ec;
  auto target = std::filesystem::read_symlink("/proc/" + std::to_string(pid) + "/exe", ec);
  return ec ? std::string() : target.string();
}

TEST(Systemd, SocketActivationStartsTheBrokerOnTheFirstConnection) {
  const auto activate = find_socket_activate();
  if (!activate) GTEST_SKIP() << "systemd-socket-activate not installed (Debian package systemd)";
  TempDir dir(0700, "shmarray-systemd");
  const std::string sock = dir.path() + "/s.sock";
  // systemd-socket-activate binds and listens, waits for a connection, then execs the broker in
  // its own process with the socket as descriptor 3 (LISTEN_PID/LISTEN_FDS/LISTEN_FDNAMES).
  auto manager = ChildProcess::spawn({*activate, "--listen=" + sock, "--fdname=shmarrayd",
                                      SHMARRAYD_PATH, "--socket", sock, "--log-level", "warn"});
  struct stat before{};
  ASSERT_TRUE(eventually([&] { return ::stat(sock.c_str(), &before) == 0 && listening(sock); },
                         20s))
      << "systemd-socket-activate did not listen on " << sock;
  const std::string broker_exe = std::filesystem::canonical(SHMARRAYD_PATH).string();
  EXPECT_NE(exe_of(manager.pid()), broker_exe) << "the broker started before any connection";

  {
    auto client = Client::connect({.socket_path = sock, .request_timeout = 30s});
    ASSERT_TRUE(client) << client.error().message();
    EXPECT_EQ(exe_of(manager.pid()), broker_exe);  // the same process, now the broker
    EXPECT_EQ(client->broker_pid(), static_cast<std::uint32_t>(manager.pid()));
    auto array = client->create("activated/a", ArraySpec{.dtype = "<f8", .shape = {4}});
    ASSERT_TRUE(array) << array.error().message();
    (*array->as<double>())[0] = 2.5;
    auto again = Client::connect({.socket_path = sock});  // a second connection, same socket
    ASSERT_TRUE(again) << again.error().message();
    auto view = again->open("activated/a", Access::kReadOnly);
    ASSERT_TRUE(view) << view.error().message();
    EXPECT_EQ((*view->as<const double>())[0], 2.5);
    EXPECT_TRUE(client->remove("activated/a"));
  }
  struct stat after{};
  ASSERT_EQ(::stat(sock.c_str(), &after), 0);
  EXPECT_EQ(after.st_ino, before.st_ino) << "the broker bound a socket of its own";

  manager.kill(SIGTERM);
  const ExitStatus status = manager.wait(20s);
  EXPECT_TRUE(status.ok()) << status.describe();
  // The socket belongs to the service manager, which keeps listening for the next start.
  EXPECT_EQ(::stat(sock.c_str(), &after), 0) << "the broker unlinked the passed socket";
}

TEST(Systemd, APassedSocketOfAnotherPathIsRefusedNamingBoth) {
  const auto activate = find_socket_activate();
  if (!activate) GTEST_SKIP() << "systemd-socket-activate not installed (Debian package systemd)";
  TempDir dir(0700, "shmarray-systemd");
  const std::string passed = dir.path() + "/passed.sock";
  const std::string told = dir.path() + "/told.sock";
  // stderr into the captured stdout; exec keeps one process.
  auto manager = ChildProcess::spawn({"/bin/sh", "-c", "exec \"$@\" 2>&1", "sh", *activate,
                                      "--listen=" + passed, SHMARRAYD_PATH, "--socket", told});
  // The first connection starts the broker. The socket file exists from bind(), before
  // systemd-socket-activate listens: ready is when a connection is accepted (a connect between
  // the two is refused; seen once in CI).
  UniqueFd trigger;
  ASSERT_TRUE(eventually([&] { return static_cast<bool>(trigger = raw_connect(passed)); }, 20s));
  const ExitStatus status = manager.wait(20s);
  EXPECT_EQ(status.exit_code, 1) << status.describe();
  const std::string out = manager.read_all(5s);
  EXPECT_NE(out.find("bound to " + passed), std::string::npos) << out;
  EXPECT_NE(out.find("told to serve " + told), std::string::npos) << out;
  EXPECT_FALSE(std::filesystem::exists(told)) << "it bound --socket instead";
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream all;
  all << in.rdbuf();
  return all.str();
}

// Runs a broker with stderr in `log`, with JOURNAL_STREAM naming that file when `journal`.
std::string broker_log(const TempDir& dir, bool journal) {
  const std::string log = dir.path() + (journal ? "/journal.log" : "/plain.log");
  const std::string sock = dir.path() + (journal ? "/j.sock" : "/p.sock");
  const std::string script =
      std::string("exec 2>\"$1\"; ") +
      (journal ? "export JOURNAL_STREAM=$(stat -c %d:%i \"$1\"); " : "unset JOURNAL_STREAM; ") +
      "shift; exec \"$@\"";
  auto broker = ChildProcess::spawn(
      {"/bin/sh", "-c", script, "sh", log, SHMARRAYD_PATH, "--socket", sock});
  EXPECT_TRUE(eventually([&] { return static_cast<bool>(Client::connect({.socket_path = sock})); },
                         20s));
  broker.kill(SIGTERM);
  EXPECT_TRUE(broker.wait(20s).ok());
  return read_file(log);
}

TEST(Systemd, JournalStreamLinesCarryAPriorityAndNoTimestamp) {
  TempDir dir(0700, "shmarray-systemd");
  const std::string journal = broker_log(dir, true);
  EXPECT_NE(journal.find("<6>shmarrayd 0.1.0 listening on"), std::string::npos) << journal;
  EXPECT_EQ(journal.find("shmarrayd["), std::string::npos) << journal;  // no name[pid]
  std::istringstream lines(journal);
  for (std::string line; std::getline(lines, line);) {
    EXPECT_EQ(line.rfind('<', 0), 0u) << "a journal line without a priority: " << line;
  }
  const std::string plain = broker_log(dir, false);  // the same broker on a terminal or a file
  EXPECT_NE(plain.find("] info: shmarrayd 0.1.0 listening on"), std::string::npos) << plain;
  EXPECT_EQ(plain.find("<6>"), std::string::npos) << plain;
}

}  // namespace
}  // namespace shmarray::test
