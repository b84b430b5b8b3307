#pragma once
// One client connection. Reads frames (Asio readiness + recvmsg, so descriptors a client sends
// are seen and closed), hands each to the Broker, and writes replies in order, each reply's
// descriptor attached to its first byte. A slow reader only fills its own queue; past the limit
// the connection is dropped. Single-threaded (the broker's io_context).
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>
#include <deque>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "config.hpp"
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

  [[nodiscard]] SessionId id() const noexcept { return id_; }
  [[nodiscard]] const PeerCredentials& peer() const noexcept { return peer_; }
  [[nodiscard]] bool closed() const noexcept { return closed_; }

  // Broker-owned per-connection state.
  bool hello_done = false;
  std::uint16_t protocol_version = 0;
  std::string client_name;
  std::set<std::string> opened;  // names this connection created or opened
  bool watching = false;
  std::string watch_prefix;

 private:
  struct Outgoing {
    std::vector<std::byte> bytes;
    UniqueFd fd;
    std::size_t sent = 0;
  };

  void wait_readable();
  void on_readable();
  void flush();
  void arm_read_deadline();
  void close();
  void drop_slow_reader();

  Broker& broker_;
  Socket socket_;
  boost::asio::steady_timer read_deadline_;
  SessionId id_;
  PeerCredentials peer_;
  const Config& config_;
  wire::FrameReader reader_;
  std::deque<Outgoing> outgoing_;
  std::size_t outgoing_bytes_ = 0;
  bool writing_ = false;
  bool reading_ = true;
  bool closing_ = false;
  bool closed_ = false;
  bool dropping_ = false;  // over max_pending_reply_bytes: queue nothing more, close soon
};

}  // namespace shmarray::server
