#pragma once
// What a peer link's messages travel on: first the plain TCP connection of the handshake
// (peer_control.hpp), then the UCX endpoint (ucx_endpoint.hpp). The first failure (peer gone,
// timeout, bridge stopping) breaks the link: every later call fails at once.
#include <chrono>
#include <span>

#include "shmarray/error.hpp"

namespace shmarray::bridge {

// Whether the bytes a receive waits for are due now (the rest of a message or of an array whose
// start has arrived: worth polling for, spin_policy.hpp) or whenever the peer has something.
enum class Arrival { kWhenever, kDue };

class ByteLink {
 public:
  virtual ~ByteLink() = default;
  // Sends all of `bytes`; returns when the link is done with them.
  [[nodiscard]] virtual Result<void> send(std::span<const std::byte> bytes,
                                          std::chrono::milliseconds timeout) = 0;
  // Receives exactly bytes.size() bytes into `bytes`.
  [[nodiscard]] virtual Result<void> recv(std::span<std::byte> bytes,
                                          std::chrono::milliseconds timeout, Arrival arrival) = 0;
  [[nodiscard]] virtual bool broken() const noexcept = 0;
};

}  // namespace shmarray::bridge
