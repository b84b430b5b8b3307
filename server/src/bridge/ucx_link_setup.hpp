#pragma once
// From an authenticated TCP connection to the link's UCX endpoint. After the handshake
// (peer_handshake.hpp), each side on the TCP connection:
//
//   reserves the source ports its UCX will connect from (source_ports.hpp)
//   sends PeerAddresses{its addresses, those ports}      receives the peer's
//   creates the link's UCX worker, whose listeners admit only the peer's addresses and ports
//                                            (listener_admission.hpp)
//   sends WorkerAddress{its worker}          receives the peer's
//   connects its endpoint to the peer's worker (UCX pairs the two), from the reserved ports
//   sends a Heartbeat over UCX               receives the peer's: UCX works both ways
//   lets its UCX listeners admit nobody more (the connections are made)
//
// and the TCP connection closes. Before that, nothing of this link's UCX listens; after it,
// nobody can open another connection to it, not even from the peer's addresses.
#include <array>
#include <memory>
#include <vector>

#include "listener_admission.hpp"
#include "peer_channel.hpp"
#include "peer_control.hpp"
#include "source_ports.hpp"
#include "ucx_endpoint.hpp"
#include "ucx_worker.hpp"

namespace shmarray::bridge {

struct UcxLink {
  std::unique_ptr<UcxWorker> worker;
  std::unique_ptr<UcxEndpoint> endpoint;  // after `worker`: closed before it goes
  std::vector<int> listeners;             // the worker's listening sockets (UCX owns them)
};

// `control`: the channel on `tcp`, the handshake done. `mode`: the worker's thread mode
// (UcxWorker::create).
[[nodiscard]] Result<UcxLink> open_ucx_link(PeerChannel& control, const TcpLink& tcp,
                                            std::shared_ptr<UcxContext> context,
                                            ucs_thread_mode_t mode);

}  // namespace shmarray::bridge
