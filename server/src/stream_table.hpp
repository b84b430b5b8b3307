#pragma once
// The broker's live record of each stream (docs/streams.md): who publishes, who subscribes, and
// the membership generation it last wrote into the stream's control block. Kept in the broker's
// memory only: after a restart a stream starts with no known subscribers (those still attached
// keep their mappings; the publisher keeps gating on them, see Publisher) and its publisher is
// "adopted" by pid, read from the segment, until it reconnects or dies.
#include <sys/types.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "registry.hpp"
#include "shmarray/unique_fd.hpp"

namespace shmarray::server {

struct StreamSubscriber {
  std::uint32_t index = 0;
  std::uint32_t generation = 0;
  SessionId session = 0;
  pid_t pid = 0;
  std::uint32_t max_held = 0;
  UniqueFd state;  // the sealed memfd of its SubscriberState page (read-write)
};

struct StreamRuntime {
  std::string name;
  SessionId publisher = 0;     // connection of the publisher; 0 when none is connected
  pid_t publisher_pid = 0;     // of that connection, or of the adopted publisher
  bool publisher_adopted = false;  // pid read from the segment after a restart, no connection
  std::uint32_t members = 0;   // the generation last written into StreamControl::members
  std::uint32_t next_generation = 1;
  std::vector<std::optional<StreamSubscriber>> subscribers;  // max_subscribers entries

  [[nodiscard]] StreamSubscriber* find(std::uint32_t index, std::uint32_t generation);
  // Sum of max_held over the subscribers (admission control for kDropOldest).
  [[nodiscard]] std::uint64_t total_held() const;
};

class StreamTable {
 public:
  // The runtime of stream `id`, or nullptr.
  [[nodiscard]] StreamRuntime* find(const std::string& id);
  // Adds one (precondition: absent).
  StreamRuntime& insert(const std::string& id, StreamRuntime runtime);
  void erase(const std::string& id) { by_id_.erase(id); }
  // Every stream's id, for walking the table while changing it.
  [[nodiscard]] std::vector<std::string> ids() const;

 private:
  std::map<std::string, StreamRuntime> by_id_;
};

}  // namespace shmarray::server
