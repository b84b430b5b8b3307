#pragma once
// HOST:PORT (or [IPv6]:PORT) for the peer link, resolved with getaddrinfo.
#include <sys/socket.h>

#include <string>

#include "shmarray/error.hpp"

namespace shmarray::bridge {

struct SocketAddress {
  sockaddr_storage storage{};
  socklen_t length = 0;
};

// kInvalidArgument for text that is not HOST:PORT with a port of 0-65535 (0 only if
// `allow_any_port`), kNotFound when the host does not resolve.
[[nodiscard]] Result<SocketAddress> resolve_address(const std::string& text,
                                                    bool allow_any_port = false);
// "1.2.3.4:5678" / "[::1]:5678".
[[nodiscard]] std::string to_string(const sockaddr_storage& address);

}  // namespace shmarray::bridge
