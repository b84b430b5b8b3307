#include "service_notifier.hpp"

#include <sys/socket.h>
#include <sys/un.h>

#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <cstring>

namespace shmarray::server {

ServiceNotifier ServiceNotifier::from_environment() {
  const char* value = std::getenv("NOTIFY_SOCKET");
  std::string address = value != nullptr ? value : "";
  ::unsetenv("NOTIFY_SOCKET");
  return ServiceNotifier(std::move(address));
}

ServiceNotifier::ServiceNotifier(std::string address) : address_(std::move(address)) {}

Result<void> ServiceNotifier::notify(std::string_view state) {
  if (!enabled()) return {};
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if ((address_[0] != '/' && address_[0] != '@') || address_.size() < 2 ||
      address_.size() > sizeof addr.sun_path - 1) {
    return fail(ErrorCode::kInvalidArgument,
                "NOTIFY_SOCKET='" + address_ +
                    "' is neither a socket path nor an abstract name ('@name') of at most " +
                    std::to_string(sizeof addr.sun_path - 1) +
                    " bytes: the service manager cannot be told the broker's state");
  }
  std::memcpy(addr.sun_path, address_.data(), address_.size());
  socklen_t length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + address_.size());
  if (address_[0] == '@') {
    addr.sun_path[0] = '\0';  // abstract namespace: no terminating NUL counted
  } else {
    length += 1;
  }
  if (!socket_) {
    socket_.reset(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (!socket_) return std::unexpected(sys_error("cannot create the notification socket", errno));
  }
  const ssize_t sent = ::sendto(socket_.get(), state.data(), state.size(), MSG_NOSIGNAL,
                                reinterpret_cast<const sockaddr*>(&addr), length);
  if (sent < 0) {
    return fail(ErrorCode::kUnavailable, "cannot notify the service manager at NOTIFY_SOCKET=" +
                                             address_ + ": " + std::strerror(errno));
  }
  return {};
}

}  // namespace shmarray::server
