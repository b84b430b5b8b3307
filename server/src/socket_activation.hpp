#pragma once
// Socket activation (systemd's sd_listen_fds protocol): the service manager binds and listens on
// the socket itself and passes it to the broker as descriptor 3 with LISTEN_PID (our pid),
// LISTEN_FDS (how many) and LISTEN_FDNAMES (their names, ':'-separated). Connections made before
// the broker runs wait in the socket's backlog and are served once it starts.
//
// What is checked about a passed descriptor (docs/operations.md, docs/security.md): it is a
// listening AF_UNIX stream socket bound to a path (not abstract, not unnamed); that path is the
// one the broker was told (--socket / $SHMARRAY_SOCKET) when it was told one; the file at that
// path is a socket (not a symbolic link) owned by the broker's uid or by root (the service
// manager). The socket's directory must still pass the broker's own rule, since it holds the
// lock file and the catalogue (socket_dir.hpp): owned by the broker's uid, writable by no one
// else.
#include <optional>
#include <string>

#include "shmarray/error.hpp"
#include "shmarray/unique_fd.hpp"

namespace shmarray::server {

struct ActivatedSocket {
  UniqueFd fd;       // listening, close-on-exec
  std::string path;  // the path it is bound to
};

// The socket passed by the service manager, or nullopt when none was passed (LISTEN_PID unset or
// not ours: then the broker binds the socket itself). Clears LISTEN_PID, LISTEN_FDS and
// LISTEN_FDNAMES from the environment either way. `wanted_path` is the socket the broker was
// told to serve ("" when it was not told one). kFailedPrecondition naming the descriptor, what
// it is and the remedy when the passed descriptors are not exactly one such socket.
[[nodiscard]] Result<std::optional<ActivatedSocket>> take_activated_socket(
    const std::string& wanted_path);

}  // namespace shmarray::server
