#include "numpy_format.hpp"

#include <algorithm>
#include <cstdint>
#include <limits>

#include "element_format.hpp"

namespace shmarray::cli {

namespace {

std::uint64_t element_count(std::span<const std::uint64_t> shape) {
  std::uint64_t count = 1;
  for (const std::uint64_t n : shape) {
    if (n == 0) return 0;
    count = n > std::numeric_limits<std::uint64_t>::max() / count
                ? std::numeric_limits<std::uint64_t>::max()
                : count * n;
  }
  return count;
}

// Checks that every element of a non-empty view lies inside its bytes (the broker's metadata is
// trusted for shape but we still never read past the mapping).
Result<void> check_bounds(const ArrayView& view) {
  if (view.shape.size() != view.strides.size()) {
    return fail(ErrorCode::kInvalidArgument, "array has " + std::to_string(view.shape.size()) +
                                                 " dimensions but " +
                                                 std::to_string(view.strides.size()) + " strides");
  }
  if (element_count(view.shape) == 0) return {};
  // Lowest and highest byte an element touches; any overflow is out of bounds as well.
  std::int64_t lowest = 0;
  std::int64_t highest = static_cast<std::int64_t>(view.dtype.itemsize());
  bool overflow = false;
  for (std::size_t axis = 0; axis < view.shape.size(); ++axis) {
    std::int64_t reach = 0;
    overflow |= view.shape[axis] - 1 > static_cast<std::uint64_t>(INT64_MAX);
    overflow |= __builtin_mul_overflow(static_cast<std::int64_t>(view.shape[axis] - 1),
                                       view.strides[axis], &reach);
    overflow |= __builtin_add_overflow(reach < 0 ? lowest : highest, reach,
                                       reach < 0 ? &lowest : &highest);
  }
  if (overflow || lowest < 0 || static_cast<std::uint64_t>(highest) > view.bytes.size()) {
    return fail(ErrorCode::kInvalidArgument,
                "array shape and strides reach outside its " + std::to_string(view.bytes.size()) +
                    " data bytes");
  }
  return {};
}

// Index positions NumPy shows along an axis of length n: all, or the first and last `edge`.
std::vector<std::uint64_t> shown_indices(std::uint64_t n, bool summarise, std::size_t edge) {
  std::vector<std::uint64_t> out;
  if (summarise && 2 * edge < n) {
    for (std::uint64_t i = 0; i < edge; ++i) out.push_back(i);
    for (std::uint64_t i = n - edge; i < n; ++i) out.push_back(i);
  } else {
    for (std::uint64_t i = 0; i < n; ++i) out.push_back(i);
  }
  return out;
}

// Byte offsets of the shown elements, in printing order.
void gather_offsets(const ArrayView& view, std::size_t axis, std::int64_t base, bool summarise,
                    std::size_t edge, std::vector<std::uint64_t>& out) {
  if (axis == view.shape.size()) {
    out.push_back(static_cast<std::uint64_t>(base));
    return;
  }
  for (const std::uint64_t i : shown_indices(view.shape[axis], summarise, edge)) {
    gather_offsets(view, axis + 1, base + static_cast<std::int64_t>(i) * view.strides[axis],
                   summarise, edge, out);
  }
}

std::string rstrip(std::string_view text) {
  const std::size_t end = text.find_last_not_of(' ');
  return std::string(text.substr(0, end == std::string_view::npos ? 0 : end + 1));
}

// The nested-bracket layout of numpy.core.arrayprint._formatArray (separator ' ', legacy off),
// consuming pre-formatted words in printing order.
class Layout {
 public:
  Layout(std::span<const std::uint64_t> shape, bool summarise, const PrintOptions& options,
         std::span<const std::string> words)
      : shape_(shape), summarise_(summarise), options_(options), words_(words) {}

  std::string render() { return recurse(0, " ", options_.linewidth); }

 private:
  // Appends `word` to `line`, first moving `line` into `text` if the word would not fit.
  void extend_line(std::string& text, std::string& line, std::string_view word,
                   std::size_t width, const std::string& indent) const {
    const bool wrap = line.size() + word.size() > width && line.size() > indent.size();
    if (wrap) {
      text += rstrip(line) + "\n";
      line = indent;
    }
    line += word;
  }

  std::string row(std::size_t axis, const std::string& indent, std::size_t width) {
    const std::size_t n = shape_[axis];
    const bool summary = summarise_ && 2 * options_.edgeitems < n;
    const std::size_t shown = summary ? 2 * options_.edgeitems : n;
    const std::size_t elem_width = width - 1;  // room for the closing ']'
    std::string text;
    std::string line = indent;
    for (std::size_t i = 0; i < shown; ++i) {
      if (summary && i == options_.edgeitems) {
        extend_line(text, line, "...", elem_width, indent);
        line += " ";
      }
      extend_line(text, line, words_[next_word_++], elem_width, indent);
      if (i + 1 < shown) line += " ";
    }
    return text + line;
  }

  std::string recurse(std::size_t axis, const std::string& indent, std::size_t width) {
    std::string text;
    if (axis + 1 == shape_.size()) {
      text = row(axis, indent, width);
    } else {
      const std::size_t n = shape_[axis];
      const bool summary = summarise_ && 2 * options_.edgeitems < n;
      const std::size_t shown = summary ? 2 * options_.edgeitems : n;
      const std::string separator(shape_.size() - axis - 1, '\n');
      for (std::size_t i = 0; i < shown; ++i) {
        if (summary && i == options_.edgeitems) text += indent + "..." + separator;
        text += indent + recurse(axis + 1, indent + " ", width - 1);
        if (i + 1 < shown) text += separator;
      }
    }
    return "[" + text.substr(indent.size()) + "]";
  }

  std::span<const std::uint64_t> shape_;
  bool summarise_;
  const PrintOptions& options_;
  std::span<const std::string> words_;
  std::size_t next_word_ = 0;
};

}  // namespace

Result<std::string> format_array(const ArrayView& view, const PrintOptions& options) {
  if (auto ok = check_bounds(view); !ok) return std::unexpected(ok.error());
  if (view.shape.empty()) return format_scalar(view.dtype, view.bytes);
  const std::uint64_t count = element_count(view.shape);
  if (count == 0) return std::string("[]");
  const bool summarise = count > options.threshold;
  std::vector<std::uint64_t> offsets;
  gather_offsets(view, 0, 0, summarise, options.edgeitems, offsets);
  const auto words = format_elements(view.dtype, view.bytes, offsets, options.precision);
  return Layout(view.shape, summarise, options, words).render();
}

Result<std::string> format_head(const ArrayView& view, std::uint64_t count,
                                const PrintOptions& options) {
  if (auto ok = check_bounds(view); !ok) return std::unexpected(ok.error());
  const std::uint64_t n = std::min(count, element_count(view.shape));
  if (n == 0) return std::string("[]");
  const bool summarise = n > options.threshold;
  std::vector<std::uint64_t> offsets;
  for (const std::uint64_t flat : shown_indices(n, summarise, options.edgeitems)) {
    // Unravel the C-order flat index, last axis fastest.
    std::uint64_t rest = flat;
    std::int64_t offset = 0;
    for (std::size_t axis = view.shape.size(); axis-- > 0;) {
      offset += static_cast<std::int64_t>(rest % view.shape[axis]) * view.strides[axis];
      rest /= view.shape[axis];
    }
    offsets.push_back(static_cast<std::uint64_t>(offset));
  }
  const auto words = format_elements(view.dtype, view.bytes, offsets, options.precision);
  const std::uint64_t shape[] = {n};
  return Layout(shape, summarise, options, words).render();
}

}  // namespace shmarray::cli
