#pragma once
// Plain blocking TCP sockets with deadlines, for the two-hosts harness test (an echo across the
// link) and the benchmark's floor (a plain socket copy of the same bytes between the same
// namespaces). Every call takes a timeout; errors are sentences naming the address.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <expected>
#include <string>

#include "shmarray/unique_fd.hpp"

namespace shmarray::test {

// A listening socket on `address`:`port` (port 0: any; see local_port).
[[nodiscard]] std::expected<UniqueFd, std::string> tcp_listen(const std::string& address,
                                                              std::uint16_t port = 0);
[[nodiscard]] std::uint16_t local_port(int fd);
[[nodiscard]] std::expected<UniqueFd, std::string> tcp_accept(int listen_fd,
                                                              std::chrono::milliseconds timeout);
[[nodiscard]] std::expected<UniqueFd, std::string> tcp_connect(const std::string& address,
                                                               std::uint16_t port,
                                                               std::chrono::milliseconds timeout);
// All `size` bytes, or an error (timeout, peer gone).
[[nodiscard]] std::expected<void, std::string> send_all(int fd, const void* data, std::size_t size,
                                                        std::chrono::milliseconds timeout);
[[nodiscard]] std::expected<void, std::string> recv_all(int fd, void* data, std::size_t size,
                                                        std::chrono::milliseconds timeout);

}  // namespace shmarray::test
