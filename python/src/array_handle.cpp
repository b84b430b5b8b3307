#include "array_handle.hpp"

namespace shmarray::python {

py::array make_ndarray(Array array) {
  const ArrayInfo& info = array.info();
  std::vector<py::ssize_t> shape(info.shape.begin(), info.shape.end());
  std::vector<py::ssize_t> strides(info.strides.begin(), info.strides.end());
  const bool writable = array.writable();
  py::object dtype = numpy_dtype(info.dtype);
  py::object handle = py::cast(ArrayHandle(std::move(array)), py::return_value_policy::move);
  const ArrayHandle& owner = handle.cast<const ArrayHandle&>();
  register_handle(handle);  // so that publish(tensor) finds it (torch_interop.cpp)
  // With a base object, pybind11 does not copy: the ndarray points into the mapping and holds a
  // reference to `handle` (NumPy's base), which owns the mapping.
  py::array result(py::reinterpret_borrow<py::dtype>(dtype), std::move(shape), std::move(strides),
                   owner.data(), handle);
  if (!writable) result.attr("setflags")(py::arg("write") = false);
  return result;
}

py::object owner_of(py::handle obj) {
  py::object current = py::reinterpret_borrow<py::object>(obj);
  // A frame's DataFrame (frames.py) keeps its shared array in df.attrs["shmarray"].
  if (!py::isinstance<py::array>(current) && py::hasattr(current, "attrs")) {
    py::object attrs = current.attr("attrs");
    if (py::isinstance<py::dict>(attrs) && attrs.contains("shmarray")) current = attrs["shmarray"];
  }
  // NumPy collapses chains of views to the first base that is not a view, so this loop runs once
  // or twice in practice; the bound guards against cycles in foreign objects.
  for (int depth = 0; depth < 64 && !current.is_none(); ++depth) {
    if (py::isinstance<ArrayHandle>(current)) return current;
    if (PyMemoryView_Check(current.ptr())) {
      PyObject* exporter = PyMemoryView_GET_BUFFER(current.ptr())->obj;
      if (exporter == nullptr) break;
      current = py::reinterpret_borrow<py::object>(exporter);
    } else if (py::hasattr(current, "base")) {
      current = current.attr("base");
    } else {
      break;
    }
  }
  // A torch.Tensor keeps its ndarray alive but does not expose it: find the mapping instead
  // (a read-only handle for as_tensor's ReadOnlyTensor, so that it cannot publish or lock).
  py::object torch = py::module_::import("sys").attr("modules").attr("get")("torch");
  if (!torch.is_none() && py::isinstance(obj, torch.attr("Tensor"))) {
    const auto address = obj.attr("data_ptr")().cast<std::uintptr_t>();
    const auto size = obj.attr("numel")().cast<std::size_t>() *
                      obj.attr("element_size")().cast<std::size_t>();
    const bool read_only = py::hasattr(obj, "_shmarray_read_only");
    py::object handle = handle_holding(address, size, /*writable_first=*/!read_only);
    if (!handle.is_none()) return handle;
  }
  throw py::type_error(
      "expected a numpy.ndarray returned by shmarray.Client.create/open (or a view of one); "
      "got an object that does not share an shmarray mapping (" +
      py::repr(py::type::of(obj)).cast<std::string>() + ")");
}

void bind_array_handle(py::module_& m) {
  py::class_<ArrayHandle>(m, "ArrayHandle", py::buffer_protocol(), R"doc(
Owner of one shared-memory mapping: the ``base`` of every ndarray that Client.create/open
returns. Any view of such an ndarray keeps this object, and with it the mapping, alive; closing
the Client, removing the name or stopping the broker does not invalidate it. Exposes the array's
bytes through the buffer protocol (read-only for read-only grants). Not created directly.
)doc")
      .def_property_readonly("name", &ArrayHandle::name, "The array's name.")
      .def_property_readonly("writable", &ArrayHandle::writable,
                             "True for a read-write grant (create, or open(writable=True)).")
      .def_property_readonly(
          "info",
          [](const ArrayHandle& h) {
            ArrayInfo info = h.array().info();
            info.version = h.array().version();
            return info;
          },
          "ArrayInfo as reported at create/open, with the current version.")
      .def_property_readonly(
          "nbytes", [](const ArrayHandle& h) { return h.array().info().nbytes; },
          "Size of the data in bytes.")
      .def_property_readonly(
          "address", [](const ArrayHandle& h) { return reinterpret_cast<std::uintptr_t>(h.data()); },
          "Address of the first data byte in this process.")
      .def_buffer([](const ArrayHandle& h) {
        // A flat byte view: enough for memoryview(), numpy.frombuffer() and for NumPy's check
        // that a base may back a writeable array.
        return py::buffer_info(h.data(), 1, "B",
                               static_cast<py::ssize_t>(h.array().info().nbytes),
                               !h.writable());
      })
      .def("__repr__", [](const ArrayHandle& h) {
        const ArrayInfo& info = h.array().info();
        std::string shape;
        for (std::size_t i = 0; i < info.shape.size(); ++i) {
          shape += (i ? ", " : "") + std::to_string(info.shape[i]);
        }
        if (info.shape.size() == 1) shape += ",";
        return "<shmarray.ArrayHandle '" + info.name + "' " + info.dtype + " (" + shape + ") " +
               std::string(to_string(h.array().access())) + ">";
      });
}

}  // namespace shmarray::python
