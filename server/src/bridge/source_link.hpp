#pragma once
// The source side of one peer link (this broker serves arrays to a mirror): runs the handshake on
// the accepted TCP connection, opens the link's UCX endpoint (ucx_link_setup.hpp), then sends every array under the subscribed prefix once, and
// afterwards each new version (the latest one when several pass during a send), each create,
// remove and recreate, with a Heartbeat when idle. It only reads: it never takes a write lock,
// so the source's local clients are never blocked by a mirror.
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "peer_control.hpp"
#include "peer_key.hpp"
#include "ucx_worker.hpp"

namespace shmarray::bridge {

struct SourceSettings {
  std::string broker_socket;
  std::vector<std::string> allowed;  // --peer-allow
};

// Runs until the link fails or the bridge stops (g_stopping); logs why it ended.
// `handshake_over` is called once, when the connection's handshake has ended (either way).
void run_source_link(std::shared_ptr<UcxContext> context, TcpLink connection, const PeerKey& key,
                     const SourceSettings& settings, const std::function<void()>& handshake_over);

}  // namespace shmarray::bridge
