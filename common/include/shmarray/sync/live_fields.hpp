#pragma once
// Initialisation of a segment's LiveFields (segment_layout.hpp), done once by the broker.
#include "shmarray/error.hpp"
#include "shmarray/segment_layout.hpp"

namespace shmarray {

// Initialises `live` in a segment no other process can see yet: version, write_seq, wake_word,
// waiters and flags to 0, and `write_lock` as a process-shared, robust, error-checking mutex
// (error-checking: a thread that locks twice gets an error instead of deadlocking, and an unlock
// by a non-owner — e.g. a forked child's copy of a WriteLock — is refused instead of corrupting
// the lock). Never call it on a segment in use: it would reset a lock that someone may hold.
// Errors: kResourceExhausted (ENOMEM/EAGAIN from pthread) or kInternal.
[[nodiscard]] Result<void> init_live_fields(LiveFields& live);

}  // namespace shmarray
