#include "env_number.hpp"

#include <cerrno>
#include <cstdlib>

namespace shmarray::bridge {

std::optional<std::uint64_t> parse_whole_number(const char* text, std::uint64_t lo,
                                                std::uint64_t hi) noexcept {
  // Digits only: strtoull alone would take leading blanks, a sign, and "-1" as its maximum.
  if (text == nullptr || *text < '0' || *text > '9') return std::nullopt;
  char* end = nullptr;
  errno = 0;
  const unsigned long long v = std::strtoull(text, &end, 10);
  if (*end != '\0' || errno == ERANGE || v < lo || v > hi) return std::nullopt;
  return v;
}

std::uint64_t env_number(const char* name, std::uint64_t fallback, std::uint64_t lo,
                         std::uint64_t hi) noexcept {
  return parse_whole_number(std::getenv(name), lo, hi).value_or(fallback);
}

}  // namespace shmarray::bridge
