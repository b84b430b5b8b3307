#pragma once
// Framing of every message on the broker socket:
//   [FrameHeader: 24 bytes, little-endian][body: body_length bytes, a FlatBuffers table]
// A frame may carry one file descriptor (SCM_RIGHTS) attached to its first byte; flag kFlagHasFd
// says so. See docs/protocol.md.
#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "shmarray/error.hpp"

namespace shmarray::wire {

inline constexpr std::uint32_t kFrameMagic = 0x414D4853;  // bytes "SHMA"
inline constexpr std::uint16_t kFrameVersion = 1;         // layout of the frame header itself
inline constexpr std::size_t kFrameHeaderSize = 24;
inline constexpr std::uint32_t kFlagHasFd = 1u << 0;
inline constexpr std::uint32_t kKnownFlags = kFlagHasFd;
// Limits: requests are small; replies (list) may be large.
inline constexpr std::uint32_t kMaxRequestBody = 64 * 1024;
inline constexpr std::uint32_t kMaxReplyBody = 256u * 1024 * 1024;

// Wire-stable values: never renumber.
enum class MessageType : std::uint16_t {
  kHelloRequest = 1,
  kHelloReply = 2,
  kCreateRequest = 3,
  kCreateReply = 4,
  kOpenRequest = 5,
  kOpenReply = 6,
  kRemoveRequest = 7,
  kRemoveReply = 8,
  kListRequest = 9,
  kListReply = 10,
  kStatRequest = 11,
  kStatReply = 12,
  kWatchRequest = 13,
  kWatchReply = 14,
  kEvent = 15,
  kChmodRequest = 17,
  kChmodReply = 18,
  kCloseRequest = 19,
  kCloseReply = 20,
  kCreateStreamRequest = 21,
  kStreamReply = 22,
  kOpenPublisherRequest = 23,
  kSubscribeRequest = 24,
  kSubscribeReply = 25,
  kStreamMembersRequest = 26,
  kStreamMembersReply = 27,
  kSubscriberStateRequest = 28,
  kSubscriberStateReply = 29,
  kDetachRequest = 30,
  kDetachReply = 31,
  kErrorReply = 100,
};
[[nodiscard]] bool is_known_message_type(std::uint16_t value) noexcept;
[[nodiscard]] std::string_view to_string(MessageType type) noexcept;

struct FrameHeader {
  std::uint32_t magic = kFrameMagic;
  std::uint16_t version = kFrameVersion;
  MessageType type = MessageType::kErrorReply;
  std::uint64_t request_id = 0;
  std::uint32_t body_length = 0;
  std::uint32_t flags = 0;
};

[[nodiscard]] std::array<std::byte, kFrameHeaderSize> encode_header(const FrameHeader& header);
// Checks magic, frame version, known type, known flags and body_length <= max_body.
// kProtocolError with a message naming the problem otherwise.
[[nodiscard]] Result<FrameHeader> decode_header(std::span<const std::byte> bytes,
                                                std::uint32_t max_body);

// Header + body in one buffer, ready to send.
[[nodiscard]] std::vector<std::byte> encode_frame(MessageType type, std::uint64_t request_id,
                                                  std::span<const std::byte> body,
                                                  bool has_fd = false);

struct Frame {
  FrameHeader header;
  std::vector<std::byte> body;
};

// Incremental decoder for a byte stream. Not thread-safe.
class FrameReader {
 public:
  explicit FrameReader(std::uint32_t max_body) : max_body_(max_body) {}
  // Appends received bytes.
  void append(std::span<const std::byte> bytes);
  // The next complete frame, std::nullopt if more bytes are needed, or kProtocolError (after
  // which the stream is unusable).
  [[nodiscard]] Result<std::optional<Frame>> next();
  // Bytes received but not yet returned as a frame.
  [[nodiscard]] std::size_t buffered() const noexcept { return buffer_.size() - consumed_; }

 private:
  std::uint32_t max_body_;
  std::vector<std::byte> buffer_;
  std::size_t consumed_ = 0;
};

}  // namespace shmarray::wire
