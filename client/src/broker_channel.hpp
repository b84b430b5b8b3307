#pragma once
// The Client's connection as streams use it: Publishers ask the broker for the member list and
// subscriber pages long after create_stream returned, possibly after the Client object is gone.
// A BrokerChannel shares the Client's connection (its lock, reconnects and retries).
#include <chrono>
#include <memory>
#include <span>
#include <utility>
#include <vector>

#include "connection.hpp"
#include "shmarray/error.hpp"
#include "shmarray/unique_fd.hpp"
#include "shmarray/wire/frame.hpp"
#include "shmarray/wire/stream_messages.hpp"

namespace shmarray::detail {

class BrokerChannel {
 public:
  virtual ~BrokerChannel() = default;
  // One request/reply round trip (serialised with the Client's other calls).
  [[nodiscard]] virtual Result<Connection::Reply> call(wire::MessageType type,
                                                      std::span<const std::byte> body,
                                                      std::chrono::milliseconds extra) = 0;
  // The same, the request carrying a copy of descriptor `pass_fd` (ReadmitSubscriberRequest).
  [[nodiscard]] virtual Result<Connection::Reply> call_passing(wire::MessageType type,
                                                              std::span<const std::byte> body,
                                                              int pass_fd) = 0;
  // Sends a request whose reply nobody awaits. Never blocks on the broker, nor on a call another
  // thread has in progress on the same Client (it is queued and goes out when that call ends):
  // a Subscriber or Publisher may be destroyed on any thread, even while another waits in open().
  virtual void post(wire::MessageType type, std::span<const std::byte> body) = 0;
  // Pid of the broker of the current connection (changes when a restarted broker answers).
  [[nodiscard]] virtual std::uint32_t broker_pid() const = 0;
  // The socket, for messages.
  [[nodiscard]] virtual const std::string& socket_path() const = 0;
};

// A typed round trip: the decoded reply and the descriptor it carried (if any).
template <class Reply, class Request>
[[nodiscard]] Result<std::pair<Reply, UniqueFd>> request(BrokerChannel& channel,
                                                         const Request& req,
                                                         std::chrono::milliseconds extra = {}) {
  auto raw = channel.call(Request::kType, wire::encode_body(req), extra);
  if (!raw) return std::unexpected(raw.error());
  auto reply = decode_reply<Reply>(raw->frame);
  if (!reply) return std::unexpected(reply.error());
  return std::pair<Reply, UniqueFd>(std::move(*reply), std::move(raw->fd));
}

// The same, the request carrying a copy of `pass_fd`.
template <class Reply, class Request>
[[nodiscard]] Result<Reply> request_passing(BrokerChannel& channel, const Request& req,
                                            int pass_fd) {
  auto raw = channel.call_passing(Request::kType, wire::encode_body(req), pass_fd);
  if (!raw) return std::unexpected(raw.error());
  return decode_reply<Reply>(raw->frame);
}

}  // namespace shmarray::detail
