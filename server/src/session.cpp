#include "session.hpp"

#include <spdlog/spdlog.h>

#include <array>
#include <boost/asio/post.hpp>

#include "broker.hpp"
#include "shmarray/wire/fd_passing.hpp"
#include "shmarray/wire/messages.hpp"

namespace shmarray::server {

Session::Session(Broker& broker, Socket socket, SessionId id, PeerCredentials peer,
                 const Config& config)
    : broker_(broker),
      socket_(std::move(socket)),
      read_deadline_(socket_.get_executor()),
      id_(id),
      peer_(peer),
      config_(config),
      reader_(config.max_frame_bytes) {}

void Session::start() {
  socket_.non_blocking(true);
  // A new connection must say hello within the read timeout, like any started frame.
  arm_read_deadline();
  wait_readable();
}

void Session::wait_readable() {
  if (!reading_ || closed_) return;
  socket_.async_wait(Socket::wait_read, [self = shared_from_this()](boost::system::error_code ec) {
    if (ec || self->closed_) return;  // cancelled by close / close_after_flush
    self->on_readable();
  });
}

void Session::arm_read_deadline() {
  read_deadline_.expires_after(config_.read_timeout);
  read_deadline_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
    if (ec || self->closed_) return;
    const bool waiting_for_hello = !self->hello_done;
    if (waiting_for_hello || self->reader_.buffered() > 0) {
      spdlog::warn("connection {} (pid {}): {} within {} ms; closing it", self->id_,
                   self->peer_.pid, waiting_for_hello ? "no hello" : "incomplete frame",
                   self->config_.read_timeout.count());
      self->close();
    }
  });
}

void Session::on_readable() {
  std::array<std::byte, 16 * 1024> buffer;
  for (int round = 0; round < 16 && reading_ && !closed_; ++round) {
    auto got = wire::receive_some(socket_.native_handle(), buffer);
    if (!got) {
      spdlog::warn("connection {} (pid {}): {}", id_, peer_.pid, got.error().message());
      if (got.error().code() == ErrorCode::kProtocolError) {
        send_error(0, got.error());
        close_after_flush();
      } else {
        close();
      }
      return;
    }
    if (got->would_block) break;
    if (got->bytes == 0) {
      close();
      return;
    }
    if (!got->fds.empty()) {  // they are closed when `got` goes out of scope
      const Error e(ErrorCode::kProtocolError,
                    "clients must not send file descriptors to the broker");
      spdlog::warn("connection {} (pid {}): {}", id_, peer_.pid, e.message());
      send_error(0, e);
      close_after_flush();
      return;
    }
    const bool was_idle = reader_.buffered() == 0;
    reader_.append(std::span<const std::byte>(buffer.data(), got->bytes));
    for (;;) {
      auto frame = reader_.next();
      if (!frame) {
        spdlog::warn("connection {} (pid {}): {}", id_, peer_.pid, frame.error().message());
        send_error(0, frame.error());
        close_after_flush();
        return;
      }
      if (!frame->has_value()) break;
      broker_.handle(*this, std::move(**frame));
      if (closing_ || closed_ || dropping_) return;
    }
    if (was_idle && reader_.buffered() > 0) arm_read_deadline();
  }
  // Backpressure: a client that does not read its replies stops being read (send() saw the queue
  // pass the limit and posted the close).
  if (dropping_) return;
  wait_readable();
}

void Session::send(std::vector<std::byte> frame, UniqueFd fd) {
  if (closed_ || dropping_) return;
  outgoing_bytes_ += frame.size();
  outgoing_.push_back(Outgoing{std::move(frame), std::move(fd), 0});
  if (!writing_) flush();
  // Also checked here, not only after reading: a watcher that stops reading its events sends
  // nothing, so on_readable never runs for it, and its queue would grow without bound.
  if (!closed_ && outgoing_bytes_ > config_.max_pending_reply_bytes) drop_slow_reader();
}

void Session::drop_slow_reader() {
  spdlog::warn("connection {} (pid {}) does not read its replies ({} bytes queued); closing it",
               id_, peer_.pid, outgoing_bytes_);
  dropping_ = true;
  reading_ = false;
  // Closed from the io_context, not here: send() runs inside broker loops over the sessions,
  // which closing (it erases the session) would invalidate.
  boost::asio::post(socket_.get_executor(), [self = shared_from_this()] { self->close(); });
}

void Session::send_error(std::uint64_t request_id, const Error& error) {
  send(wire::encode_message(wire::ErrorReply{error.code(), error.message()}, request_id));
}

void Session::flush() {
  while (!outgoing_.empty() && !closed_) {
    Outgoing& out = outgoing_.front();
    auto n = wire::send_some(socket_.native_handle(),
                             std::span<const std::byte>(out.bytes).subspan(out.sent),
                             out.sent == 0 ? out.fd.get() : -1);
    if (!n) {
      spdlog::debug("connection {}: write failed: {}", id_, n.error().message());
      close();
      return;
    }
    if (*n == 0) {
      writing_ = true;
      socket_.async_wait(Socket::wait_write,
                         [self = shared_from_this()](boost::system::error_code ec) {
                           self->writing_ = false;
                           if (ec || self->closed_) return;
                           self->flush();
                         });
      return;
    }
    out.sent += *n;
    out.fd.reset();  // the kernel holds its own reference once the first byte is sent
    if (out.sent == out.bytes.size()) {
      outgoing_bytes_ -= out.bytes.size();
      outgoing_.pop_front();
    }
  }
  if (closing_ && outgoing_.empty()) close();
}

void Session::close_after_flush() {
  if (closed_) return;
  closing_ = true;
  reading_ = false;
  if (outgoing_.empty()) {
    close();
    return;
  }
  // Grace period for the last replies; a peer that never reads is closed anyway.
  read_deadline_.expires_after(std::chrono::seconds(2));
  read_deadline_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
    if (!ec) self->close();
  });
}

void Session::close() {
  if (closed_) return;
  closed_ = true;
  boost::system::error_code ignored;
  read_deadline_.cancel();
  socket_.cancel(ignored);
  socket_.close(ignored);
  outgoing_.clear();
  broker_.on_session_closed(*this);
}

}  // namespace shmarray::server
