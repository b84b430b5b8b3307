#pragma once
// `shmarray mirror add PREFIX HOST:PORT | rm PREFIX | ls [--json]`: the broker's mirrors across
// hosts (docs/across-hosts.md).
#include <CLI/CLI.hpp>
#include <functional>
#include <string>

#include "shmarray/client.hpp"

namespace shmarray::cli {

struct MirrorArgs {
  std::string prefix;
  std::string peer;
  bool json = false;
};

struct MirrorCommands {
  CLI::App* mirror = nullptr;
  CLI::App* add = nullptr;
  CLI::App* rm = nullptr;
  CLI::App* ls = nullptr;
};

[[nodiscard]] MirrorCommands add_mirror_commands(CLI::App& app, MirrorArgs& args);
// Runs the parsed mirror subcommand on `client`; returns the exit status (0, or 1 after printing
// the error).
int run_mirror(const MirrorCommands& commands, const MirrorArgs& args, Result<Client> client);

}  // namespace shmarray::cli
