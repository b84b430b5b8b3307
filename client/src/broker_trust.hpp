#pragma once
// Which broker a client trusts. A client hands its data to whoever listens on the socket, so right
// after connecting it checks the listener's uid (SO_PEERCRED): its own uid, root, or the uid the
// caller names for a system broker run as a dedicated user (ClientOptions::broker_uid, else
// $SHMARRAY_BROKER_UID). Anything else may be an impostor that another user started in a directory
// it created first (docs/security.md).
#include <sys/types.h>

#include <optional>
#include <string>

#include "shmarray/error.hpp"

namespace shmarray::detail {

inline constexpr const char* kBrokerUidVariable = "SHMARRAY_BROKER_UID";

// `explicit_uid` if set, else $SHMARRAY_BROKER_UID if set and non-empty, else std::nullopt.
// kInvalidArgument naming the variable when its value is not a decimal uid.
[[nodiscard]] Result<std::optional<uid_t>> trusted_broker_uid(std::optional<uid_t> explicit_uid);

// Pure rule: a broker running as `broker_uid` is accepted by a client running as `own_uid` if it
// is the same uid, root, or `trusted`. kPermissionDenied naming both uids, `socket_path` and how to
// trust the broker's uid otherwise.
[[nodiscard]] Result<void> check_broker_uid(uid_t broker_uid, uid_t own_uid,
                                            std::optional<uid_t> trusted,
                                            const std::string& socket_path);

// Reads the uid of the process listening on connected socket `fd` and applies check_broker_uid
// for this process's effective uid.
[[nodiscard]] Result<void> verify_broker(int fd, std::optional<uid_t> trusted,
                                         const std::string& socket_path);

}  // namespace shmarray::detail
