#pragma once
// `shmarray watch [PREFIX]`: streams broker events (created / removed) for names under PREFIX
// and, when PREFIX names an existing array, its version changes with a rate, once a second.
// Runs until Ctrl-C (SIGINT/SIGTERM) or for `seconds` when that is > 0.
#include <sys/types.h>

#include <optional>
#include <string>

namespace shmarray::cli {

// Returns the process exit status (0; 1 if the broker cannot be reached or goes away, or runs as
// an untrusted uid: `broker_uid` as ClientOptions::broker_uid).
int run_watch(const std::string& socket, const std::string& prefix, double seconds,
              std::optional<uid_t> broker_uid = std::nullopt);

}  // namespace shmarray::cli
