#include "float_format.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string_view>
#include <vector>

#include "half.hpp"

namespace shmarray::cli {

namespace {

// |value| = d1.d2d3... x 10^exp10, with no trailing zero digits (except for the value 0).
struct Digits {
  std::string digits;
  int exp10 = 0;
};

// The pieces NumPy pads separately: sign + integer digits, fraction digits, and "+05"-style
// exponent (empty in positional notation).
struct Pieces {
  std::string int_part;
  std::string frac_part;
  std::string exponent;
};

// Parses the magnitude of printf/to_chars scientific text ("-1.2500e+03" -> "125", 3).
Digits parse_scientific(std::string_view text) {
  Digits out;
  std::size_t i = text.starts_with('-') ? 1 : 0;
  for (; i < text.size() && text[i] != 'e'; ++i) {
    if (text[i] != '.') out.digits.push_back(text[i]);
  }
  if (i + 1 < text.size()) {
    std::string_view exp = text.substr(i + 1);
    const bool negative = exp.starts_with('-');
    if (exp.starts_with('-') || exp.starts_with('+')) exp.remove_prefix(1);
    (void)std::from_chars(exp.data(), exp.data() + exp.size(), out.exp10);
    if (negative) out.exp10 = -out.exp10;
  }
  while (out.digits.size() > 1 && out.digits.back() == '0') out.digits.pop_back();
  if (out.digits == "0") out.exp10 = 0;
  return out;
}

std::string printf_text(const char* format, int precision, double value) {
  char buffer[512];  // "%.8f" of anything below 1e300 fits; positional values stay below 1e16
  const int n = std::snprintf(buffer, sizeof buffer, format, precision, value);
  return std::string(buffer, static_cast<std::size_t>(std::clamp(n, 0, 511)));
}

// Shortest digits that read back as the same value of the element's own type.
Digits shortest_digits(double value, FloatWidth width) {
  char buffer[64];
  if (width == FloatWidth::kHalf) {
    // No shortest-repr routine knows binary16: try 1, 2, ... significant digits (at most 5 needed).
    for (int significant = 1; significant < 17; ++significant) {
      const std::string text = printf_text("%.*e", significant - 1, value);
      if (round_to_half(std::strtod(text.c_str(), nullptr)) == value) return parse_scientific(text);
    }
    return parse_scientific(printf_text("%.*e", 16, value));
  }
  const auto result =
      width == FloatWidth::kSingle
          ? std::to_chars(buffer, buffer + sizeof buffer, static_cast<float>(value),
                          std::chars_format::scientific)
          : std::to_chars(buffer, buffer + sizeof buffer, value, std::chars_format::scientific);
  return parse_scientific(std::string_view(buffer, result.ptr));
}

std::string sign_of(double value, bool force_sign) {
  if (std::signbit(value)) return "-";
  return force_sign ? "+" : "";
}

// Dragon4 positional, unique digits, at most `precision` fractional digits, trailing zeros trimmed.
// `exact_integer` is NumPy's min_digits=0 (as arrays print): digits up to the units place are
// the exact ones ("84122112." for that float32, whose shortest form is 84122110).
Pieces positional_pieces(double value, FloatWidth width, std::size_t precision, bool force_sign,
                         bool exact_integer) {
  const Digits d = shortest_digits(value, width);
  const long n = static_cast<long>(d.digits.size());
  const long fraction_digits = n - 1 - d.exp10;
  Pieces out;
  if (fraction_digits > static_cast<long>(precision) || (exact_integer && fraction_digits < 0)) {
    // Round the exact binary value at the cut (printf is exact and rounds ties to even, as
    // Dragon4 does); a value whose shortest form ends left of the units place is an integer.
    const int cut = fraction_digits < 0 ? 0 : static_cast<int>(precision);
    const std::string text = printf_text("%.*f", cut, std::fabs(value));
    const std::size_t dot = text.find('.');
    out.int_part = text.substr(0, dot);
    out.frac_part = dot == std::string::npos ? "" : text.substr(dot + 1);
  } else if (d.exp10 < 0) {
    out.int_part = "0";
    out.frac_part = std::string(static_cast<std::size_t>(-d.exp10 - 1), '0') + d.digits;
  } else if (d.exp10 >= n - 1) {
    out.int_part = d.digits + std::string(static_cast<std::size_t>(d.exp10 - (n - 1)), '0');
  } else {
    out.int_part = d.digits.substr(0, static_cast<std::size_t>(d.exp10) + 1);
    out.frac_part = d.digits.substr(static_cast<std::size_t>(d.exp10) + 1);
  }
  while (!out.frac_part.empty() && out.frac_part.back() == '0') out.frac_part.pop_back();
  out.int_part.insert(0, sign_of(value, force_sign));
  return out;
}

// Dragon4 scientific with at most `precision` mantissa fraction digits, trailing zeros trimmed:
// the unique (shortest) digits, or with `exact_digits` (NumPy's min_digits = precision, as arrays
// print) exactly `precision` digits of the exact value, rounded ("8.2740222e-13" for the float32
// whose shortest form is 8.274022e-13).
Pieces scientific_pieces(double value, FloatWidth width, std::size_t precision, bool force_sign,
                         bool exact_digits) {
  Digits d = exact_digits ? Digits{} : shortest_digits(value, width);
  if (exact_digits || d.digits.size() - 1 > precision) {
    d = parse_scientific(printf_text("%.*e", static_cast<int>(precision), value));
  }
  Pieces out;
  out.int_part = sign_of(value, force_sign) + d.digits.substr(0, 1);
  out.frac_part = d.digits.substr(1);
  const std::string exp_digits = std::to_string(std::abs(d.exp10));
  out.exponent = (d.exp10 < 0 ? "-" : "+") + std::string(exp_digits.size() < 2 ? 1 : 0, '0') +
                 exp_digits;
  return out;
}

std::string pad_left(std::string text, std::size_t width) {
  if (text.size() < width) text.insert(0, width - text.size(), ' ');
  return text;
}

}  // namespace

FloatFormat::FloatFormat(std::span<const double> values, FloatWidth width, bool force_sign,
                         std::size_t precision)
    : width_(width), force_sign_(force_sign), precision_(precision) {
  std::vector<double> finite;
  for (const double v : values) {
    if (std::isfinite(v)) finite.push_back(v);
  }
  double max_abs = 0.0;
  double min_abs = 0.0;
  for (const double v : finite) {
    if (v == 0.0) continue;
    max_abs = std::max(max_abs, std::fabs(v));
    min_abs = min_abs == 0.0 ? std::fabs(v) : std::min(min_abs, std::fabs(v));
  }
  scientific_ = max_abs != 0.0 && (max_abs >= 1.e8 || min_abs < 0.0001 || max_abs / min_abs > 1000.);
  if (!finite.empty()) {
    if (scientific_) {
      fill_scientific(finite);
    } else {
      fill_positional(finite);
    }
  }
  widen_for_non_finite(values);
}

void FloatFormat::fill_positional(std::span<const double> finite) {
  for (const double v : finite) {
    const Pieces p = positional_pieces(v, width_, precision_, force_sign_, true);
    pad_left_ = std::max(pad_left_, p.int_part.size());
    pad_right_ = std::max(pad_right_, p.frac_part.size());
  }
}

void FloatFormat::fill_scientific(std::span<const double> finite) {
  std::size_t longest_fraction = 0;
  for (const double v : finite) {
    const Pieces p = scientific_pieces(v, width_, precision_, force_sign_, false);
    pad_left_ = std::max(pad_left_, p.int_part.size());
    longest_fraction = std::max(longest_fraction, p.frac_part.size());
    exp_size_ = std::max(exp_size_, p.exponent.size() - 1);
  }
  // NumPy then prints every value with exactly that many fraction digits (zero-padded).
  precision_ = longest_fraction;
  pad_right_ = exp_size_ + 2 + precision_;
}

void FloatFormat::widen_for_non_finite(std::span<const double> values) {
  bool any_non_finite = false;
  bool negative_inf = force_sign_;
  for (const double v : values) {
    if (std::isfinite(v)) continue;
    any_non_finite = true;
    if (std::isinf(v) && v < 0) negative_inf = true;
  }
  if (!any_non_finite) return;
  // "nan" / "inf" (one longer with a sign) take the width of int part + '.' + fraction.
  const long offset = static_cast<long>(pad_right_) + 1;
  const long needed = std::max(3 - offset, 3 + (negative_inf ? 1 : 0) - offset);
  pad_left_ = static_cast<std::size_t>(std::max(static_cast<long>(pad_left_), needed));
}

std::string FloatFormat::operator()(double value) const {
  if (!std::isfinite(value)) {
    const std::string text = std::isnan(value) ? (force_sign_ ? "+nan" : "nan")
                                               : sign_of(value, force_sign_) + "inf";
    return pad_left(text, pad_left_ + pad_right_ + 1);
  }
  if (scientific_) {
    Pieces p = scientific_pieces(value, width_, precision_, force_sign_, true);
    p.frac_part.resize(precision_, '0');
    const std::string exp_digits = p.exponent.substr(1);
    return pad_left(p.int_part, pad_left_) + "." + p.frac_part + "e" + p.exponent.substr(0, 1) +
           std::string(exp_size_ - std::min(exp_size_, exp_digits.size()), '0') + exp_digits;
  }
  Pieces p = positional_pieces(value, width_, precision_, force_sign_, true);
  p.frac_part.resize(std::max(pad_right_, p.frac_part.size()), ' ');
  return pad_left(p.int_part, pad_left_) + "." + p.frac_part;
}

namespace {

// NumPy's scalar str: positional between 1e-4 and 1e16 (and for 0), else scientific; shortest
// digits. `keep_one_zero` prints "1.0" (float scalars) rather than "1" (parts of complex ones).
std::string scalar_text(double value, FloatWidth width, bool keep_one_zero, bool force_sign) {
  if (std::isnan(value)) return force_sign ? "+nan" : "nan";
  if (std::isinf(value)) return sign_of(value, force_sign) + "inf";
  const double magnitude = std::fabs(value);
  const bool positional = magnitude == 0.0 || (magnitude >= 1.e-4 && magnitude < 1.e16);
  const Pieces p = positional ? positional_pieces(value, width, 10'000, force_sign, false)
                              : scientific_pieces(value, width, 10'000, force_sign, false);
  std::string text = p.int_part;
  if (!p.frac_part.empty()) {
    text += "." + p.frac_part;
  } else if (positional && keep_one_zero) {
    text += ".0";
  }
  if (!positional) text += "e" + p.exponent;
  return text;
}

}  // namespace

std::string float_scalar_str(double value, FloatWidth width) {
  return scalar_text(value, width, true, false);
}

std::string complex_scalar_str(double real, double imag, FloatWidth width) {
  if (real == 0.0 && !std::signbit(real)) return scalar_text(imag, width, false, false) + "j";
  return "(" + scalar_text(real, width, false, false) + scalar_text(imag, width, false, true) +
         "j)";
}

}  // namespace shmarray::cli
