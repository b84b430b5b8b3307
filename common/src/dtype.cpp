#include "shmarray/dtype.hpp"

#include <array>
#include <utility>

namespace shmarray {
namespace {

struct Known {
  std::string_view name;
  char kind;
  std::size_t itemsize;
};

constexpr std::array<Known, 13> kKnown{{
    {"float16", 'f', 2}, {"float32", 'f', 4}, {"float64", 'f', 8},
    {"int8", 'i', 1},    {"int16", 'i', 2},   {"int32", 'i', 4},   {"int64", 'i', 8},
    {"uint8", 'u', 1},   {"uint16", 'u', 2},  {"uint32", 'u', 4},  {"uint64", 'u', 8},
    {"bool", 'b', 1},    {"complex64", 'c', 8},
}};
constexpr Known kComplex128{"complex128", 'c', 16};

const Known* find(char kind, std::size_t itemsize) {
  for (const auto& k : kKnown) {
    if (k.kind == kind && k.itemsize == itemsize) return &k;
  }
  if (kind == kComplex128.kind && itemsize == kComplex128.itemsize) return &kComplex128;
  return nullptr;
}

std::unexpected<Error> unsupported(std::string_view text) {
  return fail(ErrorCode::kInvalidArgument,
              "unsupported dtype '" + std::string(text) +
                  "': use a little-endian NumPy typestr (<f2 <f4 <f8 <i1..<i8 <u1..<u8 |b1 <c8 "
                  "<c16) or a name (float16..float64, int8..int64, uint8..uint64, bool, "
                  "complex64, complex128)");
}

}  // namespace

Result<DType> DType::parse(std::string_view text) {
  for (const auto& k : kKnown) {
    if (text == k.name) return DType(k.kind, k.itemsize);
  }
  if (text == kComplex128.name) return DType(kComplex128.kind, kComplex128.itemsize);
  if (text == "float") return DType('f', 8);
  if (text == "double") return DType('f', 8);
  if (text == "int") return DType('i', 8);

  std::string_view rest = text;
  if (!rest.empty() && (rest.front() == '<' || rest.front() == '|' || rest.front() == '=')) {
    rest.remove_prefix(1);
  } else if (!rest.empty() && rest.front() == '>') {
    return fail(ErrorCode::kInvalidArgument,
                "unsupported dtype '" + std::string(text) +
                    "': big-endian data is not supported; use the little-endian form '<" +
                    std::string(rest.substr(1)) + "'");
  }
  if (rest.size() < 2 || rest.size() > 3) return unsupported(text);
  const char kind = rest.front();
  std::size_t itemsize = 0;
  for (char c : rest.substr(1)) {
    if (c < '0' || c > '9') return unsupported(text);
    itemsize = itemsize * 10 + static_cast<std::size_t>(c - '0');
  }
  if (find(kind, itemsize) == nullptr) return unsupported(text);
  // '|' means "byte order not applicable": only valid for one-byte types, as in NumPy.
  if (text.front() == '|' && itemsize != 1) return unsupported(text);
  return DType(kind, itemsize);
}

std::string DType::str() const {
  std::string out;
  out += itemsize_ == 1 ? '|' : '<';
  out += kind_;
  out += std::to_string(itemsize_);
  return out;
}

std::string_view DType::name() const noexcept {
  const Known* k = find(kind_, itemsize_);
  return k != nullptr ? k->name : std::string_view("unknown");
}

}  // namespace shmarray
