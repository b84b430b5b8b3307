#pragma once
// The broker's live record of each stream (docs/streams.md): who publishes, who subscribes, and
// the membership generation it last wrote into the stream's control block. Kept in the broker's
// memory only: after a restart a stream starts with no known subscribers (those still attached
// keep their mappings and hand their state pages back at their next take(): re-admission) and
// its publisher is "adopted" by pid, read from the segment, until it reconnects or dies.
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
  // The sealed memfd of its SubscriberState page: read-write when this broker made it at
  // subscribe, read-only when the subscriber handed it back after a restart (re-admission).
  UniqueFd state;
};

struct StreamRuntime {
  std::string name;
  SessionId publisher = 0;     // connection of the publisher; 0 when none is connected
  pid_t publisher_pid = 0;     // of that connection, or of the adopted publisher
  bool publisher_adopted = false;  // pid read from the segment after a restart, no connection
  std::uint32_t members = 0;   // the generation last written into StreamControl::members
  // Generations are handed out as `members` is bumped (each subscribe adds 1 to both), so every
  // generation ever given out is <= `members` at any later time. A broker starts both from the
  // segment's `members`: its new subscribers never reuse an earlier broker's (index,
  // generation), and a re-admission claiming a generation above `members_at_start` is forged.
  std::uint32_t next_generation = 1;
  std::uint32_t members_at_start = 0;
  std::vector<std::optional<StreamSubscriber>> subscribers;  // max_subscribers entries

  [[nodiscard]] StreamSubscriber* find(std::uint32_t index, std::uint32_t generation);
  // Sum of max_held over the subscribers (admission control for kDropOldest).
  [[nodiscard]] std::uint64_t total_held() const;
  // Slots the ring needs with one more subscriber holding `max_held` (admission: kDropOldest
  // needs room for every held sample, the history and the loan; kBlock, per subscriber, for
  // its held samples and the loan).
  [[nodiscard]] std::uint64_t slots_needed(const StreamStatus& params,
                                           std::uint32_t max_held) const;
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
