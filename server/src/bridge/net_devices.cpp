#include "net_devices.hpp"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>

#include "shmarray/unique_fd.hpp"

namespace shmarray::bridge {
namespace {

std::string address_text(const sockaddr_storage& a) {
  char text[INET6_ADDRSTRLEN] = "?";
  if (a.ss_family == AF_INET) {
    ::inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in&>(a).sin_addr, text, sizeof text);
  } else if (a.ss_family == AF_INET6) {
    ::inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6&>(a).sin6_addr, text, sizeof text);
  }
  return text;
}

bool same_host(const sockaddr& a, const sockaddr_storage& b) {
  if (a.sa_family != b.ss_family) return false;
  if (a.sa_family == AF_INET) {
    return reinterpret_cast<const sockaddr_in&>(a).sin_addr.s_addr ==
           reinterpret_cast<const sockaddr_in&>(b).sin_addr.s_addr;
  }
  if (a.sa_family == AF_INET6) {
    return std::memcmp(&reinterpret_cast<const sockaddr_in6&>(a).sin6_addr,
                       &reinterpret_cast<const sockaddr_in6&>(b).sin6_addr, 16) == 0;
  }
  return false;
}

}  // namespace

bool is_wildcard(const sockaddr_storage& address) noexcept {
  if (address.ss_family == AF_INET) {
    return reinterpret_cast<const sockaddr_in&>(address).sin_addr.s_addr == htonl(INADDR_ANY);
  }
  if (address.ss_family == AF_INET6) {
    const auto& a6 = reinterpret_cast<const sockaddr_in6&>(address).sin6_addr;
    return IN6_IS_ADDR_UNSPECIFIED(&a6);
  }
  return false;
}

Result<std::string> interface_of(const sockaddr_storage& address) {
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0) {
    return fail(ErrorCode::kInternal, std::string("getifaddrs: ") + std::strerror(errno));
  }
  std::string found;
  for (const ifaddrs* i = list; i != nullptr && found.empty(); i = i->ifa_next) {
    if (i->ifa_addr != nullptr && same_host(*i->ifa_addr, address)) found = i->ifa_name;
  }
  ::freeifaddrs(list);
  if (found.empty()) {
    return fail(ErrorCode::kNotFound,
                "no interface of this host has the address " + address_text(address));
  }
  return found;
}

Result<std::string> interface_toward(const sockaddr_storage& remote) {
  // A connected UDP socket sends nothing: the kernel only picks the route and its source address.
  UniqueFd fd(::socket(remote.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!fd) return fail(ErrorCode::kInternal, std::string("socket: ") + std::strerror(errno));
  const socklen_t length =
      remote.ss_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&remote), length) != 0) {
    return fail(ErrorCode::kNotFound, "no route to " + address_text(remote) + ": " +
                                          std::strerror(errno));
  }
  sockaddr_storage local{};
  socklen_t local_length = sizeof local;
  if (::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&local), &local_length) != 0) {
    return fail(ErrorCode::kInternal, std::string("getsockname: ") + std::strerror(errno));
  }
  return interface_of(local);
}

std::string ucx_net_devices(const std::vector<std::string>& interfaces,
                            const std::string& infiniband_dir) {
  std::vector<std::string> devices;
  const auto add = [&](const std::string& d) {
    if (std::find(devices.begin(), devices.end(), d) == devices.end()) devices.push_back(d);
  };
  for (const auto& i : interfaces) add(i);
  std::error_code ec;
  std::vector<std::string> rdma;
  for (const auto& dev : std::filesystem::directory_iterator(infiniband_dir, ec)) {
    std::error_code port_ec;
    for (const auto& port : std::filesystem::directory_iterator(dev.path() / "ports", port_ec)) {
      rdma.push_back(dev.path().filename().string() + ":" + port.path().filename().string());
    }
  }
  std::sort(rdma.begin(), rdma.end());
  for (const auto& r : rdma) add(r);
  std::string out;
  for (const auto& d : devices) out += (out.empty() ? "" : ",") + d;
  return out;
}

NetDevicesChoice choose_net_devices(const std::optional<sockaddr_storage>& listen,
                                    const std::vector<sockaddr_storage>& sources,
                                    const std::vector<std::string>& unresolved) {
  const std::string fallback = ": UCX's TCP transport listens on every interface of this host "
                               "(set UCX_NET_DEVICES to limit it)";
  if (!unresolved.empty()) {
    return {std::nullopt, "the mirrored source '" + unresolved.front() +
                              "' does not resolve yet" + fallback};
  }
  std::vector<std::string> interfaces;
  if (listen) {
    if (is_wildcard(*listen)) return {std::nullopt, "--peer-listen is a wildcard address" + fallback};
    auto i = interface_of(*listen);
    if (!i) return {std::nullopt, "--peer-listen: " + i.error().message() + fallback};
    interfaces.push_back(*i);
  }
  for (const auto& s : sources) {
    auto i = interface_toward(s);
    if (!i) return {std::nullopt, "a mirrored source: " + i.error().message() + fallback};
    interfaces.push_back(*i);
  }
  if (interfaces.empty()) return {std::nullopt, ""};  // nothing to listen or send on
  const std::string devices = ucx_net_devices(interfaces);
  return {devices, "UCX_NET_DEVICES=" + devices +
                       " (the interfaces of --peer-listen and of the routes to the mirrored "
                       "sources, and RDMA ports)"};
}

}  // namespace shmarray::bridge
