#include "peer_credentials.hpp"

#include <sys/socket.h>

#include <cerrno>

namespace shmarray::server {

Result<PeerCredentials> peer_credentials(int socket_fd) {
  ucred cred{};
  socklen_t len = sizeof cred;
  if (::getsockopt(socket_fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
    return std::unexpected(sys_error("SO_PEERCRED", errno));
  }
  return PeerCredentials{cred.pid, cred.uid, cred.gid};
}

}  // namespace shmarray::server
