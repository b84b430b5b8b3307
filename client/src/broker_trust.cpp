#include "broker_trust.hpp"

#include <pwd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <string_view>
#include <vector>

#include "shmarray/socket_path.hpp"

namespace shmarray::detail {
namespace {

// "1001 (alice)", or "1001" when the uid has no name here.
std::string describe_uid(uid_t uid) {
  std::string text = std::to_string(uid);
  passwd entry{};
  passwd* found = nullptr;
  std::vector<char> buffer(16 * 1024);
  if (::getpwuid_r(uid, &entry, buffer.data(), buffer.size(), &found) == 0 && found != nullptr) {
    text += std::string(" (") + found->pw_name + ")";
  }
  return text;
}

}  // namespace

Result<std::optional<uid_t>> trusted_broker_uid(std::optional<uid_t> explicit_uid) {
  if (explicit_uid) return explicit_uid;
  const char* env = std::getenv(kBrokerUidVariable);
  if (env == nullptr || *env == '\0') return std::optional<uid_t>{};
  const std::string_view text(env);
  uid_t uid = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), uid);
  if (ec != std::errc() || end != text.data() + text.size() || uid == static_cast<uid_t>(-1)) {
    return fail(ErrorCode::kInvalidArgument,
                std::string(kBrokerUidVariable) + "='" + std::string(text) +
                    "' is not a uid: set it to the numeric uid of the user the broker runs as "
                    "(e.g. $(id -u shmarray)), or unset it");
  }
  return std::optional<uid_t>(uid);
}

Result<void> check_broker_uid(uid_t broker_uid, uid_t own_uid, std::optional<uid_t> trusted,
                              const std::string& socket_path, std::optional<uid_t> system_owner) {
  if (broker_uid == own_uid || broker_uid == 0 || (trusted && *trusted == broker_uid) ||
      (system_owner && *system_owner == broker_uid)) {
    return {};
  }
  return fail(ErrorCode::kPermissionDenied,
              "the broker at " + socket_path + " runs as uid " + describe_uid(broker_uid) +
                  ", not as this process's uid " + describe_uid(own_uid) + ", root" +
                  (trusted ? ", or the trusted broker uid " + std::to_string(*trusted) : "") +
                  ": it may be an impostor that reads what it is given, so nothing was sent. If "
                  "that user runs your broker (a system broker), trust it with "
                  "ClientOptions::broker_uid / Client(broker_uid=) / shmarray --broker-uid " +
                  std::to_string(broker_uid) + " or " + kBrokerUidVariable + "=" +
                  std::to_string(broker_uid) + "; otherwise remove the socket's directory and "
                  "start your own shmarrayd");
}

std::optional<uid_t> system_directory_owner(const struct stat& dir, const struct stat& parent) {
  constexpr mode_t kOthersWrite = S_IWGRP | S_IWOTH;
  if (!S_ISDIR(dir.st_mode) || (dir.st_mode & kOthersWrite) != 0) return std::nullopt;
  if (!S_ISDIR(parent.st_mode) || parent.st_uid != 0 || (parent.st_mode & kOthersWrite) != 0) {
    return std::nullopt;
  }
  return dir.st_uid;
}

namespace {

std::string parent_of(const std::string& path) {
  const auto slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

// "/run/shmarray: uid 998 (shmarray), mode 0755" for a refusal's message.
std::string describe_directory(const std::string& dir) {
  struct stat st{};
  if (::lstat(dir.c_str(), &st) != 0) return dir + ": cannot be inspected";
  char mode[8];
  std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
  return dir + (S_ISDIR(st.st_mode) ? "" : " (not a directory)") + ": uid " +
         describe_uid(st.st_uid) + ", mode " + mode;
}

}  // namespace

std::optional<uid_t> system_broker_uid(const std::string& socket_path) {
  if (socket_path != system_socket_path()) return std::nullopt;
  const std::string dir = parent_of(socket_path);
  struct stat dir_st{};
  struct stat parent_st{};
  if (::lstat(dir.c_str(), &dir_st) != 0 || ::lstat(parent_of(dir).c_str(), &parent_st) != 0) {
    return std::nullopt;
  }
  return system_directory_owner(dir_st, parent_st);
}

Result<void> verify_broker(int fd, std::optional<uid_t> trusted, const std::string& socket_path) {
  ucred cred{};
  socklen_t len = sizeof cred;
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
    return std::unexpected(
        sys_error("cannot learn who runs the broker at " + socket_path + " (SO_PEERCRED)", errno));
  }
  auto ok = check_broker_uid(cred.uid, ::geteuid(), trusted, socket_path,
                             system_broker_uid(socket_path));
  if (ok || socket_path != system_socket_path()) return ok;
  // The system socket: say why its directory's owner was not trusted either.
  const std::string dir = parent_of(socket_path);
  return fail(ok.error().code(),
              ok.error().message() + ". (A broker on the system socket is also trusted when it "
              "runs as the owner of its directory, provided only that owner may write the "
              "directory and only root may write its parent; here " + describe_directory(dir) +
              "; " + describe_directory(parent_of(dir)) + ")");
}

}  // namespace shmarray::detail
