#include "pending_opens.hpp"

namespace shmarray::server {

Result<void> PendingOpens::check_capacity(SessionId session) const {
  if (by_name_.size() >= limits_.max_total) {
    return fail(ErrorCode::kResourceExhausted,
                "the broker already holds " + std::to_string(by_name_.size()) +
                    " opens waiting for arrays to be created, its limit: retry later, or restart "
                    "it with a larger shmarrayd --max-parked-opens");
  }
  if (const std::size_t mine = count_of(session); mine >= limits_.max_per_connection) {
    return fail(ErrorCode::kResourceExhausted,
                "this connection already has " + std::to_string(mine) +
                    " opens waiting for arrays to be created, its limit: wait for fewer names at "
                    "once, or raise shmarrayd --max-parked-opens-per-connection");
  }
  return {};
}

void PendingOpens::park(Parked parked) {
  const std::uint64_t serial = next_serial_++;
  const Handle h = by_name_.emplace(std::move(parked.name),
                                    Entry{serial, parked.session, parked.request_id,
                                          parked.deadline, parked.wait_ms, parked.access,
                                          parked.owner});
  by_deadline_.emplace(std::pair(parked.deadline, serial), h);
  by_session_.emplace(std::pair(parked.session, serial), h);
  ++count_by_session_[parked.session];
}

PendingOpens::Parked PendingOpens::unlink(Handle h) {
  const Entry& e = h->second;
  by_deadline_.erase(std::pair(e.deadline, e.serial));
  by_session_.erase(std::pair(e.session, e.serial));
  if (auto c = count_by_session_.find(e.session); c != count_by_session_.end() && --c->second == 0) {
    count_by_session_.erase(c);
  }
  Parked out{h->first, e.session, e.request_id, e.access, e.wait_ms, e.deadline, e.owner};
  by_name_.erase(h);
  return out;
}

std::vector<PendingOpens::Parked> PendingOpens::take_named(std::string_view name) {
  std::vector<Parked> out;
  auto [it, end] = by_name_.equal_range(name);
  while (it != end) out.push_back(unlink(it++));
  return out;
}

std::vector<PendingOpens::Parked> PendingOpens::take_expired(Clock::time_point now) {
  std::vector<Parked> out;
  while (!by_deadline_.empty() && by_deadline_.begin()->first.first <= now) {
    out.push_back(unlink(by_deadline_.begin()->second));
  }
  return out;
}

std::size_t PendingOpens::drop_session(SessionId session) {
  auto it = by_session_.lower_bound(std::pair(session, std::uint64_t{0}));
  std::size_t dropped = 0;
  while (it != by_session_.end() && it->first.first == session) {
    const Handle h = (it++)->second;  // advanced first: unlink() erases the current node
    (void)unlink(h);
    ++dropped;
  }
  return dropped;
}

std::vector<PendingOpens::Parked> PendingOpens::take_all() {
  std::vector<Parked> out;
  while (!by_name_.empty()) out.push_back(unlink(by_name_.begin()));
  return out;
}

std::optional<PendingOpens::Clock::time_point> PendingOpens::next_deadline() const {
  if (by_deadline_.empty()) return std::nullopt;
  return by_deadline_.begin()->first.first;
}

std::size_t PendingOpens::count_of(SessionId session) const {
  const auto c = count_by_session_.find(session);
  return c == count_by_session_.end() ? 0 : c->second;
}

}  // namespace shmarray::server
