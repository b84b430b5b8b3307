#include "element_format.hpp"

#include <algorithm>
#include <cstring>
#include <limits>
#include <utility>

#include "float_format.hpp"
#include "half.hpp"
#include "text_format.hpp"

namespace shmarray::cli {

namespace {

template <class T>
T load(const std::byte* at) {
  T value;
  std::memcpy(&value, at, sizeof value);  // shared memory: no alignment promise per element
  return value;
}

// A float of `itemsize` bytes (2, 4 or 8), widened exactly to double; long double (16) is
// rounded to double.
double load_float(const std::byte* at, std::size_t itemsize) {
  if (itemsize == 2) return half_to_float(load<std::uint16_t>(at));
  if (itemsize == 4) return load<float>(at);
  if (itemsize == 16) return static_cast<double>(load<long double>(at));
  return load<double>(at);
}

FloatWidth float_width(std::size_t itemsize) {
  if (itemsize == 2) return FloatWidth::kHalf;
  return itemsize == 4 ? FloatWidth::kSingle : FloatWidth::kDouble;
}

// An integer of `itemsize` bytes, widened to T (std::int64_t or std::uint64_t).
template <class T>
T load_integer(const std::byte* at, std::size_t itemsize) {
  constexpr bool kSigned = std::is_signed_v<T>;
  switch (itemsize) {
    case 1: return kSigned ? T(load<std::int8_t>(at)) : T(load<std::uint8_t>(at));
    case 2: return kSigned ? T(load<std::int16_t>(at)) : T(load<std::uint16_t>(at));
    case 4: return kSigned ? T(load<std::int32_t>(at)) : T(load<std::uint32_t>(at));
    default: return load<T>(at);
  }
}

std::string pad_left(std::string text, std::size_t width) {
  if (text.size() < width) text.insert(0, width - text.size(), ' ');
  return text;
}

template <class T>
std::vector<std::string> format_integers(std::span<const std::byte> bytes,
                                         std::span<const std::uint64_t> offsets,
                                         std::size_t itemsize) {
  std::vector<std::string> words;
  words.reserve(offsets.size());
  std::size_t width = 0;
  for (const std::uint64_t offset : offsets) {
    words.push_back(std::to_string(load_integer<T>(bytes.data() + offset, itemsize)));
    width = std::max(width, words.back().size());
  }
  for (auto& word : words) word = pad_left(std::move(word), width);
  return words;
}

std::vector<std::string> format_floats(std::span<const std::byte> bytes,
                                       std::span<const std::uint64_t> offsets,
                                       std::size_t itemsize, std::size_t precision) {
  std::vector<double> values;
  values.reserve(offsets.size());
  for (const std::uint64_t offset : offsets) {
    values.push_back(load_float(bytes.data() + offset, itemsize));
  }
  const FloatFormat format(values, float_width(itemsize), false, precision);
  std::vector<std::string> words;
  words.reserve(values.size());
  for (const double v : values) words.push_back(format(v));
  return words;
}

std::vector<std::string> format_complex(std::span<const std::byte> bytes,
                                        std::span<const std::uint64_t> offsets,
                                        std::size_t itemsize, std::size_t precision) {
  const std::size_t part = itemsize / 2;
  std::vector<double> reals;
  std::vector<double> imags;
  for (const std::uint64_t offset : offsets) {
    reals.push_back(load_float(bytes.data() + offset, part));
    imags.push_back(load_float(bytes.data() + offset + part, part));
  }
  const FloatFormat real_format(reals, float_width(part), false, precision);
  const FloatFormat imag_format(imags, float_width(part), true, precision);
  std::vector<std::string> words;
  words.reserve(reals.size());
  for (std::size_t i = 0; i < reals.size(); ++i) {
    const std::string imag = imag_format(imags[i]);
    // NumPy puts the 'j' before the padding of the imaginary part ("1.+2.j", "1.+nanj ").
    const std::size_t end = imag.find_last_not_of(' ') + 1;
    words.push_back(real_format(reals[i]) + imag.substr(0, end) + "j" + imag.substr(end));
  }
  return words;
}

// str() of a numpy.timedelta64 scalar: "125 seconds" for 5 of unit "25s".
std::string timedelta_scalar_str(std::int64_t v, const std::string& unit) {
  static constexpr std::pair<std::string_view, std::string_view> kNames[] = {
      {"Y", "years"}, {"M", "months"}, {"W", "weeks"}, {"D", "days"}, {"h", "hours"},
      {"m", "minutes"}, {"s", "seconds"}, {"ms", "milliseconds"}, {"us", "microseconds"},
      {"ns", "nanoseconds"}, {"ps", "picoseconds"}, {"fs", "femtoseconds"},
      {"as", "attoseconds"}};
  std::size_t at = 0;
  while (at < unit.size() && unit[at] >= '0' && unit[at] <= '9') ++at;
  const std::int64_t count = at == 0 ? 1 : std::stoll(unit.substr(0, at));
  for (const auto& [name, words] : kNames) {
    if (name == std::string_view(unit).substr(at)) {
      return std::to_string(v * count) + " " + std::string(words);
    }
  }
  return std::to_string(v) + " generic time units";
}

// The elements at `offsets` byte-swapped into a copy of `bytes` (each part of `unit` bytes), and
// the native-order dtype that reads them.
std::pair<std::vector<std::byte>, DType> to_native(const DType& dtype,
                                                   std::span<const std::byte> bytes,
                                                   std::span<const std::uint64_t> offsets) {
  std::vector<std::byte> copy(bytes.begin(), bytes.end());
  const std::size_t unit = dtype.kind() == 'c' ? dtype.itemsize() / 2
                           : dtype.kind() == 'U' ? 4
                                                 : dtype.itemsize();
  for (const std::uint64_t offset : offsets) {
    for (std::size_t part = 0; part < dtype.itemsize(); part += unit) {
      std::reverse(copy.begin() + static_cast<std::ptrdiff_t>(offset + part),
                   copy.begin() + static_cast<std::ptrdiff_t>(offset + part + unit));
    }
  }
  return {std::move(copy), DType::parse("<" + dtype.str().substr(1)).value()};
}

// "[a, b, c]" (nested per dimension) of the words of one sub-array field, as NumPy's
// SubArrayFormat prints it.
std::string subarray_text(std::span<const std::string> words, std::span<const std::uint64_t> shape) {
  if (shape.empty()) return words.front();
  std::string out = "[";
  const std::size_t step = words.size() / std::max<std::uint64_t>(shape[0], 1);
  for (std::uint64_t i = 0; i < shape[0]; ++i) {
    if (i > 0) out += ", ";
    out += subarray_text(words.subspan(i * step, step), shape.subspan(1));
  }
  return out + "]";
}

// Records as NumPy's StructuredVoidFormat prints them: "(1, 2.5)", "(1,)" for one field; each
// field formatted across all the records shown, sub-array fields as "[a, b]".
std::vector<std::string> format_records(const DType& dtype, std::span<const std::byte> bytes,
                                        std::span<const std::uint64_t> offsets,
                                        std::size_t precision) {
  std::vector<std::vector<std::string>> parts(offsets.size());
  for (const DTypeField& field : dtype.fields()) {
    std::uint64_t count = 1;
    for (std::uint64_t d : field.shape) count *= d;
    std::vector<std::uint64_t> at;
    at.reserve(offsets.size() * count);
    for (const std::uint64_t offset : offsets) {
      for (std::uint64_t i = 0; i < count; ++i) {
        at.push_back(offset + field.offset + i * field.dtype.itemsize());
      }
    }
    const auto words = format_elements(field.dtype, bytes, at, precision);
    for (std::size_t r = 0; r < offsets.size(); ++r) {
      const std::span<const std::string> mine(words.data() + r * count, count);
      parts[r].push_back(field.shape.empty() ? mine.front() : subarray_text(mine, field.shape));
    }
  }
  std::vector<std::string> words;
  words.reserve(offsets.size());
  for (const auto& fields : parts) {
    std::string word = "(";
    for (std::size_t i = 0; i < fields.size(); ++i) word += (i ? ", " : "") + fields[i];
    words.push_back(word + (fields.size() == 1 ? ",)" : ")"));
  }
  return words;
}

}  // namespace

std::vector<std::string> format_elements(const DType& dtype, std::span<const std::byte> bytes,
                                         std::span<const std::uint64_t> offsets,
                                         std::size_t precision) {
  if (dtype.is_structured()) return format_records(dtype, bytes, offsets, precision);
  if (dtype.byteorder() == '>') {
    const auto [copy, native] = to_native(dtype, bytes, offsets);
    return format_elements(native, copy, offsets, precision);
  }
  const std::size_t itemsize = dtype.itemsize();
  switch (dtype.kind()) {
    case 'S': case 'U': case 'V': case 'M': case 'm':
      return format_text_elements(dtype, bytes, offsets);
    case 'b': {
      // NumPy pads True to the width of False, so columns line up.
      std::vector<std::string> words;
      words.reserve(offsets.size());
      for (const std::uint64_t offset : offsets) {
        words.emplace_back(load<std::uint8_t>(bytes.data() + offset) != 0 ? " True" : "False");
      }
      return words;
    }
    case 'i': return format_integers<std::int64_t>(bytes, offsets, itemsize);
    case 'u': return format_integers<std::uint64_t>(bytes, offsets, itemsize);
    case 'c': return format_complex(bytes, offsets, itemsize, precision);
    default: return format_floats(bytes, offsets, itemsize, precision);
  }
}

std::string format_scalar(const DType& dtype, std::span<const std::byte> bytes) {
  const std::size_t itemsize = dtype.itemsize();
  const std::uint64_t first[] = {0};
  if (dtype.is_structured()) return format_records(dtype, bytes, first, 8).front();
  if (dtype.byteorder() == '>') {
    const auto [copy, native] = to_native(dtype, bytes.first(itemsize), first);
    return format_scalar(native, copy);
  }
  switch (dtype.kind()) {
    case 'S': case 'U': case 'V': return format_text_elements(dtype, bytes, first).front();
    case 'M': {
      std::int64_t v;
      std::memcpy(&v, bytes.data(), sizeof v);
      return datetime_str(v, dtype.datetime_unit());
    }
    case 'm': {
      std::int64_t v;
      std::memcpy(&v, bytes.data(), sizeof v);
      return v == std::numeric_limits<std::int64_t>::min() ? "NaT" : timedelta_scalar_str(v, dtype.datetime_unit());
    }
    case 'b': return load<std::uint8_t>(bytes.data()) != 0 ? "True" : "False";
    case 'i': return std::to_string(load_integer<std::int64_t>(bytes.data(), itemsize));
    case 'u': return std::to_string(load_integer<std::uint64_t>(bytes.data(), itemsize));
    case 'c': {
      const std::size_t part = itemsize / 2;
      return complex_scalar_str(load_float(bytes.data(), part),
                                load_float(bytes.data() + part, part), float_width(part));
    }
    default: return float_scalar_str(load_float(bytes.data(), itemsize), float_width(itemsize));
  }
}

}  // namespace shmarray::cli
