#pragma once
// The shared key of the peer link (--peer-key FILE) and the mutual challenge-response built on it
// with libsodium (crypto_auth: HMAC-SHA-512-256). No home-made cryptography: the key is hashed to
// crypto_auth_KEYBYTES with crypto_generichash, proofs are crypto_auth tags verified with
// crypto_auth_verify (constant time).
#include <sodium.h>
#include <sys/types.h>

#include <array>
#include <cstddef>
#include <span>
#include <string>

#include "peer_messages.hpp"
#include "shmarray/error.hpp"

namespace shmarray::bridge {

inline constexpr std::size_t kMinKeyFileBytes = 32;
inline constexpr std::size_t kMaxKeyFileBytes = 4096;

class PeerKey {
 public:
  // Reads the key file, refusing it unless it is a regular file (not a link: O_NOFOLLOW), mode
  // 0600 exactly (no group or other bits), owned by `owner_uid` (the broker's uid) and 32 to 4096
  // bytes long. kPermissionDenied / kInvalidArgument saying which rule failed and how to fix it.
  [[nodiscard]] static Result<PeerKey> load(const std::string& path, uid_t owner_uid);
  // For tests: a key from bytes (>= kMinKeyFileBytes).
  [[nodiscard]] static PeerKey from_bytes(std::span<const std::byte> bytes);

  // The proof that `role` knows the key, bound to both nonces (mirror's first).
  [[nodiscard]] std::array<std::byte, kMacBytes> prove(
      PeerRole role, std::span<const std::byte, kNonceBytes> mirror_nonce,
      std::span<const std::byte, kNonceBytes> source_nonce) const;
  // Constant-time check of a proof made by `role`.
  [[nodiscard]] bool verify(PeerRole role, std::span<const std::byte, kNonceBytes> mirror_nonce,
                            std::span<const std::byte, kNonceBytes> source_nonce,
                            std::span<const std::byte, kMacBytes> mac) const;

 private:
  PeerKey() = default;
  std::array<unsigned char, crypto_auth_KEYBYTES> key_{};
};

// A fresh random nonce (randombytes_buf).
[[nodiscard]] std::array<std::byte, kNonceBytes> random_nonce();
// sodium_init once; kInternal if libsodium cannot start.
[[nodiscard]] Result<void> init_sodium();

}  // namespace shmarray::bridge
