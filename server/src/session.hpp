#pragma once
// One client connection. Reads frames (Asio readiness + recvmsg, so descriptors a client sends
// are seen: the one a ReadmitSubscriberRequest carries goes to its handler, any other is a
// protocol error and closed), hands each to the Broker, and writes replies in order, each reply's
// descriptor attached to its first byte. A slow reader only fills its own queue: while more than
// kPauseReadingAbove is queued its requests are not read; a queue past --max-pending-reply-bytes
// (or all queues past --max-pending-reply-bytes-total), or one that makes no progress for
// --write-timeout-ms, closes the connection. One turn of a connection handles at most
// kFramesPerTurn of its requests (and for at most about kTurnTime), so a pipelining client cannot
// hold the others up. Single-threaded (the broker's io_context).
//
// Lifetime: the Broker owns sessions. close() stops all I/O at once, but the Broker hears of it
// (Broker::on_session_closed: open counts, ephemeral arrays, parked opens, sessions_) only from a
// handler posted to the io_context, i.e. after the handler that caused the close has returned.
// So a send() that fails never changes registry or session state under its caller.
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <deque>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "config.hpp"
#include "passed_descriptor.hpp"
#include "peer_credentials.hpp"
#include "registry.hpp"
#include "shmarray/unique_fd.hpp"
#include "shmarray/wire/frame.hpp"

namespace shmarray::server {

class Broker;

class Session : public std::enable_shared_from_this<Session> {
 public:
  using Socket = boost::asio::local::stream_protocol::socket;

  Session(Broker& broker, Socket socket, SessionId id, PeerCredentials peer, const Config& config);

  void start();
  // Queues one whole frame; `fd` (if valid) travels with its first byte and is closed once sent.
  void send(std::vector<std::byte> frame, UniqueFd fd = UniqueFd());
  void send_error(std::uint64_t request_id, const Error& error);
  // Stops reading; closes once every queued reply has been written (or after a short grace).
  void close_after_flush();
  // Stops all I/O now; the Broker forgets the session once the current handler has returned.
  void close();

  [[nodiscard]] SessionId id() const noexcept { return id_; }
  [[nodiscard]] const PeerCredentials& peer() const noexcept { return peer_; }
  // When the broker accepted the connection (peer() was read then).
  [[nodiscard]] std::chrono::steady_clock::time_point connected_at() const noexcept {
    return connected_at_;
  }
  [[nodiscard]] bool closed() const noexcept { return closed_; }
  // Bytes of replies queued now (not yet written to the socket).
  [[nodiscard]] std::size_t queued_bytes() const noexcept { return outgoing_bytes_; }
  // Closes a connection that does not read its replies, logging `why` with its queue.
  void drop_slow_reader(std::string_view why);
  // The most bytes of replies that were ever queued at once.
  [[nodiscard]] std::size_t peak_queued_bytes() const noexcept { return peak_outgoing_bytes_; }

  // Broker-owned per-connection state.
  bool hello_done = false;
  std::uint16_t protocol_version = 0;
  std::string client_name;
  std::set<std::string> opened;  // names this connection created or opened
  bool watching = false;
  std::string watch_prefix;
  // The descriptor the frame being handled carried (only a ReadmitSubscriberRequest carries
  // one: passed_descriptor.hpp); the handler may take it, else it is closed after the handler.
  UniqueFd passed_fd;

 private:
  struct Outgoing {
    std::vector<std::byte> bytes;
    UniqueFd fd;
    std::size_t sent = 0;
  };

  void wait_readable();
  // Reads and handles requests, at most `budget` of them (this turn's share).
  void on_readable(int budget);
  // Handles the whole frames read so far while `budget` lasts (counting it down): false when
  // the rest was left for resume_frames() (posted) or the connection is closing; `was_idle`: the
  // buffer was empty before the read that brought them (a frame left started then arms the read
  // deadline).
  bool handle_frames(bool was_idle, int& budget);
  void resume_frames();
  void flush();
  void arm_read_deadline();
  void arm_write_deadline();

  Broker& broker_;
  Socket socket_;
  boost::asio::steady_timer read_deadline_;
  boost::asio::steady_timer write_deadline_;
  SessionId id_;
  PeerCredentials peer_;
  std::chrono::steady_clock::time_point connected_at_ = std::chrono::steady_clock::now();
  const Config& config_;
  wire::FrameReader reader_;
  PassedDescriptor passed_;
  std::deque<Outgoing> outgoing_;
  std::size_t outgoing_bytes_ = 0;
  std::size_t peak_outgoing_bytes_ = 0;
  bool writing_ = false;
  bool reading_ = true;
  bool closing_ = false;
  bool closed_ = false;
  bool read_paused_ = false;  // more than kPauseReadingAbove queued: flush() resumes reading
  bool write_deadline_armed_ = false;
  bool frames_pending_ = false;  // whole frames left for resume_frames(), which is posted
  bool pending_was_idle_ = false;
  std::chrono::steady_clock::time_point turn_ends_;  // no new request is started after it
  std::chrono::steady_clock::time_point last_write_progress_;  // or when the queue last filled
};

}  // namespace shmarray::server
