#include "shmarray/types.hpp"

#include <limits>

namespace shmarray {

std::string_view to_string(Order order) noexcept { return order == Order::kF ? "F" : "C"; }

std::string_view to_string(Access access) noexcept {
  return access == Access::kReadWrite ? "read-write" : "read-only";
}

namespace {

bool allowed_name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == ':' || c == '/' || c == '-';
}

std::string printable(char c) {
  if (c >= 0x21 && c <= 0x7e) return std::string("'") + c + "'";
  static constexpr char kHex[] = "0123456789abcdef";
  const auto u = static_cast<unsigned char>(c);
  return std::string("byte 0x") + kHex[u >> 4] + kHex[u & 0xf];
}

}  // namespace

Result<void> validate_name(std::string_view name) {
  if (name.empty()) return fail(ErrorCode::kInvalidArgument, "array name is empty");
  if (name.size() > kMaxNameLength) {
    return fail(ErrorCode::kInvalidArgument,
                "array name is " + std::to_string(name.size()) + " bytes long; the limit is " +
                    std::to_string(kMaxNameLength));
  }
  for (std::size_t i = 0; i < name.size(); ++i) {
    if (!allowed_name_char(name[i])) {
      return fail(ErrorCode::kInvalidArgument,
                  "array name has " + printable(name[i]) + " at position " + std::to_string(i) +
                      "; names use only letters, digits and . _ : / -");
    }
  }
  if (name.front() == '/') {
    return fail(ErrorCode::kInvalidArgument, "array name '" + std::string(name) +
                                                 "' starts with '/'; drop the leading slash");
  }
  std::size_t start = 0;
  while (start <= name.size()) {
    const std::size_t end = std::min(name.find('/', start), name.size());
    const std::string_view part = name.substr(start, end - start);
    if (part == "." || part == "..") {
      return fail(ErrorCode::kInvalidArgument,
                  "array name '" + std::string(name) + "' has a '" + std::string(part) +
                      "' component; names are not paths");
    }
    if (part.empty()) {
      return fail(ErrorCode::kInvalidArgument,
                  "array name '" + std::string(name) + "' has an empty component ('//' or a "
                  "trailing '/')");
    }
    start = end + 1;
  }
  return {};
}

Result<ArrayLayout> compute_layout(const ArraySpec& spec, std::uint64_t max_bytes) {
  auto dtype = DType::parse(spec.dtype);
  if (!dtype) return std::unexpected(dtype.error());
  if (spec.shape.size() > kMaxNdim) {
    return fail(ErrorCode::kInvalidArgument, "shape has " + std::to_string(spec.shape.size()) +
                                                 " dimensions; at most " +
                                                 std::to_string(kMaxNdim) + " are supported");
  }
  if (spec.order != Order::kC && spec.order != Order::kF) {
    return fail(ErrorCode::kInvalidArgument, "order must be C or F");
  }
  // Element count x itemsize, checked at every step; strides must also fit in int64.
  constexpr auto kLimit = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
  // Zero dims are counted as 1 for the overflow check so that strides cannot overflow either.
  std::uint64_t nbytes = dtype->itemsize();
  std::uint64_t span_bytes = dtype->itemsize();
  for (std::uint64_t dim : spec.shape) {
    std::uint64_t next = 0;
    if (__builtin_mul_overflow(span_bytes, dim == 0 ? 1 : dim, &next) || next > kLimit) {
      return fail(ErrorCode::kInvalidArgument,
                  "shape is too large: its size in bytes overflows 63 bits");
    }
    span_bytes = next;
    nbytes *= dim;
  }
  if (nbytes > max_bytes) {
    return fail(ErrorCode::kResourceExhausted,
                "array needs " + std::to_string(nbytes) + " bytes; the broker's limit per array "
                "is " + std::to_string(max_bytes) + " (raise it with shmarrayd --max-bytes)");
  }
  ArrayLayout layout{*dtype, spec.shape, std::vector<std::int64_t>(spec.shape.size()), nbytes};
  // Strides for a zero-size array follow NumPy: computed as if every zero dim were 1.
  std::int64_t stride = static_cast<std::int64_t>(dtype->itemsize());
  const std::size_t n = spec.shape.size();
  for (std::size_t k = 0; k < n; ++k) {
    const std::size_t axis = spec.order == Order::kC ? n - 1 - k : k;
    layout.strides[axis] = stride;
    const std::uint64_t dim = spec.shape[axis] == 0 ? 1 : spec.shape[axis];
    stride *= static_cast<std::int64_t>(dim);
  }
  return layout;
}

}  // namespace shmarray
