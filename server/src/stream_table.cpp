#include "stream_table.hpp"

namespace shmarray::server {

StreamSubscriber* StreamRuntime::find(std::uint32_t index, std::uint32_t generation) {
  if (index >= subscribers.size() || !subscribers[index]) return nullptr;
  return subscribers[index]->generation == generation ? &*subscribers[index] : nullptr;
}

std::uint64_t StreamRuntime::total_held() const {
  std::uint64_t sum = 0;
  for (const auto& s : subscribers) {
    if (s) sum += s->max_held;
  }
  return sum;
}

std::uint64_t StreamRuntime::slots_needed(const StreamStatus& params,
                                          std::uint32_t max_held) const {
  return params.overflow == Overflow::kDropOldest
             ? total_held() + max_held + params.history + 1
             : std::uint64_t{max_held} + 1;
}

StreamRuntime* StreamTable::find(const std::string& id) {
  const auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : &it->second;
}

StreamRuntime& StreamTable::insert(const std::string& id, StreamRuntime runtime) {
  return by_id_.insert_or_assign(id, std::move(runtime)).first->second;
}

std::vector<std::string> StreamTable::ids() const {
  std::vector<std::string> out;
  out.reserve(by_id_.size());
  for (const auto& [id, runtime] : by_id_) out.push_back(id);
  return out;
}

}  // namespace shmarray::server
