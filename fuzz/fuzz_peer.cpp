// libFuzzer target for the peer-link decoder (server/src/bridge/peer_messages.hpp): everything a
// remote bridge sends before and after authentication. Properties beyond "no crash, no sanitizer
// report, no hang": a header that decodes says a body no bigger than kMaxPeerBody, and a body that
// decodes re-encodes to bytes that decode again to the same type; an ArrayBegin's chunks fit a
// tag.
// Build and run: fuzz/run_fuzz.sh [SECONDS]. Seeds: fuzz/corpus_peer/.
#include <cstddef>
#include <cstdint>
#include <span>
#include <variant>
#include <vector>

#include "bridge/peer_messages.hpp"

namespace {

namespace bridge = shmarray::bridge;

void check(bool ok) {
  if (!ok) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(data), size);
  // As a whole message: header, then the body it announces.
  if (auto header = bridge::decode_peer_header(bytes)) {
    check(header->body_bytes <= bridge::kMaxPeerBody);
    if (bytes.size() >= bridge::kPeerHeaderBytes + header->body_bytes) {
      const auto body = bytes.subspan(bridge::kPeerHeaderBytes, header->body_bytes);
      if (auto m = bridge::decode_peer_body(header->type, body)) {
        // An ArrayBegin that decodes announces chunks a tag can number (chunked_transfer.hpp).
        if (const auto* b = std::get_if<bridge::ArrayBegin>(&*m)) {
          check(b->transfer >= 1 && b->transfer <= bridge::kMaxTransfer);
          check(b->chunk_bytes == 0 ||
                (b->chunk_bytes >= bridge::kMinChunkBytes &&
                 (b->nbytes + b->chunk_bytes - 1) / b->chunk_bytes <= bridge::kMaxChunks));
        }
        const auto again = bridge::encode_peer(*m);
        auto h2 = bridge::decode_peer_header(again);
        check(h2.has_value() && h2->type == header->type);
        check(bridge::decode_peer_body(
                  h2->type, std::span(again).subspan(bridge::kPeerHeaderBytes)).has_value());
      }
    }
  }
  // A header of another version still tells its version (the refusal is sent in it).
  if (bridge::peer_version_of(bytes)) check(size >= 6);
  // As a body of every type (the peer chooses the type too).
  if (size >= 1) {
    const auto type = static_cast<bridge::PeerType>(1 + data[0] % 12);
    (void)bridge::decode_peer_body(type, bytes.subspan(1));
  }
  return 0;
}
