#include "broker_trust.hpp"

#include <pwd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <string_view>
#include <vector>

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
                              const std::string& socket_path) {
  if (broker_uid == own_uid || broker_uid == 0 || (trusted && *trusted == broker_uid)) return {};
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

Result<void> verify_broker(int fd, std::optional<uid_t> trusted, const std::string& socket_path) {
  ucred cred{};
  socklen_t len = sizeof cred;
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
    return std::unexpected(
        sys_error("cannot learn who runs the broker at " + socket_path + " (SO_PEERCRED)", errno));
  }
  return check_broker_uid(cred.uid, ::geteuid(), trusted, socket_path);
}

}  // namespace shmarray::detail
