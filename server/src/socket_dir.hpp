#pragma once
// The broker's socket directory and its lock file: who may own them, and taking the lock. One unit,
// used by the broker's start-up and by `shmarrayd --gc` (which must hold the same lock).
//
// Why: the socket, its lock file and the catalogue live in that directory. A directory another
// user owns or may write lets that user run an impostor broker there, replace the socket, or plant
// a symbolic link where the broker creates its files (docs/security.md, "The socket directory").
#include <sys/stat.h>
#include <sys/types.h>

#include <string>

#include "shmarray/error.hpp"
#include "shmarray/unique_fd.hpp"

namespace shmarray::server {

// The directory holding `socket_path` ("." without a slash, "/" for a path in the root).
[[nodiscard]] std::string socket_directory_of(const std::string& socket_path);

// Pure rule: `st` (stat of directory `dir`) is acceptable for a broker running as `euid` if it is a
// directory owned by `euid` that neither group nor others may write. kFailedPrecondition naming
// the directory, its owner and mode, and what to do, otherwise.
[[nodiscard]] Result<void> judge_socket_directory(const std::string& dir, const struct stat& st,
                                                  uid_t euid);

// Creates the socket's directory (mode 0700, one level) if missing, then applies
// judge_socket_directory to it for this process's effective uid.
[[nodiscard]] Result<void> check_socket_directory(const std::string& socket_path);

// check_socket_directory, then opens `<socket_path>.lock` without following a symbolic link
// (mode 0600; it must be a regular file of ours with one link) and takes an exclusive flock.
// The descriptor holds the lock until closed.
// kAlreadyExists (naming the socket) when another process holds the lock: a broker is serving it.
// kFailedPrecondition for a planted symbolic link or a foreign lock file, naming it and the remedy.
[[nodiscard]] Result<UniqueFd> lock_socket_directory(const std::string& socket_path);

}  // namespace shmarray::server
