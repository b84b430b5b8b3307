#include "stream_forwarder.hpp"

#include <spdlog/spdlog.h>

#include "ucx_worker.hpp"

namespace shmarray::bridge {
namespace {

// How often an idle forwarder looks whether it is to stop (its take() ends at a message at once).
constexpr std::chrono::milliseconds kTakeSlice{50};
// A message up to this size is copied behind its description and sent with it in one UCX send.
constexpr std::size_t kCoalesceBytes = 4096;

}  // namespace

StreamForwarder::StreamForwarder(std::string prefix, std::string name, std::string source_id,
                                 Subscriber subscriber, GuardedRange guard, LinkSender& sender)
    : prefix_(std::move(prefix)),
      name_(std::move(name)),
      source_id_(std::move(source_id)),
      subscriber_(std::move(subscriber)),
      guard_(std::move(guard)),
      sender_(sender),
      thread_([this](const std::stop_token& stop) { run(stop); }) {}

StreamForwarder::~StreamForwarder() {
  thread_.request_stop();
  if (thread_.joinable()) thread_.join();
  // The range is unregistered while the mapping still exists (a registration must never outlive
  // its mapping: the handler would map zeros over whatever comes there next). The Subscriber's
  // goodbye then touches the stream's header page once more: a truncation not yet met faults
  // there, and the OpenGuard survives it with one zero page inside the dying mapping.
  guard_.reset();
  OpenGuard last_touch;
  subscriber_.reset();
}

void StreamForwarder::run(const std::stop_token& stop) {
  while (!stop.stop_requested() && !g_stopping.load()) {
    auto sample = subscriber_->take(kTakeSlice);
    if (guard_->truncated()) {
      // Read zeros where the ring was: nothing more of this stream is taken or sent.
      spdlog::warn("peer link '{}': stream '{}' was truncated by a local process (its segment "
                   "is shorter than the stream); it is not mirrored any more until it is made "
                   "again",
                   prefix_, name_);
      return;
    }
    if (!sample) {
      const ErrorCode code = sample.error().code();
      if (code != ErrorCode::kDeadlineExceeded && code != ErrorCode::kDataLoss) {
        // kDataLoss: that message is skipped. Anything else is logged and tried again later.
        spdlog::warn("peer link '{}': stream '{}': {}", prefix_, name_, sample.error().message());
        std::this_thread::sleep_for(kTakeSlice);
      }
      continue;
    }
    if (!forward(*sample)) return;  // the link failed: LinkSender kept why, the link thread ends
  }
}

// One message: its description, then its bytes straight from the source's ring. A small one goes
// in the same send as its description (one UCX send and one wake-up on the mirror instead of
// two); the mirror reads the stream of bytes the same way.
Result<void> StreamForwarder::forward(const Sample& sample) {
  const MessageInfo& m = sample.info();
  const auto bytes = sample.bytes().first(m.nbytes);
  auto head = encode_peer(StreamMessage{name_, sample.seq(), m.dtype, m.shape, m.order, m.nbytes});
  if (bytes.size() <= kCoalesceBytes) {
    head.insert(head.end(), bytes.begin(), bytes.end());
    if (guard_->truncated()) return {};  // the copy read zeros: run() stops at its next look
    return sender_.locked([&](PeerChannel& channel) { return channel.send_bytes(head); });
  }
  // A bigger one goes from the ring: a truncation during the send makes the rest of it zeros on
  // the mirror (bytes of the publisher's own message, which it could have written anyway); the
  // forwarder stops after it.
  return sender_.locked([&](PeerChannel& channel) -> Result<void> {
    if (auto ok = channel.send_bytes(head); !ok) return ok;
    return channel.send_bytes(bytes);
  });
}

}  // namespace shmarray::bridge
