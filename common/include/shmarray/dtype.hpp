#pragma once
// Element types as NumPy typestrs. We support little-endian (this host's order) numbers only:
// <f2 <f4 <f8, <i1..<i8, <u1..<u8, |b1, <c8 <c16. Plain names (float64, uint8, bool, ...) and
// the order-less forms NumPy accepts ("f8", "=i4", "|u1", "<u1") are normalised to the canonical
// typestr ('|' for one-byte types, '<' otherwise), which is what NumPy's __array_interface__ uses.
#include <complex>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "shmarray/error.hpp"

namespace shmarray {

class DType {
 public:
  // Parses a typestr or plain name. kInvalidArgument with the accepted list on failure.
  [[nodiscard]] static Result<DType> parse(std::string_view text);

  [[nodiscard]] char kind() const noexcept { return kind_; }  // 'f','i','u','b','c'
  [[nodiscard]] std::size_t itemsize() const noexcept { return itemsize_; }
  [[nodiscard]] std::string str() const;  // canonical typestr, e.g. "<f8", "|u1"
  [[nodiscard]] std::string_view name() const noexcept;  // NumPy name, e.g. "float64"

  friend bool operator==(const DType&, const DType&) = default;

 private:
  DType(char kind, std::size_t itemsize) : kind_(kind), itemsize_(itemsize) {}
  char kind_;
  std::size_t itemsize_;
};

// The canonical typestr of a C++ element type, used by Array::as<T>() to check access.
template <class T>
struct dtype_of;
template <> struct dtype_of<float> { static constexpr std::string_view value = "<f4"; };
template <> struct dtype_of<double> { static constexpr std::string_view value = "<f8"; };
template <> struct dtype_of<std::int8_t> { static constexpr std::string_view value = "|i1"; };
template <> struct dtype_of<std::int16_t> { static constexpr std::string_view value = "<i2"; };
template <> struct dtype_of<std::int32_t> { static constexpr std::string_view value = "<i4"; };
template <> struct dtype_of<std::int64_t> { static constexpr std::string_view value = "<i8"; };
template <> struct dtype_of<std::uint8_t> { static constexpr std::string_view value = "|u1"; };
template <> struct dtype_of<std::uint16_t> { static constexpr std::string_view value = "<u2"; };
template <> struct dtype_of<std::uint32_t> { static constexpr std::string_view value = "<u4"; };
template <> struct dtype_of<std::uint64_t> { static constexpr std::string_view value = "<u8"; };
template <> struct dtype_of<bool> { static constexpr std::string_view value = "|b1"; };
template <> struct dtype_of<std::complex<float>> { static constexpr std::string_view value = "<c8"; };
template <> struct dtype_of<std::complex<double>> { static constexpr std::string_view value = "<c16"; };
template <class T> struct dtype_of<const T> : dtype_of<T> {};

}  // namespace shmarray
