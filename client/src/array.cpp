#include "shmarray/array.hpp"

#include "mapped_segment.hpp"
#include "shmarray/segment_layout.hpp"
#include "shmarray/sync/seqlock.hpp"
#include "shmarray/sync/version.hpp"
#include "shmarray/sync/write_lock.hpp"

namespace shmarray {

Array::Array(std::shared_ptr<const detail::MappedSegment> segment, ArrayInfo&& info, Access access)
    : segment_(std::move(segment)), info_(std::move(info)), access_(access) {}

Array::Array(Array&&) noexcept = default;
Array& Array::operator=(Array&&) noexcept = default;
Array::~Array() = default;

std::span<const std::byte> Array::bytes() const noexcept {
  if (!segment_) return {};
  return {segment_->mapping.data() + info_.data_offset, static_cast<std::size_t>(info_.nbytes)};
}

Result<std::span<std::byte>> Array::mutable_bytes() const {
  if (auto ok = check_writable("writing"); !ok) return std::unexpected(ok.error());
  const auto raw = bytes();
  return std::span<std::byte>(const_cast<std::byte*>(raw.data()), raw.size());
}

Result<void> Array::check_element_type(std::string_view typestr, bool wants_write) const {
  if (typestr != info_.dtype) {
    return fail(ErrorCode::kInvalidArgument,
                "array '" + info_.name + "' holds " + info_.dtype + " elements, not " +
                    std::string(typestr));
  }
  if (wants_write && !writable()) {
    return fail(ErrorCode::kPermissionDenied,
                "array '" + info_.name + "' was opened read-only: use as<const T>(), or open it "
                "with Access::kReadWrite");
  }
  return {};
}

Result<void> Array::check_struct_type(std::size_t size, std::span<const FieldDecl> fields,
                                      bool wants_write) const {
  auto dtype = DType::parse(info_.dtype);
  if (!dtype) return std::unexpected(dtype.error());
  if (auto ok = check_struct_view(*dtype, size, fields, info_.name); !ok) return ok;
  return check_element_type(info_.dtype, wants_write);
}

LiveFields& Array::live() const noexcept {
  // The header page is part of every mapping; LiveFields are plain atomics, which read-only users
  // only read (waiting never writes to the segment).
  return *live_fields_of(segment_->mapping.data());
}

Result<void> Array::check_writable(std::string_view what) const {
  if (writable()) return {};
  return fail(ErrorCode::kPermissionDenied,
              "array '" + info_.name + "' was opened read-only; " + std::string(what) +
                  " needs Access::kReadWrite");
}

std::uint64_t Array::version() const noexcept {
  return segment_ ? current_version(live()) : 0;
}

Result<std::uint64_t> Array::publish() const {
  if (auto ok = check_writable("publish"); !ok) return std::unexpected(ok.error());
  return shmarray::publish(live());
}

Result<std::uint64_t> Array::wait_newer_than(std::uint64_t v, std::chrono::nanoseconds timeout,
                                             WaitPolicy policy) const {
  return shmarray::wait_newer_than(live(), v, timeout, policy);
}

Result<WriteLock> Array::lock(std::chrono::nanoseconds timeout) const {
  if (auto ok = check_writable("lock"); !ok) return std::unexpected(ok.error());
  return WriteLock::acquire(live(), timeout, segment_);
}

Result<WriteLock> Array::try_lock() const {
  if (auto ok = check_writable("lock"); !ok) return std::unexpected(ok.error());
  return WriteLock::try_acquire(live(), segment_);
}

bool Array::possibly_torn() const noexcept { return shmarray::possibly_torn(live()); }

Result<std::uint64_t> Array::read_consistent_impl(detail::CallbackRef copy,
                                                  std::chrono::nanoseconds timeout) const {
  return shmarray::read_consistent(live(), copy, timeout);
}

void Array::begin_write_window() const noexcept { begin_write(live()); }
void Array::abandon_write_window() const noexcept { abandon_write(live()); }
std::uint64_t Array::end_write_window_and_publish() const { return end_write_and_publish(live()); }

}  // namespace shmarray
