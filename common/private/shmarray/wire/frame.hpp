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
#include "shmarray/wire/message_table.hpp"

namespace shmarray::wire {

inline constexpr std::uint32_t kFrameMagic = 0x414D4853;  // bytes "SHMA"
inline constexpr std::uint16_t kFrameVersion = 1;         // layout of the frame header itself
inline constexpr std::size_t kFrameHeaderSize = 24;
inline constexpr std::uint32_t kFlagHasFd = 1u << 0;
inline constexpr std::uint32_t kKnownFlags = kFlagHasFd;
// Limits: requests are small; replies (list) may be large.
inline constexpr std::uint32_t kMaxRequestBody = 64 * 1024;
inline constexpr std::uint32_t kMaxReplyBody = 256u * 1024 * 1024;

// Wire-stable values (wire/message_table.hpp): never renumber.
enum class MessageType : std::uint16_t {
#define SHMARRAY_MESSAGE_ENUMERATOR(name, number) k##name = number,
  SHMARRAY_WIRE_MESSAGES(SHMARRAY_MESSAGE_ENUMERATOR)
#undef SHMARRAY_MESSAGE_ENUMERATOR
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
  // Those bytes themselves (valid until the next append() or next()).
  [[nodiscard]] std::span<const std::byte> pending() const noexcept {
    return {buffer_.data() + consumed_, buffer_.size() - consumed_};
  }

 private:
  std::uint32_t max_body_;
  std::vector<std::byte> buffer_;
  std::size_t consumed_ = 0;
};

}  // namespace shmarray::wire
