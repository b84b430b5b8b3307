#pragma once
// An in-process futex word that other threads of the bridge ring to wake the source link's
// thread out of its sleep (futex_wait_any.hpp): a broker event queued, a stream forwarder failed.
#include <atomic>
#include <cstdint>

#include "futex_wait_any.hpp"
#include "shmarray/sync/futex.hpp"

namespace shmarray::bridge {

class Doorbell {
 public:
  // The word and its value now: take it before looking at what the ringers change.
  [[nodiscard]] FutexWatch watch() const noexcept {
    return FutexWatch{&word_, word_.load(std::memory_order_acquire)};
  }
  [[nodiscard]] bool rung_since(const FutexWatch& watched) const noexcept {
    return word_.load(std::memory_order_acquire) != watched.expected;
  }
  // Call after making the change visible (under the ringer's lock, or a release store).
  void ring() noexcept {
    word_.fetch_add(1, std::memory_order_release);
    (void)futex_wake(word_);
  }

 private:
  std::atomic<std::uint32_t> word_{0};
};

}  // namespace shmarray::bridge
