#include "socket_dir.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

#include "shmarray/socket_path.hpp"

namespace shmarray::server {
namespace {

std::string octal(mode_t mode) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0%o", static_cast<unsigned>(mode & 07777));
  return buf;
}

}  // namespace

std::string socket_directory_of(const std::string& socket_path) {
  const auto slash = socket_path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : socket_path.substr(0, slash);
}

Result<void> judge_socket_directory(const std::string& dir, const struct stat& st, uid_t euid) {
  const std::string seen = "owner uid " + std::to_string(st.st_uid) + ", mode " + octal(st.st_mode);
  if (!S_ISDIR(st.st_mode)) {
    return fail(ErrorCode::kFailedPrecondition,
                "socket directory " + dir + " is not a directory: choose another --socket");
  }
  if (st.st_uid != euid) {
    return fail(ErrorCode::kFailedPrecondition,
                "socket directory " + dir + " (" + seen + ") is not owned by this broker's uid " +
                    std::to_string(euid) +
                    ": its owner could run an impostor broker there or replace the socket. If "
                    "you did not create it, someone else may have: remove it ('rm -r " + dir +
                    "') and start again, or choose a --socket in a directory you own (mode "
                    "0700)");
  }
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
    return fail(ErrorCode::kFailedPrecondition,
                "socket directory " + dir + " (" + seen +
                    ") may be written by its group or by other users, who could replace the "
                    "socket or plant files in it: 'chmod go-w " + dir +
                    "' (0700 keeps other users out entirely), or choose a --socket in a "
                    "directory only you may write");
  }
  return {};
}

Result<void> check_socket_directory(const std::string& socket_path) {
  if (auto ok = ensure_socket_directory(socket_path); !ok) return ok;
  const std::string dir = socket_directory_of(socket_path);
  struct stat st{};
  if (::stat(dir.c_str(), &st) != 0) {
    return std::unexpected(sys_error("cannot inspect socket directory " + dir, errno));
  }
  return judge_socket_directory(dir, st, ::geteuid());
}

Result<UniqueFd> lock_socket_directory(const std::string& socket_path) {
  if (auto ok = check_socket_directory(socket_path); !ok) return std::unexpected(ok.error());
  // The lock file decides who owns the socket, even when two brokers start at the same moment.
  // O_NOFOLLOW: a symbolic link planted in its place is refused, never followed (it would make
  // us create or truncate a file where its planter says).
  const std::string lock_path = socket_path + ".lock";
  UniqueFd fd(::open(lock_path.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!fd) {
    if (errno == ELOOP) {
      return fail(ErrorCode::kFailedPrecondition,
                  "lock file " + lock_path + " is a symbolic link (planted by someone?): the "
                  "broker does not follow it. Remove the link and check who else can write " +
                      socket_directory_of(socket_path));
    }
    return std::unexpected(sys_error("cannot open lock file " + lock_path, errno));
  }
  struct stat st{};
  if (::fstat(fd.get(), &st) != 0) {
    return std::unexpected(sys_error("cannot inspect lock file " + lock_path, errno));
  }
  if (!S_ISREG(st.st_mode) || st.st_uid != ::geteuid() || st.st_nlink != 1) {
    return fail(ErrorCode::kFailedPrecondition,
                "lock file " + lock_path + " must be a regular file owned by uid " +
                    std::to_string(::geteuid()) + " with one link; it is " +
                    (S_ISREG(st.st_mode) ? "a file" : "not a regular file") + " owned by uid " +
                    std::to_string(st.st_uid) + " with " + std::to_string(st.st_nlink) +
                    " link(s): remove it and start again");
  }
  if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK) {
      return fail(ErrorCode::kAlreadyExists, "a shmarrayd is already serving " + socket_path);
    }
    return std::unexpected(sys_error("cannot lock " + lock_path, errno));
  }
  return fd;
}

}  // namespace shmarray::server
