#pragma once
// Element text of NumPy's flexible and time kinds, as print(arr) shows them: byte strings and
// void as Python bytes reprs (b'ab'), unicode as str reprs ('ab'), datetime64 as quoted ISO 8601
// at the dtype's unit ('2024-01-02T03:04:05.000000000'), timedelta64 as its integer count, NaT
// as 'NaT'; each list padded to a common width as NumPy's _TimelikeFormat does.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "shmarray/dtype.hpp"

namespace shmarray::cli {

// Python's repr() of bytes: b'...' with \\, \t, \n, \r, \xhh escapes and its quote choice.
[[nodiscard]] std::string bytes_repr(std::span<const std::byte> bytes);
// Python's repr() of a str given as UTF-32 code points (printable non-ASCII kept as UTF-8).
[[nodiscard]] std::string str_repr(std::span<const char32_t> text);

// Words for the elements at `offsets` of a native-order S, U, V (unstructured), M or m dtype.
[[nodiscard]] std::vector<std::string> format_text_elements(
    const DType& dtype, std::span<const std::byte> bytes, std::span<const std::uint64_t> offsets);

// An ISO 8601 datetime64 value of `unit` ("ns", "25s", "D", ...) as NumPy's datetime_as_string;
// "NaT" for INT64_MIN.
[[nodiscard]] std::string datetime_str(std::int64_t value, const std::string& unit);

}  // namespace shmarray::cli
