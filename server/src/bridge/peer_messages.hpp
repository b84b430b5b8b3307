#pragma once
// The peer link between two bridges (docs/protocol.md, "Peer link"): small fixed-layout control
// messages, first on a plain TCP connection (the handshake and the exchange of UCX addresses:
// peer_control.hpp), then on a UCX stream endpoint, each a 16-byte header and a body of at most kMaxPeerBody
// bytes, little-endian. An array's bytes follow its ArrayBegin: raw on the same stream when
// chunk_bytes is 0 (arrays of up to 4 KiB), else on the UCX tag API in chunks of chunk_bytes
// tagged with the ArrayBegin's transfer number (chunked_transfer.hpp); then an ArrayEnd on the
// stream says whether they form a consistent version.
//
// Nothing from the peer is trusted: decode_peer_header and decode_peer_body check every field
// (magic, version, type, lengths, names, counts) and return kProtocolError naming the field;
// semantic limits that depend on local state (sizes against the local broker's limits, names
// under the subscribed prefix) are the caller's.
#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "shmarray/error.hpp"
#include "shmarray/types.hpp"

namespace shmarray::bridge {

inline constexpr std::uint32_t kPeerMagic = 0x504d4853;  // "SHMP" little-endian
// 2: array bytes above 4 KiB on the tag API (ArrayBegin's transfer and chunk_bytes). The header,
// Hello and Refused keep their layout in every version, so a bridge can refuse a peer of another
// version in words that peer reads (encode_refusal).
// 3: the handshake on a plain TCP connection, then PeerAddresses and WorkerAddress, then UCX
// (before 3 the handshake ran on UCX, whose listeners then accepted anyone: docs/security.md).
// 4: PeerAddresses also carries the source ports the sender's UCX connects from (source_ports.hpp);
// the receiver's UCX listeners admit no other.
inline constexpr std::uint16_t kPeerVersion = 4;
inline constexpr std::size_t kPeerHeaderBytes = 16;
inline constexpr std::size_t kMaxPeerBody = 64 * 1024;
inline constexpr std::size_t kNonceBytes = 32;
inline constexpr std::size_t kMacBytes = 32;
inline constexpr std::size_t kMaxPeerMessageText = 1024;
// PeerAddresses: at most this many addresses (listener_admission.hpp's kMaxAdmitted) and 1 to
// this many source ports (source_ports.hpp's kMaxSourcePorts).
inline constexpr std::size_t kMaxPeerAddresses = 64;
inline constexpr std::size_t kMaxPeerSourcePorts = 8;
// WorkerAddress: a packed UCX worker address of 1 to this many bytes.
inline constexpr std::size_t kMaxWorkerAddressBytes = 16 * 1024;
// Array bytes on the tag API (chunked_transfer.hpp): tag = transfer << kChunkIndexBits | chunk.
inline constexpr unsigned kChunkIndexBits = 24;
inline constexpr std::uint64_t kMaxChunks = std::uint64_t{1} << kChunkIndexBits;
inline constexpr std::uint64_t kMaxTransfer = (std::uint64_t{1} << (64 - kChunkIndexBits)) - 1;
// Chunk sizes a peer may announce (ArrayBegin::chunk_bytes other than 0).
inline constexpr std::uint64_t kMinChunkBytes = 64 * 1024;
inline constexpr std::uint64_t kMaxChunkBytes = 256 * 1024 * 1024;

// Wire-stable values: never renumber.
enum class PeerType : std::uint16_t {
  kHello = 1,
  kProof = 2,
  kRefused = 3,
  kSubscribe = 4,
  kSubscribed = 5,
  kArrayBegin = 6,
  kArrayEnd = 7,
  kArrayRemoved = 8,
  kInventoryEnd = 9,
  kHeartbeat = 10,
  kStreamBegin = 11,
  kStreamMessage = 12,
  kPeerAddresses = 13,
  kWorkerAddress = 14,
};
enum class PeerRole : std::uint8_t { kMirror = 1, kSource = 2 };
// How the bytes that followed an ArrayBegin end.
enum class TransferEnd : std::uint8_t {
  kCommit = 1,  // consistent: publish them with the version of the ArrayBegin
  kRetry = 2,   // the source changed during the send: keep the write window open, a consistent
                // re-send of the same array follows at once
  kTorn = 3,    // the source itself is possibly torn: abandon the write (the mirror reads torn too)
};

struct PeerHeader {
  PeerType type{};
  std::uint32_t body_bytes = 0;
};

struct Hello {
  PeerRole role{};
  std::array<std::byte, kNonceBytes> nonce{};
};
struct Proof {
  std::array<std::byte, kMacBytes> mac{};
};
struct Refused {
  ErrorCode code = ErrorCode::kPermissionDenied;
  std::string message;
};
struct Subscribe {
  std::string prefix;
};
struct Subscribed {};
struct ArrayBegin {
  std::string name;
  std::string dtype;
  std::vector<std::uint64_t> shape;
  Order order = Order::kC;
  std::uint32_t mode = 0;
  std::uint64_t version = 0;
  std::uint64_t nbytes = 0;
  std::string source_id;  // the source array's id: a new id is a new array (recreate)
  std::uint64_t transfer = 0;  // the link's transfer number: 1, 2, 3, ... (one per ArrayBegin)
  // 0: the nbytes follow raw on the stream; else on the tag API in chunks of this many bytes.
  std::uint64_t chunk_bytes = 0;
};
struct ArrayEnd {
  TransferEnd end = TransferEnd::kCommit;
  std::uint64_t version = 0;
};
struct ArrayRemoved {
  std::string name;
};
struct InventoryEnd {
  std::uint32_t count = 0;
};
struct Heartbeat {};
// A stream under the prefix (sent once per link, and again if it is recreated): the mirror makes
// a local stream of the same parameters (mode without write bits) and becomes its publisher.
struct StreamBegin {
  std::string name;
  std::uint32_t slots = 0;
  std::uint64_t slot_bytes = 0;
  std::uint32_t history = 0;
  std::uint32_t max_subscribers = 0;
  Overflow overflow = Overflow::kBlock;
  std::uint32_t mode = 0;
  std::string source_id;
};
// One message of a stream, in order; its nbytes raw bytes follow.
struct StreamMessage {
  std::string name;
  std::uint64_t seq = 0;  // the source's sequence number
  std::string dtype;
  std::vector<std::uint64_t> shape;
  Order order = Order::kC;
  std::uint64_t nbytes = 0;
};

// After the handshake, on the TCP connection: the sender's IP addresses (16 bytes each, IPv4 as
// ::ffff:a.b.c.d) and the source ports its UCX connections of this link will leave from, which
// the receiver's UCX listeners of this link will admit (listener_admission.hpp, source_ports.hpp).
struct PeerAddresses {
  std::vector<std::array<std::byte, 16>> addresses;
  std::vector<std::uint16_t> ports;
};
// Then the sender's UCX worker address (ucp_worker_get_address), to connect the link's UCX
// endpoint to.
struct WorkerAddress {
  std::vector<std::byte> address;
};

using PeerMessage = std::variant<Hello, Proof, Refused, Subscribe, Subscribed, ArrayBegin,
                                 ArrayEnd, ArrayRemoved, InventoryEnd, Heartbeat, StreamBegin,
                                 StreamMessage, PeerAddresses, WorkerAddress>;

// Header + body of `m`.
[[nodiscard]] std::vector<std::byte> encode_peer(const PeerMessage& m);
// A Refused as a bridge speaking `version` reads it (the header and Refused have the same layout
// in every version): the answer to a peer of another version.
[[nodiscard]] std::vector<std::byte> encode_refusal(std::uint16_t version, const Refused& m);
// The version a header announces, if its magic is the peer link's (whatever the version).
[[nodiscard]] std::optional<std::uint16_t> peer_version_of(std::span<const std::byte> header);
// Why a peer speaking `theirs` is refused, naming both versions and the remedy.
[[nodiscard]] std::string version_mismatch(std::uint16_t theirs);
// Checks magic, version, known type and body_bytes <= kMaxPeerBody.
[[nodiscard]] Result<PeerHeader> decode_peer_header(std::span<const std::byte> bytes);
// Decodes and validates a body of `type` (exactly body.size() bytes must be consumed).
[[nodiscard]] Result<PeerMessage> decode_peer_body(PeerType type, std::span<const std::byte> body);
// "Hello", "ArrayBegin"... for logs and errors.
[[nodiscard]] std::string_view to_string(PeerType type) noexcept;
// A prefix a peer may subscribe to: 1-255 bytes of the name charset, not starting with '/'.
[[nodiscard]] Result<void> validate_prefix(std::string_view prefix);
// Whether `prefix` (or a name) lies under one of `allowed` (--peer-allow prefixes).
[[nodiscard]] bool prefix_allowed(const std::string& prefix,
                                  const std::vector<std::string>& allowed) noexcept;

}  // namespace shmarray::bridge
