#include "element_format.hpp"

#include <algorithm>
#include <cstring>

#include "float_format.hpp"
#include "half.hpp"

namespace shmarray::cli {

namespace {

template <class T>
T load(const std::byte* at) {
  T value;
  std::memcpy(&value, at, sizeof value);  // shared memory: no alignment promise per element
  return value;
}

// A float of `itemsize` bytes (2, 4 or 8), widened exactly to double.
double load_float(const std::byte* at, std::size_t itemsize) {
  if (itemsize == 2) return half_to_float(load<std::uint16_t>(at));
  if (itemsize == 4) return load<float>(at);
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

}  // namespace

std::vector<std::string> format_elements(const DType& dtype, std::span<const std::byte> bytes,
                                         std::span<const std::uint64_t> offsets,
                                         std::size_t precision) {
  const std::size_t itemsize = dtype.itemsize();
  switch (dtype.kind()) {
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
  switch (dtype.kind()) {
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
