#pragma once
// Initialisation of a segment's LiveFields (segment_layout.hpp), done once by the broker.
#include "shmarray/error.hpp"
#include "shmarray/segment_layout.hpp"

namespace shmarray {

// Initialises `live` in a segment no other process can see yet: every field zero (version 0,
// seqlock even, write lock free). A zero-filled page is already a valid set of live fields, so a
// broker that writes the header page with pwrite only needs zeros there. Never call it on a segment
// in use: it would free a lock that someone may hold. Never fails today; the Result keeps callers
// ready for fields that need more than zeros.
[[nodiscard]] Result<void> init_live_fields(LiveFields& live);

}  // namespace shmarray
