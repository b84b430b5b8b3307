#pragma once
// Parsing of the CLI's value arguments (shape, mode, order). Pure; errors are kInvalidArgument
// with a message that quotes the input and says what is accepted.
#include <cstdint>
#include <string_view>
#include <vector>

#include "shmarray/error.hpp"
#include "shmarray/types.hpp"

namespace shmarray::cli {

// "3,4", "3, 4", "(3, 4)", "(5,)", "5"; "" or "()" for a 0-d array. Each dimension is a decimal
// integer >= 0; at most kMaxNdim of them.
[[nodiscard]] Result<std::vector<std::uint64_t>> parse_shape(std::string_view text);
// 1-4 octal digits, at most 0777: "640", "0640".
[[nodiscard]] Result<std::uint32_t> parse_mode(std::string_view text);
// "C" or "F" (either case).
[[nodiscard]] Result<Order> parse_order(std::string_view text);

}  // namespace shmarray::cli
