#pragma once
// One blocking request/reply connection to the broker over a Boost.Asio Unix stream socket.
// Replies are matched to requests by request id; descriptors arrive attached to reply frames.
// Not thread-safe: Client serialises calls.
#include <sys/types.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "shmarray/error.hpp"
#include "shmarray/unique_fd.hpp"
#include "shmarray/wire/fd_passing.hpp"
#include "shmarray/wire/frame.hpp"
#include "shmarray/wire/messages.hpp"

namespace shmarray::detail {

class Connection {
 public:
  // Connects to `socket_path`. kUnavailable with a "start shmarrayd" hint if nothing listens;
  // kPermissionDenied if the broker's uid is not trusted (broker_trust.hpp; `broker_uid` as
  // ClientOptions::broker_uid).
  [[nodiscard]] static Result<std::unique_ptr<Connection>> open(
      const std::string& socket_path, std::optional<uid_t> broker_uid = std::nullopt);

  struct Reply {
    wire::Frame frame;
    UniqueFd fd;  // set when the frame carried a descriptor
  };

  // Sends one request and waits for the frame answering it (until `deadline`). `pass_fd` >= 0:
  // the request carries that descriptor (SCM_RIGHTS, a copy; the caller keeps it), sent in a
  // sendmsg of its own that starts with the frame (the broker's rule: passed_descriptor.hpp).
  [[nodiscard]] Result<Reply> call(wire::MessageType type, std::span<const std::byte> body,
                                   wire::Clock::time_point deadline, int pass_fd = -1);
  // Sends a request whose reply nobody waits for (call() drops it by request id). Never blocks:
  // what the socket does not take now goes out before the next call's request.
  void post(wire::MessageType type, std::span<const std::byte> body);
  // Waits for the next frame the broker sends unprompted (watch events).
  [[nodiscard]] Result<Reply> next_frame(wire::Clock::time_point deadline);

  // How the last call() failed, so that Client knows what a retry on a new connection risks.
  enum class Failure {
    kNone,
    kNotSent,  // the request never reached a live broker (the connection was already gone)
    kNoReply,  // sent, then the connection closed before any byte of a reply: maybe applied
    kOther,    // a timeout, a malformed reply, an error from the broker about the connection
  };
  [[nodiscard]] Failure last_failure() const noexcept { return last_failure_; }

  [[nodiscard]] const std::string& socket_path() const noexcept { return socket_path_; }

  // While call() and next_frame() wait for the broker, `check` runs about every
  // kInterruptSlice; an error from it ends the wait with that error (ClientOptions).
  void set_interrupt_check(std::function<Result<void>()> check) {
    interrupt_check_ = std::move(check);
  }
  static constexpr std::chrono::milliseconds kInterruptSlice{50};

 private:
  Connection(std::string socket_path);
  boost::asio::io_context io_;
  boost::asio::local::stream_protocol::socket socket_;
  std::string socket_path_;
  wire::FrameReader reader_{wire::kMaxReplyBody};
  std::deque<UniqueFd> received_fds_;
  std::vector<std::byte> unsent_;  // the rest of post()ed frames
  std::uint64_t next_request_id_ = 1;
  Failure last_failure_ = Failure::kNone;
  std::function<Result<void>()> interrupt_check_;

  // wire::wait_readable in slices of kInterruptSlice, running interrupt_check_ between them.
  [[nodiscard]] Result<void> wait_readable(wire::Clock::time_point deadline);

  // After a failed send: the error the broker left before it closed (an ErrorReply with request
  // id 0, e.g. its connection limit), if one is waiting to be read.
  [[nodiscard]] std::optional<Error> parting_error();
};

// Decodes a reply as M, turning an ErrorReply into its Error and anything else into
// kProtocolError.
template <class M>
[[nodiscard]] Result<M> decode_reply(const wire::Frame& frame) {
  if (frame.header.type == wire::MessageType::kErrorReply) {
    auto err = wire::decode<wire::ErrorReply>(frame.body);
    if (!err) return std::unexpected(err.error());
    return fail(err->code, std::move(err->message));
  }
  if (frame.header.type != M::kType) {
    return fail(ErrorCode::kProtocolError,
                "broker sent " + std::string(wire::to_string(frame.header.type)) + ", expected " +
                    std::string(wire::to_string(M::kType)));
  }
  return wire::decode<M>(frame.body);
}

}  // namespace shmarray::detail
