#pragma once
// The start of every peer link: mutual challenge-response over the shared key, then the mirror
// names the prefix it wants and the source checks it against --peer-allow. Nothing is listed or
// sent before both steps succeed.
//
//   mirror -> source  Hello{mirror, nonce_m}
//   source -> mirror  Hello{source, nonce_s}
//   mirror -> source  Proof{auth(key, ctx | mirror | nonce_m | nonce_s)}
//   source -> mirror  Proof{auth(key, ctx | source | nonce_m | nonce_s)}   or Refused (wrong key)
//   mirror -> source  Subscribe{prefix}   (only after verifying the source's proof)
//   source -> mirror  Subscribed          or Refused (prefix not allowed)
#include <string>
#include <vector>

#include "peer_channel.hpp"
#include "peer_key.hpp"

namespace shmarray::bridge {

inline constexpr char kWrongKey[] = "peer refused: wrong key";

// Source side. The subscribed prefix, or the error (already told to the peer where it applies).
[[nodiscard]] Result<std::string> handshake_as_source(PeerChannel& channel, const PeerKey& key,
                                                      const std::vector<std::string>& allowed);
// Mirror side. kPermissionDenied "peer refused: wrong key ..." when either proof fails, or the
// source's Refused message for a prefix outside its --peer-allow.
[[nodiscard]] Result<void> handshake_as_mirror(PeerChannel& channel, const PeerKey& key,
                                               const std::string& prefix);

}  // namespace shmarray::bridge
