#include "permissions.hpp"

namespace shmarray::server {
namespace {

// The permission bits (r = 4, w = 2) that apply to `who`, in the owner position's scale.
[[nodiscard]] std::uint32_t class_bits(const PeerCredentials& who, const ArrayInfo& info) noexcept {
  if (who.uid == info.owner_uid) return (info.mode >> 6) & 7u;
  if (who.gid == info.owner_gid) return (info.mode >> 3) & 7u;
  return info.mode & 7u;
}

}  // namespace

bool may_read(const PeerCredentials& who, const ArrayInfo& info) noexcept {
  return who.uid == 0 || (class_bits(who, info) & 4u) != 0;
}

bool may_write(const PeerCredentials& who, const ArrayInfo& info) noexcept {
  return who.uid == 0 || (class_bits(who, info) & 2u) != 0;
}

bool may_open(const PeerCredentials& who, const ArrayInfo& info, Access access) noexcept {
  return access == Access::kReadWrite ? may_write(who, info) : may_read(who, info);
}

bool may_administer(const PeerCredentials& who, const ArrayInfo& info) noexcept {
  return who.uid == 0 || who.uid == info.owner_uid;
}

}  // namespace shmarray::server
