#pragma once
// Which frame a descriptor that a client sent belongs to (docs/protocol.md). Only a
// ReadmitSubscriberRequest carries one (kFlagHasFd), sent in a sendmsg of its own that starts
// with the frame's first byte. The kernel hands the descriptor over with the recvmsg that
// returns that byte and ends that recvmsg's data within that sendmsg's bytes, so the descriptor
// belongs to the last frame that starts in the bytes of the recvmsg that brought it. Anything
// else (a descriptor with another frame, in the middle of a frame, a second one before the
// first was claimed, a frame announcing one that did not come) is a protocol error.
// Single-threaded, one per Session.
#include <cstddef>

#include "shmarray/error.hpp"
#include "shmarray/unique_fd.hpp"
#include "shmarray/wire/frame.hpp"

namespace shmarray::server {

class PassedDescriptor {
 public:
  // `fd` came with the last recvmsg, whose bytes were just appended to `reader`; `before` bytes
  // not yet returned as frames were there before them. kProtocolError (closing `fd`) unless a
  // frame that may carry it starts in those bytes (or may: its header is not complete yet).
  [[nodiscard]] Result<void> arrived(UniqueFd fd, const wire::FrameReader& reader,
                                     std::size_t before);
  // For every frame the reader returns, in order: the descriptor it carries (an empty UniqueFd
  // for frames that carry none). kProtocolError when the frame and the descriptors disagree.
  [[nodiscard]] Result<UniqueFd> claim(const wire::Frame& frame);

 private:
  UniqueFd fd_;
  std::size_t ahead_ = 0;  // bytes of the frames before the one `fd_` belongs to
};

}  // namespace shmarray::server
