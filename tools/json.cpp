#include "json.hpp"

namespace shmarray::cli {

std::string json_quote(std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "\"";
  for (const char c : text) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          out += "\\u00";
          out += kHex[(c >> 4) & 0xf];
          out += kHex[c & 0xf];
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

JsonObject& JsonObject::raw_field(std::string_view key, std::string_view json) {
  if (!body_.empty()) body_ += ", ";
  body_ += json_quote(key);
  body_ += ": ";
  body_ += json;
  return *this;
}

JsonObject& JsonObject::string_field(std::string_view key, std::string_view value) {
  return raw_field(key, json_quote(value));
}

JsonObject& JsonObject::int_field(std::string_view key, std::int64_t value) {
  return raw_field(key, std::to_string(value));
}

JsonObject& JsonObject::uint_field(std::string_view key, std::uint64_t value) {
  return raw_field(key, std::to_string(value));
}

JsonObject& JsonObject::bool_field(std::string_view key, bool value) {
  return raw_field(key, value ? "true" : "false");
}

namespace {

template <class T>
std::string number_array(std::span<const T> values) {
  std::string out = "[";
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (i > 0) out += ", ";
    out += std::to_string(values[i]);
  }
  return out + "]";
}

}  // namespace

std::string json_uint_array(std::span<const std::uint64_t> values) { return number_array(values); }
std::string json_int_array(std::span<const std::int64_t> values) { return number_array(values); }

}  // namespace shmarray::cli
