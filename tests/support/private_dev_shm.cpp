#include "private_dev_shm.hpp"

#include <chrono>
#include <filesystem>

#include "process.hpp"

namespace shmarray::test {

std::expected<std::vector<std::string>, std::string> private_dev_shm(const std::string& size) {
  using namespace std::chrono_literals;
  const std::string unshare = "/usr/bin/unshare";
  if (!std::filesystem::exists(unshare)) {
    return std::unexpected("cannot give the broker a private /dev/shm here: " + unshare +
                           " is not installed (Debian package util-linux)");
  }
  const std::vector<std::string> probe{unshare, "-m", "--propagation", "private", "/bin/sh", "-c",
                                       "mount -t tmpfs -o size=1m tmpfs /dev/shm"};
  if (!run(probe, 10s).status.ok()) {
    return std::unexpected(
        "cannot give the broker a private /dev/shm here (unshare -m and mount need "
        "CAP_SYS_ADMIN)");
  }
  return std::vector<std::string>{
      unshare, "-m", "--propagation", "private", "/bin/sh", "-c",
      "mount -t tmpfs -o size=" + size + " tmpfs /dev/shm && exec \"$0\" \"$@\""};
}

}  // namespace shmarray::test
