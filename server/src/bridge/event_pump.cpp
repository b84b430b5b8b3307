#include "event_pump.hpp"

#include <utility>

#include "ucx_worker.hpp"

namespace shmarray::bridge {
namespace {

// How often the pump's thread looks whether it is to stop (an event ends its read at once).
constexpr std::chrono::milliseconds kReadSlice{50};

}  // namespace

EventPump::EventPump(Watcher& watcher, Doorbell& doorbell)
    : watcher_(watcher),
      doorbell_(doorbell),
      thread_([this](const std::stop_token& stop) { run(stop); }) {}

EventPump::~EventPump() {
  thread_.request_stop();
  if (thread_.joinable()) thread_.join();
}

Result<std::vector<WatchEvent>> EventPump::take() {
  std::lock_guard lock(mutex_);
  if (queued_.empty() && failure_) return std::unexpected(*failure_);
  return std::exchange(queued_, {});
}

void EventPump::run(const std::stop_token& stop) {
  while (!stop.stop_requested() && !g_stopping.load()) {
    auto event = watcher_.next(kReadSlice);
    if (event && !*event) continue;
    {
      std::lock_guard lock(mutex_);
      if (!event) {
        failure_ = event.error();
      } else {
        queued_.push_back(std::move(**event));
      }
    }
    doorbell_.ring();
    if (!event) return;
  }
}

}  // namespace shmarray::bridge
