// Conversions of Python arguments to shmarray values. Errors here are plain Python TypeError /
// ValueError: they are mistakes in the call, detected before anything reaches the broker.
#include <cmath>
#include <limits>

#include "bindings.hpp"

namespace shmarray::python {

namespace {

// The canonical text (dtype.hpp) of a numpy.dtype, built from its fields; DType::parse (on this
// side for the message, and in the broker) validates it.
std::string canonical_text(py::handle dtype) {
  py::object fields = dtype.attr("fields");
  if (fields.is_none()) {
    if (!dtype.attr("subdtype").is_none()) {
      raise_error(fail(ErrorCode::kInvalidArgument,
                       "sub-array dtype " + py::str(dtype).cast<std::string>() +
                           " as an element type: put its shape into the array's shape, or "
                           "make it a field of a structured dtype")
                      .error());
    }
    return dtype.attr("str").cast<std::string>();
  }
  std::string out = "{";
  for (py::handle name : dtype.attr("names")) {
    py::tuple field = fields[name];
    if (field.size() > 2) {
      raise_error(fail(ErrorCode::kInvalidArgument,
                       "field " + py::repr(name).cast<std::string>() +
                           " has a title; shmarray does not store field titles: drop it")
                      .error());
    }
    py::object sub = field[0];
    std::string text;
    if (!sub.attr("subdtype").is_none() && sub.attr("fields").is_none()) {
      py::tuple base_shape = sub.attr("subdtype");
      text = canonical_text(base_shape[0]) + "(";
      bool first = true;
      for (py::handle d : base_shape[1]) {
        if (!first) text += ",";
        first = false;
        text += std::to_string(d.cast<std::uint64_t>());
      }
      text += ")";
    } else {
      text = canonical_text(sub);
    }
    out += (out.size() > 1 ? ",'" : "'") + name.cast<std::string>() + "':" + text + "@" +
           std::to_string(field[1].cast<std::uint64_t>());
  }
  return out + "}" + std::to_string(dtype.attr("itemsize").cast<std::uint64_t>());
}

py::object to_numpy(const DType& d) {
  py::module_ np = py::module_::import("numpy");
  if (!d.is_structured()) return np.attr("dtype")(py::str(d.str()));
  py::list names, formats, offsets;
  for (const DTypeField& f : d.fields()) {
    names.append(py::str(f.name));
    py::object format = to_numpy(f.dtype);
    if (!f.shape.empty()) {
      py::tuple shape(f.shape.size());
      for (std::size_t i = 0; i < f.shape.size(); ++i) shape[i] = py::int_(f.shape[i]);
      format = py::make_tuple(format, shape);
    }
    formats.append(format);
    offsets.append(py::int_(f.offset));
  }
  py::dict spec;
  spec["names"] = names;
  spec["formats"] = formats;
  spec["offsets"] = offsets;
  spec["itemsize"] = py::int_(d.itemsize());
  return np.attr("dtype")(spec);
}

}  // namespace

std::string typestr_of(py::handle dtype_like) {
  py::object dtype = py::module_::import("numpy").attr("dtype")(dtype_like);
  if (dtype.attr("hasobject").cast<bool>()) {
    // DType::parse's message says why; a struct with an object field gets it too.
    raise_error(DType::parse("O").error());
  }
  auto parsed = DType::parse(canonical_text(dtype));
  if (!parsed) raise_error(parsed.error());
  return parsed->str();
}

py::object numpy_dtype(const std::string& typestr) {
  auto parsed = DType::parse(typestr);
  if (!parsed) return py::module_::import("numpy").attr("dtype")(py::str(typestr));
  return to_numpy(*parsed);
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
