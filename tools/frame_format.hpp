#pragma once
// The first rows of a frame as pandas prints a DataFrame: column names over right-aligned
// values, the index (or 0, 1, ...) on the left, datetimes and strings without quotes,
// categorical columns as their categories. Values use NumPy's element formatting
// (element_format.hpp), so floats may differ from pandas' own rounding in the last digits.
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "shmarray/dtype.hpp"
#include "shmarray/error.hpp"

namespace shmarray::cli {

// The first `count` rows of the frame array of `dtype` and `shape` whose data is `bytes`.
// kInvalidArgument if it is not a frame or `bytes` is shorter than the dtype's itemsize.
[[nodiscard]] Result<std::string> format_frame_head(const DType& dtype,
                                                    const std::vector<std::uint64_t>& shape,
                                                    std::span<const std::byte> bytes,
                                                    std::uint64_t count);

// "t: datetime64[ns] (index)" per column, for `shmarray stat`. Empty if not a frame.
[[nodiscard]] std::vector<std::string> frame_column_lines(const DType& dtype,
                                                          const std::vector<std::uint64_t>& shape);

}  // namespace shmarray::cli
