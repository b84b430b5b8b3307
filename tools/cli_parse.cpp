#include "cli_parse.hpp"

#include <charconv>
#include <string>

namespace shmarray::cli {

namespace {

std::string_view trim(std::string_view text) {
  while (!text.empty() && text.front() == ' ') text.remove_prefix(1);
  while (!text.empty() && text.back() == ' ') text.remove_suffix(1);
  return text;
}

std::unexpected<Error> bad_shape(std::string_view text, std::string_view why) {
  return fail(ErrorCode::kInvalidArgument,
              "bad shape '" + std::string(text) + "': " + std::string(why) +
                  " (write dimensions as 3,4 or (3, 4); \"\" or () for a 0-d array)");
}

}  // namespace

Result<std::vector<std::uint64_t>> parse_shape(std::string_view text) {
  std::string_view body = trim(text);
  if (body.starts_with('(') != body.ends_with(')')) return bad_shape(text, "unbalanced parenthesis");
  if (body.starts_with('(')) body = trim(body.substr(1, body.size() - 2));
  std::vector<std::uint64_t> shape;
  if (body.empty()) return shape;
  if (body.ends_with(',')) body = trim(body.substr(0, body.size() - 1));  // "(5,)"
  while (true) {
    const std::size_t comma = body.find(',');
    const std::string_view item = trim(body.substr(0, comma));
    std::uint64_t value = 0;
    const auto [end, ec] = std::from_chars(item.data(), item.data() + item.size(), value);
    if (item.empty() || ec != std::errc() || end != item.data() + item.size()) {
      return bad_shape(text, "'" + std::string(item) + "' is not a dimension (an integer >= 0)");
    }
    shape.push_back(value);
    if (shape.size() > kMaxNdim) {
      return bad_shape(text, "more than " + std::to_string(kMaxNdim) + " dimensions");
    }
    if (comma == std::string_view::npos) return shape;
    body = body.substr(comma + 1);
  }
}

Result<std::uint32_t> parse_mode(std::string_view text) {
  std::uint32_t mode = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), mode, 8);
  if (text.empty() || text.size() > 4 || ec != std::errc() || end != text.data() + text.size() ||
      mode > 0777) {
    return fail(ErrorCode::kInvalidArgument,
                "bad mode '" + std::string(text) +
                    "': write permission bits in octal, 0000 to 0777 (e.g. 0640)");
  }
  return mode;
}

Result<Order> parse_order(std::string_view text) {
  if (text == "C" || text == "c") return Order::kC;
  if (text == "F" || text == "f") return Order::kF;
  return fail(ErrorCode::kInvalidArgument,
              "bad order '" + std::string(text) + "': use C (row-major) or F (column-major)");
}

}  // namespace shmarray::cli
