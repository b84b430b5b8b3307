#pragma once
// shmarray::Array: one shared array mapped into this process.
//
// Ownership: an Array owns its mapping (never a file descriptor: the client closes the descriptor
// right after mapping it). Arrays are move-only; they stay valid after the Client that opened
// them is destroyed, after the array is removed, and while the broker is down. Two Arrays of the
// same array in one process share one mapping (the second open maps nothing new). When the
// process's last Array of an array is destroyed, each Client that created or opened it tells the
// broker (at once if that Client is idle, else with its next request; never blocking), so that
// ArrayInfo::open_handles counts what is open now.
//
// Thread safety: distinct Arrays may be used from any threads; one Array's const methods may be
// called concurrently. The bytes themselves are shared memory: coordinate writers with lock() /
// publish() (see docs/synchronisation.md).
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <type_traits>

#include "shmarray/dtype.hpp"
#include "shmarray/error.hpp"
#include "shmarray/types.hpp"
#include "shmarray/write_lock.hpp"

namespace shmarray {

namespace detail {
struct MappedSegment;

// A non-owning reference to a callable taking no argument: lets the templates below hand the
// caller's function to the library without exposing the synchronisation internals.
class CallbackRef {
 public:
  template <class F>
  explicit CallbackRef(F& f) noexcept
      : object_(static_cast<void*>(&f)), call_([](void* o) { (*static_cast<F*>(o))(); }) {}
  void operator()() const { call_(object_); }

 private:
  void* object_;
  void (*call_)(void*);
};
}  // namespace detail

class Array {
 public:
  Array(Array&&) noexcept;
  Array& operator=(Array&&) noexcept;
  Array(const Array&) = delete;
  Array& operator=(const Array&) = delete;
  ~Array();

  // Metadata as the broker reported it at open/create (version is refreshed by version()).
  [[nodiscard]] const ArrayInfo& info() const noexcept { return info_; }
  [[nodiscard]] Access access() const noexcept { return access_; }
  [[nodiscard]] bool writable() const noexcept { return access_ == Access::kReadWrite; }

  // The array's data: info().nbytes bytes, laid out per info().strides.
  [[nodiscard]] std::span<const std::byte> bytes() const noexcept;
  [[nodiscard]] const void* data() const noexcept { return bytes().data(); }
  // Writable bytes; kPermissionDenied for a read-only grant.
  [[nodiscard]] Result<std::span<std::byte>> mutable_bytes() const;
  // Copies the data (info().nbytes bytes) into the front of `dst` inside the seqlock, like
  // read_consistent, and returns the version of the copy. Never dies of SIGBUS: every byte is
  // read with process_vm_readv (the seqlock words too), so a segment that a co-writer truncated
  // after this process mapped it gives kDataLoss, not a signal (direct access through bytes()
  // would fault); kDataLoss also while the array is possibly torn, as read_consistent. Use it
  // where a hostile co-writer is possible (docs/security.md). kInvalidArgument if `dst` is smaller
  // than info().nbytes; kDeadlineExceeded as read_consistent.
  [[nodiscard]] Result<std::uint64_t> read_checked(
      std::span<std::byte> dst, std::chrono::nanoseconds timeout = std::chrono::seconds(1)) const;

  // Typed view of all elements (in memory order). kInvalidArgument if T does not match the dtype
  // (e.g. as<float>() on "<f8"); kPermissionDenied for a non-const T on a read-only grant.
  // T may be a number (dtype_of<T>: the typestr must be equal, byte order included) or a
  // trivially copyable user struct viewing a structured (or void) dtype: sizeof(T) must equal
  // the itemsize and, if struct_fields<T> declares fields (dtype.hpp), each must exist in the
  // dtype at the same offset and size; the error names the first field that differs.
  template <class T>
  [[nodiscard]] Result<std::span<T>> as() const;

  // --- synchronisation: data plane, works with the broker down (docs/synchronisation.md) ---

  // The publish counter (acquire load): 0 after create, +1 per publish().
  [[nodiscard]] std::uint64_t version() const noexcept;
  // Release-stores version+1, clears the "possibly torn" flag and wakes every waiter in every
  // process. Returns the new version. kPermissionDenied for a read-only grant.
  [[nodiscard]] Result<std::uint64_t> publish() const;
  // Blocks until version() > v; returns the version seen. Spins for policy.spin, then sleeps on a
  // futex in the segment; a publish is never missed. kDeadlineExceeded after `timeout`. Works on
  // read-only grants. What a reader may assume afterwards: docs/synchronisation.md.
  [[nodiscard]] Result<std::uint64_t> wait_newer_than(std::uint64_t v,
                                                      std::chrono::nanoseconds timeout,
                                                      WaitPolicy policy = {}) const;
  // The array's writer lock (sync/write_lock.hpp: a plain owner word, safe against co-writers
  // that scribble on it). If its previous holder died, the returned lock says
  // previous_owner_died() and possibly_torn() stays true until the next publish.
  // kDeadlineExceeded after `timeout`; kPermissionDenied on a read-only grant. The WriteLock keeps
  // the mapping alive: it may outlive this Array. Unlock it on the acquiring thread.
  [[nodiscard]] Result<WriteLock> lock(std::chrono::nanoseconds timeout) const;
  // As lock(), but only if it is free now (kDeadlineExceeded if held).
  [[nodiscard]] Result<WriteLock> try_lock() const;
  // True when a writer died holding the lock and nobody has published since.
  [[nodiscard]] bool possibly_torn() const noexcept;

  // Consistent read without blocking the writer (seqlock): runs copy() (which must only copy the
  // bytes somewhere private) until no write() overlapped it; returns the version of that data.
  template <class CopyFn>
  [[nodiscard]] Result<std::uint64_t> read_consistent(
      CopyFn&& copy, std::chrono::nanoseconds timeout = std::chrono::seconds(1)) const {
    return read_consistent_impl(detail::CallbackRef(copy), timeout);
  }
  // Guarded write: takes the lock (up to `timeout`), runs fn(std::span<std::byte> data) inside
  // the seqlock write window, publishes, unlocks. Returns the new version. If fn throws, the
  // write is abandoned (abandon_write: the array is possibly torn and read_consistent fails with
  // kDataLoss until the next publish), the lock is released and the exception propagates.
  template <class WriteFn>
  [[nodiscard]] Result<std::uint64_t> write(WriteFn&& fn, std::chrono::nanoseconds timeout =
                                                              std::chrono::seconds(10)) const {
    auto guard = lock(timeout);
    if (!guard) return std::unexpected(guard.error());
    auto data = mutable_bytes();
    if (!data) return std::unexpected(data.error());
    begin_write_window();
    // Close the write window even if fn throws, so readers are not left retrying, and say that
    // the bytes may now be half-written.
    struct CloseOnThrow {
      const Array& array;
      bool published = false;
      ~CloseOnThrow() {
        if (!published) array.abandon_write_window();
      }
    } window{*this};
    fn(*data);
    window.published = true;
    return end_write_window_and_publish();
  }

 private:
  friend class Client;
  Array(std::shared_ptr<const detail::MappedSegment> segment, ArrayInfo&& info, Access access);
  [[nodiscard]] LiveFields& live() const noexcept;
  [[nodiscard]] Result<std::uint64_t> read_consistent_impl(detail::CallbackRef copy,
                                                           std::chrono::nanoseconds timeout) const;
  // The seqlock write window of write(): open, abandon (possibly torn), close and publish.
  void begin_write_window() const noexcept;
  void abandon_write_window() const noexcept;
  [[nodiscard]] std::uint64_t end_write_window_and_publish() const;
  [[nodiscard]] Result<void> check_writable(std::string_view what) const;
  [[nodiscard]] Result<void> check_element_type(std::string_view typestr, bool wants_write) const;
  [[nodiscard]] Result<void> check_struct_type(std::size_t size, std::span<const FieldDecl> fields,
                                               bool wants_write) const;

  std::shared_ptr<const detail::MappedSegment> segment_;
  ArrayInfo info_;
  Access access_;
};

template <class T>
Result<std::span<T>> Array::as() const {
  using Element = std::remove_const_t<T>;
  if constexpr (HasTypestr<Element>) {
    if (auto ok = check_element_type(dtype_of<Element>::value, !std::is_const_v<T>); !ok) {
      return std::unexpected(ok.error());
    }
  } else {
    static_assert(std::is_trivially_copyable_v<Element>,
                  "as<T>() views shared bytes: T must be trivially copyable");
    std::span<const FieldDecl> fields;
    if constexpr (HasStructFields<Element>) fields = struct_fields<Element>::value;
    if (auto ok = check_struct_type(sizeof(Element), fields, !std::is_const_v<T>); !ok) {
      return std::unexpected(ok.error());
    }
  }
  const auto raw = bytes();
  // const_cast: writability was checked above; the mapping itself is PROT_WRITE in that case.
  return std::span<T>(reinterpret_cast<T*>(const_cast<std::byte*>(raw.data())),
                      raw.size() / sizeof(T));
}

}  // namespace shmarray
