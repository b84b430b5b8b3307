#pragma once
// Who is on the other end of a Unix socket (SO_PEERCRED): set by the kernel, cannot be forged.
#include <sys/types.h>

#include "shmarray/error.hpp"

namespace shmarray::server {

struct PeerCredentials {
  pid_t pid = 0;
  uid_t uid = 0;
  gid_t gid = 0;
};

[[nodiscard]] Result<PeerCredentials> peer_credentials(int socket_fd);

}  // namespace shmarray::server
