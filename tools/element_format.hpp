#pragma once
// Element text for each NumPy kind (bool, signed/unsigned integer, float, complex), with the
// common width NumPy gives all elements of one printed array.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "shmarray/dtype.hpp"

namespace shmarray::cli {

// Formats the elements at `offsets` (byte offsets into `bytes`, which the caller has checked:
// each offset + itemsize lies inside `bytes`) as NumPy formats the elements of an array that
// shows exactly these elements: integers right-aligned to the widest, bools as " True"/"False",
// floats per FloatFormat, complex as "1.+2.j". Returned in the order of `offsets`.
[[nodiscard]] std::vector<std::string> format_elements(const DType& dtype,
                                                       std::span<const std::byte> bytes,
                                                       std::span<const std::uint64_t> offsets,
                                                       std::size_t precision);

// str() of the single element at the start of `bytes` as a NumPy scalar (how print() shows a
// 0-d array): "True", "5", "1.0", "(1+2j)". `bytes` holds at least dtype.itemsize() bytes.
[[nodiscard]] std::string format_scalar(const DType& dtype, std::span<const std::byte> bytes);

}  // namespace shmarray::cli
