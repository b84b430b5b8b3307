// shmarray.read_checked: read_consistent that survives a co-writer truncating the segment.
#include <cstring>

#include "array_handle.hpp"
#include "bindings.hpp"
#include "interruptible.hpp"

namespace shmarray::python {
namespace {

py::tuple py_read_checked(const py::object& arr, std::optional<double> timeout_s) {
  if (!py::isinstance<py::array>(arr)) {
    throw py::type_error("read_checked() takes a numpy.ndarray from shmarray (or a view)");
  }
  py::object owner = owner_of(arr);
  const ArrayHandle& h = owner.cast<const ArrayHandle&>();
  auto view = py::reinterpret_borrow<py::array>(arr);
  // Copy the whole array (the view may be strided), then rebuild the view over the copy.
  const auto nbytes = static_cast<std::size_t>(h.array().info().nbytes);
  auto copy = py::reinterpret_steal<py::object>(
      PyByteArray_FromStringAndSize(nullptr, static_cast<py::ssize_t>(nbytes)));
  if (!copy) throw py::error_already_set();
  auto* dst = reinterpret_cast<std::byte*>(PyByteArray_AsString(copy.ptr()));
  const auto timeout = timeout_of(timeout_s);
  auto version = in_slices<std::uint64_t>(timeout, [&](std::chrono::nanoseconds slice) {
    return h.array().read_checked({dst, nbytes}, slice);
  });
  if (!version && version.error().code() == ErrorCode::kDeadlineExceeded) {
    raise_error(Error(ErrorCode::kDeadlineExceeded, "read_checked of '" + h.name() +
                                                        "' gave up after " + seconds_text(timeout) +
                                                        ": " + version.error().message()));
  }
  const std::uint64_t v = unwrap(std::move(version));
  // The view's offset is arithmetic on addresses only: the mapping itself is never touched.
  const auto offset = static_cast<const std::byte*>(view.data()) - h.data();
  py::object result = py::module_::import("numpy").attr("ndarray")(
      view.attr("shape"), view.attr("dtype"), copy, offset, view.attr("strides"));
  return py::make_tuple(result, v);
}

}  // namespace

void bind_checked_read(py::module_& m) {
  m.def("read_checked", &py_read_checked, py::arg("arr"), py::arg("timeout") = 1.0, R"doc(
As read_consistent(), but never killed by SIGBUS: the bytes are read through the kernel
(process_vm_readv), so if a co-writer truncated the segment after this process mapped it, this
raises DataLoss instead of the process dying. Use it where a hostile writer is possible: indexing
the ndarray directly faults on a truncated segment. Returns (copy, version).
)doc");
}

}  // namespace shmarray::python
