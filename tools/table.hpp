#pragma once
// A plain-text table for terminal listings: a header row, then rows; columns separated by two
// spaces and padded to their widest cell; no trailing spaces.
#include <string>
#include <vector>

namespace shmarray::cli {

enum class Align { kLeft, kRight };

struct Column {
  std::string header;
  Align align = Align::kLeft;
};

class Table {
 public:
  explicit Table(std::vector<Column> columns) : columns_(std::move(columns)) {}

  // Cells beyond the column count are ignored; missing cells print empty.
  void add_row(std::vector<std::string> cells);

  // Header line plus one line per row, each ending in '\n'. Widths are counted in bytes.
  [[nodiscard]] std::string render() const;

 private:
  std::vector<Column> columns_;
  std::vector<std::vector<std::string>> rows_;
};

}  // namespace shmarray::cli
