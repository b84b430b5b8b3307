#pragma once
// Internal interface between the translation units of the `shmarray` Python module. Each bind_*
// function adds one group of names to the module; module.cpp calls them in dependency order
// (errors first: every other part raises through them).
#include <pybind11/numpy.h>
#include <pybind11/stl.h>
#include <pybind11/pybind11.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <type_traits>
#include <string>
#include <vector>

#include "shmarray/array.hpp"
#include "shmarray/client.hpp"
#include "shmarray/error.hpp"
#include "shmarray/types.hpp"

namespace shmarray::python {

namespace py = pybind11;

// --- errors.cpp: the one place where ErrorCode becomes a Python exception class ---
void bind_errors(py::module_& m);
// Raises the exception class of `error.code()` (with .code, .sys_errno, and errno where the class
// is an OSError). Call with the GIL held.
[[noreturn]] void raise_error(const Error& error);
// The value of a Result, or raise_error. Call with the GIL held.
template <class T>
T unwrap(Result<T>&& result) {
  if (!result) raise_error(result.error());
  if constexpr (!std::is_void_v<T>) return std::move(*result);
}

// --- convert.cpp: Python values <-> shmarray values ---
// numpy.dtype(x).str for anything numpy.dtype() accepts (the C++ side validates support).
[[nodiscard]] std::string typestr_of(py::handle dtype_like);
// numpy.dtype(typestr).
[[nodiscard]] py::object numpy_dtype(const std::string& typestr);
// An int or an iterable of ints, each >= 0. ValueError/TypeError otherwise.
[[nodiscard]] std::vector<std::uint64_t> shape_of(py::handle shape);
// "C" or "F" (either case). ValueError otherwise.
[[nodiscard]] Order order_of(const std::string& order);
// A timeout in seconds: None means "no limit" (nullopt), 0 "do not wait". ValueError naming
// the argument (`what`) for a negative or NaN value.
[[nodiscard]] std::optional<std::chrono::nanoseconds> timeout_of(std::optional<double> seconds,
                                                                 const char* what = "timeout");
// str or os.PathLike -> str.
[[nodiscard]] std::string fspath(py::handle path);

// --- array_info.cpp ---
void bind_array_info(py::module_& m);

// --- array_handle.cpp: the owner of a mapping, which every ndarray view keeps alive ---
void bind_array_handle(py::module_& m);
// Wraps `array` in a new ArrayHandle and returns a numpy.ndarray over its bytes whose base is that
// handle; read-only grants give a non-writeable ndarray.
[[nodiscard]] py::array make_ndarray(Array array);

// --- py_client.cpp ---
void bind_client(py::module_& m);
// The C++ Client behind a shmarray.Client (FailedPrecondition if it is closed).
[[nodiscard]] std::shared_ptr<Client> client_of(py::handle py_client);

// --- stream.cpp: Client.create_stream/open_publisher/subscribe, Publisher, Subscriber ---
void bind_streams(py::module_& m);

// --- sync.cpp: publish / wait / lock / version on an ndarray ---
void bind_sync(py::module_& m);

// --- checked_read.cpp: read_checked (a copy that survives a truncated segment) ---
void bind_checked_read(py::module_& m);

// --- torch_interop.cpp: as_tensor (PyTorch tensors over shared arrays) ---
void bind_torch_interop(py::module_& m);

}  // namespace shmarray::python
