#pragma once
// IEEE 754 binary16 ("<f2", NumPy's float16) helpers for printing. C++23's std::float16_t is not
// available on g++ 12, so the bits are decoded by hand.
#include <cstdint>

namespace shmarray::cli {

// The exact value of a binary16 bit pattern, widened to float (every half is a float exactly).
// NaN payloads are not preserved; the sign of NaN, zero and infinity is.
[[nodiscard]] float half_to_float(std::uint16_t bits) noexcept;

// `value` rounded to the nearest binary16 value (ties to even), returned widened to double;
// +-inf past the largest half (65504). Used to test whether a decimal string round-trips.
[[nodiscard]] double round_to_half(double value) noexcept;

}  // namespace shmarray::cli
