#include "listener_admission.hpp"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <linux/filter.h>
#include <netinet/in.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace shmarray::bridge {
namespace {

constexpr std::uint32_t kPass = 0xffffffffu;  // keep the whole packet
constexpr std::uint32_t kDrop = 0;

sock_filter statement(std::uint16_t code, std::uint32_t k) { return BPF_STMT(code, k); }
sock_filter jump(std::uint16_t code, std::uint32_t k, std::uint8_t jt, std::uint8_t jf) {
  return BPF_JUMP(code, k, jt, jf);
}

// Word `i` (0-3) of the address as BPF's absolute loads see it (host order).
std::uint32_t word(const IpAddress& a, int i) {
  std::uint32_t w;
  std::memcpy(&w, a.bytes.data() + 4 * i, 4);
  return ntohl(w);
}

// The program: a packet passes if its source address is one of `addresses` (IPv4 packets are
// compared with the IPv4 ones, IPv6 packets with the IPv6 ones) and its source port one of
// `ports`; everything else is dropped. A TCP socket's filter sees the packet from its TCP header
// on: the source port is at offset 0, the addresses are read from the network header
// (SKF_NET_OFF). A matching address jumps to the port check (BPF_JA: conditional jumps reach 255
// instructions only).
std::vector<sock_filter> program(std::span<const IpAddress> addresses,
                                 std::span<const std::uint16_t> ports) {
  std::vector<sock_filter> p;
  std::vector<std::size_t> to_ports;  // the BPF_JA instructions to point at the port check
  auto jump_to_ports = [&] {
    to_ports.push_back(p.size());
    p.push_back(statement(BPF_JMP | BPF_JA, 0));
  };
  auto jump_from = [&](std::size_t at, std::size_t target) {
    p[at].k = static_cast<std::uint32_t>(target - (at + 1));
  };
  p.push_back(statement(BPF_LD | BPF_B | BPF_ABS, SKF_NET_OFF));  // version and header length
  p.push_back(statement(BPF_ALU | BPF_RSH | BPF_K, 4));
  p.push_back(jump(BPF_JMP | BPF_JEQ | BPF_K, 4, 0, 1));
  const std::size_t to_v4 = p.size();
  p.push_back(statement(BPF_JMP | BPF_JA, 0));
  p.push_back(jump(BPF_JMP | BPF_JEQ | BPF_K, 6, 0, 1));
  const std::size_t to_v6 = p.size();
  p.push_back(statement(BPF_JMP | BPF_JA, 0));
  p.push_back(statement(BPF_RET | BPF_K, kDrop));

  jump_from(to_v4, p.size());
  p.push_back(statement(BPF_LD | BPF_W | BPF_ABS, SKF_NET_OFF + 12));  // IPv4 source
  for (const auto& a : addresses) {
    if (!a.is_v4()) continue;
    p.push_back(jump(BPF_JMP | BPF_JEQ | BPF_K, word(a, 3), 0, 1));
    jump_to_ports();
  }
  p.push_back(statement(BPF_RET | BPF_K, kDrop));

  jump_from(to_v6, p.size());
  for (const auto& a : addresses) {
    if (a.is_v4()) continue;
    // IPv6 source: 4 words from offset 8; a mismatch skips to the next address.
    for (int i = 0; i < 4; ++i) {
      p.push_back(statement(BPF_LD | BPF_W | BPF_ABS, SKF_NET_OFF + 8 + 4 * i));
      p.push_back(jump(BPF_JMP | BPF_JEQ | BPF_K, word(a, i), 0,
                       static_cast<std::uint8_t>(2 * (3 - i) + 1)));
    }
    jump_to_ports();
  }
  p.push_back(statement(BPF_RET | BPF_K, kDrop));

  for (const auto at : to_ports) jump_from(at, p.size());
  p.push_back(statement(BPF_LD | BPF_H | BPF_ABS, 0));  // TCP source port
  for (const auto port : ports) {
    p.push_back(jump(BPF_JMP | BPF_JEQ | BPF_K, port, 0, 1));
    p.push_back(statement(BPF_RET | BPF_K, kPass));
  }
  p.push_back(statement(BPF_RET | BPF_K, kDrop));
  return p;
}

thread_local ListenerAdmission* t_admission = nullptr;

}  // namespace

Result<IpAddress> IpAddress::of(const sockaddr_storage& address) {
  IpAddress a;
  if (address.ss_family == AF_INET) {
    const auto& in = reinterpret_cast<const sockaddr_in&>(address);
    a.bytes[10] = a.bytes[11] = 0xff;
    std::memcpy(a.bytes.data() + 12, &in.sin_addr, 4);
    return a;
  }
  if (address.ss_family == AF_INET6) {
    const auto& in6 = reinterpret_cast<const sockaddr_in6&>(address);
    std::memcpy(a.bytes.data(), &in6.sin6_addr, 16);
    return a;
  }
  return fail(ErrorCode::kInvalidArgument,
              "not an IPv4 or IPv6 address (family " + std::to_string(address.ss_family) + ")");
}

bool IpAddress::is_v4() const noexcept {
  static constexpr std::uint8_t kPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  return std::memcmp(bytes.data(), kPrefix, 12) == 0;
}

bool IpAddress::is_loopback() const noexcept {
  if (is_v4()) return bytes[12] == 127;
  static constexpr std::uint8_t kLoopback6[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  return std::memcmp(bytes.data(), kLoopback6, 16) == 0;
}

std::string IpAddress::to_string() const {
  char text[INET6_ADDRSTRLEN] = {};
  if (is_v4()) {
    ::inet_ntop(AF_INET, bytes.data() + 12, text, sizeof text);
  } else {
    ::inet_ntop(AF_INET6, bytes.data(), text, sizeof text);
  }
  return text;
}

Result<void> admit_only(int fd, const Admitted& admitted, bool lock) {
  if (admitted.addresses.size() > kMaxAdmitted) {
    return fail(ErrorCode::kInvalidArgument,
                "a peer may have at most " + std::to_string(kMaxAdmitted) + " addresses, not " +
                    std::to_string(admitted.addresses.size()));
  }
  if (admitted.ports.size() > kMaxAdmittedPorts) {
    return fail(ErrorCode::kInvalidArgument,
                "a peer may have at most " + std::to_string(kMaxAdmittedPorts) +
                    " source ports, not " + std::to_string(admitted.ports.size()));
  }
  auto p = program(admitted.addresses, admitted.ports);
  sock_fprog prog{static_cast<unsigned short>(p.size()), p.data()};
  if (::setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof prog) != 0) {
    return fail(ErrorCode::kInternal,
                std::string("cannot filter a UCX listening socket: ") + std::strerror(errno));
  }
  const int one = 1;
  if (lock && ::setsockopt(fd, SOL_SOCKET, SO_LOCK_FILTER, &one, sizeof one) != 0) {
    return fail(ErrorCode::kInternal,
                std::string("cannot lock the filter of a UCX listening socket: ") +
                    std::strerror(errno));
  }
  return {};
}

ListenerAdmission::ListenerAdmission(Admitted admitted)
    : admitted_(std::move(admitted)), outer_(t_admission) {
  t_admission = this;
}

ListenerAdmission::~ListenerAdmission() { t_admission = outer_; }

ListenerAdmission* admission_of_this_thread() noexcept { return t_admission; }

Result<void> close_listeners(const std::vector<int>& listeners) {
  for (const int fd : listeners) {
    if (auto ok = admit_only(fd, Admitted{}, true); !ok) return ok;
  }
  return {};
}

int listen_unfiltered(int fd, int backlog) noexcept {
  return static_cast<int>(::syscall(SYS_listen, fd, backlog));
}

std::vector<IpAddress> local_addresses(bool with_loopback) {
  std::vector<IpAddress> out;
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0) return out;
  for (const ifaddrs* i = list; i != nullptr && out.size() < kMaxAdmitted; i = i->ifa_next) {
    if (i->ifa_addr == nullptr) continue;
    const int family = i->ifa_addr->sa_family;
    if (family != AF_INET && family != AF_INET6) continue;
    sockaddr_storage s{};
    std::memcpy(&s, i->ifa_addr, family == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_in6));
    auto a = IpAddress::of(s);
    if (!a || (a->is_loopback() && !with_loopback)) continue;
    if (std::find(out.begin(), out.end(), *a) == out.end()) out.push_back(*a);
  }
  ::freeifaddrs(list);
  return out;
}

std::vector<IpAddress> admitted_for(const IpAddress& connected,
                                    const std::vector<IpAddress>& reported) {
  std::vector<IpAddress> out{connected};
  for (const auto& a : reported) {
    if (out.size() >= kMaxAdmitted) break;
    if (a.is_loopback() && !connected.is_loopback()) continue;
    if (std::find(out.begin(), out.end(), a) == out.end()) out.push_back(a);
  }
  return out;
}

}  // namespace shmarray::bridge
