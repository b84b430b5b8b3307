#include "close_notifier.hpp"

#include <utility>

namespace shmarray::detail {

void CloseNotifier::released(std::string id) {
  {
    std::lock_guard lock(queue_mutex_);
    queued_.push_back(std::move(id));
  }
  std::lock_guard lock(attach_mutex_);
  if (send_now_) send_now_();
}

std::vector<std::string> CloseNotifier::take() {
  std::lock_guard lock(queue_mutex_);
  return std::exchange(queued_, {});
}

bool CloseNotifier::empty() {
  std::lock_guard lock(queue_mutex_);
  return queued_.empty();
}

void CloseNotifier::attach(std::function<void()> send_now) {
  std::lock_guard lock(attach_mutex_);
  send_now_ = std::move(send_now);
}

void CloseNotifier::detach() {
  std::lock_guard lock(attach_mutex_);
  send_now_ = nullptr;
}

}  // namespace shmarray::detail
