#pragma once
// Floating-point text the way NumPy prints it (numpy/core/arrayprint.py, FloatingFormat, with the
// default print options: precision 8, floatmode "maxprec", suppress False, sign "-").
//
// Digits come from the shortest decimal that round-trips in the element's own type (so a float32
// 0.1 prints "0.1", not "0.10000000149"), cut to `precision` fractional digits when longer, with
// the cut correctly rounded from the exact binary value (ties to even) as NumPy's Dragon4 does.
// As in NumPy's array printer (Dragon4 with min_digits), digits beyond the shortest form are the
// exact value's: the integer part in fixed notation ("84122112." for that float32), and every
// mantissa digit up to the common count in scientific notation ("8.2740222e-13").
#include <cstddef>
#include <span>
#include <string>

namespace shmarray::cli {

// The binary format the values came from; decides which decimal is "shortest".
enum class FloatWidth { kHalf, kSingle, kDouble };

inline constexpr std::size_t kDefaultPrecision = 8;

// Formats the elements of one float array so that they line up: one instance is built from all
// the values that will be printed (NumPy decides fixed vs. scientific notation and the padding
// from them), then called per value. Every result for finite values has the same width.
class FloatFormat {
 public:
  // `force_sign` prints "+" for non-negative values (NumPy's sign="+", used for imaginary parts).
  FloatFormat(std::span<const double> values, FloatWidth width, bool force_sign = false,
              std::size_t precision = kDefaultPrecision);

  [[nodiscard]] std::string operator()(double value) const;

 private:
  void fill_positional(std::span<const double> finite);
  void fill_scientific(std::span<const double> finite);
  void widen_for_non_finite(std::span<const double> values);

  FloatWidth width_;
  bool force_sign_;
  std::size_t precision_;
  bool scientific_ = false;
  std::size_t pad_left_ = 0;
  std::size_t pad_right_ = 0;
  std::size_t exp_size_ = 0;
};

// str() of a NumPy float scalar, as print() shows a 0-d array: "1.0", "0.1", "1e+16", "nan".
[[nodiscard]] std::string float_scalar_str(double value, FloatWidth width);
// str() of a NumPy complex scalar: "(1+2j)", "2j", "(nan+infj)".
[[nodiscard]] std::string complex_scalar_str(double real, double imag, FloatWidth width);

}  // namespace shmarray::cli
