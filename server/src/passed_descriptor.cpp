#include "passed_descriptor.hpp"

#include <limits>
#include <string>

namespace shmarray::server {
namespace {

constexpr wire::MessageType kCarrier = wire::MessageType::kReadmitSubscriberRequest;

Error refused(const std::string& why) {
  return Error(ErrorCode::kProtocolError,
               why + " (only a ReadmitSubscriberRequest may carry a descriptor to the broker)");
}

}  // namespace

Result<void> PassedDescriptor::arrived(UniqueFd fd, const wire::FrameReader& reader,
                                       std::size_t before) {
  if (fd_) {
    return std::unexpected(refused("a second descriptor arrived before the first was used"));
  }
  const std::span<const std::byte> pending = reader.pending();
  // Walk the frame boundaries; the last one at or after `before` starts the frame it came with.
  std::size_t at = 0;
  std::size_t last = std::numeric_limits<std::size_t>::max();
  while (at < pending.size()) {
    if (at >= before) last = at;
    if (pending.size() - at < wire::kFrameHeaderSize) break;
    auto header =
        wire::decode_header(pending.subspan(at), std::numeric_limits<std::uint32_t>::max());
    if (!header) break;  // the reader reports it when it gets there
    at += wire::kFrameHeaderSize + header->body_length;
  }
  if (last == std::numeric_limits<std::size_t>::max()) {
    return std::unexpected(refused("a descriptor arrived in the middle of a frame"));
  }
  if (pending.size() - last >= wire::kFrameHeaderSize) {
    auto header = wire::decode_header(pending.subspan(last),
                                      std::numeric_limits<std::uint32_t>::max());
    if (header && (header->type != kCarrier || (header->flags & wire::kFlagHasFd) == 0)) {
      return std::unexpected(refused("a descriptor came with a " +
                                     std::string(wire::to_string(header->type)) +
                                     " that does not announce one"));
    }
  }
  fd_ = std::move(fd);
  ahead_ = last;
  return {};
}

Result<UniqueFd> PassedDescriptor::claim(const wire::Frame& frame) {
  const bool announced = (frame.header.flags & wire::kFlagHasFd) != 0;
  if (fd_ && ahead_ == 0) {
    if (!announced || frame.header.type != kCarrier) {
      return std::unexpected(refused("a descriptor came with a " +
                                     std::string(wire::to_string(frame.header.type)) +
                                     " that does not announce one"));
    }
    return std::move(fd_);
  }
  if (announced) {
    return std::unexpected(refused(std::string(wire::to_string(frame.header.type)) +
                                   " announces a descriptor that did not arrive with it"));
  }
  if (fd_) {
    const std::size_t size = wire::kFrameHeaderSize + frame.body.size();
    if (size > ahead_) {
      return std::unexpected(refused("a descriptor arrived in the middle of a frame"));
    }
    ahead_ -= size;
  }
  return UniqueFd();
}

}  // namespace shmarray::server
