// Re-admission of a stream's subscribers after a broker restart (docs/streams.md, "Broker killed
// and restarted"). The subscriber table lives in the broker's memory only, and a subscriber's
// state page is an anonymous memfd: a restarted broker cannot find either. Each subscriber sees
// the stream's epoch change at its next take() and hands its page back with what the previous
// broker told it (index, generation, max_held) and its position. The page is checked as the
// publisher checks it before mapping (the broker itself never maps it), the request against the
// page's owner fields and the connection's credentials, and admission as at subscribe; then the
// subscriber is recorded and `members` bumped, so the publisher gates on it from its next loan.
// Nothing here grants more than a fresh subscribe would: read access to the stream was checked
// again, and the only page recorded is the one its own process handed over.
#include <spdlog/spdlog.h>

#include <cstddef>

#include "broker.hpp"
#include "decode_or_reply.hpp"
#include "log_text.hpp"
#include "permissions.hpp"
#include "subscriber_state.hpp"
#include "shmarray/stream/stream_layout.hpp"
#include "shmarray/wire/stream_messages.hpp"

namespace shmarray::server {
namespace {

constexpr std::size_t kHeadAt = stream::kControlOffset + offsetof(stream::StreamControl, head);

}  // namespace

void Broker::on_readmit_subscriber(Session& s, const wire::Frame& f) {
  UniqueFd page = std::move(s.passed_fd);
  auto m = decode_or_reply<wire::ReadmitSubscriberRequest>(s, f);
  if (!m) return;
  const auto id = f.header.request_id;
  std::string name = "?";
  auto refuse = [&](ErrorCode code, const std::string& why) {
    spdlog::info("stream '{}': re-admission of pid {} refused: {}", log_text(name), s.peer().pid,
                 log_text(why, kMaxLoggedMessageBytes));
    s.send_error(id, Error(code, why));
  };
  if (!page) {
    return refuse(ErrorCode::kInvalidArgument,
                  "a ReadmitSubscriberRequest must carry the subscriber's state page");
  }
  ArrayRecord* record = registry_.find_by_id(m->id);
  if (record == nullptr || record->info.kind != ObjectKind::kStream) {
    return refuse(ErrorCode::kNotFound,
                  "the stream this subscriber was attached to no longer exists (removed while "
                  "the broker was away?): subscribe again");
  }
  name = record->info.name;
  const std::string what = "stream '" + name + "': ";
  if (!may_read(s.peer(), record->info) && !bridge_may_open(s, record->info, Access::kReadOnly)) {
    return refuse(ErrorCode::kPermissionDenied,
                  what + "uid " + std::to_string(s.peer().uid) +
                      " may not subscribe (read permission needed; owner uid " +
                      std::to_string(record->info.owner_uid) + ")");
  }
  auto state = check_returned_state(page.get());
  if (!state) return refuse(state.error().code(), what + state.error().message());
  // The previous broker wrote the owner fields for this subscriber: the request must agree with
  // them, and the page must be this process's own.
  if (state->index != m->index || state->generation != m->generation ||
      state->max_held != m->max_held) {
    return refuse(ErrorCode::kInvalidArgument,
                  what + "the request claims subscriber index " + std::to_string(m->index) +
                      " generation " + std::to_string(m->generation) + " max_held " +
                      std::to_string(m->max_held) + ", but its state page was made for index " +
                      std::to_string(state->index) + " generation " +
                      std::to_string(state->generation) + " max_held " +
                      std::to_string(state->max_held));
  }
  if (state->pid != static_cast<std::uint32_t>(s.peer().pid)) {
    return refuse(ErrorCode::kPermissionDenied,
                  what + "the state page belongs to pid " + std::to_string(state->pid) +
                      ", not to pid " + std::to_string(s.peer().pid) +
                      " that handed it back: a subscriber can only be re-admitted by itself");
  }
  const StreamStatus& params = record->info.stream;
  if (m->max_held == 0 || m->max_held > kMaxHeldPerSubscriber ||
      m->index >= params.max_subscribers || m->generation == 0 || m->generation == UINT32_MAX) {
    return refuse(ErrorCode::kInvalidArgument,
                  what + "index " + std::to_string(m->index) + ", generation " +
                      std::to_string(m->generation) + " or max_held " +
                      std::to_string(m->max_held) + " is out of range");
  }
  auto stream_fd = record->segment.open_fd(Access::kReadOnly);
  if (!stream_fd) return refuse(stream_fd.error().code(), stream_fd.error().message());
  if (auto intact = check_segment(*record, stream_fd->get()); !intact) {
    return refuse(intact.error().code(), intact.error().message());
  }
  std::uint64_t head = 0;
  if (auto got = pread_full(stream_fd->get(), &head, sizeof head, kHeadAt);
      !got || *got != sizeof head) {
    head = 0;
  }
  if (m->cursor != state->cursor || m->cursor == 0 || m->cursor > head + 1) {
    return refuse(ErrorCode::kInvalidArgument,
                  what + "the claimed position " + std::to_string(m->cursor) +
                      " disagrees with the state page (" + std::to_string(state->cursor) +
                      ") or lies past the stream's last message (" + std::to_string(head) + ")");
  }
  StreamRuntime& runtime = stream_runtime(*record);
  if (m->generation > runtime.members_at_start) {
    return refuse(ErrorCode::kInvalidArgument,
                  what + "generation " + std::to_string(m->generation) +
                      " was never handed out (the stream's membership generation was " +
                      std::to_string(runtime.members_at_start) + " when this broker started)");
  }
  for (const auto& sub : runtime.subscribers) {
    if (!sub || !same_page(sub->state.get(), *state)) continue;
    if (sub->session != s.id()) {
      return refuse(ErrorCode::kAlreadyExists,
                    what + "this state page is already admitted (subscriber index " +
                        std::to_string(sub->index) + ")");
    }
    // Asked again on the same connection (it saw the epoch before this broker wrote it): the
    // same answer.
    return s.send(wire::encode_message(
        wire::ReadmitSubscriberReply{sub->index, sub->generation}, id));
  }
  // Admission as at subscribe: subscribers that joined since the restart may have taken the room.
  const std::uint64_t needed = runtime.slots_needed(params, m->max_held);
  if (needed > params.slots) {
    return refuse(ErrorCode::kResourceExhausted,
                  what + "the restarted broker cannot take this subscriber back: with max_held " +
                      std::to_string(m->max_held) + " the ring would need " +
                      std::to_string(needed) + " slots (held samples of all subscribers + " +
                      "history + 1 loan) and has " + std::to_string(params.slots) +
                      "; subscribers that joined since the restart took the room");
  }
  // Its own index when free (the publisher then recognises it), else any free one.
  std::uint32_t index = m->index;
  std::uint32_t generation = m->generation;
  if (runtime.subscribers[index]) {
    index = 0;
    while (index < runtime.subscribers.size() && runtime.subscribers[index]) ++index;
    if (index == runtime.subscribers.size()) {
      return refuse(ErrorCode::kResourceExhausted,
                    what + "the restarted broker cannot take this subscriber back: the stream "
                           "already has its " + std::to_string(params.max_subscribers) +
                           " subscribers (max_subscribers)");
    }
    generation = runtime.next_generation++;
  }
  bump_members(*record, runtime);
  runtime.subscribers[index] = StreamSubscriber{index,        generation, s.id(), s.peer().pid,
                                                m->max_held, std::move(state->fd)};
  record->open_by.insert(s.id());
  s.opened.insert(name);
  spdlog::info("stream '{}': pid {} re-admitted after a broker restart (index {}, position {})",
               name, s.peer().pid, index, m->cursor);
  s.send(wire::encode_message(wire::ReadmitSubscriberReply{index, generation}, id));
}

}  // namespace shmarray::server
