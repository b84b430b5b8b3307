#pragma once
// The sending side of one source link, shared by the link's threads: the link thread (arrays,
// removals, heartbeats) and one StreamForwarder thread per stream. Each whole transfer (a message
// and the bytes that follow it, or an array's ArrayBegin .. ArrayEnd) runs under one lock, so
// transfers never interleave on the wire; the UCX worker is created UCS_THREAD_MODE_SERIALIZED
// for this. The first failure is kept (the link ends with it) and rings the link's Doorbell.
#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <utility>

#include "doorbell.hpp"
#include "peer_channel.hpp"

namespace shmarray::bridge {

class LinkSender {
 public:
  using Clock = std::chrono::steady_clock;
  LinkSender(PeerChannel& channel, Doorbell& doorbell) : channel_(channel), doorbell_(doorbell) {}
  LinkSender(const LinkSender&) = delete;
  LinkSender& operator=(const LinkSender&) = delete;

  // Runs `transfer(PeerChannel&) -> Result<void>` under the lock; after a failure (this one or an
  // earlier one of any thread) nothing more is sent and every call fails.
  template <class F>
  [[nodiscard]] Result<void> locked(F&& transfer) {
    std::lock_guard lock(mutex_);
    if (failure_) return std::unexpected(*failure_);
    const std::uint64_t sends_before = channel_.sends();
    Result<void> done = std::forward<F>(transfer)(channel_);
    // Only what reached the wire counts: a transfer that gave up before sending anything (a
    // local writer kept the array's write window open) must not put the heartbeat off.
    if (channel_.sends() != sends_before) last_send_ = Clock::now();
    if (!done) {
      failure_ = done.error();
      doorbell_.ring();
    }
    return done;
  }
  // When something last went out whole (the link's start before that).
  [[nodiscard]] Clock::time_point last_send() const {
    std::lock_guard lock(mutex_);
    return last_send_;
  }
  [[nodiscard]] std::optional<Error> failure() const {
    std::lock_guard lock(mutex_);
    return failure_;
  }

 private:
  PeerChannel& channel_;
  Doorbell& doorbell_;
  mutable std::mutex mutex_;
  Clock::time_point last_send_ = Clock::now();
  std::optional<Error> failure_;
};

}  // namespace shmarray::bridge
