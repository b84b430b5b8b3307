#pragma once
// shmarray::Frame: a table of equal-length columns, each with its own dtype, in one shared
// segment (layout: shmarray/frame_layout.hpp). Python sees the same frame as a pandas DataFrame
// whose columns are views of the same pages (Client.open_frame).
//
// A Frame is an Array underneath: one name, one permission, one version counter, one write lock
// and one seqlock for the whole table; publish, wait_newer_than, lock, write and
// read_consistent work on array() exactly as on any array. Thread safety and lifetime as Array.
#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "shmarray/array.hpp"
#include "shmarray/frame_layout.hpp"

namespace shmarray {

// What Client::create_frame makes: FrameSpec{.columns = {{"t", "<M8[ns]"}, {"price", "<f8"}},
// .rows = n}.
struct FrameSpec {
  std::vector<FrameColumn> columns{};  // in order
  std::uint64_t rows = 0;
  std::string index{};         // the column that is the table's index ("" for none)
  std::uint32_t mode = 0600;   // as ArraySpec
  bool ephemeral = false;
};

class Frame {
 public:
  // The frame held by `array`. kInvalidArgument if the array is not a frame.
  [[nodiscard]] static Result<Frame> from(Array array);

  [[nodiscard]] const Array& array() const noexcept { return array_; }
  [[nodiscard]] const std::string& name() const noexcept { return array_.info().name; }
  [[nodiscard]] std::uint64_t rows() const noexcept { return layout_.rows; }
  // Every column in order (the index column included, with is_index set).
  [[nodiscard]] const std::vector<FrameColumnLayout>& columns() const noexcept {
    return layout_.columns;
  }

  // Typed view of column `name` (rows() elements). T as for Array::as<T>(): its typestr must be
  // the column's; std::int64_t also views a native datetime64/timedelta64 column (its counts).
  // kNotFound naming the column if there is none, kInvalidArgument for a type mismatch,
  // kPermissionDenied for a non-const T on a read-only grant.
  template <class T>
  [[nodiscard]] Result<std::span<T>> column(std::string_view name) const;

  // Shorthands for array().version() / publish() / wait_newer_than().
  [[nodiscard]] std::uint64_t version() const noexcept { return array_.version(); }
  [[nodiscard]] Result<std::uint64_t> publish() const { return array_.publish(); }
  [[nodiscard]] Result<std::uint64_t> wait_newer_than(std::uint64_t v,
                                                      std::chrono::nanoseconds timeout) const {
    return array_.wait_newer_than(v, timeout);
  }

 private:
  Frame(Array array, DType dtype, FrameLayout layout);
  [[nodiscard]] Result<std::span<std::byte>> column_bytes(std::string_view name,
                                                          std::string_view typestr,
                                                          bool wants_write) const;
  Array array_;
  std::unique_ptr<DType> dtype_;  // stable address: layout_ points into it
  FrameLayout layout_;
};

template <class T>
Result<std::span<T>> Frame::column(std::string_view name) const {
  static_assert(HasTypestr<std::remove_const_t<T>>, "columns are viewed as numbers");
  auto raw = column_bytes(name, dtype_of<std::remove_const_t<T>>::value, !std::is_const_v<T>);
  if (!raw) return std::unexpected(raw.error());
  return std::span<T>(reinterpret_cast<T*>(raw->data()), raw->size() / sizeof(T));
}

}  // namespace shmarray
