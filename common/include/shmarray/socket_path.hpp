#pragma once
// The one rule for where the broker listens, shared by broker, client, CLI and Python:
// $SHMARRAY_SOCKET, else $XDG_RUNTIME_DIR/shmarray.sock, else /tmp/shmarray-$UID/shmarray.sock.
// Clients given no socket also find the system broker (docs/operations.md): client_socket_path().
#include <string>

#include "shmarray/error.hpp"

namespace shmarray {

// The default socket path for this process (environment as above). Never fails.
[[nodiscard]] std::string default_socket_path();
// `path` if non-empty, else default_socket_path().
[[nodiscard]] std::string resolve_socket_path(const std::string& path);
// The system broker's socket, which the shmarrayd package's shmarrayd.socket serves:
// /run/shmarray/shmarray.sock ($SHMARRAY_SYSTEM_SOCKET, if set and non-empty, replaces it: for
// tests and non-packaged layouts).
[[nodiscard]] std::string system_socket_path();
// The socket a client connects to when given none: $SHMARRAY_SOCKET if set; else the user's own
// default_socket_path() if anything exists at that path; else system_socket_path() if anything
// exists there; else default_socket_path() (so "no broker at ..." names the user's own socket).
[[nodiscard]] std::string client_socket_path();
// `path` if non-empty, else client_socket_path().
[[nodiscard]] std::string resolve_client_socket_path(const std::string& path);
// Prefix of the shared-memory segment names of the broker serving `socket_path`:
// "/shmarray.<uid>.<8 hex digits of a hash of the path>.". Per user and per socket, so brokers on
// different sockets never adopt each other's segments; tests use it to check for leaks.
[[nodiscard]] std::string segment_prefix(const std::string& socket_path);
// Creates the socket's parent directory with mode 0700 if it does not exist (one level only).
// kFailedPrecondition if it exists but is not a directory.
[[nodiscard]] Result<void> ensure_socket_directory(const std::string& socket_path);

}  // namespace shmarray
