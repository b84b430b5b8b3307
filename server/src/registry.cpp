#include "registry.hpp"

namespace shmarray::server {

ArrayRecord* Registry::find(std::string_view name) {
  const auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : it->second;
}

const ArrayRecord* Registry::find(std::string_view name) const {
  const auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : it->second;
}

ArrayRecord* Registry::find_by_id(std::string_view id) {
  const auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : it->second;
}

Result<void> Registry::check_capacity(std::uint32_t uid, std::uint64_t bytes) const {
  if (records_.size() >= limits_.max_arrays) {
    return fail(ErrorCode::kResourceExhausted,
                "the broker holds " + std::to_string(records_.size()) +
                    " arrays, its limit: remove some or restart it with a larger --max-arrays");
  }
  if (bytes > limits_.max_total_bytes || total_bytes_ > limits_.max_total_bytes - bytes) {
    return fail(ErrorCode::kResourceExhausted,
                "creating " + std::to_string(bytes) + " more bytes would exceed the broker's "
                "total of " + std::to_string(limits_.max_total_bytes) + " bytes (" +
                    std::to_string(total_bytes_) + " in use): remove arrays or raise --max-bytes");
  }
  const std::uint64_t used = bytes_of(uid);
  if (bytes > limits_.max_bytes_per_user || used > limits_.max_bytes_per_user - bytes) {
    return fail(ErrorCode::kResourceExhausted,
                "creating " + std::to_string(bytes) + " more bytes would exceed the per-user "
                "limit of " + std::to_string(limits_.max_bytes_per_user) + " bytes for uid " +
                    std::to_string(uid) + " (" + std::to_string(used) +
                    " in use): remove arrays or raise --max-bytes-per-user");
  }
  return {};
}

ArrayRecord& Registry::insert(ArrayRecord record) {
  const std::uint64_t bytes = record.info.segment_bytes;
  const std::uint32_t uid = record.info.owner_uid;
  std::string name = record.info.name;
  auto [it, inserted] = records_.emplace(std::move(name), std::move(record));
  if (inserted) {
    by_name_.emplace(it->first, &it->second);
    by_id_.emplace(it->second.info.id, &it->second);
    total_bytes_ += bytes;
    bytes_per_user_[uid] += bytes;
  }
  return it->second;
}

std::optional<ArrayRecord> Registry::erase(std::string_view name) {
  const auto it = records_.find(name);
  if (it == records_.end()) return std::nullopt;
  if (const auto id = by_id_.find(it->second.info.id);
      id != by_id_.end() && id->second == &it->second) {
    by_id_.erase(id);
  }
  by_name_.erase(it->first);
  ArrayRecord record = std::move(it->second);
  records_.erase(it);
  total_bytes_ -= record.info.segment_bytes;
  auto& user = bytes_per_user_[record.info.owner_uid];
  user -= record.info.segment_bytes;
  if (user == 0) bytes_per_user_.erase(record.info.owner_uid);
  return record;
}

std::vector<const ArrayRecord*> Registry::with_prefix(std::string_view prefix) const {
  std::vector<const ArrayRecord*> out;
  for (auto it = records_.lower_bound(prefix); it != records_.end(); ++it) {
    if (it->first.compare(0, prefix.size(), prefix) != 0) break;
    out.push_back(&it->second);
  }
  return out;
}

Registry::Page Registry::page(std::string_view prefix, std::string_view after,
                              std::size_t max) const {
  Page out;
  auto it = after.empty() || after < prefix ? records_.lower_bound(prefix)
                                            : records_.upper_bound(after);
  for (; it != records_.end(); ++it) {
    if (it->first.compare(0, prefix.size(), prefix) != 0) break;
    if (out.records.size() == max) {
      out.more = true;
      break;
    }
    out.records.push_back(&it->second);
  }
  return out;
}

std::vector<std::string> Registry::release_session(SessionId session,
                                                   const std::set<std::string>& names) {
  std::vector<std::string> ephemeral;
  for (const auto& name : names) {
    ArrayRecord* record = find(name);
    if (record == nullptr) continue;
    record->open_by.erase(session);
    if (record->info.ephemeral && record->creator == session) ephemeral.push_back(name);
  }
  return ephemeral;
}

ArrayInfo Registry::describe(const ArrayRecord& record) {
  ArrayInfo info = record.info;
  info.open_handles = static_cast<std::uint32_t>(record.open_by.size());
  return info;
}

std::uint64_t Registry::bytes_of(std::uint32_t uid) const {
  const auto it = bytes_per_user_.find(uid);
  return it == bytes_per_user_.end() ? 0 : it->second;
}

}  // namespace shmarray::server
