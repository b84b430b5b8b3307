#include "ucx_link_setup.hpp"

#include <algorithm>
#include <cstring>

namespace shmarray::bridge {
namespace {

// The source ports each side's UCX may connect from (source_ports.hpp): UCX 1.13 over TCP makes
// one connection each way per link; the rest cover its reconnection attempts during the setup.
constexpr std::size_t kSourcePortsPerLink = 4;
static_assert(kSourcePortsPerLink <= kMaxSourcePorts);
static_assert(kMaxSourcePorts == kMaxPeerSourcePorts && kMaxSourcePorts == kMaxAdmittedPorts);

template <typename T>
std::string listed(const std::vector<T>& items) {
  std::string out;
  for (const auto& i : items) {
    if (!out.empty()) out += ", ";
    if constexpr (std::is_same_v<T, IpAddress>) {
      out += i.to_string();
    } else {
      out += std::to_string(i);
    }
  }
  return out;
}

}  // namespace

Result<UcxLink> open_ucx_link(PeerChannel& control, const TcpLink& tcp,
                              std::shared_ptr<UcxContext> context, ucs_thread_mode_t mode) {
  auto source_ports = SourcePorts::reserve(kSourcePortsPerLink);
  if (!source_ports) return std::unexpected(source_ports.error());
  PeerAddresses mine;
  mine.ports.assign(source_ports->ports().begin(), source_ports->ports().end());
  for (const auto& a : local_addresses(true)) {
    std::array<std::byte, 16> raw{};
    std::memcpy(raw.data(), a.bytes.data(), raw.size());
    mine.addresses.push_back(raw);
  }
  if (auto ok = control.send(mine); !ok) return std::unexpected(ok.error());
  auto theirs = expect_message<PeerAddresses>(control, "PeerAddresses");
  if (!theirs) return std::unexpected(theirs.error());
  auto connected = IpAddress::of(tcp.peer());
  if (!connected) return std::unexpected(connected.error());
  std::vector<IpAddress> reported;
  for (const auto& raw : theirs->addresses) {
    IpAddress a;
    std::memcpy(a.bytes.data(), raw.data(), a.bytes.size());
    reported.push_back(a);
  }
  const Admitted admitted{admitted_for(*connected, reported), theirs->ports};

  // From here until the link works, UCX's connections leave from the reserved ports only.
  ConnectsFrom connects_from(*source_ports);
  UcxLink link;
  {
    // Every listener UCX opens for this worker admits only the peer (listen_interposer.cpp).
    ListenerAdmission admission(admitted);
    auto worker = UcxWorker::create(std::move(context), mode);
    if (!worker) return std::unexpected(worker.error());
    link.worker = std::make_unique<UcxWorker>(std::move(*worker));
    link.listeners = admission.listeners();
  }
  auto address = link.worker->address();
  if (!address) return std::unexpected(address.error());
  if (auto ok = control.send(WorkerAddress{std::move(*address)}); !ok) {
    return std::unexpected(ok.error());
  }
  auto remote = expect_message<WorkerAddress>(control, "WorkerAddress");
  if (!remote) return std::unexpected(remote.error());
  auto ep = UcxEndpoint::connect(*link.worker, remote->address);
  if (!ep) return std::unexpected(ep.error());
  link.endpoint = std::make_unique<UcxEndpoint>(std::move(*ep));

  // UCX works both ways before the TCP connection goes: a peer whose UCX connects from an
  // address not admitted here fails now, with the reason.
  PeerChannel channel(*link.endpoint);
  auto checked = channel.send(Heartbeat{});
  if (checked) {
    auto beat = expect_message<Heartbeat>(channel, "a Heartbeat over UCX");
    if (!beat) checked = std::unexpected(beat.error());
  }
  if (!checked) {
    return fail(checked.error().code(),
                "the peer authenticated, but its UCX connection did not work: " +
                    checked.error().message() +
                    " (this side admits UCX connections only from " + listed(admitted.addresses) +
                    " and from source ports " + listed(admitted.ports) +
                    ", which the peer reserved: a peer whose UCX leaves by another address is "
                    "dropped, so set UCX_NET_DEVICES on its side to the interface it reaches this "
                    "host by; so is one behind a NAT that rewrites source ports)");
  }
  if (auto ok = close_listeners(link.listeners); !ok) return std::unexpected(ok.error());
  return link;
}

}  // namespace shmarray::bridge
