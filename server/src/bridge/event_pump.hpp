#pragma once
// The broker's events (created, removed) for a source link's prefix, read by a thread of their own
// that queues them and rings the link's Doorbell: the link thread, asleep on its arrays' wake
// words and the doorbell (futex_wait_any.hpp), sees an event as soon as the broker sends it
// instead of between timed sleeps.
#include <mutex>
#include <optional>
#include <stop_token>
#include <thread>
#include <vector>

#include "doorbell.hpp"
#include "shmarray/watcher.hpp"

namespace shmarray::bridge {

class EventPump {
 public:
  // `watcher` is used by the pump's thread only, until the pump is destroyed.
  EventPump(Watcher& watcher, Doorbell& doorbell);
  // Stops the thread and waits for it (at most one read slice).
  ~EventPump();
  EventPump(const EventPump&) = delete;
  EventPump& operator=(const EventPump&) = delete;

  // The events queued since the last call, in order; the watcher's error once it failed (the
  // broker went away).
  [[nodiscard]] Result<std::vector<WatchEvent>> take();

 private:
  void run(const std::stop_token& stop);

  Watcher& watcher_;
  Doorbell& doorbell_;
  std::mutex mutex_;
  std::vector<WatchEvent> queued_;
  std::optional<Error> failure_;
  std::jthread thread_;  // last: starts after everything it uses, stops first
};

}  // namespace shmarray::bridge
