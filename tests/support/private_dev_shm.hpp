#pragma once
// A private, small /dev/shm for one child process: tests that must fill /dev/shm run the broker
// in a mount namespace of its own with a tmpfs of a few MiB over /dev/shm, so the machine's
// /dev/shm never fills up. Clients need not see it: they receive descriptors.
#include <expected>
#include <string>
#include <vector>

namespace shmarray::test {

// The argv prefix that runs a command in a new mount namespace whose /dev/shm is a tmpfs of
// `size` (mount's syntax: "16m"), or why that cannot be done here (for GTEST_SKIP: unshare -m and
// mount need CAP_SYS_ADMIN). Probes once per call with a 1 MiB mount.
[[nodiscard]] std::expected<std::vector<std::string>, std::string> private_dev_shm(
    const std::string& size);

}  // namespace shmarray::test
