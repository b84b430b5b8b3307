#include "shmarray/client.hpp"

#include <atomic>
#include <mutex>
#include <optional>
#include <thread>

#include "broker_channel.hpp"
#include "connection.hpp"
#include "mapped_segment.hpp"
#include "stream_core.hpp"
#include "shmarray/owner_mismatch.hpp"
#include "shmarray/socket_path.hpp"
#include "shmarray/wire/messages.hpp"

namespace shmarray {

class Client::Impl {
 public:
  ClientOptions options;
  std::string socket_path;
  std::mutex mutex;  // serialises calls on the connection
  std::unique_ptr<detail::Connection> connection;  // null after a failed reconnect
  std::atomic<std::uint16_t> protocol_version{0};
  std::atomic<std::uint32_t> broker_pid{0};
  // Arrays this process let go of, to tell the broker (see close_notifier.hpp).
  std::shared_ptr<detail::CloseNotifier> closes = std::make_shared<detail::CloseNotifier>();
  // Messages without a reply (a stream's DetachRequest) from any thread: they never wait for a
  // call in progress on another thread (which may last as long as an open's wait), but go out
  // when it ends (RequestLock) or at once if none is.
  std::mutex posts_mutex;
  std::vector<std::pair<wire::MessageType, std::vector<std::byte>>> posts;

  Impl() {
    closes->attach([this] { flush_if_idle(); });
  }
  ~Impl() { closes->detach(); }
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;

  // Holding `mutex`: a CloseRequest for each released array, then the queued posts; their
  // replies are not awaited (Connection::call drops replies to other request ids).
  void send_queued() {
    for (auto& id : closes->take()) {
      if (!connection) continue;  // the broker that counted this open is gone
      connection->post(wire::CloseRequest::kType, wire::encode_body(wire::CloseRequest{id}));
    }
    std::vector<std::pair<wire::MessageType, std::vector<std::byte>>> queued;
    {
      std::lock_guard lock(posts_mutex);
      queued.swap(posts);
    }
    for (const auto& [type, body] : queued) {
      if (connection) connection->post(type, body);
    }
  }

  [[nodiscard]] bool nothing_queued() {
    std::lock_guard lock(posts_mutex);
    return posts.empty() && closes->empty();
  }

  // Not holding `mutex`: sends what is queued unless a call is in progress (whose RequestLock
  // sends it when the call ends). Whoever queues calls this after queuing, and every call after
  // it lets go of `mutex`, so nothing queued waits for a later call.
  void flush_if_idle() {
    while (!nothing_queued()) {
      std::unique_lock lock(mutex, std::try_to_lock);
      if (!lock) return;
      send_queued();
    }
  }

  // `mutex` for one call: what is queued goes out first, and what was queued during the call
  // goes out when it ends.
  class RequestLock {
   public:
    explicit RequestLock(Impl& impl) : impl_(impl), lock_(impl.mutex) { impl_.send_queued(); }
    ~RequestLock() {
      lock_.unlock();
      impl_.flush_if_idle();
    }
    RequestLock(const RequestLock&) = delete;
    RequestLock& operator=(const RequestLock&) = delete;

   private:
    Impl& impl_;
    std::unique_lock<std::mutex> lock_;
  };

  wire::Clock::time_point deadline(std::chrono::milliseconds extra = {}) const {
    return wire::Clock::now() + options.request_timeout + extra;
  }

  // Connects and says hello. kUnavailable if no broker listens there.
  Result<void> handshake() {
    auto c = detail::Connection::open(socket_path, options.broker_uid);
    if (!c) return std::unexpected(c.error());
    (*c)->set_interrupt_check(options.interrupt_check);
    wire::HelloRequest hello;
    hello.client_name = options.client_name;
    auto raw = (*c)->call(hello.kType, wire::encode_body(hello), deadline());
    if (!raw) return std::unexpected(raw.error());
    auto reply = detail::decode_reply<wire::HelloReply>(raw->frame);
    if (!reply) return std::unexpected(reply.error());
    if (reply->version < wire::kMinProtocolVersion || reply->version > wire::kProtocolVersion) {
      return fail(ErrorCode::kProtocolError,
                  "broker at " + socket_path + " chose protocol version " +
                      std::to_string(reply->version) + ", which this client does not speak");
    }
    connection = std::move(*c);
    protocol_version = reply->version;
    broker_pid = reply->broker_pid;
    return {};
  }

  // The broker went away: a new connection, `reconnect_attempts` tries `reconnect_delay` apart.
  Result<void> reconnect() {
    connection.reset();
    if (options.reconnect_attempts <= 0) {
      return fail(ErrorCode::kUnavailable,
                  "lost the connection to the broker at " + socket_path +
                      " (reconnecting is off: ClientOptions::reconnect_attempts is 0)");
    }
    std::optional<Error> last;
    for (int attempt = 0; attempt < options.reconnect_attempts; ++attempt) {
      if (attempt > 0) std::this_thread::sleep_for(options.reconnect_delay);
      auto ok = handshake();
      if (ok) return {};
      last = ok.error();
      // Only "nobody answers" is worth waiting out; a refusal or a protocol mismatch is final.
      if (last->code() != ErrorCode::kUnavailable) return std::unexpected(*last);
    }
    return fail(ErrorCode::kUnavailable,
                "lost the broker at " + socket_path + " and could not reconnect (" +
                    std::to_string(options.reconnect_attempts) + " attempts " +
                    std::to_string(options.reconnect_delay.count()) + " ms apart; last: " +
                    last->message() + ")",
                last->sys_errno());
  }

  struct Exchange {
    detail::Connection::Reply reply;
    bool reply_lost_once = false;  // the first attempt was sent but its reply was lost
  };

  // One request/reply round trip, reconnecting when the broker went away. Retried once, on a new
  // connection, when the request never reached the old broker or that broker closed before any
  // reply; never after a timeout or a malformed reply.
  Result<Exchange> exchange(wire::MessageType type, std::span<const std::byte> body,
                            std::chrono::milliseconds extra, int pass_fd = -1) {
    bool reply_lost = false;
    for (int attempt = 0;; ++attempt) {
      if (!connection) {
        if (auto ok = reconnect(); !ok) return std::unexpected(ok.error());
      }
      auto raw = connection->call(type, body, deadline(extra), pass_fd);
      if (raw) return Exchange{std::move(*raw), reply_lost};
      const auto failure = connection->last_failure();
      // A timed-out (or interrupted) connection stays usable (a late reply is dropped by request
      // id); after any other failure it is not.
      if (raw.error().code() != ErrorCode::kDeadlineExceeded &&
          raw.error().code() != ErrorCode::kCancelled) {
        connection.reset();
      }
      const bool retry = attempt == 0 && options.reconnect_attempts > 0 &&
                         (failure == detail::Connection::Failure::kNotSent ||
                          failure == detail::Connection::Failure::kNoReply);
      if (!retry) return std::unexpected(raw.error());
      reply_lost = failure == detail::Connection::Failure::kNoReply;
    }
  }

  // One request/reply round trip; returns the decoded reply and any descriptor it carried.
  template <class Reply, class Request>
  Result<std::pair<Reply, UniqueFd>> request(const Request& req,
                                             std::chrono::milliseconds extra = {}) {
    RequestLock lock(*this);
    auto raw = exchange(Request::kType, wire::encode_body(req), extra);
    if (!raw) return std::unexpected(raw.error());
    auto reply = detail::decode_reply<Reply>(raw->reply.frame);
    if (!reply) {
      if (raw->reply_lost_once) return std::unexpected(explain_retry(Request::kType, reply.error()));
      return std::unexpected(reply.error());
    }
    return Result<std::pair<Reply, UniqueFd>>(std::in_place, std::move(*reply),
                                              std::move(raw->reply.fd));
  }

  // A retried create/remove whose first reply was lost may have been applied by the first try.
  Error explain_retry(wire::MessageType type, const Error& e) const {
    const bool create = type == wire::MessageType::kCreateRequest;
    if ((create && e.code() == ErrorCode::kAlreadyExists) ||
        (type == wire::MessageType::kRemoveRequest && e.code() == ErrorCode::kNotFound)) {
      return Error(e.code(), std::string("the broker at ") + socket_path +
                                 " went away before answering this " +
                                 (create ? "create" : "remove") +
                                 ", so it was sent again after reconnecting; the first attempt "
                                 "was probably applied: " + e.message());
    }
    return e;
  }

  // The connection as Publishers and Subscribers use it; keeps this Impl alive.
  static std::shared_ptr<detail::BrokerChannel> channel(std::shared_ptr<Impl> self) {
    struct Channel final : detail::BrokerChannel {
      std::shared_ptr<Impl> impl;
      explicit Channel(std::shared_ptr<Impl> i) : impl(std::move(i)) {}
      Result<detail::Connection::Reply> call(wire::MessageType type,
                                             std::span<const std::byte> body,
                                             std::chrono::milliseconds extra) override {
        RequestLock lock(*impl);
        auto raw = impl->exchange(type, body, extra);
        if (!raw) return std::unexpected(raw.error());
        return std::move(raw->reply);
      }
      Result<detail::Connection::Reply> call_passing(wire::MessageType type,
                                                     std::span<const std::byte> body,
                                                     int pass_fd) override {
        RequestLock lock(*impl);
        auto raw = impl->exchange(type, body, {}, pass_fd);
        if (!raw) return std::unexpected(raw.error());
        return std::move(raw->reply);
      }
      void post(wire::MessageType type, std::span<const std::byte> body) override {
        {
          std::lock_guard lock(impl->posts_mutex);
          impl->posts.emplace_back(type, std::vector<std::byte>(body.begin(), body.end()));
        }
        impl->flush_if_idle();
      }
      std::uint32_t broker_pid() const override { return impl->broker_pid; }
      const std::string& socket_path() const override { return impl->socket_path; }
    };
    return std::make_shared<Channel>(std::move(self));
  }

  // Maps the descriptor of a create/open reply (or reuses this process's mapping of it).
  // `info` is taken by reference: an ArrayInfo move is ~250 instructions (six strings, three
  // vectors), and an open used to move it about eight times on its way to the Array.
  Result<Array> make_array(ArrayInfo&& info, Access access, UniqueFd fd, bool populate) {
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
    segment->add_holder(closes);
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
  impl->socket_path = resolve_client_socket_path(options.socket_path);
  impl->options = std::move(options);
  if (auto ok = impl->handshake(); !ok) return std::unexpected(ok.error());
  return Client(std::move(impl));
}

Result<Array> Client::create(std::string_view name, const ArraySpec& spec) {
  if (auto ok = validate_name(name); !ok) return std::unexpected(ok.error());
  auto reply = impl_->request<wire::CreateReply>(wire::CreateRequest{std::string(name), spec});
  if (!reply) return std::unexpected(reply.error());
  return impl_->make_array(std::move(reply->first.info), Access::kReadWrite,
                           std::move(reply->second), spec.populate);
}

Result<Array> Client::open(std::string_view name, Access access, const OpenOptions& options) {
  if (auto ok = validate_name(name); !ok) return std::unexpected(ok.error());
  const auto wait_ms = std::max<std::int64_t>(0, options.wait.count());
  wire::OpenRequest req{std::string(name), access,
                        static_cast<std::uint32_t>(std::min<std::int64_t>(wait_ms, UINT32_MAX)),
                        options.owner};
  auto reply = impl_->request<wire::OpenReply>(req, options.wait);
  if (!reply) return std::unexpected(reply.error());
  if (reply->first.access != access) {
    return fail(ErrorCode::kProtocolError, "broker granted a different access than requested");
  }
  if (options.owner && reply->first.info.owner_uid != *options.owner) {
    // The broker refuses this itself; checked again for an older broker (which ignores the
    // request's owner), against the verified broker's metadata. The descriptor closes unmapped.
    return std::unexpected(owner_mismatch(name, reply->first.info.owner_uid, *options.owner));
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
  // Page by page (see wire::kMaxListPage): the broker serves other clients between pages, and no
  // reply grows with the number of arrays. Names are unique and ordered, so resuming after the
  // last name seen neither skips nor repeats an array that exists throughout.
  std::vector<ArrayInfo> all;
  std::string after;
  for (;;) {
    auto reply = impl_->request<wire::ListReply>(
        wire::ListRequest{std::string(prefix), after, wire::kMaxListPage});
    if (!reply) return std::unexpected(reply.error());
    auto& page = reply->first;
    if (all.empty()) {
      all = std::move(page.arrays);
    } else {
      all.insert(all.end(), std::make_move_iterator(page.arrays.begin()),
                 std::make_move_iterator(page.arrays.end()));
    }
    if (page.next_after.empty()) return all;
    if (page.next_after <= after) {
      return fail(ErrorCode::kProtocolError, "list: the broker's next page does not move forward");
    }
    after = std::move(page.next_after);
  }
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

Result<Publisher> Client::create_stream(std::string_view name, const StreamSpec& spec) {
  auto core = detail::create_stream(Impl::channel(impl_), name, spec);
  if (!core) return std::unexpected(core.error());
  return Publisher(std::move(*core));
}

Result<Publisher> Client::open_publisher(std::string_view name) {
  auto core = detail::open_publisher(Impl::channel(impl_), name);
  if (!core) return std::unexpected(core.error());
  return Publisher(std::move(*core));
}

Result<Subscriber> Client::subscribe(std::string_view name, const SubscribeOptions& options) {
  auto core = detail::subscribe(Impl::channel(impl_), name, options);
  if (!core) return std::unexpected(core.error());
  return Subscriber(std::move(*core));
}

Result<std::vector<MirrorInfo>> Client::mirror_add(std::string_view prefix,
                                                   std::string_view peer) {
  auto reply = impl_->request<wire::MirrorReply>(
      wire::MirrorRequest{wire::MirrorOp::kAdd, std::string(prefix), std::string(peer), {}});
  if (!reply) return std::unexpected(reply.error());
  return std::move(reply->first.mirrors);
}

Result<std::vector<MirrorInfo>> Client::mirror_remove(std::string_view prefix) {
  auto reply = impl_->request<wire::MirrorReply>(
      wire::MirrorRequest{wire::MirrorOp::kRemove, std::string(prefix), {}, {}});
  if (!reply) return std::unexpected(reply.error());
  return std::move(reply->first.mirrors);
}

Result<std::vector<MirrorInfo>> Client::mirrors() {
  auto reply = impl_->request<wire::MirrorReply>(wire::MirrorRequest{wire::MirrorOp::kList, {}, {}, {}});
  if (!reply) return std::unexpected(reply.error());
  return std::move(reply->first.mirrors);
}

Result<void> Client::report_mirrors(std::vector<MirrorInfo> report) {
  auto reply = impl_->request<wire::MirrorReply>(
      wire::MirrorRequest{wire::MirrorOp::kReport, {}, {}, std::move(report)});
  if (!reply) return std::unexpected(reply.error());
  return {};
}

const std::string& Client::socket_path() const noexcept { return impl_->socket_path; }
std::uint16_t Client::protocol_version() const noexcept { return impl_->protocol_version; }
std::uint32_t Client::broker_pid() const noexcept { return impl_->broker_pid; }

}  // namespace shmarray
