#pragma once
// Array text the way NumPy's print(arr) shows it (numpy.array2string with the default options):
// nested brackets, one row per line with a one-space hanging indent per level, blank lines
// between blocks of 3-d and higher arrays, rows wrapped at 75 columns, and "..." in place of the
// middle of every axis longer than 2 x edgeitems once the array has more than `threshold`
// elements. Elements are formatted by element_format.hpp (common width, NumPy float rules).
//
// All functions are pure (no I/O) and never read outside `ArrayView::bytes`.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "shmarray/dtype.hpp"
#include "shmarray/error.hpp"

namespace shmarray::cli {

// NumPy's print options that matter here, with NumPy's defaults.
struct PrintOptions {
  std::size_t threshold = 1000;  // summarise when the element count is larger
  std::size_t edgeitems = 3;     // elements shown at each end of a summarised axis
  std::size_t linewidth = 75;    // wrap rows longer than this
  std::size_t precision = 8;     // most fractional digits of a float
};

// Elements of one array: element (i, j, ...) starts at byte i*strides[0] + j*strides[1] + ...
// of `bytes` (strides may be any sign; Fortran order is just another set of strides).
struct ArrayView {
  DType dtype;
  std::vector<std::uint64_t> shape;
  std::vector<std::int64_t> strides;
  std::span<const std::byte> bytes;
};

// The whole array as print(arr) shows it, without a trailing newline: "[[0. 1.]\n [2. 3.]]";
// "[]" when it has no elements; a 0-d array prints its single value as a NumPy scalar ("1.5").
// kInvalidArgument if shape and strides differ in length or an element would lie outside bytes.
[[nodiscard]] Result<std::string> format_array(const ArrayView& view,
                                               const PrintOptions& options = {});

// The first `count` elements in C (row-major) order as a 1-d array, as print(arr.ravel()[:count])
// shows it (fewer when the array is smaller). Errors as format_array.
[[nodiscard]] Result<std::string> format_head(const ArrayView& view, std::uint64_t count,
                                              const PrintOptions& options = {});

}  // namespace shmarray::cli
