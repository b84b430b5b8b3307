#pragma once
// A subscriber's state page (stream_layout.hpp SubscriberState) as the broker makes and reads it:
// an anonymous memfd of kStateBytes, sealed against growing and shrinking, written and read with
// pwrite/pread only (the broker never maps it).
#include <sys/types.h>

#include <cstdint>

#include "shmarray/error.hpp"
#include "shmarray/stream_types.hpp"
#include "shmarray/unique_fd.hpp"

namespace shmarray::server {

struct NewSubscriberState {
  std::uint32_t index = 0;
  std::uint32_t generation = 0;
  pid_t pid = 0;
  std::uint32_t max_held = 0;
};

// A new sealed state page with its owner fields written and cursor 0. kResourceExhausted when
// memory or descriptors run out.
[[nodiscard]] Result<UniqueFd> create_subscriber_state(const NewSubscriberState& fields);
// Writes the cursor (the first sequence number the subscriber takes).
[[nodiscard]] Result<void> write_subscriber_cursor(int fd, std::uint64_t cursor);
// A read-only descriptor of the same page (reopened through /proc/self/fd).
[[nodiscard]] Result<UniqueFd> reopen_read_only(int fd);
// What the page says now (values are the subscriber's to write: shown, never trusted).
[[nodiscard]] SubscriberStatus read_subscriber_status(int fd, std::uint32_t max_held);

}  // namespace shmarray::server
