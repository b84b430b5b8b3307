#include "peer_handshake.hpp"

namespace shmarray::bridge {

Result<std::string> handshake_as_source(PeerChannel& channel, const PeerKey& key,
                                        const std::vector<std::string>& allowed) {
  auto hello = expect_message<Hello>(channel, "Hello");
  if (!hello) {
    if (auto theirs = channel.mismatched_version()) {
      // A mirror of another release: refused in its own version's words (the header and Refused
      // keep their layout in every version), so its link state says why.
      const std::string why = "peer refused: the source's bridge speaks peer-link version " +
                              std::to_string(kPeerVersion) + ", this mirror's version " +
                              std::to_string(*theirs) +
                              ": upgrade both brokers to the same shmarray release";
      (void)channel.send_bytes(encode_refusal(*theirs, Refused{ErrorCode::kPermissionDenied, why}));
    }
    return std::unexpected(hello.error());
  }
  if (hello->role != PeerRole::kMirror) {
    return fail(ErrorCode::kProtocolError, "peer link: the connecting side must be a mirror");
  }
  const auto nonce_s = random_nonce();
  if (auto ok = channel.send(Hello{PeerRole::kSource, nonce_s}); !ok) {
    return std::unexpected(ok.error());
  }
  auto proof = expect_message<Proof>(channel, "Proof");
  if (!proof) return std::unexpected(proof.error());
  if (!key.verify(PeerRole::kMirror, hello->nonce, nonce_s, proof->mac)) {
    (void)channel.send(Refused{ErrorCode::kPermissionDenied,
                               std::string(kWrongKey) +
                                   ": the source's --peer-key differs from this mirror's"});
    return fail(ErrorCode::kPermissionDenied, "a peer failed to prove the key (wrong --peer-key)");
  }
  if (auto ok = channel.send(Proof{key.prove(PeerRole::kSource, hello->nonce, nonce_s)}); !ok) {
    return std::unexpected(ok.error());
  }
  auto subscribe = expect_message<Subscribe>(channel, "Subscribe");
  if (!subscribe) return std::unexpected(subscribe.error());
  if (!prefix_allowed(subscribe->prefix, allowed)) {
    std::string list;
    for (const auto& a : allowed) list += (list.empty() ? "'" : ", '") + a + "'";
    const std::string why =
        "prefix '" + subscribe->prefix + "' is not allowed by the source's --peer-allow (" +
        (list.empty() ? std::string("none given: the source allows no prefix") : list) +
        "): mirror a prefix under one of them, or add it on the source";
    // The mirror shows what it is sent as its link state: "peer refused: ..." like a wrong key.
    (void)channel.send(Refused{ErrorCode::kPermissionDenied, "peer refused: " + why});
    return fail(ErrorCode::kPermissionDenied, why);
  }
  if (auto ok = channel.send(Subscribed{}); !ok) return std::unexpected(ok.error());
  return std::move(subscribe->prefix);
}

Result<void> handshake_as_mirror(PeerChannel& channel, const PeerKey& key,
                                 const std::string& prefix) {
  const auto nonce_m = random_nonce();
  if (auto ok = channel.send(Hello{PeerRole::kMirror, nonce_m}); !ok) return ok;
  auto hello = expect_message<Hello>(channel, "Hello");
  if (!hello) {
    if (hello.error().code() == ErrorCode::kUnavailable ||
        hello.error().code() == ErrorCode::kDeadlineExceeded) {
      // A source bridge of an earlier release cannot read this Hello: version 1 closes the
      // connection; version 2 listens with UCX's connection manager, which waits for bytes of
      // its own.
      return fail(hello.error().code(),
                  hello.error().message() +
                      " (the source did not answer the handshake: if its shmarray release "
                      "differs from this one, upgrade both brokers to the same release)");
    }
    return std::unexpected(hello.error());
  }
  if (hello->role != PeerRole::kSource) {
    return fail(ErrorCode::kProtocolError, "peer link: the listening side must be a source");
  }
  if (auto ok = channel.send(Proof{key.prove(PeerRole::kMirror, nonce_m, hello->nonce)}); !ok) {
    return ok;
  }
  auto proof = expect_message<Proof>(channel, "Proof");
  if (!proof) return std::unexpected(proof.error());
  if (!key.verify(PeerRole::kSource, nonce_m, hello->nonce, proof->mac)) {
    return fail(ErrorCode::kPermissionDenied,
                std::string(kWrongKey) + ": the source could not prove the key");
  }
  if (auto ok = channel.send(Subscribe{prefix}); !ok) return ok;
  auto subscribed = expect_message<Subscribed>(channel, "Subscribed");
  if (!subscribed) return std::unexpected(subscribed.error());
  return {};
}

}  // namespace shmarray::bridge
