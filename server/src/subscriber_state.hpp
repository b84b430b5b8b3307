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

// A state page a subscriber handed back to a restarted broker (ReadmitSubscriberRequest), as
// the publisher would check it before mapping: sealed against growing and shrinking, exactly
// kStateBytes, a regular file; then reopened read-only and read with pread (never mapped). The
// words are what the page says now: the previous broker wrote the owner fields, but the
// subscriber may have rewritten any of them.
struct ReturnedState {
  UniqueFd fd;  // read-only
  dev_t dev = 0;
  ino_t ino = 0;
  std::uint32_t index = 0;
  std::uint32_t generation = 0;
  std::uint32_t pid = 0;
  std::uint32_t max_held = 0;
  std::uint64_t cursor = 0;
};
// kInvalidArgument saying what is wrong with the page.
[[nodiscard]] Result<ReturnedState> check_returned_state(int fd);
// Whether `fd` is a descriptor of the page that `state` was read from.
[[nodiscard]] bool same_page(int fd, const ReturnedState& state);

}  // namespace shmarray::server
