#include "connection.hpp"

#include <sys/un.h>

#include <array>

namespace shmarray::detail {

Connection::Connection(std::string socket_path)
    : socket_(io_), socket_path_(std::move(socket_path)) {}

Result<std::unique_ptr<Connection>> Connection::open(const std::string& socket_path) {
  if (socket_path.size() >= sizeof(sockaddr_un{}.sun_path)) {
    return fail(ErrorCode::kInvalidArgument,
                "socket path " + socket_path + " is longer than the " +
                    std::to_string(sizeof(sockaddr_un{}.sun_path) - 1) +
                    " bytes a Unix socket allows: choose a shorter path");
  }
  std::unique_ptr<Connection> c(new Connection(socket_path));
  boost::system::error_code ec;
  c->socket_.connect(boost::asio::local::stream_protocol::endpoint(socket_path), ec);
  if (ec) {
    return fail(ErrorCode::kUnavailable,
                "no broker at " + socket_path + " (" + ec.message() +
                    "): start it with 'shmarrayd --socket " + socket_path + "'",
                ec.value());
  }
  return c;
}

Result<Connection::Reply> Connection::call(wire::MessageType type,
                                           std::span<const std::byte> body,
                                           wire::Clock::time_point deadline) {
  const std::uint64_t id = next_request_id_++;
  const auto frame = wire::encode_frame(type, id, body);
  if (auto sent = wire::send_all(socket_.native_handle(), frame, -1, deadline); !sent) {
    if (sent.error().code() == ErrorCode::kDeadlineExceeded) return std::unexpected(sent.error());
    return fail(ErrorCode::kUnavailable,
                "lost the connection to the broker at " + socket_path_ + " (" +
                    sent.error().message() + "): is shmarrayd still running?");
  }
  for (;;) {
    auto reply = next_frame(deadline);
    if (!reply) return reply;
    if (reply->frame.header.request_id == id) return reply;
    // A reply to an abandoned (timed-out) request: drop it.
  }
}

Result<Connection::Reply> Connection::next_frame(wire::Clock::time_point deadline) {
  for (;;) {
    auto frame = reader_.next();
    if (!frame) return std::unexpected(frame.error());
    if (frame->has_value()) {
      Reply reply{std::move(**frame), UniqueFd()};
      if ((reply.frame.header.flags & wire::kFlagHasFd) != 0) {
        if (received_fds_.empty()) {
          return fail(ErrorCode::kProtocolError,
                      "broker reply announced a descriptor that did not arrive");
        }
        reply.fd = std::move(received_fds_.front());
        received_fds_.pop_front();
      }
      return reply;
    }
    if (auto ready = wire::wait_readable(socket_.native_handle(), deadline); !ready) {
      return std::unexpected(ready.error());
    }
    std::array<std::byte, 64 * 1024> buffer;
    auto got = wire::receive_some(socket_.native_handle(), buffer);
    if (!got) return std::unexpected(got.error());
    if (got->would_block) continue;
    for (auto& fd : got->fds) received_fds_.push_back(std::move(fd));
    if (got->bytes == 0) {
      return fail(ErrorCode::kUnavailable,
                  "the broker at " + socket_path_ + " closed the connection: is shmarrayd "
                  "still running?");
    }
    reader_.append(std::span<const std::byte>(buffer.data(), got->bytes));
  }
}

}  // namespace shmarray::detail
