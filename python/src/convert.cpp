// Conversions of Python arguments to shmarray values. Errors here are plain Python TypeError /
// ValueError: they are mistakes in the call, detected before anything reaches the broker.
#include <cmath>
#include <limits>

#include "bindings.hpp"

namespace shmarray::python {

std::string typestr_of(py::handle dtype_like) {
  py::object dtype = py::module_::import("numpy").attr("dtype")(dtype_like);
  return dtype.attr("str").cast<std::string>();
}

py::object numpy_dtype(const std::string& typestr) {
  return py::module_::import("numpy").attr("dtype")(py::str(typestr));
}

namespace {
std::uint64_t dimension_of(py::handle value) {
  if (!PyIndex_Check(value.ptr())) {
    throw py::type_error("shape must be an int or a sequence of ints, got " +
                         py::repr(value).cast<std::string>());
  }
  py::int_ as_int = py::reinterpret_steal<py::int_>(PyNumber_Index(value.ptr()));
  if (!as_int) throw py::error_already_set();
  if (PyObject_RichCompareBool(as_int.ptr(), py::int_(0).ptr(), Py_LT) == 1) {
    throw py::value_error("negative dimensions are not allowed: " +
                          py::repr(as_int).cast<std::string>());
  }
  return as_int.cast<std::uint64_t>();  // overflow raises (no array that large exists anyway)
}
}  // namespace

std::vector<std::uint64_t> shape_of(py::handle shape) {
  std::vector<std::uint64_t> dims;
  if (PyIndex_Check(shape.ptr())) {
    dims.push_back(dimension_of(shape));
    return dims;
  }
  if (!py::isinstance<py::iterable>(shape) || py::isinstance<py::str>(shape)) {
    throw py::type_error("shape must be an int or a sequence of ints, got " +
                         py::repr(shape).cast<std::string>());
  }
  for (py::handle item : shape) dims.push_back(dimension_of(item));
  return dims;
}

Order order_of(const std::string& order) {
  if (order == "C" || order == "c") return Order::kC;
  if (order == "F" || order == "f") return Order::kF;
  throw py::value_error("order must be 'C' or 'F', got '" + order + "'");
}

std::optional<std::chrono::nanoseconds> timeout_of(std::optional<double> seconds,
                                                   const char* what) {
  if (!seconds) return std::nullopt;
  if (std::isnan(*seconds)) {
    throw py::value_error(std::string(what) + " must be a number of seconds, not NaN");
  }
  if (*seconds < 0) {
    throw py::value_error(std::string(what) + " must be >= 0 seconds (0: do not wait; None: " +
                          "no limit), got " + py::repr(py::float_(*seconds)).cast<std::string>());
  }
  if (*seconds == 0) return std::chrono::nanoseconds(0);
  // Anything beyond ~292 years is "forever" as far as a nanosecond clock is concerned.
  if (*seconds >= 9.0e9) return std::nullopt;
  return std::chrono::nanoseconds(static_cast<std::int64_t>(*seconds * 1e9));
}

std::string fspath(py::handle path) {
  py::object text = py::reinterpret_steal<py::object>(PyOS_FSPath(path.ptr()));
  if (!text) throw py::error_already_set();
  if (!py::isinstance<py::str>(text)) {
    throw py::type_error("socket path must be str or os.PathLike[str]");
  }
  return text.cast<std::string>();
}

}  // namespace shmarray::python
