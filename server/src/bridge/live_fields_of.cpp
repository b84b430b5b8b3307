#include "live_fields_of.hpp"

#include "shmarray/sync/seqlock.hpp"
#include "shmarray/sync/version.hpp"

namespace shmarray::bridge {

void publish_version(LiveFields& live, std::uint64_t version) noexcept {
  live.flags.fetch_and(~kFlagPossiblyTorn, std::memory_order_relaxed);
  live.version.store(version, std::memory_order_release);
  end_write(live);
  detail::wake_waiters(live);
}

}  // namespace shmarray::bridge
