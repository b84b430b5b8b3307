#pragma once
// Opens parked until their name is created (OpenRequest with wait_ms > 0). Indexed by name (a
// create wakes its waiters by lookup, never by a scan), by deadline (one timer serves them all)
// and by connection (a connection's parked opens go with it). Bounded per connection and in
// total. Pure data: no sockets, no timers, no logging; not thread-safe (one broker thread).
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "registry.hpp"
#include "shmarray/error.hpp"
#include "shmarray/types.hpp"

namespace shmarray::server {

class PendingOpens {
 public:
  using Clock = std::chrono::steady_clock;

  struct Limits {
    std::size_t max_total = 100'000;
    std::size_t max_per_connection = 1'000;
  };

  // One parked open, as handed back when it is woken, expires or is cancelled.
  struct Parked {
    std::string name;
    SessionId session = 0;
    std::uint64_t request_id = 0;
    Access access = Access::kReadOnly;
    std::uint32_t wait_ms = 0;
    Clock::time_point deadline;
    // the owner the open requires (OpenOptions::owner)
    std::optional<std::uint32_t> owner = std::nullopt;
  };

  explicit PendingOpens(Limits limits) : limits_(limits) {}
  PendingOpens(const PendingOpens&) = delete;
  PendingOpens& operator=(const PendingOpens&) = delete;

  // kResourceExhausted, naming the limit and the shmarrayd option that raises it, if `session`
  // may not park one more open.
  [[nodiscard]] Result<void> check_capacity(SessionId session) const;
  // Parks `parked` (its capacity checked first by the caller).
  void park(Parked parked);
  // Removes and returns every open waiting for `name`, in the order they were parked.
  [[nodiscard]] std::vector<Parked> take_named(std::string_view name);
  // Removes and returns the opens whose deadline is at or before `now`.
  [[nodiscard]] std::vector<Parked> take_expired(Clock::time_point now);
  // Forgets `session`'s parked opens (its connection closed); returns how many there were.
  std::size_t drop_session(SessionId session);
  // Removes and returns everything (shutdown).
  [[nodiscard]] std::vector<Parked> take_all();
  // The earliest deadline, if anything is parked.
  [[nodiscard]] std::optional<Clock::time_point> next_deadline() const;

  [[nodiscard]] std::size_t size() const noexcept { return by_name_.size(); }
  [[nodiscard]] std::size_t count_of(SessionId session) const;
  [[nodiscard]] const Limits& limits() const noexcept { return limits_; }

 private:
  struct Entry {
    std::uint64_t serial;  // tells apart entries with equal deadlines or sessions
    SessionId session;
    std::uint64_t request_id;
    Clock::time_point deadline;
    std::uint32_t wait_ms;
    Access access;
    std::optional<std::uint32_t> owner;
  };
  using ByName = std::multimap<std::string, Entry, std::less<>>;
  using Handle = ByName::iterator;

  Parked unlink(Handle h);  // removes `h` from every index

  Limits limits_;
  ByName by_name_;  // equal names keep their insertion order
  std::map<std::pair<Clock::time_point, std::uint64_t>, Handle> by_deadline_;
  std::map<std::pair<SessionId, std::uint64_t>, Handle> by_session_;
  std::map<SessionId, std::size_t> count_by_session_;
  std::uint64_t next_serial_ = 1;
};

}  // namespace shmarray::server
