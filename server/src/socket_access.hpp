#pragma once
// Who may connect to the broker's socket. By default the socket lives in a 0700 directory of the
// broker's user, so only that user can reach it. In system mode (one broker shared by several
// users, docs/security.md) `--socket-group` and `--socket-mode` open it to a group or to every
// local user; each connection is then still identified by SO_PEERCRED and each array checked
// against its owner and mode bits.
#include <sys/types.h>

#include <cstdint>
#include <string>

#include "shmarray/error.hpp"

namespace shmarray::server {

// The gid of a socket group given as a name or a numeric gid; gid_t(-1) ("leave it") for "".
// kInvalidArgument naming the group and the remedy when no such group exists.
[[nodiscard]] Result<gid_t> resolve_socket_group(const std::string& group);

// Gives the bound (not yet listening) socket file `path` group `gid` (unless gid_t(-1)) and
// permission bits `mode` (unless negative). Group first, so the mode never applies to the wrong
// group; done before listen(), so nobody can connect while bind's mode is in force.
// kPermissionDenied / the errno's code with a message naming the option on failure.
[[nodiscard]] Result<void> apply_socket_access(const std::string& path, gid_t gid,
                                               std::int32_t mode);

// Logs a warning when the socket's directory does not let other users through although the
// socket's mode admits them (they would get "permission denied" on connect).
void warn_if_socket_directory_closed(const std::string& path);

}  // namespace shmarray::server
