// connect(2) for the whole shmarray-bridge process, UCX's libraries included (exported from the
// executable with --export-dynamic-symbol, like listen_interposer.cpp): while this thread has a
// ConnectsFrom (a link's UCX being set up, source_ports.hpp), an unbound TCP socket is first bound
// to the next of the link's reserved source ports, the only ones the peer's UCX listeners admit.
// Every other connect() goes straight to the kernel.
#include <cerrno>

#include <spdlog/spdlog.h>

#include "source_ports.hpp"

extern "C" int connect(int fd, const sockaddr* address, socklen_t length) {
  using namespace shmarray::bridge;
  ConnectsFrom* scope = connects_from_of_this_thread();
  if (scope != nullptr && is_unbound_tcp(fd)) {
    auto port = scope->ports().bind_next(fd);
    if (!port) {
      spdlog::warn("a UCX connection of this link was not made: {}", port.error().message());
      errno = EADDRNOTAVAIL;
      return -1;
    }
    spdlog::debug("UCX connects from reserved port {}", *port);
  }
  return connect_direct(fd, address, length);
}
