#include "spin_policy.hpp"

#include <cstdlib>

namespace shmarray::bridge {

std::chrono::nanoseconds spin_after_activity() noexcept {
  static const std::chrono::nanoseconds spin = [] {
    const char* env = std::getenv("SHMARRAY_BRIDGE_SPIN_US");
    if (env == nullptr || *env == '\0') return std::chrono::nanoseconds(kDefaultSpinAfterActivity);
    char* end = nullptr;
    const long long us = std::strtoll(env, &end, 10);
    if (*end != '\0' || us < 0 || us > 10'000) {
      return std::chrono::nanoseconds(kDefaultSpinAfterActivity);  // not a sane number of µs
    }
    return std::chrono::nanoseconds(std::chrono::microseconds(us));
  }();
  return spin;
}

}  // namespace shmarray::bridge
