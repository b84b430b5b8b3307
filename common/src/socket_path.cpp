#include "shmarray/socket_path.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>

namespace shmarray {

std::string default_socket_path() {
  if (const char* env = std::getenv("SHMARRAY_SOCKET"); env != nullptr && *env != '\0') {
    return env;
  }
  if (const char* xdg = std::getenv("XDG_RUNTIME_DIR"); xdg != nullptr && *xdg != '\0') {
    return std::string(xdg) + "/shmarray.sock";
  }
  return "/tmp/shmarray-" + std::to_string(::getuid()) + "/shmarray.sock";
}

std::string resolve_socket_path(const std::string& path) {
  return path.empty() ? default_socket_path() : path;
}

std::string system_socket_path() {
  if (const char* env = std::getenv("SHMARRAY_SYSTEM_SOCKET"); env != nullptr && *env != '\0') {
    return env;
  }
  return "/run/shmarray/shmarray.sock";
}

std::string client_socket_path() {
  if (const char* env = std::getenv("SHMARRAY_SOCKET"); env != nullptr && *env != '\0') {
    return env;
  }
  const auto exists = [](const std::string& path) {
    struct stat st{};
    return ::lstat(path.c_str(), &st) == 0;
  };
  std::string own = default_socket_path();
  if (exists(own)) return own;
  std::string system = system_socket_path();
  return exists(system) ? system : own;
}

std::string resolve_client_socket_path(const std::string& path) {
  return path.empty() ? client_socket_path() : path;
}

std::string segment_prefix(const std::string& socket_path) {
  std::uint32_t hash = 2166136261u;  // FNV-1a 32
  for (unsigned char c : socket_path) {
    hash ^= c;
    hash *= 16777619u;
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string tag(8, '0');
  for (int i = 7; i >= 0; --i, hash >>= 4) tag[static_cast<std::size_t>(i)] = kHex[hash & 0xf];
  return "/shmarray." + std::to_string(::getuid()) + "." + tag + ".";
}

Result<void> ensure_socket_directory(const std::string& socket_path) {
  const auto slash = socket_path.rfind('/');
  if (slash == std::string::npos || slash == 0) return {};
  const std::string dir = socket_path.substr(0, slash);
  if (::mkdir(dir.c_str(), 0700) == 0) {
    // 0700 whatever the umask: the broker refuses a directory others may write.
    if (::chmod(dir.c_str(), 0700) != 0) {
      return std::unexpected(sys_error("cannot set the mode of socket directory " + dir, errno));
    }
    return {};
  }
  if (errno != EEXIST) {
    return std::unexpected(sys_error("cannot create socket directory " + dir, errno));
  }
  struct stat st{};
  if (::stat(dir.c_str(), &st) != 0) {
    return std::unexpected(sys_error("cannot inspect socket directory " + dir, errno));
  }
  if (!S_ISDIR(st.st_mode)) {
    return fail(ErrorCode::kFailedPrecondition, dir + " exists but is not a directory");
  }
  return {};
}

}  // namespace shmarray
