#pragma once
// How many peer connections may be in their handshake at once: a connection that stays silent
// holds a thread for up to 5 s per message, so without a bound a flood of them would cost a
// thread each. At most kPerAddress from one address (so one attacker's address cannot keep the
// others out) and kTotal in all; a connection over either limit is closed at once.
#include <map>
#include <mutex>
#include <optional>

#include "listener_admission.hpp"

namespace shmarray::bridge {

class HandshakeLimit {
 public:
  static constexpr int kPerAddress = 4;
  static constexpr int kTotal = 64;

  // A slot for a connection from `from`, or nullopt (over a limit). Released when the Slot goes.
  class Slot {
   public:
    Slot(HandshakeLimit& limit, IpAddress from) : limit_(&limit), from_(from) {}
    Slot(Slot&& other) noexcept : limit_(std::exchange(other.limit_, nullptr)), from_(other.from_) {}
    Slot& operator=(Slot&&) = delete;
    ~Slot() { release(); }
    void release() noexcept {
      if (limit_ != nullptr) std::exchange(limit_, nullptr)->give_back(from_);
    }

   private:
    HandshakeLimit* limit_;
    IpAddress from_;
  };

  [[nodiscard]] std::optional<Slot> take(const IpAddress& from) {
    std::lock_guard lock(mutex_);
    int& mine = by_address_[from];
    if (mine >= kPerAddress || total_ >= kTotal) {
      if (mine == 0) by_address_.erase(from);
      return std::nullopt;
    }
    ++mine;
    ++total_;
    return Slot(*this, from);
  }

 private:
  void give_back(const IpAddress& from) noexcept {
    std::lock_guard lock(mutex_);
    if (--by_address_[from] <= 0) by_address_.erase(from);
    --total_;
  }
  std::mutex mutex_;
  std::map<IpAddress, int> by_address_;
  int total_ = 0;
};

}  // namespace shmarray::bridge
