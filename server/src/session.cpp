#include "session.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <array>
#include <boost/asio/post.hpp>

#include "broker.hpp"
#include "shmarray/wire/fd_passing.hpp"
#include "shmarray/wire/messages.hpp"

namespace shmarray::server {
namespace {

// Reading a connection's requests pauses while this much of its replies is queued, so a client
// that sends without reading holds at most about this much of the broker's memory (plus one read
// round's replies) until --write-timeout-ms closes it.
constexpr std::size_t kPauseReadingAbove = 1u << 20;

// One turn of a connection in the event loop handles at most this many of its requests, and
// starts no new one after kTurnTime; the rest wait behind every other connection's ready work
// (and the timers). One 16 KiB read holds about 500 small requests: before turns, a client that
// pipelined them made every other client wait for all of them (and for up to 16 such reads).
constexpr int kFramesPerTurn = 64;
constexpr auto kTurnTime = std::chrono::milliseconds(1);

}  // namespace

Session::Session(Broker& broker, Socket socket, SessionId id, PeerCredentials peer,
                 const Config& config)
    : broker_(broker),
      socket_(std::move(socket)),
      read_deadline_(socket_.get_executor()),
      write_deadline_(socket_.get_executor()),
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
    self->turn_ends_ = std::chrono::steady_clock::now() + kTurnTime;
    self->on_readable(kFramesPerTurn);
  });
}

void Session::arm_read_deadline() {
  read_deadline_.expires_after(config_.read_timeout);
  read_deadline_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
    if (ec || self->closed_) return;
    if (self->frames_pending_) {  // whole requests wait for their turn: not a stalled frame
      self->arm_read_deadline();
      return;
    }
    const bool waiting_for_hello = !self->hello_done;
    if (waiting_for_hello || self->reader_.buffered() > 0) {
      spdlog::warn("connection {} (pid {}): {} within {} ms; closing it", self->id_,
                   self->peer_.pid, waiting_for_hello ? "no hello" : "incomplete frame",
                   self->config_.read_timeout.count());
      self->close();
    }
  });
}

bool Session::handle_frames(bool was_idle, int& budget) {
  for (;; --budget) {
    // The first request is always handled; the clock is read only when another may follow.
    const bool started = budget < kFramesPerTurn;
    if (budget == 0 || (started && reader_.buffered() > 0 &&
                        std::chrono::steady_clock::now() >= turn_ends_)) {
      // The rest of what was read waits for the next turn; resume_frames() then reads on.
      frames_pending_ = true;
      pending_was_idle_ = was_idle;
      boost::asio::post(socket_.get_executor(),
                        [self = shared_from_this()] { self->resume_frames(); });
      return false;
    }
    auto frame = reader_.next();
    if (!frame) {
      spdlog::warn("connection {} (pid {}): {}", id_, peer_.pid, frame.error().message());
      send_error(0, frame.error());
      close_after_flush();
      return false;
    }
    if (!frame->has_value()) break;
    auto fd = passed_.claim(**frame);
    if (!fd) {
      spdlog::warn("connection {} (pid {}): {}", id_, peer_.pid, fd.error().message());
      send_error(0, fd.error());
      close_after_flush();
      return false;
    }
    passed_fd = std::move(*fd);
    broker_.handle(*this, std::move(**frame));
    passed_fd.reset();  // closed unless the handler took it
    if (closing_ || closed_) return false;
  }
  // A started frame must be finished within the read timeout (counted from when it started).
  if (was_idle && reader_.buffered() > 0) arm_read_deadline();
  return true;
}

void Session::resume_frames() {
  frames_pending_ = false;
  if (closed_ || closing_) return;
  turn_ends_ = std::chrono::steady_clock::now() + kTurnTime;
  int budget = kFramesPerTurn;
  if (!handle_frames(pending_was_idle_, budget)) return;
  on_readable(budget);  // reads on, or pauses while too much of the replies is queued
}

void Session::on_readable(int budget) {
  std::array<std::byte, 16 * 1024> buffer;
  for (int round = 0; round < 16 && reading_ && !closed_ && outgoing_bytes_ <= kPauseReadingAbove;
       ++round) {
    auto got = wire::receive_some(socket_.native_handle(), buffer);
    if (!got) {
      // A peer that exits with a reply still unread (e.g. the CloseReply of its last array)
      // resets the connection: an ordinary disconnect, not worth a warning.
      const bool reset = got.error().sys_errno() == ECONNRESET;
      if (reset) {
        spdlog::debug("connection {} (pid {}): {}", id_, peer_.pid, got.error().message());
      } else {
        spdlog::warn("connection {} (pid {}): {}", id_, peer_.pid, got.error().message());
      }
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
    const std::size_t before = reader_.buffered();
    const bool was_idle = before == 0;
    reader_.append(std::span<const std::byte>(buffer.data(), got->bytes));
    if (!got->fds.empty()) {  // any not taken are closed when `got` goes out of scope
      auto ok = got->fds.size() == 1
                    ? passed_.arrived(std::move(got->fds[0]), reader_, before)
                    : fail(ErrorCode::kProtocolError,
                           "more than one descriptor in one message to the broker");
      if (!ok) {
        spdlog::warn("connection {} (pid {}): {}", id_, peer_.pid, ok.error().message());
        send_error(0, ok.error());
        close_after_flush();
        return;
      }
    }
    if (!handle_frames(was_idle, budget)) return;
    // Reading on to EAGAIN after a short read costs a system call, but skipping it measured
    // slower (stat p50 11.0 -> 11.9 us, same run, bench_control_plane on the dev VM): the broker
    // then sleeps in epoll_wait sooner and pays a full wake-up for the next request.
  }
  if (closed_ || !reading_) return;
  // Backpressure: a client that does not read its replies stops being read until they drain.
  if (outgoing_bytes_ > kPauseReadingAbove) {
    read_paused_ = true;
    return;
  }
  wait_readable();
}

void Session::send(std::vector<std::byte> frame, UniqueFd fd) {
  if (closed_) return;
  if (outgoing_.empty()) last_write_progress_ = std::chrono::steady_clock::now();
  outgoing_bytes_ += frame.size();
  peak_outgoing_bytes_ = std::max(peak_outgoing_bytes_, outgoing_bytes_);
  broker_.queued_reply_bytes() += frame.size();
  outgoing_.push_back(Outgoing{std::move(frame), std::move(fd), 0});
  if (!writing_) flush();
  if (closed_) return;
  // Checked here, not only after reading: a watcher that stops reading its events sends nothing,
  // so on_readable never runs for it, and its queue would grow without bound.
  if (outgoing_bytes_ > config_.max_pending_reply_bytes) {
    drop_slow_reader("its limit (--max-pending-reply-bytes " +
                     std::to_string(config_.max_pending_reply_bytes) + ")");
  } else if (broker_.queued_reply_bytes() > config_.max_pending_reply_bytes_total) {
    // Not necessarily this connection: the broker drops those holding the most.
    broker_.shed_queued_replies();
  }
}

void Session::drop_slow_reader(std::string_view why) {
  spdlog::warn("connection {} (pid {}) does not read its replies ({} bytes queued, {}); closing it",
               id_, peer_.pid, outgoing_bytes_, why);
  // Safe inside broker loops over the sessions: the broker forgets this one only later.
  close();
}

void Session::arm_write_deadline() {
  if (write_deadline_armed_ || closed_) return;
  write_deadline_armed_ = true;
  write_deadline_.expires_at(last_write_progress_ + config_.write_timeout);
  write_deadline_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
    self->write_deadline_armed_ = false;
    if (ec || self->closed_ || self->outgoing_.empty()) return;
    if (std::chrono::steady_clock::now() - self->last_write_progress_ <
        self->config_.write_timeout) {
      self->arm_write_deadline();  // progress was made since it was armed
      return;
    }
    spdlog::info("connection {} (pid {}) has read none of its replies for {} ms ({} bytes "
                 "queued); closing it (--write-timeout-ms)",
                 self->id_, self->peer_.pid, self->config_.write_timeout.count(),
                 self->outgoing_bytes_);
    self->close();
  });
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
      arm_write_deadline();
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
    last_write_progress_ = std::chrono::steady_clock::now();
    out.fd.reset();  // the kernel holds its own reference once the first byte is sent
    if (out.sent == out.bytes.size()) {
      outgoing_bytes_ -= out.bytes.size();
      broker_.queued_reply_bytes() -= out.bytes.size();
      outgoing_.pop_front();
    }
  }
  if (closing_ && outgoing_.empty()) {
    close();
    return;
  }
  if (read_paused_ && !closed_ && outgoing_bytes_ <= kPauseReadingAbove / 2) {
    read_paused_ = false;
    wait_readable();
  }
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
  write_deadline_.cancel();
  socket_.cancel(ignored);
  socket_.close(ignored);
  broker_.queued_reply_bytes() -= outgoing_bytes_;
  outgoing_bytes_ = 0;
  outgoing_.clear();
  // Deferred: the handler that called close() (a send inside Broker::on_create, say) may still
  // hold references to registry records that forgetting this session would remove.
  boost::asio::post(socket_.get_executor(),
                    [self = shared_from_this()] { self->broker_.on_session_closed(*self); });
}

}  // namespace shmarray::server
