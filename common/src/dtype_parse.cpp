// The dtype decoder: every dtype text that reaches shmarray (a create request, a segment header,
// a catalogue record, a user's string) goes through here, so it is written for hostile input:
// bounded length, depth and field count, overflow-checked sizes, and every structured layout
// checked (fields inside the itemsize, no overlap, unique names) before a DType exists.
#include <algorithm>
#include <array>
#include <limits>
#include <optional>
#include <utility>

#include "shmarray/dtype.hpp"

namespace shmarray {
namespace {

struct Named {
  std::string_view name;
  std::string_view typestr;
};

constexpr std::array<Named, 26> kNames{{
    {"float16", "<f2"},     {"float32", "<f4"},       {"float64", "<f8"},
    {"float128", "<f16"},   {"longdouble", "<f16"},   {"float", "<f8"},
    {"double", "<f8"},      {"half", "<f2"},          {"single", "<f4"},
    {"int8", "|i1"},        {"int16", "<i2"},         {"int32", "<i4"},
    {"int64", "<i8"},       {"int", "<i8"},           {"uint8", "|u1"},
    {"uint16", "<u2"},      {"uint32", "<u4"},        {"uint64", "<u8"},
    {"bool", "|b1"},        {"complex64", "<c8"},     {"complex128", "<c16"},
    {"complex256", "<c32"}, {"clongdouble", "<c32"},  {"datetime64", "<M8"},
    {"timedelta64", "<m8"}, {"bool_", "|b1"},
}};

constexpr std::array<std::string_view, 13> kUnits{"Y", "M",  "W",  "D",  "h",  "m", "s",
                                                  "ms", "us", "ns", "ps", "fs", "as"};

constexpr std::string_view kAccepted =
    "use a NumPy typestr (|b1 |i1 <i2 <i4 <i8 |u1..<u8 <f2 <f4 <f8 <f16 <c8 <c16 <c32, '>' for "
    "big-endian; <M8[ns] <m8[s] in any unit; |S<bytes> <U<chars> |V<bytes>), a name (float64, "
    "int32, uint8, bool, complex128, longdouble, datetime64[ns], ...) or a structured dtype";

std::unexpected<Error> invalid(std::string message) {
  return fail(ErrorCode::kInvalidArgument, std::move(message));
}

std::unexpected<Error> unsupported(std::string_view text, std::string_view why = {}) {
  std::string msg = "unsupported dtype '" + std::string(text) + "'";
  if (!why.empty()) msg += ": " + std::string(why);
  return invalid(msg + ": " + std::string(kAccepted));
}

bool valid_size(char kind, std::uint64_t n) {
  switch (kind) {
    case 'b': return n == 1;
    case 'i': case 'u': return n == 1 || n == 2 || n == 4 || n == 8;
    case 'f': return n == 2 || n == 4 || n == 8 || n == 16;
    case 'c': return n == 8 || n == 16 || n == 32;
    case 'M': case 'm': return n == 8;
    case 'S': case 'V': return n >= 1 && n <= kMaxItemsize;
    case 'U': return n >= 1 && n <= kMaxItemsize / 4;
    default: return false;
  }
}

}  // namespace

// Recursive descent over one text. Friend of DType (it builds DTypes field by field).
class DTypeParser {
 public:
  explicit DTypeParser(std::string_view text) : text_(text), rest_(text) {}

  Result<DType> parse_top() {
    if (text_.size() > kMaxDTypeTextBytes) {
      return invalid("dtype text of " + std::to_string(text_.size()) + " bytes is longer than " +
                     "the limit of " + std::to_string(kMaxDTypeTextBytes));
    }
    if (text_ == "O" || text_ == "|O" || text_ == "object" || text_ == "O8" || text_ == "|O8") {
      return invalid(
          "object dtype ('" + std::string(text_) + "') cannot be shared between processes: its "
          "elements are pointers to Python objects in one process's memory. Convert the data "
          "to a fixed-width dtype first (strings: 'S<n>' bytes or 'U<n>' unicode)");
    }
    for (const Named& n : kNames) {
      if (text_ == n.name) return DTypeParser(n.typestr).parse_top();
    }
    if (text_.starts_with("datetime64[") || text_.starts_with("timedelta64[")) {
      const bool dt = text_[0] == 'd';
      std::string typestr = dt ? "<M8" : "<m8";
      typestr += text_.substr(dt ? 10 : 11);
      return DTypeParser(typestr).parse_top();
    }
    auto dtype = parse_any(1);
    if (!dtype) return dtype;
    if (!rest_.empty()) {
      return text_.front() == '{' ? invalid(at("unexpected text after the itemsize"))
                                  : unsupported(text_);
    }
    return dtype;
  }

  // Validates a struct's fields (depth, count, names, extents, overlap) and builds it.
  static Result<DType> build_struct(std::vector<DTypeField> fields, std::uint64_t itemsize) {
    if (fields.empty()) return invalid("a structured dtype needs at least one field");
    if (itemsize == 0 || itemsize > kMaxItemsize) {
      return invalid("structured dtype itemsize " + std::to_string(itemsize) +
                     " is outside 1.." + std::to_string(kMaxItemsize));
    }
    std::size_t count = 0;
    std::size_t depth = 0;
    for (const DTypeField& f : fields) {
      if (auto ok = check_name(f.name); !ok) return std::unexpected(ok.error());
      if (f.shape.size() > kMaxSubarrayNdim) {
        return invalid("field '" + f.name + "' has a sub-array of " +
                       std::to_string(f.shape.size()) + " dimensions; the limit is " +
                       std::to_string(kMaxSubarrayNdim));
      }
      std::uint64_t bytes = f.dtype.itemsize();
      for (std::uint64_t d : f.shape) {
        if (d != 0 && bytes > kMaxItemsize / d) {
          return invalid("field '" + f.name + "' is larger than the item size limit of " +
                         std::to_string(kMaxItemsize) + " bytes");
        }
        bytes *= d;
      }
      if (f.offset > itemsize || bytes > itemsize - f.offset) {
        return invalid("field '" + f.name + "' (bytes " + std::to_string(f.offset) + ".." +
                       std::to_string(f.offset + bytes) + ") extends past the itemsize " +
                       std::to_string(itemsize));
      }
      count += 1 + subtree_fields(f.dtype);
      depth = std::max(depth, 1 + subtree_depth(f.dtype));
    }
    if (count > kMaxDTypeFields) {
      return invalid("structured dtype has " + std::to_string(count) +
                     " fields in all; the limit is " + std::to_string(kMaxDTypeFields));
    }
    if (depth > kMaxDTypeDepth) {
      return invalid("structured dtype is nested " + std::to_string(depth) +
                     " deep; the limit is " + std::to_string(kMaxDTypeDepth));
    }
    if (auto ok = check_names_unique(fields); !ok) return std::unexpected(ok.error());
    if (auto ok = check_no_overlap(fields); !ok) return std::unexpected(ok.error());
    DType out('V', '|', itemsize);
    out.fields_ = std::make_shared<const std::vector<DTypeField>>(std::move(fields));
    if (out.str().size() > kMaxDTypeTextBytes) {
      return invalid("structured dtype needs " + std::to_string(out.str().size()) +
                     " bytes of text; the limit is " + std::to_string(kMaxDTypeTextBytes));
    }
    return out;
  }

 private:
  static std::size_t subtree_fields(const DType& d) {
    std::size_t n = 0;
    for (const auto& f : d.fields()) n += 1 + subtree_fields(f.dtype);
    return n;
  }
  static std::size_t subtree_depth(const DType& d) {
    std::size_t n = 0;
    for (const auto& f : d.fields()) n = std::max(n, 1 + subtree_depth(f.dtype));
    return n;
  }

  static Result<void> check_name(const std::string& name) {
    if (name.empty() || name.size() > kMaxFieldNameBytes) {
      return invalid("field name of " + std::to_string(name.size()) +
                     " bytes: names are 1-" + std::to_string(kMaxFieldNameBytes) + " bytes");
    }
    for (char c : name) {
      if (c < 0x20 || c > 0x7e || c == '\'' || c == '\\') {
        return invalid("field name '" + name + "' has a character outside printable ASCII "
                       "(or a quote or backslash); rename the field");
      }
    }
    return {};
  }

  static Result<void> check_names_unique(const std::vector<DTypeField>& fields) {
    std::vector<std::string_view> names;
    for (const auto& f : fields) names.push_back(f.name);
    std::sort(names.begin(), names.end());
    auto dup = std::adjacent_find(names.begin(), names.end());
    if (dup != names.end()) return invalid("two fields are named '" + std::string(*dup) + "'");
    return {};
  }

  static Result<void> check_no_overlap(const std::vector<DTypeField>& fields) {
    std::vector<std::pair<std::uint64_t, const DTypeField*>> spans;
    for (const auto& f : fields) {
      if (f.nbytes() != 0) spans.emplace_back(f.offset, &f);
    }
    std::sort(spans.begin(), spans.end(),
              [](const auto& a, const auto& b) { return a.first < b.first; });
    for (std::size_t i = 1; i < spans.size(); ++i) {
      const DTypeField& prev = *spans[i - 1].second;
      if (prev.offset + prev.nbytes() > spans[i].first) {
        return invalid("fields '" + prev.name + "' and '" + spans[i].second->name +
                       "' overlap (offsets " + std::to_string(prev.offset) + " and " +
                       std::to_string(spans[i].first) + ")");
      }
    }
    return {};
  }

  std::string at(std::string_view what) const {
    return "invalid structured dtype '" + std::string(text_.substr(0, 80)) +
           (text_.size() > 80 ? "..." : "") + "' at byte " +
           std::to_string(text_.size() - rest_.size()) + ": " + std::string(what);
  }

  bool eat(char c) {
    if (rest_.empty() || rest_.front() != c) return false;
    rest_.remove_prefix(1);
    return true;
  }

  // A decimal number without leading zeros, at most kMaxItemsize (the largest any count here
  // may be). nullopt if there is none or it is out of range.
  std::optional<std::uint64_t> number() {
    std::size_t n = 0;
    while (n < rest_.size() && rest_[n] >= '0' && rest_[n] <= '9') ++n;
    if (n == 0 || n > 13 || (n > 1 && rest_[0] == '0')) return std::nullopt;
    std::uint64_t v = 0;
    for (std::size_t i = 0; i < n; ++i) v = v * 10 + static_cast<std::uint64_t>(rest_[i] - '0');
    rest_.remove_prefix(n);
    if (v > kMaxItemsize) return std::nullopt;
    return v;
  }

  Result<DType> parse_any(std::size_t depth) {
    if (!rest_.empty() && rest_.front() == '{') return parse_struct(depth);
    return parse_simple();
  }

  Result<DType> parse_simple() {
    const std::string_view start = rest_;
    char order = '=';
    if (!rest_.empty() && (rest_.front() == '<' || rest_.front() == '>' ||
                           rest_.front() == '|' || rest_.front() == '=')) {
      order = rest_.front();
      rest_.remove_prefix(1);
    }
    if (rest_.empty()) return unsupported(start);
    char kind = rest_.front();
    rest_.remove_prefix(1);
    std::uint64_t size = 1;
    if (kind == '?') {
      kind = 'b';
    } else {
      auto n = number();
      if (!n) return unsupported(text_);
      size = *n;
    }
    if (!valid_size(kind, size)) return unsupported(text_);
    std::string unit;
    if ((kind == 'M' || kind == 'm') && eat('[')) {
      auto count = number();
      const std::size_t end = rest_.find(']');
      if (end == std::string_view::npos) return unsupported(text_, "no ']' after the unit");
      const std::string_view name = rest_.substr(0, end);
      rest_.remove_prefix(end + 1);
      if (std::find(kUnits.begin(), kUnits.end(), name) == kUnits.end() ||
          (count && *count == 0) || (count && *count > 0x7fffffff)) {
        return unsupported(text_, "datetime units are Y M W D h m s ms us ns ps fs as, with an "
                                  "optional count (e.g. [25s])");
      }
      if (count && *count != 1) unit = std::to_string(*count);
      unit += name;
    }
    // Byte order: '|' for types without one; this host's (little) for '=' or none.
    const bool orderless = kind == 'b' || kind == 'S' || kind == 'V' ||
                           ((kind == 'i' || kind == 'u') && size == 1);
    if (order == '|' && !orderless && kind != 'U') return unsupported(text_);
    const char byteorder = orderless ? '|' : (order == '>' ? '>' : '<');
    const std::uint64_t itemsize = kind == 'U' ? size * 4 : size;
    return DType(kind, byteorder, itemsize, std::move(unit));
  }

  Result<DType> parse_struct(std::size_t depth) {
    if (depth > kMaxDTypeDepth) {
      return invalid(at("structs nested deeper than the limit of " +
                        std::to_string(kMaxDTypeDepth)));
    }
    eat('{');
    std::vector<DTypeField> fields;
    do {
      if (++fields_seen_ > kMaxDTypeFields) {
        return invalid(at("more than " + std::to_string(kMaxDTypeFields) + " fields"));
      }
      if (!eat('\'')) return invalid(at("expected a quoted field name"));
      const std::size_t end = rest_.find('\'');
      if (end == std::string_view::npos) return invalid(at("unterminated field name"));
      std::string name(rest_.substr(0, end));
      rest_.remove_prefix(end + 1);
      if (!eat(':')) return invalid(at("expected ':' after the field name"));
      auto dtype = parse_any(depth + 1);
      if (!dtype) return dtype;
      std::vector<std::uint64_t> shape;
      if (eat('(')) {
        do {
          if (shape.size() == kMaxSubarrayNdim) {
            return invalid(at("sub-array of more than " + std::to_string(kMaxSubarrayNdim) +
                              " dimensions"));
          }
          auto d = number();
          if (!d) return invalid(at("expected a sub-array dimension"));
          shape.push_back(*d);
        } while (eat(','));
        if (!eat(')')) return invalid(at("expected ')' after the sub-array shape"));
      }
      if (!eat('@')) return invalid(at("expected '@' and the field's offset"));
      auto offset = number();
      if (!offset) return invalid(at("expected the field's offset"));
      fields.push_back(DTypeField{std::move(name), *offset, std::move(*dtype), std::move(shape)});
    } while (eat(','));
    if (!eat('}')) return invalid(at("expected ',' or '}' after a field"));
    auto itemsize = number();
    if (!itemsize) return invalid(at("expected the itemsize after '}'"));
    return build_struct(std::move(fields), *itemsize);
  }

  std::string_view text_;
  std::string_view rest_;
  std::size_t fields_seen_ = 0;
};

Result<DType> DType::parse(std::string_view text) { return DTypeParser(text).parse_top(); }

Result<DType> DType::structured(std::vector<DTypeField> fields, std::uint64_t itemsize) {
  return DTypeParser::build_struct(std::move(fields), itemsize);
}

}  // namespace shmarray
