#pragma once
// The bridge's own numeric settings from the environment (SHMARRAY_BRIDGE_*): a whole decimal
// number, digits only, within [lo, hi]; anything else is not taken (the caller's default holds).
#include <cstdint>
#include <optional>

namespace shmarray::bridge {

// `text` as a whole number in [lo, hi]; nullopt if null, empty, not only digits, or out of range.
[[nodiscard]] std::optional<std::uint64_t> parse_whole_number(const char* text, std::uint64_t lo,
                                                              std::uint64_t hi) noexcept;
// $name parsed as above, or `fallback`.
[[nodiscard]] std::uint64_t env_number(const char* name, std::uint64_t fallback, std::uint64_t lo,
                                       std::uint64_t hi) noexcept;

}  // namespace shmarray::bridge
