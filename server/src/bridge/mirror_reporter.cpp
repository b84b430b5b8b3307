#include "mirror_reporter.hpp"

#include <spdlog/spdlog.h>

#include <optional>
#include <thread>

#include "shmarray/client.hpp"
#include "ucx_worker.hpp"

namespace shmarray::bridge {
namespace {

std::vector<MirrorInfo> to_report(const std::vector<MirrorLinkStatus>& links) {
  const auto now = std::chrono::steady_clock::now();
  std::vector<MirrorInfo> out;
  for (const auto& l : links) {
    MirrorInfo info{l.prefix, l.peer, l.link, {}};
    for (const auto& [name, a] : l.arrays) {
      const bool behind = a.source_version != a.mirror_version;
      const auto lag = behind ? std::chrono::duration_cast<std::chrono::milliseconds>(
                                    now - a.behind_since)
                                    .count()
                              : 0;
      info.arrays.push_back(MirroredArray{name, a.source_version, a.mirror_version,
                                          static_cast<std::uint64_t>(std::max<long>(lag, 0))});
    }
    out.push_back(std::move(info));
  }
  return out;
}

}  // namespace

void MirrorReporter::run() {
  ClientOptions options;
  options.socket_path = socket_;
  options.client_name = "shmarray-bridge reporter";
  options.interrupt_check = stop_check;
  options.reconnect_attempts = 0;  // the bridge lives and dies with its broker
  std::optional<Client> client;
  auto last = std::chrono::steady_clock::now() - std::chrono::seconds(10);
  while (!g_stopping.load()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    bool changed = false;
    auto links = board_.snapshot(&changed);
    const auto now = std::chrono::steady_clock::now();
    if (!changed && now - last < std::chrono::seconds(2)) continue;
    if (!client) {
      auto c = Client::connect(options);
      if (!c) continue;
      client.emplace(std::move(*c));
    }
    if (auto ok = client->report_mirrors(to_report(links)); !ok) {
      // Debug: it happens at every broker shutdown (the broker closes this session first).
      spdlog::debug("cannot report mirror status to the broker: {}", ok.error().message());
      client.reset();
      continue;
    }
    last = now;
  }
}

}  // namespace shmarray::bridge
