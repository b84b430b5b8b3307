#include "broker.hpp"

#include <fcntl.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <boost/asio/post.hpp>
#include <chrono>
#include <spdlog/fmt/ranges.h>
#include <spdlog/spdlog.h>

#include "decode_or_reply.hpp"
#include "recovery.hpp"
#include "log_text.hpp"
#include "socket_access.hpp"
#include "permissions.hpp"
#include "socket_dir.hpp"
#include "shmarray/wire/fd_passing.hpp"
#include "shmarray/segment_layout.hpp"
#include "shmarray/socket_path.hpp"

namespace shmarray::server {
namespace {

namespace asio = boost::asio;
using asio::local::stream_protocol;

std::uint64_t default_max_bytes(const std::string& shm_dir) {
  struct statvfs st{};
  if (::statvfs(shm_dir.c_str(), &st) != 0) return UINT64_MAX;
  return static_cast<std::uint64_t>(st.f_blocks) * st.f_frsize;
}

RegistryLimits limits_of(Config& config) {
  if (config.max_bytes == 0) config.max_bytes = default_max_bytes(config.shm_dir);
  if (config.max_bytes_per_user == 0) config.max_bytes_per_user = config.max_bytes;
  return RegistryLimits{config.max_bytes, config.max_bytes_per_user, config.max_arrays};
}

// Descriptors kept free when taking connections: a create or open needs one or two for the
// segment, and running out would fail them for clients already connected.
constexpr rlim_t kDescriptorReserve = 16;

// The catalogue takes Catalogue::kSlotBytes (256 bytes) per plain array (up to 8 slots for a
// long name with a long structured dtype), often on a small tmpfs
// ($XDG_RUNTIME_DIR is typically 10% of RAM): say at start if --max-arrays would not fit, rather
// than let creates fail one day for a reason nobody expects.
void warn_if_catalogue_cannot_grow(const std::string& catalogue_path, std::uint64_t max_arrays) {
  const std::string dir = catalogue_path.substr(0, catalogue_path.rfind('/') + 1);
  struct statvfs st{};
  if (::statvfs(dir.empty() ? "." : dir.c_str(), &st) != 0) return;
  const std::uint64_t room = static_cast<std::uint64_t>(st.f_bavail) * st.f_frsize;
  const std::uint64_t need = max_arrays * Catalogue::kSlotBytes;
  if (room < need) {
    spdlog::warn("the catalogue {} needs {} bytes per array, more for long names or structured "
                 "dtypes ({} MiB for --max-arrays {}), but its "
                 "file system has {} MiB free: creates will fail with ResourceExhausted before "
                 "that many arrays; lower --max-arrays or put the socket on a larger file system",
                 catalogue_path, Catalogue::kSlotBytes, need >> 20, max_arrays, room >> 20);
  }
}

}  // namespace

Broker::Broker(asio::io_context& io, Config config)
    : io_(io),
      config_(std::move(config)),
      segment_prefix_(shmarray::segment_prefix(config_.socket_path)),
      registry_(limits_of(config_)),
      acceptor_(io) {}

Broker::~Broker() {
  // Finish the page reservation under way; creates whose completion never ran on the loop (it
  // stopped first) were neither recorded nor answered: their segments go.
  page_worker_.reset();
  for (const auto& [name, in_flight] : creating_) ::shm_unlink(in_flight.shm_name.c_str());
}

Result<void> Broker::take_socket() {
  const std::string& path = config_.socket_path;
  // Resolved first, so a bad --socket-group fails before anything is created.
  auto socket_gid = resolve_socket_group(config_.socket_group);
  if (!socket_gid) return std::unexpected(socket_gid.error());
  // Our own directory and lock file (socket_dir.hpp): the lock decides who owns the socket.
  auto lock = lock_socket_directory(path);
  if (!lock) {
    if (lock.error().code() == ErrorCode::kAlreadyExists) {
      return fail(ErrorCode::kAlreadyExists,
                  "another shmarrayd is already serving " + path +
                      ": stop it first, or start this one with a different --socket");
    }
    return std::unexpected(lock.error());
  }
  lock_fd_ = std::move(*lock);
  auto catalogue = Catalogue::open(catalogue_path_for(path));
  if (!catalogue) return std::unexpected(catalogue.error());
  catalogue_.emplace(std::move(*catalogue));
  warn_if_catalogue_cannot_grow(catalogue_path_for(path), config_.max_arrays);
  if (config_.listen_fd >= 0) {
    // Socket activation (socket_activation.hpp checked it): the service manager bound the socket
    // and keeps it after we exit, so it is neither replaced nor unlinked (socket_owned_ stays
    // false); connections made meanwhile wait in its backlog.
    boost::system::error_code ec;
    acceptor_.assign(stream_protocol(), std::exchange(config_.listen_fd, -1), ec);
    if (ec) {
      return fail(ErrorCode::kUnavailable,
                  "cannot serve the passed socket " + path + ": " + ec.message(), ec.value());
    }
    return apply_socket_access(path, *socket_gid, config_.socket_mode);
  }
  // We hold the lock, so any socket file left there is stale (a crashed broker's).
  if (::unlink(path.c_str()) == 0) spdlog::info("replaced stale socket file {}", path);
  boost::system::error_code ec;
  acceptor_.open(stream_protocol(), ec);
  if (!ec) acceptor_.bind(stream_protocol::endpoint(path), ec);
  if (!ec) {
    // System mode: group and mode go on before listen(), so no one connects in between.
    if (auto ok = apply_socket_access(path, *socket_gid, config_.socket_mode); !ok) {
      acceptor_.close(ec);
      ::unlink(path.c_str());
      return ok;
    }
    if (config_.socket_mode >= 0 && (config_.socket_mode & 0077) != 0) {
      warn_if_socket_directory_closed(path);
    }
  }
  if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return fail(ErrorCode::kUnavailable, "cannot listen on " + path + ": " + ec.message(),
                ec.value());
  }
  socket_owned_ = true;
  return {};
}

Result<void> Broker::start() {
  if (auto ok = take_socket(); !ok) return ok;
  recover();
  adopt_streams();
  if (auto ok = start_mirrors(); !ok) return ok;
  segment_pool_ = SegmentPool::start(config_.shm_dir, config_.segment_pool_bytes);
  spare_fd_.reset(::open("/dev/null", O_RDONLY | O_CLOEXEC));  // see refuse_without_descriptors
  if (rlimit lim{}; ::getrlimit(RLIMIT_NOFILE, &lim) == 0) descriptor_limit_ = lim.rlim_cur;
  spdlog::info("shmarrayd {} listening on {} (pid {}, {} arrays, max {} bytes)", "0.1.0",
               config_.socket_path, ::getpid(), registry_.size(), config_.max_bytes);
  accept();
  return {};
}

void Broker::recover() {
  for (const auto& damage : catalogue_->damaged()) {
    spdlog::warn("recovery: {} slot {}: {}", catalogue_->path(), damage.slot, damage.reason);
  }
  RecoveryReport report = recover_segments(config_.shm_dir, segment_prefix_, *catalogue_);
  for (const auto& restored : report.restored) {
    spdlog::warn("recovery: the header page of array {} had been changed by a client with write "
                 "access; restored it from the broker's catalogue",
                 restored);
  }
  for (auto& found : report.arrays) {
    if (found.fate == Fate::kEphemeral) {
      // Its creator's connection died with the previous broker: honour "ephemeral".
      spdlog::info("recovery: removing ephemeral array '{}' (its creator is gone)",
                   found.info.name);
      found.segment.unlink();
      catalogue_->erase(found.info.id);
      continue;
    }
    if (found.fate == Fate::kDuplicate) {
      spdlog::warn("recovery: two segments claim '{}'; keeping the first, leaving {} in place",
                   found.info.name, found.segment.shm_name());
      continue;
    }
    spdlog::info("recovery: array '{}' ({} {}, version {})", found.info.name, found.info.dtype,
                 found.info.nbytes, found.info.version);
    registry_.insert(ArrayRecord{std::move(found.info), std::move(found.segment), 0, {}});
  }
  for (const auto& id : report.orphans) {
    spdlog::info("recovery: forgetting array id {}: its segment is gone (removed by hand, or "
                 "/dev/shm was cleared by a reboot)",
                 id);
    catalogue_->erase(id);
  }
  for (const auto& rejected : report.rejected) {
    spdlog::warn("recovery: left alone {}{}: {}{}", config_.shm_dir, rejected.shm_name,
                 rejected.reason,
                 rejected.invalid ? " ('shmarrayd --gc' removes it while no broker runs)" : "");
  }
  for (const auto& problem : report.problems) spdlog::warn("recovery: {}", problem);
}

void Broker::accept() {
  acceptor_.async_accept([this](boost::system::error_code ec, stream_protocol::socket socket) {
    if (ec) {
      if (ec == asio::error::operation_aborted || stopping_) return;
      if ((ec.value() == EMFILE || ec.value() == ENFILE) && refuse_without_descriptors()) {
        return accept();
      }
      spdlog::error("accept failed: {}", ec.message());
      // EMFILE and the like: back off briefly instead of spinning.
      auto timer = std::make_shared<asio::steady_timer>(io_, std::chrono::milliseconds(100));
      timer->async_wait([this, timer](boost::system::error_code) {
        if (!stopping_) accept();
      });
      return;
    }
    auto peer = peer_credentials(socket.native_handle());
    if (!peer) {
      spdlog::warn("dropping a connection: {}", peer.error().message());
    } else if (static_cast<rlim_t>(socket.native_handle()) + kDescriptorReserve >=
               descriptor_limit_) {
      // Descriptors are allocated lowest first, so this one's number says how many are in use.
      // The reserve keeps creates and opens of the connected clients working.
      refuse_for_descriptors(socket.native_handle());
    } else if (sessions_.size() >= config_.max_connections) {
      spdlog::warn("refusing connection from pid {}: {} connections is the limit "
                   "(--max-connections)", peer->pid, config_.max_connections);
      const auto frame = wire::encode_message(
          wire::ErrorReply{ErrorCode::kResourceExhausted,
                           "the broker at " + config_.socket_path + " has reached its limit of " +
                               std::to_string(config_.max_connections) +
                               " connections (shmarrayd --max-connections): retry later"},
          0);
      (void)wire::send_some(socket.native_handle(), frame, -1);
    } else {
      const SessionId id = next_session_id_++;
      spdlog::debug("connection {} from pid {} uid {} gid {}", id, peer->pid, peer->uid,
                    peer->gid);
      auto session = std::make_shared<Session>(*this, std::move(socket), id, *peer, config_);
      sessions_.emplace(id, session);
      session->start();
    }
    accept();
  });
}

void Broker::refuse_for_descriptors(int connection_fd) {
  const std::string why = "the broker at " + config_.socket_path +
                          " is out of file descriptors (" + std::to_string(sessions_.size()) +
                          " connections; limit " + std::to_string(descriptor_limit_) + ", " +
                          std::to_string(kDescriptorReserve) +
                          " kept for arrays): retry later, or raise shmarrayd's 'ulimit -n'";
  spdlog::warn("refusing a connection: {}", why);
  const auto frame = wire::encode_message(wire::ErrorReply{ErrorCode::kResourceExhausted, why}, 0);
  (void)wire::send_some(connection_fd, frame, -1);
}

bool Broker::refuse_without_descriptors() {
  // The spare descriptor makes room for one accept, so the client hears why instead of waiting
  // in the backlog until its timeout.
  if (!spare_fd_) return false;
  spare_fd_.reset();
  UniqueFd connection(
      ::accept4(acceptor_.native_handle(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
  const int accept_errno = errno;
  if (connection) refuse_for_descriptors(connection.get());
  connection.reset();
  spare_fd_.reset(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  // Accepting with the spare failed as well: the caller backs off instead of spinning.
  return static_cast<bool>(connection) || (accept_errno != EMFILE && accept_errno != ENFILE);
}

void Broker::shed_queued_replies() {
  // Rare (only past the cap), so a scan of the connections is fine. A closed session's bytes
  // leave queued_reply_bytes_ at once (Session::close), so this ends.
  while (queued_reply_bytes_ > config_.max_pending_reply_bytes_total) {
    Session* largest = nullptr;
    for (const auto& [id, session] : sessions_) {
      if (!session->closed() &&
          (largest == nullptr || session->queued_bytes() > largest->queued_bytes())) {
        largest = session.get();
      }
    }
    if (largest == nullptr || largest->queued_bytes() == 0) return;
    largest->drop_slow_reader(
        "all connections' replies together passed --max-pending-reply-bytes-total " +
        std::to_string(config_.max_pending_reply_bytes_total) + ", and it held the most");
  }
}

void Broker::stop(std::function<void()> on_stopped) {
  if (stopping_) return;
  stopping_ = true;
  on_stopped_ = std::move(on_stopped);
  if (bridge_) bridge_->stop();
  spdlog::info("shutting down: {} connections, {} arrays", sessions_.size(), registry_.size());
  boost::system::error_code ignored;
  acceptor_.close(ignored);
  if (socket_owned_) ::unlink(config_.socket_path.c_str());
  socket_owned_ = false;
  for (const auto& pending : pending_opens_.take_all()) {
    if (auto it = sessions_.find(pending.session); it != sessions_.end()) {
      it->second->send_error(pending.request_id,
                             Error(ErrorCode::kUnavailable, "the broker is shutting down"));
    }
  }
  if (parked_timer_) parked_timer_->cancel();
  // Copy: closing a session erases it from sessions_.
  auto sessions = sessions_;
  for (auto& [id, session] : sessions) session->close_after_flush();
  if (sessions_.empty() && on_stopped_) std::exchange(on_stopped_, nullptr)();
}

void Broker::handle(Session& s, wire::Frame frame) {
  using wire::MessageType;
  const MessageType type = frame.header.type;
  if (!s.hello_done && type != MessageType::kHelloRequest) {
    s.send_error(frame.header.request_id,
                 Error(ErrorCode::kFailedPrecondition, "send HelloRequest first"));
    s.close_after_flush();
    return;
  }
  if (s.watching) {
    s.send_error(frame.header.request_id,
                 Error(ErrorCode::kFailedPrecondition, "a watch connection takes no requests"));
    s.close_after_flush();
    return;
  }
  switch (type) {
    case MessageType::kHelloRequest: return on_hello(s, frame);
    case MessageType::kCreateRequest: return on_create(s, frame);
    case MessageType::kOpenRequest: return on_open(s, frame);
    case MessageType::kRemoveRequest: return on_remove(s, frame);
    case MessageType::kListRequest: return on_list(s, frame);
    case MessageType::kStatRequest: return on_stat(s, frame);
    case MessageType::kChmodRequest: return on_chmod(s, frame);
    case MessageType::kWatchRequest: return on_watch(s, frame);
    case MessageType::kCloseRequest: return on_close(s, frame);
    case MessageType::kCreateStreamRequest: return on_create_stream(s, frame);
    case MessageType::kOpenPublisherRequest: return on_open_publisher(s, frame);
    case MessageType::kSubscribeRequest: return on_subscribe(s, frame);
    case MessageType::kStreamMembersRequest: return on_stream_members(s, frame);
    case MessageType::kSubscriberStateRequest: return on_subscriber_state(s, frame);
    case MessageType::kDetachRequest: return on_detach(s, frame);
    case MessageType::kReadmitSubscriberRequest: return on_readmit_subscriber(s, frame);
    case MessageType::kMirrorRequest: return on_mirror(s, frame);
    default:
      s.send_error(frame.header.request_id,
                   Error(ErrorCode::kProtocolError,
                         std::string(wire::to_string(type)) + " is not a request"));
      s.close_after_flush();
  }
}

void Broker::on_hello(Session& s, const wire::Frame& f) {
  auto m = decode_or_reply<wire::HelloRequest>(s, f);
  if (!m) return;
  const std::uint16_t chosen = std::min(m->max_version, wire::kProtocolVersion);
  if (chosen < std::max(m->min_version, wire::kMinProtocolVersion)) {
    s.send_error(f.header.request_id,
                 Error(ErrorCode::kProtocolError,
                       "no common protocol version: client speaks " +
                           std::to_string(m->min_version) + ".." + std::to_string(m->max_version) +
                           ", broker " + std::to_string(wire::kMinProtocolVersion) + ".." +
                           std::to_string(wire::kProtocolVersion) + ": upgrade the older side"));
    s.close_after_flush();
    return;
  }
  s.hello_done = true;
  s.protocol_version = chosen;
  s.client_name = m->client_name.substr(0, 64);
  spdlog::debug("connection {}: hello from '{}', protocol {}", s.id(), log_text(s.client_name),
                chosen);
  s.send(wire::encode_message(
      wire::HelloReply{chosen, static_cast<std::uint32_t>(::getpid()), "0.1.0",
                       config_.max_bytes},
      f.header.request_id));
}

void Broker::on_session_closed(Session& session) {
  spdlog::debug("connection {} (pid {}) closed", session.id(), session.peer().pid);
  // Its parked opens go with it (a dead client's wait of up to 49 days holds nothing).
  const std::size_t parked = pending_opens_.drop_session(session.id());
  if (parked > 0) arm_parked_timer();
  if (session.watching) --watchers_;
  // Connections that held much (parked opens, long reply queues) left their memory in malloc's
  // free lists: past 1 MiB of it (a parked open is ~300 bytes), hand the free pages back to the
  // system, once per burst of closes.
  freed_since_trim_ += parked * 300 + session.peak_queued_bytes();
  if (freed_since_trim_ >= (1u << 20) && !trim_posted_) {
    trim_posted_ = true;
    asio::post(io_, [this] {
      trim_posted_ = false;
      freed_since_trim_ = 0;
#ifdef __GLIBC__
      ::malloc_trim(0);
#endif
    });
  }
  release_stream_session(session);
  for (const auto& name : registry_.release_session(session.id(), session.opened)) {
    remove_array(name, "ephemeral, its creator disconnected");
  }
  sessions_.erase(session.id());  // may destroy the session after this call returns
  if (stopping_ && sessions_.empty() && on_stopped_) std::exchange(on_stopped_, nullptr)();
}

}  // namespace shmarray::server
