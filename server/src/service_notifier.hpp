#pragma once
// The service manager's readiness protocol (systemd's sd_notify, Type=notify), implemented here
// rather than linked from libsystemd: one datagram per state change to the AF_UNIX socket named
// by $NOTIFY_SOCKET (a path, or "@name" for an abstract socket). Without $NOTIFY_SOCKET every
// call does nothing, so the broker behaves the same outside systemd.
//
// The broker sends READY=1 once it accepts connections, STATUS=... with its arrays and
// connections while it serves, and STOPPING=1 when it begins a graceful stop
// (docs/operations.md).
#include <string>
#include <string_view>

#include "shmarray/error.hpp"
#include "shmarray/unique_fd.hpp"

namespace shmarray::server {

class ServiceNotifier {
 public:
  // Reads $NOTIFY_SOCKET and removes it from the environment (children must not inherit it).
  // An unusable value (not "/..." or "@...", too long) is reported by the first notify().
  [[nodiscard]] static ServiceNotifier from_environment();
  // A notifier for an explicit address ("/path" or "@abstract"); "" disables it.
  explicit ServiceNotifier(std::string address);

  // True when a service manager asked for notifications.
  [[nodiscard]] bool enabled() const noexcept { return !address_.empty(); }
  [[nodiscard]] const std::string& address() const noexcept { return address_; }

  // Sends `state` ("READY=1", "STATUS=...", "STOPPING=1"; several separated by '\n') as one
  // datagram. Nothing (success) when disabled; kUnavailable naming the socket when the send
  // fails. The service manager's answer is never awaited.
  [[nodiscard]] Result<void> notify(std::string_view state);

 private:
  std::string address_;
  UniqueFd socket_;  // opened on first use
};

}  // namespace shmarray::server
