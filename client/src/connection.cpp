#include "connection.hpp"

#include <sys/stat.h>
#include <sys/un.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstdlib>

#include "broker_trust.hpp"
#include "shmarray/socket_path.hpp"

namespace shmarray::detail {

namespace {

// Why nothing listens at `socket_path` when the path exists but is no socket: "" otherwise.
std::string not_a_socket(const std::string& socket_path) {
  struct stat st {};
  if (::stat(socket_path.c_str(), &st) != 0 || S_ISSOCK(st.st_mode)) return {};
  if (S_ISDIR(st.st_mode)) {
    return "socket path " + socket_path + " is a directory, not a socket: give the socket "
           "itself, e.g. --socket " + socket_path + "/shmarray.sock (see shmarrayd --socket)";
  }
  return "socket path " + socket_path + " is " +
         (S_ISREG(st.st_mode) ? "a regular file" : "not a socket") +
         ", not the broker's socket: check the path (shmarrayd --socket, $SHMARRAY_SOCKET)";
}

// When `socket_path` is the user's own default socket (client_socket_path): about the system
// broker's socket, which the client would have used had this one not existed. "" otherwise.
std::string no_system_broker(const std::string& socket_path) {
  const char* env = std::getenv("SHMARRAY_SOCKET");
  if ((env != nullptr && *env != '\0') || socket_path != default_socket_path()) return {};
  const std::string system = system_socket_path();
  struct stat st {};
  if (::lstat(system.c_str(), &st) == 0) {
    return "; or, if it is the stale socket of a broker of yours that died, remove it to use "
           "the system broker at " + system;
  }
  return ", or install the system broker (package shmarrayd; socket " + system + ")";
}

// A call sent at `started` got no reply by `deadline`: names the socket and the wait.
Error no_answer(const std::string& socket_path, wire::Clock::duration waited) {
  char seconds[32];
  std::snprintf(seconds, sizeof seconds, "%.3g", std::chrono::duration<double>(waited).count());
  return Error(ErrorCode::kDeadlineExceeded,
               "the broker at " + socket_path + " did not answer within " + seconds +
                   " s: is shmarrayd stopped (kill -STOP, a debugger) or overloaded? Check it, "
                   "or allow longer (ClientOptions::request_timeout, shmarray --timeout, "
                   "shmarray.Client(timeout=))");
}

}  // namespace

Connection::Connection(std::string socket_path)
    : socket_(io_), socket_path_(std::move(socket_path)) {}

Result<std::unique_ptr<Connection>> Connection::open(const std::string& socket_path,
                                                     std::optional<uid_t> broker_uid) {
  auto trusted = trusted_broker_uid(broker_uid);
  if (!trusted) return std::unexpected(trusted.error());
  if (socket_path.size() >= sizeof(sockaddr_un{}.sun_path)) {
    return fail(ErrorCode::kInvalidArgument,
                "socket path " + socket_path + " is longer than the " +
                    std::to_string(sizeof(sockaddr_un{}.sun_path) - 1) +
                    " bytes a Unix socket allows: choose a shorter path");
  }
  std::unique_ptr<Connection> c(new Connection(socket_path));
  boost::system::error_code ec;
  c->socket_.connect(boost::asio::local::stream_protocol::endpoint(socket_path), ec);
  if (ec == boost::system::errc::permission_denied) {
    // A broker runs there, but its socket (or directory) does not admit this user.
    return fail(ErrorCode::kPermissionDenied,
                "not allowed to connect to the broker at " + socket_path + " (" + ec.message() +
                    "): its socket admits only the users its shmarrayd --socket-mode and "
                    "--socket-group allow; ask its administrator, or start your own broker",
                ec.value());
  }
  if (ec) {
    if (const std::string why = not_a_socket(socket_path); !why.empty()) {
      return fail(ErrorCode::kUnavailable, why, ec.value());
    }
    return fail(ErrorCode::kUnavailable,
                "no broker at " + socket_path + " (" + ec.message() +
                    "): start it with 'shmarrayd --socket " + socket_path + "'" +
                    no_system_broker(socket_path),
                ec.value());
  }
  // Before any byte is sent: an impostor must not even learn the client's name.
  if (auto ok = verify_broker(c->socket_.native_handle(), *trusted, socket_path); !ok) {
    return std::unexpected(ok.error());
  }
  return c;
}

Result<Connection::Reply> Connection::call(wire::MessageType type,
                                           std::span<const std::byte> body,
                                           wire::Clock::time_point deadline, int pass_fd) {
  const std::uint64_t id = next_request_id_++;
  const auto started = wire::Clock::now();
  auto frame = wire::encode_frame(type, id, body, pass_fd >= 0);
  Result<void> sent;
  if (!unsent_.empty() && pass_fd >= 0) {
    // The descriptor must come with the frame's own first byte, not with posted frames' bytes.
    sent = wire::send_all(socket_.native_handle(), unsent_, -1, deadline);
    unsent_.clear();
  } else if (!unsent_.empty()) {
    frame.insert(frame.begin(), unsent_.begin(), unsent_.end());
    unsent_.clear();
  }
  last_failure_ = Failure::kOther;
  if (sent) sent = wire::send_all(socket_.native_handle(), frame, pass_fd, deadline);
  if (!sent) {
    if (sent.error().code() == ErrorCode::kDeadlineExceeded) {
      return std::unexpected(no_answer(socket_path_, deadline - started));
    }
    if (auto parting = parting_error()) return std::unexpected(std::move(*parting));
    last_failure_ = Failure::kNotSent;
    return fail(ErrorCode::kUnavailable,
                "lost the connection to the broker at " + socket_path_ + " (" +
                    sent.error().message() + "): is shmarrayd still running?");
  }
  for (;;) {
    auto reply = next_frame(deadline);
    if (!reply && reply.error().code() == ErrorCode::kDeadlineExceeded) {
      return std::unexpected(no_answer(socket_path_, deadline - started));
    }
    if (!reply) {
      // Nothing of a reply had arrived when the connection closed (a reset counts: the broker
      // died with our request unread).
      if (reply.error().code() == ErrorCode::kUnavailable && reader_.buffered() == 0) {
        last_failure_ = Failure::kNoReply;
      }
      return reply;
    }
    const auto& header = reply->frame.header;
    // Request id 0: an error about the connection itself (sent just before the broker closes it).
    if (header.request_id == id ||
        (header.request_id == 0 && header.type == wire::MessageType::kErrorReply)) {
      last_failure_ = Failure::kNone;
      return reply;
    }
    // A reply to an abandoned (timed-out) request: drop it.
  }
}

void Connection::post(wire::MessageType type, std::span<const std::byte> body) {
  auto frame = wire::encode_frame(type, next_request_id_++, body);
  std::size_t sent = 0;
  if (unsent_.empty()) {
    auto n = wire::send_some(socket_.native_handle(), frame, -1);
    if (!n) return;  // the connection is gone: the next call() finds out
    sent = *n;
  }
  unsent_.insert(unsent_.end(), frame.begin() + static_cast<std::ptrdiff_t>(sent), frame.end());
}

std::optional<Error> Connection::parting_error() {
  std::array<std::byte, 4096> buffer;
  for (int i = 0; i < 16; ++i) {
    auto frame = reader_.next();
    if (!frame) return std::nullopt;
    if (frame->has_value()) {
      const auto& f = **frame;
      if (f.header.request_id != 0 || f.header.type != wire::MessageType::kErrorReply) continue;
      auto err = wire::decode<wire::ErrorReply>(f.body);
      if (!err) return std::nullopt;
      return Error(err->code, std::move(err->message));
    }
    auto got = wire::receive_some(socket_.native_handle(), buffer);  // non-blocking
    if (!got || got->would_block || got->bytes == 0) return std::nullopt;
    reader_.append(std::span<const std::byte>(buffer.data(), got->bytes));
  }
  return std::nullopt;
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
    if (auto ready = wait_readable(deadline); !ready) {
      return std::unexpected(ready.error());
    }
    std::array<std::byte, 64 * 1024> buffer;
    auto got = wire::receive_some(socket_.native_handle(), buffer);
    if (!got && got.error().code() == ErrorCode::kUnavailable) {  // reset: the broker died
      return fail(ErrorCode::kUnavailable,
                  "lost the connection to the broker at " + socket_path_ + " (" +
                      got.error().message() + "): is shmarrayd still running?",
                  got.error().sys_errno());
    }
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

Result<void> Connection::wait_readable(wire::Clock::time_point deadline) {
  if (!interrupt_check_) return wire::wait_readable(socket_.native_handle(), deadline);
  for (;;) {
    const auto slice_end = std::min(deadline, wire::Clock::now() + kInterruptSlice);
    auto ready = wire::wait_readable(socket_.native_handle(), slice_end);
    if (ready || ready.error().code() != ErrorCode::kDeadlineExceeded || slice_end == deadline) {
      return ready;
    }
    if (auto go_on = interrupt_check_(); !go_on) return go_on;
  }
}

}  // namespace shmarray::detail
