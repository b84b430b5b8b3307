// shmarray: command-line client for the shmarray broker. Each subcommand parses its arguments,
// makes one or two Client calls and formats the answer; the formatting lives in the
// shmarray_cli_format library (numpy_format, info_format, ...), the client in shmarray::client.
//
//   shmarray [--socket PATH] ls [PREFIX] [--json | -1]
//   shmarray [--socket PATH] stat NAME [--json]
//   shmarray [--socket PATH] create NAME --dtype D --shape A,B [--order C|F] [--mode 0640]
//                                        [--ephemeral]
//   shmarray [--socket PATH] rm NAME [NAME...]
//   shmarray [--socket PATH] rm --prefix PREFIX [--yes]
//   shmarray [--socket PATH] chmod MODE NAME
//   shmarray [--socket PATH] dump NAME [--head N] [--owner UID]
//   shmarray [--socket PATH] watch [PREFIX] [--seconds N]
//   shmarray [--socket PATH] mirror add PREFIX HOST:PORT | rm PREFIX | ls [--json]
//
// Every command also takes the global options (--socket, --broker-uid UID to trust a broker
// running as that uid, --timeout SECONDS), before or after its name; its --help shows them.
// Exit status: 0 on success, 1 when an operation fails, 2 for a usage error.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <optional>
#include <shmarray/client.hpp>
#include <shmarray/socket_path.hpp>
#include <string>
#include <vector>

#include "cli_parse.hpp"
#include "info_format.hpp"
#include "mirror_command.hpp"
#include "frame_format.hpp"
#include "numpy_format.hpp"
#include "user_names.hpp"
#include "watch_command.hpp"

#ifndef SHMARRAY_VERSION
#define SHMARRAY_VERSION "0.0.0"
#endif

namespace {

using shmarray::Client;
using shmarray::Error;
using shmarray::Result;
namespace cli = shmarray::cli;

constexpr int kFailure = 1;
constexpr int kUsageError = 2;

struct Args {
  std::string socket;  // empty: the default rule (client_socket_path)
  std::string name;
  std::string prefix;
  std::vector<std::string> names;
  bool json = false;
  bool names_only = false;                 // ls -1
  std::optional<std::string> rm_prefix;    // rm --prefix
  bool yes = false;                        // rm --prefix without the question
  double timeout = 10;                     // seconds for any one broker reply
  std::string dtype;
  std::string shape;
  std::string order = "C";
  std::string mode = "0600";
  bool ephemeral = false;
  std::uint64_t head = 0;
  double seconds = 0;
  std::optional<uid_t> broker_uid;  // unset: $SHMARRAY_BROKER_UID (the client library reads it)
  std::optional<uid_t> owner;       // dump --owner
};

int report(std::string_view command, const Error& error) {
  std::fprintf(stderr, "shmarray %.*s: %s\n", static_cast<int>(command.size()), command.data(),
               error.message().c_str());
  return kFailure;
}

void print_line(const std::string& text) {
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fputc('\n', stdout);
}

Result<Client> connect(const Args& args) {
  return Client::connect({.socket_path = args.socket,
                          .request_timeout = std::chrono::milliseconds(
                              static_cast<std::int64_t>(std::ceil(args.timeout * 1000))),
                          .client_name = "shmarray-cli",
                          .broker_uid = args.broker_uid});
}

int run_ls(const Args& args) {
  auto client = connect(args);
  if (!client) return report("ls", client.error());
  const auto infos = client->list(args.prefix);
  if (!infos) return report("ls", infos.error());
  if (args.json) {
    print_line(cli::infos_json(*infos));
  } else if (args.names_only) {
    for (const shmarray::ArrayInfo& info : *infos) print_line(info.name);
  } else {
    std::fputs(cli::list_table(*infos, cli::user_name).c_str(), stdout);
  }
  return 0;
}

int run_stat(const Args& args) {
  auto client = connect(args);
  if (!client) return report("stat", client.error());
  const auto info = client->stat(args.name);
  if (!info) return report("stat", info.error());
  if (args.json) {
    print_line(cli::info_json(*info));
  } else {
    std::fputs(cli::stat_text(*info, cli::user_name, cli::group_name).c_str(), stdout);
  }
  return 0;
}

int run_create(const Args& args) {
  // The validators already accepted these; parse again for the values.
  const shmarray::ArraySpec spec{.dtype = args.dtype,
                                 .shape = cli::parse_shape(args.shape).value(),
                                 .order = cli::parse_order(args.order).value(),
                                 .mode = cli::parse_mode(args.mode).value(),
                                 .ephemeral = args.ephemeral};
  auto client = connect(args);
  if (!client) return report("create", client.error());
  const auto array = client->create(args.name, spec);
  if (!array) return report("create", array.error());
  const shmarray::ArrayInfo& info = array->info();
  print_line("created '" + info.name + "': " + info.dtype + " " + cli::tuple_str(info.shape) +
             " order " + std::string(shmarray::to_string(info.order)) + ", " +
             cli::human_size(info.nbytes) + ", mode " + cli::mode_str(info.mode) +
             (info.ephemeral ? ", ephemeral" : ""));
  if (info.ephemeral) {
    std::fflush(stdout);
    std::fprintf(stderr,
                 "shmarray create: warning: '%s' is ephemeral, so the broker removes it when "
                 "this command exits and its connection closes\n",
                 info.name.c_str());
  }
  return 0;
}

// rm --prefix: asks "remove N arrays ...? [y/N]" on stderr and reads the answer from stdin,
// unless --yes. Returns true to go ahead.
bool confirmed(const Args& args, const std::vector<shmarray::ArrayInfo>& infos) {
  if (args.yes) return true;
  std::string examples;
  for (std::size_t i = 0; i < infos.size() && i < 3; ++i) {
    examples += (i ? ", '" : "'") + infos[i].name + "'";
  }
  if (infos.size() > 3) examples += ", ...";
  std::fprintf(stderr, "shmarray rm: remove %zu array%s whose names start with '%s' (%s)? [y/N] ",
               infos.size(), infos.size() == 1 ? "" : "s", args.rm_prefix->c_str(),
               examples.c_str());
  std::fflush(stderr);
  std::string answer;
  const bool got = static_cast<bool>(std::getline(std::cin, answer));
  if (::isatty(STDIN_FILENO) == 0) std::fputc('\n', stderr);  // the answer was not echoed
  if (!got) {
    std::fprintf(stderr, "shmarray rm: no answer (end of input): nothing removed; pass --yes "
                         "to remove without asking\n");
    return false;
  }
  if (answer == "y" || answer == "Y" || answer == "yes" || answer == "YES") return true;
  std::fprintf(stderr, "shmarray rm: nothing removed\n");
  return false;
}

int run_rm(const Args& args) {
  if (args.names.empty() && !args.rm_prefix) {
    std::fputs("shmarray rm: give the names of the arrays to remove, or --prefix PREFIX (see "
               "shmarray rm --help)\n", stderr);
    return kUsageError;
  }
  auto client = connect(args);
  if (!client) return report("rm", client.error());
  std::vector<std::string> names = args.names;
  if (args.rm_prefix) {
    const auto infos = client->list(*args.rm_prefix);
    if (!infos) return report("rm", infos.error());
    if (infos->empty()) {
      print_line("no arrays whose names start with '" + *args.rm_prefix + "': nothing removed");
      return 0;
    }
    if (!confirmed(args, *infos)) return kFailure;
    for (const shmarray::ArrayInfo& info : *infos) names.push_back(info.name);
  }
  int status = 0;
  for (const std::string& name : names) {
    if (auto removed = client->remove(name); !removed) {
      status = report("rm", removed.error());
    } else {
      print_line("removed '" + name + "'");
    }
  }
  return status;
}

int run_chmod(const Args& args) {
  // The validator already accepted the mode; parse again for the value.
  const std::uint32_t mode = cli::parse_mode(args.mode).value();
  auto client = connect(args);
  if (!client) return report("chmod", client.error());
  if (auto changed = client->chmod(args.name, mode); !changed) {
    return report("chmod", changed.error());
  }
  print_line("mode of '" + args.name + "' is now " + cli::mode_str(mode));
  return 0;
}

int run_dump(const Args& args, bool head) {
  auto client = connect(args);
  if (!client) return report("dump", client.error());
  const auto array =
      client->open(args.name, shmarray::Access::kReadOnly, {.owner = args.owner});
  if (!array) return report("dump", array.error());
  const shmarray::ArrayInfo& info = array->info();
  auto dtype = shmarray::DType::parse(info.dtype);
  if (!dtype) return report("dump", dtype.error());
  // A private copy, read without ever touching the mapping directly: any writer may truncate the
  // segment meanwhile, which read_checked reports as kDataLoss instead of dying of SIGBUS.
  std::vector<std::byte> copy(info.nbytes);
  if (auto read = array->read_checked(copy); !read) return report("dump", read.error());
  const cli::ArrayView view{*dtype, info.shape, info.strides, copy};
  // A frame prints as a table of its first rows (10 unless --head says).
  const auto text = shmarray::is_frame(*dtype, info.shape)
                        ? cli::format_frame_head(*dtype, info.shape, copy, head ? args.head : 10)
                    : head ? cli::format_head(view, args.head)
                           : cli::format_array(view);
  if (!text) return report("dump", text.error());
  print_line(*text);
  return 0;
}

// A CLI11 check from one of our parsers: "" when the text parses, else the parser's message.
template <class Parse>
CLI::Validator checked_by(Parse parse, std::string name) {
  return CLI::Validator(
      [parse](std::string& text) {
        const auto parsed = parse(text);
        return parsed ? std::string() : parsed.error().message();
      },
      "", std::move(name));
}

struct Commands {
  CLI::App* ls;
  CLI::App* stat;
  CLI::App* create;
  CLI::App* rm;
  CLI::App* chmod;
  CLI::App* dump;
  CLI::Option* head;
  CLI::App* watch;
  cli::MirrorCommands mirror;
  cli::MirrorArgs mirror_args;
};

void add_inspect_commands(CLI::App& app, Args& args, Commands& commands) {
  commands.ls = app.add_subcommand(
      "ls", "List arrays and streams (all, or those whose names start with PREFIX)");
  commands.ls->add_option("prefix", args.prefix, "name prefix")->type_name("PREFIX");
  auto* json = commands.ls->add_flag("--json", args.json,
                                     "print a JSON array of objects, one per array");
  commands.ls->add_flag("-1", args.names_only, "print only the names, one per line")
      ->excludes(json);

  commands.stat = app.add_subcommand("stat", "Show everything the broker knows about one array");
  commands.stat->add_option("name", args.name, "array name")->required()->type_name("NAME");
  commands.stat->add_flag("--json", args.json, "print one JSON object");

  commands.dump = app.add_subcommand("dump", "Print an array's values as NumPy's print() does");
  commands.dump->add_option("name", args.name, "array name")->required()->type_name("NAME");
  commands.head = commands.dump->add_option(
      "--head", args.head,
      "print only the first N elements (row-major order) as a flat list; of a frame, its first N "
      "rows (default 10)");
  commands.head->type_name("N");
  commands.dump
      ->add_option_function<uid_t>(
          "--owner", [&args](const uid_t& uid) { args.owner = uid; },
          "refuse unless the array is owned by this uid (another user may have taken the name)")
      ->type_name("UID");

  commands.watch = app.add_subcommand(
      "watch", "Stream created/removed events under PREFIX; if PREFIX names an array, also its "
               "version changes with a rate, if it names a stream, its message rate (until "
               "Ctrl-C)");
  commands.watch->add_option("prefix", args.prefix, "name prefix or array name")
      ->type_name("PREFIX");
  commands.watch->add_option("--seconds", args.seconds, "stop after this long (0: until Ctrl-C)")
      ->capture_default_str();
}

void add_change_commands(CLI::App& app, Args& args, Commands& commands) {
  commands.create = app.add_subcommand("create", "Create a zero-filled array");
  CLI::App& create = *commands.create;
  create.add_option("name", args.name, "array name")->required()->type_name("NAME");
  create.add_option("--dtype", args.dtype, "element type: a NumPy typestr (<f8, |u1) or name "
                                           "(float64, uint8, bool)")
      ->required()
      ->type_name("DTYPE")
      ->check(checked_by(shmarray::DType::parse, "DTYPE"));
  create.add_option("--shape", args.shape, "dimensions, e.g. 1024,1024; \"\" or () for 0-d")
      ->required()
      ->type_name("SHAPE")
      ->check(checked_by(cli::parse_shape, "SHAPE"));
  create.add_option("--order", args.order, "memory order: C (row-major) or F (column-major)")
      ->capture_default_str()
      ->type_name("C|F")
      ->check(checked_by(cli::parse_order, "C|F"));
  create.add_option("--mode", args.mode, "permission bits in octal, as for files")
      ->capture_default_str()
      ->type_name("OCTAL")
      ->check(checked_by(cli::parse_mode, "OCTAL"));
  create.add_flag("--ephemeral", args.ephemeral,
                  "remove the array when the creating connection closes (for the CLI: at once, "
                  "when the command exits)");

  commands.rm = app.add_subcommand("rm", "Remove arrays (mappings that exist stay valid)");
  auto* names = commands.rm->add_option("names", args.names, "array names")->type_name("NAME");
  auto* prefix = commands.rm->add_option(
      "--prefix", args.rm_prefix,
      "remove every array whose name starts with PREFIX, after saying how many and asking "
      "(y/N on stdin)");
  prefix->type_name("PREFIX")->excludes(names);
  commands.rm->add_flag("--yes,-y", args.yes, "with --prefix: remove without asking (scripts)")
      ->needs(prefix);

  commands.chmod = app.add_subcommand(
      "chmod", "Change an array's permission bits (owner or root only); applies to later opens");
  commands.chmod->add_option("mode", args.mode, "permission bits in octal, as for files")
      ->required()
      ->type_name("OCTAL")
      ->check(checked_by(cli::parse_mode, "OCTAL"));
  commands.chmod->add_option("name", args.name, "array name")->required()->type_name("NAME");
}

int dispatch(const Commands& commands, const Args& args) {
  if (commands.ls->parsed()) return run_ls(args);
  if (commands.stat->parsed()) return run_stat(args);
  if (commands.create->parsed()) return run_create(args);
  if (commands.rm->parsed()) return run_rm(args);
  if (commands.chmod->parsed()) return run_chmod(args);
  if (commands.mirror.mirror->parsed()) {
    return cli::run_mirror(commands.mirror, commands.mirror_args, connect(args));
  }
  if (commands.watch->parsed()) {
    return cli::run_watch(args.socket, args.prefix, args.seconds, args.broker_uid);
  }
  return run_dump(args, commands.head->count() > 0);
}

// The options every command takes, before or after its name; added to the main app and to
// each subcommand so that every --help shows them.
void add_global_options(CLI::App& app, Args& args) {
  app.add_option("--socket", args.socket,
                 "broker socket (default: $SHMARRAY_SOCKET; else your own broker's "
                 "$XDG_RUNTIME_DIR/shmarray.sock, or /tmp/shmarray-$UID/shmarray.sock without "
                 "$XDG_RUNTIME_DIR, if it exists; else the system broker's "
                 "/run/shmarray/shmarray.sock if that exists)")
      ->type_name("PATH")
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  app.add_option_function<uid_t>(
         "--broker-uid", [&args](const uid_t& uid) { args.broker_uid = uid; },
         "trust a broker running as this uid (a system broker's user) besides your own uid and "
         "root (default: $SHMARRAY_BROKER_UID)")
      ->type_name("UID");
  app.add_option("--timeout", args.timeout,
                 "seconds to wait for any one reply from the broker before giving up")
      ->capture_default_str()
      ->type_name("SECONDS")
      ->check(CLI::PositiveNumber);
}

}  // namespace

int main(int argc, char** argv) {
  Args args;
  CLI::App app{"shmarray: inspect and manage NumPy-style arrays held by the shmarrayd broker",
               "shmarray"};
  app.set_version_flag("--version", "shmarray " SHMARRAY_VERSION);
  app.require_subcommand(1);
  Commands commands{};
  add_inspect_commands(app, args, commands);
  add_change_commands(app, args, commands);
  commands.mirror = cli::add_mirror_commands(app, commands.mirror_args);
  add_global_options(app, args);
  for (CLI::App* command : app.get_subcommands({})) add_global_options(*command, args);
  for (CLI::App* command : commands.mirror.mirror->get_subcommands({})) {
    add_global_options(*command, args);
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : kUsageError;  // --help exits 0
  }
  return dispatch(commands, args);
}
