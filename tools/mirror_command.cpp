#include "mirror_command.hpp"

#include <cstdio>

#include "mirror_format.hpp"

namespace shmarray::cli {

MirrorCommands add_mirror_commands(CLI::App& app, MirrorArgs& args) {
  MirrorCommands c;
  c.mirror = app.add_subcommand(
      "mirror", "Mirror arrays of a broker on another host (add, rm, ls; docs/across-hosts.md)");
  c.mirror->require_subcommand(1);
  c.add = c.mirror->add_subcommand(
      "add", "Make every array under PREFIX on the broker serving peers at HOST:PORT appear "
             "here, read-only (persisted)");
  c.add->add_option("prefix", args.prefix, "name prefix")->required()->type_name("PREFIX");
  c.add->add_option("peer", args.peer, "the source broker's --peer-listen address")
      ->required()
      ->type_name("HOST:PORT");
  c.rm = c.mirror->add_subcommand("rm", "Stop mirroring PREFIX and remove its mirrored arrays");
  c.rm->add_option("prefix", args.prefix, "name prefix")->required()->type_name("PREFIX");
  c.ls = c.mirror->add_subcommand("ls", "List mirrors with their link state");
  c.ls->add_flag("--json", args.json, "print a JSON array of objects, one per mirror");
  return c;
}

int run_mirror(const MirrorCommands& commands, const MirrorArgs& args, Result<Client> client) {
  const char* name = commands.add->parsed() ? "mirror add"
                     : commands.rm->parsed() ? "mirror rm"
                                             : "mirror ls";
  const auto failed = [name](const Error& e) {
    std::fprintf(stderr, "shmarray %s: %s\n", name, e.message().c_str());
    return 1;
  };
  if (!client) return failed(client.error());
  auto mirrors = commands.add->parsed()  ? client->mirror_add(args.prefix, args.peer)
                 : commands.rm->parsed() ? client->mirror_remove(args.prefix)
                                         : client->mirrors();
  if (!mirrors) return failed(mirrors.error());
  const std::string out =
      args.json ? mirrors_json(*mirrors) + "\n" : mirrors_table(*mirrors);
  std::fputs(out.c_str(), stdout);
  return 0;
}

}  // namespace shmarray::cli
