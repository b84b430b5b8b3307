#pragma once
// The mirror side of one --mirror PREFIX=HOST:PORT: connects to the source bridge, runs the
// handshake, and makes every array under PREFIX there appear under the same name here. Each
// version is received straight into the local mirror array inside its seqlock write window and
// published with the source's version number; the window stays open across a source-side retry,
// so readers never see a half version. Link loss: reconnect with back-off (100 ms doubling to
// 5 s) and resync everything.
#include <memory>
#include <string>

#include "mirror_status.hpp"
#include "peer_key.hpp"
#include "ucx_worker.hpp"

namespace shmarray::bridge {

struct MirrorSettings {
  std::string prefix;
  std::string peer;  // HOST:PORT of the source's --peer-listen
  std::string broker_socket;
};

// Runs until the bridge stops (g_stopping).
void run_mirror_link(std::shared_ptr<UcxContext> context, const PeerKey& key,
                     const MirrorSettings& settings, MirrorStatusBoard& board);

}  // namespace shmarray::bridge
