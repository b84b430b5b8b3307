#pragma once
// Which network interfaces the bridge's UCX may listen and send on (UCX_NET_DEVICES).
//
// UCX's TCP transport opens a listening socket of its own on every interface it may use (an
// ephemeral port, besides --peer-listen's) and acts on what a connected peer sends there before
// shmarray's handshake has authenticated anyone (docs/security.md, "Across hosts"). Left to its
// default ("all") that is every interface of the host, whatever --peer-listen names. So unless the
// user sets UCX_NET_DEVICES, the bridge limits TCP to the interface that holds the --peer-listen
// address and the interfaces its routes to the mirrored sources leave by; RDMA ports (listed
// under /sys/class/infiniband, "mlx5_0:1") stay usable.
#include <sys/socket.h>

#include <optional>
#include <string>
#include <vector>

#include "shmarray/error.hpp"

namespace shmarray::bridge {

// True for 0.0.0.0 and :: (listen on every interface).
[[nodiscard]] bool is_wildcard(const sockaddr_storage& address) noexcept;
// The interface that holds local address `address` ("lo" for 127.0.0.1); kNotFound if none does.
[[nodiscard]] Result<std::string> interface_of(const sockaddr_storage& address);
// The interface the kernel sends to `remote` from (its route); kNotFound with the reason if
// there is no route.
[[nodiscard]] Result<std::string> interface_toward(const sockaddr_storage& remote);
// The value for UCX_NET_DEVICES: `interfaces` (each once, in order) and every RDMA port found
// under `infiniband_dir` as DEVICE:PORT.
[[nodiscard]] std::string ucx_net_devices(const std::vector<std::string>& interfaces,
                                          const std::string& infiniband_dir =
                                              "/sys/class/infiniband");

// The interfaces the bridge needs: that of `listen` (empty: none) and those toward every address
// in `sources`; std::nullopt (with `why` set) when they cannot all be known now (a wildcard
// --peer-listen, a source that does not resolve or has no route yet), and UCX keeps its default.
struct NetDevicesChoice {
  std::optional<std::string> devices;  // UCX_NET_DEVICES's value
  std::string why;                     // what was chosen, or why nothing was
};
[[nodiscard]] NetDevicesChoice choose_net_devices(const std::optional<sockaddr_storage>& listen,
                                                  const std::vector<sockaddr_storage>& sources,
                                                  const std::vector<std::string>& unresolved);

}  // namespace shmarray::bridge
