// Data-plane synchronisation on an ndarray from this module (or any view of it): version,
// publish, wait, lock, read_consistent. None of these talk to the broker.
//
// Blocking calls release the GIL and block in slices (interruptible.hpp), checking for signals
// between slices, so Ctrl-C interrupts a long wait, lock or read_consistent (KeyboardInterrupt)
// within ~50 ms.
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>

#include <unistd.h>

#include "array_handle.hpp"
#include "interruptible.hpp"
#include "shmarray/sync/seqlock.hpp"
#include "shmarray/sync/version.hpp"
#include "shmarray/sync/write_lock.hpp"

namespace shmarray::python {
namespace {

const ArrayHandle& handle_of(const py::object& owner) { return owner.cast<const ArrayHandle&>(); }

void require_writable(const ArrayHandle& h, const char* what) {
  if (!h.writable()) {
    raise_error(Error(ErrorCode::kPermissionDenied,
                      "array '" + h.name() + "' was opened read-only; " + what +
                          " needs open(name, writable=True) or create()"));
  }
}

// The write lock as a Python object. Holds a reference to the ArrayHandle so the mapping (and the
// mutex in it) outlives the lock. Declared before the WriteLock member, so it is released after.
class PyLock {
 public:
  PyLock(py::object owner, bool seqlock) : owner_(std::move(owner)), seqlock_(seqlock) {}
  PyLock(const PyLock&) = delete;
  PyLock& operator=(const PyLock&) = delete;
  // A Lock dropped while held (garbage collected, possibly on another thread) releases: an open
  // seqlock write is abandoned (the array is flagged possibly torn until the next publish, and
  // readers are not left spinning on an odd write_seq), then the WriteLock's destructor frees the
  // lock word, from whichever thread this runs on, reporting on stderr when that is not the
  // acquiring thread. Runs with the GIL held (pybind11 deallocation).
  ~PyLock() {
    if (!lock_.held()) return;
    if (seqlock_) abandon_write(handle_of(owner_).live());
    WriteLock dropped = std::move(lock_);
  }

  void acquire(std::optional<std::chrono::nanoseconds> timeout) {
    if (lock_.held()) {
      raise_error(Error(ErrorCode::kFailedPrecondition, "this Lock is already held"));
    }
    const ArrayHandle& h = handle_of(owner_);
    require_writable(h, "locking");
    const Array& array = h.array();
    auto result = in_slices<WriteLock>(
        timeout, [&](std::chrono::nanoseconds slice) { return array.lock(slice); });
    if (!result && result.error().code() == ErrorCode::kDeadlineExceeded) {
      raise_error(Error(ErrorCode::kDeadlineExceeded,
                        "the write lock of '" + h.name() + "' is still held by another writer "
                        "after " + seconds_text(timeout)));
    }
    lock_ = unwrap(std::move(result));
    if (seqlock_) begin_write(h.live());
  }

  // Releases the lock (no-op when not held). With seqlock=True, first ends the write and
  // publishes; returns the new version then, None otherwise.
  // `publish` false (an exception left the with-block): abandon the write (possibly torn until
  // the next publish). FailedPrecondition on another thread than the acquiring one (still held).
  std::optional<std::uint64_t> release(bool publish = true) {
    std::optional<std::uint64_t> version;
    if (!lock_.held()) return version;
    if (lock_.owner_tid() != ::gettid()) {
      raise_error(Error(ErrorCode::kFailedPrecondition,
                        "Lock.release() on thread " + std::to_string(::gettid()) +
                            ", but the lock was acquired on thread " +
                            std::to_string(lock_.owner_tid()) +
                            ": release it on the acquiring thread (it is still held)"));
    }
    if (seqlock_) {
      LiveFields& live = handle_of(owner_).live();
      if (publish) {
        version = end_write_and_publish(live);
      } else {
        abandon_write(live);
      }
    }
    if (auto ok = lock_.unlock(); !ok) raise_error(ok.error());
    return version;
  }

  [[nodiscard]] bool held() const noexcept { return lock_.held(); }
  [[nodiscard]] bool previous_owner_died() const noexcept { return lock_.previous_owner_died(); }
  [[nodiscard]] const py::object& owner() const noexcept { return owner_; }

 private:
  py::object owner_;
  bool seqlock_;
  WriteLock lock_;
};

std::uint64_t py_publish(const py::object& arr) {
  py::object owner = owner_of(arr);
  const ArrayHandle& h = handle_of(owner);
  require_writable(h, "publish()");
  return unwrap(h.array().publish());
}

std::uint64_t py_wait(const py::object& arr, std::optional<std::uint64_t> newer_than,
                      std::optional<double> timeout_s) {
  py::object owner = owner_of(arr);  // held across the GIL-free wait
  const ArrayHandle& h = handle_of(owner);
  const Array& array = h.array();
  const std::uint64_t v = newer_than.value_or(array.version());
  const auto timeout = timeout_of(timeout_s);
  auto result = in_slices<std::uint64_t>(timeout, [&](std::chrono::nanoseconds slice) {
    return array.wait_newer_than(v, slice);
  });
  if (!result && result.error().code() == ErrorCode::kDeadlineExceeded) {
    raise_error(Error(ErrorCode::kDeadlineExceeded,
                      "no publish of '" + h.name() + "' newer than version " + std::to_string(v) +
                          " within " + seconds_text(timeout)));
  }
  return unwrap(std::move(result));
}

py::tuple py_read_consistent(const py::object& arr, std::optional<double> timeout_s) {
  if (!py::isinstance<py::array>(arr)) {
    throw py::type_error("read_consistent() takes a numpy.ndarray from shmarray (or a view)");
  }
  py::object owner = owner_of(arr);
  const ArrayHandle& h = handle_of(owner);
  auto view = py::reinterpret_borrow<py::array>(arr);
  // Copy the whole mapping (the view may be strided), then rebuild the view over the copy.
  const auto nbytes = static_cast<std::size_t>(h.array().info().nbytes);
  auto copy = py::reinterpret_steal<py::object>(
      PyByteArray_FromStringAndSize(nullptr, static_cast<py::ssize_t>(nbytes)));
  if (!copy) throw py::error_already_set();
  auto* dst = reinterpret_cast<std::byte*>(PyByteArray_AsString(copy.ptr()));
  const std::byte* src = h.data();
  const auto timeout = timeout_of(timeout_s);
  auto version = in_slices<std::uint64_t>(timeout, [&](std::chrono::nanoseconds slice) {
    return h.array().read_consistent([&] { std::memcpy(dst, src, nbytes); }, slice);
  });
  if (!version && version.error().code() == ErrorCode::kDeadlineExceeded) {
    raise_error(Error(ErrorCode::kDeadlineExceeded, "read_consistent of '" + h.name() +
                                                        "' gave up after " + seconds_text(timeout) +
                                                        ": " + version.error().message()));
  }
  const std::uint64_t v = unwrap(std::move(version));
  const auto offset = static_cast<const std::byte*>(view.data()) - src;
  py::object result = py::module_::import("numpy").attr("ndarray")(
      view.attr("shape"), view.attr("dtype"), copy, offset, view.attr("strides"));
  return py::make_tuple(result, v);
}

}  // namespace

void bind_sync(py::module_& m) {
  m.def(
      "version", [](const py::object& arr) { return handle_of(owner_of(arr)).array().version(); },
      py::arg("arr"), R"doc(
The array's publish counter: 0 after create, +1 per publish(). Data written before that publish
is visible to the caller once it has read the version.
)doc");
  m.def("publish", &py_publish, py::arg("arr"), R"doc(
Announces that the array's contents changed: increments the version, clears the "possibly torn"
flag and wakes every wait() in every process. Returns the new version. Needs a writable array
(PermissionDenied otherwise).
)doc");
  m.def("wait", &py_wait, py::arg("arr"), py::arg("newer_than") = py::none(),
        py::arg("timeout") = py::none(), R"doc(
Blocks until the array's version is greater than newer_than (default: the version now, i.e. the
next publish) and returns that version. Returns at once if it already is. The GIL is released
while waiting; Ctrl-C interrupts. Works on read-only arrays.

timeout: seconds (None: no limit; 0: check once). DeadlineExceeded (a TimeoutError) when it
elapses first.
)doc");
  m.def("possibly_torn",
        [](const py::object& arr) { return handle_of(owner_of(arr)).array().possibly_torn(); },
        py::arg("arr"), R"doc(
True when a writer died holding the array's lock, or abandoned a write (an exception left a
`with lock(arr, seqlock=True)` block), and nobody has published since: the data may be
half-written.
)doc");
  m.def("read_consistent", &py_read_consistent, py::arg("arr"), py::arg("timeout") = 1.0, R"doc(
Copies the array (or view) without blocking the writer, retrying until the copy overlaps no write
made under lock(arr, seqlock=True). Returns (copy, version): a private numpy.ndarray and the
version it matches. DeadlineExceeded if no clean copy was possible within timeout seconds;
DataLoss while the array is possibly torn (see possibly_torn) until the next publish.
Copies the whole underlying array even for a small view.
)doc");

  py::class_<PyLock>(m, "Lock", R"doc(
The array's writer lock, held (returned by shmarray.lock). A plain owner word in the shared
segment, safe against co-writers that scribble on it: if its owner dies holding it, the next
acquirer gets it with previous_owner_died == True (the data may be torn until the next publish).

Use as a context manager (released at the end of the block), or call release(). Release it from
the thread that acquired it (FailedPrecondition otherwise); a Lock garbage-collected while held is
released wherever that happens. Keeps the array's mapping alive while it exists.
)doc")
      .def_property_readonly("held", &PyLock::held)
      .def_property_readonly("previous_owner_died", &PyLock::previous_owner_died,
                             "True when this acquisition found the previous owner dead.")
      .def_property_readonly("array", [](const PyLock& l) { return l.owner(); },
                             "The ArrayHandle this lock belongs to.")
      .def(
          "acquire",
          [](PyLock& l, std::optional<double> timeout) { l.acquire(timeout_of(timeout)); },
          py::arg("timeout") = py::none(), "Re-acquires a released Lock.")
      .def("release", [](PyLock& l) { return l.release(); }, R"doc(
Releases the lock (no-op when not held). With seqlock=True, ends the write and publishes first and
returns the new version; otherwise returns None.
)doc")
      .def("__enter__", [](py::object self) { return self; })
      .def("__exit__",
           [](PyLock& l, const py::object& exc_type, const py::object&, const py::object&) {
             l.release(/*publish=*/exc_type.is_none());
             return false;
           });

  m.def(
      "lock",
      [](const py::object& arr, std::optional<double> timeout, bool seqlock) {
        auto lock = std::make_unique<PyLock>(owner_of(arr), seqlock);
        lock->acquire(timeout_of(timeout));
        return lock;
      },
      py::arg("arr"), py::arg("timeout") = py::none(), py::kw_only(), py::arg("seqlock") = false,
      R"doc(
Acquires the array's writer lock and returns it as a Lock:

    with shmarray.lock(arr, timeout=1.0) as l:
        if l.previous_owner_died: ...   # rewrite everything: the data may be torn
        arr[:] = new_values
        shmarray.publish(arr)

timeout: seconds (None: no limit; 0: try once). DeadlineExceeded (a TimeoutError) if another
writer still holds it. The GIL is released while waiting; Ctrl-C interrupts.
seqlock: mark the write as in progress for read_consistent() readers; releasing the lock then
publishes (no separate publish() needed), except when an exception leaves the with-block.
Needs a writable array (PermissionDenied otherwise); FailedPrecondition if this thread already
holds it.
)doc");
}

}  // namespace shmarray::python
