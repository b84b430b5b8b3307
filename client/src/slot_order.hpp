#pragma once
// The slots of a stream's ring ordered by the age of the message each holds, kept by the
// publisher in its private memory. It lets a loan take the newest slot when every subscriber is
// done with it (its lines are still in both sides' caches, and a steady stream then cycles
// through one slot instead of the whole ring), and otherwise the oldest, as a plain ring would.
// O(1) per operation: a doubly linked list over slot indices.
#include <cstdint>
#include <span>
#include <vector>

namespace shmarray::detail {

class SlotOrder {
 public:
  // `by_age`: every slot index 0..n-1 once, oldest first.
  void reset(std::span<const std::uint32_t> by_age) {
    const auto n = static_cast<std::uint32_t>(by_age.size());
    none_ = n;
    older_.assign(n, n);
    newer_.assign(n, n);
    oldest_ = newest_ = n;
    for (const std::uint32_t slot : by_age) append(slot);
  }
  [[nodiscard]] std::uint32_t oldest() const noexcept { return oldest_; }
  [[nodiscard]] std::uint32_t newest() const noexcept { return newest_; }
  // The slot holding the next younger message, or end() after the newest.
  [[nodiscard]] std::uint32_t newer(std::uint32_t slot) const noexcept { return newer_[slot]; }
  [[nodiscard]] std::uint32_t end() const noexcept { return none_; }
  // `slot` now holds the newest message.
  void make_newest(std::uint32_t slot) noexcept {
    if (slot == newest_) return;
    unlink(slot);
    append(slot);
  }

 private:
  void unlink(std::uint32_t slot) noexcept {
    const std::uint32_t o = older_[slot], y = newer_[slot];
    (o == none_ ? oldest_ : newer_[o]) = y;
    (y == none_ ? newest_ : older_[y]) = o;
    older_[slot] = newer_[slot] = none_;
  }
  void append(std::uint32_t slot) noexcept {
    older_[slot] = newest_;
    newer_[slot] = none_;
    (newest_ == none_ ? oldest_ : newer_[newest_]) = slot;
    newest_ = slot;
  }

  std::uint32_t none_ = 0;
  std::uint32_t oldest_ = 0;
  std::uint32_t newest_ = 0;
  std::vector<std::uint32_t> older_;
  std::vector<std::uint32_t> newer_;
};

}  // namespace shmarray::detail
