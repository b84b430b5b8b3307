#pragma once
// Mirrors across hosts (docs/across-hosts.md): what `Client::mirrors()` and `shmarray mirror ls`
// report about each configured mirror.
#include <cstdint>
#include <string>
#include <vector>

namespace shmarray {

struct MirroredArray {
  std::string name;
  std::uint64_t source_version = 0;  // newest version the source announced
  std::uint64_t mirror_version = 0;  // version whose bytes the mirror holds
  std::uint64_t lag_ms = 0;          // how long the mirror has been behind (0: in sync)
};

struct MirrorInfo {
  std::string prefix;  // names starting with this on the source appear here
  std::string peer;    // HOST:PORT of the source broker's --peer-listen
  // connecting, syncing, up, "down: <why>", "peer refused: wrong key ...", "peer refused: prefix
  // ... not allowed ...", or "configured" while the bridge has not reported yet.
  std::string link;
  std::vector<MirroredArray> arrays;
};

}  // namespace shmarray
