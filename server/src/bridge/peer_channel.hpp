#pragma once
// Peer-link messages (peer_messages.hpp) over one UcxEndpoint: whole messages, and the raw array
// bytes that follow an ArrayBegin.
#include <chrono>
#include <optional>
#include <span>

#include "peer_messages.hpp"
#include "ucx_endpoint.hpp"

namespace shmarray::bridge {

// The source sends a Heartbeat after this long without sending anything; the mirror declares the
// link down after kLinkSilence without a byte from the source.
inline constexpr std::chrono::milliseconds kHeartbeatEvery{1000};
inline constexpr std::chrono::milliseconds kLinkSilence{5000};
// Time allowed for one transfer of `nbytes`: the silence limit plus 10 MB/s.
[[nodiscard]] std::chrono::milliseconds transfer_timeout(std::uint64_t nbytes) noexcept;

class PeerChannel {
 public:
  explicit PeerChannel(UcxEndpoint& ep) : ep_(ep) {}
  [[nodiscard]] Result<void> send(const PeerMessage& m);
  [[nodiscard]] Result<void> send_bytes(std::span<const std::byte> bytes);
  // The next whole message; kDeadlineExceeded when none arrives within `timeout`.
  [[nodiscard]] Result<PeerMessage> receive(std::chrono::milliseconds timeout = kLinkSilence);
  [[nodiscard]] Result<void> receive_bytes(std::span<std::byte> bytes);
  // Receives and drops `nbytes` (bytes for an array this side cannot hold).
  [[nodiscard]] Result<void> discard_bytes(std::uint64_t nbytes);
  // Drops whatever the peer still sends until it closes the link or `timeout` passes: a refusal
  // just sent reaches the peer before this side's (forced) close, however much of the peer's
  // message is still unread here.
  void linger(std::chrono::milliseconds timeout) noexcept;
  // The version of the last header received that had the peer link's magic but another version
  // (the peer runs another release), if any.
  [[nodiscard]] std::optional<std::uint16_t> mismatched_version() const noexcept {
    return mismatched_version_;
  }
  // The endpoint, for the array bytes on the tag API (chunked_transfer.hpp).
  [[nodiscard]] UcxEndpoint& endpoint() noexcept { return ep_; }

 private:
  UcxEndpoint& ep_;
  std::optional<std::uint16_t> mismatched_version_;
};

}  // namespace shmarray::bridge
