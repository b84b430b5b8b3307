#pragma once
// Just enough JSON output for the CLI's --json modes (no parsing, no external library).
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace shmarray::cli {

// `text` as a quoted JSON string: escapes '"', '\\' and every control character below 0x20
// (\n, \t, ... or \u00XX). Other bytes pass through unchanged (UTF-8 stays UTF-8).
[[nodiscard]] std::string json_quote(std::string_view text);

// Builds one JSON object, fields in insertion order, on one line: {"a": 1, "b": "x"}.
// Keys are escaped; callers do not add duplicate keys.
class JsonObject {
 public:
  JsonObject& string_field(std::string_view key, std::string_view value);
  JsonObject& int_field(std::string_view key, std::int64_t value);
  JsonObject& uint_field(std::string_view key, std::uint64_t value);
  JsonObject& bool_field(std::string_view key, bool value);
  // `json` must already be valid JSON text (e.g. from json_uint_array).
  JsonObject& raw_field(std::string_view key, std::string_view json);

  [[nodiscard]] std::string str() const { return "{" + body_ + "}"; }

 private:
  std::string body_;
};

[[nodiscard]] std::string json_uint_array(std::span<const std::uint64_t> values);
[[nodiscard]] std::string json_int_array(std::span<const std::int64_t> values);

}  // namespace shmarray::cli
