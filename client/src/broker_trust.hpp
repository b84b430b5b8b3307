#pragma once
// Which broker a client trusts. A client hands its data to whoever listens on the socket, so right
// after connecting it checks the listener's uid (SO_PEERCRED): its own uid, root, or the uid the
// caller names for a system broker run as a dedicated user (ClientOptions::broker_uid, else
// $SHMARRAY_BROKER_UID). On the system socket (system_socket_path()) also the owner of the
// socket's directory, when only root could have given it that directory (system_broker_uid).
// Anything else may be an impostor that another user started in a directory it created first
// (docs/security.md).
#include <sys/stat.h>
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
// is the same uid, root, `trusted` or `system_owner`. kPermissionDenied naming both uids,
// `socket_path` and how to trust the broker's uid otherwise.
[[nodiscard]] Result<void> check_broker_uid(uid_t broker_uid, uid_t own_uid,
                                            std::optional<uid_t> trusted,
                                            const std::string& socket_path,
                                            std::optional<uid_t> system_owner = std::nullopt);

// Pure rule over lstat() of the system socket's directory and of that directory's parent: the
// directory's owner, if the directory is a real directory that neither group nor others may
// write and its parent is a real directory of root's that neither group nor others may write
// (so only root could have made the directory and given it to its owner: /run/shmarray, made by
// the package's tmpfiles entry for its user shmarray, in root's /run). std::nullopt otherwise.
[[nodiscard]] std::optional<uid_t> system_directory_owner(const struct stat& dir,
                                                          const struct stat& parent);

// The extra uid a broker at `socket_path` may run as: system_directory_owner of its directory when
// `socket_path` is system_socket_path(); std::nullopt for any other path or a directory that
// fails the rule. The system broker runs as that owner, since shmarrayd refuses a socket directory
// it does not own.
[[nodiscard]] std::optional<uid_t> system_broker_uid(const std::string& socket_path);

// Reads the uid of the process listening on connected socket `fd` and applies check_broker_uid
// for this process's effective uid.
[[nodiscard]] Result<void> verify_broker(int fd, std::optional<uid_t> trusted,
                                         const std::string& socket_path);

}  // namespace shmarray::detail
