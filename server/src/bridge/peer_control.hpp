#pragma once
// The plain TCP connection a peer link starts on (--peer-listen ADDR:PORT): the handshake
// (peer_handshake.hpp) and the exchange of UCX addresses (ucx_link_setup.hpp) travel on it, so
// that nothing of UCX listens for a peer before that peer has proved the key
// (listener_admission.hpp). Then it closes, and the link goes on over UCX.
#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "byte_link.hpp"
#include "shmarray/unique_fd.hpp"
#include "socket_address.hpp"

namespace shmarray::bridge {

class TcpLink final : public ByteLink {
 public:
  // Connects to HOST:PORT within `timeout`.
  [[nodiscard]] static Result<TcpLink> connect(const std::string& address,
                                               std::chrono::milliseconds timeout);
  // `fd`: a connected, non-blocking TCP socket.
  explicit TcpLink(UniqueFd fd);

  [[nodiscard]] Result<void> send(std::span<const std::byte> bytes,
                                  std::chrono::milliseconds timeout) override;
  [[nodiscard]] Result<void> recv(std::span<std::byte> bytes, std::chrono::milliseconds timeout,
                                  Arrival arrival) override;
  [[nodiscard]] bool broken() const noexcept override { return broken_; }
  // Closes the connection (the link went on over UCX).
  void close() noexcept {
    fd_.reset();
    broken_ = true;
  }
  // The other end's address, and this end's.
  [[nodiscard]] const sockaddr_storage& peer() const noexcept { return peer_; }
  [[nodiscard]] const sockaddr_storage& local() const noexcept { return local_; }

 private:
  Result<void> wait_for(short events, std::chrono::steady_clock::time_point deadline,
                        std::chrono::milliseconds timeout, const char* what);
  UniqueFd fd_;
  sockaddr_storage peer_{};
  sockaddr_storage local_{};
  bool broken_ = false;
};

class TcpListener {
 public:
  [[nodiscard]] static Result<TcpListener> listen(const std::string& address);
  // The address actually bound (the port chosen when ADDR:0 was given).
  [[nodiscard]] const std::string& bound_address() const noexcept { return bound_; }
  // Waits up to `timeout` for a connection; nullopt if none came.
  [[nodiscard]] std::optional<TcpLink> take(std::chrono::milliseconds timeout);

 private:
  TcpListener(UniqueFd fd, std::string bound) : fd_(std::move(fd)), bound_(std::move(bound)) {}
  UniqueFd fd_;
  std::string bound_;
};

}  // namespace shmarray::bridge
