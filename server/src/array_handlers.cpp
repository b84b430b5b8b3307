// The broker's side of arrays (docs/protocol.md, docs/architecture.md): create (on the loop, or
// off it for big segments), open (at once or parked until the name is created), remove, list,
// stat, chmod, watch and close, and the helpers they share: the size check of a segment and the
// live description (version, damage) of an array. State and dispatch stay in broker.cpp.
#include <chrono>
#include <cstdio>
#include <spdlog/fmt/ranges.h>
#include <spdlog/spdlog.h>

#include "broker.hpp"
#include "decode_or_reply.hpp"
#include "log_text.hpp"
#include "permissions.hpp"
#include "segment_check.hpp"
#include "shmarray/owner_mismatch.hpp"
#include "shmarray/segment_layout.hpp"

namespace shmarray::server {
namespace {

std::int64_t now_unix_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string not_found(std::string_view name) {
  return "no array named '" + std::string(name) + "' ('shmarray ls' lists them)";
}

}  // namespace

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
  auto segment = make_segment(info);
  if (!segment && segment.error().sys_errno() == ENOSPC) {
    // A writer may have grown some array past its record to fill /dev/shm: cut them back, retry.
    sweep_grown_segments();
    segment = Segment::create(segment_prefix_ + info.id, info);
  }
  finish_create(s, id, std::move(info), std::move(segment));
}

Result<Segment> Broker::make_segment(const ArrayInfo& info) {
  const std::string shm_name = segment_prefix_ + info.id;
  if (segment_pool_) {
    if (UniqueFd pooled = segment_pool_->take(info.segment_bytes)) {
      auto segment = Segment::create_from(std::move(pooled), config_.shm_dir, shm_name, info);
      if (segment || segment.error().code() == ErrorCode::kAlreadyExists) return segment;
      // Naming nameless files does not work here (no /proc, a policy...): stop pooling.
      spdlog::warn("segment pool turned off: {}", segment.error().message());
      segment_pool_.reset();
    }
  }
  return Segment::create(shm_name, info);
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
  // A pooled segment's own descriptor is the creator's grant: no second open by name.
  UniqueFd made_with = segment->take_creation_fd();
  auto fd = made_with ? Result<UniqueFd>(std::move(made_with)) : segment->open_fd(Access::kReadWrite);
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
  // Encoded from the record (Registry::describe without its copy of the info).
  s.send(wire::encode_create_reply(record.info,
                                   static_cast<std::uint32_t>(record.open_by.size()),
                                   record.info.version, id, true),
         std::move(*fd));
  notify_watchers(wire::EventKind::kCreated, record);
  wake_pending_opens(record.info.name);
}

void Broker::grant(Session& s, std::uint64_t request_id, ArrayRecord& record, Access access,
                   std::optional<std::uint32_t> owner) {
  if (record.info.kind == ObjectKind::kStream) {
    return s.send_error(request_id, Error(ErrorCode::kFailedPrecondition,
                                          "'" + record.info.name + "' is a stream, not an array: "
                                          "subscribe to it ('Client::subscribe')"));
  }
  // Before anything is granted or counted: a squatter's array is never opened, not even briefly.
  if (owner && record.info.owner_uid != *owner) {
    spdlog::info("open '{}' by pid {} refused: owned by uid {}, not by the required uid {}",
                 log_text(record.info.name), s.peer().pid, record.info.owner_uid, *owner);
    return s.send_error(request_id, owner_mismatch(record.info.name, record.info.owner_uid, *owner));
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
  // Encoded before the call: as one argument list with std::move(*fd), the descriptor could be
  // moved into send() first (the order is unspecified; g++ does so), leaving the version read a
  // -1. What describe_live(record, fd) says of an array (streams were refused above), encoded
  // from the record without copying its info: open handles and the version read on the granted,
  // size-checked descriptor.
  auto reply = wire::encode_open_reply(record.info,
                                       static_cast<std::uint32_t>(record.open_by.size()),
                                       record.segment.read_version(fd->get()), access,
                                       request_id, true);
  s.send(std::move(reply), std::move(*fd));
}

void Broker::on_open(Session& s, const wire::Frame& f) {
  auto m = decode_or_reply<wire::OpenRequest>(s, f);
  if (!m) return;
  if (auto ok = validate_name(m->name); !ok) return s.send_error(f.header.request_id, ok.error());
  if (ArrayRecord* record = registry_.find(m->name)) {
    return grant(s, f.header.request_id, *record, m->access, m->owner);
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
      PendingOpens::Clock::now() + std::chrono::milliseconds(m->wait_ms), m->owner});
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
      grant(*it->second, pending.request_id, *record, pending.access, pending.owner);
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
  if (segment_pool_) segment_pool_->drain();  // its pages go back to /dev/shm first
  for (const ArrayRecord* found : registry_.with_prefix("")) {
    (void)check_segment(*registry_.find(found->info.name));
  }
}

ArrayInfo Broker::describe_live(ArrayRecord& record, int checked_fd) {
  if (checked_fd >= 0) {  // checked by the caller just now: no second descriptor, no second fstat
    ArrayInfo info = Registry::describe(record);
    info.version = record.segment.read_version(checked_fd);
    if (info.kind == ObjectKind::kStream) describe_stream(record, info);
    return info;
  }
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
  // Only an array this connection opened counts; an unknown id is not an error (the array may be
  // gone, or opened through a previous broker). By id, not a scan of the connection's names: a
  // process that drops 100,000 arrays sends 100,000 of these.
  ArrayRecord* record = registry_.find_by_id(m->id);
  if (record != nullptr) {
    if (const auto it = s.opened.find(record->info.name); it != s.opened.end()) {
      record->open_by.erase(s.id());
      // An ephemeral array's creator keeps the name: the array dies with its connection.
      if (!(record->info.ephemeral && record->creator == s.id())) s.opened.erase(it);
    }
  }
  s.send(wire::encode_message(wire::CloseReply{}, f.header.request_id));
}

}  // namespace shmarray::server
