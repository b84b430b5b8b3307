#include "socket_access.hpp"

#include <grp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <spdlog/spdlog.h>
#include <vector>

namespace shmarray::server {

Result<gid_t> resolve_socket_group(const std::string& group) {
  if (group.empty()) return static_cast<gid_t>(-1);
  gid_t gid = 0;
  const char* end = group.data() + group.size();
  if (const auto r = std::from_chars(group.data(), end, gid); r.ec == std::errc() && r.ptr == end) {
    return gid;
  }
  struct group entry{};
  struct group* found = nullptr;
  std::vector<char> buffer(16 * 1024);
  int rc = 0;
  while ((rc = ::getgrnam_r(group.c_str(), &entry, buffer.data(), buffer.size(), &found)) ==
             ERANGE &&
         buffer.size() < (1u << 20)) {
    buffer.resize(buffer.size() * 2);
  }
  if (found == nullptr) {
    return fail(ErrorCode::kInvalidArgument,
                "unknown group '" + group + "' for --socket-group" +
                    (rc != 0 ? std::string(" (") + std::strerror(rc) + ")" : std::string()) +
                    ": create it ('groupadd " + group + "') or name an existing group or gid");
  }
  return found->gr_gid;
}

Result<void> apply_socket_access(const std::string& path, gid_t gid, std::int32_t mode) {
  if (gid != static_cast<gid_t>(-1) && ::chown(path.c_str(), static_cast<uid_t>(-1), gid) != 0) {
    return std::unexpected(sys_error("cannot give socket " + path + " group " +
                                         std::to_string(gid) +
                                         " (--socket-group): run the broker as root or as a "
                                         "member of that group",
                                     errno));
  }
  if (mode >= 0 && ::chmod(path.c_str(), static_cast<mode_t>(mode)) != 0) {
    return std::unexpected(sys_error("cannot set the mode of socket " + path + " (--socket-mode)",
                                     errno));
  }
  return {};
}

void warn_if_socket_directory_closed(const std::string& path) {
  const auto slash = path.rfind('/');
  const std::string dir =
      slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  struct stat st{};
  if (::stat(dir.c_str(), &st) != 0) return;
  if ((st.st_mode & (S_IXGRP | S_IXOTH)) == 0) {
    spdlog::warn("the socket's mode admits other users, but its directory {} (mode 0{:o}) lets "
                 "only its owner through: make it traversable ('chmod 0755 {}') or choose "
                 "another --socket",
                 dir, st.st_mode & 07777, dir);
  }
}

}  // namespace shmarray::server
