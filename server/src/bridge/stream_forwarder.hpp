#pragma once
// One mirrored stream on the source side of a link. A thread of its own sleeps in take() on the
// stream (a futex, woken by the publish) and sends each message over the link at once (LinkSender:
// under the link's send lock), so a link with several streams and arrays wakes for whichever
// publishes, instead of sleeping on one of them and looking at the others between sleeps.
// The subscriber holds one message at a time (max_held 1): under kBlock the source's publisher
// waits for it like for any subscriber, so back-pressure from the mirror crosses the link; under
// kDropOldest what it could not take in time is dropped and counted in its `missed`.
// The publisher holds the stream segment read-write and may truncate it: the mapping is guarded
// (sigbus_guard.hpp), and a forwarder whose mapping was truncated stops for good (the stream is
// broken at the source too); a stream made again under that name is forwarded afresh.
#include <atomic>
#include <optional>
#include <stop_token>
#include <string>
#include <thread>

#include "link_sender.hpp"
#include "shmarray/stream.hpp"
#include "sigbus_guard.hpp"

namespace shmarray::bridge {

class StreamForwarder {
 public:
  // Starts forwarding `name` (its StreamBegin must have been sent already).
  // `guard` watches `subscriber`'s mapping.
  StreamForwarder(std::string prefix, std::string name, std::string source_id,
                  Subscriber subscriber, GuardedRange guard, LinkSender& sender);
  // Stops the thread and waits for it (at most one take() slice and a send in progress).
  ~StreamForwarder();
  StreamForwarder(const StreamForwarder&) = delete;
  StreamForwarder& operator=(const StreamForwarder&) = delete;

  [[nodiscard]] const std::string& source_id() const noexcept { return source_id_; }
  // The publisher truncated the stream segment: this forwarder has stopped.
  [[nodiscard]] bool truncated() const noexcept { return guard_ && guard_->truncated(); }

 private:
  void run(const std::stop_token& stop);
  [[nodiscard]] Result<void> forward(const Sample& sample);

  std::string prefix_;
  std::string name_;
  std::string source_id_;
  std::optional<Subscriber> subscriber_;  // reset before guard_ (see the destructor)
  std::optional<GuardedRange> guard_;
  LinkSender& sender_;
  std::jthread thread_;  // last: starts after everything it uses, stops first
};

}  // namespace shmarray::bridge
