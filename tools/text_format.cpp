#include "text_format.hpp"

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstring>
#include <limits>

namespace shmarray::cli {
namespace {

constexpr std::int64_t kNaT = std::numeric_limits<std::int64_t>::min();

std::string hex_escape(unsigned c) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "\\x%02x", c & 0xff);
  return buf;
}

// Python's quote choice: ' unless the text holds ' and no ".
template <class C>
char quote_for(std::span<const C> text) {
  const bool single = std::find(text.begin(), text.end(), C('\'')) != text.end();
  const bool dbl = std::find(text.begin(), text.end(), C('"')) != text.end();
  return single && !dbl ? '"' : '\'';
}

std::string escape_ascii(unsigned c, char quote) {
  if (c == '\\' || c == static_cast<unsigned char>(quote)) return std::string("\\") + char(c);
  if (c == '\t') return "\\t";
  if (c == '\n') return "\\n";
  if (c == '\r') return "\\r";
  if (c < 0x20 || c == 0x7f) return hex_escape(c);
  return std::string(1, char(c));
}

void append_utf8(std::string& out, char32_t c) {
  if (c < 0x800) {
    out += char(0xc0 | (c >> 6));
  } else if (c < 0x10000) {
    out += char(0xe0 | (c >> 12));
    out += char(0x80 | ((c >> 6) & 0x3f));
  } else {
    out += char(0xf0 | (c >> 18));
    out += char(0x80 | ((c >> 12) & 0x3f));
    out += char(0x80 | ((c >> 6) & 0x3f));
  }
  out += char(0x80 | (c & 0x3f));
}

struct Unit {
  std::string_view name;
  __int128 per_day;  // 0 for Y, M (calendar units)
  int digits;        // fractional second digits
  std::size_t text;  // characters of the date/time part printed (before any fraction)
};
constexpr std::array<Unit, 13> kUnits{{
    {"Y", 0, 0, 4}, {"M", 0, 0, 7}, {"W", 1, 0, 10}, {"D", 1, 0, 10}, {"h", 24, 0, 13},
    {"m", 1440, 0, 16}, {"s", 86400, 0, 19}, {"ms", 86400'000, 3, 19},
    {"us", 86400'000'000, 6, 19}, {"ns", 86400'000'000'000, 9, 19},
    {"ps", __int128(86400'000'000'000) * 1000, 12, 19},
    {"fs", __int128(86400'000'000'000) * 1000'000, 15, 19},
    {"as", __int128(86400'000'000'000) * 1000'000'000, 18, 19},
}};

__int128 floor_div(__int128 a, __int128 b) {
  __int128 q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}

// Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
void civil_from_days(std::int64_t z, std::int64_t& y, unsigned& m, unsigned& d) {
  z += 719468;
  const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const auto doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  y = static_cast<std::int64_t>(yoe) + era * 400;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  d = doy - (153 * mp + 2) / 5 + 1;
  m = mp < 10 ? mp + 3 : mp - 9;
  y += m <= 2;
}

std::string year_str(std::int64_t y) {
  char buf[32];
  std::snprintf(buf, sizeof buf, y >= 0 ? "%04lld" : "%05lld", static_cast<long long>(y));
  return buf;
}

std::string pad_left(std::string text, std::size_t width) {
  if (text.size() < width) text.insert(0, width - text.size(), ' ');
  return text;
}

}  // namespace

std::string bytes_repr(std::span<const std::byte> bytes) {
  std::span<const unsigned char> text(reinterpret_cast<const unsigned char*>(bytes.data()),
                                      bytes.size());
  const char quote = quote_for(text);
  std::string out = "b";
  out += quote;
  for (unsigned char c : text) out += c >= 0x80 ? hex_escape(c) : escape_ascii(c, quote);
  return out + quote;
}

std::string str_repr(std::span<const char32_t> text) {
  const char quote = quote_for(text);
  std::string out(1, quote);
  for (char32_t c : text) {
    if (c < 0x80) {
      out += escape_ascii(static_cast<unsigned>(c), quote);
    } else if (c < 0xa0 || c == 0xad) {
      out += hex_escape(static_cast<unsigned>(c));
    } else if (c > 0x10ffff || (c >= 0xd800 && c < 0xe000)) {
      char buf[16];
      std::snprintf(buf, sizeof buf, c > 0xffff ? "\\U%08x" : "\\u%04x", unsigned(c));
      out += buf;
    } else {
      append_utf8(out, c);
    }
  }
  return out + quote;
}

std::string datetime_str(std::int64_t value, const std::string& unit_text) {
  if (value == kNaT) return "NaT";
  std::size_t at = 0;
  while (at < unit_text.size() && unit_text[at] >= '0' && unit_text[at] <= '9') ++at;
  const std::int64_t count = at == 0 ? 1 : std::stoll(unit_text.substr(0, at));
  const std::string_view name = std::string_view(unit_text).substr(at);
  const auto* unit = std::find_if(kUnits.begin(), kUnits.end(),
                                  [&](const Unit& u) { return u.name == name; });
  if (unit == kUnits.end()) return std::to_string(value);  // generic: no calendar meaning
  const __int128 t = __int128(value) * count;
  if (name == "Y") return year_str(static_cast<std::int64_t>(1970 + t));
  if (name == "M") {
    const auto years = static_cast<std::int64_t>(floor_div(t, 12));
    char buf[8];
    std::snprintf(buf, sizeof buf, "-%02d", static_cast<int>(t - __int128(years) * 12) + 1);
    return year_str(1970 + years) + buf;
  }
  const __int128 per_day = name == "W" ? 1 : unit->per_day;
  const __int128 days = name == "W" ? t * 7 : floor_div(t, per_day);
  const __int128 rem = name == "W" ? 0 : t - days * per_day;
  std::int64_t y;
  unsigned m, d;
  civil_from_days(static_cast<std::int64_t>(days), y, m, d);
  char buf[64];
  std::snprintf(buf, sizeof buf, "-%02u-%02u", m, d);
  std::string out = year_str(y) + buf;
  if (unit->text <= 10) return out;
  // Time of day: rem in units; scale to the unit's seconds and fraction.
  const __int128 per_second = per_day / 86400 == 0 ? 1 : per_day / 86400;
  __int128 seconds = rem, fraction = 0;
  if (name == "h") seconds = rem * 3600;
  else if (name == "m") seconds = rem * 60;
  else if (unit->digits > 0) seconds = rem / per_second, fraction = rem % per_second;
  const auto s = static_cast<unsigned>(seconds);
  std::snprintf(buf, sizeof buf, "T%02u", s / 3600);
  out += buf;
  if (name == "h") return out;
  std::snprintf(buf, sizeof buf, ":%02u", (s / 60) % 60);
  out += buf;
  if (name == "m") return out;
  std::snprintf(buf, sizeof buf, ":%02u", s % 60);
  out += buf;
  if (unit->digits == 0) return out;
  std::string digits(static_cast<std::size_t>(unit->digits), '0');
  for (std::size_t i = digits.size(); i-- > 0; fraction /= 10) digits[i] = char('0' + int(fraction % 10));
  return out + "." + digits;
}

std::vector<std::string> format_text_elements(const DType& dtype, std::span<const std::byte> bytes,
                                              std::span<const std::uint64_t> offsets) {
  std::vector<std::string> words;
  words.reserve(offsets.size());
  const std::size_t itemsize = dtype.itemsize();
  switch (dtype.kind()) {
    case 'S':
    case 'V':
      for (const std::uint64_t offset : offsets) {
        std::span<const std::byte> item = bytes.subspan(offset, itemsize);
        if (dtype.kind() == 'S') {  // NumPy strips trailing NULs from byte strings
          while (!item.empty() && item.back() == std::byte{0}) item = item.first(item.size() - 1);
        }
        words.push_back(bytes_repr(item));
      }
      return words;
    case 'U':
      for (const std::uint64_t offset : offsets) {
        std::vector<char32_t> text(itemsize / 4);
        std::memcpy(text.data(), bytes.data() + offset, itemsize);
        while (!text.empty() && text.back() == 0) text.pop_back();
        words.push_back(str_repr(text));
      }
      return words;
    default:
      break;
  }
  // Time kinds: NaT is "'NaT'", every word right-aligned to the widest (at least 5 with a NaT).
  std::size_t width = 0;
  for (const std::uint64_t offset : offsets) {
    std::int64_t v;
    std::memcpy(&v, bytes.data() + offset, sizeof v);
    if (v == kNaT) {
      words.emplace_back("'NaT'");
    } else if (dtype.kind() == 'm') {
      words.push_back(std::to_string(v));
    } else {
      words.push_back("'" + datetime_str(v, dtype.datetime_unit()) + "'");
    }
    width = std::max(width, words.back().size());
  }
  for (auto& w : words) w = pad_left(std::move(w), width);
  return words;
}

}  // namespace shmarray::cli
