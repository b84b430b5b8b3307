// shmarray-bridge: the data path of mirrors across hosts (docs/architecture.md, "Bridge").
// shmarrayd spawns and supervises it; it is a client of that broker like any other (the broker
// recognises it by its pid) and never talks to it about bytes, only names. It serves peers
// (--peer-listen: one source link thread per connected mirror) and mirrors prefixes (--mirror:
// one mirror link thread each), and reports mirror status to the broker.
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <memory>
#include <mutex>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <thread>
#include <vector>

#include "handshake_limit.hpp"
#include "mirror_link.hpp"
#include "mirror_reporter.hpp"
#include "net_devices.hpp"
#include "peer_key.hpp"
#include "peer_messages.hpp"
#include "sigbus_guard.hpp"
#include "socket_address.hpp"
#include "source_link.hpp"
#include "spin_policy.hpp"
#include "peer_control.hpp"

namespace {

using namespace shmarray::bridge;

struct Options {
  std::string socket;
  std::string key_file;
  std::string listen;
  std::vector<std::string> allowed;
  std::vector<std::string> mirrors;  // PREFIX=HOST:PORT
  std::string log_level = "info";
};

// Limits UCX's TCP transport to the interfaces the bridge needs (net_devices.hpp), unless the
// user set UCX_NET_DEVICES. Before the UCX context exists: UCX reads the variable then.
void limit_net_devices(const Options& o) {
  if (const char* set = ::getenv("UCX_NET_DEVICES")) {
    spdlog::info("UCX_NET_DEVICES={} (set by the environment)", set);
    return;
  }
  std::optional<sockaddr_storage> listen;
  if (!o.listen.empty()) {
    if (auto a = resolve_address(o.listen, true)) listen = a->storage;
  }
  std::vector<sockaddr_storage> sources;
  std::vector<std::string> unresolved;
  for (const auto& m : o.mirrors) {
    const std::string address = m.substr(m.find('=') + 1);
    if (auto a = resolve_address(address)) {
      sources.push_back(a->storage);
    } else {
      unresolved.push_back(address);
    }
  }
  const NetDevicesChoice choice = choose_net_devices(listen, sources, unresolved);
  if (choice.devices) {
    ::setenv("UCX_NET_DEVICES", choice.devices->c_str(), 1);
    spdlog::info("{}", choice.why);
  } else if (!choice.why.empty()) {
    spdlog::warn("{}", choice.why);
  }
}

extern "C" void on_stop_signal(int) { g_stopping.store(true); }  // lock-free: signal-safe

void serve_peers(std::shared_ptr<UcxContext> context, TcpListener& listener, const PeerKey& key,
                 const SourceSettings& settings) {
  struct Link {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> ended;
  };
  std::vector<Link> links;
  HandshakeLimit handshakes;
  while (!g_stopping.load()) {
    // Ended links are joined as they go (a thread that ended keeps its stack until joined).
    std::erase_if(links, [](Link& l) {
      if (!l.ended->load()) return false;
      l.thread.join();
      return true;
    });
    auto connection = listener.take(std::chrono::milliseconds(100));
    if (!connection) continue;
    auto from = IpAddress::of(connection->peer());
    auto slot = from ? handshakes.take(*from) : std::nullopt;
    if (!slot) {
      spdlog::warn("peer connection from {} closed at once: too many connections in their "
                   "handshake ({} from one address, {} in all, at most)",
                   to_string(connection->peer()), HandshakeLimit::kPerAddress,
                   HandshakeLimit::kTotal);
      continue;
    }
    auto ended = std::make_shared<std::atomic<bool>>(false);
    links.push_back(Link{std::thread([context, c = std::move(*connection), &key, &settings,
                                      s = std::move(*slot), ended]() mutable {
                           run_source_link(context, std::move(c), key, settings,
                                           [&] { s.release(); });
                           ended->store(true);
                         }),
                         ended});
  }
  for (auto& l : links) l.thread.join();
}

}  // namespace

int main(int argc, char** argv) {
#if defined(__SANITIZE_THREAD__)
  // Under ThreadSanitizer only: UCX's memory hooks (libucm) intercept the madvise glibc makes
  // while a thread exits, after TSan has torn down that thread's state, and TSan's interceptor
  // of the hook's lock then faults (SIGSEGV whenever a link thread ends). libucm reads
  // UCX_MEM_MMAP_HOOK_MODE when it loads, so set it and start again. The bridge needs no
  // memory hooks over TCP (they keep RDMA registration caches coherent).
  if (::getenv("UCX_MEM_MMAP_HOOK_MODE") == nullptr) {
    ::setenv("UCX_MEM_MMAP_HOOK_MODE", "none", 1);
    ::execv("/proc/self/exe", argv);  // returns only on failure: go on with the hooks
  }
#endif
  Options o;
  CLI::App app{"shmarray-bridge: carries mirrored arrays between brokers over UCX (started by "
               "shmarrayd; not meant to be run by hand)"};
  app.add_option("--socket", o.socket, "The broker's socket")->required();
  app.add_option("--peer-key", o.key_file, "Shared key file (0600, owned by this user)")
      ->required();
  app.add_option("--peer-listen", o.listen, "Serve peers on ADDR:PORT");
  app.add_option("--peer-allow", o.allowed, "Prefix peers may mirror (repeatable)");
  app.add_option("--mirror", o.mirrors, "PREFIX=HOST:PORT to mirror (repeatable)");
  app.add_option("--log-level", o.log_level, "trace, debug, info, warn, error or off");
  CLI11_PARSE(app, argc, argv);
  // stderr, like the broker's log (stdout may be a pipe nobody reads).
  spdlog::set_default_logger(spdlog::stderr_logger_mt("shmarray-bridge"));
  spdlog::set_level(spdlog::level::from_str(o.log_level));
  spdlog::set_pattern("%Y-%m-%d %H:%M:%S.%e shmarray-bridge[%P] %l: %v");
  (void)::prctl(PR_SET_PDEATHSIG, SIGTERM);

  // SIGTERM/SIGINT set g_stopping, whichever thread they land on (UCX starts threads of its own,
  // so a sigwait in main alone could miss them); every loop of the bridge checks it.
  struct sigaction stop{};
  stop.sa_handler = &on_stop_signal;
  sigemptyset(&stop.sa_mask);
  ::sigaction(SIGTERM, &stop, nullptr);
  ::sigaction(SIGINT, &stop, nullptr);
  // A local writer that truncates a source segment mid-send must not kill the bridge (and with it
  // every mirror of this broker): sigbus_guard.hpp.
  install_sigbus_guard();

  auto key = PeerKey::load(o.key_file, ::geteuid());
  if (!key) {
    spdlog::error("{}", key.error().message());
    return 2;
  }
  for (const auto& m : o.mirrors) {
    if (m.find('=') == std::string::npos) {
      spdlog::error("--mirror '{}' is not PREFIX=HOST:PORT", m);
      return 2;
    }
  }
  limit_net_devices(o);  // before the UCX context: UCX reads UCX_NET_DEVICES when it is made
  auto context = UcxContext::create();
  if (!context) {
    spdlog::error("{}", context.error().message());
    return 1;
  }
  std::vector<MirrorSettings> mirrors;
  for (const auto& m : o.mirrors) {  // each has its '=' (checked above)
    const auto eq = m.find('=');
    mirrors.push_back(MirrorSettings{m.substr(0, eq), m.substr(eq + 1), o.socket});
  }
  spdlog::info("{}", describe_spin());
  std::vector<std::thread> threads;
  std::optional<TcpListener> listener;
  SourceSettings source{o.socket, o.allowed};
  if (!o.listen.empty()) {
    auto l = TcpListener::listen(o.listen);
    if (!l) {
      spdlog::error("{}", l.error().message());
      return 1;
    }
    listener.emplace(std::move(*l));
    spdlog::info("serving peers on {} (allowed prefixes: {})", listener->bound_address(),
                 o.allowed.size());
    threads.emplace_back([&] { serve_peers(*context, *listener, *key, source); });
  }
  MirrorStatusBoard board;
  for (const auto& m : mirrors) {
    threads.emplace_back([&, m] { run_mirror_link(*context, *key, m, board); });
  }
  MirrorReporter reporter(o.socket, board);
  if (!mirrors.empty()) threads.emplace_back([&] { reporter.run(); });

  while (!g_stopping.load()) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  spdlog::info("stopping");
  for (auto& t : threads) t.join();
  listener.reset();
  return 0;
}
