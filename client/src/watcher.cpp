#include "shmarray/watcher.hpp"

#include "connection.hpp"
#include "shmarray/socket_path.hpp"

namespace shmarray {

class Watcher::Impl {
 public:
  std::unique_ptr<detail::Connection> connection;
};

Watcher::Watcher(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Watcher::Watcher(Watcher&&) noexcept = default;
Watcher& Watcher::operator=(Watcher&&) noexcept = default;
Watcher::~Watcher() = default;

Result<Watcher> Watcher::start(const std::string& socket_path, const std::string& prefix,
                               std::optional<uid_t> broker_uid) {
  auto connection = detail::Connection::open(resolve_client_socket_path(socket_path), broker_uid);
  if (!connection) return std::unexpected(connection.error());
  const auto deadline = wire::Clock::now() + std::chrono::seconds(10);
  wire::HelloRequest hello;
  hello.client_name = "shmarray-watch";
  auto raw = (*connection)->call(hello.kType, wire::encode_body(hello), deadline);
  if (!raw) return std::unexpected(raw.error());
  if (auto ok = detail::decode_reply<wire::HelloReply>(raw->frame); !ok) {
    return std::unexpected(ok.error());
  }
  wire::WatchRequest req{prefix};
  raw = (*connection)->call(req.kType, wire::encode_body(req), deadline);
  if (!raw) return std::unexpected(raw.error());
  if (auto ok = detail::decode_reply<wire::WatchReply>(raw->frame); !ok) {
    return std::unexpected(ok.error());
  }
  auto impl = std::make_unique<Impl>();
  impl->connection = std::move(*connection);
  return Watcher(std::move(impl));
}

Result<std::optional<WatchEvent>> Watcher::next(std::chrono::milliseconds timeout) {
  auto raw = impl_->connection->next_frame(wire::Clock::now() + timeout);
  if (!raw) {
    if (raw.error().code() == ErrorCode::kDeadlineExceeded) return std::optional<WatchEvent>{};
    return std::unexpected(raw.error());
  }
  auto event = detail::decode_reply<wire::Event>(raw->frame);
  if (!event) return std::unexpected(event.error());
  return std::optional<WatchEvent>(WatchEvent{event->kind == wire::EventKind::kCreated
                                                  ? WatchEvent::Kind::kCreated
                                                  : WatchEvent::Kind::kRemoved,
                                              std::move(event->name), std::move(event->info)});
}

}  // namespace shmarray
