#pragma once
// The layout of a frame: a named group of equal-length columns in one segment (issue 14).
//
// A frame is an array like any other (one name, permission, version counter, write lock and
// seqlock) whose dtype describes the table, so the broker validates it and keeps it in its
// catalogue: a 0-d array of a structured dtype whose fields are
//   __frame__                 |u1(0) at 0: the marker that makes it a frame
//   <column>                  <dtype>(rows), at a page-aligned offset (4096), in column order
//   __index__:<column>        the same, for the column that is the table's index
//   __categories__:<column>   the categories of a categorical column (which holds the codes)
// Python's create_frame and C++'s Client::create_frame make the same layout.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "shmarray/dtype.hpp"
#include "shmarray/error.hpp"

namespace shmarray {

inline constexpr std::string_view kFrameMarkerField = "__frame__";
inline constexpr std::string_view kFrameIndexPrefix = "__index__:";
inline constexpr std::string_view kFrameCategoriesPrefix = "__categories__:";
inline constexpr std::uint64_t kFrameColumnAlignment = 4096;

// A column to create: its name and dtype (anything DType::parse accepts; not structured).
struct FrameColumn {
  std::string name;
  std::string dtype;
};

// The canonical dtype text of a frame of `columns` x `rows` whose index is the column named
// `index` ("" for none). kInvalidArgument for no columns, a name starting with "__", a duplicate
// name, a structured column dtype, an unknown index column, or a table over the dtype limits.
[[nodiscard]] Result<std::string> frame_dtype_text(const std::vector<FrameColumn>& columns,
                                                   std::uint64_t rows, std::string_view index);

// One column of an existing frame.
struct FrameColumnLayout {
  std::string name;  // without the __index__: prefix
  DType dtype;
  std::uint64_t offset;  // in bytes from the start of the array's data
  bool is_index;
  const DTypeField* categories;  // the __categories__ field, or nullptr
};

struct FrameLayout {
  std::uint64_t rows = 0;
  std::vector<FrameColumnLayout> columns;  // in order, the index column included
};

// True when an array of `dtype` and `shape` is a frame.
[[nodiscard]] bool is_frame(const DType& dtype, const std::vector<std::uint64_t>& shape) noexcept;
// The columns of a frame array. kInvalidArgument if it is not a frame or its columns differ in
// length. The result points into `dtype`, which must outlive it.
[[nodiscard]] Result<FrameLayout> frame_layout_of(const DType& dtype,
                                                  const std::vector<std::uint64_t>& shape);

}  // namespace shmarray
