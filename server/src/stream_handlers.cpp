// The broker's side of streams (docs/streams.md): create, open_publisher, subscribe, and the two
// requests a publisher and a subscriber make to attach to each other's pages. The broker never
// maps a stream: it writes the few words it owns (publisher pid, membership generation, a new
// subscriber's cursor) with pwrite on size-checked descriptors and reads state with pread.
#include <fcntl.h>
#include <signal.h>
#include <sys/random.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <random>
#include <spdlog/spdlog.h>

#include "broker.hpp"
#include "decode_or_reply.hpp"
#include "log_text.hpp"
#include "permissions.hpp"
#include "subscriber_state.hpp"
#include "shmarray/segment_layout.hpp"
#include "shmarray/stream/stream_layout.hpp"
#include "shmarray/wire/stream_messages.hpp"

namespace shmarray::server {
namespace {

using stream::StreamControl;
constexpr std::size_t kMembersAt = stream::kControlOffset +
                                   offsetof(StreamControl, members);
constexpr std::size_t kPublisherPidAt = stream::kControlOffset +
                                        offsetof(StreamControl, publisher_pid);
constexpr std::size_t kHeadAt = stream::kControlOffset + offsetof(StreamControl, head);
constexpr std::size_t kEpochAt = stream::kControlOffset + offsetof(StreamControl, epoch);

// A new epoch for a stream whose control block holds `old`: random, never `old`, never 0.
std::uint32_t next_epoch(std::uint32_t old) {
  std::uint32_t epoch = 0;
  if (::getrandom(&epoch, sizeof epoch, 0) != static_cast<ssize_t>(sizeof epoch)) {
    epoch = static_cast<std::uint32_t>(std::random_device{}());
  }
  while (epoch == old || epoch == 0) ++epoch;
  return epoch;
}

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

bool process_alive(pid_t pid) { return pid > 0 && (::kill(pid, 0) == 0 || errno == EPERM); }

Error no_stream(std::string_view name) {
  return Error(ErrorCode::kNotFound, "no stream named '" + std::string(name) +
                                         "' ('shmarray ls' lists arrays and streams)");
}

Error not_a_stream(std::string_view name) {
  return Error(ErrorCode::kFailedPrecondition,
               "'" + std::string(name) + "' is an array, not a stream: open it with Client::open");
}

std::uint64_t read_head(int fd) {
  std::uint64_t head = 0;
  auto got = pread_full(fd, &head, sizeof head, kHeadAt);
  return got && *got == sizeof head ? head : 0;
}

}  // namespace

StreamRuntime& Broker::stream_runtime(ArrayRecord& record) {
  if (StreamRuntime* found = streams_.find(record.info.id)) return *found;
  StreamRuntime runtime;
  runtime.name = record.info.name;
  runtime.subscribers.resize(record.info.stream.max_subscribers);
  // After a restart the segment still says which generation the publisher last saw and who the
  // publisher was: continue the generation (it must keep moving) and adopt that pid.
  std::uint32_t old_epoch = 0;
  if (auto fd = record.segment.open_fd(Access::kReadOnly); fd && check_segment(record, fd->get())) {
    std::uint32_t words[2] = {0, 0};
    if (auto got = pread_full(fd->get(), &words[0], 4, kMembersAt); got && *got == 4) {
      runtime.members = words[0];
      runtime.members_at_start = words[0];
      runtime.next_generation = words[0] + 1;  // see StreamRuntime::members_at_start
    }
    if (auto got = pread_full(fd->get(), &old_epoch, 4, kEpochAt); !got || *got != 4) {
      old_epoch = 0;
    }
    if (auto got = pread_full(fd->get(), &words[1], 4, kPublisherPidAt); got && *got == 4) {
      const auto pid = static_cast<pid_t>(words[1]);
      if (process_alive(pid)) {
        runtime.publisher_pid = pid;
        runtime.publisher_adopted = true;
      }
    }
  }
  StreamRuntime& inserted = streams_.insert(record.info.id, std::move(runtime));
  // This broker's epoch: subscribers attached through a previous broker see it change at their
  // next take() and hand their state pages back (on_readmit_subscriber).
  write_stream_word(record, kEpochAt, next_epoch(old_epoch));
  return inserted;
}

void Broker::adopt_streams() {
  std::vector<std::string> names;
  for (const ArrayRecord* r : registry_.with_prefix("")) {
    if (r->info.kind == ObjectKind::kStream) names.push_back(r->info.name);
  }
  for (const auto& name : names) {
    ArrayRecord* record = registry_.find(name);
    const StreamRuntime& runtime = stream_runtime(*record);
    spdlog::info("recovery: stream '{}' (last seq {}, {})", name,
                 describe_live(*record).stream.last_seq,
                 runtime.publisher_adopted
                     ? "publisher pid " + std::to_string(runtime.publisher_pid) + " adopted"
                     : std::string("no live publisher"));
  }
}

bool Broker::is_publisher(const Session& s, StreamRuntime& runtime) {
  if (runtime.publisher != 0) return runtime.publisher == s.id();
  if (runtime.publisher_adopted && runtime.publisher_pid == s.peer().pid) {
    // The publisher from before a broker restart reconnected: this is its connection now.
    runtime.publisher = s.id();
    runtime.publisher_adopted = false;
    return true;
  }
  return false;
}

void Broker::write_stream_word(ArrayRecord& record, std::size_t offset, std::uint32_t value) {
  auto fd = record.segment.open_fd(Access::kReadWrite);
  if (!fd) {
    spdlog::warn("stream '{}': {}", record.info.name, fd.error().message());
    return;
  }
  // A pwrite past the end of a segment a writer truncated would grow it back: check first.
  if (!check_segment(record, fd->get())) return;
  if (auto ok = pwrite_full(fd->get(), &value, sizeof value, offset); !ok) {
    spdlog::warn("stream '{}': {}", record.info.name, ok.error().message());
  }
}

void Broker::bump_members(ArrayRecord& record, StreamRuntime& runtime) {
  write_stream_word(record, kMembersAt, ++runtime.members);
  // The publisher stores head (seq_cst) and then loads members; the broker stores members and
  // then reads head (subscribe). The fence keeps those two from passing each other here, so at
  // most the loan in flight misses a new subscriber (docs/streams.md, "joining").
  std::atomic_thread_fence(std::memory_order_seq_cst);
}

void Broker::on_create_stream(Session& s, const wire::Frame& f) {
  auto m = decode_or_reply<wire::CreateStreamRequest>(s, f);
  if (!m) return;
  const auto id = f.header.request_id;
  auto reject = [&](const Error& e) {
    spdlog::info("create stream '{}' by pid {} refused: {}", log_text(m->name), s.peer().pid,
                 log_text(e.message(), kMaxLoggedMessageBytes));
    s.send_error(id, e);
  };
  if (auto ok = validate_name(m->name); !ok) return reject(ok.error());
  if (auto refused = mirror_create_refusal(s, m->name)) return reject(*refused);
  auto geometry = stream::stream_geometry(m->spec, config_.max_bytes);
  if (!geometry) return reject(geometry.error());
  if (registry_.find(m->name) != nullptr) {
    return reject(Error(ErrorCode::kAlreadyExists,
                        "'" + m->name + "' already exists: open_publisher takes over a stream "
                        "whose publisher is gone, or remove it first ('shmarray rm " + m->name +
                        "')"));
  }
  if (auto ok = registry_.check_capacity(s.peer().uid, geometry->segment_bytes); !ok) {
    return reject(ok.error());
  }
  auto stream_id = random_array_id();
  if (!stream_id) return reject(stream_id.error());
  ArrayInfo info;
  info.name = m->name;
  stream::describe_stream_segment(info, *geometry);
  info.id = *stream_id;
  info.owner_uid = s.peer().uid;
  info.owner_gid = s.peer().gid;
  info.mode = m->spec.mode;
  info.created_unix_ns = now_ns();
  info.ephemeral = m->spec.ephemeral;
  auto segment = Segment::create(segment_prefix_ + info.id, info);
  if (!segment) return reject(segment.error());
  if (auto recorded = catalogue_->put(info); !recorded) {
    segment->unlink();
    return reject(recorded.error());
  }
  auto fd = segment->open_fd(Access::kReadWrite);
  if (!fd) {
    segment->unlink();
    catalogue_->erase(info.id);
    return reject(fd.error());
  }
  ArrayRecord& record =
      registry_.insert(ArrayRecord{std::move(info), std::move(*segment), s.id(), {s.id()}});
  s.opened.insert(record.info.name);
  StreamRuntime& runtime = stream_runtime(record);
  runtime.publisher = s.id();
  runtime.publisher_pid = s.peer().pid;
  write_stream_word(record, kPublisherPidAt, static_cast<std::uint32_t>(s.peer().pid));
  spdlog::info("create stream '{}' {} slots x {} bytes, {}, by pid {} uid {}{}", record.info.name,
               record.info.stream.slots, record.info.stream.slot_bytes,
               to_string(record.info.stream.overflow), s.peer().pid, s.peer().uid,
               record.info.ephemeral ? " (ephemeral)" : "");
  s.send(wire::encode_message(wire::StreamReply{describe_live(record)}, id, true),
         std::move(*fd));
  notify_watchers(wire::EventKind::kCreated, record);
  wake_pending_opens(record.info.name);  // subscribers waiting for it retry (grant refuses)
}

void Broker::on_open_publisher(Session& s, const wire::Frame& f) {
  auto m = decode_or_reply<wire::OpenPublisherRequest>(s, f);
  if (!m) return;
  const auto id = f.header.request_id;
  if (auto ok = validate_name(m->name); !ok) return s.send_error(id, ok.error());
  ArrayRecord* record = registry_.find(m->name);
  if (record == nullptr ||
      !(may_read(s.peer(), record->info) || bridge_may_open(s, record->info, Access::kReadWrite))) {
    return s.send_error(id, no_stream(m->name));
  }
  if (record->info.kind != ObjectKind::kStream) return s.send_error(id, not_a_stream(m->name));
  if (auto refused = mirror_refusal(s, record->info, Access::kReadWrite)) {
    return s.send_error(id, *refused);
  }
  if (!may_write(s.peer(), record->info) &&
      !bridge_may_open(s, record->info, Access::kReadWrite)) {
    return s.send_error(id, Error(ErrorCode::kPermissionDenied,
                                  "uid " + std::to_string(s.peer().uid) +
                                      " may not publish to '" + m->name +
                                      "': publishing needs write permission (owner uid " +
                                      std::to_string(record->info.owner_uid) + ")"));
  }
  StreamRuntime& runtime = stream_runtime(*record);
  const bool adopted_alive = runtime.publisher_adopted && process_alive(runtime.publisher_pid) &&
                             runtime.publisher_pid != s.peer().pid;
  if ((runtime.publisher != 0 && runtime.publisher != s.id()) || adopted_alive) {
    return s.send_error(id, Error(ErrorCode::kFailedPrecondition,
                                  "stream '" + m->name + "' already has a publisher (pid " +
                                      std::to_string(runtime.publisher_pid) +
                                      "); a stream has one publisher at a time: open_publisher "
                                      "succeeds once that process has exited"));
  }
  auto fd = record->segment.open_fd(Access::kReadWrite);
  if (!fd) return s.send_error(id, fd.error());
  if (auto intact = check_segment(*record, fd->get()); !intact) {
    return s.send_error(id, intact.error());
  }
  runtime.publisher = s.id();
  runtime.publisher_pid = s.peer().pid;
  runtime.publisher_adopted = false;
  write_stream_word(*record, kPublisherPidAt, static_cast<std::uint32_t>(s.peer().pid));
  record->open_by.insert(s.id());
  s.opened.insert(record->info.name);
  spdlog::info("stream '{}': pid {} took over as publisher", m->name, s.peer().pid);
  s.send(wire::encode_message(wire::StreamReply{describe_live(*record)}, id, true),
         std::move(*fd));
}

void Broker::on_subscribe(Session& s, const wire::Frame& f) {
  auto m = decode_or_reply<wire::SubscribeRequest>(s, f);
  if (!m) return;
  const auto id = f.header.request_id;
  if (auto ok = validate_name(m->name); !ok) return s.send_error(id, ok.error());
  ArrayRecord* record = registry_.find(m->name);
  if (record == nullptr) return s.send_error(id, no_stream(m->name));
  if (record->info.kind != ObjectKind::kStream) return s.send_error(id, not_a_stream(m->name));
  if (!may_read(s.peer(), record->info) &&
      !bridge_may_open(s, record->info, Access::kReadOnly)) {
    return s.send_error(id, Error(ErrorCode::kPermissionDenied,
                                  "uid " + std::to_string(s.peer().uid) +
                                      " may not subscribe to '" + m->name +
                                      "': subscribing needs read permission (owner uid " +
                                      std::to_string(record->info.owner_uid) + ")"));
  }
  const StreamStatus& params = record->info.stream;
  if (m->max_held == 0 || m->max_held > kMaxHeldPerSubscriber) {
    return s.send_error(id, Error(ErrorCode::kInvalidArgument,
                                  "max_held is " + std::to_string(m->max_held) +
                                      "; it must be 1.." + std::to_string(kMaxHeldPerSubscriber)));
  }
  StreamRuntime& runtime = stream_runtime(*record);
  // The ring must always have a slot the publisher may reuse: kDropOldest never waits, so every
  // sample subscribers may hold, the history and the publisher's loan must fit at once.
  const std::uint64_t needed = runtime.slots_needed(params, m->max_held);
  if (needed > params.slots) {
    return s.send_error(
        id, Error(ErrorCode::kResourceExhausted,
                  "stream '" + m->name + "' has " + std::to_string(params.slots) +
                      " slots; this subscriber (max_held " + std::to_string(m->max_held) +
                      ") would need " + std::to_string(needed) +
                      " (held samples of all subscribers + history + 1 loan): lower max_held, or "
                      "recreate the stream with more slots"));
  }
  std::uint32_t index = 0;
  while (index < runtime.subscribers.size() && runtime.subscribers[index]) ++index;
  if (index == runtime.subscribers.size()) {
    return s.send_error(id, Error(ErrorCode::kResourceExhausted,
                                  "stream '" + m->name + "' already has its " +
                                      std::to_string(params.max_subscribers) +
                                      " subscribers (max_subscribers): retry when one leaves"));
  }
  auto stream_fd = record->segment.open_fd(Access::kReadOnly);
  if (!stream_fd) return s.send_error(id, stream_fd.error());
  if (auto intact = check_segment(*record, stream_fd->get()); !intact) {
    return s.send_error(id, intact.error());
  }
  const std::uint32_t generation = runtime.next_generation++;
  auto state = create_subscriber_state({index, generation, s.peer().pid, m->max_held});
  if (!state) return s.send_error(id, state.error());
  // Join: members first, then read head (see bump_members), then the cursor. The publisher
  // learns of this subscriber only through a StreamMembersRequest, answered after this handler.
  bump_members(*record, runtime);
  const std::uint64_t head = read_head(stream_fd->get());
  const std::uint64_t back = m->from_history ? std::min<std::uint64_t>(params.history, head) : 0;
  const std::uint64_t start = head + 1 - back;
  if (auto ok = write_subscriber_cursor(state->get(), start); !ok) {
    return s.send_error(id, ok.error());
  }
  runtime.subscribers[index] =
      StreamSubscriber{index, generation, s.id(), s.peer().pid, m->max_held, std::move(*state)};
  record->open_by.insert(s.id());
  s.opened.insert(record->info.name);
  spdlog::debug("stream '{}': pid {} subscribed (index {}, from seq {})", m->name, s.peer().pid,
                index, start);
  s.send(wire::encode_message(
             wire::SubscribeReply{describe_live(*record), index, generation, start}, id, true),
         std::move(*stream_fd));
}

void Broker::on_stream_members(Session& s, const wire::Frame& f) {
  auto m = decode_or_reply<wire::StreamMembersRequest>(s, f);
  if (!m) return;
  StreamRuntime* runtime = streams_.find(m->id);
  if (runtime == nullptr || !is_publisher(s, *runtime)) {
    return s.send_error(f.header.request_id,
                        Error(ErrorCode::kPermissionDenied,
                              "only the stream's publisher may list its subscribers"));
  }
  wire::StreamMembersReply reply;
  for (const auto& sub : runtime->subscribers) {
    if (sub) {
      reply.members.push_back({sub->index, sub->generation,
                               static_cast<std::uint32_t>(sub->pid), sub->max_held});
    }
  }
  s.send(wire::encode_message(reply, f.header.request_id));
}

void Broker::on_subscriber_state(Session& s, const wire::Frame& f) {
  auto m = decode_or_reply<wire::SubscriberStateRequest>(s, f);
  if (!m) return;
  const auto id = f.header.request_id;
  StreamRuntime* runtime = streams_.find(m->id);
  StreamSubscriber* sub = runtime == nullptr ? nullptr : runtime->find(m->index, m->generation);
  if (sub == nullptr) {
    return s.send_error(id, Error(ErrorCode::kNotFound,
                                  "no such subscriber (it left, or the stream was removed)"));
  }
  Result<UniqueFd> fd = fail(ErrorCode::kPermissionDenied,
                             "a subscriber's state is only for itself and the stream's publisher");
  if (sub->session == s.id()) {
    fd = UniqueFd(::fcntl(sub->state.get(), F_DUPFD_CLOEXEC, 0));
    if (!*fd) fd = std::unexpected(sys_error("dup", errno));
  } else if (is_publisher(s, *runtime)) {
    fd = reopen_read_only(sub->state.get());
  }
  if (!fd) return s.send_error(id, fd.error());
  s.send(wire::encode_message(wire::SubscriberStateReply{}, id, true), std::move(*fd));
}

void Broker::on_detach(Session& s, const wire::Frame& f) {
  auto m = decode_or_reply<wire::DetachRequest>(s, f);
  if (!m) return;
  StreamRuntime* runtime = streams_.find(m->id);
  ArrayRecord* record = runtime == nullptr ? nullptr : registry_.find(runtime->name);
  if (record != nullptr && record->info.id == m->id) {
    if (m->index == wire::kDetachPublisher) {
      // is_publisher also accepts the publisher adopted after a restart, by its pid (SO_PEERCRED):
      // one destroyed before it made any request to this broker releases the stream here.
      if (is_publisher(s, *runtime)) {
        runtime->publisher = 0;
        runtime->publisher_pid = 0;
        write_stream_word(*record, kPublisherPidAt, 0);
      }
    } else if (StreamSubscriber* sub = runtime->find(m->index, m->generation);
               sub != nullptr && sub->session == s.id()) {
      runtime->subscribers[m->index].reset();
      bump_members(*record, *runtime);
    }
  }
  // Unknown ids are no error: the stream may be gone, or attached through a previous broker.
  s.send(wire::encode_message(wire::DetachReply{}, f.header.request_id));
}

void Broker::release_stream_session(const Session& s) {
  for (const auto& stream_id : streams_.ids()) {
    StreamRuntime* runtime = streams_.find(stream_id);
    ArrayRecord* record = registry_.find(runtime->name);
    if (record == nullptr || record->info.id != stream_id) {
      streams_.erase(stream_id);
      continue;
    }
    if (runtime->publisher == s.id()) {
      // A message it had loaned but not published is invisible: head never moved past it.
      runtime->publisher = 0;
      runtime->publisher_pid = 0;
      write_stream_word(*record, kPublisherPidAt, 0);
      spdlog::info("stream '{}': its publisher (pid {}) disconnected", runtime->name,
                   s.peer().pid);
    }
    bool left = false;
    for (auto& sub : runtime->subscribers) {
      if (sub && sub->session == s.id()) {
        // Its state page dies with the last descriptor and mapping; the publisher drops it
        // at its next loan (or within one wait slice), so it holds nothing back any more.
        sub.reset();
        left = true;
      }
    }
    if (left) bump_members(*record, *runtime);
  }
}

void Broker::describe_stream(ArrayRecord& record, ArrayInfo& info) {
  StreamRuntime& runtime = stream_runtime(record);
  if (auto fd = record.segment.open_fd(Access::kReadOnly)) info.stream.last_seq = read_head(fd->get());
  info.stream.publisher_pid = static_cast<std::uint32_t>(runtime.publisher_pid);
  info.stream.subscribers.clear();
  for (const auto& sub : runtime.subscribers) {
    if (!sub) continue;
    SubscriberStatus status = read_subscriber_status(sub->state.get(), sub->max_held);
    status.pid = static_cast<std::uint32_t>(sub->pid);
    info.stream.subscribers.push_back(status);
  }
}

}  // namespace shmarray::server
