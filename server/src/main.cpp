// shmarrayd: the shmarray broker. Parses options, runs the Broker on one io_context until
// SIGINT/SIGTERM, then stops gracefully and exits 0. Under systemd: serves a socket passed by
// socket activation, tells the service manager READY=1 / STATUS= / STOPPING=1, and logs to the
// journal without its own timestamps (docs/operations.md).
#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <charconv>
#include <cstdlib>
#include <functional>
#include <string_view>
#include <spdlog/spdlog.h>

#include "broker.hpp"
#include "gc.hpp"
#include "journal_log.hpp"
#include "shmarray/byte_size.hpp"
#include "service_notifier.hpp"
#include "socket_activation.hpp"
#include "shmarray/socket_path.hpp"

#ifndef SHMARRAY_VERSION
#define SHMARRAY_VERSION "0.0.0"
#endif

namespace {

// A byte-count option that takes units (64K, 512M, 1G: shmarray/byte_size.hpp).
template <class Bytes>
CLI::Option* add_size_option(CLI::App& app, const std::string& name, Bytes& bytes,
                             const std::string& description) {
  return app
      .add_option_function<std::string>(
          name,
          [&bytes](const std::string& text) {
            bytes = static_cast<Bytes>(shmarray::parse_byte_size(text).value());
          },
          description + " (bytes, or with a unit: 64K, 512M, 1G)")
      ->default_str(std::to_string(bytes))
      ->type_name("SIZE")
      ->check(CLI::Validator(
          [](std::string& text) {
            const auto parsed = shmarray::parse_byte_size(text);
            return parsed ? std::string() : parsed.error().message();
          },
          "", "SIZE"));
}

// "0660" -> 0660; -1 when the text is not octal permission bits (0 to 0777).
std::int32_t parse_octal_mode(std::string_view text) {
  std::int32_t mode = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), mode, 8);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || mode < 0 ||
      mode > 0777) {
    return -1;
  }
  return mode;
}

// The STATUS= line systemctl status shows.
std::string service_status(const shmarray::server::Broker& broker) {
  return "STATUS=serving " + std::to_string(broker.array_count()) + " arrays, " +
         std::to_string(broker.connection_count()) + " connections on " + broker.socket_path();
}

// System mode: one broker shared by several local users (see docs/security.md).
void add_socket_access_options(CLI::App& app, shmarray::server::Config& config) {
  app.add_option_function<std::string>(
         "--socket-mode",
         [&config](const std::string& text) { config.socket_mode = parse_octal_mode(text); },
         "Permission bits (octal) for the socket file, e.g. 0660 with --socket-group, or 0666 "
         "for every local user; its directory must let them through (default: as created, in "
         "a 0700 directory: only this user)")
      ->type_name("OCTAL")
      ->check(CLI::Validator(
          [](std::string& text) {
            return parse_octal_mode(text) >= 0
                       ? std::string()
                       : "bad mode '" + text + "': write permission bits in octal, e.g. 0660";
          },
          "", "OCTAL"));
  app.add_option("--socket-group", config.socket_group,
                 "Group (name or gid) given the socket file, so that its members may connect "
                 "when --socket-mode grants the group rw (e.g. 0660)")
      ->type_name("GROUP");
}

// Memory bounds: what one client, and all of them together, may make the broker hold.
void add_memory_options(CLI::App& app, shmarray::server::Config& config) {
  add_size_option(app, "--max-pending-reply-bytes", config.max_pending_reply_bytes,
                  "Replies queued for one connection that does not read them; past this it is "
                  "closed");
  add_size_option(app, "--max-pending-reply-bytes-total", config.max_pending_reply_bytes_total,
                  "Replies queued for all connections together; past it the connections holding "
                  "the most queued replies are closed (not the one whose reply crossed it)");
  app.add_option_function<std::int64_t>(
         "--write-timeout-ms",
         [&config](std::int64_t ms) { config.write_timeout = std::chrono::milliseconds(ms); },
         "A connection whose queued replies make no progress for this long (it stopped reading) "
         "is closed")
      ->default_str(std::to_string(config.write_timeout.count()))
      ->check(CLI::PositiveNumber);
  app.add_option("--max-parked-opens", config.max_parked_opens,
                 "Opens waiting for a name to be created (open with wait), all connections "
                 "together; more get kResourceExhausted")
      ->capture_default_str();
  app.add_option("--max-parked-opens-per-connection", config.max_parked_opens_per_connection,
                 "Opens waiting for a name to be created, per connection")
      ->capture_default_str();
  app.add_option("--max-watchers", config.max_watchers,
                 "Watch connections (shmarray watch, Watcher) at once")
      ->capture_default_str();
  add_size_option(app, "--off-loop-create-bytes", config.off_loop_create_bytes,
                  "Segments this big or bigger have their pages reserved (create) and released "
                  "(remove) on a worker thread, so other clients are served meanwhile");
  add_size_option(app, "--segment-pool-bytes", config.segment_pool_bytes,
                  "Pre-made segments kept for small creates, all together (nameless, freed when "
                  "the broker exits); segments up to a quarter of it are pooled; 0: no pool");
}

// Mirrors across hosts (docs/across-hosts.md).
void add_peer_options(CLI::App& app, shmarray::server::Config& config) {
  app.add_option("--peer-listen", config.peer_listen,
                 "Serve peer brokers on ADDR:PORT (a TCP port: a peer proves --peer-key there "
                 "before the link moves to UCX), so they can mirror names under --peer-allow "
                 "prefixes; needs --peer-key")
      ->type_name("ADDR:PORT");
  app.add_option("--peer-key", config.peer_key,
                 "Key file shared with the peer brokers: a regular file of 32 to 4096 bytes, mode "
                 "0600, owned by this user (head -c 32 /dev/urandom > KEY; chmod 600 KEY)")
      ->type_name("FILE");
  app.add_option("--peer-allow", config.peer_allow,
                 "A prefix peers may mirror (repeatable); none: peers may mirror nothing")
      ->type_name("PREFIX");
  app.add_option_function<std::vector<std::string>>(
         "--mirror",
         [&config](const std::vector<std::string>& all) {
           for (const auto& text : all) {
             const auto eq = text.find('=');
             config.mirrors.emplace_back(text.substr(0, eq), text.substr(eq + 1));
           }
         },
         "Mirror every array under PREFIX of the broker serving peers at HOST:PORT, under the "
         "same names here, read-only (repeatable; also 'shmarray mirror add'); needs --peer-key")
      ->type_name("PREFIX=HOST:PORT")
      ->check(CLI::Validator(
          [](std::string& text) {
            const auto eq = text.find('=');
            return eq == std::string::npos || eq == 0 || text.find(':', eq) == std::string::npos
                       ? "'" + text + "' is not PREFIX=HOST:PORT"
                       : std::string();
          },
          "", "PREFIX=HOST:PORT"));
}

}  // namespace

int main(int argc, char** argv) {
  using shmarray::server::Config;
  Config config;
  CLI::App app{
      "shmarrayd: the shmarray broker. Places each named array in a shared-memory segment and "
      "hands clients its descriptor over a Unix socket; array bytes never cross the socket."};
  app.set_version_flag("--version", "shmarrayd " SHMARRAY_VERSION);
  app.add_option("--socket", config.socket_path,
                 "Unix socket to listen on (default: $SHMARRAY_SOCKET, else "
                 "$XDG_RUNTIME_DIR/shmarray.sock, else /tmp/shmarray-$UID/shmarray.sock)");
  app.add_option("--log-level", config.log_level, "trace, debug, info, warn, error or off")
      ->capture_default_str()
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "off"}));
  add_size_option(app, "--max-bytes", config.max_bytes,
                  "Most bytes all arrays together (and any one array) may use; 0 = the size of "
                  "/dev/shm");
  add_size_option(app, "--max-bytes-per-user", config.max_bytes_per_user,
                  "Most bytes one user's arrays may use; 0 = same as --max-bytes");
  app.add_option("--max-arrays", config.max_arrays, "Most arrays at once")->capture_default_str();
  app.add_option("--max-connections", config.max_connections, "Most client connections at once")
      ->capture_default_str();
  std::int64_t read_timeout_ms = config.read_timeout.count();
  app.add_option("--read-timeout-ms", read_timeout_ms,
                 "A client must finish a started message (and say hello) within this time")
      ->capture_default_str();
  add_socket_access_options(app, config);
  add_memory_options(app, config);
  add_peer_options(app, config);
  bool gc = false;
  app.add_flag("--gc", gc,
               "Instead of serving: remove this socket's segments that a start would not adopt "
               "(corrupt or half-made headers, ephemeral arrays, duplicate names), print them and "
               "exit (0; 3 if a broker is serving the socket). A normal start never deletes any");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help prints and exits 0; a usage error (unknown flag, bad value) prints why and exits 2,
    // as the shmarray command does (CLI11's own codes, 105 and so on, mean nothing to a user).
    return app.exit(e) == 0 ? 0 : 2;
  }
  config.read_timeout = std::chrono::milliseconds(read_timeout_ms);
  const bool socket_named =
      !config.socket_path.empty() || std::getenv("SHMARRAY_SOCKET") != nullptr;
  config.socket_path = shmarray::resolve_socket_path(config.socket_path);

  shmarray::server::configure_stderr_logging(config.log_level);
  if (gc) return shmarray::server::run_gc(config);
  auto notifier = shmarray::server::ServiceNotifier::from_environment();
  auto activated = shmarray::server::take_activated_socket(socket_named ? config.socket_path : "");
  if (!activated) {
    spdlog::error("{}", activated.error().message());
    return 1;
  }
  if (*activated) {  // socket activation: serve the socket the service manager passed
    config.socket_path = (*activated)->path;
    config.listen_fd = (*activated)->fd.release();
    spdlog::info("serving the socket passed by the service manager: {}", config.socket_path);
  }
  {  // Each connection holds a descriptor: let --max-connections be reached under a low soft limit.
    const rlim_t want = static_cast<rlim_t>(config.max_connections) + 64;
    rlimit lim{};
    if (::getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < want) {
      lim.rlim_cur = std::min(want, lim.rlim_max);
      if (::setrlimit(RLIMIT_NOFILE, &lim) != 0 || lim.rlim_cur < want) {
        spdlog::warn("descriptor limit {} is below --max-connections {}: raise ulimit -n",
                     lim.rlim_cur, config.max_connections);
      }
    }
  }

  boost::asio::io_context io;
  shmarray::server::Broker broker(io, config);
  if (auto started = broker.start(); !started) {
    spdlog::error("{}", started.error().message());
    return started.error().code() == shmarray::ErrorCode::kAlreadyExists ? 3 : 1;
  }
  auto tell_manager = [&notifier](const std::string& state) {
    if (auto sent = notifier.notify(state); !sent) {
      spdlog::warn("{}", sent.error().message());
      notifier = shmarray::server::ServiceNotifier("");  // said once; the broker serves on
    }
  };
  // STATUS= follows the counts, at most every 2 s and only when they changed.
  boost::asio::steady_timer status_timer(io);
  std::string last_status = service_status(broker);
  std::function<void()> refresh_status = [&] {
    status_timer.expires_after(std::chrono::seconds(2));
    status_timer.async_wait([&](boost::system::error_code ec) {
      if (ec) return;
      if (auto now = service_status(broker); now != last_status) {
        last_status = now;
        tell_manager(now);
      }
      refresh_status();
    });
  };
  boost::asio::signal_set signals(io, SIGINT, SIGTERM);
  boost::asio::steady_timer deadline(io);
  signals.async_wait([&](boost::system::error_code ec, int signo) {
    if (ec) return;
    spdlog::info("received signal {}: stopping", signo);
    status_timer.cancel();
    tell_manager("STOPPING=1\nSTATUS=stopping: closing " +
                 std::to_string(broker.connection_count()) +
                 " connections; arrays stay in shared memory for the next start");
    broker.stop([&] {
      deadline.cancel();
      io.stop();
    });
    // In-flight replies get a few seconds to drain; then we exit regardless.
    deadline.expires_after(std::chrono::seconds(3));
    deadline.async_wait([&](boost::system::error_code e) {
      if (!e) io.stop();
    });
  });
  // Ready only now that SIGTERM stops it gracefully.
  tell_manager("READY=1\n" + last_status);
  if (notifier.enabled()) refresh_status();
  io.run();
  spdlog::info("stopped");
  return 0;
}
