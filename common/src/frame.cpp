#include "shmarray/wire/frame.hpp"

#include <cstring>

namespace shmarray::wire {
namespace {

template <class T>
void put_le(std::byte* out, T value) {
  for (std::size_t i = 0; i < sizeof(T); ++i) {
    out[i] = static_cast<std::byte>((static_cast<std::uint64_t>(value) >> (8 * i)) & 0xff);
  }
}

template <class T>
T get_le(const std::byte* in) {
  std::uint64_t value = 0;
  for (std::size_t i = 0; i < sizeof(T); ++i) {
    value |= static_cast<std::uint64_t>(in[i]) << (8 * i);
  }
  return static_cast<T>(value);
}

}  // namespace

bool is_known_message_type(std::uint16_t value) noexcept {
  switch (value) {
#define SHMARRAY_KNOWN_CASE(name, number) case number:
    SHMARRAY_WIRE_MESSAGES(SHMARRAY_KNOWN_CASE)
#undef SHMARRAY_KNOWN_CASE
    return true;
    default: return false;
  }
}

std::string_view to_string(MessageType type) noexcept {
  switch (type) {
#define SHMARRAY_NAME_CASE(name, number) \
  case MessageType::k##name: return #name;
    SHMARRAY_WIRE_MESSAGES(SHMARRAY_NAME_CASE)
#undef SHMARRAY_NAME_CASE
  }
  return "Unknown";
}

std::array<std::byte, kFrameHeaderSize> encode_header(const FrameHeader& header) {
  std::array<std::byte, kFrameHeaderSize> out{};
  put_le(out.data() + 0, header.magic);
  put_le(out.data() + 4, header.version);
  put_le(out.data() + 6, static_cast<std::uint16_t>(header.type));
  put_le(out.data() + 8, header.request_id);
  put_le(out.data() + 16, header.body_length);
  put_le(out.data() + 20, header.flags);
  return out;
}

Result<FrameHeader> decode_header(std::span<const std::byte> bytes, std::uint32_t max_body) {
  if (bytes.size() < kFrameHeaderSize) {
    return fail(ErrorCode::kProtocolError, "truncated frame header");
  }
  FrameHeader h;
  h.magic = get_le<std::uint32_t>(bytes.data());
  h.version = get_le<std::uint16_t>(bytes.data() + 4);
  const auto type = get_le<std::uint16_t>(bytes.data() + 6);
  h.request_id = get_le<std::uint64_t>(bytes.data() + 8);
  h.body_length = get_le<std::uint32_t>(bytes.data() + 16);
  h.flags = get_le<std::uint32_t>(bytes.data() + 20);
  if (h.magic != kFrameMagic) {
    return fail(ErrorCode::kProtocolError,
                "bad frame magic: the peer does not speak the shmarray protocol");
  }
  if (h.version != kFrameVersion) {
    return fail(ErrorCode::kProtocolError,
                "frame version " + std::to_string(h.version) + " is not supported (this side "
                "speaks " + std::to_string(kFrameVersion) + "): upgrade the older side");
  }
  if (!is_known_message_type(type)) {
    return fail(ErrorCode::kProtocolError, "unknown message type " + std::to_string(type));
  }
  h.type = static_cast<MessageType>(type);
  if ((h.flags & ~kKnownFlags) != 0) {
    return fail(ErrorCode::kProtocolError, "unknown frame flags " + std::to_string(h.flags));
  }
  if (h.body_length > max_body) {
    return fail(ErrorCode::kProtocolError, "frame body of " + std::to_string(h.body_length) +
                                               " bytes exceeds the limit of " +
                                               std::to_string(max_body));
  }
  return h;
}

std::vector<std::byte> encode_frame(MessageType type, std::uint64_t request_id,
                                    std::span<const std::byte> body, bool has_fd) {
  FrameHeader h;
  h.type = type;
  h.request_id = request_id;
  h.body_length = static_cast<std::uint32_t>(body.size());
  h.flags = has_fd ? kFlagHasFd : 0;
  const auto header = encode_header(h);
  // Sized once and filled with memcpy: vector::insert of a possibly empty span made g++ 12 warn
  // (-Wstringop-overflow, a false positive) wherever this was inlined.
  std::vector<std::byte> out(header.size() + body.size());
  std::memcpy(out.data(), header.data(), header.size());
  if (!body.empty()) std::memcpy(out.data() + header.size(), body.data(), body.size());
  return out;
}

void FrameReader::append(std::span<const std::byte> bytes) {
  if (consumed_ > 0 && consumed_ == buffer_.size()) {
    buffer_.clear();
    consumed_ = 0;
  }
  buffer_.insert(buffer_.end(), bytes.begin(), bytes.end());
}

Result<std::optional<Frame>> FrameReader::next() {
  const std::span<const std::byte> pending(buffer_.data() + consumed_, buffer_.size() - consumed_);
  if (pending.size() < kFrameHeaderSize) return std::optional<Frame>{};
  auto header = decode_header(pending, max_body_);
  if (!header) return std::unexpected(header.error());
  const std::size_t total = kFrameHeaderSize + header->body_length;
  if (pending.size() < total) return std::optional<Frame>{};
  Frame frame{*header, std::vector<std::byte>(pending.begin() + kFrameHeaderSize,
                                              pending.begin() + static_cast<long>(total))};
  consumed_ += total;
  if (consumed_ == buffer_.size()) {
    buffer_.clear();
    consumed_ = 0;
  } else if (consumed_ > 64 * 1024) {
    buffer_.erase(buffer_.begin(), buffer_.begin() + static_cast<long>(consumed_));
    consumed_ = 0;
  }
  return std::optional<Frame>(std::move(frame));
}

}  // namespace shmarray::wire
