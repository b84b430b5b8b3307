#pragma once
// WriteLock (the class is public: shmarray/write_lock.hpp) and what only the library needs beside
// it. The lock's design is described there.
#include "shmarray/segment_layout.hpp"
#include "shmarray/write_lock.hpp"

namespace shmarray {

// True from the moment a write was abandoned (a WriteLock acquisition found the previous owner
// dead, or abandon_write) until the next publish(). Acquire load; read-only mappings may call it.
[[nodiscard]] bool possibly_torn(const LiveFields& live) noexcept;

}  // namespace shmarray
