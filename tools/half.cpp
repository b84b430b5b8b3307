#include "half.hpp"

#include <cmath>
#include <limits>

namespace shmarray::cli {

float half_to_float(std::uint16_t bits) noexcept {
  const bool negative = (bits & 0x8000U) != 0;
  const int exponent = (bits >> 10) & 0x1f;
  const int mantissa = bits & 0x3ff;
  float magnitude = 0.0F;
  if (exponent == 0x1f) {
    magnitude = mantissa == 0 ? std::numeric_limits<float>::infinity()
                              : std::numeric_limits<float>::quiet_NaN();
  } else if (exponent == 0) {
    magnitude = std::ldexp(static_cast<float>(mantissa), -24);  // subnormal: mantissa x 2^-24
  } else {
    magnitude = std::ldexp(static_cast<float>(mantissa | 0x400), exponent - 25);
  }
  return negative ? -magnitude : magnitude;
}

double round_to_half(double value) noexcept {
  if (!std::isfinite(value) || value == 0.0) return value;
  const double magnitude = std::fabs(value);
  // The spacing of halves near `magnitude`: 2^-24 for subnormals, 2^(e-10) in binade [2^e, 2^e+1).
  int exponent = 0;
  (void)std::frexp(magnitude, &exponent);  // magnitude = m * 2^exponent, m in [0.5, 1)
  const int binade = exponent - 1;
  const int quantum_exp = binade < -14 ? -24 : binade - 10;
  // nearbyint rounds ties to even in the default rounding mode; scaling by 2^k is exact.
  const double rounded = std::ldexp(std::nearbyint(std::ldexp(magnitude, -quantum_exp)), quantum_exp);
  const double result = rounded > 65504.0 ? std::numeric_limits<double>::infinity() : rounded;
  return std::signbit(value) ? -result : result;
}

}  // namespace shmarray::cli
