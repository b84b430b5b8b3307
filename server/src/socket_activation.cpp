#include "socket_activation.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <string_view>

namespace shmarray::server {
namespace {

constexpr int kFirstPassedFd = 3;  // SD_LISTEN_FDS_START

std::optional<long> parse_number(const char* text) {
  if (text == nullptr) return std::nullopt;
  const std::string_view s(text);
  long value = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return value;
}

int socket_option(int fd, int option) {
  int value = -1;
  socklen_t length = sizeof value;
  if (::getsockopt(fd, SOL_SOCKET, option, &value, &length) != 0) return -1;
  return value;
}

// What descriptor `fd` is, for messages, when it is not what the broker needs.
std::optional<std::string> why_unusable(int fd) {
  struct stat st{};
  if (::fstat(fd, &st) != 0) return "not an open descriptor";
  if (!S_ISSOCK(st.st_mode)) return "not a socket";
  if (socket_option(fd, SO_DOMAIN) != AF_UNIX) return "not an AF_UNIX socket";
  if (socket_option(fd, SO_TYPE) != SOCK_STREAM) return "not a stream socket (ListenStream=)";
  if (socket_option(fd, SO_ACCEPTCONN) != 1) {
    return "not listening (a connection passed with Accept=yes? the broker needs Accept=no)";
  }
  return std::nullopt;
}

Result<std::string> bound_path(int fd) {
  sockaddr_un addr{};
  socklen_t length = sizeof addr;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &length) != 0) {
    return std::unexpected(sys_error("cannot read the address of passed descriptor 3", errno));
  }
  const std::size_t path_bytes = length - offsetof(sockaddr_un, sun_path);
  if (length <= offsetof(sockaddr_un, sun_path) || addr.sun_path[0] == '\0') {
    return fail(ErrorCode::kFailedPrecondition,
                "the passed socket is abstract or unnamed: the broker needs a socket file "
                "(ListenStream=/run/shmarray/shmarray.sock), whose directory holds its lock "
                "file and catalogue");
  }
  return std::string(addr.sun_path, ::strnlen(addr.sun_path, path_bytes));
}

}  // namespace

Result<std::optional<ActivatedSocket>> take_activated_socket(const std::string& wanted_path) {
  const auto pid = parse_number(std::getenv("LISTEN_PID"));
  const auto count = parse_number(std::getenv("LISTEN_FDS"));
  const char* names_env = std::getenv("LISTEN_FDNAMES");
  const std::string names = names_env != nullptr ? names_env : "";
  ::unsetenv("LISTEN_PID");
  ::unsetenv("LISTEN_FDS");
  ::unsetenv("LISTEN_FDNAMES");
  if (!pid || *pid != ::getpid() || !count || *count == 0) return std::nullopt;
  if (*count != 1) {
    return fail(ErrorCode::kFailedPrecondition,
                "the service manager passed " + std::to_string(*count) + " descriptors (" +
                    (names.empty() ? std::string("unnamed") : names) +
                    "); the broker serves exactly one socket: give its .socket unit one "
                    "ListenStream=");
  }
  if (auto why = why_unusable(kFirstPassedFd)) {
    return fail(ErrorCode::kFailedPrecondition,
                "passed descriptor 3 (" + (names.empty() ? std::string("unnamed") : names) +
                    ") is " + *why + ": the broker needs a listening Unix stream socket");
  }
  UniqueFd fd(kFirstPassedFd);
  ::fcntl(fd.get(), F_SETFD, FD_CLOEXEC);
  auto path = bound_path(fd.get());
  if (!path) return std::unexpected(path.error());
  if (!wanted_path.empty() && wanted_path != *path) {
    return fail(ErrorCode::kFailedPrecondition,
                "the passed socket is bound to " + *path + " but the broker was told to serve " +
                    wanted_path +
                    " (--socket or $SHMARRAY_SOCKET): make the .socket unit's ListenStream= and "
                    "the service's --socket the same path");
  }
  struct stat st{};
  if (::lstat(path->c_str(), &st) != 0 || !S_ISSOCK(st.st_mode)) {
    return fail(ErrorCode::kFailedPrecondition,
                "the passed socket's path " + *path +
                    " is missing or not a socket file (removed or replaced after the service "
                    "manager bound it): restart the .socket unit");
  }
  if (st.st_uid != ::geteuid() && st.st_uid != 0) {
    return fail(ErrorCode::kFailedPrecondition,
                "the passed socket " + *path + " is owned by uid " + std::to_string(st.st_uid) +
                    ", neither this broker's uid " + std::to_string(::geteuid()) +
                    " nor root: set SocketUser= to the broker's user");
  }
  return std::optional<ActivatedSocket>(ActivatedSocket{std::move(fd), std::move(*path)});
}

}  // namespace shmarray::server
