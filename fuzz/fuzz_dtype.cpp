// libFuzzer target for the dtype decoder (DType::parse): every dtype text that reaches shmarray
// (create requests, segment headers, catalogue records, users) goes through it. Input: the text.
// Properties beyond "no crash, no sanitizer report, no hang":
//   - a text that parses has a canonical form within kMaxDTypeTextBytes that parses back to an
//     equal dtype with the same canonical form (one wire form per dtype);
//   - every field of a structured dtype lies inside its itemsize, no two fields overlap, and the
//     nesting depth and field count are within their limits;
//   - numpy_str() and name() can be printed for anything that parses.
// Build and run: fuzz/run_fuzz.sh [SECONDS]. Seeds: fuzz/corpus_dtype/.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <utility>
#include <vector>

#include "shmarray/dtype.hpp"

namespace {

void check(bool ok) {
  if (!ok) __builtin_trap();
}

// Checks the layout invariants of `d` (depth counts struct levels); returns its field count.
std::size_t check_layout(const shmarray::DType& d, std::size_t depth) {
  if (!d.is_structured()) return 0;
  check(depth <= shmarray::kMaxDTypeDepth);
  check(d.itemsize() >= 1 && d.itemsize() <= shmarray::kMaxItemsize);
  std::size_t count = 0;
  std::vector<std::pair<std::uint64_t, std::uint64_t>> spans;
  for (const auto& f : d.fields()) {
    check(!f.name.empty() && f.name.size() <= shmarray::kMaxFieldNameBytes);
    check(f.shape.size() <= shmarray::kMaxSubarrayNdim);
    check(f.offset <= d.itemsize() && f.nbytes() <= d.itemsize() - f.offset);
    if (f.nbytes() != 0) spans.emplace_back(f.offset, f.offset + f.nbytes());
    count += 1 + check_layout(f.dtype, depth + 1);
  }
  std::sort(spans.begin(), spans.end());
  for (std::size_t i = 1; i < spans.size(); ++i) check(spans[i - 1].second <= spans[i].first);
  return count;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto dtype = shmarray::DType::parse(text);
  if (!dtype) {
    check(dtype.error().code() == shmarray::ErrorCode::kInvalidArgument);
    return 0;
  }
  const std::string canonical = dtype->str();
  check(canonical.size() <= shmarray::kMaxDTypeTextBytes);
  auto again = shmarray::DType::parse(canonical);
  check(again.has_value());
  check(*again == *dtype);
  check(again->str() == canonical);
  check(check_layout(*dtype, 1) <= shmarray::kMaxDTypeFields);
  check(!dtype->numpy_str().empty() && !dtype->name().empty());
  return 0;
}
