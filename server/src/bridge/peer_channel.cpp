#include "peer_channel.hpp"

#include <algorithm>
#include <array>
#include <vector>

namespace shmarray::bridge {

std::chrono::milliseconds transfer_timeout(std::uint64_t nbytes) noexcept {
  return kLinkSilence + std::chrono::milliseconds(nbytes / 10'000);
}

Result<void> PeerChannel::send(const PeerMessage& m) {
  const auto bytes = encode_peer(m);
  auto sent = ep_.send(bytes, kLinkSilence);
  if (sent) ++sends_;
  return sent;
}

Result<void> PeerChannel::send_bytes(std::span<const std::byte> bytes) {
  auto sent = ep_.send(bytes, transfer_timeout(bytes.size()));
  if (sent) ++sends_;
  return sent;
}

Result<PeerMessage> PeerChannel::receive(std::chrono::milliseconds timeout, Arrival arrival) {
  std::array<std::byte, kPeerHeaderBytes> raw{};
  if (auto ok = ep_.recv(raw, timeout, arrival); !ok) return std::unexpected(ok.error());
  auto header = decode_peer_header(raw);
  if (!header) {
    if (auto v = peer_version_of(raw); v && *v != kPeerVersion) mismatched_version_ = *v;
    return std::unexpected(header.error());
  }
  std::vector<std::byte> body(header->body_bytes);
  if (auto ok = ep_.recv(body, kLinkSilence, Arrival::kDue); !ok) {
    return std::unexpected(ok.error());
  }
  return decode_peer_body(header->type, body);
}

Result<void> PeerChannel::receive_bytes(std::span<std::byte> bytes) {
  return ep_.recv(bytes, transfer_timeout(bytes.size()), Arrival::kDue);
}

Result<void> PeerChannel::discard_bytes(std::uint64_t nbytes) {
  std::vector<std::byte> scratch(std::min<std::uint64_t>(nbytes, 1u << 20));
  while (nbytes > 0) {
    const auto n = std::min<std::uint64_t>(nbytes, scratch.size());
    const auto part = std::span(scratch).first(n);
    if (auto ok = ep_.recv(part, transfer_timeout(n), Arrival::kDue); !ok) return ok;
    nbytes -= n;
  }
  return {};
}

void PeerChannel::linger(std::chrono::milliseconds timeout) noexcept {
  const auto until = std::chrono::steady_clock::now() + timeout;
  std::byte scratch{};
  while (!ep_.broken()) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        until - std::chrono::steady_clock::now());
    if (left <= std::chrono::milliseconds::zero()) return;
    // One byte at a time: a receive of more would wait for bytes a closing peer never sends.
    // The peer closed, or time is up.
    if (!ep_.recv(std::span(&scratch, 1), left, Arrival::kWhenever)) return;
  }
}

}  // namespace shmarray::bridge
