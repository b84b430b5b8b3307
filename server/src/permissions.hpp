#pragma once
// Who may do what to an array: the file-like permission rules of the broker, as pure functions of
// the caller's credentials (SO_PEERCRED, fixed at connect) and the array's owner and mode.
//
// As for a Unix file: the owner's bits apply to the owner (even where the group or other bits
// would allow more), the group's bits to a caller whose gid is the array's group, the other bits to
// everyone else; root (uid 0) may do anything. Only the caller's effective gid is considered
// (docs/security.md). Only the owner or root may remove an array or change its mode.
#include "peer_credentials.hpp"
#include "shmarray/types.hpp"

namespace shmarray::server {

[[nodiscard]] bool may_read(const PeerCredentials& who, const ArrayInfo& info) noexcept;
[[nodiscard]] bool may_write(const PeerCredentials& who, const ArrayInfo& info) noexcept;
// may_write for Access::kReadWrite, may_read for Access::kReadOnly.
[[nodiscard]] bool may_open(const PeerCredentials& who, const ArrayInfo& info,
                            Access access) noexcept;
// remove and chmod.
[[nodiscard]] bool may_administer(const PeerCredentials& who, const ArrayInfo& info) noexcept;

}  // namespace shmarray::server
