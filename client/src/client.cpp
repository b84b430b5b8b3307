#include "shmarray/client.hpp"

#include <mutex>

#include "connection.hpp"
#include "mapped_segment.hpp"
#include "shmarray/socket_path.hpp"
#include "shmarray/wire/messages.hpp"

namespace shmarray {

class Client::Impl {
 public:
  ClientOptions options;
  std::string socket_path;
  std::mutex mutex;  // serialises calls on the connection
  std::unique_ptr<detail::Connection> connection;
  wire::HelloReply hello;

  wire::Clock::time_point deadline(std::chrono::milliseconds extra = {}) const {
    return wire::Clock::now() + options.request_timeout + extra;
  }

  // One request/reply round trip; returns the decoded reply and any descriptor it carried.
  template <class Reply, class Request>
  Result<std::pair<Reply, UniqueFd>> request(const Request& req,
                                             std::chrono::milliseconds extra = {}) {
    std::lock_guard lock(mutex);
    auto raw = connection->call(Request::kType, wire::encode_body(req), deadline(extra));
    if (!raw) return std::unexpected(raw.error());
    auto reply = detail::decode_reply<Reply>(raw->frame);
    if (!reply) return std::unexpected(reply.error());
    return std::pair<Reply, UniqueFd>(std::move(*reply), std::move(raw->fd));
  }

  // Maps the descriptor of a create/open reply (or reuses this process's mapping of it).
  Result<Array> make_array(ArrayInfo info, Access access, UniqueFd fd, bool populate) {
    auto segment = detail::find_mapping(info.id, access);
    if (!segment) {
      if (!fd) {
        return fail(ErrorCode::kProtocolError,
                    "broker reply for '" + info.name + "' carried no descriptor");
      }
      auto mapped = detail::map_segment(fd.get(), info, access, populate);
      if (!mapped) return std::unexpected(mapped.error());
      segment = std::move(*mapped);
    }
    // fd closes here: a mapped array holds no descriptor.
    return Array(std::move(segment), std::move(info), access);
  }
};

Client::Client(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Client::Client(Client&&) noexcept = default;
Client& Client::operator=(Client&&) noexcept = default;
Client::~Client() = default;

Result<Client> Client::connect(ClientOptions options) {
  auto impl = std::make_unique<Impl>();
  impl->socket_path = resolve_socket_path(options.socket_path);
  impl->options = std::move(options);
  auto connection = detail::Connection::open(impl->socket_path);
  if (!connection) return std::unexpected(connection.error());
  impl->connection = std::move(*connection);
  wire::HelloRequest hello;
  hello.client_name = impl->options.client_name;
  auto reply = impl->request<wire::HelloReply>(hello);
  if (!reply) return std::unexpected(reply.error());
  if (reply->first.version < wire::kMinProtocolVersion ||
      reply->first.version > wire::kProtocolVersion) {
    return fail(ErrorCode::kProtocolError,
                "broker at " + impl->socket_path + " chose protocol version " +
                    std::to_string(reply->first.version) + ", which this client does not speak");
  }
  impl->hello = std::move(reply->first);
  return Client(std::move(impl));
}

Result<Array> Client::create(std::string_view name, const ArraySpec& spec) {
  if (auto ok = validate_name(name); !ok) return std::unexpected(ok.error());
  auto reply = impl_->request<wire::CreateReply>(wire::CreateRequest{std::string(name), spec});
  if (!reply) return std::unexpected(reply.error());
  return impl_->make_array(std::move(reply->first.info), Access::kReadWrite,
                           std::move(reply->second), false);
}

Result<Array> Client::open(std::string_view name, Access access, const OpenOptions& options) {
  if (auto ok = validate_name(name); !ok) return std::unexpected(ok.error());
  const auto wait_ms = std::max<std::int64_t>(0, options.wait.count());
  wire::OpenRequest req{std::string(name), access,
                        static_cast<std::uint32_t>(std::min<std::int64_t>(wait_ms, UINT32_MAX))};
  auto reply = impl_->request<wire::OpenReply>(req, options.wait);
  if (!reply) return std::unexpected(reply.error());
  if (reply->first.access != access) {
    return fail(ErrorCode::kProtocolError, "broker granted a different access than requested");
  }
  return impl_->make_array(std::move(reply->first.info), access, std::move(reply->second),
                           options.populate);
}

Result<void> Client::remove(std::string_view name) {
  auto reply = impl_->request<wire::RemoveReply>(wire::RemoveRequest{std::string(name)});
  if (!reply) return std::unexpected(reply.error());
  return {};
}

Result<std::vector<ArrayInfo>> Client::list(std::string_view prefix) {
  auto reply = impl_->request<wire::ListReply>(wire::ListRequest{std::string(prefix)});
  if (!reply) return std::unexpected(reply.error());
  return std::move(reply->first.arrays);
}

Result<ArrayInfo> Client::stat(std::string_view name) {
  auto reply = impl_->request<wire::StatReply>(wire::StatRequest{std::string(name)});
  if (!reply) return std::unexpected(reply.error());
  return std::move(reply->first.info);
}

Result<void> Client::chmod(std::string_view name, std::uint32_t mode) {
  if (auto ok = validate_name(name); !ok) return std::unexpected(ok.error());
  if ((mode & ~0777u) != 0) {
    return fail(ErrorCode::kInvalidArgument, "mode must be within 0777 (permission bits only)");
  }
  auto reply = impl_->request<wire::ChmodReply>(wire::ChmodRequest{std::string(name), mode});
  if (!reply) return std::unexpected(reply.error());
  return {};
}

const std::string& Client::socket_path() const noexcept { return impl_->socket_path; }
std::uint16_t Client::protocol_version() const noexcept { return impl_->hello.version; }
std::uint32_t Client::broker_pid() const noexcept { return impl_->hello.broker_pid; }

}  // namespace shmarray
