#pragma once
// What the mirror side of each link knows, shared between its link thread and the reporter that
// tells the broker (MirrorRequest kReport), so that `shmarray mirror ls` and `stat` show it
// without the broker mapping anything.
#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace shmarray::bridge {

struct MirroredArrayStatus {
  std::uint64_t source_version = 0;  // newest version the source announced
  std::uint64_t mirror_version = 0;  // version whose bytes the mirror holds
  std::chrono::steady_clock::time_point behind_since{};  // when it fell behind (if it is)
};

struct MirrorLinkStatus {
  std::string prefix;
  std::string peer;
  std::string link = "connecting";  // connecting, syncing, up, down: <why>, peer refused: <why>
  std::map<std::string, MirroredArrayStatus> arrays;
};

class MirrorStatusBoard {
 public:
  void set_link(const std::string& prefix, const std::string& peer, std::string link);
  void set_array(const std::string& prefix, const std::string& name, MirroredArrayStatus status);
  void erase_array(const std::string& prefix, const std::string& name);
  // A copy of everything, and whether anything changed since the last snapshot.
  [[nodiscard]] std::vector<MirrorLinkStatus> snapshot(bool* changed);

 private:
  std::mutex mutex_;
  std::map<std::string, MirrorLinkStatus> links_;  // by prefix
  bool changed_ = true;
};

}  // namespace shmarray::bridge
