#include "peer_key.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <vector>

#include "shmarray/unique_fd.hpp"

namespace shmarray::bridge {
namespace {

constexpr char kRemedy[] = "make one with: head -c 32 /dev/urandom > KEY; chmod 600 KEY";
constexpr char kContext[] = "shmarray-peer-auth-v1";

std::string octal(mode_t mode) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "0%o", static_cast<unsigned>(mode & 07777));
  return buf;
}

std::vector<unsigned char> transcript(PeerRole role, std::span<const std::byte, kNonceBytes> m,
                                      std::span<const std::byte, kNonceBytes> s) {
  std::vector<unsigned char> out(kContext, kContext + sizeof kContext - 1);
  out.push_back(static_cast<unsigned char>(role));
  for (auto b : m) out.push_back(static_cast<unsigned char>(b));
  for (auto b : s) out.push_back(static_cast<unsigned char>(b));
  return out;
}

}  // namespace

Result<void> init_sodium() {
  if (::sodium_init() < 0) return fail(ErrorCode::kInternal, "libsodium failed to initialise");
  return {};
}

std::array<std::byte, kNonceBytes> random_nonce() {
  std::array<std::byte, kNonceBytes> n{};
  ::randombytes_buf(n.data(), n.size());
  return n;
}

Result<PeerKey> PeerKey::load(const std::string& path, uid_t owner_uid) {
  if (auto ok = init_sodium(); !ok) return std::unexpected(ok.error());
  const std::string what = "peer key file " + path;
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK));
  if (!fd) {
    const int err = errno;
    if (err == ELOOP) {
      return fail(ErrorCode::kPermissionDenied,
                  what + " is a symbolic link: give the path of the file itself", err);
    }
    return fail(err == ENOENT ? ErrorCode::kNotFound : ErrorCode::kPermissionDenied,
                "cannot open " + what + ": " + std::strerror(err) + "; " + kRemedy, err);
  }
  struct stat st{};
  if (::fstat(fd.get(), &st) != 0) return std::unexpected(sys_error("fstat " + what, errno));
  if (!S_ISREG(st.st_mode)) {
    return fail(ErrorCode::kInvalidArgument, what + " is not a regular file; " + kRemedy);
  }
  if (st.st_uid != owner_uid) {
    return fail(ErrorCode::kPermissionDenied,
                what + " is owned by uid " + std::to_string(st.st_uid) + ", not by the broker's uid " +
                    std::to_string(owner_uid) + ": chown " + std::to_string(owner_uid) + " " +
                    path);
  }
  if ((st.st_mode & 0777) != 0600) {
    return fail(ErrorCode::kPermissionDenied,
                what + " has mode " + octal(st.st_mode) +
                    "; it must be 0600 (readable by the broker's user only): chmod 600 " + path);
  }
  if (st.st_size < static_cast<off_t>(kMinKeyFileBytes) ||
      st.st_size > static_cast<off_t>(kMaxKeyFileBytes)) {
    return fail(ErrorCode::kInvalidArgument,
                what + " holds " + std::to_string(st.st_size) + " bytes; it must hold 32 to 4096 (" +
                    kRemedy + ")");
  }
  std::vector<std::byte> bytes(static_cast<std::size_t>(st.st_size));
  std::size_t got = 0;
  while (got < bytes.size()) {
    const ssize_t n = ::read(fd.get(), bytes.data() + got, bytes.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return fail(ErrorCode::kInvalidArgument, "cannot read all of " + what);
    got += static_cast<std::size_t>(n);
  }
  PeerKey key = from_bytes(bytes);
  ::sodium_memzero(bytes.data(), bytes.size());
  return key;
}

PeerKey PeerKey::from_bytes(std::span<const std::byte> bytes) {
  (void)init_sodium();
  PeerKey key;
  ::crypto_generichash(key.key_.data(), key.key_.size(),
                       reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), nullptr,
                       0);
  return key;
}

std::array<std::byte, kMacBytes> PeerKey::prove(
    PeerRole role, std::span<const std::byte, kNonceBytes> mirror_nonce,
    std::span<const std::byte, kNonceBytes> source_nonce) const {
  static_assert(kMacBytes == crypto_auth_BYTES);
  const auto msg = transcript(role, mirror_nonce, source_nonce);
  std::array<std::byte, kMacBytes> mac{};
  ::crypto_auth(reinterpret_cast<unsigned char*>(mac.data()), msg.data(), msg.size(), key_.data());
  return mac;
}

bool PeerKey::verify(PeerRole role, std::span<const std::byte, kNonceBytes> mirror_nonce,
                     std::span<const std::byte, kNonceBytes> source_nonce,
                     std::span<const std::byte, kMacBytes> mac) const {
  const auto msg = transcript(role, mirror_nonce, source_nonce);
  return ::crypto_auth_verify(reinterpret_cast<const unsigned char*>(mac.data()), msg.data(),
                              msg.size(), key_.data()) == 0;
}

}  // namespace shmarray::bridge
