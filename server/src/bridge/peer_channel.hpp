#pragma once
// Peer-link messages (peer_messages.hpp) over one ByteLink (the handshake's TCP connection, then
// the UCX endpoint): whole messages, and the raw array bytes that follow an ArrayBegin.
#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

#include "peer_messages.hpp"
#include "byte_link.hpp"
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
  explicit PeerChannel(UcxEndpoint& ep) : ep_(ep), ucx_(&ep) {}
  explicit PeerChannel(ByteLink& link) : ep_(link) {}
  [[nodiscard]] Result<void> send(const PeerMessage& m);
  [[nodiscard]] Result<void> send_bytes(std::span<const std::byte> bytes);
  // The next whole message; kDeadlineExceeded when none arrives within `timeout`. kDue: it
  // follows what was just received (an ArrayEnd after the bytes), so the wait polls first.
  [[nodiscard]] Result<PeerMessage> receive(std::chrono::milliseconds timeout = kLinkSilence,
                                            Arrival arrival = Arrival::kWhenever);
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
  // The UCX endpoint, for the array bytes on the tag API (chunked_transfer.hpp); only for a
  // channel made on one.
  [[nodiscard]] UcxEndpoint& endpoint() noexcept { return *ucx_; }
  // Messages and byte runs sent whole so far: what the peer has heard from this side.
  [[nodiscard]] std::uint64_t sends() const noexcept { return sends_; }

 private:
  ByteLink& ep_;
  UcxEndpoint* ucx_ = nullptr;
  std::uint64_t sends_ = 0;
  std::optional<std::uint16_t> mismatched_version_;
};

// The next message on `channel`, which must be an M: a Refused becomes its error, another
// message kProtocolError "peer link: expected <what>".
template <class M>
[[nodiscard]] Result<M> expect_message(PeerChannel& channel, std::string_view what) {
  auto m = channel.receive();
  if (!m) return std::unexpected(m.error());
  if (auto* refused = std::get_if<Refused>(&*m)) return fail(refused->code, refused->message);
  if (auto* wanted = std::get_if<M>(&*m)) return std::move(*wanted);
  return fail(ErrorCode::kProtocolError, "peer link: expected " + std::string(what));
}

}  // namespace shmarray::bridge
