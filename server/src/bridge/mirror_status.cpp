#include "mirror_status.hpp"

namespace shmarray::bridge {

void MirrorStatusBoard::set_link(const std::string& prefix, const std::string& peer,
                                 std::string link) {
  std::lock_guard lock(mutex_);
  auto& l = links_[prefix];
  l.prefix = prefix;
  l.peer = peer;
  if (l.link != link) changed_ = true;
  l.link = std::move(link);
}

void MirrorStatusBoard::set_array(const std::string& prefix, const std::string& name,
                                  MirroredArrayStatus status) {
  std::lock_guard lock(mutex_);
  links_[prefix].arrays[name] = status;
  changed_ = true;
}

void MirrorStatusBoard::erase_array(const std::string& prefix, const std::string& name) {
  std::lock_guard lock(mutex_);
  if (links_[prefix].arrays.erase(name) > 0) changed_ = true;
}

std::vector<MirrorLinkStatus> MirrorStatusBoard::snapshot(bool* changed) {
  std::lock_guard lock(mutex_);
  if (changed != nullptr) *changed = changed_;
  changed_ = false;
  std::vector<MirrorLinkStatus> out;
  for (const auto& [prefix, link] : links_) out.push_back(link);
  return out;
}

}  // namespace shmarray::bridge
