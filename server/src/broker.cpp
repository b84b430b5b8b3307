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

std::int64_t now_unix_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

template <class M>
std::optional<M> decode_or_reply(Session& s, const wire::Frame& f) {
  auto m = wire::decode<M>(f.body);
  if (!m) {
    spdlog::warn("connection {} (pid {}): {}", s.id(), s.peer().pid,
                 log_text(m.error().message(), kMaxLoggedMessageBytes));
    s.send_error(f.header.request_id, m.error());
    s.close_after_flush();
    return std::nullopt;
  }
  return std::move(*m);
}

// The catalogue takes Catalogue::kSlotBytes (2 KiB) per array, often on a small tmpfs
// ($XDG_RUNTIME_DIR is typically 10% of RAM): say at start if --max-arrays would not fit, rather
// than let creates fail one day for a reason nobody expects.
void warn_if_catalogue_cannot_grow(const std::string& catalogue_path, std::uint64_t max_arrays) {
  const std::string dir = catalogue_path.substr(0, catalogue_path.rfind('/') + 1);
  struct statvfs st{};
  if (::statvfs(dir.empty() ? "." : dir.c_str(), &st) != 0) return;
  const std::uint64_t room = static_cast<std::uint64_t>(st.f_bavail) * st.f_frsize;
  const std::uint64_t need = max_arrays * Catalogue::kSlotBytes;
  if (room < need) {
    spdlog::warn("the catalogue {} needs {} bytes per array ({} MiB for --max-arrays {}), but its "
                 "file system has {} MiB free: creates will fail with ResourceExhausted before "
                 "that many arrays; lower --max-arrays or put the socket on a larger file system",
                 catalogue_path, Catalogue::kSlotBytes, need >> 20, max_arrays, room >> 20);
  }
}

std::string not_found(std::string_view name) {
  return "no array named '" + std::string(name) + "' ('shmarray ls' lists them)";
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
  if (auto ok = start_mirrors(); !ok) return ok;
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

void Broker::on_create(Session& s, const wire::Frame& f) {
  auto m = decode_or_reply<wire::CreateRequest>(s, f);
  if (!m) return;
  const auto id = f.header.request_id;
  auto reject = [&](const Error& e) {
    spdlog::info("create '{}' by pid {} refused: {}", log_text(m->name), s.peer().pid,
                 log_text(e.message(), kMaxLoggedMessageBytes));
    s.send_error(id, e);
  };
  if (auto ok = validate_name(m->name); !ok) return reject(ok.error());
  if (auto refused = mirror_create_refusal(s, m->name)) return reject(*refused);
  if ((m->spec.mode & ~0777u) != 0) {
    return reject(Error(ErrorCode::kInvalidArgument, "mode must be within 0777"));
  }
  auto layout = compute_layout(m->spec, config_.max_bytes);
  if (!layout) return reject(layout.error());
  if (registry_.find(m->name) != nullptr || creating_.contains(m->name)) {
    return reject(Error(ErrorCode::kAlreadyExists,
                        "array '" + m->name + "' already exists: open it, or remove it first "
                        "('shmarray rm " + m->name + "')"));
  }
  auto segment_bytes = segment_size_for(layout->nbytes);
  if (!segment_bytes) return reject(segment_bytes.error());
  // Creates still reserving their pages count against the limits as if they were done.
  if (auto ok = registry_.check_capacity(s.peer().uid, *segment_bytes + creating_bytes_); !ok) {
    return reject(ok.error());
  }
  auto array_id = random_array_id();
  if (!array_id) return reject(array_id.error());

  ArrayInfo info;
  info.name = m->name;
  info.dtype = layout->dtype.str();
  info.shape = layout->shape;
  info.strides = layout->strides;
  info.order = m->spec.order;
  info.itemsize = layout->dtype.itemsize();
  info.nbytes = layout->nbytes;
  info.data_offset = kHeaderBytes;
  info.segment_bytes = *segment_bytes;
  info.id = *array_id;
  info.owner_uid = s.peer().uid;
  info.owner_gid = s.peer().gid;
  info.mode = m->spec.mode;
  info.created_unix_ns = now_unix_ns();
  info.ephemeral = m->spec.ephemeral;

  if (info.segment_bytes >= config_.off_loop_create_bytes) return create_off_loop(s, id, std::move(info));
  auto segment = Segment::create(segment_prefix_ + info.id, info);
  if (!segment && segment.error().sys_errno() == ENOSPC) {
    // A writer may have grown some array past its record to fill /dev/shm: cut them back, retry.
    sweep_grown_segments();
    segment = Segment::create(segment_prefix_ + info.id, info);
  }
  finish_create(s, id, std::move(info), std::move(segment));
}

void Broker::create_off_loop(Session& s, std::uint64_t request_id, ArrayInfo info, bool retried) {
  if (!page_worker_) page_worker_.emplace(io_);
  const std::string name = info.name;
  creating_.emplace(name, CreateInFlight{segment_prefix_ + info.id, info.segment_bytes});
  creating_bytes_ += info.segment_bytes;
  spdlog::debug("create '{}': reserving {} bytes off the event loop", log_text(name),
                info.segment_bytes);
  page_worker_->create(
      segment_prefix_ + info.id, info,
      [this, session = s.id(), request_id, info, retried](Result<Segment> segment) mutable {
        const auto in_flight = creating_.find(info.name);
        if (in_flight != creating_.end()) {
          creating_bytes_ -= in_flight->second.bytes;
          creating_.erase(in_flight);
        }
        const auto it = sessions_.find(session);
        Session* s = it == sessions_.end() || it->second->closed() ? nullptr : it->second.get();
        if (!segment && segment.error().sys_errno() == ENOSPC && !retried && s != nullptr) {
          sweep_grown_segments();
          return create_off_loop(*s, request_id, std::move(info), true);
        }
        if (s == nullptr || stopping_) {
          // Nobody to answer: the client hung up (or the broker is stopping) while the pages were
          // reserved. Nothing was recorded or announced yet, so the segment simply goes.
          if (segment) segment->unlink();
          spdlog::info("create '{}' dropped: its client left while its pages were reserved",
                       log_text(info.name));
          return;
        }
        finish_create(*s, request_id, std::move(info), std::move(segment));
      });
}

void Broker::finish_create(Session& s, std::uint64_t id, ArrayInfo info, Result<Segment> segment) {
  if (!segment) {
    spdlog::error("create '{}' failed: {}", info.name, segment.error().message());
    return s.send_error(id, segment.error());
  }
  // Recorded before anyone is told of it: a restart trusts only what the catalogue holds.
  if (auto recorded = catalogue_->put(info); !recorded) {
    segment->unlink();
    spdlog::error("create '{}' failed: {}", info.name, recorded.error().message());
    return s.send_error(id, recorded.error());
  }
  auto fd = segment->open_fd(Access::kReadWrite);
  if (!fd) {
    segment->unlink();
    catalogue_->erase(info.id);
    spdlog::error("create '{}' failed: {}", info.name, fd.error().message());
    return s.send_error(id, fd.error());
  }
  ArrayRecord& record =
      registry_.insert(ArrayRecord{std::move(info), std::move(*segment), s.id(), {s.id()}});
  s.opened.insert(record.info.name);
  spdlog::info("create '{}' {} shape ({}) {} bytes by pid {} uid {}{}", record.info.name,
               record.info.dtype, fmt::join(record.info.shape, ", "), record.info.nbytes, s.peer().pid,
               s.peer().uid, record.info.ephemeral ? " (ephemeral)" : "");
  s.send(wire::encode_message(wire::CreateReply{Registry::describe(record)}, id, true),
         std::move(*fd));
  notify_watchers(wire::EventKind::kCreated, record);
  wake_pending_opens(record.info.name);
}

void Broker::grant(Session& s, std::uint64_t request_id, ArrayRecord& record, Access access) {
  if (record.info.kind == ObjectKind::kStream) {
    return s.send_error(request_id, Error(ErrorCode::kFailedPrecondition,
                                          "'" + record.info.name + "' is a stream, not an array: "
                                          "subscribe to it ('Client::subscribe')"));
  }
  if (auto refused = mirror_refusal(s, record.info, access)) {
    return s.send_error(request_id, *refused);
  }
  const bool allowed =
      may_open(s.peer(), record.info, access) || bridge_may_open(s, record.info, access);
  if (!allowed) {
    return s.send_error(request_id,
                        Error(ErrorCode::kPermissionDenied,
                              "uid " + std::to_string(s.peer().uid) + " may not open '" +
                                  record.info.name + "' " + std::string(to_string(access)) +
                                  " (owner uid " + std::to_string(record.info.owner_uid) +
                                  ", mode 0" + [&] {
                                    char buf[8];
                                    std::snprintf(buf, sizeof buf, "%o", record.info.mode);
                                    return std::string(buf);
                                  }() + ")"));
  }
  auto fd = record.segment.open_fd(access);
  if (!fd) {
    spdlog::error("open '{}': {}", record.info.name, fd.error().message());
    return s.send_error(request_id, fd.error());
  }
  // Checked on the very descriptor the client gets: a grown segment is cut back first.
  if (auto intact = check_segment(record, fd->get()); !intact) {
    return s.send_error(request_id, intact.error());
  }
  record.open_by.insert(s.id());
  s.opened.insert(record.info.name);
  spdlog::debug("open '{}' {} by pid {}", record.info.name, to_string(access), s.peer().pid);
  s.send(wire::encode_message(wire::OpenReply{describe_live(record), access}, request_id, true),
         std::move(*fd));
}

void Broker::on_open(Session& s, const wire::Frame& f) {
  auto m = decode_or_reply<wire::OpenRequest>(s, f);
  if (!m) return;
  if (auto ok = validate_name(m->name); !ok) return s.send_error(f.header.request_id, ok.error());
  if (ArrayRecord* record = registry_.find(m->name)) {
    return grant(s, f.header.request_id, *record, m->access);
  }
  if (m->wait_ms == 0) {
    return s.send_error(f.header.request_id, Error(ErrorCode::kNotFound, not_found(m->name)));
  }
  // Park the request until the name is created, the wait runs out or the connection closes.
  // Later requests on the connection are served meanwhile (replies carry their request ids).
  if (auto ok = pending_opens_.check_capacity(s.id()); !ok) {
    spdlog::info("open '{}' by pid {} not parked: {}", m->name, s.peer().pid, ok.error().message());
    return s.send_error(f.header.request_id, ok.error());
  }
  pending_opens_.park(PendingOpens::Parked{
      m->name, s.id(), f.header.request_id, m->access, m->wait_ms,
      PendingOpens::Clock::now() + std::chrono::milliseconds(m->wait_ms)});
  arm_parked_timer();
}

void Broker::arm_parked_timer() {
  const auto next = pending_opens_.next_deadline();
  if (!next || (parked_timer_at_ && *parked_timer_at_ <= *next)) return;
  if (!parked_timer_) parked_timer_.emplace(io_);
  parked_timer_at_ = *next;
  parked_timer_->expires_at(*next);  // cancels a later wait, whose handler then sees `ec`
  parked_timer_->async_wait([this](boost::system::error_code ec) {
    if (ec) return;
    parked_timer_at_.reset();
    expire_parked_opens();
  });
}

void Broker::expire_parked_opens() {
  for (const auto& parked : pending_opens_.take_expired(PendingOpens::Clock::now())) {
    const auto it = sessions_.find(parked.session);
    if (it == sessions_.end() || it->second->closed()) continue;
    it->second->send_error(parked.request_id,
                           Error(ErrorCode::kDeadlineExceeded,
                                 "array '" + parked.name + "' was not created within " +
                                     std::to_string(parked.wait_ms) + " ms"));
  }
  arm_parked_timer();
}

void Broker::wake_pending_opens(const std::string& name) {
  // By name lookup: the cost does not grow with the opens parked for other names.
  const auto woken = pending_opens_.take_named(name);
  if (woken.empty()) return;
  ArrayRecord* record = registry_.find(name);
  for (const auto& pending : woken) {
    // grant() may close a session, but closing is deferred: `record` and sessions_ stay valid.
    const auto it = sessions_.find(pending.session);
    if (it != sessions_.end() && !it->second->closed() && record != nullptr) {
      grant(*it->second, pending.request_id, *record, pending.access);
    }
  }
  arm_parked_timer();
}

void Broker::remove_array(const std::string& name, std::string_view why) {
  auto record = registry_.erase(name);
  if (!record) return;
  // The name goes now; freeing a big segment's pages (when its last reference goes) is the page
  // worker's time: it closes the descriptor held across the unlink.
  auto last_reference = record->info.segment_bytes >= config_.off_loop_create_bytes
                            ? record->segment.open_fd(Access::kReadOnly)
                            : Result<UniqueFd>(UniqueFd());
  record->segment.unlink();
  if (last_reference && *last_reference) {
    if (!page_worker_) page_worker_.emplace(io_);
    page_worker_->release(std::move(*last_reference));
  }
  catalogue_->erase(record->info.id);
  streams_.erase(record->info.id);
  spdlog::info("remove '{}' ({})", name, why);
  notify_watchers(wire::EventKind::kRemoved, *record);
}

void Broker::on_remove(Session& s, const wire::Frame& f) {
  auto m = decode_or_reply<wire::RemoveRequest>(s, f);
  if (!m) return;
  if (auto ok = validate_name(m->name); !ok) return s.send_error(f.header.request_id, ok.error());
  const ArrayRecord* record = registry_.find(m->name);
  if (record == nullptr) {
    return s.send_error(f.header.request_id, Error(ErrorCode::kNotFound, not_found(m->name)));
  }
  if (!may_administer(s.peer(), record->info)) {
    return s.send_error(f.header.request_id,
                        Error(ErrorCode::kPermissionDenied,
                              "only the owner (uid " + std::to_string(record->info.owner_uid) +
                                  ") or root may remove '" + m->name + "'"));
  }
  remove_array(m->name, "by pid " + std::to_string(s.peer().pid));
  s.send(wire::encode_message(wire::RemoveReply{}, f.header.request_id));
}

Result<void> Broker::check_segment(ArrayRecord& record, int fd) {
  if (record.info.damaged.empty()) {
    auto check = fd >= 0 ? record.segment.enforce_size(fd, record.info.segment_bytes)
                         : record.segment.enforce_size(record.info.segment_bytes);
    if (!check) {
      spdlog::warn("array '{}': cannot check its segment: {}", record.info.name,
                   check.error().message());
    } else if (check->state == SizeState::kGrown && !record.growth_logged) {
      record.growth_logged = true;
      spdlog::warn("array '{}': a writer grew its segment {} to {} bytes; truncated back to the "
                   "recorded {} (logged once per array)",
                   record.info.name, record.segment.shm_name(), check->found_bytes,
                   record.info.segment_bytes);
    } else if (check->state == SizeState::kShrunk) {
      record.info.damaged =
          shrunk_reason(record.info.name, record.info.segment_bytes, check->found_bytes);
      spdlog::warn("array '{}' is damaged: {}", record.info.name, record.info.damaged);
    }
  }
  if (!record.info.damaged.empty()) return fail(ErrorCode::kDataLoss, record.info.damaged);
  return {};
}

void Broker::sweep_grown_segments() {
  for (const ArrayRecord* found : registry_.with_prefix("")) {
    (void)check_segment(*registry_.find(found->info.name));
  }
}

ArrayInfo Broker::describe_live(ArrayRecord& record) {
  // The version lives in the segment: read it with one pread, no mapping kept by the broker. The
  // same descriptor is checked against the recorded size, so stat and ls show damage at once.
  if (auto fd = record.segment.open_fd(Access::kReadOnly)) {
    const bool intact = check_segment(record, fd->get()).has_value();
    ArrayInfo info = Registry::describe(record);
    if (intact) info.version = record.segment.read_version(fd->get());
    if (intact && info.kind == ObjectKind::kStream) describe_stream(record, info);
    describe_mirror(info);
    return info;
  }
  return Registry::describe(record);
}

void Broker::on_list(Session& s, const wire::Frame& f) {
  auto m = decode_or_reply<wire::ListRequest>(s, f);
  if (!m) return;
  wire::ListReply reply;
  // describe_live may mark the record damaged (size check): it takes the mutable record.
  const auto describe = [&](const ArrayRecord* r) {
    return describe_live(*registry_.find(r->info.name));
  };
  if (m->limit == 0) {  // a client from before paging: everything at once, as it expects
    for (const ArrayRecord* record : registry_.with_prefix(m->prefix)) {
      if (may_read(s.peer(), record->info) || bridge_may_open(s, record->info, Access::kReadOnly)) {
        reply.arrays.push_back(describe(record));
      }
    }
    return s.send(wire::encode_message(reply, f.header.request_id));
  }
  // One page: at most `limit` visible arrays from at most kMaxListPage records scanned, so one
  // request costs the event loop a bounded time (one pread per array) and the other clients'
  // requests are served between pages. Arrays the caller may not read are skipped but scanned.
  const std::size_t limit = std::min(m->limit, wire::kMaxListPage);
  const auto page = registry_.page(m->prefix, m->after, wire::kMaxListPage);
  for (const ArrayRecord* record : page.records) {
    if (reply.arrays.size() == limit) {
      reply.next_after = reply.arrays.back().name;
      break;
    }
    if (may_read(s.peer(), record->info) || bridge_may_open(s, record->info, Access::kReadOnly)) {
      reply.arrays.push_back(describe(record));
    }
  }
  if (reply.next_after.empty() && page.more) reply.next_after = page.records.back()->info.name;
  s.send(wire::encode_message(reply, f.header.request_id));
}

void Broker::on_stat(Session& s, const wire::Frame& f) {
  auto m = decode_or_reply<wire::StatRequest>(s, f);
  if (!m) return;
  if (auto ok = validate_name(m->name); !ok) return s.send_error(f.header.request_id, ok.error());
  ArrayRecord* record = registry_.find(m->name);
  if (record == nullptr || !may_read(s.peer(), record->info)) {
    return s.send_error(f.header.request_id, Error(ErrorCode::kNotFound, not_found(m->name)));
  }
  s.send(wire::encode_message(wire::StatReply{describe_live(*record)}, f.header.request_id));
}

void Broker::on_chmod(Session& s, const wire::Frame& f) {
  auto m = decode_or_reply<wire::ChmodRequest>(s, f);
  if (!m) return;
  if (auto ok = validate_name(m->name); !ok) return s.send_error(f.header.request_id, ok.error());
  ArrayRecord* record = registry_.find(m->name);
  if (record == nullptr) {
    return s.send_error(f.header.request_id, Error(ErrorCode::kNotFound, not_found(m->name)));
  }
  if (!may_administer(s.peer(), record->info)) {
    return s.send_error(f.header.request_id,
                        Error(ErrorCode::kPermissionDenied,
                              "only the owner or root may chmod '" + m->name + "'"));
  }
  if ((m->mode & ~0777u) != 0) {
    return s.send_error(f.header.request_id,
                        Error(ErrorCode::kInvalidArgument, "mode must be within 0777"));
  }
  ArrayInfo changed = record->info;
  changed.mode = m->mode;
  // The catalogue first: it is what a restarted broker believes.
  if (auto recorded = catalogue_->put(changed); !recorded) {
    return s.send_error(f.header.request_id, recorded.error());
  }
  record->info.mode = m->mode;
  // The header page is informational for clients (`shmarray dump`); a failure here changes
  // nothing the broker enforces. Written whole from the record (repairing any scribbling), with
  // pwrite on a size-checked descriptor: never a mapping, so a truncated segment is no SIGBUS.
  auto written = check_segment(*record);
  if (written) {
    auto header = encode_segment_header(record->info);
    written = header ? record->segment.write_header(*header, record->info.segment_bytes)
                     : Result<void>(std::unexpected(header.error()));
  }
  if (!written) {
    spdlog::warn("chmod '{}': header page not updated: {}", m->name, written.error().message());
  }
  spdlog::info("chmod '{}' to 0{:o} by pid {}", m->name, m->mode, s.peer().pid);
  s.send(wire::encode_message(wire::ChmodReply{}, f.header.request_id));
}

void Broker::on_watch(Session& s, const wire::Frame& f) {
  auto m = decode_or_reply<wire::WatchRequest>(s, f);
  if (!m) return;
  if (watchers_ >= config_.max_watchers) {
    return s.send_error(f.header.request_id,
                        Error(ErrorCode::kResourceExhausted,
                              "the broker already serves " + std::to_string(watchers_) +
                                  " watchers, its limit: stop one, or restart it with a larger "
                                  "shmarrayd --max-watchers"));
  }
  ++watchers_;
  s.watching = true;
  s.watch_prefix = m->prefix;
  s.send(wire::encode_message(wire::WatchReply{}, f.header.request_id));
}

void Broker::notify_watchers(wire::EventKind kind, const ArrayRecord& record) {
  // Collected first: a send that fails closes its session, which erases it from sessions_.
  std::vector<std::shared_ptr<Session>> watchers;
  for (const auto& [id, session] : sessions_) {
    if (session->watching) watchers.push_back(session);
  }
  for (const auto& session : watchers) {
    if (session->closed()) continue;
    if (record.info.name.compare(0, session->watch_prefix.size(), session->watch_prefix) != 0) {
      continue;
    }
    if (!may_read(session->peer(), record.info) &&
        !bridge_may_open(*session, record.info, Access::kReadOnly)) {
      continue;
    }
    session->send(wire::encode_message(
        wire::Event{kind, record.info.name, Registry::describe(record)}, 0));
  }
}

void Broker::on_close(Session& s, const wire::Frame& f) {
  auto m = decode_or_reply<wire::CloseRequest>(s, f);
  if (!m) return;
  // The process let go of its last Array of array `id`: this connection no longer holds it open.
  // Only names this connection opened are looked at; an unknown id is not an error (the array
  // may be gone, or opened through a previous broker).
  for (auto it = s.opened.begin(); it != s.opened.end(); ++it) {
    ArrayRecord* record = registry_.find(*it);
    if (record == nullptr || record->info.id != m->id) continue;
    record->open_by.erase(s.id());
    // An ephemeral array's creator keeps the name: the array dies with its connection.
    if (!(record->info.ephemeral && record->creator == s.id())) s.opened.erase(it);
    break;
  }
  s.send(wire::encode_message(wire::CloseReply{}, f.header.request_id));
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
