#include "source_ports.hpp"

#include <netinet/in.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace shmarray::bridge {
namespace {

thread_local ConnectsFrom* t_connects_from = nullptr;

constexpr int kOne = 1;

// `port` of every address of `family` (port 0: one the kernel chooses).
sockaddr_storage any_address(int family, std::uint16_t port) {
  sockaddr_storage s{};
  if (family == AF_INET6) {
    auto& a = reinterpret_cast<sockaddr_in6&>(s);
    a.sin6_family = AF_INET6;
    a.sin6_addr = in6addr_any;
    a.sin6_port = htons(port);
  } else {
    auto& a = reinterpret_cast<sockaddr_in&>(s);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_ANY);
    a.sin_port = htons(port);
  }
  return s;
}

socklen_t length_of(int family) {
  return family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
}

std::uint16_t port_of(const sockaddr_storage& s) {
  return ntohs(s.ss_family == AF_INET6 ? reinterpret_cast<const sockaddr_in6&>(s).sin6_port
                                       : reinterpret_cast<const sockaddr_in&>(s).sin_port);
}

int family_of(int fd) noexcept {
  int family = 0;
  socklen_t n = sizeof family;
  if (::getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &family, &n) != 0) return -1;
  return family;
}

// A socket bound with SO_REUSEPORT to a port of the kernel's choosing on every address: a
// dual-stack IPv6 socket holds the port for IPv4 too; where there is no IPv6, an IPv4 one.
Result<UniqueFd> reserve_one() {
  UniqueFd fd(::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0));
  int family = AF_INET6;
  if (fd) {
    const int zero = 0;
    if (::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero) != 0) fd.reset();
  }
  if (!fd) {
    fd = UniqueFd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    family = AF_INET;
  }
  if (!fd) {
    return fail(ErrorCode::kUnavailable,
                std::string("cannot make a socket to reserve a source port: ") +
                    std::strerror(errno));
  }
  const auto any = any_address(family, 0);
  if (::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEPORT, &kOne, sizeof kOne) != 0 ||
      ::bind(fd.get(), reinterpret_cast<const sockaddr*>(&any), length_of(family)) != 0) {
    return fail(ErrorCode::kUnavailable,
                std::string("cannot reserve a source port for the link's UCX connections: ") +
                    std::strerror(errno) + " (are the ephemeral ports, "
                    "net.ipv4.ip_local_port_range, all in use?)");
  }
  return fd;
}

}  // namespace

Result<SourcePorts> SourcePorts::reserve(std::size_t count) {
  if (count == 0 || count > kMaxSourcePorts) {
    return fail(ErrorCode::kInvalidArgument, "a link reserves 1 to " +
                                                 std::to_string(kMaxSourcePorts) +
                                                 " source ports, not " + std::to_string(count));
  }
  SourcePorts out;
  while (out.ports_.size() < count) {
    auto fd = reserve_one();
    if (!fd) return std::unexpected(fd.error());
    sockaddr_storage bound{};
    socklen_t n = sizeof bound;
    if (::getsockname(fd->get(), reinterpret_cast<sockaddr*>(&bound), &n) != 0) {
      return fail(ErrorCode::kInternal,
                  std::string("getsockname on a reserved port: ") + std::strerror(errno));
    }
    out.ports_.push_back(port_of(bound));
    out.holders_.push_back(std::move(*fd));
  }
  return out;
}

Result<std::uint16_t> SourcePorts::bind_next(int fd) {
  const int family = family_of(fd);
  if (family != AF_INET && family != AF_INET6) {
    return fail(ErrorCode::kInvalidArgument, "not an IPv4 or IPv6 socket");
  }
  while (next_ < ports_.size()) {
    const std::uint16_t port = ports_[next_++];
    const auto at = any_address(family, port);
    if (::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &kOne, sizeof kOne) == 0 &&
        ::bind(fd, reinterpret_cast<const sockaddr*>(&at), length_of(family)) == 0) {
      return port;
    }
  }
  return fail(ErrorCode::kUnavailable,
              "all " + std::to_string(ports_.size()) +
                  " source ports reserved for this link's UCX connections are in use");
}

ConnectsFrom::ConnectsFrom(SourcePorts& ports) : ports_(ports), outer_(t_connects_from) {
  t_connects_from = this;
}

ConnectsFrom::~ConnectsFrom() { t_connects_from = outer_; }

ConnectsFrom* connects_from_of_this_thread() noexcept { return t_connects_from; }

bool is_unbound_tcp(int fd) noexcept {
  const int family = family_of(fd);
  if (family != AF_INET && family != AF_INET6) return false;
  int type = 0;
  socklen_t n = sizeof type;
  if (::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &n) != 0 || type != SOCK_STREAM) return false;
  sockaddr_storage bound{};
  n = sizeof bound;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &n) != 0) return false;
  return port_of(bound) == 0;
}

int connect_direct(int fd, const sockaddr* address, socklen_t length) noexcept {
  return static_cast<int>(::syscall(SYS_connect, fd, address, length));
}

}  // namespace shmarray::bridge
