#include "spin_policy.hpp"

#include "env_number.hpp"

#include <sched.h>

#include <algorithm>
#include <cstdlib>
#include <string>

namespace shmarray::bridge {
namespace {

unsigned cpus_of_this_process() noexcept {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (::sched_getaffinity(0, sizeof set, &set) != 0) return 1;  // unknown: the cautious default
  return static_cast<unsigned>(CPU_COUNT(&set));
}

const char* spin_env() noexcept { return std::getenv("SHMARRAY_BRIDGE_SPIN_US"); }
const char* transfer_spin_env() noexcept {
  return std::getenv("SHMARRAY_BRIDGE_TRANSFER_SPIN_US");
}

// "; NAME='text' ignored: ..." for a set but invalid variable, else "".
std::string ignored(const char* name, const char* env) {
  if (env == nullptr || *env == '\0' || parse_spin_us(env)) return {};
  return "; " + std::string(name) + "='" + env + "' ignored: not a whole number of microseconds " +
         "from 0 to " + std::to_string(kMaxSpin.count());
}

}  // namespace

std::chrono::nanoseconds default_spin_for(unsigned cpus) noexcept {
  return cpus >= kMinCpusToSpin ? std::chrono::nanoseconds(kSpinWithIdleCores)
                                : std::chrono::nanoseconds(0);
}

std::optional<std::chrono::nanoseconds> parse_spin_us(const char* text) noexcept {
  const auto us = parse_whole_number(text, 0, static_cast<std::uint64_t>(kMaxSpin.count()));
  if (!us) return std::nullopt;
  return std::chrono::microseconds(*us);
}

std::chrono::nanoseconds spin_after_activity() noexcept {
  static const std::chrono::nanoseconds spin =
      parse_spin_us(spin_env()).value_or(default_spin_for(cpus_of_this_process()));
  return spin;
}

std::chrono::nanoseconds transfer_spin_for(std::chrono::nanoseconds after_activity,
                                           const char* text) noexcept {
  return std::max(after_activity,
                  parse_spin_us(text).value_or(std::chrono::nanoseconds(kTransferSpin)));
}

std::chrono::nanoseconds transfer_spin() noexcept {
  static const std::chrono::nanoseconds spin =
      transfer_spin_for(spin_after_activity(), transfer_spin_env());
  return spin;
}

std::string describe_spin() {
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(spin_after_activity());
  const char* env = spin_env();
  std::string text = us.count() == 0 ? std::string("bridge threads sleep at once when idle")
                                     : "bridge threads poll " + std::to_string(us.count()) +
                                           " us after activity before they sleep";
  if (parse_spin_us(env)) {
    text += " (SHMARRAY_BRIDGE_SPIN_US)";
  } else {
    text += " (" + std::to_string(cpus_of_this_process()) + " CPUs; the default polls " +
            std::to_string(kSpinWithIdleCores.count()) + " us from " +
            std::to_string(kMinCpusToSpin) + " CPUs; SHMARRAY_BRIDGE_SPIN_US sets it)" +
            ignored("SHMARRAY_BRIDGE_SPIN_US", env);
  }
  const auto mid = std::chrono::duration_cast<std::chrono::microseconds>(transfer_spin());
  const char* tenv = transfer_spin_env();
  text += "; mid-transfer they poll " + std::to_string(mid.count()) + " us" +
          (parse_spin_us(tenv) ? std::string(" (SHMARRAY_BRIDGE_TRANSFER_SPIN_US)")
                               : " (SHMARRAY_BRIDGE_TRANSFER_SPIN_US sets it)" +
                                     ignored("SHMARRAY_BRIDGE_TRANSFER_SPIN_US", tenv));
  return text;
}

}  // namespace shmarray::bridge
