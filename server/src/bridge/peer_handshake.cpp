#include "peer_handshake.hpp"

namespace shmarray::bridge {
namespace {

template <class M>
Result<M> expect(PeerChannel& channel, std::string_view what) {
  auto m = channel.receive();
  if (!m) return std::unexpected(m.error());
  if (auto* refused = std::get_if<Refused>(&*m)) {
    return fail(refused->code, refused->message);
  }
  if (auto* wanted = std::get_if<M>(&*m)) return std::move(*wanted);
  return fail(ErrorCode::kProtocolError, "peer link: expected " + std::string(what));
}

}  // namespace

Result<std::string> handshake_as_source(PeerChannel& channel, const PeerKey& key,
                                        const std::vector<std::string>& allowed) {
  auto hello = expect<Hello>(channel, "Hello");
  if (!hello) {
    if (auto theirs = channel.mismatched_version()) {
      // A mirror of another release: refused in its own version's words (the header and Refused
      // keep their layout in every version), so its link state says why.
      const std::string why = "peer refused: the source's bridge speaks peer-link version " +
                              std::to_string(kPeerVersion) + ", this mirror's version " +
                              std::to_string(*theirs) +
                              ": upgrade both brokers to the same shmarray release";
      (void)channel.endpoint().send(
          encode_refusal(*theirs, Refused{ErrorCode::kPermissionDenied, why}), kLinkSilence);
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
  auto proof = expect<Proof>(channel, "Proof");
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
  auto subscribe = expect<Subscribe>(channel, "Subscribe");
  if (!subscribe) return std::unexpected(subscribe.error());
  if (!prefix_allowed(subscribe->prefix, allowed)) {
    std::string list;
    for (const auto& a : allowed) list += (list.empty() ? "'" : ", '") + a + "'";
    const std::string why =
        "prefix '" + subscribe->prefix + "' is not allowed by the source's --peer-allow (" +
        (list.empty() ? std::string("none given: the source allows no prefix") : list) +
        "): mirror a prefix under one of them, or add it on the source";
    (void)channel.send(Refused{ErrorCode::kPermissionDenied, why});
    return fail(ErrorCode::kPermissionDenied, why);
  }
  if (auto ok = channel.send(Subscribed{}); !ok) return std::unexpected(ok.error());
  return std::move(subscribe->prefix);
}

Result<void> handshake_as_mirror(PeerChannel& channel, const PeerKey& key,
                                 const std::string& prefix) {
  const auto nonce_m = random_nonce();
  if (auto ok = channel.send(Hello{PeerRole::kMirror, nonce_m}); !ok) return ok;
  auto hello = expect<Hello>(channel, "Hello");
  if (!hello) {
    if (hello.error().code() == ErrorCode::kUnavailable) {
      // A source bridge of an earlier release (peer-link version 1) cannot read this Hello and
      // closes the link without an answer.
      return fail(ErrorCode::kUnavailable,
                  hello.error().message() +
                      " (the source closed the link at the handshake: if its shmarray release "
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
  auto proof = expect<Proof>(channel, "Proof");
  if (!proof) return std::unexpected(proof.error());
  if (!key.verify(PeerRole::kSource, nonce_m, hello->nonce, proof->mac)) {
    return fail(ErrorCode::kPermissionDenied,
                std::string(kWrongKey) + ": the source could not prove the key");
  }
  if (auto ok = channel.send(Subscribe{prefix}); !ok) return ok;
  auto subscribed = expect<Subscribed>(channel, "Subscribed");
  if (!subscribed) return std::unexpected(subscribed.error());
  return {};
}

}  // namespace shmarray::bridge
