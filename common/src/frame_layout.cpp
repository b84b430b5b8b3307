#include "shmarray/frame_layout.hpp"

#include <algorithm>

namespace shmarray {
namespace {

std::unexpected<Error> invalid(std::string message) {
  return fail(ErrorCode::kInvalidArgument, std::move(message));
}

std::uint64_t round_up(std::uint64_t n) {
  return (n + kFrameColumnAlignment - 1) / kFrameColumnAlignment * kFrameColumnAlignment;
}

}  // namespace

Result<std::string> frame_dtype_text(const std::vector<FrameColumn>& columns, std::uint64_t rows,
                                     std::string_view index) {
  if (columns.empty()) return invalid("a frame needs at least one column");
  std::vector<DTypeField> fields;
  fields.push_back({std::string(kFrameMarkerField), 0, DType::parse("|u1").value(), {0}});
  std::uint64_t offset = 0;
  bool index_found = index.empty();
  for (const FrameColumn& c : columns) {
    if (c.name.starts_with("__")) {
      return invalid("frame column name '" + c.name + "' starts with '__' (reserved)");
    }
    auto dtype = DType::parse(c.dtype);
    if (!dtype) {
      return invalid("frame column '" + c.name + "': " + dtype.error().message());
    }
    if (dtype->is_structured()) {
      return invalid("frame column '" + c.name + "' has a structured dtype: a column holds one "
                     "simple dtype");
    }
    if (rows != 0 && dtype->itemsize() > kMaxItemsize / rows) {
      return invalid("frame column '" + c.name + "' of " + std::to_string(rows) +
                     " rows is larger than the limit of " + std::to_string(kMaxItemsize) +
                     " bytes");
    }
    const bool is_index = c.name == index;
    index_found = index_found || is_index;
    fields.push_back({is_index ? std::string(kFrameIndexPrefix) + c.name : c.name, offset,
                      *dtype, {rows}});
    offset = round_up(offset + dtype->itemsize() * rows);
  }
  if (!index_found) {
    return invalid("index column '" + std::string(index) + "' is not one of the frame's columns");
  }
  auto dtype = DType::structured(std::move(fields), std::max(offset, kFrameColumnAlignment));
  if (!dtype) return std::unexpected(dtype.error());
  return dtype->str();
}

bool is_frame(const DType& dtype, const std::vector<std::uint64_t>& shape) noexcept {
  const auto fields = dtype.fields();
  return shape.empty() && !fields.empty() && fields.front().name == kFrameMarkerField &&
         fields.front().nbytes() == 0;
}

Result<FrameLayout> frame_layout_of(const DType& dtype, const std::vector<std::uint64_t>& shape) {
  if (!is_frame(dtype, shape)) return invalid("not a frame (dtype " + dtype.numpy_str() + ")");
  FrameLayout layout;
  bool first = true;
  for (const DTypeField& f : dtype.fields().subspan(1)) {
    if (f.name.starts_with(kFrameCategoriesPrefix)) continue;
    if (f.shape.size() != 1 || f.dtype.is_structured()) {
      return invalid("frame column '" + f.name + "' is not a 1-d column of a simple dtype");
    }
    if (!first && f.shape[0] != layout.rows) {
      return invalid("frame column '" + f.name + "' has " + std::to_string(f.shape[0]) +
                     " rows, the others " + std::to_string(layout.rows));
    }
    first = false;
    layout.rows = f.shape[0];
    const bool is_index = f.name.starts_with(kFrameIndexPrefix);
    FrameColumnLayout column{is_index ? f.name.substr(kFrameIndexPrefix.size()) : f.name,
                             f.dtype, f.offset, is_index, nullptr};
    column.categories = dtype.field(std::string(kFrameCategoriesPrefix) + column.name);
    layout.columns.push_back(std::move(column));
  }
  return layout;
}

}  // namespace shmarray
