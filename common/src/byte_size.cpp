#include "shmarray/byte_size.hpp"

#include <cctype>
#include <limits>
#include <string>

namespace shmarray {

namespace {

// 128 bits hold any 64-bit count times any unit, so overflow is checked after the arithmetic.
__extension__ using Wide = unsigned __int128;

std::unexpected<Error> bad_size(std::string_view text, std::string_view why) {
  return fail(ErrorCode::kInvalidArgument,
              "bad size '" + std::string(text) + "': " + std::string(why) +
                  " (write bytes, or a number with a unit K, M, G or T, 1024-based: 4096, 64K, "
                  "512M, 1G, 1.5GiB)");
}

bool equals_ignoring_case(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

// The multiplier of a unit suffix; 0 when the suffix is not one.
Wide unit_of(std::string_view suffix) {
  if (suffix.empty() || equals_ignoring_case(suffix, "B")) return 1;
  constexpr std::string_view kLetters = "KMGT";
  Wide unit = 1;
  for (const char letter : kLetters) {
    unit *= 1024;
    const std::string one(1, letter);
    if (equals_ignoring_case(suffix, one) || equals_ignoring_case(suffix, one + "iB")) return unit;
  }
  return 0;
}

}  // namespace

Result<std::uint64_t> parse_byte_size(std::string_view text) {
  std::size_t i = 0;
  Wide whole = 0;
  constexpr Wide kMax = std::numeric_limits<std::uint64_t>::max();
  const auto digit = [&](std::size_t at) {
    return at < text.size() && std::isdigit(static_cast<unsigned char>(text[at])) != 0;
  };
  if (!digit(0)) return bad_size(text, "it does not start with a digit");
  for (; digit(i); ++i) {
    whole = whole * 10 + static_cast<unsigned>(text[i] - '0');
    if (whole > kMax) return bad_size(text, "more than 2^64-1 bytes");
  }
  Wide fraction = 0;
  Wide scale = 1;
  if (i < text.size() && text[i] == '.') {
    ++i;
    if (!digit(i)) return bad_size(text, "no digit after the decimal point");
    for (; digit(i); ++i) {
      if (scale < 1'000'000'000'000'000'000ULL) {  // digits past 10^-18 cannot change the bytes
        fraction = fraction * 10 + static_cast<unsigned>(text[i] - '0');
        scale *= 10;
      }
    }
  }
  const Wide unit = unit_of(text.substr(i));
  if (unit == 0) {
    return bad_size(text, "unknown unit '" + std::string(text.substr(i)) + "'");
  }
  const Wide bytes = whole * unit + fraction * unit / scale;
  if (whole > kMax / unit || bytes > kMax) return bad_size(text, "more than 2^64-1 bytes");
  return static_cast<std::uint64_t>(bytes);
}

}  // namespace shmarray
