#include "watch_command.hpp"

#include <csignal>
#include <chrono>
#include <cstdio>
#include <optional>
#include <shmarray/client.hpp>
#include <shmarray/watcher.hpp>

#include "info_format.hpp"

namespace shmarray::cli {
namespace {

using Clock = std::chrono::steady_clock;
volatile std::sig_atomic_t g_stop = 0;

void on_signal(int) { g_stop = 1; }

std::string now_text() {
  const auto t = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  char buf[16];
  std::strftime(buf, sizeof buf, "%H:%M:%S", std::localtime(&t));
  return buf;
}

// The data-plane side: one array's version, reported once a second while it moves.
struct VersionTracker {
  Array array;
  std::uint64_t last_version;
  Clock::time_point last_report = Clock::now();

  void tick() {
    const auto now = Clock::now();
    if (now - last_report < std::chrono::seconds(1)) return;
    const std::uint64_t v = array.version();
    if (v != last_version) {
      const double secs = std::chrono::duration<double>(now - last_report).count();
      std::printf("%s version '%s' %llu (+%llu, %.1f/s)%s\n", now_text().c_str(),
                  array.info().name.c_str(), static_cast<unsigned long long>(v),
                  static_cast<unsigned long long>(v - last_version),
                  static_cast<double>(v - last_version) / secs,
                  array.possibly_torn() ? " possibly torn" : "");
      std::fflush(stdout);
    }
    last_version = v;
    last_report = now;
  }
};

// A stream: its last sequence number, from the broker once a second (a subscription would join
// the stream and, under kBlock, hold its publisher back).
struct StreamTracker {
  Client client;
  std::string name;
  std::uint64_t last_seq;
  Clock::time_point last_report = Clock::now();

  void tick() {
    const auto now = Clock::now();
    if (now - last_report < std::chrono::seconds(1)) return;
    const auto info = client.stat(name);
    if (!info || info->kind != ObjectKind::kStream) return;
    const std::uint64_t seq = info->stream.last_seq;
    const double secs = std::chrono::duration<double>(now - last_report).count();
    std::printf("%s stream '%s' seq %llu (+%llu, %.1f msg/s, %zu subscribers)\n",
                now_text().c_str(), name.c_str(), static_cast<unsigned long long>(seq),
                static_cast<unsigned long long>(seq - last_seq),
                static_cast<double>(seq - last_seq) / secs, info->stream.subscribers.size());
    std::fflush(stdout);
    last_seq = seq;
    last_report = now;
  }
};

std::optional<StreamTracker> track_if_stream(const std::string& socket, const std::string& name,
                                             std::optional<uid_t> broker_uid) {
  if (name.empty()) return std::nullopt;
  auto client = Client::connect(
      {.socket_path = socket, .client_name = "shmarray-watch", .broker_uid = broker_uid});
  if (!client) return std::nullopt;
  const auto info = client->stat(name);
  if (!info || info->kind != ObjectKind::kStream) return std::nullopt;
  std::printf("%s watching stream '%s' at seq %llu\n", now_text().c_str(), name.c_str(),
              static_cast<unsigned long long>(info->stream.last_seq));
  std::fflush(stdout);
  return StreamTracker{std::move(*client), name, info->stream.last_seq};
}

std::optional<VersionTracker> track_if_array(const std::string& socket, const std::string& name,
                                             std::optional<uid_t> broker_uid) {
  if (name.empty()) return std::nullopt;
  auto client = Client::connect(
      {.socket_path = socket, .client_name = "shmarray-watch", .broker_uid = broker_uid});
  if (!client) return std::nullopt;
  auto array = client->open(name, Access::kReadOnly);
  if (!array) return std::nullopt;
  const std::uint64_t v = array->version();
  std::printf("%s watching '%s' at version %llu\n", now_text().c_str(), name.c_str(),
              static_cast<unsigned long long>(v));
  std::fflush(stdout);
  return VersionTracker{std::move(*array), v};
}

void print_event(const WatchEvent& e) {
  if (e.kind == WatchEvent::Kind::kCreated) {
    std::printf("%s created '%s' %s %s\n", now_text().c_str(), e.name.c_str(),
                e.info.dtype.c_str(), tuple_str(e.info.shape).c_str());
  } else {
    std::printf("%s removed '%s'\n", now_text().c_str(), e.name.c_str());
  }
  std::fflush(stdout);
}

}  // namespace

int run_watch(const std::string& socket, const std::string& prefix, double seconds,
              std::optional<uid_t> broker_uid) {
  auto watcher = Watcher::start(socket, prefix, broker_uid);
  if (!watcher) {
    std::fprintf(stderr, "shmarray watch: %s\n", watcher.error().message().c_str());
    return 1;
  }
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  std::printf("%s watching %s on %s (Ctrl-C to stop)\n", now_text().c_str(),
              prefix.empty() ? "all arrays" : ("'" + prefix + "'").c_str(), socket.c_str());
  std::fflush(stdout);
  auto tracker = track_if_array(socket, prefix, broker_uid);
  auto stream_tracker = tracker ? std::nullopt : track_if_stream(socket, prefix, broker_uid);
  const auto until = seconds > 0 ? Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                                      std::chrono::duration<double>(seconds))
                                 : Clock::time_point::max();
  while (g_stop == 0 && Clock::now() < until) {
    auto event = watcher->next(std::chrono::milliseconds(100));
    if (!event) {
      std::fprintf(stderr, "shmarray watch: %s\n", event.error().message().c_str());
      return 1;
    }
    if (event->has_value()) {
      print_event(**event);
      if ((*event)->name == prefix && (*event)->kind == WatchEvent::Kind::kCreated) {
        tracker = track_if_array(socket, prefix, broker_uid);
        if (!tracker) stream_tracker = track_if_stream(socket, prefix, broker_uid);
      }
    }
    if (tracker) tracker->tick();
    if (stream_tracker) stream_tracker->tick();
  }
  return 0;
}

}  // namespace shmarray::cli
