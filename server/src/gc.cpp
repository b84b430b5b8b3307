#include "gc.hpp"

#include <sys/mman.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <spdlog/spdlog.h>

#include "recovery.hpp"
#include "socket_dir.hpp"
#include "shmarray/socket_path.hpp"
#include "shmarray/unique_fd.hpp"

namespace shmarray::server {
namespace {

// The same lock the broker takes in Broker::take_socket: held, it means a broker is serving.
Result<UniqueFd> lock_socket(const std::string& socket_path) {
  auto lock = lock_socket_directory(socket_path);
  if (!lock && lock.error().code() == ErrorCode::kAlreadyExists) {
    return fail(ErrorCode::kAlreadyExists,
                "a shmarrayd is serving " + socket_path +
                    ": --gc only runs while no broker does (stop it first)");
  }
  return lock;
}

}  // namespace

Result<GcReport> collect_garbage(const Config& config) {
  auto lock = lock_socket(config.socket_path);
  if (!lock) return std::unexpected(lock.error());
  auto catalogue = Catalogue::open(catalogue_path_for(config.socket_path));
  if (!catalogue) return std::unexpected(catalogue.error());
  const std::string prefix = segment_prefix(config.socket_path);
  RecoveryReport scan = recover_segments(config.shm_dir, prefix, *catalogue);
  GcReport report;
  for (const auto& damage : catalogue->damaged()) {
    report.forgotten.push_back(catalogue->path() + ": slot " + std::to_string(damage.slot) + ": " +
                               damage.reason);
  }
  auto remove = [&](const std::string& shm_name, const std::string& why) {
    const std::string path = config.shm_dir + shm_name;
    if (::shm_unlink(shm_name.c_str()) != 0 && errno != ENOENT) {
      report.left_alone.push_back(path + ": cannot remove (" + std::strerror(errno) + "): " + why);
      return;
    }
    // Its record, if it has one, goes with it (the id is what follows the prefix).
    catalogue->erase(shm_name.substr(prefix.size()));
    spdlog::warn("gc: removed {}: {}", path, why);
    report.removed.push_back(path + ": " + why);
  };
  for (const auto& rejected : scan.rejected) {
    if (rejected.invalid) {
      remove(rejected.shm_name, rejected.reason);
    } else {
      report.left_alone.push_back(config.shm_dir + rejected.shm_name + ": " + rejected.reason);
    }
  }
  for (const auto& id : scan.orphans) {
    catalogue->erase(id);
    report.forgotten.push_back(catalogue->path() + ": array id " + id + ": its segment is gone");
  }
  for (const auto& found : scan.arrays) {  // fates decided by recover_segments, as at a start
    if (found.fate == Fate::kEphemeral) {
      remove(found.segment.shm_name(),
             "ephemeral array '" + found.info.name + "' whose creator is gone");
    } else if (found.fate == Fate::kDuplicate) {
      remove(found.segment.shm_name(),
             "a newer duplicate of array '" + found.info.name + "' (the oldest is kept)");
    } else if (!found.info.damaged.empty()) {
      remove(found.segment.shm_name(), found.info.damaged);
    } else {
      ++report.kept;
    }
  }
  return report;
}

int run_gc(const Config& config) {
  auto report = collect_garbage(config);
  if (!report) {
    spdlog::error("{}", report.error().message());
    return report.error().code() == ErrorCode::kAlreadyExists ? 3 : 1;
  }
  for (const auto& line : report->removed) std::printf("removed %s\n", line.c_str());
  for (const auto& line : report->left_alone) std::printf("left alone %s\n", line.c_str());
  for (const auto& line : report->forgotten) std::printf("forgot record %s\n", line.c_str());
  std::printf("gc %s: removed %zu segment(s), %zu valid array(s) kept, %zu left alone\n",
              config.socket_path.c_str(), report->removed.size(), report->kept,
              report->left_alone.size());
  return 0;
}

}  // namespace shmarray::server
