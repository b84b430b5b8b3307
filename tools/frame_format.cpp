#include "frame_format.hpp"

#include <algorithm>

#include "element_format.hpp"
#include "shmarray/frame_layout.hpp"

namespace shmarray::cli {
namespace {

// Datetimes and strings print without NumPy's quotes in pandas ('x' -> x).
std::string unquoted(std::string word) {
  const auto first = word.find_first_not_of(' ');
  if (first != std::string::npos && word[first] == '\'' && word.back() == '\'') {
    return word.substr(first + 1, word.size() - first - 2);
  }
  return word.substr(first == std::string::npos ? word.size() : first);
}

// pandas prints datetimes with a space, not 'T', and only as many fraction digits (in groups
// of 3) as the column needs: "2023-11-14 22:13:20", "2023-11-14 22:13:20.250".
void pandas_datetimes(std::vector<std::string>& words) {
  std::size_t keep = 0;
  for (const auto& w : words) {
    const auto dot = w.find('.');
    if (dot == std::string::npos) continue;
    const auto last = w.find_last_not_of('0');
    if (last > dot) keep = std::max(keep, (last - dot + 2) / 3 * 3);
  }
  for (auto& w : words) {
    if (w.size() > 10 && w[10] == 'T') w[10] = ' ';
    const auto dot = w.find('.');
    if (dot != std::string::npos) w = keep == 0 ? w.substr(0, dot) : w.substr(0, dot + 1 + keep);
  }
}

std::vector<std::string> column_words(const FrameColumnLayout& c, std::span<const std::byte> bytes,
                                      std::uint64_t n) {
  std::vector<std::uint64_t> offsets(n);
  for (std::uint64_t k = 0; k < n; ++k) offsets[k] = c.offset + k * c.dtype.itemsize();
  std::vector<std::string> words = format_elements(c.dtype, bytes, offsets, 8);
  const bool integer_codes = c.dtype.kind() == 'i' && c.dtype.is_native();
  if (c.categories != nullptr && !c.categories->shape.empty() && integer_codes) {
    const DTypeField& cats = *c.categories;
    std::vector<std::uint64_t> at(cats.shape[0]);
    for (std::uint64_t k = 0; k < at.size(); ++k) at[k] = cats.offset + k * cats.dtype.itemsize();
    const auto names = format_elements(cats.dtype, bytes, at, 8);
    for (auto& w : words) {
      const long long code = std::stoll(w);
      w = code >= 0 && static_cast<std::uint64_t>(code) < names.size()
              ? unquoted(names[static_cast<std::size_t>(code)])
              : "NaN";
    }
  }
  for (auto& w : words) w = unquoted(std::move(w));
  if (c.dtype.kind() == 'M') pandas_datetimes(words);
  return words;
}

std::string pad(const std::string& s, std::size_t width, bool left) {
  if (s.size() >= width) return s;
  return left ? s + std::string(width - s.size(), ' ') : std::string(width - s.size(), ' ') + s;
}

}  // namespace

Result<std::string> format_frame_head(const DType& dtype, const std::vector<std::uint64_t>& shape,
                                      std::span<const std::byte> bytes, std::uint64_t count) {
  auto layout = frame_layout_of(dtype, shape);
  if (!layout) return std::unexpected(layout.error());
  if (bytes.size() < dtype.itemsize()) {
    return fail(ErrorCode::kInvalidArgument, "frame bytes shorter than its itemsize");
  }
  const std::uint64_t n = std::min(count, layout->rows);
  std::vector<std::string> labels;
  std::string index_name;
  std::vector<std::pair<std::string, std::vector<std::string>>> columns;
  for (const auto& c : layout->columns) {
    auto words = column_words(c, bytes, n);
    if (c.is_index) {
      labels = std::move(words);
      index_name = c.name;
    } else {
      columns.emplace_back(c.name, std::move(words));
    }
  }
  if (labels.empty()) {
    for (std::uint64_t k = 0; k < n; ++k) labels.push_back(std::to_string(k));
  }
  std::size_t label_width = index_name.size();
  for (const auto& l : labels) label_width = std::max(label_width, l.size());
  std::string out = std::string(label_width, ' ');
  std::vector<std::size_t> widths;
  for (const auto& [name, words] : columns) {
    std::size_t w = name.size();
    for (const auto& word : words) w = std::max(w, word.size());
    widths.push_back(w);
    out += "  " + pad(name, w, false);
  }
  out += "\n";
  if (!index_name.empty()) out += pad(index_name, label_width, true) + "\n";
  for (std::uint64_t k = 0; k < n; ++k) {
    out += pad(labels[k], label_width, true);
    for (std::size_t c = 0; c < columns.size(); ++c) {
      out += "  " + pad(columns[c].second[k], widths[c], false);
    }
    out += "\n";
  }
  out += "[" + std::to_string(layout->rows) + " rows x " + std::to_string(columns.size()) +
         " columns]";
  return out;
}

std::vector<std::string> frame_column_lines(const DType& dtype,
                                            const std::vector<std::uint64_t>& shape) {
  std::vector<std::string> lines;
  auto layout = frame_layout_of(dtype, shape);
  if (!layout) return lines;
  for (const auto& c : layout->columns) {
    std::string line = c.name + ": " + c.dtype.numpy_str();
    if (c.is_index) line += " (index)";
    if (c.categories != nullptr) line += " (categorical codes)";
    lines.push_back(line);
  }
  return lines;
}

}  // namespace shmarray::cli
