// Frame, and Client::create_frame / open_frame (declared in client.hpp, kept here with the rest
// of the frame code).
#include "shmarray/frame.hpp"

#include <algorithm>
#include <chrono>
#include <memory>

#include "shmarray/client.hpp"

namespace shmarray {

Frame::Frame(Array array, DType dtype, FrameLayout layout)
    : array_(std::move(array)), dtype_(std::make_unique<DType>(std::move(dtype))),
      layout_(std::move(layout)) {}

Result<Frame> Frame::from(Array array) {
  auto dtype = DType::parse(array.info().dtype);
  if (!dtype) return std::unexpected(dtype.error());
  if (!is_frame(*dtype, array.info().shape)) {
    return fail(ErrorCode::kInvalidArgument,
                "'" + array.info().name + "' is an array (" + dtype->numpy_str() +
                    "), not a frame: open it with Client::open");
  }
  // The layout points into the DType; build it from the copy the Frame keeps.
  Frame frame(std::move(array), std::move(*dtype), {});
  auto layout = frame_layout_of(*frame.dtype_, frame.array_.info().shape);
  if (!layout) return std::unexpected(layout.error());
  frame.layout_ = std::move(*layout);
  return frame;
}

Result<std::span<std::byte>> Frame::column_bytes(std::string_view name, std::string_view typestr,
                                                 bool wants_write) const {
  const auto it = std::find_if(layout_.columns.begin(), layout_.columns.end(),
                               [&](const FrameColumnLayout& c) { return c.name == name; });
  if (it == layout_.columns.end()) {
    return fail(ErrorCode::kNotFound,
                "frame '" + this->name() + "' has no column '" + std::string(name) + "'");
  }
  const std::string actual = it->dtype.str();
  const bool counts_of_time = typestr == "<i8" && (it->dtype.kind() == 'M' || it->dtype.kind() == 'm') &&
                              it->dtype.is_native();
  if (actual != typestr && !counts_of_time) {
    return fail(ErrorCode::kInvalidArgument,
                "column '" + std::string(name) + "' of frame '" + this->name() + "' holds " +
                    actual + ", not " + std::string(typestr));
  }
  std::span<const std::byte> all = array_.bytes();
  if (wants_write) {
    auto writable = array_.mutable_bytes();
    if (!writable) return std::unexpected(writable.error());
    return writable->subspan(it->offset, it->dtype.itemsize() * layout_.rows);
  }
  const auto part = all.subspan(it->offset, it->dtype.itemsize() * layout_.rows);
  return std::span<std::byte>(const_cast<std::byte*>(part.data()), part.size());
}

Result<Frame> Client::create_frame(std::string_view name, const FrameSpec& spec) {
  auto dtype = frame_dtype_text(spec.columns, spec.rows, spec.index);
  if (!dtype) return std::unexpected(dtype.error());
  auto array = create(name, ArraySpec{.dtype = *dtype, .shape = {}, .mode = spec.mode,
                                      .ephemeral = spec.ephemeral});
  if (!array) return std::unexpected(array.error());
  return Frame::from(std::move(*array));
}

Result<Frame> Client::open_frame(std::string_view name, Access access,
                                 const OpenOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  auto array = open(name, access, options);
  if (!array) return std::unexpected(array.error());
  if (array->version() == 0) {
    // A mirror (docs/across-hosts.md) exists from the moment its first version starts to
    // arrive; until that version is whole it holds zeros, which are no table (a frame's
    // categories, for one). Wait for it within `wait`, else say how to.
    auto info = stat(name);
    if (info && !info->mirror_of.empty()) {
      const auto left = options.wait - std::chrono::duration_cast<std::chrono::milliseconds>(
                                           std::chrono::steady_clock::now() - start);
      const std::string what = "frame '" + std::string(name) + "' is a mirror of " +
                               info->mirror_of + " and has no version yet";
      if (options.wait.count() <= 0) {
        return fail(ErrorCode::kFailedPrecondition,
                    what + ": wait for its first version (open_frame with OpenOptions::wait, or "
                           "Array::wait_newer_than(0, ...) on the array), then open it");
      }
      if (auto v = array->wait_newer_than(0, std::max(left, std::chrono::milliseconds(1))); !v) {
        return fail(v.error().code(), what + " after waiting " +
                                          std::to_string(options.wait.count()) +
                                          " ms: " + v.error().message());
      }
    }
  }
  return Frame::from(std::move(*array));
}

}  // namespace shmarray
